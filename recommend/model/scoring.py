"""Ranking rules on top of the LightFM scores, chosen by the quality benchmark
(``bench/quality.py``, on the validation window before the test period; see
``docs/benchmarks.md``, "Recommendation quality"). Pure numpy; ``recommend.model.recommender`` can
call these per customer (the ``*_batch`` forms are the same rules for many customers).

``discover`` (products the customer has not bought)::

    score(i) = z(model)(i) + trend_weight * z(trend)(i) + content_weight * z(content)(i)

- ``z(x)``: x standardised over the catalog (mean 0, sd 1), so weights do not depend on the
  model's scale;
- ``trend(i) = log1p(distinct buyers of i in the last trend_days days)`` before the reference
  time (the newest purchase in the training data): what is selling now. ``trend_weight`` is
  chosen per training run on its holdout (``recommend.model.holdout_weights``, stored in the
  artifact, read by :func:`trend_weight_of`); ``TREND_WEIGHT`` is the default. Retail demand is
  seasonal (in the Online Retail data, Christmas stock takes off in September) and the model's
  item biases average the whole year;
- ``content(i)``: cosine between product i's description words (TF-IDF, L2-normalised) and the
  customer's purchase history in the same space (each product's vector weighted by
  ``0.5 ** (age_days / content_half_life_days)``): the other colours and sizes of what they buy.

``blend`` (repeats and new products on one scale)::

    score(i) = log1p(orders(i)) + beta * z(discover)(i)    if the customer bought i
             = -gamma            + beta * z(discover)(i)    otherwise

``orders(i)``: distinct orders in which the customer bought i (no recency decay: every decay
we tried ranked repeats worse). A product bought in several orders stays on top; one bought
once competes with the best new products; new products fill the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommend.catalog.categories import description_words

DAY = 86400.0
TREND_DAYS = 7.0
TREND_WEIGHT = 1.5
CONTENT_WEIGHT = 0.2
CONTENT_HALF_LIFE_DAYS = 60.0
BLEND_BETA = 0.3
BLEND_GAMMA = 0.0
WORD_STOPWORDS = frozenset(
    "OF SET AND THE IN WITH W/ W A TO FOR ON S/ S/2 S/3 S/4 S/6 PACK ASSORTED DESIGN".split()
)


def trend_weight_of(metadata: Mapping[str, Any]) -> float:
    """The trend weight an artifact ships: the one its training run chose on its own holdout
    (``params["scoring"]["trend_weight"]``, ``recommend.model.holdout_weights``), else
    :data:`TREND_WEIGHT` (artifacts from before that choice)."""
    chosen = ((metadata.get("params") or {}).get("scoring") or {}).get("trend_weight")
    return float(chosen) if isinstance(chosen, int | float) else TREND_WEIGHT


def standardise(x: np.ndarray) -> np.ndarray:
    """z-scores along the last axis (items), as a new float64 array (computed in place in it:
    one catalog-sized allocation, not three)."""
    out = np.array(x, dtype=np.float64)
    mean, sd = out.mean(axis=-1, keepdims=True), out.std(axis=-1, keepdims=True)
    out -= mean
    out /= sd + 1e-9
    return out


def trend(
    purchases: Iterable[tuple[str, int, float]], n_items: int, reference: float, days: float
) -> np.ndarray:
    """(n_items,) log1p(distinct buyers in ``(reference - days, reference]``).

    purchases: (customer id, item index, epoch seconds); items outside the model are skipped
    by passing a negative index."""
    since = reference - days * DAY
    buyers: set[tuple[str, int]] = set()
    for customer, item, when in purchases:
        if item >= 0 and since < when <= reference:
            buyers.add((customer, item))
    counts = np.zeros(n_items, dtype=np.float64)
    for _, item in buyers:
        counts[item] += 1.0
    return np.log1p(counts)


def word_matrix(descriptions: Sequence[str | None]) -> sp.csr_matrix:
    """(n_items, n_words) TF-IDF of description words, rows L2-normalised (empty rows stay 0)."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(descriptions):
        for w in set(description_words(text or "")) - WORD_STOPWORDS:
            rows.append(i)
            cols.append(vocab.setdefault(w, len(vocab)))
    x = sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(descriptions), max(len(vocab), 1))
    )
    df = np.asarray((x > 0).sum(axis=0), dtype=np.float64).ravel()
    x = x @ sp.diags(np.log(len(descriptions) / (1.0 + df)))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ x).tocsr()


