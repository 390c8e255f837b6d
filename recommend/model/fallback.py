"""Serving without a model: popularity from the last training run, or catalog order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import redis

from core.keys import SharedKeys
from recommend.catalog.products import Catalog
from recommend.model.serving import MAX_LIMIT, CustomerContext, Filters, Lookup, product_view


class PopularityFallback:
    """Serving without a model: the popularity list training last wrote
    (``SharedKeys.popular_products``) or, when there is none, catalog products in id order
    (``source="catalog"``). Same ``popular``/``recommend`` methods as :class:`Recommender`:
    both are a :class:`~recommend.model.serving.RecommendationSource`."""

    version = None

    def __init__(self, ranked: list[str], source: str = "popularity"):
        self.ranked = ranked
        self.source = source

    def _pick(
        self, filters: Filters, exclude: set[str], limit: int, lookup: Lookup
    ) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        ids = [p for p in self.ranked if p not in exclude]
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            docs = lookup(chunk)
            for pid in chunk:
                if filters.accepts(docs.get(pid)):
                    out.append((pid, docs[pid]))
                    if len(out) == limit:
                        return out
        return out

    def popular(
        self,
        country: str | None = None,
        *,
        limit: int = 10,
        filters: Filters | None = None,
        exclude: set[str] | None = None,
        lookup: Lookup,
    ) -> list[dict[str, Any]]:
        limit = max(1, min(limit, MAX_LIMIT))
        reason = (
            "popular with customers right now"
            if self.source == "popularity"
            else ("from the catalog")
        )
        picked = self._pick(filters or Filters(), exclude or set(), limit, lookup)
        return [
            {
                **product_view(pid, doc),
                "score": round(1.0 - i / len(picked), 6),
                "reason": reason,
                "source": "popular",
                "model_version": None,
            }
            for i, (pid, doc) in enumerate(picked)
        ]

    def recommend(
        self,
        ctx: CustomerContext,
        *,
        strategy: str = "blend",
        limit: int = 10,
        filters: Filters | None = None,
        lookup: Lookup,
        now: float | None = None,  # the evaluation clock: popular lists have no recency term
    ) -> dict[str, Any]:
        bought = {ln.product_id for ln in ctx.purchases}
        items = self.popular(
            ctx.country, limit=limit, filters=filters, exclude=bought, lookup=lookup
        )
        return {"items": items, "basis": "popularity", "strategy": strategy}


@dataclass(frozen=True)
class PopularSnapshot:
    """The popular list and its catalog documents, held in memory for serving without Redis."""

    fallback: PopularityFallback
    docs: dict[str, dict]
    taken_at: float

    def lookup(self, product_ids: Iterable[str]) -> dict[str, dict]:
        return {p: self.docs[p] for p in product_ids if p in self.docs}


def load_fallback(client: redis.Redis, keys: SharedKeys, size: int) -> PopularityFallback:
    """The fallback over the popular list training last wrote (its first ``size``), or over
    the first ``size`` catalog products when there is none. Raises ``redis.RedisError``."""
    # the client decodes responses (service/redis_connect.py): lists of str
    ranked = cast("list[str]", client.zrevrange(keys.popular_products(), 0, size - 1))
    if ranked:
        return PopularityFallback(list(ranked), "popularity")
    return PopularityFallback(Catalog(client, keys).product_ids(size), "catalog")
