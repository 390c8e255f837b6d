"""Cold-start representations for a model trained on ids only.

An ids-only LightFM model (the tuned production default, see ``recommend/model/training.py``) has
no embedding for ``country:FR`` or ``cat:bags``. At training time we derive one from the
trained embeddings instead: the embedding of a feature is the mean representation of the
known users (items) that have it, e.g. ``country:France`` = mean vector of the customers in
France, ``pref:bags`` = mean vector of the customers who prefer bags (a stated preference
counts 1; without one, each customer counts with the share of their purchase lines in that
category, so a bag lover weighs more than someone who bought one bag), ``cat:bags`` /
``word:lunch`` / ``price:<5`` = mean vector (and bias) of the products with that category /
description word / price band. A new customer or product is then the IDF-weighted mean of its
features' derived embeddings (weight ``log(n / n_f)``, ``n_f`` the summed membership), so a
feature everyone has (a word in every description) counts for nothing.

Serving (``recommend.model.recommender``) uses these tables only when the model has no metadata
features of its own on that side; a model trained with features keeps LightFM's own cold
start (the normalised sum of its feature embeddings).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommend.model.dataset import (
    FeatureConfig,
    item_feature_names,
    user_feature_names,
    word_vocabulary,
)
from recommend.model.records import PurchaseLine

# every profile / catalog feature, whatever the model was trained with
ALL_FEATURES = FeatureConfig()


def _table(
    rows: Mapping[int, Mapping[str, float]], vectors: np.ndarray, biases: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """names (F,), weighted mean vectors (F, d), mean biases (F,), summed membership (F,)
    over rows having each feature (rows: row index -> {feature name: membership})."""
    index: dict[str, int] = {}
    r, c, w = [], [], []
    for row, memberships in rows.items():
        for n, weight in memberships.items():
            r.append(row)
            c.append(index.setdefault(n, len(index)))
            w.append(weight)
    d = vectors.shape[1]
    if not index:
        return (
            np.array([], dtype=np.str_),
            np.zeros((0, d), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
        )
    member = sp.csr_matrix(
        (np.array(w, dtype=np.float64), (c, r)), shape=(len(index), vectors.shape[0])
    )
    counts = np.asarray(member.sum(axis=1)).ravel()
    scale = sp.diags(1.0 / np.maximum(counts, 1e-9))
    mean_vectors = np.asarray(scale @ (member @ vectors.astype(np.float64)), dtype=np.float32)
    mean_biases = (
        np.asarray(scale @ (member @ biases.astype(np.float64)), dtype=np.float32).ravel()
        if biases is not None
        else np.zeros(len(index), np.float32)
    )
    names = [""] * len(index)
    for n, i in index.items():
        names[i] = n
    return np.array(names, dtype=np.str_), mean_vectors, mean_biases, counts.astype(np.float32)


def derived_tables(
    *,
    user_ids: list[str],
    item_ids: list[str],
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    item_bias: np.ndarray,
    customers: Mapping[str, dict[str, Any]],
    products: Mapping[str, dict[str, Any]],
    lines: Iterable[PurchaseLine],
    history_categories: int = 3,
    min_word_items: int = 3,
) -> dict[str, np.ndarray]:
    """The artifact arrays ``cold_{user,item}_feature_{names,vectors,counts}`` (and
    ``cold_item_feature_biases``). Vectors are the trained representations (n, d)."""
    history: dict[str, Counter[str]] = defaultdict(Counter)
    for ln in lines:
        history[ln.customer_id][(products.get(ln.product_id) or {}).get("category") or "other"] += 1
    user_rows: dict[int, dict[str, float]] = {}
    for u, cid in enumerate(user_ids):
        customer = dict(customers.get(cid) or {})
        names = dict.fromkeys(user_feature_names(customer, ALL_FEATURES), 1.0)
        if not customer.get("preferred_categories") and history_categories:
            total = sum(history[cid].values())
            for category, n in history[cid].items():
                names[f"pref:{category}"] = n / total
        user_rows[u] = names
    catalog = [products.get(p) or {"product_id": p} for p in item_ids]
    vocab = word_vocabulary(catalog, min_word_items)
    item_rows = {
        i: dict.fromkeys(item_feature_names(p, ALL_FEATURES, vocab), 1.0)
        for i, p in enumerate(catalog)
    }
    un, uv, _, uc = _table(user_rows, user_vectors, None)
    iname, iv, ib, ic = _table(item_rows, item_vectors, item_bias)
    return {
        "cold_user_feature_names": un,
        "cold_user_feature_vectors": uv,
        "cold_user_feature_counts": uc,
        "cold_item_feature_names": iname,
        "cold_item_feature_vectors": iv,
        "cold_item_feature_biases": ib,
        "cold_item_feature_counts": ic,
    }


class DerivedFeatures:
    """One side's derived table, ready to combine (built once at load)."""

    def __init__(
        self,
        names: np.ndarray,
        vectors: np.ndarray,
        counts: np.ndarray,
        n_rows: int,
        biases: np.ndarray | None = None,
    ):
        self.index = {str(n): i for i, n in enumerate(names)}
        self.vectors = vectors.astype(np.float32)
        self.biases = None if biases is None else biases.astype(np.float32)
        counts = np.asarray(counts, dtype=np.float64)
        self.idf = np.log(max(n_rows, 1) / np.maximum(counts, 1.0)).astype(np.float64)

    def __bool__(self) -> bool:
        return bool(self.index)

    def combine(self, names: Iterable[str]) -> tuple[np.ndarray, float] | None:
        """IDF-weighted mean (vector, bias) of the known ``names``; None when none is known
        or every known one is shared by all rows (weight 0)."""
        idx = [self.index[n] for n in dict.fromkeys(names) if n in self.index]
        if not idx:
            return None
        w = self.idf[idx]
        if w.sum() <= 1e-9:
            return None
        w = w / w.sum()
        vector = (w[:, None] * self.vectors[idx]).sum(axis=0).astype(np.float32)
        bias = float(w @ self.biases[idx]) if self.biases is not None else 0.0
        return vector, bias
