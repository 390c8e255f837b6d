"""Catalog: products (writes need `admin`, reads `recommend:read`).

``GET /v1/products`` pages through the catalog, or with ``ids=a,b,c`` reads those products in
one call (the console names the products of a customer's purchases this way). ``ids`` reads by
id, so it does not combine with the paging and filter parameters: that is a 422 naming the
other parameter rather than a silent choice between the two.
"""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
from flask.views import MethodView

from recommend.catalog.products import MAX_BATCH, MAX_PAGE, Catalog
from service.errors import FieldErrorSchema, field_errors
from service.extensions import Blueprint
from service.schemas import StrictBoolean, StrictSchema
from service.state import state

blp = Blueprint(
    "products",
    __name__,
    url_prefix="/v1/products",
    description="The product catalog the recommender serves from.",
)

PRODUCT_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
PRICE_RE = r"^\d{1,10}(\.\d{1,4})?$"
# A catalog price: PRICE_RE up to 1e9, what the catalog stores (product_document.py)
PRODUCT_PRICE_RE = r"^(\d{1,9}(\.\d{1,4})?|1000000000(\.0{1,4})?)$"
MAX_IDS = 100  # ids per read-many call (a console screen needs at most a few dozen)
_PRODUCT_ID = re.compile(PRODUCT_ID_RE)
_ONE_ID = PRODUCT_ID_RE.strip("^$")
IDS_RE = rf"^{_ONE_ID}(,{_ONE_ID}){{0,{MAX_IDS - 1}}}$"  # what check_ids reads, in the spec
# The path's product id: PRODUCT_ID_RE, and not the sibling route's name (a PUT refuses it).
PATH_ID = {
    "in": "path",
    "name": "product_id",
    "schema": {"type": "string", "pattern": r"^(?!batch$)" + _ONE_ID + "$"},
}


def catalog() -> Catalog:
    return state().catalog


class ProductSchema(ma.Schema):
    product_id = ma.fields.String()
    name = ma.fields.String()
    category = ma.fields.String()
    brand = ma.fields.String(allow_none=True)
    price = ma.fields.String(allow_none=True, metadata={"example": "2.55"})
    currency = ma.fields.String(allow_none=True, metadata={"example": "GBP"})
    tags = ma.fields.List(ma.fields.String())
    in_stock = ma.fields.Boolean()
    active = ma.fields.Boolean()
    description = ma.fields.String(allow_none=True)
    updated_at = ma.fields.Float(metadata={"description": "Unix time"})


class ProductInSchema(StrictSchema):
    product_id = ma.fields.String(validate=ma.validate.Regexp(PRODUCT_ID_RE))
    name = ma.fields.String(required=True, validate=ma.validate.Length(1, 200))
    category = ma.fields.String(
        allow_none=True,
        validate=[ma.validate.Length(1, 64), ma.validate.Regexp(r"^[^{}]*$")],
        metadata={"description": "Omitted: derived from the description or name; no braces."},
    )
    brand = ma.fields.String(allow_none=True, validate=ma.validate.Length(1, 64))
    price = ma.fields.String(
        allow_none=True,
        validate=ma.validate.Regexp(PRODUCT_PRICE_RE, error='a decimal string such as "2.55"'),
        metadata={
            "description": "Decimal string (money is never a float); with a price, "
            "`currency` is required (422 otherwise)."
        },
    )
    currency = ma.fields.String(
        allow_none=True, validate=ma.validate.Regexp(r"^[A-Z]{3}$", error="an ISO 4217 code")
    )
    tags = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(1, 40)), validate=ma.validate.Length(max=20)
    )
    in_stock = StrictBoolean(load_default=True)
    active = StrictBoolean(load_default=True)
    description = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=2000))


class ProductBatchSchema(StrictSchema):
    items = ma.fields.List(
        ma.fields.Dict(),
        required=True,
        validate=ma.validate.Length(1, MAX_BATCH),
        metadata={"description": f"Up to {MAX_BATCH} products, each with its product_id."},
    )


class ProductBatchItemSchema(ProductInSchema):
    """A batch item: a product with its id (the single-item route takes it from the path)."""

    product_id = ma.fields.String(required=True, validate=ma.validate.Regexp(PRODUCT_ID_RE))


class BatchResultSchema(ma.Schema):
    product_id = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"description": "created, updated or invalid"})
    error = ma.fields.String(metadata={"description": "The first of `errors`"})
    field = ma.fields.String(allow_none=True, metadata={"description": "The first of `errors`"})
    errors = ma.fields.List(
        ma.fields.Nested(FieldErrorSchema),
        metadata={"description": "An invalid item: every field at fault, as in a 422"},
    )


