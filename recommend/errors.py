"""Errors raised by ``recommend``: catalog, models, greetings and next-best actions."""

from __future__ import annotations

from core.errors import Conflict, InvalidInput, NotFound


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