def history_weights(
    last_bought: Mapping[int, float], now: float, half_life_days: float = CONTENT_HALF_LIFE_DAYS
) -> dict[int, float]:
    """item index -> 0.5 ** (days since last bought / half life), summing to 1."""
    raw = {i: 0.5 ** (max(now - t, 0.0) / DAY / half_life_days) for i, t in last_bought.items()}
    total = sum(raw.values())
    return {i: w / total for i, w in raw.items()} if total > 0 else {}


def content_scores_batch(history: sp.csr_matrix, words: sp.csr_matrix) -> np.ndarray:
    """(n_users, n_items) cosine of each user's weighted history (n_users, n_items rows of
    weights) with every item, in description-word space."""
    profile = history @ words
    norms = np.sqrt(np.asarray(profile.multiply(profile).sum(axis=1)).ravel())
    profile = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ profile
    return np.asarray((profile @ words.T).todense())


def content_scores(weights: Mapping[int, float], words: sp.csr_matrix) -> np.ndarray:
    """(n_items,) the same for one customer (weights from :func:`history_weights`).

    Two sparse matrix-vector products over the CSR word matrix (no format conversion, so a
    request costs O(non-zeros): about 1 ms at 100k products)."""
    idx = np.fromiter(weights.keys(), dtype=np.int64, count=len(weights))
    w = np.fromiter(weights.values(), dtype=np.float64, count=len(weights))
    profile = np.asarray(words[idx].T @ w).ravel()  # (n_words,)
    norm = float(np.sqrt(profile @ profile))
    return np.asarray(words @ (profile / max(norm, 1e-12))).ravel()


def discover_scores(
    model_scores: np.ndarray,
    trend_scores: np.ndarray | None,
    content: np.ndarray | None,
    *,
    trend_weight: float = TREND_WEIGHT,
    content_weight: float = CONTENT_WEIGHT,
) -> np.ndarray:
    """z(model) + trend_weight * z(trend) + content_weight * z(content); works on (n_items,)
    or (n_users, n_items) model and content scores (trend is (n_items,))."""
    return discover_from_terms(
        model_scores, trend_term(trend_scores, trend_weight), content, content_weight
    )


def trend_term(trend_scores: np.ndarray | None, weight: float = TREND_WEIGHT) -> np.ndarray | None:
    """(n_items,) ``weight * z(trend)``: the trend's share of every customer's discover score
    (the same for all of them, so serving computes it once per model); None without one."""
    if trend_scores is None or not weight:
        return None
    return weight * standardise(trend_scores)


def discover_from_terms(
    model_scores: np.ndarray,
    trend: np.ndarray | None,
    content: np.ndarray | None,
    content_weight: float = CONTENT_WEIGHT,
) -> np.ndarray:
    """:func:`discover_scores` with the trend term already computed (:func:`trend_term`):
    the same values, one new float64 array."""
    out = standardise(model_scores)
    if trend is not None:
        out += trend
    if content is not None and content_weight:
        out += content_weight * standardise(content)
    return out


def blend_scores(
    discover: np.ndarray,
    orders: np.ndarray,
    *,
    beta: float = BLEND_BETA,
    gamma: float = BLEND_GAMMA,
) -> np.ndarray:
    """Blend (see module). discover and orders: (n_items,) or (n_users, n_items); orders is 0
    where the customer never bought the item."""
    orders = np.asarray(orders, dtype=np.float64)
    history = np.where(orders > 0, np.log1p(orders), -gamma)
    return history + beta * standardise(discover)


def blend_scores_sparse(
    discover: np.ndarray,
    items: np.ndarray,
    orders: np.ndarray,
    *,
    beta: float = BLEND_BETA,
    gamma: float = BLEND_GAMMA,
) -> np.ndarray:
    """:func:`blend_scores` for one customer whose orders are given sparsely: ``orders[k]``
    (> 0) distinct orders of item ``items[k]``. The same values without a catalog-sized
    orders vector and log1p over it. ``discover`` is left untouched."""
    out = standardise(discover)
    out *= beta
    bought = np.log1p(np.asarray(orders, dtype=np.float64)) + out[items]
    if gamma:
        out -= gamma
    out[items] = bought
    return out


__all__ = [
    "blend_scores",
    "blend_scores_sparse",
    "content_scores",
    "content_scores_batch",
    "discover_from_terms",
    "discover_scores",
    "history_weights",
    "standardise",
    "trend",
    "trend_term",
    "trend_weight_of",
    "word_matrix",
]
