"""Serving recommendations from a loaded artifact (no Flask, no Redis writes).

:class:`Recommender` is the model's arrays as loaded (``recommend.model.model_arrays``: the
users' and items' representations, cold start, products new since training) plus the ranking
strategies and the entry points serving calls: ``recommend``, ``popular``, ``similar``. The
selection under the filters is ``recommend.model.candidates``, the discover reason texts
``recommend.model.reasons``.

We score on request and keep nothing per customer: a top-N cache would have to be rebuilt
after every purchase (``discover`` must exclude purchases made after training), could not
serve arbitrary filters (category, price range, stock) without over-fetching, and would cost
memory and a Redis read per customer. What a request costs is measured in docs/benchmarks.md
(``bench/recommend_latency.py``, ``bench/request_cost.py``), not written here.

Who is scored how:

- a customer the model knows: their trained representation;
- a customer unknown to the model but with profile features (country, locale, tier,
  preferred categories) gets a cold-start representation from those features (LightFM's own
  cold start for a model trained on features, the tables derived from the trained embeddings
  for an ids-only model; ``recommend.model.model_arrays``). In both cases products in their
  stated preferred categories rank first (the cold-start vector orders them), because a
  stated preference is stronger evidence than a few feature embeddings;
- nobody known: popularity, by the customer's country when the model has data for it.

Strategies (the ranking rules of ``recommend.model.scoring``, chosen on the quality benchmark's
validation window; docs/benchmarks.md):

- ``discover``: products the customer never bought (their orders are read at request time,
  so purchases after training count), ranked by ``z(model) + 1.5 * z(trend) + 0.2 *
  z(content)``: ``trend`` = log1p(distinct buyers in the last 7 days of the training data,
  stored in the artifact), ``content`` = cosine between the product's description words
  (TF-IDF, built at load from the descriptions stored in the artifact) and the customer's
  purchase history (recency-weighted, half-life 60 days);
- ``buy_again``: products the customer bought, scored ``log1p(distinct orders) + 0.2 * mix``
  (``recommend.model.repurchase.buy_again_score``): the customer's own counts first; ``mix``
  in [0, 1] only breaks ties and near-ties, the weighted mean of the product's percentile in
  the model's scores for the customer (weight 0.5; 0.5 without a model vector), its
  popularity percentile (0.5) and the timing (weight 0: ``due``, a bell around the
  customer's typical re-purchase interval, and ``recency = 0.5 ** (days since last / 90)``
  ranked worse on the validation window; they still write the reason). A list shorter than
  ``limit`` is filled from ``blend`` (source ``discover``), then popular products (source
  ``popular``), after all of the customer's own products;
- ``blend`` (default): one scale, ``log1p(distinct orders)`` for a product the customer
  bought (0 otherwise) ``+ 0.3 * z(discover score)``: a product bought in several orders stays
  on top, one bought once competes with the best new products, new products fill the rest.
  Bought products carry the buy-again reason ("bought 4 times, usually every 30 days"), new
  ones the discover reason. Without a model vector (nobody known): the customer's repeats
  by history, slots by their repeat share, then popular products.

Every recency term (buy_again's timing and reasons, the content term's half-life) is taken at
``recommend(..., now=...)``, default the Recommender's clock (the wall clock): a replay of
history is scored as of its own time (``bench/quality.py`` passes the test window's start).

The per-request cost of the rules: one sparse (1, n_items) @ (n_items, n_words) @ (n_words,
n_items) product for the content term; the word matrix and trend are built at load, and
whatever does not depend on the customer once per model and catalog. A request computes the
model scores once (float32, like the model) and a few float64 vectors of the rules; the
selection only reads them. Scores are comparable within one response only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from recommend.model import scoring
from recommend.model.ann import DEFAULT_MIN_ITEMS
from recommend.model.ann_ranking import ann_select
from recommend.model.artifact import Artifact
from recommend.model.candidates import count_below, select
from recommend.model.fallback import PopularityFallback
from recommend.model.model_arrays import ModelArrays
from recommend.model.reasons import discover_reasons
from recommend.model.repurchase import (
    BUY_AGAIN_POPULARITY_WEIGHT,
    BUY_AGAIN_TIEBREAK,
    BUY_AGAIN_TIMING_WEIGHT,
    buy_again_score,
    interleave,
    repeat_share,
    repurchase_candidates,
)
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


class Recommender(ModelArrays):
    """Scores from one artifact; thread-safe (read-only after construction)."""

    def __init__(
        self,
        artifact: Artifact,
        *,
        blend: BlendConfig | None = None,
        clock: Callable[[], float] = time.time,
        ann_min_items: int = DEFAULT_MIN_ITEMS,
    ):
        self.blend_config = blend or BlendConfig()
        self.clock = clock
        # buy_again's tie-break weights (recommend.model.repurchase.buy_again_score)
        self.buy_again_tiebreak = BUY_AGAIN_TIEBREAK
        self.buy_again_timing_weight = BUY_AGAIN_TIMING_WEIGHT
        self.buy_again_popularity_weight = BUY_AGAIN_POPULARITY_WEIGHT
        super().__init__(artifact, ann_min_items=ann_min_items)

    # -- strategies ---------------------------------------------------------------------------
    def popular(
        self,
        country: str | None = None,
        *,
        limit: int = 10,
        filters: Filters | None = None,
        exclude: set[str] | None = None,
        lookup: Lookup,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Most-bought products (distinct buyers in the training data plus the orders counted
        live since: ``current_popularity``), in ``country`` when the model has it."""
        limit = max(1, min(limit, MAX_LIMIT))
        filters = filters or Filters()
        at = self.clock() if now is None else float(now)
        row = self.country_index.get(country) if country else None
        if row is not None and self.country_has_data[row]:
            scores = self.current_popularity(row, at)
            reason = f"popular in your country ({country})"
        else:
            scores, reason = self.current_popularity(None, at), "popular with customers right now"
        picked = select(
            self, scores, exclude=exclude or set(), filters=filters, limit=limit, lookup=lookup
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
        now: float | None = None,
    ) -> dict[str, Any]:
        """Top ``limit`` products for a customer: ``{"items": [...], "basis": known|cold|
        popularity, "strategy": ...}``; each item has score, reason, source and model_version.

        ``now`` (epoch seconds, default the Recommender's clock: the wall clock) is the time
        every recency term is computed at, so a replay of history is scored as of its own
        time. A ``buy_again`` list shorter than ``limit`` is filled from ``blend`` (then
        popular products); the fill items carry source ``discover`` / ``popular``."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy}")
        limit = max(1, min(limit, MAX_LIMIT))
        filters = filters or Filters()
        at = self.clock() if now is None else float(now)
        vector, basis = self.user_vector(ctx)
        bought = {ln.product_id for ln in ctx.purchases}
        kw: dict[str, Any] = {"filters": filters, "lookup": lookup, "now": at}
        if strategy == "buy_again":
            items = self.buy_again(ctx, vector, limit=limit, **kw) if ctx.purchases else []
            if len(items) < limit and vector is not None:
                have = {it["product_id"] for it in items}
                fill = self.blend(ctx, vector, basis=basis, limit=limit + len(items), **kw)
                items += [it for it in fill if it["product_id"] not in have]
        elif strategy == "discover":
            items = self.discover(ctx, vector, basis=basis, limit=limit, **kw)
        elif vector is not None:
            items = self.blend(ctx, vector, basis=basis, limit=limit, **kw)
        else:  # no model vector: the customer's repeats by history, then popular products
            repeats = self.buy_again(ctx, None, limit=limit, **kw) if ctx.purchases else []
            news = self.discover(ctx, None, basis=basis, limit=limit, **kw)
            items = interleave(repeats, news, self.repeat_share(ctx), limit)
        if len(items) < limit:
            have = {it["product_id"] for it in items}
            extra = self.popular(
                ctx.country,
                limit=limit - len(items),
                filters=filters,
                exclude=have | bought,
                lookup=lookup,
                now=at,
            )
            items += extra
        if vector is None:
            basis = "popularity"
        return {"items": items[:limit], "basis": basis, "strategy": strategy}

    def discover_scores(
        self,
        ctx: CustomerContext,
        vector: np.ndarray,
        basis: str = "known",
        now: float | None = None,
    ) -> np.ndarray:
        """(n_items,) ``scoring.discover_scores``: z(model) + 1.5 z(7-day trend) + 0.2
        z(description-word similarity to the customer's history, half-life 60 days). A
        cold-start customer's stated preferred categories are lifted above everything else."""
        trend, content = self.discover_terms(ctx, now)
        scores = scoring.discover_from_terms(self.scores(vector), trend, content)
        if basis == "cold" and ctx.preferred_categories:
            # a new customer's stated preferences come first; the cold-start score orders them
            span = float(scores.max() - scores.min()) + 1.0
            scores[self.category_mask(ctx.preferred_categories)] += span
        return scores

    def discover_terms(
        self, ctx: CustomerContext, now: float | None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(n_items,) the trend term at ``now`` and the customer's raw content scores (None
        without descriptions or purchases) of :meth:`discover_scores`."""
        at = self.clock() if now is None else now
        content = None
        if self.item_words is not None and ctx.purchases:
            last: dict[int, float] = {}
            for ln in ctx.purchases:
                i = self.item_index.get(ln.product_id)
                if i is not None and ln.purchased_at > last.get(i, -np.inf):
                    last[i] = ln.purchased_at
            if last:
                content = scoring.content_scores(scoring.history_weights(last, at), self.item_words)
        return self.current_trend_term(at), content

    def indexed(
        self, ctx: CustomerContext, vector: np.ndarray, basis: str, now: float | None, **kw
    ) -> list[tuple[str, float, dict[str, Any]]] | None:
        """The selection from the nearest-neighbour index's candidates (``ann_ranking``), None
        without an index or when it would need most of the catalog (then scored exactly). A
        cold start with stated preferences lifts whole categories: scored exactly too."""
        if self.ann is None or (basis == "cold" and ctx.preferred_categories):
            return None
        trend, content = self.discover_terms(ctx, now)
        return ann_select(self, vector, trend, content, **kw)

    def discover(
        self,
        ctx: CustomerContext,
        vector: np.ndarray | None,
        *,
        basis: str = "known",
        limit: int,
        filters: Filters,
        lookup: Lookup,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Products the customer never bought (purchases after training included), ranked by
        :meth:`discover_scores`; popular products without a model vector."""
        bought = {ln.product_id for ln in ctx.purchases}
        if vector is None:
            return self.popular(
                ctx.country, limit=limit, filters=filters, exclude=bought, lookup=lookup, now=now
            )
        kw: dict[str, Any] = {"exclude": bought, "filters": filters, "limit": limit}
        picked = self.indexed(ctx, vector, basis, now, lookup=lookup, **kw)
        if picked is None:
            scores = self.discover_scores(ctx, vector, basis, now)
            picked = select(self, scores, lookup=lookup, **kw)
        reasons = discover_reasons(
            self,
            ctx,
            [pid for pid, _, _ in picked],
            lookup,
            anchor_min_cosine=self.blend_config.anchor_min_cosine,
        )
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
        now: float | None = None,
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
        kw: dict[str, Any] = {"exclude": set(), "filters": filters, "limit": limit}
        picked = self.indexed(ctx, vector, basis, now, lookup=lookup, orders=(bought, counts), **kw)
        if picked is None:
            scores = scoring.blend_scores_sparse(
                self.discover_scores(ctx, vector, basis, now), bought, counts
            )
            picked = select(self, scores, lookup=lookup, **kw)
        repeat_ids = [pid for pid, _, _ in picked if self.item_index[pid] in orders]
        repeat_reasons = {}
        at = self.clock() if now is None else now
        if repeat_ids:
            wanted = set(repeat_ids)
            history = [ln for ln in ctx.purchases if ln.product_id in wanted]
            repeat_reasons = {
                c.product_id: c.reason
                for c in repurchase_candidates(history, at, self.blend_config)
            }
        reasons = discover_reasons(
            self,
            ctx,
            [pid for pid, _, _ in picked if pid not in repeat_reasons],
            lookup,
            anchor_min_cosine=self.blend_config.anchor_min_cosine,
        )
        return [
            self._item(pid, doc, score, repeat_reasons[pid], "buy_again")
            if pid in repeat_reasons
            else self._item(pid, doc, score, reasons[pid], "discover")
            for pid, score, doc in picked
        ]

    def buy_again(
        self,
        ctx: CustomerContext,
        vector: np.ndarray | None,
        *,
        limit: int,
        filters: Filters,
        lookup: Lookup,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """The customer's own products ranked for re-purchase (``repurchase.buy_again_score``:
        distinct orders first; timing, model and popularity percentiles break ties)."""
        cfg = self.blend_config
        candidates = repurchase_candidates(ctx.purchases, self.clock() if now is None else now, cfg)
        known = [c.product_id for c in candidates if c.product_id in self.item_index]
        idx = [self.item_index[p] for p in known]
        popularity = np.asarray(self.popularity)
        pop_pct = self._percentiles(popularity, known, idx)
        model_pct = self._percentiles(self.scores(vector), known, idx) if vector is not None else {}
        docs = lookup(c.product_id for c in candidates)
        scored = []
        for c in candidates:
            doc = docs.get(c.product_id)
            if not filters.accepts(doc):
                continue
            pid = c.product_id
            score = buy_again_score(
                c,
                model_pct.get(pid, 0.5),
                pop_pct.get(pid, 0.0),
                cfg,
                tiebreak=self.buy_again_tiebreak,
                timing_weight=self.buy_again_timing_weight,
                popularity_weight=self.buy_again_popularity_weight,
            )
            scored.append((score, c.product_id, doc, c.reason))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [self._item(pid, doc, s, r, "buy_again") for s, pid, doc, r in scored[:limit]]

    @staticmethod
    def _percentiles(scores: np.ndarray, ids: list[str], idx: list[int]) -> dict[str, float]:
        """product id -> share of the catalog scoring below it (0..1)."""
        if not ids:
            return {}
        n_items = max(len(scores) - 1, 1)
        below = count_below(scores, scores[idx])
        return {p: float(n / n_items) for p, n in zip(ids, below.tolist(), strict=True)}

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
        picked = select(
            self,
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
