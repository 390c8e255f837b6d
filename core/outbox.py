"""The outbox: every accepted change appends a change event to a Redis Stream in the same atomic
step as the write (the same Lua script or MULTI/EXEC), so an event never exists without its
change and a write that fails leaves no event.

Design for Redis Cluster. A script may only touch keys of one slot, so the stream an event goes to
must live in the slot of the keys the change writes. The outbox is split in *shards*: shard ``k``
is the stream ``Keys.outbox_stream(slot_tag(k))``, whose hash tag hashes to slot ``k``. A write
in slot ``s`` appends to shard ``s mod N``:

* on Redis Cluster ``N`` is 16384, so shard ``s`` *is* slot ``s`` and the append is in the slot of
  the write (one customer's events are all in one shard, in the order they were written);
* on one Redis server every key is on the one node, so ``N`` is 16: the shards only spread the
  load over several streams and consumers. (``N`` is fixed, not a setting, so every process that
  writes, whatever it was configured with, appends where the workers read.)

After the append the script publishes the shard number on ``Keys.outbox_wake()`` so delivery
workers read it at once (``service/webhooks/``); a lost wake-up only delays an event until a
worker's periodic sweep, it never loses it. Streams are capped (``MAXLEN ~``, default 100,000
entries per shard); a worker that is down long enough for a shard to roll over loses the
oldest events, which the worker's ``rapport_outbox_trimmed`` metric would show.

Entry fields: ``type`` (one of :data:`EVENT_TYPES`), ``customer_id`` ('' for events that are not
about a customer), ``at_ms`` (when the change was accepted), ``data`` (JSON object), and for
profile changes ``version`` (the profile's new version). The event's webhook id is derived from
the shard and the entry id (``service/webhooks``), so a redelivery carries the same id.
"""

from __future__ import annotations

import binascii
import functools
import itertools
import json
import string
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.keys import SharedKeys

CLUSTER_SLOTS = 16384
SINGLE_SERVER_SHARDS = 16
DEFAULT_MAXLEN = 100_000
# Entry ids kept per customer for erasure (their newest events; older ones have almost always
# left the capped stream already).
INDEX_CAP = 10_000

EVENT_TYPES: tuple[str, ...] = (
    "profile.created",
    "profile.updated",
    "profile.merged",
    "profile.unmerged",
    "profile.erased",
    "identity.added",
    "purchase.recorded",
    "action.feedback",
    "model.activated",
)

# A Lua prelude every emitting script starts with.
# ``rapport_emit(stream, index, first, version)`` appends the events described by ARGV[first ..]
# to ``stream`` (a KEYS entry of the script): wake channel, shard, MAXLEN, count, then per event
# its type, customer id, at ms and data JSON; ``version`` (may be nil) is added to each entry.
# ``index`` (a KEYS entry, or nil for events about no customer) is the customer's zset of their
# entry ids, so that erasing the customer deletes their events from the outbox in the same
# script (``outbox_scrub``). ``rapport_emit_raw(stream, index, first, kind, data)`` appends one
# event whose data the script already holds (a purchase's JSON in its ARGV); ARGV[first ..] is
# then ``Outbox.raw_tail``: wake channel, shard, MAXLEN, at ms, customer id.
EMIT_LUA = r"""
local function rapport_index(index, id, at)
  if index then
    redis.call('ZADD', index, at, id)
    redis.call('ZREMRANGEBYRANK', index, 0, -INDEX_CAP - 1)
  end
end
local function rapport_emit(stream, index, first, version)
  local n = tonumber(ARGV[first + 3])
  if n == nil or n == 0 then return end
  for i = first + 4, first + 3 + 4 * n, 4 do
    local id
    if version then
      id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[first + 2], '*', 'type', ARGV[i],
        'customer_id', ARGV[i + 1], 'at_ms', ARGV[i + 2], 'data', ARGV[i + 3],
        'version', tostring(version))
    else
      id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[first + 2], '*', 'type', ARGV[i],
        'customer_id', ARGV[i + 1], 'at_ms', ARGV[i + 2], 'data', ARGV[i + 3])
    end
    rapport_index(index, id, ARGV[i + 2])
  end
  redis.call('PUBLISH', ARGV[first], ARGV[first + 1])
end
local function rapport_emit_raw(stream, index, first, kind, data)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[first + 2], '*', 'type', kind,
    'customer_id', ARGV[first + 4], 'at_ms', ARGV[first + 3], 'data', data)
  rapport_index(index, id, ARGV[first + 3])
  redis.call('PUBLISH', ARGV[first], ARGV[first + 1])
end
local function rapport_scrub(stream, index)
  local ids = redis.call('ZRANGE', index, 0, -1)
  for i = 1, #ids, 500 do
    redis.call('XDEL', stream, unpack(ids, i, math.min(i + 499, #ids)))
  end
  redis.call('DEL', index)
  return #ids
end
""".replace("INDEX_CAP", str(INDEX_CAP))


