"""Per-key rate limits and in-flight bounds: fixed-window counters in the app's Redis, one
script call per request, and per-process blocks and bounds that cost no Redis work.

- **Notation**: ``N per [M] second|minute|hour|day|month|year`` (or ``N/second``), windows
  separated by ``;``, ``,`` or ``|`` (:func:`parse_limits`): the notation flask-limiter took, so
  every ``RAPPORT_RATE_LIMIT`` that worked before still does.
- **One round trip**: :meth:`RateLimiter.count` adds the request to every window of its caller
  in one script call (``EVALSHA``) and returns each window's count and time to live; the
  ``X-RateLimit-*`` headers come from that reply. Every request of a caller counts, refused ones
  included, and a window refuses once its count passes its amount. The counters of one caller
  share a hash tag (``<prefix>:ratelimit:{key:ID}:<amount>/<multiples>/<granularity>``), so on a
  Redis Cluster the one script touches one slot.
- **Across workers** the counters are exact: every worker adds to the same Redis counter, so a
  key gets ``amount`` answers per window whatever the number of workers and instances (the
  windows are fixed: up to twice the amount can pass around a window's boundary, as with
  flask-limiter's fixed windows). The per-process :class:`Blocklist` only saves work for a
  caller already refused.
- :class:`Blocklist`: a caller refused with 429 is remembered by the worker until the window
  that refused it ends, by its credential (:func:`credential`: a digest of its bearer token, or
  its address when it sends none); its next requests are refused in the WSGI layer before Flask
  or Redis see them (``service/hardening.py`` ``RefuseBlockedCallers``).
- :class:`InFlight`: at most ``limit`` requests of one caller at once in this process, so one
  integration cannot hold every thread of a worker (``RAPPORT_KEY_CONCURRENCY``).

Nothing here imports Flask: ``service/config.py`` checks the notation with :func:`parse_limits`.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# KEYS[i]: a window's counter; ARGV[i]: its length in seconds.
# Returns {count_1, ttl_1, count_2, ttl_2, ...} after adding one to every window.
_INCR_ALL = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  local ttl = -1
  if n ~= 1 then ttl = redis.call('TTL', key) end
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
_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 30 * 86400,
    "year": 12 * 30 * 86400,
}
_SEPARATORS = re.compile(r"[,;|]")
_WINDOW = re.compile(
    r"\s*([0-9]+)\s*(?:/|\s*per\s*)\s*([0-9]+)?\s*(second|minute|hour|day|month|year)s?\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Window:
    """``amount`` requests per ``multiples`` ``granularity`` (``seconds`` long)."""

    amount: int
    multiples: int
    granularity: str

    @property
    def seconds(self) -> int:
        return self.multiples * _SECONDS[self.granularity]

    def __str__(self) -> str:
        return f"{self.amount} per {self.multiples} {self.granularity}"


def parse_limits(text: str) -> tuple[Window, ...]:
    """The windows of ``text`` (see the module doc), shortest granularity first (the order
    the headers pick from); raises ``ValueError`` naming what it could not read."""
    windows = []
    for part in _SEPARATORS.split(text):
        match = _WINDOW.fullmatch(part)
        if match is None:
            raise ValueError(f"couldn't parse rate limit string {part.strip()!r}")
        amount, multiples, granularity = match.groups()
        windows.append(Window(int(amount), int(multiples or 1), granularity.lower()))
    return tuple(sorted(windows, key=lambda w: _SECONDS[w.granularity]))


@dataclass(frozen=True)
class Verdict:
    """One request's count: the window its ``X-RateLimit-*`` headers describe (the last one
    refusing it, else the first), whether it refused, and when that window ends (epoch s)."""

    window: Window
    remaining: int
    ends: float
    refused: bool

    @property
    def reset_at(self) -> int:
        return int(self.ends + 1)

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("X-RateLimit-Limit", str(self.window.amount)),
            ("X-RateLimit-Remaining", str(self.remaining)),
            ("X-RateLimit-Reset", str(self.reset_at)),
        ]

    def retry_after(self, now: float) -> str:
        return str(max(1, int(self.reset_at - now)))


class RateLimiter:
    """Fixed-window counters of every configured window, one script call per request."""

    def __init__(self, client: Any, prefix: str, windows: tuple[Window, ...]):
        self.prefix = prefix
        self.windows = windows
        self._args = [w.seconds for w in windows]
        self._tails = [f"{w.amount}/{w.multiples}/{w.granularity}" for w in windows]
        self._script = client.register_script(_INCR_ALL)  # no round trip until the first call

    def count(self, caller: str, now: float) -> Verdict:
        """Count one request of ``caller`` (a hash-tagged name, ``{key:ID}``) in every window;
        raises ``redis.RedisError`` when Redis does not answer."""
        keys = [f"{self.prefix}:{caller}:{tail}" for tail in self._tails]
        reply = self._script(keys=keys, args=self._args)
        chosen, refused = 0, False
        for i, window in enumerate(self.windows):
            if int(reply[2 * i]) > window.amount:
                chosen, refused = i, True  # the last refusing window, as flask-limiter chose
        window = self.windows[chosen]
        used, ttl = int(reply[2 * chosen]), int(reply[2 * chosen + 1])
        return Verdict(window, max(0, window.amount - used), now + max(0, ttl), refused)


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


class InFlight:
    """Requests of each caller being served by this process, at most ``limit`` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, caller: str) -> bool:
        """Take a place for ``caller``; False (and nothing taken) when it holds ``limit``."""
        with self._lock:
            held = self._count.get(caller, 0)
            if held >= self.limit:
                return False
            self._count[caller] = held + 1
            return True

    def leave(self, caller: str) -> None:
        with self._lock:
            held = self._count.get(caller, 0) - 1
            if held > 0:
                self._count[caller] = held
            else:
                self._count.pop(caller, None)

    def held(self, caller: str) -> int:
        return self._count.get(caller, 0)
