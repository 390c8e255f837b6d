"""The ranking rules of ``recommend/model/scoring.py`` computed for every customer at once (the
quality benchmark's validation grids and its "batch rules" reference rows, bench/quality.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import retail
import scipy.sparse as sp

from recommend.model import scoring
from recommend.model.dataset import DAY


# --- Rapport scoring terms (recommend/model/scoring.py) -------------------------------------
@dataclass
class Terms:
    """What the discover / blend rules need besides the model, for one split."""

    trend: dict[float, np.ndarray]  # days -> (n_items,)
    content: np.ndarray  # (n_users, n_items) cosine, all users
    orders: sp.csr_matrix  # (n_users, n_items) distinct orders


def rapport_terms(split, t: retail.Task, counts: sp.csr_matrix, lasts: sp.csr_matrix):
    reference = max(ln.purchased_at for ln in split.train)
    purchases = [
        (ln.customer_id, t.item_index[ln.product_id], ln.purchased_at) for ln in split.train
    ]
    trends = {d: scoring.trend(purchases, len(t.items), reference, d) for d in TREND_DAYS}
    words = scoring.word_matrix([split.data.products[p].get("description") or "" for p in t.items])
    hist = lasts.copy()
    hist.data = 0.5 ** (
        np.maximum(reference - hist.data, 0.0) / DAY / scoring.CONTENT_HALF_LIFE_DAYS
    )
    sums = np.asarray(hist.sum(axis=1)).ravel()
    hist = sp.diags(1.0 / np.maximum(sums, 1e-12)) @ hist
    content = scoring.content_scores_batch(hist.tocsr(), words)
    return Terms(trends, content, counts)


def discover_fn(model_fn, terms: Terms, days: float, trend_weight: float, content_weight: float):
    tr = terms.trend[days]
    return lambda users: scoring.discover_scores(
        model_fn(users),
        tr,
        terms.content[users],
        trend_weight=trend_weight,
        content_weight=content_weight,
    )


def blend_fn(discover, terms: Terms, beta: float, gamma: float):
    return lambda users: scoring.blend_scores(
        discover(users), terms.orders[users].toarray(), beta=beta, gamma=gamma
    )


TREND_DAYS = (7.0, 14.0, 28.0)
DISCOVER_GRID = {
    "days": TREND_DAYS,
    "trend_weight": (0.0, 0.5, 1.0, 1.5),
    "content_weight": (0.0, 0.1, 0.2, 0.3),
}
BLEND_GRID = {"beta": (0.1, 0.2, 0.3, 0.5), "gamma": (0.0, 0.5, 1.0)}


def snapshot(model) -> dict[str, np.ndarray]:
    return {
        k: getattr(model, k).copy()
        for k in ("user_embeddings", "user_biases", "item_embeddings", "item_biases")
    }


def restore(model, snap: dict[str, np.ndarray]) -> None:
    for k, v in snap.items():
        getattr(model, k)[:] = v
