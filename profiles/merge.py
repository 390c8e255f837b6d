"""Merging two profiles of one person, and undoing it.

``merge(source → target)``
    * **Identities** of the source move to the target (its primary email/phone stay primary;
      the source's become secondary).
    * **Activity** moves: ``activity.absorb(target, activity.snapshot(source))``, then
      ``activity.remove(source, snapshot)``; anything the source received meanwhile is moved the
      same way (and recorded as a further snapshot). So does the contact history (contact_merge).
    * **Precedence**: the target wins every conflict. Fields the target lacks (names, locale,
      timezone, country, loyalty tier, ``preferences.categories/channels/language``) are filled
      from the source; ``preferences.custom`` keys the target lacks are added (up to the
      50-key limit). **Consent** is the exception: per purpose the entry with the most recent
      ``at`` wins (a tie keeps the target's), since the latest statement of the customer is the
      one that binds.
    * The source becomes an **alias**: its hash keeps only ``merged_into``/``merge_id``, and every
      read or write of the source id acts on the target.
    * A **record** ``Keys.merge_record(id)`` (JSON) keeps who (``actor``), when, why (``reason``),
      the source as it was (profile and activity snapshots), the target's version before, and
      what moved (``moved``: identities, the list of field changes made on the target with their
      previous values, activity counts). Its id is listed under ``Keys.customer_merges(id)`` of
      both profiles.

``unmerge(merge_id)`` - the rule for writes made after the merge:
    * The **source** is re-created exactly as it was before the merge (same id, same document;
      the version continues), with its pre-merge activity (``activity.remove(target, snap)`` +
      ``activity.absorb(source, snap)`` for each recorded snapshot).
    * The **target** keeps everything written to it after the merge - field changes, new
      identities, purchases and events (also those sent to the source id, which resolved to the
      target) - with two exceptions: identities that came from the source go back to the source,
      and each field the merge filled in or overwrote goes back to its previous value, **unless**
      it was changed after the merge (a later write is the target's own and stays).
    * An identity that came from the source but was removed from the target since is not given
      back (it may belong to someone else now); the record lists it under ``not_restored``.
    * Only a finished merge whose target is still live can be undone: if the target was merged
      into a third profile since, undo that merge first (409). The record stays, with status
      ``unmerged`` and who/when.

Crash safety: a merge or unmerge is a sequence of steps; the record lists the steps done and is
saved after each one. Every step is idempotent (a marker field on the target hash, ``merge:<id>``,
makes the field changes apply once; claims move by compare-and-set; the alias and the restore
are compare-and-set on the version), so :meth:`Merges.resume` (or ``merge`` of the same pair)
re-runs whatever was not finished. Of two concurrent merges of one source, the one that
freezes it first proceeds; the other stops before moving anything (status ``abandoned``).
The activity steps rely on ``absorb``/``remove`` being idempotent for the same snapshot (by
order id and event message id), which ``profiles/activity.py`` guarantees; they run in pages
(``profiles/activity_paged.py``: no Redis call over a few ms whatever the history size). The
alias and the restore write ``profile.merged`` / ``profile.unmerged`` to the outbox.

Known limit: a purchase or event whose request resolved the source id just before the alias
step and is written after the drain stays on the (alias) source's keys: it is invisible while
the merge stands, comes back with the source on unmerge, and is erased with the target.

Merging a profile into itself is invalid input (422); merging an alias, or into an alias, or a
profile that is in another unfinished merge, is a conflict (409) that names the id to use.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

from core.errors import InvalidInput
from profiles import contact_merge, document
from profiles.errors import MergeConflict, MergeNotFound, ProfileNotFound
from profiles.merge_rules import (
    delete_path,
    drop_identities,
    get_path,
    merge_event,
    merged_document,
    set_path,
)
from profiles.profile_hash import ProfileHashes, Stored, dumps

# Who starts an unmerge: ``SET NX`` of a small expiring claim key next to the record (a record
# holds megabytes of snapshot for a big history, too much to compare-and-set in a script).
_UNMERGE_CLAIM_S = 60
# KEYS[1] list; ARGV[1] value: append unless present.
_PUSH_ONCE = """
if redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
"""


class Merges:
    """Merge and unmerge profiles of one :class:`profiles.store.ProfileStore` (which builds
    this object; merges need only its :class:`~profiles.profile_hash.ProfileHashes` part)."""

    def __init__(self, store: ProfileHashes):
        self.store = store
        self.redis = store.redis
        self.keys = store.keys
        self._push_once = self.redis.register_script(_PUSH_ONCE)

    # -- records -------------------------------------------------------------------------------
    def get(self, merge_id: str) -> dict[str, Any]:
        raw = (
            self.redis.get(self.keys.merge_record(merge_id))
            if document.is_merge_id(merge_id)
            else None
        )
        if raw is None:
            raise MergeNotFound(f"no merge {merge_id}")
        return json.loads(raw)

    def history(self, customer_id: str) -> list[dict[str, Any]]:
        """Merge records this customer took part in, oldest first."""
        ids = cast(  # the client decodes responses (service.redis_connect builds it so)
            "list[str]", self.redis.lrange(self.keys.customer_merges(customer_id), 0, -1)
        )
        pipe = self.redis.pipeline(transaction=False)
        for merge_id in ids:
            pipe.get(self.keys.merge_record(merge_id))
        return [json.loads(raw) for raw in pipe.execute() if raw]

    def aliases_of(self, customer_id: str) -> list[str]:
        """Ids merged (directly or through other aliases) into ``customer_id`` and still aliases."""
        out: list[str] = []
        queue = [customer_id]
        while queue:
            current = queue.pop()
            for record in self.history(current):
                source = record.get("source_id")
                if not isinstance(source, str) or record.get("target_id") != current:
                    continue
                if source in out or source == customer_id:
                    continue
                if self.store.load(source).merged_into == current:
                    out.append(source)
                    queue.append(source)
        return out

    def scrub(self, erased_ids: list[str]) -> list[str]:
        """Strip personal data from every merge record naming one of ``erased_ids`` (erasure)."""
        erased = set(erased_ids)
        done: list[str] = []
        for cid in erased_ids:
            for record in self.history(cid):
                if record["id"] in done:
                    continue
                kept = {
                    "id": record["id"],
                    "status": "erased",
                    "at": record.get("at"),
                    "actor": record.get("actor"),
                    "reason": record.get("reason"),
                    "erased_at": self.store.clock(),
                    "previous_status": record.get("status"),
                }
                for side in ("source_id", "target_id"):
                    value = record.get(side)
                    kept[side] = "erased" if value in erased else value
                self.redis.set(self.keys.merge_record(record["id"]), dumps(kept))
                done.append(record["id"])
        return done

    def _save(self, record: dict[str, Any]) -> None:
        self.redis.set(self.keys.merge_record(record["id"]), dumps(record))

    # -- merge ---------------------------------------------------------------------------------
    def merge(
        self, source_id: str, target_id: str, *, actor: str, reason: str = "manual"
    ) -> dict[str, Any]:
        """Merge ``source_id`` into ``target_id``; returns the merge record."""
        if source_id == target_id:
            raise InvalidInput("a profile cannot be merged into itself", field="source_id")
        if not document.is_customer_id(source_id):
            raise ProfileNotFound(f"no profile {source_id}", field="source_id")
        if not document.is_customer_id(target_id):
            raise ProfileNotFound(f"no profile {target_id}")
        source = self.store.load(source_id)
        target = self.store.load(target_id)
        if not source.exists:
            raise ProfileNotFound(f"no profile {source_id}", field="source_id")
        if not target.exists:
            raise ProfileNotFound(f"no profile {target_id}")
        if source.merged_into:
            raise MergeConflict(
                f"{source_id} was already merged into {source.merged_into}",
                field="source_id",
                merged_into=source.merged_into,
            )
        if target.merged_into:
            live = self.store.resolve(target_id)
            raise MergeConflict(
                f"{target_id} was merged into {live}; merge into {live} instead",
                merged_into=live,
            )
        if source.merging:
            pending = self.get(source.merging)
            if pending.get("target_id") == target_id and pending["status"] == "merging":
                return self.resume(source.merging)
            raise MergeConflict(
                f"{source_id} is in another unfinished merge {source.merging}",
                merge_id=source.merging,
            )
        if target.merging:
            raise MergeConflict(
                f"{target_id} is being merged into another profile ({target.merging})",
                merge_id=target.merging,
            )
        merge_id = document.new_merge_id()
        record = {
            "id": merge_id,
            "status": "merging",
            "source_id": source_id,
            "target_id": target_id,
            "actor": actor,
            "reason": reason,
            "at": self.store.clock(),
            "steps": [],
            "source": None,
            "target_version_before": target.version,
            "source_activity": [],
            "moved": {},
        }
        self.redis.set(self.keys.merge_record(merge_id), dumps(record), nx=True)
        for cid in (source_id, target_id):
            self._push_once(keys=[self.keys.customer_merges(cid)], args=[merge_id])
        return self._run_merge(record)

    def resume(self, merge_id: str) -> dict[str, Any]:
        """Finish a merge or an unmerge that stopped half-way (idempotent)."""
        record = self.get(merge_id)
        if record["status"] == "merging":
            return self._run_merge(record)
        if record["status"] == "unmerging":
            return self._run_unmerge(record)
        return record

    def _abandon(self, record: dict[str, Any]) -> None:
        """A merge that lost the race to freeze its source: nothing moved; drop it from the
        histories and keep the record as ``abandoned``."""
        for cid in (record["source_id"], record["target_id"]):
            self.redis.lrem(self.keys.customer_merges(cid), 0, record["id"])
        record["status"] = "abandoned"
        self._save(record)

    def _step(self, record: dict[str, Any], name: str) -> None:
        record["steps"].append(name)
        self._save(record)

    def _run_merge(self, record: dict[str, Any]) -> dict[str, Any]:
        store, activity = self.store, self.store.activity
        merge_id, sid, tid = record["id"], record["source_id"], record["target_id"]
        steps = record["steps"]
        if "freeze" not in steps:  # the source takes no profile writes from here on
            while True:
                src = store.load(sid)
                if src.merging == merge_id:
                    break
                if src.merged_into or src.merging or not src.exists:
                    self._abandon(record)
                    raise MergeConflict(
                        f"{sid} was merged or changed by a concurrent request; nothing was done",
                        field="source_id",
                    )
                if store.write(sid, src.version, {"merging": merge_id}) > 0:
                    break
            record["source"] = {"profile": store.load(sid).doc, "version": src.version}
            self._step(record, "freeze")
        if "activity" not in steps:
            snap = activity.snapshot(sid) if activity else {}
            record["source_activity"] = [snap]
            self._step(record, "activity")
        if "absorb" not in steps:
            if activity:
                activity.absorb(tid, record["source_activity"][0])
            self._step(record, "absorb")
        if "target" not in steps:
            record["moved"] = self._apply_to_target(record)
            self._step(record, "target")
        if "claims" not in steps:
            for identity in document.identities_of(record["source"]["profile"]):
                store.identities.transfer(identity, sid, tid)
            self._step(record, "claims")
        if "alias" not in steps:
            while True:
                src = store.load(sid)
                if src.merged_into == tid:
                    break
                fields = {"merged_into": tid, "merge_id": merge_id, "merged_at": repr(record["at"])}
                merged = [("profile.merged", merge_event(record))]
                if store.write(sid, src.version, fields, replace=True, events=merged) > 0:
                    break
            self._step(record, "alias")
        contact_merge.merge_steps(self.redis, self.keys, record, self._step)
        if "drain" not in steps:
            if activity:
                activity.remove(sid, record["source_activity"][0])
                late = activity.snapshot(sid)
                if _has_data(late):  # written to the source while we were moving it
                    record["source_activity"].append(late)
                    self._save(record)
                    activity.absorb(tid, late)
                    activity.remove(sid, late)
            self._step(record, "drain")
        record["moved"]["activity"] = [_counts(s) for s in record["source_activity"]]
        record["status"] = "done"
        record["done_at"] = store.clock()
        self._save(record)
        return record

    def _apply_to_target(self, record: dict[str, Any]) -> dict[str, Any]:
        marker = f"merge:{record['id']}"
        source_doc = record["source"]["profile"]
        moved: dict[str, Any] = {}

        def mutate(doc: dict[str, Any], stored: Stored) -> dict[str, Any] | None:
            if marker in stored.fields:  # applied before a crash: reuse what was recorded
                moved.update(json.loads(stored.fields[marker]))
                return None
            new, changes = merged_document(doc, source_doc, self.store.clock())
            moved.clear()
            moved.update(changes)
            return new

        self.store.update(
            record["target_id"],
            mutate,
            extra_fields=lambda: {marker: dumps(moved)},
            claim=False,
        )
        return moved

    # -- unmerge -------------------------------------------------------------------------------
    def unmerge(self, merge_id: str, *, actor: str) -> dict[str, Any]:
        """Undo a merge (see the module docstring for what goes where); returns the record."""
        record = self.get(merge_id)
        status = record["status"]
        if status == "unmerging":
            return self._run_unmerge(record)
        if status == "unmerged":
            raise MergeConflict(f"merge {merge_id} was already undone", merge_id=merge_id)
        if status == "erased":
            raise MergeConflict(f"a profile of merge {merge_id} was erased; it cannot be undone")
        if status != "done":
            raise MergeConflict(f"merge {merge_id} has not finished; resume it first")
        tid, sid = record["target_id"], record["source_id"]
        target = self.store.load(tid)
        if target.merged_into:
            live = self.store.resolve(tid)
            raise MergeConflict(
                f"{tid} was merged into {live} since; undo that merge first",
                merged_into=live,
            )
        if not target.exists:
            raise MergeConflict(f"the target {tid} no longer exists")
        if self.store.load(sid).merge_id != merge_id:
            raise MergeConflict(f"{sid} is not an alias from merge {merge_id}")
        updated = copy.deepcopy(record)
        updated.update(status="unmerging", unmerge_steps=[], unmerged_by=actor)
        claim = self.keys.unmerge_claim(merge_id)
        if not self.redis.set(claim, actor, nx=True, ex=_UNMERGE_CLAIM_S):
            return self.resume(merge_id)  # another request is undoing it
        if self.get(merge_id)["status"] != "done":  # finished by another since our read
            return self.resume(merge_id)
        self._save(updated)
        return self._run_unmerge(updated)

    def _run_unmerge(self, record: dict[str, Any]) -> dict[str, Any]:
        store, activity = self.store, self.store.activity
        tid, sid = record["target_id"], record["source_id"]
        steps = record["unmerge_steps"]
        if "restore" not in steps:
            self._restore_source(record)
            self._unmerge_step(record, "restore")
        restored_doc = store.load(sid).doc or {}
        returned = document.identities_of(restored_doc)
        if "claims" not in steps:
            for identity in returned:
                store.identities.transfer(identity, tid, sid)
            self._unmerge_step(record, "claims")
        if "target" not in steps:
            self._undo_on_target(record, returned)
            self._unmerge_step(record, "target")
        if "activity" not in steps:
            if activity:
                for snap in record["source_activity"]:
                    activity.remove(tid, snap)
                    activity.absorb(sid, snap)
            self._unmerge_step(record, "activity")
        contact_merge.unmerge_steps(self.redis, self.keys, record, self._unmerge_step)
        record["status"] = "unmerged"
        record["unmerged_at"] = store.clock()
        record["returned_identities"] = [document.identity_key(i) for i in returned]
        self._save(record)
        return record

    def _unmerge_step(self, record: dict[str, Any], name: str) -> None:
        record["unmerge_steps"].append(name)
        self._save(record)

    def _restore_source(self, record: dict[str, Any]) -> None:
        """Re-create the source as it was before the merge, without the identities the target
        no longer holds (listed under ``not_restored``)."""
        store, merge_id, sid = self.store, record["id"], record["source_id"]
        source_doc = record["source"]["profile"]
        target_doc = store.load(record["target_id"]).doc or {}
        held = set(map(tuple, document.identities_of(target_doc)))
        restored = copy.deepcopy(source_doc)
        not_restored = [i for i in document.identities_of(source_doc) if i not in held]
        drop_identities(restored, not_restored)
        record["not_restored"] = [document.identity_key(i) for i in not_restored]
        while True:
            src = store.load(sid)
            if src.merge_id != merge_id or not src.merged_into:
                break  # restored already
            event = {**merge_event(record), "profile": document.public_document(restored)}
            fields, events = {"doc": dumps(restored)}, [("profile.unmerged", event)]
            if store.write(sid, src.version, fields, replace=True, events=events) > 0:
                break

    def _undo_on_target(self, record: dict[str, Any], returned: list[tuple[str, str]]) -> None:
        """Take the ``returned`` identities off the target and put back each field the merge
        changed, unless it was written since; once (the ``merge:<id>`` marker goes with it)."""
        store, marker, moved = self.store, f"merge:{record['id']}", record["moved"]

        def mutate(doc: dict[str, Any], stored: Stored) -> dict[str, Any] | None:
            if marker not in stored.fields:
                return None
            new = copy.deepcopy(doc)
            drop_identities(new, returned)
            for change in moved.get("fields", []):
                path = change["path"]
                if get_path(new, path) == change["after"]:
                    if "before" in change:
                        set_path(new, path, change["before"])
                    else:
                        delete_path(new, path)
            new["updated_at"] = store.clock()
            return new

        store.update(record["target_id"], mutate, delete_fields=(marker,))


def _has_data(snapshot: Any) -> bool:
    if isinstance(snapshot, dict):
        return any(_has_data(v) for k, v in snapshot.items() if k not in ("traits", "customer_id"))
    if isinstance(snapshot, list):
        return bool(snapshot)
    return False


def _counts(snapshot: Any) -> dict[str, int]:
    if not isinstance(snapshot, dict):
        return {}
    return {k: len(v) for k, v in snapshot.items() if isinstance(v, list | dict) and k != "traits"}
