"""The delivery worker (``rapport worker``): reads the outbox (``core/outbox.py``) and delivers
each change event to the subscriptions that want it, signed per the Standard Webhooks spec.

* **Sharing the load.** Every outbox shard has the consumer group ``rapport-webhooks``. Shards
  are split into :data:`LEASE_GROUPS` lease groups (``shard % 16``); a worker holds leases
  (``SET NX PX``, renewed every :attr:`Worker.heartbeat_s`) up to its fair share of the live
  workers (heartbeats in ``Keys.outbox_workers``), so one shard is read by one worker at a time
  (a customer's events, all in one shard, go in order) and workers split the groups. Taking a
  group claims what other consumers left pending there (``XAUTOCLAIM``: a killed worker's).
* **Reading.** Writes publish their shard on ``Keys.outbox_wake()``; the worker reads the woken
  shards at once, and sweeps the shards it holds in slices (all 16 every second on one server;
  on a Cluster 256 every 0.1 s of the shards whose stream exists, found by a ``SCAN`` every
  minute), so a lost wake-up only delays an event.
* **Delivering.** Per entry, per subscription that accepts it (wants the type, created before
  the change): when the customer has undelivered events for the subscription the entry queues
  behind them (``service/webhooks/queues.py``); else it is POSTed: 2xx delivered, 410 disables
  the subscription, anything else queues it, blocks the customer and schedules a retry with
  exponential backoff and jitter (``min(base * 2^attempts * U(0.5, 1.5), max)``, max
  ``RAPPORT_WEBHOOK_MAX_BACKOFF_SECONDS``, default 30 s) until ``RAPPORT_WEBHOOK_RETRY_SECONDS``
  (24 h) after its first attempt, then it is a dead letter. After :data:`FAILING_STREAK`
  failures in a row a target is *down*: one due customer per round is retried (a probe), and
  its first 2xx makes every waiting customer due at once. A paused subscription's events queue
  (due when it is active again). The entry is acknowledged (``XACK``) and deleted (``XDEL``: it
  may hold personal data) only once every subscription has it delivered or durably queued:
  at-least-once, receivers dedupe by ``webhook-id``.
* **Erasure.** A ``profile.erased`` event first drops the erased customers' waiting events.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import socket
import threading
import time
from typing import Any

import redis

from core.keys import SharedKeys
from core.outbox import Outbox, slot_of
from service.pii import Masker
from service.webhooks import metrics, payload, signing
from service.webhooks.queues import DeliveryQueues
from service.webhooks.sender import Attempt, Sender
from service.webhooks.subscriptions import Subscription, SubscriptionStore
from service.webhooks.targets import TargetPolicy
from service.webhooks.worker_gauges import Gauges
from service.webhooks.worker_leases import ACQUIRE, GROUP, RELEASE, RENEW, claim_left_pending

log = logging.getLogger("rapport.worker")

LEASE_GROUPS = 16
FAILING_STREAK = 3  # failed attempts in a row after which a subscription's target is "down"
_NO_CUSTOMER = "_"  # the queue of events about no customer (model.activated)


class Worker:
    """One delivery worker; :meth:`run` until ``stop`` is set, or :meth:`step` (tests)."""

    def __init__(
        self,
        client: Any,
        keys: SharedKeys,
        config: Any,
        *,
        worker_id: str | None = None,
        clock: Any = time.time,
        backoff_base_s: float = 1.0,
        lease_ms: int = 15_000,
        sweep_s: float | None = None,
        masker: Masker | None = None,
    ):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self.id = worker_id or f"{socket.gethostname()}-{secrets.token_hex(3)}"
        self.outbox = Outbox.for_client(client, keys)
        self.store = SubscriptionStore(client, keys, clock)
        self.queues = DeliveryQueues(client, keys, clock)
        self.sender = Sender(TargetPolicy.from_config(config), config.webhook_timeout)
        self.retry_seconds = config.webhook_retry_seconds
        self.max_backoff_s = config.webhook_max_backoff_seconds
        self.backoff_base_s = backoff_base_s
        self.lease_ms = lease_ms
        self.heartbeat_s = lease_ms / 3000
        cluster = self.outbox.shards > 1024
        self.sweep_s = sweep_s if sweep_s is not None else (0.1 if cluster else 1.0)
        self.sweep_batch = 256 if cluster else self.outbox.shards
        self.gauges = Gauges(client, self.outbox, self.queues, clock=clock,
                             slice_size=1024 if cluster else self.outbox.shards)  # fmt: skip
        self._cursor = 0
        self._existing: set[int] | None = None
        self._existing_at = 0.0
        self.masker = masker
        self.groups: set[int] = set()  # lease groups held
        self._fresh: set[int] = set()  # shards whose own pending entries are still to read
        self._woken: set[int] = set()
        self._last_beat = 0.0
        self._last_sweep = 0.0
        self._subs: list[Subscription] = []
        self._subs_at = 0.0
        self._streak: dict[str, int] = {}  # subscription id -> failed attempts in a row
        self._recovered_at: dict[str, float] = {}
        self._renew = client.register_script(RENEW)
        self._acquire = client.register_script(ACQUIRE)
        self._release = client.register_script(RELEASE)
        self._pubsub: Any = None
        self._logs: list[tuple[str, dict[str, str]]] = []  # outcomes not yet written
        self.delivered = 0  # attempts that got a 2xx (tests, the minute log line)
        self.more_due = False  # the last round left due retries (a full batch was due)

    # -- the loop ----------------------------------------------------------------------------
    def listen(self) -> None:
        """Subscribe to the outbox's wake-ups (:meth:`wait` collects them)."""
        if self._pubsub is None:
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(self.keys.outbox_wake())

    def run(self, stop: threading.Event) -> None:
        self.listen()
        logged = self.clock()
        try:
            while not stop.is_set():
                try:
                    self.step()
                    self.wait(0.0 if self.more_due else 0.05)  # a backlog of retries: go on
                except redis.RedisError as exc:
                    log.warning("redis unavailable (%s); retrying", exc.__class__.__name__)
                    stop.wait(1.0)
                if self.clock() - logged >= 60:
                    logged = self.clock()
                    groups, n = sorted(self.groups), self.delivered
                    log.info("worker %s: groups %s, delivered %d", self.id, groups, n)
        finally:
            self.close()

    def close(self) -> None:
        for group in list(self.groups):
            self._release(keys=[self.keys.outbox_lease(group)], args=[self.id])
        self.groups.clear()
        self.redis.zrem(self.keys.outbox_workers(), self.id)
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
        self.sender.close()

    def step(self) -> int:
        """One round: leases, new entries of the woken (or all held) shards, due retries. The
        number of entries handled."""
        now = self.clock()
        if now - self._last_beat >= self.heartbeat_s:
            self._beat(now)
        shards = self._shards_to_read(now)
        handled = self._read_and_deliver(shards) if shards else 0
        self._retry_due()
        self._flush_logs()
        subs = [s.id for s in self._subscriptions()]
        self.gauges.update(self._held_shards(), self._existing_shards(now), subs)
        return handled

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds`` for wake-ups, collecting the shards they name."""
        message = self._pubsub.get_message(timeout=seconds) if self._pubsub else None
        while message is not None:
            if message.get("type") == "message":
                try:
                    self._woken.add(int(message["data"]))
                except (TypeError, ValueError):
                    pass
            message = self._pubsub.get_message(timeout=0)

    # -- leases ------------------------------------------------------------------------------
    def _beat(self, now: float) -> None:
        self._last_beat = now
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(k.outbox_workers(), {self.id: now})
        pipe.zremrangebyscore(k.outbox_workers(), "-inf", now - self.lease_ms / 1000)
        pipe.zcard(k.outbox_workers())
        live = max(1, int(pipe.execute()[2]))
        for group in list(self.groups):
            if not self._renew(keys=[k.outbox_lease(group)], args=[self.id, self.lease_ms]):
                self.groups.discard(group)  # expired and taken: let it go
        fair = math.ceil(LEASE_GROUPS / live)
        for group in range(LEASE_GROUPS):
            if len(self.groups) >= fair:
                break
            if group not in self.groups and self._acquire(
                keys=[k.outbox_lease(group)], args=[self.id, self.lease_ms]
            ):
                self._take(group)
        while len(self.groups) > fair:
            group = max(self.groups)
            self._release(keys=[k.outbox_lease(group)], args=[self.id])
            self.groups.discard(group)

    def _take(self, group: int) -> None:
        """A newly held group: its shards are read from their pending entries on (after a
        takeover of what other consumers left there, ``claim_left_pending``)."""
        self.groups.add(group)
        shards = range(group, self.outbox.shards, LEASE_GROUPS)
        self._fresh.update(shards)  # the sweep reaches each of them (wake-ups sooner)

    def _held_shards(self) -> list[int]:
        n = self.outbox.shards
        return [s for g in sorted(self.groups) for s in range(g, n, LEASE_GROUPS)]

    def _existing_shards(self, now: float) -> set[int] | None:
        """On a Cluster, the shards whose stream exists (a ``SCAN`` of the outbox keys every
        minute: streams appear with a first write, which also wakes the workers); None on one
        server, where all 16 are swept."""
        if self.outbox.shards <= 1024:
            return None
        if self._existing is None or now - self._existing_at >= 60:
            pattern = self.keys.outbox_stream("*")
            found = self.redis.scan_iter(match=pattern, count=1000, _type="stream")
            self._existing = {slot_of(key) % self.outbox.shards for key in found}
            self._existing_at = now
        return self._existing

    def _shards_to_read(self, now: float) -> list[int]:
        """The woken shards this worker holds, and the next slice of its held shards (a sweep
        of :attr:`sweep_batch` shards per round: all 16 on one server, a slice on a Cluster)."""
        existing = self._existing_shards(now)
        if existing is not None:
            existing.update(self._woken)
        held = [s for s in self._held_shards() if existing is None or s in existing]
        chosen = {s for s in self._woken if s % LEASE_GROUPS in self.groups}
        self._woken.clear()
        if held and now - self._last_sweep >= self.sweep_s:
            self._last_sweep = now
            start = self._cursor % len(held)
            part = held[start : start + self.sweep_batch]
            self._cursor = start + len(part)
            chosen.update(part)
        return sorted(chosen)

    # -- reading and delivering ----------------------------------------------------------------
    def _read_and_deliver(self, shards: list[int]) -> int:
        fresh = [s for s in shards if s in self._fresh]
        if fresh:
            claim_left_pending(self.redis, self.outbox, fresh, self.id)
        pipe = self.redis.pipeline(transaction=False)
        for shard in shards:
            start = "0" if shard in self._fresh else ">"
            pipe.xreadgroup(GROUP, self.id, {self.outbox.stream(shard): start}, count=200)
        replies = pipe.execute(raise_on_error=False)
        handled = 0
        subs = self._subscriptions()
        for shard, reply in zip(shards, replies, strict=True):
            if isinstance(reply, Exception):
                if "NOGROUP" in str(reply):  # a stream that did not exist when we looked
                    self._fresh.add(shard)
                    self._woken.add(shard)
                    continue
                raise reply
            entries = reply[0][1] if reply else []
            if shard in self._fresh and len(entries) < 200:
                self._fresh.discard(shard)  # our own pending ones are done: new ones next
            blocked = self._blocked(subs, entries)  # one round trip for the batch
            for entry_id, fields in entries:
                if fields:  # (an entry deleted after a claim has none: nothing to send)
                    self._fan_out(shard, entry_id, fields, subs, blocked)
                    handled += 1
            self._flush_logs()
            self._ack(shard, [entry_id for entry_id, _ in entries])  # after all are handled
            if len(entries) == 200:
                self._woken.add(shard)  # more are waiting
        return handled

    def _ack(self, shard: int, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        stream = self.outbox.stream(shard)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xack(stream, GROUP, *entry_ids)
        pipe.xdel(stream, *entry_ids)
        pipe.xlen(stream)
        self.gauges.saw(shard, pipe.execute()[2])

    def _blocked(self, subs: list[Subscription], entries: list) -> set[tuple[str, str]]:
        """The (subscription, customer) pairs of this batch with undelivered events queued."""
        customers = {f.get("customer_id") or _NO_CUSTOMER for _, f in entries if f}
        return self.queues.blocked({(s.id, c) for c in customers for s in subs})

    def _flush_logs(self) -> None:
        self.queues.record_many(self._logs)
        self._logs.clear()

    def _subscriptions(self) -> list[Subscription]:
        if self.clock() - self._subs_at > 1.0:
            self._subs = [s for s in self.store.list() if s.status != "disabled"]
            self._subs_at = self.clock()
        return self._subs

    def _fan_out(
        self,
        shard: int,
        entry_id: str,
        fields: dict,
        subs: list[Subscription],
        blocked: set[tuple[str, str]],
    ) -> None:
        kind, at_ms = fields.get("type", ""), int(fields.get("at_ms") or 0)
        customer = fields.get("customer_id") or _NO_CUSTOMER
        webhook_id = payload.message_id(shard, entry_id)
        for sub in subs:
            if not sub.accepts(kind, at_ms):
                continue
            if kind == "profile.erased":
                self._forget_erased(sub, fields)
            item = {"webhook_id": webhook_id, "shard": shard, "entry_id": entry_id,
                    "entry": fields, "customer": customer, "attempts": 0,
                    "first_attempt_at": None, "last_error": None}  # fmt: skip
            if sub.status == "paused":
                self._queue(sub, customer, item, self.clock())
                continue
            if (sub.id, customer) in blocked and self.queues.queue(sub.id, customer, item, None):
                continue  # waits behind the customer's undelivered events
            attempt = self._send(sub, item)
            if attempt.ok:
                continue
            if attempt.status == 410:
                self._gone(sub, item)
                continue
            item["last_error"] = attempt.error or f"HTTP {attempt.status}"
            self._queue(sub, customer, item, self._next_at(item))
            blocked.add((sub.id, customer))  # the batch's later events for them queue behind

    def _queue(self, sub: Subscription, customer: str, item: dict, next_at: float) -> None:
        if self.queues.queue(sub.id, customer, item, next_at) < 0:
            item["died_at"] = self.clock()
            item["last_error"] = "queue full"
            self.queues.dead_letter(sub.id, item)
            self._log(sub, item, "dead", None)
            metrics.dead_letters.inc()

    def _forget_erased(self, sub: Subscription, fields: dict) -> None:
        data = payload.document(fields, include_pii=True)["data"]
        for cid in data.get("erased_ids") or [fields.get("customer_id")]:
            if isinstance(cid, str) and cid:
                self.queues.drop_customer(sub.id, cid)

    def _send(self, sub: Subscription, item: dict) -> Attempt:
        webhook_id, body = payload.body(
            item["entry"], item["shard"], item["entry_id"], sub.include_pii, self.masker
        )
        now = self.clock()
        headers = signing.headers(sub.secret, webhook_id, int(now), body)
        attempt = self.sender.post(sub.url, headers, body)
        item["attempts"] = int(item.get("attempts") or 0) + 1
        if item.get("first_attempt_at") is None:
            item["first_attempt_at"] = now
        result = "delivered" if attempt.ok else "failed"
        metrics.attempts.labels(result=result).inc()
        if attempt.ok:
            self.delivered += 1
            metrics.delivered.inc()
            lag = self.clock() - int(item["entry"].get("at_ms") or 0) / 1000
            metrics.lag.observe(max(0.0, lag))
            if self._streak.pop(sub.id, 0) >= FAILING_STREAK:
                self._recovered(sub)
        else:
            metrics.failures.inc()
            self._streak[sub.id] = self._streak.get(sub.id, 0) + 1
        self._log(sub, item, result, attempt)
        return attempt

    def _recovered(self, sub: Subscription) -> None:
        """The target answered 2xx after :data:`FAILING_STREAK` or more failures in a row (it
        was down): its waiting customers are due now rather than after their backoff. At most
        once per :attr:`max_backoff_s`, so a few customers whose events keep failing while the
        others succeed are not retried more often than the backoff's maximum."""
        now = self.clock()
        if now - self._recovered_at.get(sub.id, float("-inf")) >= self.max_backoff_s:
            self._recovered_at[sub.id] = now
            self.queues.due_now(sub.id)

    def _log(self, sub: Subscription, item: dict, status: str, attempt: Attempt | None) -> None:
        """Buffer one outcome for the delivery log (written per batch, :meth:`_flush_logs`)."""
        outcome = {
            "webhook_id": item["webhook_id"],
            "type": item["entry"].get("type", ""),
            "customer_id": item["entry"].get("customer_id", ""),
            "status": status,
            "attempts": item.get("attempts", 0),
            "http_status": attempt.status if attempt else None,
            "error": (attempt.error if attempt else item.get("last_error")) or "",
            "at": repr(self.clock()),
        }
        self._logs.append((sub.id, {k: "" if v is None else str(v) for k, v in outcome.items()}))

    def _next_at(self, item: dict) -> float:
        """Exponential backoff with jitter, never past ``RAPPORT_WEBHOOK_MAX_BACKOFF_SECONDS``."""
        attempts = int(item.get("attempts") or 1)
        delay = self.backoff_base_s * 2 ** min(attempts - 1, 40) * random.uniform(0.5, 1.5)
        return self.clock() + min(delay, self.max_backoff_s)

    def _gone(self, sub: Subscription, item: dict) -> None:
        log.warning("subscription %s answered 410 Gone: disabled", sub.id)
        self.store.disable(sub.id, "the target answered 410 Gone")
        self._subs_at = 0.0  # re-read at once

    # -- retries -------------------------------------------------------------------------------
    def _retry_due(self) -> None:
        now = self.clock()
        self.more_due = False
        for sub in self._subscriptions():
            if sub.status != "active":
                continue
            # a target that is down gets one probe per round, not one attempt per customer
            down = self._streak.get(sub.id, 0) >= FAILING_STREAK
            due = self.queues.due(sub.id, now, limit=1 if down else 50)
            self.more_due |= len(due) == 50
            for customer in due:
                if not self.queues.lock(sub.id, customer, self.id):
                    continue
                try:
                    self._retry_customer(sub, customer)
                finally:
                    self.queues.unlock(sub.id, customer)

    def _retry_customer(self, sub: Subscription, customer: str) -> None:
        """Deliver the customer's queue from its head while attempts succeed."""
        for _ in range(100):
            item = self.queues.head(sub.id, customer)
            if item is None:
                self.queues.advance(sub.id, customer)  # an empty queue: unblock
                return
            attempt = self._send(sub, item)
            if attempt.ok:
                if not self.queues.advance(sub.id, customer):
                    return
                continue
            if attempt.status == 410:
                self._gone(sub, item)
                return
            item["last_error"] = attempt.error or f"HTTP {attempt.status}"
            first = float(item.get("first_attempt_at") or self.clock())
            if self.clock() - first >= self.retry_seconds:
                item["died_at"] = self.clock()
                self.queues.advance(sub.id, customer, dead=item)
                self._log(sub, item, "dead", attempt)
                metrics.dead_letters.inc()
                continue
            self.queues.retry_later(sub.id, customer, item, self._next_at(item))
            return
