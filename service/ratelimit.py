"""Per-key rate limits on ``/v1``: every window of a key checked in one Redis round trip.

The limits are written in flask-limiter's notation (``60000 per minute; 2000 per second``),
parsed by ``limits`` (flask-limiter's own parser). Each window is a fixed-window counter in the
app's Redis, one key per caller and window, all of a caller's windows under one hash tag
(``<prefix>:ratelimit:{key:<id>}:2000/1second``) so they share a Cluster slot and one Lua
script counts them all. Every request of a caller counts, refused ones included.

Why not flask-limiter itself (used before): it spends two round trips per window on every
request (the hit, then ``GET`` + ``TTL`` for the ``X-RateLimit-*`` headers), four with the
default two windows: half of the eight round trips of a profile read (``docs/benchmarks.md``).
This is one script call for all windows, the headers computed from its reply.

A caller that is over a window is refused by the worker that saw it without asking Redis again
until that window ends (a small per-process table), so a flood from one caller past its limit
costs no Redis work at all. Redis unreachable: requests are served (and their routes answer
503 if they need Redis) rather than blocked by the limiter.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from limits import RateLimitItem, parse_many

log = logging.getLogger("rapport.ratelimit")

# KEYS[i]: the counter of window i; ARGV[i]: its length in seconds.
# Returns {count_1, ttl_1, count_2, ttl_2, ...} after counting this request in every window.
_HIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  local ttl = -1
  if n > 1 then ttl = redis.call('TTL', key) end
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


class LimitSyntaxError(ValueError):
    pass


def parse_limits(text: str) -> list[RateLimitItem]:
    """``"60000 per minute; 2000 per second"`` → the windows; ``""``/``off`` → none."""
    text = text.strip()
    if not text or text.lower() == "off":
        return []
    try:
        return parse_many(text)
    except ValueError as exc:
        raise LimitSyntaxError(f"cannot read {text!r} as rate limits: {exc}") from None


@dataclass(frozen=True)
class Verdict:
    """The outcome for one request: allowed or not, and the values of the response headers
    (``limit``/``remaining``/``reset`` of the tightest window; ``retry_after`` in seconds)."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # epoch seconds when the tightest window ends
    retry_after: int
    description: str

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


class RateLimiter:
    """Fixed-window limits per caller (an API key id, or a client address without one)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        limits: list[RateLimitItem],
        clock=time.time,
    ):
        self.limits = limits
        self.prefix = prefix
        self.clock = clock
        self._hit = client.register_script(_HIT)
        self._seconds = [str(item.get_expiry()) for item in limits]
        self._blocked: dict[str, Verdict] = {}
        self._lock = threading.Lock()

    def keys(self, caller: str) -> list[str]:
        tag = "{" + caller.replace("{", "(").replace("}", ")") + "}"
        return [f"{self.prefix}:{tag}:{item.amount}/{item.get_expiry()}s" for item in self.limits]

    def hit(self, caller: str) -> Verdict | None:
        """Count one request of ``caller``; None when Redis could not be asked."""
        now = self.clock()
        blocked = self._blocked.get(caller)
        if blocked is not None:
            if now < blocked.reset:
                return Verdict(
                    False,
                    blocked.limit,
                    0,
                    blocked.reset,
                    max(1, int(blocked.reset - now + 0.999)),
                    blocked.description,
                )
            with self._lock:
                self._blocked.pop(caller, None)
        try:
            reply = self._hit(keys=self.keys(caller), args=self._seconds)
        except redis.RedisError as exc:
            log.warning("rate limit not checked: %s", exc.__class__.__name__)
            return None
        verdict = self._verdict(reply, now)
        if not verdict.allowed:
            with self._lock:
                if len(self._blocked) >= _BLOCKED_MAX:
                    self._blocked.clear()
                self._blocked[caller] = verdict
        return verdict

    def _verdict(self, reply: list, now: float) -> Verdict:
        tightest = None
        over = None
        for i, item in enumerate(self.limits):
            count, ttl = int(reply[2 * i]), max(1, int(reply[2 * i + 1]))
            remaining = max(0, item.amount - count)
            entry = (remaining, -ttl, item, ttl)
            if tightest is None or entry[:2] < tightest[:2]:
                tightest = entry
            if count > item.amount and (over is None or ttl > over[3]):
                over = entry
        remaining, _, item, ttl = over or tightest
        return Verdict(
            allowed=over is None,
            limit=item.amount,
            remaining=remaining,
            reset=int(now) + ttl,
            retry_after=ttl,
            description=str(item),
        )
