"""Profiles in Redis: create, read, merge-patch with optimistic concurrency, erase, export,
look-up by identity, and identify (upsert by any known identity, merging when needed).

Storage: one hash per customer, ``Keys.profile(id)`` (slot ``{c:ID}``):

============================  ===============================================================
field                         what
============================  ===============================================================
``doc``                       the profile document as JSON (see ``profiles/document.py``)
``version``                   integer, 1 at creation, +1 on every write (the HTTP ``ETag``)
``merging``                   merge id while this profile is frozen as the source of a merge
``merge:<merge id>``          on a merge target: what that merge changed (for ``unmerge``)
``merged_into``, ``merge_id``, ``merged_at``   only on an alias left by a merge (no ``doc``)
============================  ===============================================================

Every write is one Lua compare-and-set on ``version`` (``_WRITE``), so concurrent writers never
lose an update: a writer re-reads and re-applies its change when the version moved under it;
with ``expected_version`` (HTTP ``If-Match``) a moved version is :class:`VersionMismatch`
instead. Identity claims follow the protocol in ``profiles/identity_index.py``: claim, then write
the
profile; write the profile, then release. Claims made by a write that then fails are not
released (a concurrent writer of the same profile may be relying on them); they are pending for
the grace period and then stale, and are repaired on read.

An id that was merged away is an alias: :meth:`ProfileStore.resolve` follows it to the target
and every read or write of it acts on the target (erase too: the alias and its target are one
person).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from core.errors import Conflict, InvalidInput
from profiles import document
from profiles.errors import IdentityTaken, MergeConflict, ProfileNotFound, VersionMismatch
from profiles.identity_index import Identity, IdentityIndex
from profiles.keys import Keys

# KEYS[1] profile hash. ARGV[1] expected version ('' = the hash must not exist); ARGV[2] '1' to
# replace the whole hash; ARGV[3] n, then n field/value pairs to set; the rest: fields to delete.
# Returns the new version, or -1 when the expected version does not match.
_WRITE = """
local cur = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
elseif cur ~= ARGV[1] then
  return -1
