"""A customer's contact history as stored: feedback records, last feedback per action, the
offers made (the daily budget's log) and the products offered.

The storage of ``recommend/engage/contact.py``'s policy (which decides what an offer is, what
is rationed and how long things rest): only this module names those per-customer keys. The
writes of one feedback are one Lua script in the customer's hash-tag slot, idempotent by the
client's feedback id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from core.outbox import EMIT_LUA, Outbox
from profiles.keys import Keys

# KEYS: feedback hash, action state hash, contacts zset, offered products zset, outbox stream,
#       the customer's outbox ids
# ARGV: feedback id, record JSON, action id, outcome, now, channel, product id ('' for none),
#       rationed (0/1), follow-up window seconds, trim before, then the ``action.feedback``
#       change event (``Outbox.args``), appended when the feedback is new
# A 'completed' right after an 'accepted' of the same action (within the window) is a
# follow-up, not a new offer: it is logged but uses no budget and rests no product.
_FEEDBACK_LUA = (
    EMIT_LUA
    + """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return {'duplicate', existing, '0'}
end
local now = tonumber(ARGV[5])
local outcome = ARGV[4]
local new_offer = 1
if outcome == 'completed' then
  local prev = redis.call('HGET', KEYS[2], ARGV[3])
  if prev then
    local p = cjson.decode(prev)
    if p['outcome'] == 'accepted' and (now - tonumber(p['at'])) <= tonumber(ARGV[9]) then
      new_offer = 0
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], cjson.encode({at = now, outcome = outcome}))
if new_offer == 1 and ARGV[8] == '1' then
  redis.call('ZADD', KEYS[3], now, ARGV[6] .. '|' .. ARGV[3] .. '|' .. ARGV[1])
end
if ARGV[7] ~= '' and new_offer == 1 then
  redis.call('ZADD', KEYS[4], now, ARGV[7])
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[10])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[10])
rapport_emit(KEYS[5], KEYS[6], 11)
return {'created', ARGV[2], tostring(new_offer)}
"""
)


@dataclass(frozen=True)
class FeedbackWrite:
    """What :meth:`ContactLog.record` did: ``created`` False for a repeated feedback id
    (``record`` and ``fingerprint`` are then those stored first); ``new_offer`` False for a
    follow-up."""

    created: bool
    record: dict[str, Any]
    fingerprint: str | None
    new_offer: bool


@dataclass(frozen=True)
class ContactState:
    """A customer's contact state: the last feedback per action (``{"at", "outcome"}``), the
    channel of each offer made since the day start, the products offered since the rest start."""

    last_feedback: dict[str, dict[str, Any]]
    offer_channels: list[str]
    offered_products: set[str]


class ContactLog:
    """Reads and writes one customer's contact history."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys
        self.outbox = Outbox.for_client(client, keys)
        self._script = client.register_script(_FEEDBACK_LUA)

    def record(
        self,
        customer_id: str,
        record: dict[str, Any],
        *,
        rationed: bool,
        follow_up_window: float,
        trim_before: float,
    ) -> FeedbackWrite:
        """Store one feedback ``record`` (``feedback_id``, ``action_id``, ``outcome``, ``at``,
        ``channel``, ``product_id``, ``fingerprint`` ...): the record, the action's last
        feedback, the offer in the contact log when ``rationed``, the product as offered.
        Entries older than ``trim_before`` (epoch s) are dropped from the log and the offered
        products. The ``fingerprint`` (the caller's digest of the body, which tells a retry
        from a conflicting reuse of the id) comes back apart from the record."""
        key = self.keys.action_feedback(customer_id)
        public = {k: v for k, v in record.items() if k != "fingerprint"}
        event = self.outbox.event("action.feedback", customer_id, {"feedback": public})
        stream, tail = self.outbox.args(key, [event])
        status, stored, new_offer = self._script(
            keys=[
                key,
                self.keys.action_state(customer_id),
                self.keys.contacts(customer_id),
                self.keys.offered_products(customer_id),
                stream,
                self.keys.outbox_ids(customer_id),
            ],
            args=[
                record["feedback_id"],
                json.dumps(record),
                record["action_id"],
                record["outcome"],
                repr(record["at"]),
                record["channel"],
                record.get("product_id") or "",
                "1" if rationed else "0",
                repr(follow_up_window),
                repr(trim_before),
                *tail,
            ],
        )
        kept = json.loads(stored)
        fingerprint = kept.pop("fingerprint", None)
        return FeedbackWrite(status == "created", kept, fingerprint, new_offer == "1")

    def state(self, customer_id: str, day_start: float, rest_since: float) -> ContactState:
        """:class:`ContactState` in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        read = self.queue_state(pipe, customer_id, day_start, rest_since)
        return read(pipe.execute())

    def queue_state(
        self, pipe: Any, customer_id: str, day_start: float, rest_since: float
    ) -> Callable[[list[Any]], ContactState]:
        """Queue the reads of :meth:`state` on ``pipe`` (three commands, one slot); returns
        the function that turns those three results into the state."""
        pipe.hgetall(self.keys.action_state(customer_id))
        pipe.zrangebyscore(self.keys.contacts(customer_id), day_start, "+inf")
        pipe.zrangebyscore(self.keys.offered_products(customer_id), rest_since, "+inf")
        return _state

    def feedback_history(self, customer_id: str) -> list[dict[str, Any]]:
        """Every feedback record of a customer, oldest first (export)."""
        raw = self.redis.hgetall(self.keys.action_feedback(customer_id))
        records = [_without_fingerprint(json.loads(v)) for v in raw.values()]
        return sorted(records, key=lambda r: (r.get("at", 0), r.get("feedback_id", "")))

    # -- impressions (next-best actions shown; the feedback window) -------------------------
    def queue_impressions(
        self, pipe: Any, customer_id: str, action_ids: list[str], now: float, ttl: int
    ) -> None:
        """Queue on ``pipe``: the actions shown to the customer at ``now`` (one member per
        action, so the zset is bounded by the catalogue), the key expiring after ``ttl`` s."""
        key = self.keys.impressions(customer_id)
        pipe.zadd(key, dict.fromkeys(action_ids, now))
        pipe.expire(key, max(1, int(ttl)))

    def feedback_context(
        self, customer_id: str, action_id: str, feedback_id: str
    ) -> tuple[float | None, bool, bool]:
        """(when the action was last shown to the customer or None, whether the customer
        gave feedback on it before, whether ``feedback_id`` is recorded), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zscore(self.keys.impressions(customer_id), action_id)
        pipe.hexists(self.keys.action_state(customer_id), action_id)
        pipe.hexists(self.keys.action_feedback(customer_id), feedback_id)
        shown, earlier, known = pipe.execute()
        return (float(shown) if shown is not None else None), bool(earlier), bool(known)


def _state(results: list[Any]) -> ContactState:
    states, contacts, products = results
    last: dict[str, dict[str, Any]] = {}
    for action_id, raw in states.items():
        try:
            last[action_id] = json.loads(raw)
        except ValueError:
            continue
    channels = [member.split("|", 1)[0] for member in contacts]
    return ContactState(last, channels, set(products))


def _without_fingerprint(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "fingerprint"}
