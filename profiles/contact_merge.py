"""A customer's contact history on merge and unmerge (the steps ``profiles/merge.py`` calls).

The contact history is the keys of ``profiles/contact_log.py``: feedback records, the last
feedback per action (cooldowns), the offers made (daily contact budget), the products offered
(resting) and the actions shown within the feedback window (impressions, a key that expires).
On a merge it moves from the source to the target the way activity does:

* ``contacts`` - a **snapshot** of the source's contact keys, and the target's values for the
  same feedback ids / actions / members before the merge, both kept in the merge record
  (``source_contacts``, ``target_contacts_before``); read in pages of :data:`PAGE`.
* ``contacts_absorb`` - the target takes the snapshot in: feedback records are a union (an id
  present on both keeps the target's record), per action the newer last feedback (``at``)
  wins, offers made are a union, per offered product and per action shown the newer time
  wins (the target's impressions then live at least as long as the source's had left).
* ``contacts_drain`` - the snapshot is taken off the source (what it received since stays).

Unmerge (one step, ``contacts``) takes off the target exactly what the snapshot added and puts
back the target's earlier value where the merge overwrote one - unless the target's value
changed since the merge (then it is the target's own and stays) - and writes the snapshot back
to the source. Every call is one Lua script over one customer's keys (one Cluster slot), at
most :data:`PAGE` entries per call; the source and the target are in different slots, so the
reads of one and the writes of the other are separate calls. Every step is idempotent: a merge
or unmerge stopped half-way is finished by running the step again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from profiles.keys import Keys

PAGE = 200  # entries per Redis call (feedback records are not capped)
KINDS = ("f", "s", "c", "o", "i")  # feedback, action state, offers, offered products, impressions

Snapshot = dict[str, dict[str, Any]]
Step = Callable[[dict[str, Any], str], None]

# KEYS: feedback hash, action state hash, contacts zset, offered products zset, impressions
# zset (one customer). ARGV[1]: a snapshot page {"f": {id: raw}, "s": {action: raw},
# "c": {m: t}, "o": {m: t}, "i": {action: t}}; ARGV[2]: ms the impressions have left to live
# (impressions are skipped when 0; the key lives at least that long after).
_ABSORB_LUA = """
local d = cjson.decode(ARGV[1])
local function at(raw)
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' then return tonumber(v['at']) or 0 end
  return 0
end
for id, raw in pairs(d['f']) do redis.call('HSETNX', KEYS[1], id, raw) end
for action, raw in pairs(d['s']) do
  local cur = redis.call('HGET', KEYS[2], action)
  if (not cur) or at(cur) < at(raw) then redis.call('HSET', KEYS[2], action, raw) end
end
for m, t in pairs(d['c']) do redis.call('ZADD', KEYS[3], 'GT', t, m) end
for m, t in pairs(d['o']) do redis.call('ZADD', KEYS[4], 'GT', t, m) end
local ttl = tonumber(ARGV[2])
if ttl > 0 and next(d['i']) then
  for m, t in pairs(d['i']) do redis.call('ZADD', KEYS[5], 'GT', t, m) end
  if redis.call('PTTL', KEYS[5]) < ttl then redis.call('PEXPIRE', KEYS[5], ttl) end
end
return 1
"""

# Same KEYS; ARGV[1]: a snapshot page, ARGV[2]: the customer's earlier values of that page
# ({} to drop without restoring). An entry is taken off (or set back to its earlier value) only
# while it still holds the snapshot's value.
_TAKE_BACK_LUA = """
local d = cjson.decode(ARGV[1])
local before = cjson.decode(ARGV[2])
local function hash(key, part, prev)
  for f, raw in pairs(part) do
    if redis.call('HGET', key, f) == raw then
      if prev[f] then redis.call('HSET', key, f, prev[f]) else redis.call('HDEL', key, f) end
    end
  end
end
local function zset(key, part, prev)
  for m, t in pairs(part) do
    local cur = redis.call('ZSCORE', key, m)
    if cur and tonumber(cur) == t then
      if prev[m] then redis.call('ZADD', key, prev[m], m) else redis.call('ZREM', key, m) end
    end
  end
