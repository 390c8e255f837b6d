"""JSON request bodies parsed with the numbers bounded: a body is never a 500.

Python's ``json`` turns any run of digits into an ``int`` (past 4,300 digits that raises a
``ValueError`` webargs does not expect), ``1e400`` into ``inf`` and accepts ``NaN`` and
``Infinity``, which JSON does not have. Such a number reaching a ``float()``, a time stamp or a
Redis counter fails deep inside a handler. :func:`load_json` refuses them up front with a 422
naming the field (``customer.at``, ``events.3.at``), so every layer below sees only numbers
of a sane size. The parse hooks cost nothing when no such number is present: the walk that
finds the field runs only after a hook flagged one.

Both parse with orjson first: a document orjson accepts and that holds no run of 19 or more
digits (orjson reads integers past 64 bits as floats) is exactly what ``json.loads`` would
return, with every number in range (orjson refuses ``NaN``, ``Infinity`` and ``1e400``).
Anything else takes the ``json.loads`` path, so every answer, 400 or 422, is the one it was.
:class:`FastJsonProvider` is the app's JSON provider: orjson both ways, with the output of
Flask's default provider (sorted keys, compact), the stdlib as the fallback.
"""

from __future__ import annotations

import json
import re
from typing import Any

import marshmallow as ma
import orjson
from flask import Request
from flask.json.provider import DefaultJSONProvider, _default
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from core.errors import InvalidInput

MAX_INT_DIGITS = 19  # up to the 64-bit range: no field of this API holds more
# 19 digits: where orjson may read an integer as a float (past u64, or past i64 when negative)
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")
_DUMPS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_SERIALIZE_NUMPY
    | orjson.OPT_PASSTHROUGH_DATETIME  # dates as Flask writes them (HTTP dates), via _default
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


class _Refused:
    """Stands in the parsed document for a number refused by a parse hook."""

    def __init__(self, text: str):
        self.text = text


def load_json(text: str | bytes) -> Any:
    """``json.loads`` with the numbers bounded (raises ``json.JSONDecodeError`` for bad JSON
    and ``InvalidInput`` with the field for a number out of range)."""
    if _plain(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # json.loads says why (or reads NaN, 1e400, a lone surrogate: refused below)
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
    """webargs' Flask parser reading JSON bodies through :func:`load_json`, with one instance
    per schema class: webargs builds a new one from a class on every request (and each new
    instance deep-copies its fields and rebuilds its nested schemas), which cost a purchase
    write about 7% of its CPU. A marshmallow 4 schema keeps no per-load state, so one
    instance serves every thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schemas: dict[type, ma.Schema] = {}

    def _get_schema(self, argmap: Any, req: Request) -> ma.Schema:
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            schema = self._schemas.get(argmap)
            if schema is None:
                schema = self._schemas.setdefault(argmap, argmap())
            return schema
        return super()._get_schema(argmap, req)

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


def _plain(data: str | bytes) -> bool:
    """Whether orjson reads ``data`` as ``json.loads`` does (no run of 19+ digits)."""
    pattern = _LONG_DIGITS_BYTES if isinstance(data, bytes | bytearray) else _LONG_DIGITS
    return pattern.search(data) is None  # type: ignore[arg-type]


class FastJsonProvider(DefaultJSONProvider):
    """Flask's default JSON provider with orjson doing the work: the same documents (sorted
    keys, compact; Flask's ``_default`` for dates, decimals and dataclasses), the stdlib as
    the fallback for anything orjson refuses, and for calls with ``json`` options."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if not kwargs:
            try:
                return orjson.dumps(obj, default=_default, option=_DUMPS).decode()
            except (orjson.JSONEncodeError, TypeError):
                pass  # past 64 bits, a cycle...: the stdlib answers or raises as before
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if not kwargs and _plain(s):
            try:
                return orjson.loads(s)
            except orjson.JSONDecodeError:
                pass
        return super().loads(s, **kwargs)

    def response(self, *args: Any, **kwargs: Any) -> Any:
        obj = self._prepare_response_obj(args, kwargs)
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(obj)  # indented, for people
        try:
            body = orjson.dumps(obj, default=_default, option=_DUMPS | orjson.OPT_APPEND_NEWLINE)
        except (orjson.JSONEncodeError, TypeError):
            return super().response(obj)
        return self._app.response_class(body, mimetype=self.mimetype)  # type: ignore[arg-type]