def upsert_batch(items: list[Any]) -> list[dict[str, Any]]:
    """One result per item, in order: each item is checked against ProductBatchItemSchema
    first, so an invalid one lists every field at fault; the valid ones go to the catalog
    (which may still refuse one, naming its field)."""
    schema = ProductBatchItemSchema()
    faults: dict[int, list[dict[str, str]]] = {}
    for i, item in enumerate(items):
        is_object = isinstance(item, dict)
        messages = schema.validate(item) if is_object else {"": ["a product is a JSON object"]}
        if messages:
            faults[i] = field_errors(messages)
    valid = [item for i, item in enumerate(items) if i not in faults]
    stored = iter(catalog().upsert_many(valid))
    results = []
    for i, item in enumerate(items):
        if i not in faults:
            result = next(stored)
            if result["status"] == "invalid":
                result["errors"] = [_error(result.get("field"), result["error"])]
            results.append(result)
            continue
        errors = faults[i]
        pid = item.get("product_id") if isinstance(item, dict) else None
        results.append(
            {
                "product_id": pid if isinstance(pid, str) else None,
                "status": "invalid",
                "error": errors[0]["message"],
                "field": errors[0]["field"],
                "errors": errors,
            }
        )
    return results


def _error(field: str | None, message: str) -> dict[str, str]:
    return {"field": field or "", "location": "json", "message": message}


class BatchResultsSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(BatchResultSchema))


def check_ids(text: str) -> None:
    """``ids``: at most MAX_IDS comma-separated product ids, each a valid product id."""
    given = text.split(",")
    if len(given) > MAX_IDS:
        raise ma.ValidationError(f"at most {MAX_IDS} product ids per call")
    for i, pid in enumerate(given):
        if not _PRODUCT_ID.match(pid):
            raise ma.ValidationError(
                f"id {i + 1} is not a product id (1-64 characters, letters, digits and "
                ". _ : -, starting with a letter or digit)"
            )


class ProductQuerySchema(StrictSchema):
    ids = ma.fields.String(
        validate=check_ids,
        metadata={
            "pattern": IDS_RE,
            "description": f"Comma-separated product ids (at most {MAX_IDS}): read these "
            "products, in this order; the ones not found are listed in `missing`. Does not "
            "combine with the other parameters.",
            "example": "85123A,22423",
        },
    )
    category = ma.fields.String(validate=ma.validate.Length(1, 64))
    in_stock = ma.fields.Boolean()
    active = ma.fields.Boolean()
    cursor = ma.fields.String(validate=ma.validate.Regexp(PRODUCT_ID_RE))
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(1, MAX_PAGE))

    @ma.validates_schema(pass_original=True)
    def ids_alone(self, data: dict[str, Any], original: Any, **_kwargs: Any) -> None:
        if "ids" not in data:
            return
        for name in ("category", "in_stock", "active", "cursor", "limit"):
            if name in original:  # limit has a default: look at what was sent
                raise ma.ValidationError(f"{name} does not combine with ids", name)


class ProductPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ProductSchema))
    next_cursor = ma.fields.String(allow_none=True)
    missing = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "Only with `ids`: the ids not found, in the order asked."},
    )


@blp.not_audited("product catalogue: no profile data")
@blp.route("")
class Products(MethodView):
    @blp.auth("recommend:read")
    @blp.arguments(ProductQuerySchema, location="query")
    @blp.response(200, ProductPageSchema)
    def get(self, query):
        """List products by id, filtered by category, stock and active flags.

        With `ids`: read those products in one call (for a screen that names many products).
        """
        if "ids" in query:
            ids = list(dict.fromkeys(query["ids"].split(",")))  # each once, in the order asked
            found = catalog().get_many(ids)
            return {
                "items": [found[p] for p in ids if p in found],
                "next_cursor": None,
                "missing": [p for p in ids if p not in found],
            }
        items, cursor = catalog().list(**query)
        return {"items": items, "next_cursor": cursor}


@blp.not_audited("product catalogue (admin): no profile data")
@blp.route("/batch")
class ProductBatch(MethodView):
    @blp.auth("admin")
    @blp.arguments(ProductBatchSchema)
    @blp.response(200, BatchResultsSchema)
    def post(self, body):
        """Upsert many products; one result per item (an invalid item does not stop the rest)."""
        return {"items": upsert_batch(body["items"])}


@blp.not_audited("product catalogue: no profile data")
@blp.route("/<string:product_id>", parameters=[PATH_ID])
class ProductItem(MethodView):
    @blp.auth("recommend:read")
    @blp.response(200, ProductSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, product_id):
        """Read a product."""
        return catalog().get(product_id)

    @blp.auth("admin")
    @blp.arguments(ProductInSchema)
    @blp.response(200, ProductSchema)
    @blp.alt_response(201, schema=ProductSchema, description="Created")
    def put(self, body, product_id):
        """Create or replace a product (201 when created)."""
        doc, created = catalog().upsert(body, product_id)
        return (doc, 201) if created else doc

    @blp.auth("admin")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, product_id):
        """Delete a product."""
        catalog().delete(product_id)
