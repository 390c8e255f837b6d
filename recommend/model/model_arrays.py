"""A loaded model's users and items as serving uses them: the base of
:class:`recommend.model.recommender.Recommender`, which adds the ranking strategies.

At load, :class:`ModelArrays` precomputes every item's representation (item feature matrix @
item embeddings, and the bias the same way), the known users' representations, and unit
vectors for cosine similarity, so a request costs one (d,) @ (d, n_items) product. The arrays
are plain attributes: ``recommend.model.shared_arrays`` swaps the large ones for memory maps
shared by the workers, so they are read from the instance on every request, never copied into
another object.

A customer unknown to the model but with profile features (country, locale, tier, preferred
categories) gets a cold-start representation from those features. With a model trained on
features, the mean of those features' embeddings (LightFM's own cold start). With an ids-only
model (the tuned production default: features lowered known customers' precision on the
benchmark data) there are no feature embeddings, so training derives them from the trained
embeddings (``recommend.model.coldstart``): ``country:FR`` is the mean vector of the known
customers in FR, ``pref:bags`` the mean of those who buy bags (weighted by their share of bag
purchases), and the customer's vector is the IDF-weighted mean of those. We chose this over
(b) popularity by country/category alone (it keeps a personal order within the category) and
(c) a second, feature-trained model (twice the training, two artifacts).

Products: those the model was trained on use their trained representation; a catalog product
added since is placed by its features (category, brand, price band, description words): with
a feature model the mean of its feature embeddings, with an ids-only model the IDF-weighted
mean of the derived ones (``cat:bags`` = mean vector and bias of the bags; a word in every
description weighs nothing). :meth:`ModelArrays.with_new_items` does it for recommendations
(the model holder calls it), ``similar()`` directly.

Whatever does not depend on the customer is derived once per model and catalog
(:meth:`ModelArrays._precompute`): the trend term, integer category codes and each category's
items (filters and stated preferences compare codes, not strings), the popularity tie-break.
"""

from __future__ import annotations

import copy
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from recommend.model import scoring
from recommend.model.ann import DEFAULT_MIN_ITEMS, ItemIndex
from recommend.model.ann_ranking import TermSummary, item_moments
from recommend.model.artifact import Artifact
from recommend.model.coldstart import ALL_FEATURES, DerivedFeatures
from recommend.model.dataset import FeatureConfig, item_feature_names, user_feature_names
from recommend.model.foldin import FoldIn, FoldInCache, interaction_weights
from recommend.model.live_trend import LiveCounts, live_window, since_counts, window_counts
from recommend.model.serving import CustomerContext


