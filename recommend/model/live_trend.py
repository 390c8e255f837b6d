"""Live purchase counters: what customers bought since the model was trained, for the trend
term of ``discover`` and the popular lists (``recommend.model.recommender``).

Writing (``profiles/activity_lua.py``, the purchase script): a new purchase adds 1 per distinct
product of the order to the hash ``Keys.trend_counts(tag, day)``, field ``p|<product>`` and,
when the customer's profile has a country, ``<country>|<product>``; ``day`` is the purchase's
UTC day (days since the epoch), the hash expires 40 days after its last write. This happens in
the same script as the purchase, so a counted purchase is a stored purchase and a replay counts
nothing. A script may only touch keys of one Redis Cluster slot, so the counters are sharded
like the outbox (``core/outbox.py``): the customer's slot ``s`` writes shard ``s mod N`` (N =
16384 on a Cluster, so the shard is the customer's slot; 16 on one server), whose tag
``slot_tag(shard)`` hashes to that slot. Counters are aggregates (no customer id), so erasure
leaves them, as it leaves the action statistics.

Reading (:class:`LiveCounts`): the sum over every shard of the days asked for, one pipeline
(grouped per node on a Cluster: 16384 ``HGETALL`` per day, most of them on empty keys), cached
per day: a day before yesterday (by the clock asked for) is read once per ``PAST_TTL_S``,
yesterday and today once per ``ttl`` seconds (default 5). Purchases recorded with an old
timestamp land in an old day's bucket and are seen within ``PAST_TTL_S``.

How serving combines them with the artifact (:func:`window_counts`): the artifact's trend is
``log1p(buyers in the 7 days before the data end)``; at ``now``, the trend counts are the
artifact's buyers times the share of today's 7-day window that lies before the data end's UTC
day, plus the live counts of the days from the data end's day to now in the window. The day of
the data end is counted live (a purchase recorded after training lands there), so a few
purchases of that day may count in both. A week after training the term is entirely live.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from core.keys import SharedKeys
from core.outbox import CLUSTER_SLOTS, SINGLE_SERVER_SHARDS, is_cluster, slot_tag
from recommend.model.records import DAY

RETENTION_DAYS = 35  # the counters' days a reader looks at (TREND_TTL_S in profiles/activity.py)
PAST_TTL_S = 600.0
GLOBAL = "p"  # the field prefix of the all-countries counts


def day_of(epoch_s: float) -> int:
    """UTC day number (days since the epoch) of an epoch second."""
    return int(epoch_s // DAY)


class LiveCounts:
    """Reads the sharded per-day purchase counters; thread-safe. ``generation`` moves whenever
    a day's counts changed, so callers can cache what they derive from them."""

    def __init__(
        self,
        client: Any,
        keys: SharedKeys,
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.redis = client
        self.keys = keys
        self.ttl = ttl
        self.clock = clock
        shards = CLUSTER_SLOTS if is_cluster(client) else SINGLE_SERVER_SHARDS
        self.tags = [slot_tag(k) for k in range(shards)]
        self._days: dict[int, tuple[float, dict[str, Counter[str]]]] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def days(self, first: int, last: int, today: int) -> dict[int, dict[str, Counter[str]]]:
        """Day -> {``p`` or country -> Counter(product -> orders)} for ``first..last``
        (inclusive); ``today`` is the reader's current day (its and yesterday's counts are
        re-read every ``ttl`` seconds, older ones every ``PAST_TTL_S``)."""
        now = self.clock()
        wanted = list(range(max(first, last - RETENTION_DAYS), last + 1))
        with self._lock:
            stale = [
                d
                for d in wanted
                if d not in self._days
                or now - self._days[d][0] >= (self.ttl if d >= today - 1 else PAST_TTL_S)
            ]
        fresh = self._read(stale) if stale else {}
        with self._lock:
            for d, counts in fresh.items():
                old = self._days.get(d)
                if old is None or old[1] != counts:
                    self.generation += 1
                self._days[d] = (now, counts)
            for d in [d for d in self._days if d < today - RETENTION_DAYS - 1]:
                del self._days[d]
            return {d: self._days[d][1] for d in wanted if d in self._days}

    def _read(self, days: Iterable[int]) -> dict[int, dict[str, Counter[str]]]:
        days = list(days)
        pipe = self.redis.pipeline(transaction=False)
        for d in days:
            for tag in self.tags:
                pipe.hgetall(self.keys.trend_counts(tag, d))
        replies = iter(pipe.execute())
        out: dict[int, dict[str, Counter[str]]] = {}
        for d in days:
            counts: dict[str, Counter[str]] = {}
            for _ in self.tags:
                for field, value in (next(replies) or {}).items():
                    scope, _, pid = field.partition("|")
                    counts.setdefault(scope, Counter())[pid] += int(value)
            out[d] = counts
        return out


def live_window(now: float, data_until: float | None, window_days: float) -> tuple[int, int]:
    """``(first, today)``: the days of the ``window_days`` before ``now`` that the live counts
    cover (the artifact's frozen counts cover those before its data end's day)."""
    first = day_of(now - window_days * DAY)
    cut = day_of(data_until) if data_until is not None else first
    return max(first, cut), day_of(now)


def window_counts(
    live: LiveCounts,
    item_index: dict[str, int],
    n_items: int,
    *,
    now: float,
    data_until: float | None,
    frozen: np.ndarray | None,
    window_days: float,
    scope: str = GLOBAL,
) -> np.ndarray:
    """(n_items,) float64 buyers in the ``window_days`` before ``now``: the artifact's
    ``frozen`` window counts (buyers, not log1p) for the part of the window before the data
    end's day, the live counts for the rest (see module)."""
    today = day_of(now)
    first = day_of(now - window_days * DAY)
    cut = day_of(data_until) if data_until is not None else first
    out = np.zeros(n_items, dtype=np.float64)
    if frozen is not None:
        share = (cut * DAY - (now - window_days * DAY)) / (window_days * DAY)
        out += np.asarray(frozen, dtype=np.float64)[:n_items] * min(max(share, 0.0), 1.0)
    live_first, _ = live_window(now, data_until, window_days)
    for counts in live.days(live_first, today, today).values():
        _add(out, counts.get(scope), item_index)
    return out


def since_counts(
    live: LiveCounts,
    item_index: dict[str, int],
    n_items: int,
    *,
    now: float,
    data_until: float | None,
    scopes: list[str],
) -> np.ndarray:
    """(len(scopes), n_items) live orders per product from the data end's day to ``now`` (at
    most ``RETENTION_DAYS``), one row per scope (``p`` or a country)."""
    today = day_of(now)
    cut = day_of(data_until) if data_until is not None else today
    out = np.zeros((len(scopes), n_items), dtype=np.float64)
    for counts in live.days(cut, today, today).values():
        for row, scope in enumerate(scopes):
            _add(out[row], counts.get(scope), item_index)
    return out


def _add(out: np.ndarray, counts: Counter[str] | None, item_index: dict[str, int]) -> None:
    if not counts:
        return
    for pid, n in counts.items():
        i = item_index.get(pid)
        if i is not None and i < len(out):
            out[i] += n
