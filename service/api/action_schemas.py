"""The schemas of the action catalogue and its statistics (``/v1/actions``; the views are in
``service/api/actions.py``)."""

from __future__ import annotations

import marshmallow as ma

from core.channels import CHANNELS
from recommend.engage.action_catalog import CONSENTS, MAX_ACTIONS, MAX_SAY_LOCALES, MAX_VALUE
from recommend.engage.actions import CATEGORIES, PRODUCT_LINKS
from service.schemas import NOT_BLANK, StrictSchema

# An action id: 1-64 of a-z, 0-9, '-' and '_' (recommend.engage.action_catalog.ACTION_ID), not
# a reserved one (a sibling route, the product feedback's action): the spec says both.
ACTION_ID_RE = r"^(?!(?:stats|product-suggestion)$)[a-z0-9][a-z0-9_-]{0,63}$"
# ISO 8601 dates or date-times (rules.to_epoch reads both); the end after the start is a rule
# between two fields, stated in the description.
_WHEN = {"anyOf": [{"format": "date"}, {"format": "date-time"}]}


def _string_list(allowed: tuple[str, ...] | None = None) -> ma.fields.List:
    """At most 20 strings of 1 to 64 characters, each one of ``allowed`` when given."""
    item = ma.fields.String(
        validate=ma.validate.OneOf(allowed) if allowed else ma.validate.Length(1, 64)
    )
    return ma.fields.List(item, allow_none=True, validate=ma.validate.Length(max=20))


def _say_field() -> ma.fields.Raw:
    """``say``: one template (English) or an object of locale tags to templates."""
    return ma.fields.Raw(
        allow_none=True,
        metadata={
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "minProperties": 1,
                    "maxProperties": MAX_SAY_LOCALES,
                },
            ],
            "description": "The line the agent can say: a template (English), or an object "
            "of locale tags to templates, picked along the customer's locale chain like "
            "greeting templates; each is validated (sandbox rules; errors name `say.<locale>`)",
            "example": {
                "en": "Welcome back{% if name %}, {{ name }}{% endif %}!",
                "de": "Willkommen zurück{% if name %}, {{ name }}{% endif %}!",
            },
        },
    )


class ActionInputSchema(StrictSchema):
    id = ma.fields.String(
        validate=ma.validate.Regexp(ACTION_ID_RE),
        metadata={"description": "The path's id when given there (422 when they differ)."},
    )
    title = ma.fields.String(
        required=True,
        validate=[ma.validate.Length(1, 120), ma.validate.Regexp(NOT_BLANK)],
        metadata={"description": "1 to 120 characters, not only spaces"},
    )
    say = _say_field()
    category = ma.fields.String(required=True, validate=ma.validate.OneOf(CATEGORIES))
    value = ma.fields.Float(required=True, validate=ma.validate.Range(0, MAX_VALUE))
    rules = ma.fields.Raw(
        allow_none=True,
        metadata={
            "description": "A rule expression (recommend/engage/rules.py), checked by the "
            "domain: an unknown operator or attribute is a 422 naming `rules.<path>`"
        },
    )
    cooldown_days = ma.fields.Float(validate=ma.validate.Range(0, 365))
    product = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(PRODUCT_LINKS))
    requires_consent = _string_list(CONSENTS)
    channels = _string_list(CHANNELS)
    contexts = _string_list()
    active_from = ma.fields.String(allow_none=True, metadata=_WHEN)
    active_to = ma.fields.String(
        allow_none=True,
        metadata={**_WHEN, "description": "After `active_from` (422 otherwise)."},
    )


class ActionItemInputSchema(ActionInputSchema):
    """An action of a whole catalogue: its id is in the body."""

    id = ma.fields.String(required=True, validate=ma.validate.Regexp(ACTION_ID_RE))


class ActionSchema(ma.Schema):
    id = ma.fields.String()
    title = ma.fields.String()
    say = _say_field()
    category = ma.fields.String()
    value = ma.fields.Float()
    rules = ma.fields.Raw(allow_none=True)
    cooldown_days = ma.fields.Float()
    product = ma.fields.String(allow_none=True)
    requires_consent = ma.fields.List(ma.fields.String())
    channels = ma.fields.List(ma.fields.String())
    contexts = ma.fields.List(ma.fields.String())
    active_from = ma.fields.String(allow_none=True)
    active_to = ma.fields.String(allow_none=True)


class ActionListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ActionSchema))


class ActionListInputSchema(StrictSchema):
    items = ma.fields.List(
        ma.fields.Nested(ActionItemInputSchema),
        required=True,
        validate=ma.validate.Length(max=MAX_ACTIONS),
        metadata={"description": "Each id once (a duplicate is a 422 naming `items.<i>.id`)."},
    )


class ActionStatsSchema(ma.Schema):
    action_id = ma.fields.String()
    shown = ma.fields.Integer()
    accepted = ma.fields.Integer()
    dismissed = ma.fields.Integer()
    completed = ma.fields.Integer()
    acceptance_rate = ma.fields.Float(allow_none=True)


class ActionStatsListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ActionStatsSchema))
