"""The bases of every domain error.

Plain classes that know nothing about HTTP; ``service/errors.py`` maps each one to a status
code in a single table. ``field`` names the input at fault when there is one. Each room adds its
own errors on these bases: ``profiles/errors.py``, ``recommend/errors.py``.
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
