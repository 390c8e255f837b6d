"""Recommendations for a customer, similar products, popular products (`recommend:read`).

The use-cases are ``recommend/model/answers.py``'s. Every answer comes from the worker's loaded
model (``service/model_holder.py``) or, without one, from popularity; ``model_version`` says
which (null for the fallback). While Redis is unreachable, customer recommendations and popular
products come from the worker's in-memory popular list (``model_version`` null, header
``Rapport-Degraded: store-unavailable``).
"""

from __future__ import annotations

import time
from decimal import Decimal

import marshmallow as ma
from flask.views import MethodView

from profiles.activity_input import parse_time
from recommend.model.answers import Answer
from recommend.model.recommender import MAX_LIMIT, STRATEGIES, Filters
from service.access import current_key
from service.auth import Forbidden
from service.extensions import Blueprint
from service.schemas import StrictSchema, domain_rule
from service.state import state

blp = Blueprint(
    "recommendations",
    __name__,
    description="Product recommendations: per customer, similar products, popular products.",
)

PRICE_RE = r"^\d{1,10}(\.\d{1,4})?$"


class FilterQuerySchema(StrictSchema):
    limit = ma.fields.Integer(
        load_default=10,
        validate=ma.validate.Range(1, MAX_LIMIT),
        metadata={"description": f"At most {MAX_LIMIT}."},
    )
    category = ma.fields.String(validate=ma.validate.Length(1, 64))
    in_stock_only = ma.fields.Boolean(load_default=True)
    min_price = ma.fields.String(
        validate=ma.validate.Regexp(PRICE_RE, error="a decimal string"),
        metadata={"description": "A decimal string; at most `max_price` (422 otherwise)."},
    )
    max_price = ma.fields.String(
        validate=ma.validate.Regexp(PRICE_RE, error="a decimal string"),
        metadata={"description": "A decimal string; at least `min_price` (422 otherwise)."},
    )

    @ma.validates_schema
    def price_range(self, data: dict, **_kwargs: object) -> None:
        lo, hi = data.get("min_price"), data.get("max_price")
        if lo and hi and Decimal(lo) > Decimal(hi):  # both at fault: either may be the typo
            message = "min_price is above max_price"
            raise ma.ValidationError({"min_price": [message], "max_price": [message]})


class RecommendationQuerySchema(FilterQuerySchema):
    strategy = ma.fields.String(
        load_default="blend",
        validate=ma.validate.OneOf(STRATEGIES),
        metadata={
            "description": "`discover`: only products never bought; `buy_again`: the "
            "customer's own history ranked for re-purchase; `blend` (default): both."
        },
    )


def _as_of(value: str) -> None:
    parse_time(value, "as_of", time.time())


class CustomerQuerySchema(RecommendationQuerySchema):
    """The customer route's query: the strategy, the filters and the evaluation clock."""

    as_of = ma.fields.String(
        validate=domain_rule(_as_of),
        metadata={
            "format": "date-time",
            "description": "Evaluation clock, admin keys only (403 otherwise): the time every "
            "recency term is taken at (buy-again reasons, the content term's half-life, the "
            "trend window) instead of now, for replaying history. ISO 8601 with a UTC offset, "
            "at most a day ahead. Purchases recorded after it still count: replay in order.",
            "example": "2011-11-01T00:00:00Z",
        },
    )


class PopularQuerySchema(FilterQuerySchema):
    country = ma.fields.String(validate=ma.validate.Length(1, 64))


class RecommendedItemSchema(ma.Schema):
    product_id = ma.fields.String()
    name = ma.fields.String(allow_none=True)
    category = ma.fields.String(allow_none=True)
    price = ma.fields.String(allow_none=True)
    currency = ma.fields.String(allow_none=True)
    in_stock = ma.fields.Boolean(allow_none=True)
    score = ma.fields.Float(metadata={"description": "Higher is better; within one response."})
    reason = ma.fields.String(metadata={"example": "bought 4 times, usually every 30 days"})
    source = ma.fields.String(metadata={"description": "discover, buy_again, popular, similar"})
    filled = ma.fields.Boolean(
        metadata={
            "description": "Present (true) on a `buy_again` item that is not one of the "
            "customer's own products: the list was shorter than `limit` and is filled from "
            "`blend`, then popular products (`source` says which)."
        }
    )
    model_version = ma.fields.String(allow_none=True)


class RecommendationsSchema(ma.Schema):
    customer_id = ma.fields.String(allow_none=True)
    strategy = ma.fields.String()
    basis = ma.fields.String(
        metadata={"description": "known (trained on), cold (profile features) or popularity"}
    )
    model_version = ma.fields.String(allow_none=True)
    items = ma.fields.List(ma.fields.Nested(RecommendedItemSchema))


class ItemListSchema(ma.Schema):
    model_version = ma.fields.String(allow_none=True)
    items = ma.fields.List(ma.fields.Nested(RecommendedItemSchema))


def _filters(query: dict) -> Filters:
    lo = Decimal(query["min_price"]) if query.get("min_price") else None
    hi = Decimal(query["max_price"]) if query.get("max_price") else None
    return Filters(
        category=query.get("category"),
        in_stock_only=query["in_stock_only"],
        min_price=lo,
        max_price=hi,
    )


@blp.route("/v1/profiles/<string:customer_id>/recommendations")
class CustomerRecommendations(MethodView):
    @blp.audit("read")
    @blp.auth("recommend:read")
    @blp.arguments(CustomerQuerySchema, location="query")
    @blp.response(200, RecommendationsSchema, final=True)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, customer_id):
        """Top products for a customer; a new one gets picks from their profile's features.
        An id with no profile (never created, or erased) is 404: visitors nobody knows get
        ``/v1/recommendations/popular``. ``as_of`` (admin keys): the evaluation clock."""
        now = None
        if query.get("as_of"):
            if not current_key().allows("admin"):
                raise Forbidden("admin")
            now = parse_time(query["as_of"], "as_of", time.time())[1] / 1000.0
        answer = state().recommendations.for_customer(
            customer_id,
            strategy=query["strategy"],
            limit=query["limit"],
            filters=_filters(query),
            now=now,
        )
        return _answered(answer)


def _answered(answer: Answer):
    if answer.degraded:  # Redis unreachable: the worker's in-memory popular list
        return answer.body, 200, {"Rapport-Degraded": "store-unavailable"}
    return answer.body


@blp.not_audited("similar products: no customer in the request")
@blp.route("/v1/products/<string:product_id>/similar")
class SimilarProducts(MethodView):
    @blp.auth("recommend:read")
    @blp.arguments(FilterQuerySchema, location="query")
    @blp.response(200, ItemListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, product_id):
        """Products similar to this one (a product new since training: by its features)."""
        answers = state().recommendations
        return answers.similar(product_id, limit=query["limit"], filters=_filters(query)).body


@blp.not_audited("popular products: no customer in the request")
@blp.route("/v1/recommendations/popular")
class PopularProducts(MethodView):
    @blp.auth("recommend:read")
    @blp.arguments(PopularQuerySchema, location="query")
    @blp.response(200, ItemListSchema)
    def get(self, query):
        """Most-bought products, in a country when given (for visitors nobody knows)."""
        answer = state().recommendations.popular(
            query.get("country"), limit=query["limit"], filters=_filters(query)
        )
        return _answered(answer)
