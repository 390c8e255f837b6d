"""Domain exceptions raised by ``profiles`` and ``recommend``.

They are plain classes that know nothing about HTTP; ``service/errors.py`` maps each one to a
status code in a single table. ``field`` names the input at fault when there is one.
"""

from __future__ import annotations


class RapportError(Exception):
    """Base of every domain error."""

    title = "Rapport error"

    def __init__(self, detail: str = "", *, field: str | None = None, **extra: object):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.field = field
        self.extra = extra


class NotFound(RapportError):
    title = "Not found"


class Conflict(RapportError):
    title = "Conflict"


class InvalidInput(RapportError):
    """Input that passed the schema but breaks a domain rule."""

    title = "Invalid input"


class PreconditionFailed(RapportError):
    title = "Precondition failed"


class ApiKeyNotFound(NotFound):
    title = "API key not found"


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


# -- recommend: catalog and models -------------------------------------------------------------
class ProductNotFound(NotFound):
    title = "Product not found"


class ModelVersionNotFound(NotFound):
    title = "Model version not found"


class ArtifactError(Conflict):
    """A model artifact is missing, truncated, tampered with or malformed; it is not served."""

    title = "Model artifact refused"


class PromotionRefused(Conflict):
    """The gate kept a model that is worse than the active one (use force to override)."""

    title = "Promotion refused"


class NoPreviousModel(Conflict):
    title = "No previous model to roll back to"


# -- greetings and next-best actions (recommend/) --------------------------------------------
class InvalidTemplate(InvalidInput):
    title = "Invalid template"


class TemplateNotFound(NotFound):
    title = "Greeting template not found"


class InvalidRule(InvalidInput):
    title = "Invalid rule"


class InvalidAction(InvalidInput):
    title = "Invalid action"


class ActionNotFound(NotFound):
    title = "Action not found"


class FeedbackConflict(Conflict):
    title = "Feedback id reused with a different body"


# -- purchases and events (profiles/activity.py) ---------------------------------------------
class OrderConflict(Conflict):
    """The order id is already recorded with another body (a replay must be identical)."""

    title = "Order id already used"
