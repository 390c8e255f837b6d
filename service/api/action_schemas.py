"""The schemas of the action catalogue and its statistics (``/v1/actions``; the views are in
``service/api/actions.py``)."""

from __future__ import annotations

import marshmallow as ma

from recommend.engage.action_catalog import MAX_SAY_LOCALES
from recommend.engage.actions import CATEGORIES, PRODUCT_LINKS
from service.schemas import StrictSchema


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
    id = ma.fields.String()
    title = ma.fields.String(required=True)
    say = _say_field()
    category = ma.fields.String(required=True, validate=ma.validate.OneOf(CATEGORIES))
    value = ma.fields.Float(required=True)
    rules = ma.fields.Raw(
        allow_none=True, metadata={"description": "See recommend/engage/rules.py"}
    )
    cooldown_days = ma.fields.Float()
    product = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(PRODUCT_LINKS))
    requires_consent = ma.fields.List(ma.fields.String())
    channels = ma.fields.List(ma.fields.String())
    contexts = ma.fields.List(ma.fields.String())
    active_from = ma.fields.String(allow_none=True)
    active_to = ma.fields.String(allow_none=True)


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
    items = ma.fields.List(ma.fields.Dict(), required=True)


class ActionStatsSchema(ma.Schema):
    action_id = ma.fields.String()
    shown = ma.fields.Integer()
    accepted = ma.fields.Integer()
    dismissed = ma.fields.Integer()
    completed = ma.fields.Integer()
    acceptance_rate = ma.fields.Float(allow_none=True)


class ActionStatsListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ActionStatsSchema))
