"""Segment-spec messages applied to the profile and activity stores, each with its own result.

Messages are parsed by ``profiles/segment.py``. Per message the result is ``accepted``,
``duplicate`` (its ``messageId`` was seen for that customer within 7 days, or an
``Order Completed`` repeats an order already recorded with the same body), ``ignored`` (a
``group``, ``page``, ``screen`` or untracked ``track`` call: nothing stored, a ``note`` says why)
or ``rejected`` (a ``reason`` and the ``field`` at fault). What each type does:

* ``identify``: ``ProfileStore.identify`` (create, attach the new ids, or merge the profiles the
  ids belong to into the oldest) with the traits and consent;
* ``alias``: both ``previousId`` and ``userId`` known to different profiles -> the previous one
  is merged into the userId's (``Merges.merge``); otherwise the missing id is attached (as
  ``segment_anonymous:<previousId>`` when previousId is unknown) or a profile is created;
* a tracked ``track``: recorded as an event (``ActivityStore.record_events_many``). When all its
  ids belong to one profile and it carries no consent (the usual case) it is written with the
  batch: three round trips for the id look-up and one or two for the writes, whatever the size.
  Otherwise the event is written to a profile that owns one of its ids first, then
  ``identify`` attaches the other ids, merges and sets consent; with no known id, ``identify``
  creates the profile first. A rejected event changes nothing.

``messageId`` de-duplication: events use the activity store's message ids (per customer, 7 days);
``identify`` and ``alias`` add their message id to the same set once applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import RapportError
from profiles import document
from profiles.activity import MAX_ORDERS, MESSAGE_IDS_CAP, MESSAGE_WINDOW_S, ActivityStore
from profiles.identity_index import Identity
from profiles.segment import ANONYMOUS_SYSTEM, USER_SYSTEM, Message, parse_message
from profiles.store import ProfileStore

MAX_BATCH = 500
STATUSES = ("accepted", "duplicate", "ignored", "rejected")
# what the activity store's per-event outcomes other than accepted/duplicate mean for the caller
_OUTCOMES: dict[str, dict[str, str]] = {
    "conflict": {
        "status": "rejected",
        "reason": "the order id is already recorded with another body",
        "field": "properties.order_id",
    },
    "invalid": {
        "status": "rejected",
        "reason": "the customer's total spend would overflow",
        "field": "properties.products",
    },
    "full": {
        "status": "rejected",
        "reason": f"the customer already holds {MAX_ORDERS} purchases, the most one customer "
        "may have (see Limits in docs/profiles.md)",
        "field": "properties.order_id",
    },
}
_SAME_ORDER = {"status": "duplicate", "note": "the order is already recorded"}


class SegmentIngest:
    """Applies Segment-spec messages to the profile and activity stores."""

    def __init__(self, profiles: ProfileStore, activity: ActivityStore):
        self.profiles = profiles
        self.activity = activity

    def ingest(self, messages: Sequence[Any], *, actor: str) -> dict[str, Any]:
        """``{accepted, duplicate, ignored, rejected, results: [{index, message_id, status,
        customer_id?, reason?, field?, note?}]}`` for the messages, in their order."""
        now = self.activity.clock()
        results: list[dict[str, Any]] = []
        parsed: dict[int, Message] = {}
        for i, raw in enumerate(messages):
            mid = raw.get("messageId") if isinstance(raw, Mapping) else None
            results.append({"index": i, "message_id": mid if isinstance(mid, str) else None})
            try:
                parsed[i] = parse_message(raw, now)
            except RapportError as exc:
                results[i].update(status="rejected", reason=exc.detail, field=exc.field)
        wanted = [x for m in parsed.values() if m.kind != "ignored" for x in m.wanted]
        owners = self.profiles.identities.owners(wanted)
        batched: dict[int, str] = {}  # index -> customer id, events written together below
        for i, msg in parsed.items():
            if msg.notes:
                results[i]["note"] = "; ".join(msg.notes)
            if msg.kind == "ignored":
                results[i]["status"] = "ignored"
                continue
            found = {owners.get(x) for x in msg.wanted}
            if msg.kind == "event" and len(found) == 1 and None not in found and not msg.attributes:
                batched[i] = found.pop()  # type: ignore[assignment]
                continue
            try:
                results[i].update(self._apply_one(msg, actor))
            except RapportError as exc:
                results[i].update(status="rejected", reason=exc.detail, field=exc.field)
        self._write_batched(parsed, batched, results, resolve=len(batched) < len(parsed))
        counts = {s: sum(r.get("status") == s for r in results) for s in STATUSES}
        return {**counts, "results": results}

    # -- the usual case: events of known customers, written together ---------------------------
    def _write_batched(
        self, parsed: Mapping[int, Message], batched: Mapping[int, str],
        results: list[dict[str, Any]], *, resolve: bool,
    ) -> None:  # fmt: skip
        """Record the events of ``batched`` (index -> owner) in one go; ``resolve``: follow merge
        aliases first (when other messages of the batch may have merged their owners)."""
        if not batched:
            return
        live = self.profiles.resolve_many(sorted(set(batched.values()))) if resolve else {}
        owner = {i: live.get(cid) or cid for i, cid in batched.items()}
        known = self.known_orders([(owner[i], parsed[i]) for i in batched])
        by_customer: dict[str, list[int]] = {}
        in_batch: dict[tuple[str, str], tuple[str, Any]] = {}  # (cid, order id) -> first message
        for i, cid in owner.items():
            results[i]["customer_id"] = cid
            purchase = _purchase(parsed[i])
            if purchase is not None:
                mid = parsed[i].message_id
                first = in_batch.setdefault((cid, purchase["order_id"]), (mid, purchase))
                if (cid, mid) in known or (first[0] != mid and first[1] == purchase):
                    results[i].update(_SAME_ORDER)
                    continue
            by_customer.setdefault(cid, []).append(i)
        events = {c: [parsed[i].event or {} for i in ix] for c, ix in by_customer.items()}
        outcomes = self.activity.record_events_many(events)
        for cid, indexes in by_customer.items():
            for i, outcome in zip(indexes, outcomes[cid], strict=True):
                results[i].update(_OUTCOMES.get(outcome) or {"status": outcome})

    def known_orders(self, items: Sequence[tuple[str, Message]]) -> set[tuple[str, str]]:
        """``(customer id, message id)`` of the ``Order Completed`` messages whose order the
        customer already holds with the same body (one pipeline for all)."""
        purchases = [(cid, m, p) for cid, m in items if (p := _purchase(m)) is not None]
        if not purchases:
            return set()
        pipe = self.profiles.redis.pipeline(transaction=False)
        for cid, _, purchase in purchases:
            pipe.hget(self.profiles.keys.orders(cid), purchase["order_id"])
        return {
            (cid, m.message_id)
            for (cid, m, purchase), stored in zip(purchases, pipe.execute(), strict=True)
            if stored is not None and json.loads(stored) == purchase
        }

    # -- one message at a time: identify, alias, events that change the profile ---------------
    def _apply_one(self, msg: Message, actor: str) -> dict[str, Any]:
        if msg.kind == "identify":
            return self._identify(msg, actor)
        if msg.kind == "alias":
            return self._alias(msg, actor)
        return self._event(msg, actor)

    def _identify(self, msg: Message, actor: str) -> dict[str, Any]:
        owner = self._first_owner(msg.wanted)
        if owner and self._seen(owner, msg.message_id):
            return {"status": "duplicate", "customer_id": owner}
        profile, outcome = self.profiles.identify(msg.identities, msg.attributes, actor=actor)
        self._mark(profile.id, msg.message_id)
        return {"status": "accepted", "customer_id": profile.id, **_note(msg, outcome["outcome"])}

    def _alias(self, msg: Message, actor: str) -> dict[str, Any]:
        assert msg.user is not None and msg.previous is not None  # parse_message checks
        user = self.profiles.identities.owner(msg.user)
        previous_ids = [(f"ext:{s}", msg.previous) for s in (USER_SYSTEM, ANONYMOUS_SYSTEM)]
        found = [(x, o) for x in previous_ids if (o := self.profiles.identities.owner(x))]
        known = user or (found[0][1] if found else None)
        if known and self._seen(known, msg.message_id):
            return {"status": "duplicate", "customer_id": known}
        if user and found and found[0][1] != user:
            record = self.profiles.merges.merge(
                found[0][1], user, actor=actor, reason="segment alias"
            )
            if msg.attributes:
                self.profiles.patch(user, msg.attributes)
            self._mark(user, msg.message_id)
            note = f"merged {record['source_id']} into {user} ({record['id']})"
            return {"status": "accepted", "customer_id": user, **_note(msg, note)}
        previous = found[0][0] if found else previous_ids[1]
        exts = [*msg.identities.get("external_ids", []), f"{previous[0][4:]}:{previous[1]}"]
        identities = {**msg.identities, "external_ids": document.unique(exts)}
        profile, outcome = self.profiles.identify(identities, msg.attributes, actor=actor)
        self._mark(profile.id, msg.message_id)
        return {"status": "accepted", "customer_id": profile.id, **_note(msg, outcome["outcome"])}

    def _event(self, msg: Message, actor: str) -> dict[str, Any]:
        """An event whose ids are not all one known profile's, or that carries consent: the
        event is written first where a profile is known (a rejected event changes nothing),
        then identify attaches the ids, merges and sets consent."""
        owner = self._first_owner(msg.wanted)
        if owner is None:
            profile, _ = self.profiles.identify(msg.identities, msg.attributes, actor=actor)
            return {"customer_id": profile.id, **self._record(profile.id, msg)}
        result = self._record(owner, msg)
        if result["status"] != "accepted":
            return {"customer_id": owner, **result}
        profile, _ = self.profiles.identify(msg.identities, msg.attributes, actor=actor)
        return {"customer_id": profile.id, **result}

    def _record(self, cid: str, msg: Message) -> dict[str, Any]:
        if (cid, msg.message_id) in self.known_orders([(cid, msg)]):
            return dict(_SAME_ORDER)
        (outcome,) = self.activity.record_events_many({cid: [msg.event or {}]})[cid]
        return dict(_OUTCOMES.get(outcome) or {"status": outcome})

    # -- identities and message ids ------------------------------------------------------------
    def _first_owner(self, identities: Sequence[Identity]) -> str | None:
        for identity in identities:
            owner = self.profiles.identities.owner(identity)
            if owner:
                return owner
        return None

    def _seen(self, cid: str, message_id: str) -> bool:
        key = self.profiles.keys.message_ids(cid)
        return self.profiles.redis.zscore(key, message_id) is not None

    def _mark(self, cid: str, message_id: str) -> None:
        """Remember an applied identify/alias message id as the events script does its own (the
        same set, window and cap)."""
        now_ms = int(self.activity.clock() * 1000)
        key = self.profiles.keys.message_ids(cid)
        pipe = self.profiles.redis.pipeline(transaction=False)
        pipe.zadd(key, {message_id: now_ms}, nx=True)
        pipe.zremrangebyscore(key, "-inf", now_ms - MESSAGE_WINDOW_S * 1000)
        pipe.zremrangebyrank(key, 0, -(MESSAGE_IDS_CAP + 1))
        pipe.execute()


def _purchase(msg: Message) -> dict[str, Any] | None:
    """The normalised purchase of an ``Order Completed`` message, else None."""
    if msg.event is None or msg.event["type"] != "purchase":
        return None
    return msg.event["payload"]["purchase"]


def _note(msg: Message, outcome: str) -> dict[str, str]:
    return {"note": "; ".join([outcome, *msg.notes])}
