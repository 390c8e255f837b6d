"""One subscription's delivery state: customers' queues of undelivered events, retry times, dead
letters and the delivery log, all under the subscription's hash tag ``{s:SID}`` (one Redis
Cluster slot), so each change below is one atomic script.

A customer whose oldest event for a subscription is not delivered is *blocked* for it: their
later events wait in their queue behind it (ordering per customer), while other customers' go
on. The retry loop (``service/webhooks/worker.py``) takes due customers from ``:retry`` and
delivers the head of their queue; a target that answers again after failures makes its
waiting customers due at once (:meth:`DeliveryQueues.due_now`). The scripts count the events
waiting in a subscription's queues in ``:queued``. Bounds: a queue holds at most
:data:`QUEUE_CAP` events (past it an event is a dead letter at once, reason "queue full"), the
dead letters the newest :data:`DEAD_CAP`, the log the newest :data:`LOG_CAP` outcomes
(approximately).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

from core.keys import SharedKeys

QUEUE_CAP = 10_000
DEAD_CAP = 10_000
LOG_CAP = 1_000

# KEYS: blocked hash, the customer's queue, retry zset, queued count. ARGV: customer, item JSON,
# next attempt time ('' = only when the customer is blocked already), queue cap.
# Returns 1 queued behind an undelivered event, 2 queued and blocked (first undelivered),
# 0 not queued (not blocked and no time given: deliver it now), -1 the queue is full.
_QUEUE = """
local blocked = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if not blocked and ARGV[3] == '' then return 0 end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[4])
if blocked then return 1 end
redis.call('HSET', KEYS[1], ARGV[1], '1')
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 2
"""

# KEYS: blocked, queue, retry, dead, queued count. ARGV: customer, now, dead item JSON
# ('' = delivered), dead cap. Pops the head; the next one is due now, or the customer is
# unblocked.
_ADVANCE = """
if redis.call('LPOP', KEYS[2]) and redis.call('DECR', KEYS[5]) < 0 then
  redis.call('SET', KEYS[5], 0)
end
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[3])
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[4]) - 1)
end
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

