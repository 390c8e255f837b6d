"""Recommendations for a customer, similar products, popular products (`recommend:read`).

Every answer comes from the worker's loaded model (``service/model_holder.py``) or, without one,
from popularity; ``model_version`` says which (null for the fallback). While Redis is
unreachable, customer recommendations and popular products come from the worker's in-memory
popular list (``model_version`` null, header ``Rapport-Degraded: store-unavailable``).
"""

from __future__ import annotations

import time
from decimal import Decimal

import marshmallow as ma
import redis
from flask.views import MethodView

from core.errors import InvalidInput
from profiles.document import is_customer_id
from recommend.engage.contact import ContactPolicy
from recommend.errors import ProductNotFound
from recommend.model.context import read_customer
from recommend.model.recommender import MAX_LIMIT, STRATEGIES, CustomerContext, Filters, Recommender
from service.extensions import Blueprint, catalog_cache
from service.model_holder import model_holder
from service.schemas import StrictSchema
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
    min_price = ma.fields.String(validate=ma.validate.Regexp(PRICE_RE, error="a decimal string"))
    max_price = ma.fields.String(validate=ma.validate.Regexp(PRICE_RE, error="a decimal string"))


class RecommendationQuerySchema(FilterQuerySchema):
    strategy = ma.fields.String(
        load_default="blend",
        validate=ma.validate.OneOf(STRATEGIES),
        metadata={
            "description": "`discover`: only products never bought; `buy_again`: the "
            "customer's own history ranked for re-purchase; `blend` (default): both."
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
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInput("min_price is above max_price", field="min_price")
    return Filters(
        category=query.get("category"),
        in_stock_only=query["in_stock_only"],
        min_price=lo,
        max_price=hi,
    )


@blp.route("/v1/profiles/<string:customer_id>/recommendations")
class CustomerRecommendations(MethodView):
    @blp.auth("recommend:read")
    @blp.arguments(RecommendationQuerySchema, location="query")
    @blp.response(200, RecommendationsSchema)
    def get(self, query, customer_id):
        """Top products for a customer (an unknown customer gets popular products)."""
        filters = _filters(query)
        st = state()
        holder = model_holder()
        loaded = holder.current  # one reference for the whole request
        try:
            # Products offered to this customer recently rest (the contact policy's rule for
            # next-best actions holds here too): ask for enough to fill the list without them.
            # They are read by the context script (one round trip); a merge alias asks the
            # policy about its target.
            policy = ContactPolicy(st.redis, st.keys, time.time)
            ctx, resting = read_customer(
                st.redis, st.keys, customer_id, offered_since=policy.rest_start()
            )
            if resting is None:
                resting = set()
                if ctx.customer_id:
                    resting = set(policy.customer_state(ctx.customer_id, None)["resting_products"])
            out = loaded.recommender.recommend(
                ctx,
                strategy=query["strategy"],
                limit=min(query["limit"] + len(resting), MAX_LIMIT),
                filters=filters,
                lookup=catalog_cache().lookup,
            )
            if resting:
                kept = [i for i in out["items"] if i["product_id"] not in resting]
                out = {**out, "items": kept[: query["limit"]]}
        except (redis.ConnectionError, redis.TimeoutError):
            # Redis unreachable: the worker's in-memory popular list (503 before its first copy)
            snapshot = holder.offline_fallback()
            if snapshot is None:
                raise
            cid = customer_id if is_customer_id(customer_id) else None
            out = snapshot.fallback.recommend(
                CustomerContext(customer_id=cid),
                strategy=query["strategy"],
                limit=query["limit"],
                filters=filters,
                lookup=snapshot.lookup,
            )
            headers = {"Rapport-Degraded": "store-unavailable"}
            return {"customer_id": cid, "model_version": None, **out}, 200, headers
        return {"customer_id": ctx.customer_id, "model_version": loaded.version, **out}


@blp.route("/v1/products/<string:product_id>/similar")
class SimilarProducts(MethodView):
    @blp.auth("recommend:read")
    @blp.arguments(FilterQuerySchema, location="query")
    @blp.response(200, ItemListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, product_id):
        """Products similar to this one (a product new since training: by its features)."""
        lookup = catalog_cache().lookup
        loaded = model_holder().current
        rec = loaded.recommender
        product = lookup([product_id]).get(product_id)
        known = isinstance(rec, Recommender) and product_id in rec.item_index
        if product is None and not known:
            raise ProductNotFound(f"no product with id {product_id}")
        product = product or {"product_id": product_id}
        filters = _filters(query)
        if isinstance(rec, Recommender):
            items = rec.similar(product, limit=query["limit"], filters=filters, lookup=lookup)
        else:  # no model: the same category, most popular first
            same = Filters(
                category=filters.category or product.get("category"),
                in_stock_only=filters.in_stock_only,
                min_price=filters.min_price,
                max_price=filters.max_price,
            )
            items = rec.popular(
                limit=query["limit"], filters=same, exclude={product_id}, lookup=lookup
            )
        return {"model_version": loaded.version, "items": items}


@blp.route("/v1/recommendations/popular")
class PopularProducts(MethodView):
    @blp.auth("recommend:read")
    @blp.arguments(PopularQuerySchema, location="query")
    @blp.response(200, ItemListSchema)
    def get(self, query):
        """Most-bought products, in a country when given (for visitors nobody knows)."""
        holder = model_holder()
        loaded = holder.current
        filters = _filters(query)
        try:
            items = loaded.recommender.popular(
                query.get("country"),
                limit=query["limit"],
                filters=filters,
                lookup=catalog_cache().lookup,
            )
        except (redis.ConnectionError, redis.TimeoutError):
            snapshot = holder.offline_fallback()  # Redis unreachable: the in-memory list
            if snapshot is None:
                raise
            items = snapshot.fallback.popular(
                limit=query["limit"], filters=filters, lookup=snapshot.lookup
            )
            headers = {"Rapport-Degraded": "store-unavailable"}
            return {"model_version": None, "items": items}, 200, headers
        return {"model_version": loaded.version, "items": items}
