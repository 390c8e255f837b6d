"""The JSON body of one webhook (Standard Webhooks shape) from one outbox entry.

``{"type": ..., "timestamp": ISO 8601 UTC of the change, "data": {...}}``; ``data`` is the
entry's data with ``customer_id`` (None for events about no customer) and, for profile changes,
``version``. Without ``include_pii`` emails and phones are masked as in API responses for keys
without ``pii:read`` (``service/pii.py``). The webhook id is ``msg_<shard>_<entry id>``, the same
for every retry and redelivery, so receivers dedupe by it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from service.pii import Masker, mask_pii


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def message_id(shard: int, entry_id: str | bytes) -> str:
    return f"msg_{int(shard)}_{_text(entry_id)}"


def iso_timestamp(at_ms: int) -> str:
    """``2026-12-03T16:00:00.123Z`` for epoch milliseconds ``at_ms``."""
    moment = datetime.fromtimestamp(int(at_ms) / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(at_ms) % 1000:03d}Z"


def document(entry: Mapping[Any, Any], include_pii: bool, masker: Masker | None = None) -> dict:
    """The payload as a dict (before encoding)."""
    fields = {_text(k): _text(v) for k, v in entry.items()}
    data = json.loads(fields.get("data") or "{}")
    if not isinstance(data, dict):
        data = {"value": data}
    data["customer_id"] = fields.get("customer_id") or None
    if fields.get("version"):
        data["version"] = int(fields["version"])
    if not include_pii:
        data = mask_pii(data, masker)
    return {
        "type": fields.get("type", ""),
        "timestamp": iso_timestamp(int(fields.get("at_ms") or 0)),
        "data": data,
    }


def body(
    entry: Mapping[Any, Any],
    shard: int,
    entry_id: str | bytes,
    include_pii: bool,
    masker: Masker | None = None,
) -> tuple[str, bytes]:
    """(webhook id, JSON body bytes) for one outbox entry as one subscription sees it."""
    encoded = json.dumps(
        document(entry, include_pii, masker), separators=(",", ":"), ensure_ascii=False
    )
    return message_id(shard, entry_id), encoded.encode("utf-8")
