"""Serving recommendations from a loaded artifact (no Flask, no Redis writes).

At load, :class:`Recommender` precomputes every item's representation (item feature matrix @
item embeddings, and the bias the same way), the known users' representations, and unit
vectors for cosine similarity. A request then costs one (d,) @ (d, n_items) product.

Scoring on request vs caching top-N per customer, measured with
``python bench/recommend_latency.py`` (a model trained on the full Online Retail data: 4,334
customers, 3,659 items, 32 components; one core of a shared 2-core machine; two runs): one
customer's scores plus the top-50 selection take 0.02-0.03 ms; whole requests without Redis
(catalog lookups in memory) take 0.3-0.4 ms for ``discover``, 1.1-1.9 ms for ``buy_again``
and 1.5-2.6 ms for ``blend`` (mostly Python over the customer's history and the filters), of
the order of the Redis round trips a request makes anyway (profile, orders, catalog). Loading
and precomputing an artifact takes 20-35 ms. A top-N cache would have to be rebuilt after
every purchase (``discover`` must exclude purchases made after training), could not serve
arbitrary filters (category, price range, stock) without over-fetching, and would cost
memory and a Redis read per customer. So we score on request and keep nothing per customer.

Who is scored how:

- a customer the model knows: their trained representation;
- a customer unknown to the model but with profile features (country, locale, tier,
  preferred categories): the normalised sum of those features' embeddings (LightFM's own
  cold start); products in their stated preferred categories rank first (the cold-start
  vector orders them), because a stated preference is stronger evidence than a few
  feature embeddings;
- nobody known: popularity, by the customer's country when the model has data for it.

Products: those the model was trained on use their trained representation; a catalog product
added since is placed by its features (category, brand, price band, words):
``Recommender.with_new_items`` for recommendations (the model holder calls it), and
``similar()`` directly.

Strategies:

- ``discover``: the model's ranking without anything the customer ever bought (their orders
  are read at request time, so purchases after training count);
- ``buy_again``: products the customer bought, scored
  ``log1p(orders) * (0.5 * due + 0.5 * recency) + 0.5 * model_percentile`` where ``due`` is a
  bell around the customer's typical re-purchase interval for that product (``exp(-z**2/2)``
  with ``z = (days since last - interval) / max(interval / 2, 7)``; one purchase only: the
  recency term), ``recency = 0.5 ** (days since last / 90)`` and ``model_percentile`` the
  product's rank in the model's scores for the customer (0.5 without a model vector);
- ``blend`` (default): slots are filled in order, each going to ``buy_again`` while repeats
  are below ``round(share * slots so far)`` and to ``discover`` otherwise, where ``share`` is
  the customer's own repeat rate (the share of their order lines after the first order that
  were repeats), clamped to [0.2, 0.8], or 0.4 with fewer than two orders (about the
  repeat share in the Online Retail data). When one side runs out the other fills.

Filters are applied to the live catalog (active products only; ``in_stock_only``; price
range) after the model ranking, fetching more candidates until ``limit`` pass. Scores are
comparable within one response only.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommend.artifact import Artifact
from recommend.dataset import FeatureConfig, item_feature_names, user_feature_names
from recommend.fallback import PopularityFallback
from recommend.repurchase import interleave, repeat_share, repurchase_candidates
from recommend.serving import (
    MAX_LIMIT,
    STRATEGIES,
    BlendConfig,
    CustomerContext,
    Filters,
    Lookup,
    product_view,
)

# re-exported: callers import the serving types from here
__all__ = [
    "MAX_LIMIT",
    "STRATEGIES",
    "BlendConfig",
    "CustomerContext",
    "Filters",
    "PopularityFallback",
    "Recommender",
]


class Recommender:
    """Scores from one artifact; thread-safe (read-only after construction)."""

    def __init__(
        self,
        artifact: Artifact,
        *,
        blend: BlendConfig | None = None,
        clock: Callable[[], float] = time.time,
    ):
        a = artifact.arrays
        self.version = artifact.version
        self.metadata = artifact.metadata
        self.blend_config = blend or BlendConfig()
        self.clock = clock
        feats = (artifact.metadata.get("params") or {}).get("features") or {}
        known = {f for f in FeatureConfig.__dataclass_fields__}
        self.features = FeatureConfig(
            **{k: (tuple(v) if k == "price_bands" else v) for k, v in feats.items() if k in known}
        )
        self.item_ids = [str(x) for x in a["item_ids"]]
        self.item_index = {p: i for i, p in enumerate(self.item_ids)}
        self.user_index = {str(u): i for i, u in enumerate(a["user_ids"])}
        self.user_feature_index = {str(f): i for i, f in enumerate(a["user_feature_names"])}
        self.item_feature_index = {str(f): i for i, f in enumerate(a["item_feature_names"])}
        self.user_embeddings = a["user_embeddings"].astype(np.float32)
        self.user_biases = a["user_biases"].astype(np.float32)
        self.item_embeddings = a["item_embeddings"].astype(np.float32)
        self.item_biases = a["item_biases"].astype(np.float32)
        n_users, n_items = len(self.user_index), len(self.item_ids)
        uf = sp.csr_matrix(
            (a["user_features_data"], a["user_features_indices"], a["user_features_indptr"]),
            shape=(n_users, len(self.user_feature_index)),
        )
        itf = sp.csr_matrix(
            (a["item_features_data"], a["item_features_indices"], a["item_features_indptr"]),
            shape=(n_items, len(self.item_feature_index)),
        )
        self.user_vectors = np.asarray(uf @ self.user_embeddings, dtype=np.float32)
        self.item_vectors = np.asarray(itf @ self.item_embeddings, dtype=np.float32)
        self.item_bias = np.asarray(itf @ self.item_biases, dtype=np.float32).ravel()
        norms = np.linalg.norm(self.item_vectors, axis=1, keepdims=True)
        self.item_unit = self.item_vectors / np.maximum(norms, 1e-9)
        self.item_categories = np.array([str(c) for c in a["item_categories"]])
        pop = a["item_popularity"].astype(np.float64)
        # deterministic tie-break: earlier items first among equal counts
        self.popularity = pop + np.linspace(1e-3, 0, n_items)
        self.country_index = {str(c): i for i, c in enumerate(a["country_names"])}
        self.country_popularity = a["country_popularity"].astype(np.float64)
        self.new_items = 0  # catalog products added by with_new_items

    # -- representations ----------------------------------------------------------------------
    def user_vector(self, ctx: CustomerContext) -> tuple[np.ndarray | None, str]:
        """The customer's representation and how it was made: ``known``, ``cold`` or ``none``."""
        # An id the model knows but that has neither a profile nor a purchase any more was
        # erased since training: its learned vector is a copy of erased data, so not used.
        exists = ctx.has_profile or bool(ctx.purchases)
        if ctx.customer_id is not None and ctx.customer_id in self.user_index and exists:
            return self.user_vectors[self.user_index[ctx.customer_id]], "known"
        names = user_feature_names(
            {
                "country": ctx.country,
                "locale": ctx.locale,
                "tier": ctx.tier,
                "preferred_categories": ctx.preferred_categories,
            },
            self.features,
        )
        idx = [self.user_feature_index[n] for n in names if n in self.user_feature_index]
        if not idx:
            return None, "none"
        return self.user_embeddings[idx].mean(axis=0), "cold"

    def item_vector(self, product: dict[str, Any]) -> np.ndarray | None:
        """A product's representation: trained, or from its catalog features when it is new."""
        pid = product.get("product_id")
        if pid in self.item_index:
            return self.item_vectors[self.item_index[pid]]
        built = self.feature_item(product)
        return None if built is None else built[0]

    def feature_item(self, product: dict[str, Any]) -> tuple[np.ndarray, float] | None:
        """Vector and bias of a product from its catalog features alone (the normalised sum
        LightFM would use without an identity feature); None when no feature is known."""
        names = item_feature_names(product, self.features, None)
        idx = [self.item_feature_index[n] for n in names if n in self.item_feature_index]
        if not idx:
            return None
        return self.item_embeddings[idx].mean(axis=0), float(self.item_biases[idx].mean())

    def with_new_items(self, products: list[dict[str, Any]]) -> Recommender:
        """A copy that can also recommend catalog products the model has not seen (new since
        training), placed by their features; ``self`` is left untouched (readers may hold it)."""
        rows = []
        for product in products:
            pid = product.get("product_id")
            if not pid or pid in self.item_index:
                continue
            built = self.feature_item(product)
            if built is not None:
                rows.append((pid, built[0], built[1], product.get("category") or "other"))
        if not rows:
            return self
        new = copy.copy(self)
        new.item_ids = self.item_ids + [r[0] for r in rows]
        new.item_index = {p: i for i, p in enumerate(new.item_ids)}
        vectors = np.stack([r[1] for r in rows]).astype(np.float32)
        new.item_vectors = np.vstack([self.item_vectors, vectors])
        new.item_bias = np.concatenate([self.item_bias, np.array([r[2] for r in rows], np.float32)])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        new.item_unit = np.vstack([self.item_unit, vectors / np.maximum(norms, 1e-9)])
        new.item_categories = np.concatenate([self.item_categories, [r[3] for r in rows]])
        new.popularity = np.concatenate([self.popularity, np.zeros(len(rows))])
        new.country_popularity = np.hstack(
            [self.country_popularity, np.zeros((self.country_popularity.shape[0], len(rows)))]
        )
        new.new_items = len(rows)
        return new

    def scores(self, vector: np.ndarray) -> np.ndarray:
        """(n_items,) model scores for a user representation."""
        return self.item_vectors @ vector + self.item_bias

    # -- ranking helpers ----------------------------------------------------------------------
    def _select(
        self,
        scores: np.ndarray,
        *,
        exclude: set[str],
        filters: Filters,
        limit: int,
        lookup: Lookup,
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """The best ``limit`` items by ``scores`` that pass ``filters`` on the live catalog."""
        scores = np.array(scores, dtype=np.float64, copy=True)
        for pid in exclude:
            i = self.item_index.get(pid)
            if i is not None:
                scores[i] = -np.inf
        if filters.category:
            scores[self.item_categories != filters.category] = -np.inf
        order_valid = int(np.isfinite(scores).sum())
        out: list[tuple[str, float, dict[str, Any]]] = []
        taken = 0
        want = min(limit * 3 + 10, order_valid)
        while len(out) < limit and taken < order_valid:
            want = min(max(want, taken + limit), order_valid)
            top = (
                np.argpartition(-scores, want - 1)[:want]
                if want < len(scores)
                else np.arange(len(scores))
            )
            top = top[np.argsort(-scores[top], kind="stable")][taken:want]
            top = [i for i in top if np.isfinite(scores[i])]
            docs = lookup(self.item_ids[i] for i in top)
            for i in top:
                pid = self.item_ids[i]
                doc = docs.get(pid)
                if filters.accepts(doc):
                    out.append((pid, float(scores[i]), doc))
                    if len(out) == limit:
                        break
            taken = want
            want *= 2
        return out

    # -- strategies ---------------------------------------------------------------------------
    def popular(
        self,
        country: str | None = None,
        *,
        limit: int = 10,
        filters: Filters | None = None,
        exclude: set[str] | None = None,
        lookup: Lookup,
    ) -> list[dict[str, Any]]:
        """Most-bought products (by distinct buyers), in ``country`` when the model has it."""
        limit = max(1, min(limit, MAX_LIMIT))
        filters = filters or Filters()
        row = self.country_index.get(country) if country else None
        if row is not None and self.country_popularity[row].sum() > 0:
            scores = self.country_popularity[row] + self.popularity / (self.popularity.max() + 1)
            reason = f"popular in your country ({country})"
        else:
            scores, reason = self.popularity, "popular with customers right now"
        picked = self._select(
            scores, exclude=exclude or set(), filters=filters, limit=limit, lookup=lookup
        )
        return [self._item(pid, doc, score, reason, "popular") for pid, score, doc in picked]

    def recommend(
        self,
        ctx: CustomerContext,
        *,
        strategy: str = "blend",
        limit: int = 10,
        filters: Filters | None = None,
        lookup: Lookup,
    ) -> dict[str, Any]:
        """Top ``limit`` products for a customer: ``{"items": [...], "basis": known|cold|
        popularity, "strategy": ...}``; each item has score, reason and model_version."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy}")
        limit = max(1, min(limit, MAX_LIMIT))
        filters = filters or Filters()
        vector, basis = self.user_vector(ctx)
        bought = {ln.product_id for ln in ctx.purchases}
        repeats: list[dict[str, Any]] = []
        if strategy in ("buy_again", "blend") and ctx.purchases:
            repeats = self.buy_again(ctx, vector, limit=limit, filters=filters, lookup=lookup)
        news: list[dict[str, Any]] = []
        if strategy in ("discover", "blend"):
            news = self.discover(
                ctx, vector, basis=basis, limit=limit, filters=filters, lookup=lookup
            )
        if strategy == "buy_again":
            items = repeats
        elif strategy == "discover":
            items = news
        else:
            items = interleave(repeats, news, self.repeat_share(ctx), limit)
        if strategy != "buy_again" and len(items) < limit:
            have = {it["product_id"] for it in items}
            extra = self.popular(
                ctx.country,
                limit=limit - len(items),
                filters=filters,
                exclude=have | bought,
                lookup=lookup,
            )
            items += extra
        if vector is None:
            basis = "popularity"
        return {"items": items[:limit], "basis": basis, "strategy": strategy}

    def discover(
        self,
        ctx: CustomerContext,
        vector: np.ndarray | None,
        *,
        basis: str = "known",
        limit: int,
        filters: Filters,
        lookup: Lookup,
    ) -> list[dict[str, Any]]:
        bought = {ln.product_id for ln in ctx.purchases}
        if vector is None:
            return self.popular(
                ctx.country, limit=limit, filters=filters, exclude=bought, lookup=lookup
            )
        scores = self.scores(vector)
        if basis == "cold" and ctx.preferred_categories:
            # a new customer's stated preferences come first; the cold-start score orders them
            span = float(scores.max() - scores.min()) + 1.0
            scores = scores + span * np.isin(self.item_categories, ctx.preferred_categories)
        picked = self._select(scores, exclude=bought, filters=filters, limit=limit, lookup=lookup)
        anchors = [
            self.item_index[p]
            for p in dict.fromkeys(ln.product_id for ln in ctx.purchases)
            if p in self.item_index
        ]
        anchor_names: dict[str, dict] = {}
        best: dict[str, tuple[int, float]] = {}
        if anchors:
            unit_anchor = self.item_unit[anchors]
            for pid, _, _ in picked:
                sims = unit_anchor @ self.item_unit[self.item_index[pid]]
                j = int(np.argmax(sims))
                best[pid] = (anchors[j], float(sims[j]))
            anchor_names = lookup(self.item_ids[a] for a, s in best.values())
        prefs = set(ctx.preferred_categories)
        out = []
        for pid, score, doc in picked:
            reason = "recommended for you from what similar customers buy"
            anchor = best.get(pid)
            if anchor and anchor[1] >= self.blend_config.anchor_min_cosine:
                aid = self.item_ids[anchor[0]]
                name = (anchor_names.get(aid) or {}).get("name") or aid
                reason = f"customers who bought {name} also bought this"
            elif doc.get("category") in prefs:
                reason = f"matches your preference for {doc['category']}"
            elif not ctx.purchases and ctx.country:
                reason = f"liked by customers like you ({ctx.country})"
            out.append(self._item(pid, doc, score, reason, "discover"))
        return out

    def buy_again(
        self,
        ctx: CustomerContext,
        vector: np.ndarray | None,
        *,
        limit: int,
        filters: Filters,
        lookup: Lookup,
    ) -> list[dict[str, Any]]:
        """The customer's own products ranked for re-purchase (``recommend.repurchase``)."""
        cfg = self.blend_config
        candidates = repurchase_candidates(ctx.purchases, self.clock(), cfg)
        model_pct: dict[str, float] = {}
        if vector is not None:
            scores = self.scores(vector)
            ordered = np.sort(scores)
            n_items = max(len(scores) - 1, 1)
            model_pct = {
                c.product_id: float(
                    np.searchsorted(ordered, scores[self.item_index[c.product_id]]) / n_items
                )
                for c in candidates
                if c.product_id in self.item_index
            }
        docs = lookup(c.product_id for c in candidates)
        scored = []
        for c in candidates:
            doc = docs.get(c.product_id)
            if not filters.accepts(doc):
                continue
            score = c.history_score + cfg.model_weight * model_pct.get(c.product_id, 0.5)
            scored.append((score, c.product_id, doc, c.reason))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [self._item(pid, doc, s, r, "buy_again") for s, pid, doc, r in scored[:limit]]

    def repeat_share(self, ctx: CustomerContext) -> float:
        return repeat_share(ctx.purchases, self.blend_config)

    def similar(
        self,
        product: dict[str, Any],
        *,
        limit: int = 10,
        filters: Filters | None = None,
        lookup: Lookup,
    ) -> list[dict[str, Any]]:
        """Products closest to ``product`` by cosine of item representations; a product the
        model has not seen is placed by its catalog features. [] when it has none we know."""
        limit = max(1, min(limit, MAX_LIMIT))
        vector = self.item_vector(product)
        if vector is None:
            return []
        unit = vector / max(float(np.linalg.norm(vector)), 1e-9)
        sims = self.item_unit @ unit
        pid = product.get("product_id")
        known = pid in self.item_index
        name = product.get("name") or pid
        reason = (
            f"customers who bought {name} also bought this"
            if known
            else f"shares category and features with {name}"
        )
        picked = self._select(
            sims, exclude={pid}, filters=filters or Filters(), limit=limit, lookup=lookup
        )
        return [self._item(p, doc, s, reason, "similar") for p, s, doc in picked]

    def _item(
        self, pid: str, doc: dict[str, Any] | None, score: float, reason: str, source: str
    ) -> dict[str, Any]:
        return {
            **product_view(pid, doc),
            "score": round(float(score), 6),
            "reason": reason,
            "source": source,
            "model_version": self.version,
        }
