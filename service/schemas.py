"""Shared marshmallow building blocks for the HTTP layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import marshmallow as ma

from core.errors import InvalidInput


class StrictSchema(ma.Schema):
    """Request bodies reject unknown fields (422) rather than ignoring them."""

    class Meta:
        unknown = ma.RAISE


def domain_rule(fn: Callable[..., Any], *args: Any) -> Callable[[Any], None]:
    """A marshmallow validator from a domain check (``fn(value, *args)`` raising
    :class:`InvalidInput`), so the schema reports it with every other field at fault at once
    instead of the domain answering one error at a time."""

    def validator(value: Any) -> None:
        if value is None:
            return
        try:
            fn(value, *args)
        except InvalidInput as err:
            raise ma.ValidationError(err.detail) from None

    return validator


# Python's whitespace (str.isspace, what .strip() removes), spelled out: ``\s`` differs between
# Python and ECMA 262 (the spec's regex dialect), so a pattern states the characters itself.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = rf"^[{_SPACE}]*[^{_SPACE}]"  # holds a character that is not whitespace


class StrictBoolean(ma.fields.Boolean):
    """A JSON body's boolean: ``true`` or ``false`` only (marshmallow's Boolean also takes
    ``0``, ``1``, ``"yes"``...). Query strings keep ``ma.fields.Boolean``: they are text."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


# Every valid phone number has at least 4 digits (the shortest national numbers of any region,
# phonenumbers' metadata): the spec says so, so "0" is schema-invalid, not a surprise 422. The
# number itself is checked by the domain (profiles.document.normalise_phone), still a 422.
PHONE_PATTERN = r"^\D*(\d\D*){4,}$"


def phone_field(**kwargs: Any) -> ma.fields.String:
    """A phone number input: 1 to 40 characters with at least 4 digits."""
    metadata = {"description": "E.164 (`+43…`), or national form with `country` as the region"}
    metadata.update(kwargs.pop("metadata", {}))
    return ma.fields.String(
        validate=[
            ma.validate.Length(1, 40),
            ma.validate.Regexp(PHONE_PATTERN, error="not a valid phone number (too few digits)"),
        ],
        metadata=metadata,
        **kwargs,
    )
