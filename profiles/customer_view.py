"""What the rest of Rapport reads about one customer: one call, one round trip, plain data.

Greetings, next-best actions, recommendations and training read customers only through this
module (they never name a customer key nor parse a stored order). :meth:`CustomerView.read`
returns a :class:`CustomerRecord`: the profile document, the stored purchases (the
``profiles.activity`` shape: the recent window, the newest ``MAX_ORDERS`` (500) by purchase
time, fewer once they pass ``MAX_WINDOW_BYTES`` (1 MB) of stored orders) and, when asked,
the products offered to the customer since a time (the contact log's resting products).

One read-only Lua script reads the profile hash, the window of orders (``ZREVRANGE`` of the
order times, then ``HMGET`` of those orders) and the offered products: every key carries the
customer's hash tag, so this is one Redis Cluster slot and one round trip, and its work is
bounded by the window's count and size whatever the history size. Only a merge alias (the
profile store resolves it) takes more trips.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from core.errors import NotFound
from profiles.document import is_customer_id
from profiles.keys import Keys
from profiles.profile_hash import Stored
from profiles.store import ProfileStore

MAX_ORDERS = 500  # the recent window: a customer's newest orders read for one request...
MAX_WINDOW_BYTES = 1_000_000  # ...up to about this many bytes of stored orders (the newest always)
_BATCH = 1000  # profiles per pipeline in :meth:`CustomerView.profile_docs`

# The window: the newest ARGV[1] order ids by time, their documents fetched 100 at a time and
# no more once ARGV[2] bytes are in (the newest order always is), so one call's work is bounded
# by size as well as by count whatever the orders hold (issue 18: 500 orders of 600 lines were
# 15 MB and 59 ms of Redis). Expects ``orders_key`` and ``times_key`` to be set.
_WINDOW_LUA = """
local ids = redis.call('ZREVRANGE', times_key, 0, tonumber(ARGV[1]) - 1)
local docs, size, budget = {}, 0, tonumber(ARGV[2])
for i = 1, #ids, 100 do
  local chunk = redis.call('HMGET', orders_key, unpack(ids, i, math.min(i + 99, #ids)))
  for j = 1, #chunk do
    docs[#docs + 1] = chunk[j]
    if chunk[j] then size = size + #chunk[j] end
    if size >= budget then return docs end
  end
end
return docs
"""
# KEYS: profile hash, orders hash, order times zset, [offered products zset];
# ARGV: MAX_ORDERS, MAX_WINDOW_BYTES, [offered since]. Returns {profile fields, offered ids,
# the window's order JSONs, newest first}. Read-only.
_READ = (
    """
local profile = redis.call('HGETALL', KEYS[1])
local offered = {}
if KEYS[4] then offered = redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[3], '+inf') end
local orders_key, times_key = KEYS[2], KEYS[3]
local function window()"""
    + _WINDOW_LUA
    + """end
return {profile, offered, window()}
"""
)
# KEYS: orders hash, order times zset; ARGV: MAX_ORDERS, MAX_WINDOW_BYTES. The window's order
# JSONs. Read-only.
_WINDOW = "local orders_key, times_key = KEYS[1], KEYS[2]\n" + _WINDOW_LUA


@dataclass(frozen=True)
class CustomerRecord:
    """One customer as stored. ``customer_id`` is the id the data belongs to (a merge alias
    resolves to its target; None for an id that cannot name anybody); ``profile`` is None
    without a profile; ``offered`` is None when it was not asked for."""

    customer_id: str | None
    profile: dict[str, Any] | None = None
    purchases: list[dict[str, Any]] = field(default_factory=list)
    offered: set[str] | None = None


class CustomerView:
    """Read-only access to a customer's profile, purchases and offered products."""

    def __init__(self, client: redis.Redis, keys: Keys, profiles: ProfileStore | None = None):
        self.redis = client
        self.keys = keys
        self.profiles = profiles or ProfileStore(client, keys)
        self._script = client.register_script(_READ)
        self._window = client.register_script(_WINDOW)

    def read(self, customer_id: str, *, offered_since: float | None = None) -> CustomerRecord:
        """The customer's profile and purchases and, with ``offered_since`` (epoch s), the
        products offered since then. An unknown id gives a record without a profile."""
        if not is_customer_id(customer_id):  # cannot be anybody (and must not reach a key name)
            return CustomerRecord(None, offered=set() if offered_since is not None else None)
        script_keys = [
            self.keys.profile(customer_id),
            self.keys.orders(customer_id),
            self.keys.order_times(customer_id),
        ]
        args: list[Any] = [MAX_ORDERS, MAX_WINDOW_BYTES]
        if offered_since is not None:
            script_keys.append(self.keys.offered_products(customer_id))
            args.append(repr(offered_since))
        flat, offered, orders = self._script(keys=script_keys, args=args)
        stored = Stored(customer_id, dict(zip(flat[::2], flat[1::2], strict=True)))
        if stored.merged_into:
            return self._resolved(customer_id, offered_since)
        return CustomerRecord(
            customer_id,
            stored.doc if stored.exists else None,
            _parsed(orders),
            set(offered) if offered_since is not None else None,
        )

    def _resolved(self, customer_id: str, offered_since: float | None) -> CustomerRecord:
        """The slow path: follow a merge alias through the profile store."""
        doc: dict[str, Any] | None = None
        cid = customer_id
        try:
            profile = self.profiles.get(customer_id, with_traits=False)
            doc, cid = profile.doc, profile.id
        except NotFound:
            pass
        offered = None if offered_since is None else self.offered_since(cid, offered_since)
        return CustomerRecord(cid, doc, self.purchases(cid), offered)

    def purchases(self, customer_id: str) -> list[dict[str, Any]]:
        """The recent window of stored purchases (the newest ``MAX_ORDERS`` by time, newest
        first; one script call); unreadable ones skipped."""
        keys = [self.keys.orders(customer_id), self.keys.order_times(customer_id)]
        # the client decodes responses (decode_responses=True): replies are str
        window = self._window(keys=keys, args=[MAX_ORDERS, MAX_WINDOW_BYTES])
        return _parsed(cast("list[str | None]", window))

    def bought_products(self, customer_id: str) -> list[str]:
        """The products of the recent window (:meth:`purchases`), once each, in no particular
        order (what ``discover`` excludes); one script call, bounded whatever the history."""
        seen: dict[str, None] = {}
        if not is_customer_id(customer_id):
            return []
        for purchase in self.purchases(customer_id):
            for line in purchase.get("lines") or ():
                pid = line.get("product_id") if isinstance(line, dict) else None
                if pid:
                    seen.setdefault(str(pid))
        return list(seen)

    def offered_since(self, customer_id: str, since: float) -> set[str]:
        """Products offered to the customer at or after ``since`` (epoch s)."""
        key = self.keys.offered_products(customer_id)
        return set(cast("list[str]", self.redis.zrangebyscore(key, since, "+inf")))

    def profile_docs(self, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The profile documents of many customers (batch jobs): pipelines of ``HGET doc``.
        Customers without a profile (or with an unreadable one) are left out."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(customer_ids), _BATCH):
            chunk = [c for c in customer_ids[start : start + _BATCH] if is_customer_id(c)]
            pipe = self.redis.pipeline(transaction=False)
            for cid in chunk:
                pipe.hget(self.keys.profile(cid), "doc")
            for cid, raw in zip(chunk, pipe.execute(), strict=True):
                doc = _loaded(raw)
                if isinstance(doc, dict):
                    out[cid] = doc
        return out


def _loaded(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _parsed(raws: Sequence[str | None]) -> list[dict[str, Any]]:
    """Stored purchase JSONs as dicts; one unreadable order must not break a read."""
    return [doc for doc in map(_loaded, raws) if isinstance(doc, dict)]