class ModelArrays:
    """One artifact's representations and catalog-wide terms; read-only after construction."""

    def __init__(self, artifact: Artifact, *, ann_min_items: int = DEFAULT_MIN_ITEMS):
        a = artifact.arrays
        self.version = artifact.version
        self.metadata = artifact.metadata
        self.features = _feature_config(artifact.metadata)
        self._load_representations(a)
        self._load_item_terms(a)
        self._load_index(artifact, ann_min_items)
        # cold start: LightFM's feature embeddings when the model has metadata features on
        # that side, else the tables derived from trained embeddings (recommend.model.coldstart)
        self.cold_users = _derived(
            a, "user", len(self.user_index), self.user_index, self.user_feature_index
        )
        self.cold_items = _derived(
            a, "item", len(self.item_ids), self.item_index, self.item_feature_index
        )
        # fold-in (recommend.model.foldin): purchases after the newest one the model saw
        until = self.metadata.get("data_until", self.metadata.get("created_at"))
        self.data_until = float(until) if isinstance(until, int | float) else None
        self.fold_in: FoldIn | None = FoldIn(self.item_vectors, self.user_vectors)
        self.fold_in_cache = FoldInCache()
        # live purchase counters (recommend.model.live_trend), set by whoever has Redis
        self.live: LiveCounts | None = None
        self._live_terms: dict[tuple, Any] = {}
        self._precompute()

    def _load_representations(self, a: dict[str, np.ndarray]) -> None:
        """Ids, feature indexes, embeddings, and the users' and items' representations."""
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

    def _load_index(self, artifact: Artifact, min_items: int) -> None:
        """The nearest-neighbour index (``recommend.model.ann``) when the artifact has one and
        the catalog is at least ``min_items`` products, with the items' moments; a damaged
        index raises :class:`~recommend.errors.ArtifactError` like any damaged artifact."""
        self.ann: ItemIndex | None = None
        self._ann_term: TermSummary | None = None
        if artifact.index_path is None or len(self.item_ids) < min_items:
            return
        dim = self.item_vectors.shape[1]
        self.ann = ItemIndex.load(artifact.index_path, len(self.item_ids), dim)
        self.ann_base_moments = item_moments(self.item_vectors, self.item_bias)

    def ann_term(self, term: np.ndarray) -> TermSummary:
        """What the index's ranking needs of a catalog-wide term (the trend term: the same for
        every customer until it moves), derived for the one term last asked."""
        cached = self._ann_term
        if cached is None or cached.term is not term:
            cached = TermSummary(term, self.item_vectors, self.item_bias)
            self._ann_term = cached
        return cached

    def _load_item_terms(self, a: dict[str, np.ndarray]) -> None:
        """Categories, popularity (overall and per country) and the ranking terms of
        ``recommend.model.scoring`` (absent from artifacts made before them)."""
        n_items = len(self.item_ids)
        self.item_categories = np.array([str(c) for c in a["item_categories"]])
        pop = a["item_popularity"].astype(np.float64)
        # deterministic tie-break: earlier items first among equal counts
        self.popularity = pop + np.linspace(1e-3, 0, n_items)
        self.country_index = {str(c): i for i, c in enumerate(a["country_names"])}
        self.country_names = [str(c) for c in a["country_names"]]  # row -> country
        self.country_popularity = a["country_popularity"].astype(np.float64)
        self.new_items = 0  # catalog products added by with_new_items
        self.item_trend = a["item_trend"].astype(np.float64) if "item_trend" in a else None
        self.item_descriptions = (
            [str(d) for d in a["item_descriptions"]] if "item_descriptions" in a else None
        )
        self.item_words = (
            scoring.word_matrix(self.item_descriptions) if self.item_descriptions else None
        )
        self.trending = self._trending(self.item_trend)

    def _precompute(self) -> None:
        """What every request would otherwise recompute over the whole catalog, derived once
        per model and catalog (``with_new_items`` calls it again): integer category codes
        (comparing codes, not unicode strings), the item indices of each category, the trend
        term of the discover score, and the popularity tie-break and per-country data flags
        of ``popular``."""
        names, codes = np.unique(self.item_categories, return_inverse=True)
        self.category_code = {str(c): k for k, c in enumerate(names)}
        self.item_category_codes = codes.astype(np.int32)
        order = np.argsort(self.item_category_codes, kind="stable")
        bounds = np.searchsorted(self.item_category_codes[order], np.arange(len(names) + 1))
        self.category_items = [order[bounds[k] : bounds[k + 1]] for k in range(len(names))]
        # the weight this artifact's training run chose on its holdout (issue 19)
        self.trend_weight = scoring.trend_weight_of(self.metadata)
        self.trend_term = scoring.trend_term(self.item_trend, self.trend_weight)
        pop = np.asarray(self.popularity)
        self.popularity_tiebreak = pop / (pop.max() + 1) if len(pop) else pop
        self.country_has_data = np.asarray(self.country_popularity).sum(axis=1) > 0
        ann = getattr(self, "ann", None)
        if ann is not None:  # the index's items plus the new products
            base = self.ann_base_moments
            n = ann.n_items
            extra = item_moments(self.item_vectors[n:], self.item_bias[n:])
            self.ann_moments = (base[0] + extra[0], base[1] + extra[1])
            self._ann_term = None

    # -- live trend and popularity (recommend.model.live_trend) ------------------------------
    def current_trend_term(self, now: float) -> np.ndarray | None:
        """(n_items,) the trend term of ``discover`` at ``now``: the artifact's without live
        counters, else ``scoring.trend_term`` of log1p(buyers in the last 7 days) from the
        artifact's window and the live counts (``live_trend.window_counts``); cached until the
        counts move or the hour changes."""
        live = self.live
        if live is None:
            return self.trend_term
        first, today = live_window(now, self.data_until, scoring.TREND_DAYS)
        live.days(first, today, today)  # refreshes the counts past their ttl: the generation
        key = ("trend", live.generation, int(now // 3600))
        term = self._live_terms.get(key)
        if term is None:  # only then the window's counts and the term over every item
            frozen = None if self.item_trend is None else np.expm1(self.item_trend)
            counts = window_counts(
                live,
                self.item_index,
                len(self.item_ids),
                now=now,
                data_until=self.data_until,
                frozen=frozen,
                window_days=scoring.TREND_DAYS,
            )
            term = scoring.trend_term(np.log1p(counts), self.trend_weight)
            self._live_terms = {key: term}  # one entry: the newest
        return term

    def current_popularity(self, country_row: int | None, now: float) -> np.ndarray:
        """(n_items,) popularity at ``now`` (overall, or of the country at ``country_row``):
        the artifact's buyers plus the orders counted live since its data end (with the
        artifact's tie-break; the country's with the overall popularity as tie-break)."""
        base = (
            np.asarray(self.country_popularity[country_row]) + self.popularity_tiebreak
            if country_row is not None
            else np.asarray(self.popularity)
        )
        live = self.live
        if live is None:
            return base
        scope = "p" if country_row is None else self.country_names[country_row]
        extra = since_counts(
            live,
            self.item_index,
            len(self.item_ids),
            now=now,
            data_until=self.data_until,
            scopes=[scope],
        )[0]
        return base + extra if extra.any() else base

    @staticmethod
    def _trending(trend: np.ndarray | None) -> np.ndarray:
        """(n_items,) bool: the top 2% of items by recent buyers (for the reason text)."""
        if trend is None or not np.any(trend > 0):
            return np.zeros(0 if trend is None else len(trend), dtype=bool)
        return trend >= max(float(np.quantile(trend, 0.98)), 1e-9)

    # -- representations ----------------------------------------------------------------------
    def user_vector(self, ctx: CustomerContext) -> tuple[np.ndarray | None, str]:
        """The customer's representation and how it was made: ``known`` (trained, with what
        they did since training folded in), ``folded`` (new since training, fitted from what
        they did), ``cold`` or ``none``."""
        # An id the model knows but that has neither a profile nor a purchase any more was
        # erased since training: its learned vector is a copy of erased data, so not used.
        exists = ctx.has_profile or bool(ctx.purchases)
        row = self.user_index.get(ctx.customer_id) if ctx.customer_id is not None else None
        known = row is not None and exists
        trained = self.user_vectors[row] if known else None
        folded = self.folded_vector(ctx, trained)
        if folded is not None:
            return folded, "known" if known else "folded"
        if trained is not None:
            return trained, "known"
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

    def folded_vector(self, ctx: CustomerContext, trained: np.ndarray | None) -> np.ndarray | None:
        """The representation with the customer's purchases and events since the model's data
        end folded in (``recommend.model.foldin``), cached per customer until their next
        write; None when there is nothing since training (or fold-in is off)."""
        fold, cid = self.fold_in, ctx.customer_id
        if fold is None or cid is None or self.data_until is None:
            return None
        cut = self.data_until
        fresh = [ln for ln in ctx.purchases if ln.purchased_at > cut]
        events = [e for e in ctx.events if e[2] > cut]
        if not fresh and not events:
            self.fold_in_cache.forget(cid)  # e.g. erased: nothing of theirs stays cached
            return None
        key = (
            self.version,
            trained is None,
            tuple(sorted((ln.order_id, ln.purchased_at, ln.product_id) for ln in fresh)),
            tuple(sorted(events)),
        )

        def build() -> np.ndarray | None:
            # ages counted back from the customer's newest interaction (as training counts
            # back from the newest purchase), so the fit does not depend on the clock
            ref = max([ln.purchased_at for ln in ctx.purchases] + [e[2] for e in events])
            index = self.item_index
            before = interaction_weights(
                (ln for ln in ctx.purchases if ln.purchased_at <= cut), index, ref
            )
            after = interaction_weights(fresh, index, ref, events=events)
            return fold.vector(trained, before, after, np.asarray(self.item_vectors))

        return self.fold_in_cache.get(cid, key, build)

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

    def with_new_items(self, products: list[dict[str, Any]]) -> Self:
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


def _feature_config(metadata: dict[str, Any]) -> FeatureConfig:
    """The feature options the model was trained with (``params.features`` of its metadata;
    options this code does not know are ignored)."""
    feats = (metadata.get("params") or {}).get("features") or {}
    known = {f for f in FeatureConfig.__dataclass_fields__}
    options: dict[str, Any] = {
        k: (tuple(v) if k == "price_bands" else v) for k, v in feats.items() if k in known
    }
    return FeatureConfig(**options)


def _derived(a, side: str, n_rows: int, ids, feature_index) -> DerivedFeatures | None:
    """The derived cold-start tables of one side (``user`` or ``item``), None when the model
    has its own features on that side or the artifact carries no tables."""
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
