"""Which profile owns an identity (email, phone, ``ext:<system>`` id): the identity index.

Layout and rules
----------------
* One claim key per normalised identity, ``Keys.identity_owner(kind, value)``, in the identity's
  own hash slot (``{i:KIND:VALUE}``); its value is ``"<customer id>|<claimed at, epoch s>"``.
* **The profile's identity list is the source of truth.** A claim only says where to look. To
  attach an identity a writer first *claims* it (``SET NX``, or a compare-and-set replacing a
  stale claim), then writes the profile in the customer's slot (a Lua compare-and-set on the
  profile version). To detach, it writes the profile first and then releases the claim
  (compare-and-delete on the owner). Each step touches one slot, so **no cross-slot
  transaction is ever needed** and it all runs unchanged on Redis Cluster.
* A crash between the two steps leaves a claim whose owner does not list the identity. Every
  read verifies: :meth:`IdentityIndex.owner` follows the claim, follows ``merged_into`` aliases
  (a merged-away profile answers with its target), and checks that the profile it lands on
  lists the identity. If not, the claim is **stale** and is repaired on the spot: re-pointed at
  the merge target that lists it, or deleted. A claim younger than ``grace`` seconds (default
  60) whose owner does not list it yet is *pending* (a writer between its two steps): it is not
  found by look-ups and cannot be taken over, and it becomes stale when the grace period ends.
  A claim whose owner is frozen by an unfinished merge is also pending.
* Moving an identity (merge, unmerge) is a compare-and-set of the owner from one profile to
  the other, done after the receiving profile lists it and before the giving one drops it, so
  the claim always points at a profile that lists the identity.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import cast

import redis
from redis.cluster import ClusterPipeline

from profiles.document import identities_of
from profiles.keys import Keys

Identity = tuple[str, str]

# KEYS[1] claim; ARGV[1] owner id to match ('' = key must be absent); ARGV[2] new value.
_TRANSFER = """
local v = redis.call('GET', KEYS[1])
if v then
  local sep = string.find(v, '|', 1, true)
  local owner = sep and string.sub(v, 1, sep - 1) or v
  if ARGV[1] == '' or owner ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] claim; ARGV[1] the exact value expected; ARGV[2] replacement ('' = delete).