# KEYS: a customer's outbox stream and outbox ids; ARGV: strings (another, erased customer's
# ids, identities and names). Deletes this customer's events whose data mentions any of them
# (a merge target's snapshots from while the erased source was merged into it: a later event
# of the target carries its state without them). At most INDEX_CAP entries are looked at.
SCRUB_MENTIONS_LUA = r"""
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
local gone = 0
for _, id in ipairs(ids) do
  local entry = redis.call('XRANGE', KEYS[1], id, id)
  if #entry == 0 then
    redis.call('ZREM', KEYS[2], id)
  else
    local fields = entry[1][2]
    for f = 1, #fields, 2 do
      if fields[f] == 'data' then
        for _, needle in ipairs(ARGV) do
          if string.find(fields[f + 1], needle, 1, true) then
            redis.call('XDEL', KEYS[1], id)
            redis.call('ZREM', KEYS[2], id)
            gone = gone + 1
            break
          end
        end
      end
    end
  end
end
return gone
"""


def slot_of(key: str) -> int:
    """The Redis Cluster slot of ``key`` (CRC16 of its hash tag, as Redis computes it)."""
    raw = key.encode()
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return binascii.crc_hqx(raw, 0) % CLUSTER_SLOTS


@functools.cache
def _slot_tags() -> tuple[str, ...]:
    """For every slot, the shortest lower-case/digit string whose CRC16 lands on it (~60 ms)."""
    table: list[str | None] = [None] * CLUSTER_SLOTS
    left = CLUSTER_SLOTS
    alphabet = string.ascii_lowercase + string.digits
    for size in itertools.count(1):
        for chars in itertools.product(alphabet, repeat=size):
            tag = "".join(chars)
            slot = binascii.crc_hqx(tag.encode(), 0) % CLUSTER_SLOTS
            if table[slot] is None:
                table[slot] = tag
                left -= 1
                if not left:
                    return tuple(t for t in table if t is not None)
    raise AssertionError("unreachable")  # pragma: no cover


def slot_tag(slot: int) -> str:
    """A hash tag whose keys hash to ``slot``."""
    return _slot_tags()[slot]


def is_cluster(client: Any) -> bool:
    """True for a Redis Cluster client (redis-py's ``RedisCluster`` or the service's lazy one)."""
    return type(client).__name__ in {"RedisCluster", "LazyRedisCluster"}


class Outbox:
    """Names the outbox shard of a write and packs its events for :data:`EMIT_LUA`."""

    def __init__(
        self,
        keys: SharedKeys,
        *,
        maxlen: int = DEFAULT_MAXLEN,
        cluster: bool = False,
        clock: Any = time.time,
    ):
        self.keys = keys
        self.shards = CLUSTER_SLOTS if cluster else SINGLE_SERVER_SHARDS
        self.maxlen = maxlen
        self.clock = clock

    @classmethod
    def for_client(cls, client: Any, keys: SharedKeys, **kwargs: Any) -> Outbox:
        return cls(keys, cluster=is_cluster(client), **kwargs)

    def shard_of(self, key: str) -> int:
        return slot_of(key) % self.shards

    def stream(self, shard: int) -> str:
        return self.keys.outbox_stream(slot_tag(shard))

    def streams(self) -> list[str]:
        """Every shard's stream, by shard number."""
        return [self.stream(k) for k in range(self.shards)]

    def stream_for(self, key: str) -> str:
        """The outbox stream a write to ``key`` appends to (same slot)."""
        return self.stream(self.shard_of(key))

    def raw_tail(self, key: str, customer_id: str) -> list[str]:
        """The ARGV tail of ``rapport_emit_raw`` for a write to ``key`` about ``customer_id``."""
        at_ms = str(int(self.clock() * 1000))
        shard = str(self.shard_of(key))
        return [self.keys.outbox_wake(), shard, str(self.maxlen), at_ms, customer_id]

    def event(self, kind: str, customer_id: str, data: Mapping[str, Any]) -> tuple[str, ...]:
        """One event for :meth:`args`: type, customer id, accepted-at ms, data JSON."""
        if kind not in EVENT_TYPES:
            raise ValueError(f"unknown change event type {kind!r}")
        at_ms = str(int(self.clock() * 1000))
        return (kind, customer_id, at_ms, json.dumps(data, separators=(",", ":"), default=str))

    def args(self, key: str, events: Sequence[tuple[str, ...]]) -> tuple[str, list[str]]:
        """For a write to ``key``: the stream (append it to the script's KEYS) and the ARGV tail
        :data:`EMIT_LUA`'s ``rapport_emit`` reads."""
        shard = self.shard_of(key)
        out = [self.keys.outbox_wake(), str(shard), str(self.maxlen), str(len(events))]
        for event in events:
            out += list(event)
        return self.stream(shard), out