end
hash(KEYS[1], d['f'], before['f'] or {})
hash(KEYS[2], d['s'], before['s'] or {})
zset(KEYS[3], d['c'], before['c'] or {})
zset(KEYS[4], d['o'], before['o'] or {})
zset(KEYS[5], d['i'], before['i'] or {})
return 1
"""


class ContactMerge:
    """Snapshot, absorb and take back a customer's contact history (see the module doc)."""

    def __init__(self, client: Any, keys: Keys):
        self.redis = client
        self.keys = keys
        self._absorb = client.register_script(_ABSORB_LUA)
        self._take_back = client.register_script(_TAKE_BACK_LUA)

    def _keys(self, cid: str) -> list[str]:
        k = self.keys
        return [
            k.action_feedback(cid),
            k.action_state(cid),
            k.contacts(cid),
            k.offered_products(cid),
            k.impressions(cid),
        ]

    # -- reads ---------------------------------------------------------------------------------
    def snapshot(self, cid: str) -> Snapshot:
        """The customer's contact keys, read :data:`PAGE` entries per call (``x``: when the
        impressions expire, epoch ms)."""
        feedback, state, contacts, offered, shown = self._keys(cid)
        ttl = int(self.redis.pttl(shown))
        return {
            "f": dict(self.redis.hscan_iter(feedback, count=PAGE)),
            "s": dict(self.redis.hscan_iter(state, count=PAGE)),
            "c": dict(self.redis.zscan_iter(contacts, count=PAGE)),
            "o": dict(self.redis.zscan_iter(offered, count=PAGE)),
            "i": dict(self.redis.zscan_iter(shown, count=PAGE)) if ttl > 0 else {},
            "x": {"impressions_expire_ms": int(time.time() * 1000) + ttl if ttl > 0 else 0},
        }

    def values_of(self, cid: str, snap: Snapshot) -> Snapshot:
        """What ``cid`` holds for the feedback ids, actions and members named in ``snap``."""
        out: Snapshot = {kind: {} for kind in KINDS}
        for kind, key in zip(KINDS, self._keys(cid), strict=True):
            names = list(snap.get(kind) or {})
            for start in range(0, len(names), PAGE):
                page = names[start : start + PAGE]
                got = self.redis.hmget(key, page) if kind in "fs" else self.redis.zmscore(key, page)
                out[kind].update((n, v) for n, v in zip(page, got, strict=True) if v is not None)
        return out

    # -- writes --------------------------------------------------------------------------------
    def absorb(self, cid: str, snap: Snapshot) -> None:
        """Merge ``snap`` into ``cid``'s contact history (union; newer wins; idempotent)."""
        expires = int((snap.get("x") or {}).get("impressions_expire_ms") or 0)
        ttl = max(0, expires - int(time.time() * 1000))
        for page in pages(snap):
            self._absorb(keys=self._keys(cid), args=[json.dumps(page), str(ttl)])

    def take_back(self, cid: str, snap: Snapshot, before: Snapshot | None = None) -> None:
        """Take ``snap`` off ``cid`` where it still holds the snapshot's value, putting back
        ``before`` (its values before ``snap`` was absorbed) where there was one."""
        prior = before or {}
        for page in pages(snap):
            earlier = {k: {n: prior[k][n] for n in page[k] if n in prior.get(k, {})} for k in KINDS}
            self._take_back(keys=self._keys(cid), args=[json.dumps(page), json.dumps(earlier)])

    # -- the steps of a merge and of an unmerge ------------------------------------------------
    def merge_steps(self, record: dict[str, Any], step: Step) -> None:
        """The merge's contact steps (after the source became an alias: nothing new is written
        to it by id any more)."""
        sid, tid, done = record["source_id"], record["target_id"], record["steps"]
        if "contacts" not in done:
            snap = self.snapshot(sid)
            record["source_contacts"] = snap
            record["target_contacts_before"] = self.values_of(tid, snap)
            step(record, "contacts")
        snap = record["source_contacts"]
        if "contacts_absorb" not in done:
            self.absorb(tid, snap)
            step(record, "contacts_absorb")
        if "contacts_drain" not in done:
            self.take_back(sid, snap)
            labels = ("feedback", "actions", "offers", "offered_products", "shown")
            names = dict(zip(KINDS, labels, strict=True))
            record["moved"]["contacts"] = {names[k]: len(snap.get(k) or {}) for k in KINDS}
            step(record, "contacts_drain")

    def unmerge_steps(self, record: dict[str, Any], step: Step) -> None:
        """Give the source its contact history back (a merge made before these steps existed
        recorded none: nothing to do)."""
        snap = record.get("source_contacts")
        if snap is None or "contacts" in record["unmerge_steps"]:
            return
        self.take_back(record["target_id"], snap, record.get("target_contacts_before"))
        self.absorb(record["source_id"], snap)
        step(record, "contacts")


def pages(snap: Snapshot) -> Iterator[Snapshot]:
    """``snap`` in pages of at most :data:`PAGE` entries (at least one page)."""
    page: Snapshot = {kind: {} for kind in KINDS}
    size = 0
    for kind in KINDS:
        for name, value in (snap.get(kind) or {}).items():
            if size == PAGE:
                yield page
                page, size = {k: {} for k in KINDS}, 0
            page[kind][name] = value
            size += 1
    yield page


def merge_steps(client: Any, keys: Keys, record: dict[str, Any], step: Step) -> None:
    """:meth:`ContactMerge.merge_steps` (the one line ``profiles/merge.py`` calls)."""
    ContactMerge(client, keys).merge_steps(record, step)


def unmerge_steps(client: Any, keys: Keys, record: dict[str, Any], step: Step) -> None:
    """:meth:`ContactMerge.unmerge_steps` (the one line ``profiles/merge.py`` calls)."""
    ContactMerge(client, keys).unmerge_steps(record, step)
