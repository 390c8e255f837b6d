"""A batch of customer interactions, recorded item by item: every item gets its own result.

Each item is ``{message_id, type, customer: {profile_id | email | phone | external_id}, at,
...payload}`` (payloads in ``profiles.activity_input.normalise_event``). An item is
``accepted``, a ``duplicate`` (its message id was seen for that customer within 7 days) or
``rejected`` with a reason and the field at fault; one bad item never rejects the batch.
The events of one customer are written together (``ActivityStore.record_events_many``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import InvalidInput, NotFound, RapportError
from profiles.activity import MAX_ORDERS, ActivityStore
from profiles.activity_input import normalise_event
from profiles.store import ProfileStore

CUSTOMER_FIELDS = ("profile_id", "email", "phone", "external_id")


class EventBatch:
    """Records batches of events over the profile and activity stores."""

    def __init__(self, profiles: ProfileStore, activity: ActivityStore):
        self.profiles = profiles
        self.activity = activity

    def record(self, items: Sequence[Any]) -> dict[str, Any]:
        """``{accepted, duplicate, rejected, results: [{index, message_id, status,
        customer_id?, reason?, field?}]}`` for the items, in their order."""
        results: list[dict[str, Any]] = []
        parsed: dict[int, dict[str, Any]] = {}
        refs: dict[int, tuple[str, str]] = {}
        now = self.activity.clock()
        for i, item in enumerate(items):
            mid = item.get("message_id") if isinstance(item, Mapping) else None
            results.append({"index": i, "message_id": mid if isinstance(mid, str) else None})
            try:
                parsed[i], refs[i] = _parsed(item, now)
            except (InvalidInput, NotFound) as exc:
                results[i].update(status="rejected", reason=exc.detail, field=exc.field)
        by_customer: dict[str, list[int]] = {}
        for i, cid in _customers(self.profiles, refs).items():
            if isinstance(cid, RapportError):
                results[i].update(status="rejected", reason=cid.detail, field=cid.field)
                continue
            results[i]["customer_id"] = cid
            by_customer.setdefault(cid, []).append(i)
        outcomes = self.activity.record_events_many(
            {cid: [parsed[i] for i in indexes] for cid, indexes in by_customer.items()}
        )
        for cid, indexes in by_customer.items():
            for i, outcome in zip(indexes, outcomes[cid], strict=True):
                results[i].update(_OUTCOMES.get(outcome) or {"status": outcome})
        counts = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate")}
        counts["rejected"] = sum(r["status"] == "rejected" for r in results)
        return {**counts, "results": results}


# what the store's per-event outcomes other than accepted/duplicate mean for the caller
_OUTCOMES: dict[str, dict[str, str]] = {
    "conflict": {
        "status": "rejected",
        "reason": "the order id is already recorded with another body",
        "field": "order_id",
    },
    "invalid": {
        "status": "rejected",
        "reason": "the customer's total spend would overflow",
        "field": "lines",
    },
    "full": {
        "status": "rejected",
        "reason": f"the customer already holds {MAX_ORDERS} purchases, the most one customer "
        "may have (see Limits in docs/profiles.md)",
        "field": "order_id",
    },
}


def _parsed(item: Any, now: float) -> tuple[dict[str, Any], tuple[str, str]]:
    """An item's event and customer ref (raises InvalidInput with the field at fault)."""
    if not isinstance(item, Mapping):
        raise InvalidInput("an event must be an object")
    if "customer" not in item:
        raise InvalidInput("is required", field="customer")
    event = normalise_event({k: v for k, v in item.items() if k != "customer"}, now)
    return event, _customer_ref(item["customer"])


def _customer_ref(raw: Any) -> tuple[str, str]:
    """The ``(field, value)`` an item's ``customer`` names (raises InvalidInput with a field)."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("must be an object with one of: " + ", ".join(CUSTOMER_FIELDS),
                           field="customer")  # fmt: skip
    given = [k for k in raw if raw[k] is not None]
    unknown = [k for k in given if k not in CUSTOMER_FIELDS]
    if unknown:
        raise InvalidInput("unknown field", field=f"customer.{unknown[0]}")
    if len(given) != 1:
        raise InvalidInput("give exactly one of: " + ", ".join(CUSTOMER_FIELDS), field="customer")
    name = given[0]
    value = raw[name]
    if not isinstance(value, str) or not 1 <= len(value) <= 320:
        raise InvalidInput("must be a string of 1 to 320 characters", field=f"customer.{name}")
    return name, value


def _customers(
    profiles: ProfileStore, refs: Mapping[int, tuple[str, str]]
) -> dict[int, str | RapportError]:
    """Per item index, the live profile id its customer ref names, or the error rejecting it
    (InvalidInput / NotFound with a field).

    ``profile_id`` refs are resolved together (``ProfileStore.resolve_many``: one round trip
    for the batch). ``email`` / ``phone`` / ``external_id`` refs keep the per-item look-up
    (the identity's owner, then its profile; batching it would duplicate that path for little
    gain in id-keyed feeds), once per distinct value."""
    live = profiles.resolve_many([v for name, v in refs.values() if name == "profile_id"])
    looked_up: dict[tuple[str, str], str | RapportError] = {}
    out: dict[int, str | RapportError] = {}
    for i, (name, value) in refs.items():
        if name == "profile_id":
            cid = live[value]
            out[i] = cid or NotFound("no profile with this identity", field=f"customer.{name}")
            continue
        if (name, value) not in looked_up:
            try:
                looked_up[name, value] = profiles.lookup_input(name, value).id
            except InvalidInput as exc:
                looked_up[name, value] = InvalidInput(exc.detail, field=f"customer.{name}")
            except NotFound:
                looked_up[name, value] = NotFound(
                    "no profile with this identity", field=f"customer.{name}"
                )
        out[i] = looked_up[name, value]
    return out
