"""Purchases over HTTP: record one idempotently by order id, list newest first.

``POST /v1/profiles/{id}/purchases`` answers 201 when the purchase is new, 200 with the stored
purchase when it is a replay of the same body, 409 when the order id holds another body. A
merged-away id acts on the profile it was merged into (``Rapport-Merged-Into`` says so).
"""

from __future__ import annotations

import time
from typing import Any

import marshmallow as ma
from flask import url_for
from flask.views import MethodView

from core.errors import InvalidInput
from profiles import activity as act
from profiles.activity import MAX_ORDERS
from profiles.activity_input import (
    CHANNELS,
    MAX_ID,
    MAX_LINES,
    MAX_QUANTITY,
    MAX_UNIT_PRICE,
    PRICE_PLACES,
    currencies,
    decimal_places,
    parse_decimal,
    parse_time,
)
from service.extensions import Blueprint
from service.schemas import StrictSchema, domain_rule
from service.state import state

blp = Blueprint(
    "purchases",
    __name__,
    url_prefix="/v1/profiles",
    description="A customer's purchases: recorded once per order id (replays are safe), "
    "listed newest first with a cursor.",
)


class Money(ma.fields.Field):
    """A non-negative decimal as a string (``"2.55"``) or a JSON number; kept exact."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ma.ValidationError("Not a valid decimal number or decimal string.")
        return value

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


# The domain's rules (profiles.activity_input.normalise_purchase) checked in the schema too,
# so a request hears of every field at fault at once.
def _currency(value: str) -> None:
    if value not in currencies():
        raise InvalidInput("must be an ISO 4217 currency code, e.g. EUR")


def _unit_price(value: Any) -> None:
    price = parse_decimal(value, "unit_price")
    if price < 0 or price > MAX_UNIT_PRICE:
        raise InvalidInput(f"must be 0 to {MAX_UNIT_PRICE}")
    if decimal_places(price) > PRICE_PLACES:
        raise InvalidInput(f"has more than {PRICE_PLACES} decimal places")


def _purchased_at(value: str) -> None:
    parse_time(value, "purchased_at", time.time())


class LineSchema(StrictSchema):
    product_id = ma.fields.String(required=True, validate=ma.validate.Length(1, MAX_ID))
    quantity = ma.fields.Integer(
        required=True, strict=True, validate=ma.validate.Range(1, MAX_QUANTITY)
    )
    unit_price = Money(
        required=True,
        validate=domain_rule(_unit_price),
        metadata={"type": "string", "example": "2.55", "description": "up to 4 decimals, >= 0"},
    )


class PurchaseInSchema(StrictSchema):
    order_id = ma.fields.String(
        required=True,
        validate=ma.validate.Length(1, MAX_ID),
        metadata={
            "description": f"unique per customer; a customer holds at most {MAX_ORDERS} "
            "purchases, past that a new one is refused (422 on order_id)"
        },
    )
    lines = ma.fields.List(
        ma.fields.Nested(LineSchema),
        required=True,
        validate=ma.validate.Length(1, MAX_LINES),
        metadata={"description": f"1 to {MAX_LINES} lines"},
    )
    currency = ma.fields.String(
        required=True,
        validate=domain_rule(_currency),
        metadata={
            "description": "ISO 4217 code, e.g. EUR",
            "example": "EUR",
            "enum": sorted(currencies()),
        },
    )
    purchased_at = ma.fields.String(
        required=True,
        validate=domain_rule(_purchased_at),
        metadata={
            "format": "date-time",
            "description": "ISO 8601 with a UTC offset, after 1970 and at most a day ahead "
            "of the server's clock (422 otherwise)",
            "example": "2024-05-01T10:00:00+02:00",
        },
    )
    channel = ma.fields.String(required=True, validate=ma.validate.OneOf(CHANNELS))


class LineOutSchema(ma.Schema):
    product_id = ma.fields.String()
    quantity = ma.fields.Integer()
    unit_price = ma.fields.String()


class PurchaseSchema(ma.Schema):
    order_id = ma.fields.String()
    lines = ma.fields.List(ma.fields.Nested(LineOutSchema))
    currency = ma.fields.String()
    purchased_at = ma.fields.String(metadata={"description": "UTC, ISO 8601"})
    channel = ma.fields.String()
    total = ma.fields.String(metadata={"description": "Exact decimal"})
    item_count = ma.fields.Integer()


class PurchaseListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PurchaseSchema))
    next_cursor = ma.fields.String(
        allow_none=True, metadata={"description": "Pass as `cursor` for the next page"}
    )


class PurchaseQuerySchema(StrictSchema):
    limit = ma.fields.Integer(
        load_default=act.DEFAULT_PAGE, validate=ma.validate.Range(1, act.MAX_PAGE)
    )
    cursor = ma.fields.String(validate=ma.validate.Length(1, 1000))


def _resolve(customer_id: str) -> tuple[str, dict[str, str]]:
    """The live profile id (404 if none) and the headers saying a merged id was followed."""
    target = state().profiles.resolve(customer_id)
    headers = {}
    if target != customer_id:
        headers["Rapport-Merged-Into"] = target
        headers["Content-Location"] = url_for("purchases.Purchases", customer_id=target)
    return target, headers


@blp.route("/<string:customer_id>/purchases")
class Purchases(MethodView):
    @blp.audit("read")
    @blp.auth("profiles:read")
    @blp.arguments(PurchaseQuerySchema, location="query")
    @blp.response(200, PurchaseListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, customer_id):
        """A customer's purchases, newest first; follow `next_cursor` for older ones."""
        target, headers = _resolve(customer_id)
        items, cursor = state().activity.list_purchases(
            target, limit=query["limit"], cursor=query.get("cursor")
        )
        return {"items": items, "next_cursor": cursor}, headers

    @blp.audit("update")
    @blp.auth("profiles:write")
    @blp.arguments(PurchaseInSchema)
    @blp.response(201, PurchaseSchema, final=True)
    @blp.alt_response(200, schema=PurchaseSchema, description="A replay: the stored purchase")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, body: dict[str, Any], customer_id):
        """Record a purchase; idempotent by `order_id` (same body again → 200, another → 409)."""
        target, headers = _resolve(customer_id)
        stored, created = state().activity.record_purchase(target, body)
        return stored, (201 if created else 200), headers