end
local nv = (tonumber(cur) or 0) + 1
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
local n = tonumber(ARGV[3])
local args = {'version', tostring(nv)}
for i = 4, 3 + 2 * n do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
for i = 4 + 2 * n, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
return nv
"""

_MAX_ALIAS_HOPS = 16
_MAX_ATTEMPTS = 200

# Reads queued beside a profile's own (``ProfileStore.get(..., extra=...)``):
# ``reads(pipe, customer_id)`` queues plain commands for the customer (keys in its slot, or
# global keys: the pipeline is not a transaction) and returns the function that turns their
# replies, in order, into a value.
Reads = Callable[[Any, str], Callable[[list[Any]], Any]]


@dataclass
class Profile:
    """A profile as read: ``requested_id`` differs from ``id`` when an alias was resolved."""

    id: str
    version: int
    doc: dict[str, Any]
    requested_id: str
    traits: dict[str, Any] = field(default_factory=dict)
    extra: list[Any] = field(default_factory=list)  # the values of ``get(..., extra=...)``

    @property
    def merged_from(self) -> str | None:
        return self.requested_id if self.requested_id != self.id else None

    def public(self) -> dict[str, Any]:
        out = document.public_document(self.doc)
        out["version"] = self.version
        out["traits"] = self.traits
        return out


@dataclass
class Stored:
    """The raw state of one profile hash."""

    customer_id: str
    fields: dict[str, str]

    @property
    def exists(self) -> bool:
        return bool(self.fields)

    @property
    def merged_into(self) -> str | None:
        return self.fields.get("merged_into")

    @property
    def merge_id(self) -> str | None:
        return self.fields.get("merge_id")

    @property
    def merging(self) -> str | None:
        return self.fields.get("merging")

    @property
    def version(self) -> int:
        return int(self.fields.get("version", 0))

    @property
    def doc(self) -> dict[str, Any] | None:
        raw = self.fields.get("doc")
        return json.loads(raw) if raw else None


class ProfileStore:
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
        from profiles.merge import Merges  # here: merge.py builds on this module

        self.redis = client
        self.keys = keys
        self.clock = clock
        self.activity = activity
        self.identities = IdentityIndex(client, keys, clock, grace=identity_grace)
        self.merges = Merges(self)
        self._write_script = client.register_script(_WRITE)

    # -- low level (also used by profiles/merge.py) ----------------------------------------------
    def load(self, customer_id: str) -> Stored:
        fields = self.redis.hgetall(self.keys.profile(customer_id))
        return Stored(customer_id, cast("dict[str, str]", fields))  # the client decodes

    def write(
        self,
        customer_id: str,
        expected_version: int | None,
        fields: Mapping[str, str],
        *,
        replace: bool = False,
        delete: tuple[str, ...] | list[str] = (),
    ) -> int:
        """Compare-and-set one profile hash; the new version, or -1 on a version mismatch.
        ``expected_version`` None: create (the hash must not exist)."""
        args: list[str] = ["" if expected_version is None else str(expected_version)]
        args.append("1" if replace else "0")
        args.append(str(len(fields)))
        for name, value in fields.items():
            args += [name, value]
        args += list(delete)
        return int(self._write_script(keys=[self.keys.profile(customer_id)], args=args))

    def update(
        self,
        customer_id: str,
        mutate: Callable[[dict[str, Any], Stored], dict[str, Any] | None],
        *,
        expected_version: int | None = None,
        extra_fields: Callable[[], Mapping[str, str]] | None = None,
        delete_fields: tuple[str, ...] = (),
        allow_frozen: bool = False,
        claim: bool = True,
    ) -> Profile:
        """Read, ``mutate(doc, stored)`` → new doc (None: nothing to do), claim the identities
        it adds, compare-and-set, release the ones it dropped; retried until no one raced us.
        ``claim=False``: the caller moves the claims itself (merge)."""
        for _ in range(_MAX_ATTEMPTS):
            stored = self.load(customer_id)
            if not stored.exists:
                raise ProfileNotFound(f"no profile {customer_id}")
            if stored.merged_into:
                customer_id = self.resolve(stored.merged_into)
                continue
            if stored.merging and not allow_frozen:
                raise MergeConflict(
                    f"profile {customer_id} is being merged ({stored.merging}); retry shortly",
                    merge_id=stored.merging,
                )
            if expected_version is not None and stored.version != expected_version:
                raise VersionMismatch(
                    f"profile {customer_id} is at version {stored.version}, "
                    f"not {expected_version}; re-read it and retry",
                    current_version=stored.version,
                )
            before = stored.doc or {}
            after = mutate(before, stored)
            if after is None:
                return Profile(customer_id, stored.version, before, customer_id)
            if claim:
                self._claim_all(customer_id, document.added_identities(before, after))
            fields = {"doc": _dumps(after)}
            if extra_fields is not None:
                fields.update(extra_fields())
            version = self.write(customer_id, stored.version, fields, delete=delete_fields)
            if version < 0:
                if expected_version is not None:
                    current = self.load(customer_id).version
                    raise VersionMismatch(
                        f"profile {customer_id} changed while writing (now version {current})",
                        current_version=current,
                    )
                continue
            for identity in document.removed_identities(before, after):
                self.identities.release(identity, customer_id)
            return Profile(customer_id, version, after, customer_id)
        raise Conflict(f"profile {customer_id} is too busy; retry")

    def _claim_all(self, customer_id: str, identities: list[Identity]) -> None:
        for identity in identities:
            owner = self.identities.claim(identity, customer_id)
            if owner is not None:
                kind, value = identity
                raise IdentityTaken(
                    f"{_label(identity)} belongs to another profile",
                    field=document.identity_field(kind),
                    owner_id=owner,
                )

    # -- public ------------------------------------------------------------------------------
    def resolve(self, customer_id: str) -> str:
        """The live profile id for ``customer_id``, following merge aliases."""
        current = customer_id
        for _ in range(_MAX_ALIAS_HOPS):
            if not document.is_customer_id(current):
                break
            fields = cast(  # the client decodes responses (service.redis_connect builds it so)
                "list[str | None]",
                self.redis.hmget(self.keys.profile(current), ["merged_into", "version"]),
            )
            if fields[0]:
                current = fields[0]
                continue
            if fields[1] is None:
                break
            return current
        raise ProfileNotFound(f"no profile {customer_id}")

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
            if self.write(cid, None, {"doc": _dumps(doc)}) < 0:
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
        return Profile(cid, 1, doc, cid)

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
        for _ in range(_MAX_ALIAS_HOPS):
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
        from profiles.identify import identify  # here: identify.py builds on this

        return identify(self, identities, attributes, actor=actor)

    def erase(self, customer_id: str) -> dict[str, Any]:
        """Erase a customer everywhere (GDPR): every key in ``Keys.customer_keys`` of the profile
        and of every alias merged into it, its identity claims, and the personal data in merge
        records (they keep id, time, actor and status; the erased ids become ``"erased"``)."""
        target = self.resolve(customer_id)
        stored = self.load(target)
        erased = self.merges.aliases_of(target)
        erased.insert(0, target)
        records = self.merges.scrub(erased)
        identities = document.identities_of(stored.doc or {})
        deleted: list[str] = []
        for cid in erased:
            names = self.keys.customer_keys(cid)
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.exists(name)
            present = [n for n, e in zip(names, pipe.execute(), strict=True) if e]
            if present:
                self.redis.delete(*present)  # one slot: one atomic DEL
            deleted += present
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


# -- helpers -------------------------------------------------------------------------------------
def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def _label(identity: Identity) -> str:
    kind, value = identity
    if kind.startswith("ext:"):
        return f"external id {kind[4:]}:{value}"
    return f"{kind} {value}"
