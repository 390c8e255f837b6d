"""Errors raised by ``profiles``: profiles, identities, merges, purchases and events."""

from __future__ import annotations

from core.errors import Conflict, NotFound, PreconditionFailed


# -- profiles, identities and merges (profiles/store.py, identity.py, merge.py) ----------------
class ProfileNotFound(NotFound):
    title = "Profile not found"


class IdentityTaken(Conflict):
    """The identity belongs to another profile (extra: ``owner_id``)."""

    title = "Identity belongs to another profile"


class VersionMismatch(PreconditionFailed):
    """``If-Match`` named a version that is no longer current (extra: ``current_version``)."""

    title = "Profile version changed"


class MergeNotFound(NotFound):
    title = "Merge not found"


class MergeConflict(Conflict):
    """A merge or unmerge that cannot run in the current state (already merged, undone, ...)."""

    title = "Merge not possible"


# -- purchases and events (profiles/activity.py) ---------------------------------------------
class OrderConflict(Conflict):
    """The order id is already recorded with another body (a replay must be identical)."""

    title = "Order id already used"
