"""A JSON document answered as a stream of pieces instead of one string (issue 18: the export).

The bytes are those the ordinary answer of the same document would carry: each leaf is
written by the app's JSON provider (``current_app.json``), keys sorted and separators as the
provider writes them; without ``pii:read`` the document is masked first and written as
``service/hardening.py``'s ``mask`` writes a masked answer (``flask.json.dumps``). Objects and
arrays down to ``depth`` are opened piece by piece, so no string of the whole document is
built; pieces are sent in chunks of about :data:`CHUNK_BYTES`.

The response is ``direct_passthrough``: the masking and audit hooks do not read its body
(``service/auditing.py``); the audit reads the ids it needs from ``audit_summary``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, current_app, g

from service.hardening import PII_SCOPE

CHUNK_BYTES = 64 * 1024


class StreamedJson(Response):
    """A streamed JSON answer; ``audit_summary`` holds the top-level ids the audit records."""

    audit_summary: dict[str, Any] | None = None


def streamed_json(doc: dict[str, Any], *, depth: int = 3) -> StreamedJson:
    """``doc`` (already dumped by its schema) as a streamed ``application/json`` answer."""
    provider = current_app.json
    key = g.get("api_key")
    masker = current_app.extensions.get("rapport.pii")
    body, dumps, newline = doc, _response_dumps(provider), True
    if key is not None and not key.allows(PII_SCOPE) and masker is not None:
        masked = masker.value(doc)
        if masked != doc:  # as `mask` does: a document with nothing to mask keeps its bytes
            body, dumps, newline = masked, provider.dumps, False
    pieces = _pieces(body, depth, dumps, _separators(dumps))
    mimetype = getattr(provider, "mimetype", "application/json")
    response = StreamedJson(_chunks(pieces, newline), mimetype=mimetype)
    response.direct_passthrough = True
    response.audit_summary = {k: doc[k] for k in ("customer_id",) if k in doc}
    return response


def _response_dumps(provider: Any) -> Callable[[Any], str]:
    """What the provider's ordinary answer writes for a value (without its final newline)."""

    def dumps(value: Any) -> str:
        data = provider.response(value).get_data(as_text=True)
        return data[:-1] if data.endswith("\n") else data

    return dumps


def _separators(dumps: Callable[[Any], str]) -> tuple[str, str]:
    """The item and key separators ``dumps`` writes: ``(",", ":")`` or ``(", ", ": ")``."""
    items = dumps([0, 0])[2:-2]
    keys = dumps({"a": 0})[4:-2]
    return items, keys


def _pieces(
    value: Any, depth: int, dumps: Callable[[Any], str], seps: tuple[str, str]
) -> Iterator[str]:
    if depth > 0 and isinstance(value, dict) and value:
        yield "{"
        for i, name in enumerate(sorted(value)):
            yield (seps[0] if i else "") + dumps(name) + seps[1]
            yield from _pieces(value[name], depth - 1, dumps, seps)
        yield "}"
    elif depth > 0 and isinstance(value, list) and value:
        yield "["
        for i, item in enumerate(value):
            if i:
                yield seps[0]
            yield from _pieces(item, depth - 1, dumps, seps)
        yield "]"
    else:
        yield dumps(value)


def _chunks(pieces: Iterator[str], newline: bool) -> Iterator[bytes]:
    held: list[str] = []
    size = 0
    for piece in pieces:
        held.append(piece)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield "".join(held).encode()
            held, size = [], 0
    if newline:
        held.append("\n")
    if held:
        yield "".join(held).encode()