# KEYS: queue, retry. ARGV: customer, the head as updated, next attempt time.
_RETRY_LATER = """
if redis.call('LLEN', KEYS[1]) == 0 then return 0 end
redis.call('LSET', KEYS[1], 0, ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

# KEYS: blocked, queue, retry, queued count. ARGV: customer. Drops the customer's waiting events
# (erasure).
_DROP = """
local n = redis.call('LLEN', KEYS[2])
redis.call('DEL', KEYS[2])
if redis.call('DECRBY', KEYS[4], n) < 0 then redis.call('SET', KEYS[4], 0) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return n
"""


# KEYS: retry zset. ARGV: now, limit. Customers scheduled after ``now`` are due at ``now``
# (the target answered again after an outage: its blocked customers need not wait out their
# backoff). Their queues and order are untouched.
_DUE_NOW = """
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])
for i = 1, #later do redis.call('ZADD', KEYS[1], 'XX', ARGV[1], later[i]) end
return #later
"""


class DeliveryQueues:
    """The delivery state of every subscription in one Redis."""

    def __init__(self, client: Any, keys: SharedKeys, clock: Callable[[], float] = time.time):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self._queue = client.register_script(_QUEUE)
        self._advance = client.register_script(_ADVANCE)
        self._retry_later = client.register_script(_RETRY_LATER)
        self._drop = client.register_script(_DROP)
        self._due_now = client.register_script(_DUE_NOW)

    # -- the engine's operations -------------------------------------------------------------
    def queue(self, sid: str, customer: str, item: dict, next_at: float | None) -> int:
        """Queue ``item`` behind the customer's undelivered events; with ``next_at`` also when
        there are none (it failed: block the customer, retry at ``next_at``). See ``_QUEUE``."""
        k = self.keys
        return int(
            self._queue(
                keys=[
                    k.subscription_blocked(sid),
                    k.subscription_queue(sid, customer),
                    k.subscription_retry(sid),
                    k.subscription_queued(sid),
                ],
                args=[
                    customer,
                    json.dumps(item),
                    "" if next_at is None else repr(next_at),
                    QUEUE_CAP,
                ],
            )
        )

    def due(self, sid: str, now: float, limit: int = 50) -> list[str]:
        """Customers whose head event is due for another attempt."""
        return cast(
            "list[str]",
            self.redis.zrangebyscore(self.keys.subscription_retry(sid), "-inf", now, 0, limit),
        )

    def head(self, sid: str, customer: str) -> dict | None:
        raw = self.redis.lindex(self.keys.subscription_queue(sid, customer), 0)
        return json.loads(raw) if raw else None

    def advance(self, sid: str, customer: str, dead: dict | None = None) -> bool:
        """Drop the head (delivered, or ``dead`` with the reason); True when more wait."""
        k = self.keys
        keys = [
            k.subscription_blocked(sid),
            k.subscription_queue(sid, customer),
            k.subscription_retry(sid),
            k.subscription_dead(sid),
            k.subscription_queued(sid),
        ]
        args = [customer, repr(self.clock()), json.dumps(dead) if dead else "", DEAD_CAP]
        return bool(self._advance(keys=keys, args=args))

    def retry_later(self, sid: str, customer: str, head: dict, next_at: float) -> None:
        k = self.keys
        self._retry_later(
            keys=[k.subscription_queue(sid, customer), k.subscription_retry(sid)],
            args=[customer, json.dumps(head), repr(next_at)],
        )

    def due_now(self, sid: str, limit: int = 10_000) -> int:
        """Make every customer waiting for a later retry due now (see ``_DUE_NOW``): how many."""
        keys = [self.keys.subscription_retry(sid)]
        return int(self._due_now(keys=keys, args=[repr(self.clock()), limit]))

    def queued(self, sids: list[str]) -> list[int]:
        """Events waiting in each subscription's customer queues (one pipeline)."""
        if not sids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for sid in sids:
            pipe.get(self.keys.subscription_queued(sid))
        return [max(0, int(n or 0)) for n in pipe.execute()]

    def dead_letter(self, sid: str, item: dict) -> None:
        """An event given up on without entering a queue (its queue was full)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(self.keys.subscription_dead(sid), json.dumps(item))
        pipe.ltrim(self.keys.subscription_dead(sid), 0, DEAD_CAP - 1)
        pipe.execute()

    def drop_customer(self, sid: str, customer: str) -> int:
        """Forget the customer's waiting events (they were erased): how many."""
        k = self.keys
        keys = [
            k.subscription_blocked(sid),
            k.subscription_queue(sid, customer),
            k.subscription_retry(sid),
            k.subscription_queued(sid),
        ]
        return int(self._drop(keys=keys, args=[customer]))

    def lock(self, sid: str, customer: str, owner: str, ms: int = 30_000) -> bool:
        return bool(
            self.redis.set(self.keys.subscription_lock(sid, customer), owner, nx=True, px=ms)
        )

    def unlock(self, sid: str, customer: str) -> None:
        self.redis.delete(self.keys.subscription_lock(sid, customer))

    def record(self, sid: str, outcome: dict) -> None:
        """Append one outcome to the delivery log."""
        fields = {k: "" if v is None else str(v) for k, v in outcome.items()}
        self.redis.xadd(self.keys.subscription_log(sid), fields, maxlen=LOG_CAP, approximate=True)

    def blocked(self, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those (subscription, customer) pairs with undelivered events queued: one pipeline."""
        ordered = sorted(pairs)
        if not ordered:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for sid, customer in ordered:
            pipe.hexists(self.keys.subscription_blocked(sid), customer)
        return {pair for pair, yes in zip(ordered, pipe.execute(), strict=True) if yes}

    def record_many(self, outcomes: list[tuple[str, dict[str, str]]]) -> None:
        """Append (subscription id, outcome fields) to the delivery logs: one pipeline."""
        if not outcomes:
            return
        pipe = self.redis.pipeline(transaction=False)
        for sid, fields in outcomes:
            pipe.xadd(self.keys.subscription_log(sid), fields, maxlen=LOG_CAP, approximate=True)
        pipe.execute()

    # -- the admin API's reads and operations ------------------------------------------------
    def log(self, subscription_id: str, limit: int = 100, before: str | None = None) -> list[dict]:
        """The delivery log, newest first (``before``: an entry id to page from)."""
        top = f"({before}" if before else "+"
        rows = self.redis.xrevrange(self.keys.subscription_log(subscription_id), top, "-", limit)
        out = []
        for entry_id, f in rows:
            out.append(
                {
                    "id": entry_id,
                    "webhook_id": f.get("webhook_id", ""),
                    "type": f.get("type", ""),
                    "customer_id": f.get("customer_id") or None,
                    "status": f.get("status", ""),
                    "attempts": int(f.get("attempts") or 0),
                    "http_status": int(f["http_status"]) if f.get("http_status") else None,
                    "error": f.get("error") or None,
                    "at": float(f.get("at") or 0),
                }
            )
        return out

    def dead_letters(self, subscription_id: str, limit: int = 100) -> list[dict]:
        raws = self.redis.lrange(self.keys.subscription_dead(subscription_id), 0, limit - 1)
        return [_public(json.loads(r)) for r in raws]

    def redeliver(self, subscription_id: str, webhook_ids: list[str] | None) -> int:
        """Put dead letters (all, or those named) back at the end of their customer's queue,
        due now; the number put back."""
        dead_key = self.keys.subscription_dead(subscription_id)
        wanted = set(webhook_ids) if webhook_ids is not None else None
        count = 0
        for raw in self.redis.lrange(dead_key, 0, -1):
            item = json.loads(raw)
            if wanted is not None and item.get("webhook_id") not in wanted:
                continue
            item.update(attempts=0, first_attempt_at=None, last_error=None, died_at=None)
            self.queue(subscription_id, item["customer"], item, self.clock())
            self.redis.lrem(dead_key, 1, raw)
            count += 1
        return count

    def pending(self, subscription_id: str) -> dict:
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.hlen(k.subscription_blocked(subscription_id))
        pipe.zrange(k.subscription_retry(subscription_id), 0, 0, withscores=True)
        pipe.llen(k.subscription_dead(subscription_id))
        blocked, first, dead = pipe.execute()
        return {
            "customers_waiting": int(blocked),
            "next_attempt_at": float(first[0][1]) if first else None,
            "dead_letters": int(dead),
        }

    def purge(self, subscription_id: str) -> None:
        """Delete every key of the subscription's delivery state."""
        k = self.keys
        customers = self.redis.hkeys(k.subscription_blocked(subscription_id))
        names = [k.subscription_queue(subscription_id, c) for c in customers]
        names += [k.subscription_lock(subscription_id, c) for c in customers]
        names += [
            k.subscription_blocked(subscription_id),
            k.subscription_retry(subscription_id),
            k.subscription_dead(subscription_id),
            k.subscription_log(subscription_id),
            k.subscription_queued(subscription_id),
        ]
        for i in range(0, len(names), 500):
            self.redis.delete(*names[i : i + 500])  # one slot: {s:SID}


def _public(item: dict) -> dict:
    """A dead letter as the admin API shows it (the entry's fields without its data)."""
    entry = item.get("entry") or {}
    return {
        "webhook_id": item.get("webhook_id"),
        "type": entry.get("type"),
        "customer_id": entry.get("customer_id") or None,
        "attempts": item.get("attempts", 0),
        "last_error": item.get("last_error"),
        "first_attempt_at": item.get("first_attempt_at"),
        "died_at": item.get("died_at"),
    }
