"""The delivery worker's two gauges, kept cheap enough to update every second on a Cluster.

* ``rapport_outbox_pending``: outbox entries not yet handled in the shards this worker holds.
  The worker deletes (``XDEL``) every entry it has handled, so a shard's ``XLEN`` is what waits
  there. The length of a shard the worker has just read comes back with its acknowledgement
  (:meth:`Gauges.saw`, no extra round trip); the others are refreshed in slices of
  :attr:`Gauges.slice_size` per update (on a Cluster only the shards whose stream exists), and
  the gauge is the sum over every held shard of the last length seen.
* ``rapport_webhook_queued{subscription}``: events waiting in each subscription's customer
  queues, from the per-subscription count the queue scripts keep (one ``GET`` each). The count
  is of the whole Redis, so every worker exports the same value (aggregate with ``max``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from core.outbox import Outbox
from service.webhooks import metrics
from service.webhooks.queues import DeliveryQueues


class Gauges:
    """Updates the worker's gauges at most every ``every_s`` seconds (:meth:`update`)."""

    def __init__(
        self,
        client: Any,
        outbox: Outbox,
        queues: DeliveryQueues,
        *,
        slice_size: int,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ):
        self.redis = client
        self.outbox = outbox
        self.queues = queues
        self.slice_size = slice_size
        self.every_s = every_s
        self.clock = clock
        self.lengths: dict[int, int] = {}  # shard -> entries waiting, as last seen
        self._cursor = 0
        self._at = float("-inf")
        self._labelled: set[str] = set()

    def saw(self, shard: int, length: int) -> None:
        """A shard's length as its acknowledgement's pipeline returned it."""
        self.lengths[shard] = int(length)

    def update(self, held: list[int], existing: set[int] | None, sids: list[str]) -> None:
        """Refresh the next slice of ``held`` shards (those in ``existing``, when given) and
        set both gauges; a no-op within ``every_s`` of the last update."""
        now = self.clock()
        if now - self._at < self.every_s:
            return
        self._at = now
        held_set = set(held)
        for shard in [s for s in self.lengths if s not in held_set]:
            del self.lengths[shard]  # no longer ours: another worker counts it
        readable = [s for s in held if existing is None or s in existing]
        if readable:
            start = self._cursor % len(readable)
            part = readable[start : start + self.slice_size]
            self._cursor = start + len(part)
            self._measure(part)
        metrics.outbox_pending.set(sum(self.lengths.values()))
        self._export_queued(sids)

    def _measure(self, shards: Iterable[int]) -> None:
        shards = list(shards)
        pipe = self.redis.pipeline(transaction=False)
        for shard in shards:
            pipe.xlen(self.outbox.stream(shard))
        for shard, length in zip(shards, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(length, int):
                self.lengths[shard] = length

    def _export_queued(self, sids: list[str]) -> None:
        for sid, n in zip(sids, self.queues.queued(sids), strict=True):
            metrics.queued.labels(subscription=sid).set(n)
        for gone in self._labelled - set(sids):
            metrics.queued.remove(gone)
        self._labelled = set(sids)