_REPLACE_EXACT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
"""
# KEYS[1] claim; ARGV[1] owner id: delete only when that profile owns it.
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local sep = string.find(v, '|', 1, true)
local owner = sep and string.sub(v, 1, sep - 1) or v
if owner ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

_MAX_HOPS = 16


class IdentityIndex:
    """Claims of identities by profiles; see the module docstring for the protocol."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        clock: Callable[[], float] = time.time,
        *,
        grace: float = 60.0,
    ):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self.grace = grace
        self._transfer = client.register_script(_TRANSFER)
        self._replace = client.register_script(_REPLACE_EXACT)
        self._release = client.register_script(_RELEASE)

    # -- reading -------------------------------------------------------------------------------
    def claim_key(self, identity: Identity) -> str:
        return self.keys.identity_owner(*identity)

    def raw_owner(self, identity: Identity) -> str | None:
        """The customer id the claim names, unverified (None when unclaimed)."""
        raw = self._get(self.claim_key(identity))
        return _parse(raw)[0] if raw else None

    def owner(self, identity: Identity) -> str | None:
        """The live profile that owns ``identity`` (a merge target, never an alias), or None.

        Verifies the claim against the profile and repairs a stale claim (see module doc)."""
        status, owner = self._verify(identity)
        return owner if status == "owned" else None

    def owners(self, identities: Iterable[Identity]) -> dict[Identity, str | None]:
        """:meth:`owner` of many identities in two round trips: the claims (one MGET; a
        pipeline on a Cluster, where they sit in many slots), then their holders' profiles (a
        pipeline). A claim whose holder is live and lists the identity is owned; any other
        claim (an alias, stale or pending) takes :meth:`owner`, which also repairs it."""
        wanted = list(dict.fromkeys(identities))
        if not wanted:
            return {}
        claims = [self.claim_key(identity) for identity in wanted]
        pipe = self.redis.pipeline(transaction=False)
        if isinstance(pipe, ClusterPipeline):
            for key in claims:
                pipe.get(key)
            raws = pipe.execute()
        else:
            raws = self.redis.mget(claims)
        # the client decodes responses (service.redis_connect builds it so): str values
        holders = {
            x: _parse(cast("str", raw))[0] for x, raw in zip(wanted, raws, strict=True) if raw
        }
        distinct = sorted(set(holders.values()))
        pipe = self.redis.pipeline(transaction=False)
        for cid in distinct:
            pipe.hmget(self.keys.profile(cid), ["doc", "merged_into"])
        listed: dict[str, list[Identity]] = {}
        for cid, (doc, merged_into) in zip(distinct, pipe.execute(), strict=True):
            if doc and not merged_into:
                listed[cid] = identities_of(json.loads(doc))
        out: dict[Identity, str | None] = {}
        for identity in wanted:
            holder = holders.get(identity)
            if holder is None:
                out[identity] = None
            elif identity in listed.get(holder, ()):
                out[identity] = holder
            else:
                out[identity] = self.owner(identity)
        return out

    # -- writing -------------------------------------------------------------------------------
    def claim(self, identity: Identity, customer_id: str) -> str | None:
        """Claim ``identity`` for ``customer_id`` (step one of attaching it).

        Returns None when the claim is ours now (or already was), else the id of the profile
        that holds it (live or pending). A stale claim is taken over with a compare-and-set."""
        key = self.claim_key(identity)
        value = self._value(customer_id)
        for _ in range(5):
            if self.redis.set(key, value, nx=True):
                return None
            raw = self._get(key)
            if raw is None:
                continue
            holder = _parse(raw)[0]
            if holder == customer_id:
                return None
            status, owner = self._verify(identity, raw=raw, repair=False)
            if status == "owned" and owner == customer_id:
                # the holder is an alias merged into us: re-point the claim at us
                self._replace(keys=[key], args=[raw, value])
                return None
            if status in ("owned", "pending"):
                return owner
            if self._replace(keys=[key], args=[raw, value]):
                return None
        return self.raw_owner(identity)

    def release(self, identity: Identity, customer_id: str) -> bool:
        """Delete the claim if ``customer_id`` holds it (after the profile stopped listing it)."""
        return bool(self._release(keys=[self.claim_key(identity)], args=[customer_id]))

    def transfer(self, identity: Identity, from_id: str, to_id: str) -> bool:
        """Re-point a claim from ``from_id`` to ``to_id`` (also when it is missing); False when a
        third profile holds it. Idempotent: already pointing at ``to_id`` counts as done."""
        key = self.claim_key(identity)
        if self.raw_owner(identity) == to_id:
            return True
        if self._transfer(keys=[key], args=[from_id, self._value(to_id)]):
            return True
        if self.redis.set(key, self._value(to_id), nx=True):
            return True
        return self.raw_owner(identity) == to_id

    # -- internals -----------------------------------------------------------------------------
    def _get(self, key: str) -> str | None:
        """A claim's value; the client decodes responses (``decode_responses=True``, as
        ``service.redis_connect`` builds it), so it is a ``str``, not redis-py's ``bytes | str``."""
        return cast("str | None", self.redis.get(key))

    def _value(self, customer_id: str) -> str:
        return f"{customer_id}|{self.clock():.3f}"

    def _read_profile(self, customer_id: str) -> tuple[dict | None, dict]:
        fields = self.redis.hmget(
            self.keys.profile(customer_id), ["doc", "merged_into", "merge_id", "merging"]
        )
        doc = json.loads(fields[0]) if fields[0] else None
        return doc, {"merged_into": fields[1], "merge_id": fields[2], "merging": fields[3]}

    def _verify(
        self, identity: Identity, *, raw: str | None = None, repair: bool = True
    ) -> tuple[str, str | None]:
        """("owned", id) | ("pending", holder) | ("stale", None) | ("free", None)."""
        key = self.claim_key(identity)
        if raw is None:
            raw = self._get(key)
        if raw is None:
            return "free", None
        holder, claimed_at = _parse(raw)
        current = holder
        in_merge = False
        for _ in range(_MAX_HOPS):
            doc, meta = self._read_profile(current)
            if meta["merged_into"]:
                current = meta["merged_into"]
                continue
            if meta["merging"]:
                in_merge = True
            if doc is not None and identity in identities_of(doc):
                if repair and current != holder:
                    self._replace(keys=[key], args=[raw, self._value(current)])
                return "owned", current
            break
        if in_merge or self.clock() - claimed_at < self.grace:
            return "pending", holder
        if repair:
            self._replace(keys=[key], args=[raw, ""])
        return "stale", None


def _parse(raw: str) -> tuple[str, float]:
    owner, _, stamp = raw.partition("|")
    try:
        return owner, float(stamp)
    except ValueError:
        return owner, 0.0
