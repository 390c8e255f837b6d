"""The items of ``POST /v1/events``, one schema per event type, for the OpenAPI document.

They document ``profiles.activity_input.normalise_event`` (the payloads) and
``profiles.event_batch`` (the ``customer`` reference); they do not validate: the server checks
each item itself and rejects a bad one in its result, never the batch, so the request body
stays open (``EVENT_ITEM``: one of these, or anything else, rejected per item).
``tests/unit/test_event_schemas.py`` feeds every documented example through the domain, so a
schema and the code cannot drift apart. :func:`register` adds them to the spec as components:
``Event`` is their ``oneOf``, discriminated by ``type``.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from profiles.activity_input import (
    CHANNELS,
    MAX_ID,
    MAX_QUANTITY,
    MAX_TEXT,
    SUPPORT_CHANNELS,
    SUPPORT_STATUSES,
)
from service.api.purchases import LineSchema
from service.schemas import StrictSchema

_ID = ma.validate.Length(1, MAX_ID)


class CustomerRefSchema(StrictSchema):
    """Exactly one of the four: the customer the event is about."""

    profile_id = ma.fields.String(metadata={"example": "c_61nNuLtQWMJAo30JRcAk9R"})
    email = ma.fields.String()
    phone = ma.fields.String(metadata={"description": "E.164"})
    external_id = ma.fields.String(metadata={"description": "`system:id`"})


def _common(event_type: str) -> dict[str, ma.fields.Field]:
    return {
        "message_id": ma.fields.String(
            required=True,
            validate=_ID,
            metadata={
                "description": "De-duplicates the event per customer for 7 days",
                "example": f"m-{event_type}-1",
            },
        ),
        "type": ma.fields.String(
            required=True,
            validate=ma.validate.OneOf([event_type]),
            metadata={"example": event_type},
        ),
        "customer": ma.fields.Nested(
            CustomerRefSchema,
            required=True,
            metadata={"example": {"email": "ann@example.com"}},
        ),
        "at": ma.fields.String(
            required=True,
            metadata={
                "description": "ISO 8601 with a UTC offset (or Unix seconds); at most a day ahead",
                "example": "2024-05-01T10:00:00+02:00",
            },
        ),
    }


def _source() -> ma.fields.String:
    return ma.fields.String(
        validate=ma.validate.Length(1, MAX_TEXT),
        metadata={"description": "Where it happened (a page, a campaign)", "example": "search"},
    )


def _product_id() -> ma.fields.String:
    return ma.fields.String(required=True, validate=_ID, metadata={"example": "85123A"})


ViewEventSchema = StrictSchema.from_dict(
    {**_common("view"), "product_id": _product_id(), "source": _source()}, name="ViewEvent"
)
AddToCartEventSchema = StrictSchema.from_dict(
    {
        **_common("add_to_cart"),
        "product_id": _product_id(),
        "quantity": ma.fields.Integer(
            load_default=1, validate=ma.validate.Range(1, MAX_QUANTITY), metadata={"example": 2}
        ),
        "source": _source(),
    },
    name="AddToCartEvent",
)
PurchaseEventSchema = StrictSchema.from_dict(
    {
        **_common("purchase"),
        "order_id": ma.fields.String(
            required=True,
            validate=_ID,
            metadata={"description": "As in `POST .../purchases`", "example": "o-1001"},
        ),
        "lines": ma.fields.List(
            ma.fields.Nested(LineSchema),
            required=True,
            metadata={"example": [{"product_id": "85123A", "quantity": 2, "unit_price": "2.55"}]},
        ),
        "currency": ma.fields.String(
            required=True, metadata={"description": "ISO 4217", "example": "EUR"}
        ),
        "channel": ma.fields.String(
            required=True, validate=ma.validate.OneOf(CHANNELS), metadata={"example": "web"}
        ),
    },
    name="PurchaseEvent",
)
SupportContactEventSchema = StrictSchema.from_dict(
    {
        **_common("support_contact"),
        "contact_id": ma.fields.String(required=True, validate=_ID, metadata={"example": "t-42"}),
        "status": ma.fields.String(
            required=True,
            validate=ma.validate.OneOf(SUPPORT_STATUSES),
            metadata={"example": "opened"},
        ),
        "channel": ma.fields.String(
            validate=ma.validate.OneOf(SUPPORT_CHANNELS), metadata={"example": "chat"}
        ),
        "topic": ma.fields.String(
            validate=ma.validate.Length(1, MAX_TEXT), metadata={"example": "delivery"}
        ),
    },
    name="SupportContactEvent",
)

# type -> (component name, schema)
EVENT_SCHEMAS: dict[str, tuple[str, type[ma.Schema]]] = {
    "view": ("ViewEvent", ViewEventSchema),
    "add_to_cart": ("AddToCartEvent", AddToCartEventSchema),
    "purchase": ("PurchaseEvent", PurchaseEventSchema),
    "support_contact": ("SupportContactEvent", SupportContactEventSchema),
}

_REF = "#/components/schemas/{}"

# The request body's item: documents the types, constrains nothing (see the module docstring).
EVENT_ITEM: dict[str, Any] = {
    "anyOf": [
        {"$ref": _REF.format("Event")},
        {"description": "Anything else: rejected in its own result, not the batch"},
    ]
}


def register(spec: Any) -> None:
    """Add the event types and ``Event``, their ``oneOf`` by ``type``, to ``spec``'s
    components."""
    for name, schema in EVENT_SCHEMAS.values():
        spec.components.schema(name, schema=schema)
    spec.components.schema(
        "Event",
        {
            "oneOf": [{"$ref": _REF.format(name)} for name, _ in EVENT_SCHEMAS.values()],
            "discriminator": {
                "propertyName": "type",
                "mapping": {t: _REF.format(name) for t, (name, _) in EVENT_SCHEMAS.items()},
            },
        },
    )
