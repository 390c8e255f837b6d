"""One profile hash in Redis: its raw state (:class:`Stored`), the profile as read
(:class:`Profile`) and the writes every profile change goes through (:class:`ProfileHashes`).

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
the profile; write the profile, then release.

This module sits below ``profiles/store.py``, ``profiles/merge.py`` and ``profiles/identify.py``:
:class:`profiles.store.ProfileStore` is a :class:`ProfileHashes`, and merges work on this layer
alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from core.errors import Conflict
from core.outbox import EMIT_LUA, Outbox
from profiles import document
from profiles.errors import IdentityTaken, MergeConflict, ProfileNotFound, VersionMismatch
from profiles.identity_index import Identity, IdentityIndex
from profiles.keys import Keys

# KEYS[1] profile hash, KEYS[2] its outbox stream, KEYS[3] the customer's outbox ids
# (core/outbox.py). ARGV[1] expected version ('' = the hash must not exist); ARGV[2] '1' to
# replace the whole hash; ARGV[3] n, then n field/value pairs to set; then m, then m fields to
# delete; then the change events to append (``Outbox.args``), each with the new version.
# Returns the new version, or -1 when the expected version does not match (and then appends
# nothing).
_WRITE = (
    EMIT_LUA
    + """
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
local m = tonumber(ARGV[4 + 2 * n])
for i = 5 + 2 * n, 4 + 2 * n + m do redis.call('HDEL', KEYS[1], ARGV[i]) end
rapport_emit(KEYS[2], KEYS[3], 5 + 2 * n + m, nv)
return nv
"""
)

MAX_ALIAS_HOPS = 16
_MAX_ATTEMPTS = 200


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


class ProfileHashes:
    """Load, resolve and compare-and-set the profile hashes of one Redis; ``activity`` is a
    ``profiles.activity.ActivityStore`` (or None, when only profile fields are needed)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        clock: Callable[[], float] = time.time,
        activity: Any = None,
        *,
        identity_grace: float = 60.0,
    ):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self.activity = activity
        self.identities = IdentityIndex(client, keys, clock, grace=identity_grace)
        self.outbox = Outbox.for_client(client, keys, clock=clock)
        self._write_script = client.register_script(_WRITE)

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
        events: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> int:
        """Compare-and-set one profile hash; the new version, or -1 on a version mismatch.
        ``expected_version`` None: create (the hash must not exist). ``events``: (type, data)
        change events appended to the outbox in the same script when the write succeeds."""
        key = self.keys.profile(customer_id)
        args: list[str] = ["" if expected_version is None else str(expected_version)]
        args.append("1" if replace else "0")
        args.append(str(len(fields)))
        for name, value in fields.items():
            args += [name, value]
        args.append(str(len(delete)))
        args += list(delete)
        stream, tail = self.outbox.args(
            key, [self.outbox.event(kind, customer_id, data) for kind, data in events]
        )
        index = self.keys.outbox_ids(customer_id)
        return int(self._write_script(keys=[key, stream, index], args=args + tail))

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
            fields = {"doc": dumps(after)}
            if extra_fields is not None:
                fields.update(extra_fields())
            version = self.write(
                customer_id,
                stored.version,
                fields,
                delete=delete_fields,
                events=change_events(customer_id, before, after),
            )
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

    def resolve(self, customer_id: str) -> str:
        """The live profile id for ``customer_id``, following merge aliases."""
        current = customer_id
        for _ in range(MAX_ALIAS_HOPS):
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


def change_events(
    customer_id: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """The outbox events of a document change: ``profile.updated`` (the public document) when
    it changed, then one ``identity.added`` per identity it gained."""
    if dict(before) == dict(after):
        return []
    events: list[tuple[str, dict[str, Any]]] = [
        ("profile.updated", {"profile": document.public_document(after)})
    ]
    for kind, value in document.added_identities(before, after):
        name = {"email": "email", "phone": "phone"}.get(kind, "external_id")
        events.append(("identity.added", {"kind": name, "value": _shown(kind, value)}))
    return events


def _shown(kind: str, value: str) -> str:
    """An identity as the API spells it (``shop:42`` for an external id)."""
    return f"{kind[4:]}:{value}" if kind.startswith("ext:") else value


def dumps(value: Any) -> str:
    """Compact JSON with sorted keys: how profile documents and merge records are stored."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _label(identity: Identity) -> str:
    kind, value = identity
    if kind.startswith("ext:"):
        return f"external id {kind[4:]}:{value}"
    return f"{kind} {value}"
