"""How two profile documents become one (merge precedence), as pure functions.

Precedence (``merged_document``): the target wins every conflict. Fields the target lacks
(names, locale, timezone, country, loyalty tier, ``preferences.categories/channels/language``)
are filled from the source; ``preferences.custom`` keys the target lacks are added (up to the
key limit). Consent is the exception: per purpose the entry with the most recent ``at`` wins (a
tie keeps the target's). The source's identities are appended (the target's primary email and
phone stay primary). Every change is listed with its previous value so ``unmerge`` can take
back exactly what the merge did.
"""

from __future__ import annotations

import copy
from typing import Any

from profiles import document

FILL_FIELDS = document.SCALAR_FIELDS  # filled from the source when the target lacks them
MISSING = object()


def merged_document(
    target: dict[str, Any], source: dict[str, Any], now: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Target merged with source by the precedence in the module docstring.

    Returns the new target document and ``{"identities": [...], "fields": [{"path", "before"?,
    "after"}]}``: what the merge added, for ``unmerge``."""
    new = copy.deepcopy(target)
    changes: list[dict[str, Any]] = []

    def change(path: list[str], value: Any) -> None:
        before = get_path(new, path)
        entry: dict[str, Any] = {"path": path, "after": value}
        if before is not MISSING:
            entry["before"] = before
        set_path(new, path, value)
        changes.append(entry)

    added = []
    for kind, value in document.identities_of(source):
        if (kind, value) not in document.identities_of(new):
            attach_identity(new, (kind, value))
            added.append(document.identity_key((kind, value)))
    for name in FILL_FIELDS:
        if name in source and name not in new:
            change([name], source[name])
    prefs = source.get("preferences", {})
    for name in ("categories", "channels", "language"):
        if name in prefs and get_path(new, ["preferences", name]) is MISSING:
            change(["preferences", name], prefs[name])
    target_custom = get_path(new, ["preferences", "custom"])
    room = document.MAX_CUSTOM_KEYS - (len(target_custom) if target_custom is not MISSING else 0)
    for key, value in sorted(prefs.get("custom", {}).items()):
        if get_path(new, ["preferences", "custom", key]) is MISSING and room > 0:
            change(["preferences", "custom", key], value)
            room -= 1
    for purpose, entry in source.get("consent", {}).items():
        mine = get_path(new, ["consent", purpose])
        if mine is MISSING or float(entry.get("at", 0)) > float(mine.get("at", 0)):
            change(["consent", purpose], entry)
    new["updated_at"] = now
    return new, {"identities": added, "fields": changes}


def get_path(doc: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return MISSING
        doc = doc[part]
    return doc


def set_path(doc: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        doc = doc.setdefault(part, {})
    doc[path[-1]] = copy.deepcopy(value)


def delete_path(doc: dict[str, Any], path: list[str]) -> None:
    parents = []
    for part in path[:-1]:
        if part not in doc:
            return
        parents.append((doc, part))
        doc = doc[part]
    doc.pop(path[-1], None)
    for parent, part in reversed(parents):  # drop containers the delete emptied
        if parent[part] == {}:
            del parent[part]


def drop_identities(doc: dict[str, Any], identities: list[tuple[str, str]]) -> None:
    drop = {tuple(i) for i in identities}
    doc["emails"] = [e for e in doc.get("emails", []) if ("email", e) not in drop]
    doc["phones"] = [p for p in doc.get("phones", []) if ("phone", p) not in drop]
    doc["external_ids"] = [
        x for x in doc.get("external_ids", []) if document.external_identity(x) not in drop
    ]


def attach_identity(doc: dict[str, Any], identity: tuple[str, str]) -> None:
    """Add an identity to a document: primary if the profile has none of that kind."""
    kind, value = identity
    if kind == "email":
        doc["emails"] = [*doc.get("emails", []), value]
    elif kind == "phone":
        doc["phones"] = [*doc.get("phones", []), value]
    else:
        doc["external_ids"] = [*doc.get("external_ids", []), f"{kind[4:]}:{value}"]


def merge_event(record: dict[str, Any]) -> dict[str, Any]:
    """The outbox data of a merge or unmerge (``core/outbox.py``): ids only."""
    return {
        "merge_id": record["id"],
        "source_id": record["source_id"],
        "target_id": record["target_id"],
    }
