"""A customer's activity as one JSON-able snapshot (export, merge, unmerge): built from the
reads of ``profiles/activity_paged.py``, and turned back into the arguments of its paged
scripts (``profiles/activity_lua_paged.py``). Events read from the stream take the same shape.

Shape: ``{customer_id, purchases (one stored under another field than its order id carries
stored_as), events, message_ids: [[id, ms]], support_contacts, absorbed: [{source, record}],
traits}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from profiles.activity_input import canonical_json, to_epoch_ms


def snapshot_from(customer_id: str, reply: list[Any], traits: dict[str, Any]) -> dict[str, Any]:
    """The snapshot of ``customer_id`` from its paged reads (flat lists: orders, events, message
    ids with scores, support, absorbed) and its traits."""
    orders, entries, mids, support, absorbed = reply
    purchases = []
    for field, body in pairs(orders):
        purchase = json.loads(body)
        if field != purchase.get("order_id"):
            purchase["stored_as"] = field
        purchases.append(purchase)
    purchases.sort(key=lambda p: (p["purchased_at"], p.get("stored_as", p["order_id"])))
    return {
        "customer_id": customer_id,
        "purchases": purchases,
        "events": [event_from(entry_id, pairs_dict(fields)) for entry_id, fields in entries],
        "message_ids": [[m, int(float(s))] for m, s in pairs(mids)],
        "support_contacts": [json.loads(v) for _, v in sorted(pairs(support))],
        "absorbed": [{"source": s, "record": v} for s, v in sorted(pairs(absorbed))],
        "traits": traits,
    }


@dataclass(frozen=True)
class SnapshotParts:
    """A snapshot as the paged scripts take it (``profiles/activity_paged.py``): ``orders``
    field -> [canonical JSON, ms], ``purchases`` field -> purchase, ``events`` [[id, message_id,
    type, at, at_ms, payload JSON]], ``message_ids`` id -> ms, ``contacts`` contact id -> JSON,
    ``absorbed`` source -> record; ``own`` when it is the target's own snapshot."""

    source: str
    own: bool
    orders: dict[str, list[Any]]
    purchases: dict[str, dict[str, Any]]
    events: list[list[str]]
    message_ids: dict[str, int]
    contacts: dict[str, str]
    absorbed: dict[str, str]


def snapshot_parts(target_id: str, snapshot: Mapping[str, Any]) -> SnapshotParts:
    """What applying ``snapshot`` to ``target_id`` takes (absorb/remove)."""
    source = str(snapshot.get("customer_id") or "")
    orders: dict[str, list[Any]] = {}
    purchases: dict[str, dict[str, Any]] = {}
    for purchase in snapshot.get("purchases") or []:
        p = {k: v for k, v in purchase.items() if k != "stored_as"}
        field = purchase.get("stored_as") or p["order_id"]
        orders[field] = [canonical_json(p), to_epoch_ms(p["purchased_at"])]
        purchases[field] = p
    events = [
        [e["id"], e["message_id"], e["type"], e["at"], str(e["at_ms"]),
         canonical_json(e["payload"])]
        for e in snapshot.get("events") or []
    ]  # fmt: skip
    return SnapshotParts(
        source=source,
        own=source == target_id,
        orders=orders,
        purchases=purchases,
        events=events,
        message_ids={m: ms for m, ms in snapshot.get("message_ids") or []},
        contacts={
            c["contact_id"]: canonical_json(c) for c in snapshot.get("support_contacts") or []
        },
        absorbed={a["source"]: a["record"] for a in snapshot.get("absorbed") or []},
    )


def pairs(flat: list[Any]) -> list[tuple[Any, Any]]:
    return list(zip(flat[0::2], flat[1::2], strict=True))


def pairs_dict(flat: list[Any] | Mapping[str, Any]) -> dict[str, Any]:
    return dict(flat) if isinstance(flat, Mapping) else dict(pairs(flat))


def event_from(entry_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of a customer's events stream as the API shows it."""
    return {
        "id": entry_id,
        "message_id": fields.get("message_id"),
        "type": fields.get("type"),
        "at": fields.get("at"),
        "at_ms": int(fields.get("at_ms") or 0),
        "payload": json.loads(fields.get("payload") or "{}"),
    }
