"""Serving recommendations from a loaded artifact (no Flask, no Redis writes).

At load, :class:`Recommender` precomputes every item's representation (item feature matrix @
item embeddings, and the bias the same way), the known users' representations, and unit
vectors for cosine similarity. A request then costs one (d,) @ (d, n_items) product.

We score on request and keep nothing per customer: a top-N cache would have to be rebuilt
after every purchase (``discover`` must exclude purchases made after training), could not
serve arbitrary filters (category, price range, stock) without over-fetching, and would cost
memory and a Redis read per customer. What a request costs is measured in docs/benchmarks.md
(``bench/recommend_latency.py``, ``bench/request_cost.py``), not written here.

Who is scored how:

- a customer the model knows: their trained representation;
- a customer unknown to the model but with profile features (country, locale, tier,
  preferred categories) gets a cold-start representation from those features. With a model
  trained on features, the mean of those features' embeddings (LightFM's own cold start). With
  an ids-only model (the tuned production default: features lowered known customers'
  precision on the benchmark data) there are no feature embeddings, so training derives them
  from the trained embeddings (``recommend.model.coldstart``): ``country:FR`` is the mean vector of
  the known customers in FR, ``pref:bags`` the mean of those who buy bags (weighted by their
  share of bag purchases), and the customer's vector is the IDF-weighted mean of those. We
  chose this over (b) popularity by country/category alone (it keeps a personal order within
  the category) and (c) a second, feature-trained model (twice the training, two artifacts).
  In both cases products in their stated preferred categories rank first (the cold-start
  vector orders them), because a stated preference is stronger evidence than a few
  feature embeddings;
- nobody known: popularity, by the customer's country when the model has data for it.

Products: those the model was trained on use their trained representation; a catalog product
added since is placed by its features (category, brand, price band, description words): with
a feature model the mean of its feature embeddings, with an ids-only model the IDF-weighted
mean of the derived ones (``cat:bags`` = mean vector and bias of the bags; a word in every
description weighs nothing). ``Recommender.with_new_items`` does it for recommendations (the
model holder calls it), ``similar()`` directly.

Strategies (the ranking rules of ``recommend.model.scoring``, chosen on the quality benchmark's
validation window; docs/benchmarks.md):

- ``discover``: products the customer never bought (their orders are read at request time,
  so purchases after training count), ranked by ``z(model) + 1.5 * z(trend) + 0.2 *
  z(content)``: ``trend`` = log1p(distinct buyers in the last 7 days of the training data,
  stored in the artifact), ``content`` = cosine between the product's description words
  (TF-IDF, built at load from the descriptions stored in the artifact) and the customer's
  purchase history (recency-weighted, half-life 60 days);
- ``buy_again``: products the customer bought, scored
  ``log1p(orders) * (0.5 * due + 0.5 * recency) + 0.5 * model_percentile`` where ``due`` is a
  bell around the customer's typical re-purchase interval for that product (``exp(-z**2/2)``
  with ``z = (days since last - interval) / max(interval / 2, 7)``; one purchase only: the
  recency term), ``recency = 0.5 ** (days since last / 90)`` and ``model_percentile`` the
  product's rank in the model's scores for the customer (0.5 without a model vector);
- ``blend`` (default): one scale, ``log1p(distinct orders)`` for a product the customer
  bought (0 otherwise) ``+ 0.3 * z(discover score)``: a product bought in several orders stays
  on top, one bought once competes with the best new products, new products fill the rest.
  Bought products carry the buy-again reason ("bought 4 times, usually every 30 days"), new
  ones the discover reason. Without a model vector (nobody known): the customer's repeats
  by history, slots by their repeat share, then popular products.

The per-request cost of the rules: one sparse (1, n_items) @ (n_items, n_words) @ (n_words,
n_items) product for the content term; the word matrix and trend are built at load. Whatever
does not depend on the customer is derived once per model and catalog (``_precompute``): the
trend term, integer category codes and each category's items (filters and stated preferences
compare codes, not strings), the popularity tie-break. A request computes the model scores once
(float32, like the model) and a few float64 vectors of the rules; the selection only reads
them (argpartition for the top candidates, exclusions skipped as it walks), the buy-again
percentile counts the scores below each candidate instead of sorting the catalog.

Filters are applied to the live catalog (active products only; ``in_stock_only``; price
range) after the model ranking, fetching more candidates until ``limit`` pass. Scores are
comparable within one response only.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommend.model import scoring
from recommend.model.artifact import Artifact
from recommend.model.coldstart import ALL_FEATURES, DerivedFeatures
from recommend.model.dataset import FeatureConfig, item_feature_names, user_feature_names
from recommend.model.fallback import PopularityFallback
from recommend.model.repurchase import interleave, repeat_share, repurchase_candidates
from recommend.model.serving import (
    MAX_LIMIT,
    STRATEGIES,
    BlendConfig,
    CustomerContext,
    Filters,
    Lookup,
    RecommendationSource,
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
    "RecommendationSource",
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
        options: dict[str, Any] = {
            k: (tuple(v) if k == "price_bands" else v) for k, v in feats.items() if k in known
        }
        self.features = FeatureConfig(**options)
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
        # ranking terms of recommend.model.scoring (absent from artifacts made before them)
        self.item_trend = a["item_trend"].astype(np.float64) if "item_trend" in a else None
        self.item_descriptions = (
            [str(d) for d in a["item_descriptions"]] if "item_descriptions" in a else None
        )
        self.item_words = (
            scoring.word_matrix(self.item_descriptions) if self.item_descriptions else None
        )
        self.trending = self._trending(self.item_trend)
        # cold start: LightFM's feature embeddings when the model has metadata features on
        # that side, else the tables derived from trained embeddings (recommend.model.coldstart)
        self.cold_users = self._derived(
            a, "user", n_users, self.user_index, self.user_feature_index
        )
        self.cold_items = self._derived(
            a, "item", n_items, self.item_index, self.item_feature_index
        )
        self._precompute()

    def _precompute(self) -> None:
        """What every request would otherwise recompute over the whole catalog, derived once
        per model and catalog (``with_new_items`` calls it again): integer category codes
        (comparing codes, not unicode strings), the item indices of each category, the trend
        term of the discover score, and the popularity tie-break and per-country data flags
        of :meth:`popular`."""
        names, codes = np.unique(self.item_categories, return_inverse=True)
        self.category_code = {str(c): k for k, c in enumerate(names)}
        self.item_category_codes = codes.astype(np.int32)
        order = np.argsort(self.item_category_codes, kind="stable")
        bounds = np.searchsorted(self.item_category_codes[order], np.arange(len(names) + 1))
        self.category_items = [order[bounds[k] : bounds[k + 1]] for k in range(len(names))]
        self.trend_term = scoring.trend_term(self.item_trend)
        pop = np.asarray(self.popularity)
        self.popularity_tiebreak = pop / (pop.max() + 1) if len(pop) else pop
        self.country_has_data = np.asarray(self.country_popularity).sum(axis=1) > 0

    @staticmethod
    def _derived(a, side: str, n_rows: int, ids, feature_index) -> DerivedFeatures | None:
        if any(f not in ids for f in feature_index):  # the model has its own features
            return None
        if f"cold_{side}_feature_names" not in a:
            return None
        return DerivedFeatures(
            a[f"cold_{side}_feature_names"],
            a[f"cold_{side}_feature_vectors"],
            a[f"cold_{side}_feature_counts"],
            n_rows,
            a.get(f"cold_{side}_feature_biases"),
        )

    @staticmethod
    def _trending(trend: np.ndarray | None) -> np.ndarray:
        """(n_items,) bool: the top 2% of items by recent buyers (for the reason text)."""
        if trend is None or not np.any(trend > 0):
            return np.zeros(0 if trend is None else len(trend), dtype=bool)
        return trend >= max(float(np.quantile(trend, 0.98)), 1e-9)

    # -- representations ----------------------------------------------------------------------
    def user_vector(self, ctx: CustomerContext) -> tuple[np.ndarray | None, str]:
        """The customer's representation and how it was made: ``known``, ``cold`` or ``none``."""
        # An id the model knows but that has neither a profile nor a purchase any more was
        # erased since training: its learned vector is a copy of erased data, so not used.
        exists = ctx.has_profile or bool(ctx.purchases)
        if ctx.customer_id is not None and ctx.customer_id in self.user_index and exists:
            return self.user_vectors[self.user_index[ctx.customer_id]], "known"
        profile = {
            "country": ctx.country,
            "locale": ctx.locale,
            "tier": ctx.tier,
            "preferred_categories": ctx.preferred_categories,
        }
        if self.cold_users is not None:
            built = self.cold_users.combine(user_feature_names(profile, ALL_FEATURES))
            return (None, "none") if built is None else (built[0], "cold")
        names = user_feature_names(profile, self.features)
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
        LightFM would use without an identity feature, or the IDF-weighted mean of the derived
        feature tables for an ids-only model); None when no feature is known."""
        if self.cold_items is not None:
            return self.cold_items.combine(item_feature_names(product, ALL_FEATURES, None))
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
        if self.item_trend is not None:
            new.item_trend = np.concatenate([self.item_trend, np.zeros(len(rows))])
            new.trending = np.concatenate([self.trending, np.zeros(len(rows), dtype=bool)])
        if self.item_descriptions is not None:
            docs = {p.get("product_id"): p for p in products}
            new.item_descriptions = self.item_descriptions + [
                str(docs[r[0]].get("description") or docs[r[0]].get("name") or "") for r in rows
            ]
            new.item_words = scoring.word_matrix(new.item_descriptions)
        new._precompute()
        return new

    def scores(self, vector: np.ndarray) -> np.ndarray:
        """(n_items,) model scores for a user representation (float32 like the model)."""
        # np.asarray: plain views of the shared memory maps (recommend.model.shared_arrays), so the
        # arithmetic does not pay for np.memmap's subclass bookkeeping on every result
        out = np.asarray(self.item_vectors) @ np.asarray(vector)
        out += np.asarray(self.item_bias)
        return out

    def category_mask(self, categories: list[str]) -> np.ndarray:
        """(n_items,) bool: the items in any of ``categories`` (by integer category code)."""
        wanted = np.zeros(len(self.category_items), dtype=bool)
        wanted[[self.category_code[c] for c in categories if c in self.category_code]] = True
        return wanted[self.item_category_codes]

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
        """The best ``limit`` items by ``scores`` that pass ``filters`` on the live catalog
        (highest score first, the lower item index first among equal scores). ``scores`` is
        only read: a category filter ranks that category's items (precomputed indices), and
        excluded items are skipped as the ranking is walked."""
        candidates: np.ndarray | None = None
        if filters.category:
            code = self.category_code.get(filters.category)
            if code is None:
                return []
            candidates = self.category_items[code]
            scores = scores[candidates]
        skip = {i for i in map(self.item_index.get, exclude) if i is not None}
        n = len(scores)
        out: list[tuple[str, float, dict[str, Any]]] = []
        taken = 0
        want = limit * 3 + 10 + len(skip)
        while len(out) < limit and taken < n:
            want = min(max(want, taken + limit), n)
            top = np.argpartition(scores, n - want)[n - want :] if want < n else np.arange(n)
            top = top[np.lexsort((top, -scores[top]))][taken:want]
            items = top if candidates is None else candidates[top]
            picked = [
                (i, v)
                for i, v in zip(items.tolist(), scores[top].tolist(), strict=True)
                if math.isfinite(v) and i not in skip
            ]
            docs = lookup(self.item_ids[i] for i, _ in picked)
            for i, score in picked:
                pid = self.item_ids[i]
                doc = docs.get(pid)
                if doc is not None and filters.accepts(doc):
                    out.append((pid, score, doc))
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
        if row is not None and self.country_has_data[row]:
            scores = np.asarray(self.country_popularity[row]) + self.popularity_tiebreak
            reason = f"popular in your country ({country})"
        else:
            scores, reason = np.asarray(self.popularity), "popular with customers right now"
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
        if strategy == "buy_again":
            items = (
                self.buy_again(ctx, vector, limit=limit, filters=filters, lookup=lookup)
                if ctx.purchases
                else []
            )
        elif strategy == "discover":
            items = self.discover(
                ctx, vector, basis=basis, limit=limit, filters=filters, lookup=lookup
            )
        elif vector is not None:
            items = self.blend(
                ctx, vector, basis=basis, limit=limit, filters=filters, lookup=lookup
            )
        else:  # no model vector: the customer's repeats by history, then popular products
            repeats = (
                self.buy_again(ctx, None, limit=limit, filters=filters, lookup=lookup)
                if ctx.purchases
                else []
            )
            news = self.discover(
                ctx, None, basis=basis, limit=limit, filters=filters, lookup=lookup
            )
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

    def discover_scores(
        self, ctx: CustomerContext, vector: np.ndarray, basis: str = "known"
    ) -> np.ndarray:
        """(n_items,) ``scoring.discover_scores``: z(model) + 1.5 z(7-day trend) + 0.2
        z(description-word similarity to the customer's history, half-life 60 days). A
        cold-start customer's stated preferred categories are lifted above everything else."""
        content = None
        if self.item_words is not None and ctx.purchases:
            last: dict[int, float] = {}
            for ln in ctx.purchases:
                i = self.item_index.get(ln.product_id)
                if i is not None and ln.purchased_at > last.get(i, -np.inf):
                    last[i] = ln.purchased_at
            if last:
                weights = scoring.history_weights(last, self.clock())
                content = scoring.content_scores(weights, self.item_words)
        scores = scoring.discover_from_terms(self.scores(vector), self.trend_term, content)
        if basis == "cold" and ctx.preferred_categories:
            # a new customer's stated preferences come first; the cold-start score orders them
            span = float(scores.max() - scores.min()) + 1.0
            scores[self.category_mask(ctx.preferred_categories)] += span
        return scores

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
        """Products the customer never bought (purchases after training included), ranked by
        :meth:`discover_scores`; popular products without a model vector."""
        bought = {ln.product_id for ln in ctx.purchases}
        if vector is None:
            return self.popular(
                ctx.country, limit=limit, filters=filters, exclude=bought, lookup=lookup
            )
        scores = self.discover_scores(ctx, vector, basis)
        picked = self._select(scores, exclude=bought, filters=filters, limit=limit, lookup=lookup)
        reasons = self._discover_reasons(ctx, [pid for pid, _, _ in picked], lookup)
        return [self._item(pid, doc, score, reasons[pid], "discover") for pid, score, doc in picked]

    def blend(
        self,
        ctx: CustomerContext,
        vector: np.ndarray,
        *,
        basis: str = "known",
        limit: int,
        filters: Filters,
        lookup: Lookup,
    ) -> list[dict[str, Any]]:
        """Repeats and new products on one scale (``scoring.blend_scores``): log1p(distinct
        orders) for a product the customer bought, plus 0.3 z(discover score) for every
        product. Bought products keep the buy-again reason, the others the discover one."""
        orders: dict[int, set] = {}
        for ln in ctx.purchases:
            i = self.item_index.get(ln.product_id)
            if i is not None:
                orders.setdefault(i, set()).add(ln.order_id or ln.purchased_at)
        bought = np.fromiter(orders, dtype=np.int64, count=len(orders))
        counts = np.fromiter(map(len, orders.values()), dtype=np.float64, count=len(orders))
        scores = scoring.blend_scores_sparse(
            self.discover_scores(ctx, vector, basis), bought, counts
        )
        picked = self._select(scores, exclude=set(), filters=filters, limit=limit, lookup=lookup)
        repeat_ids = [pid for pid, _, _ in picked if self.item_index[pid] in orders]
        repeat_reasons = {}
        if repeat_ids:
            wanted = set(repeat_ids)
            history = [ln for ln in ctx.purchases if ln.product_id in wanted]
            repeat_reasons = {
                c.product_id: c.reason
                for c in repurchase_candidates(history, self.clock(), self.blend_config)
            }
        reasons = self._discover_reasons(
            ctx, [pid for pid, _, _ in picked if pid not in repeat_reasons], lookup
        )
        return [
            self._item(pid, doc, score, repeat_reasons[pid], "buy_again")
            if pid in repeat_reasons
            else self._item(pid, doc, score, reasons[pid], "discover")
            for pid, score, doc in picked
        ]

    def _discover_reasons(
        self, ctx: CustomerContext, picked: list[str], lookup: Lookup
    ) -> dict[str, str]:
        """A short reason per new product: the bought product it is closest to (item
        embeddings), a stated preference, what sells now, the customer's country."""
        anchors = [
            self.item_index[p]
            for p in dict.fromkeys(ln.product_id for ln in ctx.purchases)
            if p in self.item_index
        ]
        best: dict[str, tuple[int, float]] = {}
        anchor_names: dict[str, dict] = {}
        if anchors and picked:
            unit_anchor = self.item_unit[anchors]
            for pid in picked:
                sims = unit_anchor @ self.item_unit[self.item_index[pid]]
                j = int(np.argmax(sims))
                best[pid] = (anchors[j], float(sims[j]))
            anchor_names = lookup(
                self.item_ids[a]
                for a, s in best.values()
                if s >= self.blend_config.anchor_min_cosine
            )
        prefs = set(ctx.preferred_categories)
        out = {}
        for pid in picked:
            i = self.item_index[pid]
            anchor = best.get(pid)
            if anchor and anchor[1] >= self.blend_config.anchor_min_cosine:
                aid = self.item_ids[anchor[0]]
                name = (anchor_names.get(aid) or {}).get("name") or aid
                out[pid] = f"customers who bought {name} also bought this"
            elif self.item_categories[i] in prefs:
                out[pid] = f"matches your preference for {self.item_categories[i]}"
            elif len(self.trending) > i and self.trending[i]:
                out[pid] = "selling fast this week"
            elif not ctx.purchases and ctx.country:
                out[pid] = f"liked by customers like you ({ctx.country})"
            else:
                out[pid] = "recommended for you from what similar customers buy"
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
        """The customer's own products ranked for re-purchase (``recommend.model.repurchase``)."""
        cfg = self.blend_config
        candidates = repurchase_candidates(ctx.purchases, self.clock(), cfg)
        model_pct: dict[str, float] = {}
        if vector is not None:
            scores = self.scores(vector)
            n_items = max(len(scores) - 1, 1)
            known = [c.product_id for c in candidates if c.product_id in self.item_index]
            below = _count_below(scores, scores[[self.item_index[p] for p in known]])
            model_pct = {p: float(n / n_items) for p, n in zip(known, below.tolist(), strict=True)}
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
            sims,
            exclude={pid} if isinstance(pid, str) else set(),
            filters=filters or Filters(),
            limit=limit,
            lookup=lookup,
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


def _count_below(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold, how many ``scores`` are strictly below it (the buy-again model
    percentile): one pass over the catalog, a binary search among the sorted thresholds per
    item, instead of one pass per threshold or a sort of the catalog."""
    order = np.argsort(thresholds, kind="stable")
    # an item counts for every threshold above it: those from its insertion point on
    first_above = np.searchsorted(thresholds[order], scores, side="right")
    counts = np.cumsum(np.bincount(first_above, minlength=len(order) + 1))[: len(order)]
    out = np.empty(len(order), dtype=np.int64)
    out[order] = counts
    return out
