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
from recommend.model.artifact import Artifact
from recommend.model.coldstart import ALL_FEATURES, DerivedFeatures
from recommend.model.dataset import FeatureConfig, item_feature_names, user_feature_names
from recommend.model.serving import CustomerContext


class ModelArrays:
    """One artifact's representations and catalog-wide terms; read-only after construction."""

    def __init__(self, artifact: Artifact):
        a = artifact.arrays
        self.version = artifact.version
        self.metadata = artifact.metadata
        self.features = _feature_config(artifact.metadata)
        self._load_representations(a)
        self._load_item_terms(a)
        # cold start: LightFM's feature embeddings when the model has metadata features on
        # that side, else the tables derived from trained embeddings (recommend.model.coldstart)
        self.cold_users = _derived(
            a, "user", len(self.user_index), self.user_index, self.user_feature_index
        )
        self.cold_items = _derived(
            a, "item", len(self.item_ids), self.item_index, self.item_feature_index
        )
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

    def _load_item_terms(self, a: dict[str, np.ndarray]) -> None:
        """Categories, popularity (overall and per country) and the ranking terms of
        ``recommend.model.scoring`` (absent from artifacts made before them)."""
        n_items = len(self.item_ids)
        self.item_categories = np.array([str(c) for c in a["item_categories"]])
        pop = a["item_popularity"].astype(np.float64)
        # deterministic tie-break: earlier items first among equal counts
        self.popularity = pop + np.linspace(1e-3, 0, n_items)
        self.country_index = {str(c): i for i, c in enumerate(a["country_names"])}
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
        self.trend_term = scoring.trend_term(self.item_trend)
        pop = np.asarray(self.popularity)
        self.popularity_tiebreak = pop / (pop.max() + 1) if len(pop) else pop
        self.country_has_data = np.asarray(self.country_popularity).sum(axis=1) > 0

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
