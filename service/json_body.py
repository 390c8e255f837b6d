"""JSON request bodies parsed with the numbers bounded: a body is never a 500.

Python's ``json`` turns any run of digits into an ``int`` (past 4,300 digits that raises a
``ValueError`` webargs does not expect), ``1e400`` into ``inf`` and accepts ``NaN`` and
``Infinity``, which JSON does not have. Such a number reaching a ``float()``, a time stamp or a
Redis counter fails deep inside a handler. :func:`load_json` refuses them up front with a 422
naming the field (``customer.at``, ``events.3.at``), so every layer below sees only numbers
of a sane size. The parse hooks cost nothing when no such number is present: the walk that
finds the field runs only after a hook flagged one.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from core.errors import InvalidInput

MAX_INT_DIGITS = 19  # up to the 64-bit range: no field of this API holds more


class _Refused:
    """Stands in the parsed document for a number refused by a parse hook."""

    def __init__(self, text: str):
        self.text = text


def load_json(text: str | bytes) -> Any:
    """``json.loads`` with the numbers bounded (raises ``json.JSONDecodeError`` for bad JSON
    and ``InvalidInput`` with the field for a number out of range)."""
    refused: list[_Refused] = []

    def refuse(token: str) -> _Refused:
        refused.append(_Refused(token))
        return refused[-1]

    def parse_int(token: str) -> int | _Refused:
        digits = len(token) - token.startswith("-")
        return int(token) if digits <= MAX_INT_DIGITS else refuse(token)

    def parse_float(token: str) -> float | _Refused:
        value = float(token)
        return value if value not in (float("inf"), float("-inf")) else refuse(token)

    doc = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=refuse)
    if refused:
        field, token = _first_refused(doc, "")
        shown = token if len(token) <= 24 else f"a number of {len(token)} characters"
        raise InvalidInput(f"{shown} is not a number this API accepts", field=field)
    return doc


def _first_refused(value: Any, path: str) -> tuple[str, str]:
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, _Refused):
            return where, node.text
        if isinstance(node, dict):
            items = [(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()]
        elif isinstance(node, list):
            items = [(v, f"{where}.{i}" if where else str(i)) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(items))
    return path, ""


class BoundedJsonParser(FlaskParser):
    """webargs' Flask parser reading JSON bodies through :func:`load_json`."""

    def _raw_load_json(self, req: Request) -> Any:  # webargs' hook for the body's JSON
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        try:
            return load_json(data.decode("utf-8"))
        except UnicodeDecodeError as exc:  # reported as webargs reports it: malformed JSON
            doc = str(exc.object)
            raise json.JSONDecodeError(
                f"Bytes decoding error : {exc.reason}", doc, exc.start
            ) from exc
