"""What the three recommendation requests do, over whatever serves now: for one customer,
similar to one product, popular.

For a customer: read the customer through ``profiles/`` (one round trip, with the products
offered since the rest start), ask the serving source for enough items to fill the list without
the products that rest after an offer (the contact policy's rule for next-best actions holds
here too), and leave those out. While Redis is unreachable, customer recommendations and
popular products come from the worker's in-memory popular list (``degraded``); before its first
copy the Redis error is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from profiles.customer_view import CustomerView
from profiles.document import is_customer_id
from profiles.errors import ProfileNotFound
from recommend.errors import ProductNotFound
from recommend.model.context import context_of
from recommend.model.fallback import PopularSnapshot
from recommend.model.recommender import Recommender
from recommend.model.serving import (
    MAX_LIMIT,
    CustomerContext,
    Filters,
    Lookup,
    RecommendationSource,
)

UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class Serving(Protocol):
    """What serves now: the source and its model version (None for the fallback)."""

    @property
    def recommender(self) -> RecommendationSource: ...

    @property
    def version(self) -> str | None: ...


@dataclass(frozen=True)
class Answer:
    """One answer: its body and whether it came from the in-memory list (Redis down)."""

    body: dict[str, Any]
    degraded: bool = False


class RecommendationAnswers:
    """The recommendation use-cases. ``serving`` gives what serves now (read once per
    request), ``offline`` the in-memory popular list or None, ``rest_start`` the epoch second
    since which an offered product still rests (None: nothing rests)."""

    def __init__(
        self,
        view: CustomerView,
        serving: Callable[[], Serving],
        lookup: Lookup,
        *,
        offline: Callable[[], PopularSnapshot | None],
        rest_start: Callable[[], float] | None = None,
    ):
        self.view = view
        self.serving = serving
        self.lookup = lookup
        self.offline = offline
        self.rest_start = rest_start

    def for_customer(
        self,
        customer_id: str,
        *,
        strategy: str,
        limit: int,
        filters: Filters,
        now: float | None = None,
    ) -> Answer:
        """Top products for a customer: one with a profile, with purchases, or known to the
        model (a new customer gets cold-start picks); anybody else is ``ProfileNotFound``.
        ``now`` (epoch s, default the wall clock): the evaluation clock of every recency term.
        A ``buy_again`` item that is not the customer's own product fills the list and says
        so: ``filled: true`` (its ``source`` says where it came from)."""
        loaded = self.serving()  # one reference for the whole request
        try:
            since = self.rest_start() if self.rest_start is not None else None
            record = self.view.read(customer_id, offered_since=since)
            if (
                record.profile is None
                and not record.purchases
                and (not _knows(loaded, customer_id) or self.view.profiles.was_erased(customer_id))
            ):
                # nobody: never created, or erased (as GET /v1/profiles/{id} answers; a model
                # trained before the erasure still knows the id)
                raise ProfileNotFound(f"no profile with id {customer_id}")
            resting = record.offered or set()
            out = loaded.recommender.recommend(
                context_of(record),
                strategy=strategy,
                limit=min(limit + len(resting), MAX_LIMIT),
                filters=filters,
                lookup=self.lookup,
                now=now,
            )
        except UNREACHABLE as exc:
            snapshot = self._snapshot(exc)
            cid = customer_id if is_customer_id(customer_id) else None
            out = snapshot.fallback.recommend(
                CustomerContext(customer_id=cid),
                strategy=strategy,
                limit=limit,
                filters=filters,
                lookup=snapshot.lookup,
            )
            out = _mark_fill(out, strategy)
            return Answer({"customer_id": cid, "model_version": None, **out}, degraded=True)
        if resting:
            kept = [i for i in out["items"] if i["product_id"] not in resting]
            out = {**out, "items": kept[:limit]}
        out = _mark_fill(out, strategy)
        return Answer({"customer_id": record.customer_id, "model_version": loaded.version, **out})

    def similar(self, product_id: str, *, limit: int, filters: Filters) -> Answer:
        """Products similar to this one (a product new since training: by its features;
        without a model: the same category, most popular first)."""
        loaded = self.serving()
        rec = loaded.recommender
        product = self.lookup([product_id]).get(product_id)
        known = isinstance(rec, Recommender) and product_id in rec.item_index
        if product is None and not known:
            raise ProductNotFound(f"no product with id {product_id}")
        product = product or {"product_id": product_id}
        if isinstance(rec, Recommender):
            items = rec.similar(product, limit=limit, filters=filters, lookup=self.lookup)
        else:
            same = Filters(
                category=filters.category or product.get("category"),
                in_stock_only=filters.in_stock_only,
                min_price=filters.min_price,
                max_price=filters.max_price,
            )
            items = rec.popular(limit=limit, filters=same, exclude={product_id}, lookup=self.lookup)
        return Answer({"model_version": loaded.version, "items": items})

    def popular(self, country: str | None, *, limit: int, filters: Filters) -> Answer:
        """Most-bought products, in a country when given (for visitors nobody knows)."""
        loaded = self.serving()
        try:
            items = loaded.recommender.popular(
                country, limit=limit, filters=filters, lookup=self.lookup
            )
        except UNREACHABLE as exc:
            snapshot = self._snapshot(exc)
            items = snapshot.fallback.popular(limit=limit, filters=filters, lookup=snapshot.lookup)
            return Answer({"model_version": None, "items": items}, degraded=True)
        return Answer({"model_version": loaded.version, "items": items})

    def _snapshot(self, error: Exception) -> PopularSnapshot:
        snapshot = self.offline()
        if snapshot is None:  # no copy yet: the Redis error stands (a 503 upstream)
            raise error
        return snapshot


def _mark_fill(out: dict[str, Any], strategy: str) -> dict[str, Any]:
    """A ``buy_again`` answer's items that are not the customer's own products (``blend``'s
    new products, then popular ones: the list was shorter than ``limit``) get ``filled``."""
    if strategy != "buy_again":
        return out
    items = [it if it["source"] == "buy_again" else {**it, "filled": True} for it in out["items"]]
    return {**out, "items": items}


def _knows(loaded: Serving, customer_id: str) -> bool:
    """The serving model was trained on this customer (a model from a CSV knows customers
    that have no profile in this store)."""
    rec = loaded.recommender
    return isinstance(rec, Recommender) and customer_id in rec.user_index
