"""Profiles in Redis: create, read, merge-patch with optimistic concurrency, erase, export,
look-up by identity, and identify (upsert by any known identity, merging when needed).

The hash layout and the compare-and-set write are in ``profiles/profile_hash.py``
(:class:`ProfileStore` is a :class:`~profiles.profile_hash.ProfileHashes`); merges are
``profiles/merge.py`` and identify ``profiles/identify.py``, which this module builds on. Claims
made by a write that then fails are not released (a concurrent writer of the same profile may be
relying on them); they are pending for the grace period and then stale, and are repaired on read.

An id that was merged away is an alias: :meth:`ProfileStore.resolve` follows it to the target
and every read or write of it acts on the target (erase too: the alias and its target are one
person).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from core.errors import Conflict, InvalidInput
from core.outbox import EMIT_LUA, SCRUB_MENTIONS_LUA
from profiles import document
from profiles.errors import ProfileNotFound
from profiles.identify import identify as identify_profile
from profiles.identity_index import Identity
from profiles.keys import Keys
from profiles.merge import Merges
from profiles.profile_hash import MAX_ALIAS_HOPS, Profile, ProfileHashes, Stored, dumps
from profiles.traits import traits_from

# Profile and Stored live in profiles/profile_hash.py; code outside profiles/ imports them here.
__all__ = ["Profile", "ProfileStore", "Reads", "Stored"]

# Reads queued beside a profile's own (``ProfileStore.get(..., extra=...)``):
# ``reads(pipe, customer_id)`` queues plain commands for the customer (keys in its slot, or
# global keys: the pipeline is not a transaction) and returns the function that turns their
# replies, in order, into a value.
Reads = Callable[[Any, str], Callable[[list[Any]], Any]]

# KEYS: one customer's keys to delete, then its outbox stream and its outbox ids; ARGV:
# ``Outbox.args`` (the ``profile.erased`` event, with ids only, or none). One slot, one script:
# the customer's earlier change events leave the outbox (they hold personal data), the keys go
# and the erasure event is appended, all at once.
_ERASE = (
    EMIT_LUA
    + """
