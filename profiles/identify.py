"""Identify: upsert a customer by whatever a support tool knows (email, phone, external ids).

* No identity is known → a new profile (outcome ``created``, 201 over HTTP).
* All known identities belong to one profile → the identities it lacks are attached (as
  secondary ones when it already has a primary) and ``attributes`` are merge-patched in
  (``attached``, or ``matched`` when nothing was new).
* They belong to two or more profiles → those are merged (``profiles/merge.py``) into the
  **oldest** one (earliest ``created_at``, then smallest id), which survives (``merged``).

Concurrent callers are safe: a claim lost to another writer, or a merge another identify is
running, makes it look again after a short back-off (see ``profiles/identity_index.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from core.errors import Conflict, InvalidInput
from profiles import document
from profiles.errors import IdentityTaken, MergeConflict
from profiles.identity_index import Identity, IdentityIndex
from profiles.merge import Merges
from profiles.merge_rules import attach_identity
from profiles.profile_hash import Profile, Stored

Mutate = Callable[[dict[str, Any], Stored], dict[str, Any] | None]


class IdentifyStore(Protocol):
    """What identify uses of a :class:`profiles.store.ProfileStore` (that module builds on this
    one, so the store is described here rather than imported)."""

    clock: Callable[[], float]
    identities: IdentityIndex
    merges: Merges

    def load(self, customer_id: str) -> Stored: ...

    def create(self, data: Mapping[str, Any], *, customer_id: str | None = None) -> Profile: ...

    def update(self, customer_id: str, mutate: Mutate) -> Profile: ...


def identify(
    store: IdentifyStore,
    identities: Mapping[str, Any],
    attributes: Mapping[str, Any] | None = None,
    *,
    actor: str,
) -> tuple[Profile, dict[str, Any]]:
    """Upsert by any known identity.

    ``identities``: ``{"email", "phone", "external_ids"}`` (at least one). No identity known
    → a new profile (outcome ``created``). One profile known → the identities it lacks are
    attached (as secondary ones when it has a primary) and ``attributes`` are merge-patched
    in (``attached``). Identities owned by two or more profiles → they are merged into the
    **oldest** of them (earliest ``created_at``, then smallest id), which survives
    (``merged``). Returns the profile and ``{"outcome", "attached", "merges"}``.
    """
    attributes = dict(attributes or {})
    for name in ("email", "phone", "external_ids"):
        if name in attributes:
            raise InvalidInput("identities go in 'identities'", field=f"attributes.{name}")
    now = store.clock()
    country = attributes.get("country")
    region = document.normalise_country(country, "attributes.country") if country else None
    wanted = identities_from_input(identities, region)
    document.normalise_changes(attributes, now=now)  # validate before any write
    merges: list[dict[str, Any]] = []
    for attempt in range(20):
        if attempt:
            time.sleep(min(0.2, 0.005 * 2**attempt))  # another writer is mid-way: let it finish
        owners = document.unique(o for o in store.identities.owners(wanted).values() if o)
        if not owners:
            data = dict(attributes)
            data.update(as_input(wanted))
            try:
                profile = store.create(data)
            except IdentityTaken:
                continue  # someone claimed one of them just now: look again
            attached: list[str] = [document.identity_key(i) for i in wanted]
            return profile, {"outcome": "created", "attached": attached, "merges": merges}
        survivor = _oldest(store, owners)
        try:
            _merge_into(store, survivor, owners, actor, merges)
        except MergeConflict:
            continue  # a concurrent identify is merging these profiles: look again
        try:
            profile, attached = _attach(store, survivor, attributes, wanted)
        except (IdentityTaken, MergeConflict):
            continue  # a third profile took one of them, or is mid-merge: look again
        outcome = "merged" if merges else ("attached" if attached else "matched")
        return profile, {"outcome": outcome, "attached": attached, "merges": merges}
    raise Conflict("identities keep changing owner; retry")


def _merge_into(
    store: IdentifyStore, survivor: str, owners: list[str], actor: str, merges: list[dict[str, Any]]
) -> None:
    """Merge every other owner into ``survivor``, noting each merge in ``merges`` as it is done
    (a conflict part-way leaves the ones done listed)."""
    for other in owners:
        if other != survivor:
            record = store.merges.merge(other, survivor, actor=actor, reason="identify")
            merges.append({"merge_id": record["id"], "source_id": other, "target_id": survivor})


def _attach(
    store: IdentifyStore, survivor: str, attributes: Mapping[str, Any], wanted: list[Identity]
) -> tuple[Profile, list[str]]:
    """Merge-patch ``attributes`` into the survivor and attach the ``wanted`` identities it
    lacks; the profile and the identities attached (as ``kind:value``)."""
    attached: list[str] = []

    def mutate(doc: dict[str, Any], _stored: Stored) -> dict[str, Any]:
        stamp = store.clock()
        changes = document.normalise_changes(attributes, now=stamp, country=doc.get("country"))
        new = document.apply_changes(doc, changes, stamp)
        attached.clear()
        for identity in wanted:
            if identity in document.identities_of(new):
                continue
            attach_identity(new, identity)
            attached.append(document.identity_key(identity))
        return new

    return store.update(survivor, mutate), attached


def identities_from_input(identities: Mapping[str, Any], region: str | None) -> list[Identity]:
    if not isinstance(identities, Mapping):
        raise InvalidInput("must be an object", field="identities")
    for name in identities:
        if name not in ("email", "phone", "external_ids"):
            raise InvalidInput("unknown identity", field=f"identities.{name}")
    out: list[Identity] = []
    if identities.get("email") is not None:
        out.append(("email", document.normalise_email(identities["email"], "identities.email")))
    if identities.get("phone") is not None:
        phone = document.normalise_phone(identities["phone"], region, "identities.phone")
        out.append(("phone", phone))
    if identities.get("external_ids") is not None:
        exts = document.normalise_external_ids(
            identities["external_ids"], "identities.external_ids"
        )
        out += [document.external_identity(x) for x in exts]
    if not out:
        raise InvalidInput("give at least one identity", field="identities")
    return out


def as_input(identities: list[Identity]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    exts = []
    for kind, value in identities:
        if kind in ("email", "phone"):
            data[kind] = value
        else:
            exts.append(f"{kind[4:]}:{value}")
    if exts:
        data["external_ids"] = exts
    return data


def _oldest(store: IdentifyStore, customer_ids: list[str]) -> str:
    """The survivor of an identify merge: earliest ``created_at``, then smallest id."""

    def age(cid: str) -> tuple[float, str]:
        doc = store.load(cid).doc or {}
        return float(doc.get("created_at", 0.0)), cid

    return min(customer_ids, key=age)
