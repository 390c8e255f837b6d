"""flask-limiter's storage over the app's Redis client, at one round trip per request, and a
per-process block of callers that are over their limit.

flask-limiter with ``limits``' own Redis storage spends two round trips per window on every
request: the hit (one script), then ``GET`` + ``TTL`` for the ``X-RateLimit-*`` headers; four
with the default two windows, half the Redis work of a profile read (``docs/benchmarks.md``).
:class:`AppRedisStorage` keeps flask-limiter (notation, fixed windows, headers, exemptions) and
changes only how the counters are reached:

- **one script for every window**: the counters of one caller are
  ``LIMITER/<caller>/<scope>/<amount>/<multiples>/<granularity>``; the first ``incr`` of a
  request counts the request in all the configured windows of that caller and scope at once
  (flask-limiter is set to evaluate every window, so it would hit them all anyway) and keeps
  each window's count and time-to-live for the rest of the request;
- **headers from that reply**: ``get``/``get_expiry`` of a counter counted in this request
  answer from it, with no round trip.

On a Redis Cluster the counters of one caller share a hash tag (the limits' key function,
``service/hardening.py`` ``_caller``, puts the caller in braces), so the one script touches
one slot.

:class:`Blocklist`: a caller refused with 429 is remembered by the worker until the window
that refused it ends, by its credential (:func:`credential`: a digest of its bearer token, or
its address when it sends none); its next requests are refused in the WSGI layer before Flask,
flask-limiter, the route or Redis see them (``service/hardening.py`` ``RefuseBlockedCallers``),
so a flood past the limit costs a fraction of a request's CPU and no Redis work (those
refusals are not counted: the caller is already over the window).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from limits.storage import RedisStorage, Storage

# KEYS[i]: a window's counter; ARGV[i]: its length in seconds; ARGV[#KEYS + 1]: the cost.
# Returns {count_1, ttl_1, count_2, ttl_2, ...} after adding the cost to every window.
_INCR_ALL = """
local amount = tonumber(ARGV[#KEYS + 1])
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCRBY', key, amount)
  local ttl = -1
  if n ~= amount then ttl = redis.call('TTL', key) end
  if ttl < 0 then
    ttl = tonumber(ARGV[i])
    redis.call('EXPIRE', key, ttl)
  end
  out[#out + 1] = n
  out[#out + 1] = ttl
end
return out
"""

_BLOCKED_MAX = 10_000  # callers remembered as over their limit, per process


class AppRedisStorage(RedisStorage):
    """``limits``' Redis storage over the app's own client (one server, Sentinel or the lazily
    built Cluster client alike; nothing connects at start-up), counting every window of a
    caller in one script call (see the module doc). ``windows``: the configured limits as
    ``(amount, multiples, granularity name, seconds)``; ``request_cache``: a callable giving a
    dict that lives as long as the current request (None outside one)."""

    STORAGE_SCHEME = ["rapport+app"]

    def __init__(
        self,
        uri: str,
        key_prefix: str = RedisStorage.PREFIX,
        wrap_exceptions: bool = False,
        *,
        client: Any,
        windows: list[tuple[int, int, str, int]],
        request_cache: Any,
        **options: Any,
    ) -> None:
        self.key_prefix = key_prefix
        self.target_server = "redis"
        self.dependency = self.dependencies["redis"].module
        self.storage = client
        self.initialize_storage(uri)  # register_script only: no round trip
        Storage.__init__(self, uri, wrap_exceptions, **options)
        # "<amount>/<multiples>/<granularity>", the tail of a window's counter, with its length
        self.windows = [(f"{a}/{m}/{g}", seconds) for a, m, g, seconds in windows]
        self._tails = {tail for tail, _ in self.windows}
        self.request_cache = request_cache
        self._incr_all = client.register_script(_INCR_ALL)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        cache = self.request_cache()
        if cache is not None and key in cache:
            return cache[key][0]  # counted with its siblings by this request's first incr
        siblings = self._siblings(key)
        if cache is None or siblings is None:
            return super().incr(key, expiry, amount)
        names, seconds = zip(*siblings, strict=True)
        reply = self._incr_all(
            keys=[self.prefixed_key(name) for name in names], args=[*seconds, amount]
        )
        now = time.time()
        for i, name in enumerate(names):
            cache[name] = (int(reply[2 * i]), now + max(0, int(reply[2 * i + 1])))
        return cache[key][0]

    def get(self, key: str) -> int:
        cache = self.request_cache()
        if cache is not None and key in cache:
            return cache[key][0]
        return super().get(key)

    def get_expiry(self, key: str) -> float:
        cache = self.request_cache()
        if cache is not None and key in cache:
            return cache[key][1]
        return super().get_expiry(key)

    def _siblings(self, key: str) -> list[tuple[str, int]] | None:
        """The counters of every configured window of ``key``'s caller and scope, with their
        lengths; None when ``key`` is not one of them (a limit set elsewhere)."""
        parts = key.rsplit("/", 3)
        if len(parts) != 4 or "/".join(parts[1:]) not in self._tails:
            return None
        return [(f"{parts[0]}/{tail}", seconds) for tail, seconds in self.windows]


def window_end(counts: dict[str, tuple[int, float]], item: Any) -> float:
    """When the window of ``item`` (a ``limits`` item) ends for this request's caller: from
    the counts :class:`AppRedisStorage` kept for the request (``request_cache``), else a full
    window from now."""
    tail = f"/{item.amount}/{item.multiples}/{item.GRANULARITY.name}"
    ends = [expires for key, (_, expires) in counts.items() if key.endswith(tail)]
    return ends[0] if ends else time.time() + item.get_expiry()


def credential(environ: dict[str, Any]) -> str:
    """What a request is known by before any parsing: a digest of its bearer token (valid or
    not; the token itself is never kept), else its client address."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        return "t:" + hashlib.sha256(token.encode()).hexdigest()
    return "a:" + (environ.get("REMOTE_ADDR") or "-")


class Blocklist:
    """Callers refused with 429, until the window that refused them ends (per process)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._until: dict[str, tuple[float, int, str]] = {}
        self._lock = threading.Lock()

    def block(self, caller: str, until: float, limit: int, description: str) -> None:
        with self._lock:
            if len(self._until) >= _BLOCKED_MAX:
                self._until.clear()
            self._until[caller] = (until, limit, description)

    def check(self, caller: str) -> tuple[float, int, str] | None:
        """``(until, limit amount, description)`` while ``caller`` is blocked, else None."""
        entry = self._until.get(caller)
        if entry is None:
            return None
        if self.clock() < entry[0]:
            return entry
        with self._lock:
            self._until.pop(caller, None)
        return None