local scrubbed = rapport_scrub(KEYS[#KEYS - 1], KEYS[#KEYS])
if #KEYS > 2 then redis.call('DEL', unpack(KEYS, 1, #KEYS - 2)) end
rapport_emit(KEYS[#KEYS - 1], nil, 1)
return scrubbed
"""
)


class ProfileStore(ProfileHashes):
    """The system of record for profiles; ``activity`` is a ``profiles.activity.ActivityStore``
    (or None, when only profile fields are needed, e.g. in unit tests)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        clock: Callable[[], float] = time.time,
        activity: Any = None,
        *,
        identity_grace: float = 60.0,
    ):
        super().__init__(client, keys, clock, activity, identity_grace=identity_grace)
        self.merges = Merges(self)
        self._erase = client.register_script(_ERASE)
        self._scrub_mentions = client.register_script(SCRUB_MENTIONS_LUA)

    # -- public ------------------------------------------------------------------------------
    def resolve_many(self, customer_ids: list[str]) -> dict[str, str | None]:
        """:meth:`resolve` for many ids: ``{id: live id, or None for no such profile}``.

        One round trip for all (a pipeline of the first hop's HMGET per distinct id, not a
        transaction, so Cluster-safe); only the ids that are merge aliases then follow their
        hops through :meth:`resolve` one by one (aliases are rare in bulk feeds)."""
        out: dict[str, str | None] = dict.fromkeys(customer_ids)
        ids = [cid for cid in out if document.is_customer_id(cid)]  # others cannot be anybody
        if not ids:
            return out
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hmget(self.keys.profile(cid), ["merged_into", "version"])
        for cid, (merged_into, version) in zip(ids, pipe.execute(), strict=True):
            if merged_into:
                try:
                    out[cid] = self.resolve(cid)
                except ProfileNotFound:
                    pass
            elif version is not None:
                out[cid] = cid
        return out

    def create(self, data: Mapping[str, Any], *, customer_id: str | None = None) -> Profile:
        """Create a profile from an input document (``document.PROFILE_INPUT_FIELDS``).

        ``customer_id``: for imports that bring their own ids; otherwise one is generated."""
        now = self.clock()
        changes = document.normalise_changes(data, now=now)
        if customer_id is not None and not document.is_customer_id(customer_id):
            raise InvalidInput("ids are 1 to 64 of [A-Za-z0-9_.-]", field="id")
        cid = customer_id or document.new_customer_id()
        doc = document.new_document(cid, changes, now)
        claimed: list[Identity] = []
        try:
            for identity in document.identities_of(doc):
                self._claim_all(cid, [identity])
                claimed.append(identity)
            created = [("profile.created", {"profile": document.public_document(doc)})]
            if self.write(cid, None, {"doc": dumps(doc)}, events=created) < 0:
                raise Conflict(f"a profile with id {cid} exists", field="id")
        except Conflict:
            # a new id: nobody else can rely on these claims, so give them back at once
            for identity in claimed:
                self.identities.release(identity, cid)
            raise
        except redis.RedisError:
            # Redis failed mid-way (503 to the caller, who retries): give the claims back too,
            # unless the profile was written after all (the reply was lost), so the retry is
            # not refused for the claim grace period
            self._release_unwritten(cid, claimed)
            raise
        # a new profile has no activity: its traits are the zeroed ones identify answers with
        return Profile(cid, 1, doc, cid, traits_from([{}, [], 0], now))

    def _release_unwritten(self, cid: str, claimed: list[Identity]) -> None:
        try:
            if self.redis.hexists(self.keys.profile(cid), "doc"):
                return  # our write landed (or the id is taken): leave the claims alone
            for identity in claimed:
                self.identities.release(identity, cid)
        except redis.RedisError:
            pass  # still failing: the claims stay pending and turn stale after the grace

    def get(
        self, customer_id: str, *, with_traits: bool = True, extra: Sequence[Reads] = ()
    ) -> Profile:
        """Read a profile (an alias answers with its target) with computed traits.

        One round trip: the profile hash, the traits and the ``extra`` reads (their values in
        ``Profile.extra``, in order) of the requested id go in one pipeline; only when that
        hash is a merge alias is the alias followed (:meth:`resolve`) and the target read the
        same way (again if the target was merged away in between)."""
        if not document.is_customer_id(customer_id):  # cannot be anybody (nor a key name)
            raise ProfileNotFound(f"no profile {customer_id}")
        read_traits = with_traits and self.activity is not None
        reads = [self.activity.queue_traits] if read_traits else []
        reads += extra
        target = customer_id
        for _ in range(MAX_ALIAS_HOPS):
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(self.keys.profile(target))
            queued = []
            for queue in reads:
                start = len(pipe)
                parse = queue(pipe, target)
                queued.append((start, len(pipe), parse))
            replies = pipe.execute()
            stored = Stored(target, replies[0])
            if stored.merged_into:
                target = self.resolve(stored.merged_into)
                continue
            doc = stored.doc
            if doc is None or "version" not in stored.fields:
                raise ProfileNotFound(f"no profile {customer_id}")
            values = [parse(replies[start:end]) for start, end, parse in queued]
            traits = values.pop(0) if read_traits else {}
            return Profile(target, stored.version, doc, customer_id, traits, values)
        raise ProfileNotFound(f"no profile {customer_id}")

    def patch(
        self,
        customer_id: str,
        data: Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Profile:
        """Merge-patch (see ``document.apply_changes``); ``expected_version`` is If-Match."""
        target = self.resolve(customer_id)

        def mutate(doc: dict[str, Any], _stored: Stored) -> dict[str, Any]:
            now = self.clock()
            changes = document.normalise_changes(data, now=now, country=doc.get("country"))
            return document.apply_changes(doc, changes, now)

        profile = self.update(target, mutate, expected_version=expected_version)
        profile.requested_id = customer_id
        return profile

    def lookup(self, kind: str, value: str) -> Profile:
        """The profile owning a normalised identity (kind ``email``/``phone``/``ext:<system>``)."""
        owner = self.identities.owner((kind, value))
        if owner is None:
            raise ProfileNotFound(f"no profile with {kind} {value}")
        return self.get(owner)

    def lookup_input(self, field_name: str, raw: str) -> Profile:
        """Look-up from user input: ``email``, ``phone`` (E.164 or +…) or ``external_id``."""
        if field_name == "email":
            return self.lookup("email", document.normalise_email(raw))
        if field_name == "phone":
            return self.lookup("phone", document.normalise_phone(raw))
        if field_name == "external_id":
            ext = document.normalise_external_id(raw, "external_id")
            return self.lookup(*document.external_identity(ext))
        raise InvalidInput(f"cannot look up by {field_name}", field=field_name)

    def identify(
        self,
        identities: Mapping[str, Any],
        attributes: Mapping[str, Any] | None = None,
        *,
        actor: str,
    ) -> tuple[Profile, dict[str, Any]]:
        """Upsert by any known identity (create / attach / merge into the oldest); see
        :func:`profiles.identify.identify`."""
        return identify_profile(self, identities, attributes, actor=actor)

    def erase(self, customer_id: str) -> dict[str, Any]:
        """Erase a customer everywhere (GDPR): every key in ``Keys.customer_keys`` of the profile
        and of every alias merged into it, its identity claims, and the personal data in merge
        records (they keep id, time, actor and status; the erased ids become ``"erased"``)."""
        target = self.resolve(customer_id)
        stored = self.load(target)
        erased = self.merges.aliases_of(target)
        erased.insert(0, target)
        partners = self._merge_partners(erased)
        records = self.merges.scrub(erased)
        identities = document.identities_of(stored.doc or {})
        deleted: list[str] = []
        for cid in erased:
            names = self.keys.customer_keys(cid)
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.exists(name)
            present = [n for n, e in zip(names, pipe.execute(), strict=True) if e]
            events = []
            if cid == target:  # one event for the erasure, with the target's delete
                data = {"customer_id": target, "erased_ids": erased}
                events.append(self.outbox.event("profile.erased", target, data))
            index = self.keys.outbox_ids(cid)
            stream, args = self.outbox.args(names[0], events)
            self._erase(keys=[*(n for n in present if n != index), stream, index], args=args)
            deleted += present
        self._scrub_partner_events(partners, erased, stored.doc or {})
        self._note_erased(erased)
        released: list[str] = []
        for identity in identities:
            if any(self.identities.release(identity, cid) for cid in erased):
                released.append(document.identity_key(identity))
        return {
            "customer_id": target,
            "requested_id": customer_id,
            "erased_ids": erased,
            "keys_deleted": deleted,
            "keys_deleted_count": len(deleted),
            "identities_released": released,
            "merge_records_scrubbed": records,
        }

    ERASED_KEPT_S = 400 * 86400  # longer than any model is served without a retrain

    def _note_erased(self, erased: list[str]) -> None:
        """Remember digests of the erased ids (never the ids: nothing of an erased person is
        left in Redis outside the audit log) for a while."""
        now = self.clock()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.keys.erased_ids(), {_erased_digest(cid): now for cid in erased})
        pipe.zremrangebyscore(self.keys.erased_ids(), "-inf", now - self.ERASED_KEPT_S)
        pipe.execute()

    def was_erased(self, customer_id: str) -> bool:
        """Whether this id was erased (and has no profile since): see ``Keys.erased_ids``."""
        return self.redis.zscore(self.keys.erased_ids(), _erased_digest(customer_id)) is not None

    def _merge_partners(self, erased: list[str]) -> list[str]:
        """Live profiles that took part in a merge with one of ``erased`` (their outbox events
        may hold the erased person's data)."""
        out: list[str] = []
        for cid in erased:
            for record in self.merges.history(cid):
                for side in ("source_id", "target_id"):
                    other = record.get(side)
                    if isinstance(other, str) and other not in erased and other not in out:
                        out.append(other)
        return out

    def _scrub_partner_events(self, partners: list[str], erased: list[str], doc: dict) -> None:
        """Delete the partners' outbox events that mention the erased ids, identities or names."""
        if not partners:
            return
        needles = [*erased, *(value for _, value in document.identities_of(doc))]
        needles += [doc[n] for n in ("first_name", "last_name") if isinstance(doc.get(n), str)]
        needles = [n for n in needles if len(n) >= 3]
        for cid in partners:
            stream = self.outbox.stream_for(self.keys.profile(cid))
            self._scrub_mentions(keys=[stream, self.keys.outbox_ids(cid)], args=needles)

    def export(self, customer_id: str) -> dict[str, Any]:
        """Everything held about a customer, as one JSON-able document."""
        profile = self.get(customer_id)
        target = profile.id
        activity = self.activity.snapshot(target) if self.activity else {}
        ids = [target, *self.merges.aliases_of(target)]
        history: list[dict[str, Any]] = []
        for cid in ids:
            for record in self.merges.history(cid):
                if record["id"] not in {r["id"] for r in history}:
                    history.append(record)
        return {
            "customer_id": target,
            "exported_at": self.clock(),
            "profile": profile.public(),
            "activity": activity,
            "merged_ids": ids[1:],
            "merges": history,
        }


def _erased_digest(customer_id: str) -> str:
    """SHA-256 (first 128 bits, hex) of an erased customer id, as ``Keys.erased_ids`` holds it."""
    return hashlib.sha256(customer_id.encode()).hexdigest()[:32]
