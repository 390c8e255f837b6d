"""The trend weight of ``discover`` chosen per training run on that run's own holdout.

``rapport train`` holds out each customer's latest order (``recommend.model.training``). After
the evaluated model is fitted, :func:`choose_trend_weight` ranks the holdout with the discover
rule of ``recommend.model.scoring`` (``z(model) + w * z(trend) + CONTENT_WEIGHT * z(content)``)
for each ``w`` of :data:`TREND_WEIGHT_GRID`, every customer scored **as of their held-out
order** (the evaluation clock): the trend counts the distinct buyers in the ``TREND_DAYS`` days
before that order's day, the content term weighs the customer's earlier purchases by their age
then. The weight with the best precision@k (ties: the smaller weight) is stored in the
artifact's ``params["scoring"]`` and serving applies it (``scoring.trend_weight_of``); an
artifact without it gets ``scoring.TREND_WEIGHT``.

Why not a constant: the quality benchmark's validation window chose 0.5 on one split and 1.5
on another, so the weight depends on the data and the season; a per-run choice follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from recommend.model import scoring
from recommend.model.dataset import DAY, Matrices, PurchaseLine
from recommend.model.evaluation import model_scores

TREND_WEIGHT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def trends_by_day(
    lines: Sequence[PurchaseLine], item_index: dict[str, int], days: np.ndarray, window: float
) -> np.ndarray:
    """(len(days), n_items) ``log1p(distinct buyers in (day - window days, day])`` for each
    reference time in ``days`` (epoch seconds), from every purchase line."""
    n_items = len(item_index)
    customers: dict[str, int] = {}
    rows = [
        (
            ln.purchased_at,
            customers.setdefault(ln.customer_id, len(customers)),
            item_index[ln.product_id],
        )
        for ln in lines
        if ln.product_id in item_index
    ]
    out = np.zeros((len(days), n_items))
    if not rows:
        return out
    arr = np.array(rows, dtype=np.float64)
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    times = arr[:, 0]
    codes = arr[:, 1].astype(np.int64) * n_items + arr[:, 2].astype(np.int64)
    for k, ref in enumerate(days):
        lo = np.searchsorted(times, ref - window * DAY, side="right")
        hi = np.searchsorted(times, ref, side="right")
        pairs = np.unique(codes[lo:hi])
        out[k] = np.log1p(np.bincount(pairs % n_items, minlength=n_items))
    return out


def choose_trend_weight(
    model: LightFM,
    m: Matrices,
    lines: Sequence[PurchaseLine],
    train_lines: Sequence[PurchaseLine],
    test_lines: Sequence[PurchaseLine],
    descriptions: Sequence[str] | None,
    *,
    k: int = 10,
    exclude_seen: bool = True,
    grid: Sequence[float] = TREND_WEIGHT_GRID,
) -> dict[str, Any]:
    """``{"trend_weight", "trend_days", "chosen_on", "holdout_precision": {w: p@k}}`` for the
    evaluated ``model`` on ``m`` (trained on ``train_lines``; ``m.test`` the holdout
    ``test_lines``); ``lines`` every purchase (the trend as of each held-out order)."""
    if m.test is None:
        return {}
    train, targets = m.train_csr, m.test.tocsr()
    if exclude_seen:  # as recommend.model.evaluation.evaluate counts them
        targets = (targets - targets.multiply(train > 0)).tocsr()
        targets.eliminate_zeros()
    users, at = _holdout_users(m, test_lines)
    keep = np.diff(targets.indptr)[users] > 0
    users, at = users[keep], at[keep]
    if not len(users):
        return {}
    day_of = np.floor(at / DAY) * DAY
    days, which = np.unique(day_of, return_inverse=True)
    index = {p: i for i, p in enumerate(m.item_ids)}
    trend_z = scoring.standardise(trends_by_day(lines, index, days, scoring.TREND_DAYS))
    words = scoring.word_matrix(list(descriptions)) if descriptions is not None else None
    history = _history(m, train_lines, users, at) if words is not None else None
    score = model_scores(model, m)
    hits = {float(w): 0 for w in grid}
    for start in range(0, len(users), 512):
        rows = users[start : start + 512]
        base = score(rows)
        content = (
            scoring.content_scores_batch(history[start : start + 512], words)
            if history is not None and words is not None
            else None
        )
        for w in hits:
            s = scoring.discover_from_terms(base, w * trend_z[which[start : start + 512]], content)
            hits[w] += _hits(s, train[rows] if exclude_seen else None, targets[rows], k)
    n = len(users) * k
    precision = {w: h / n for w, h in hits.items()}
    best = max(precision, key=lambda w: (precision[w], -w))
    return {
        "trend_weight": best,
        "trend_days": scoring.TREND_DAYS,
        "chosen_on": "holdout",
        "holdout_precision": {f"{w:g}": round(p, 6) for w, p in precision.items()},
    }


def _holdout_users(
    m: Matrices, test_lines: Sequence[PurchaseLine]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the customers with a held-out order and that order's time (epoch s)."""
    rows = {u: i for i, u in enumerate(m.user_ids)}
    when: dict[int, float] = {}
    for ln in test_lines:
        r = rows.get(ln.customer_id)
        if r is not None:
            when[r] = min(when.get(r, np.inf), ln.purchased_at)
    users = np.array(sorted(when), dtype=np.int64)
    return users, np.array([when[u] for u in users], dtype=np.float64)


def _history(
    m: Matrices, train_lines: Sequence[PurchaseLine], users: np.ndarray, at: np.ndarray
) -> sp.csr_matrix:
    """(len(users), n_items) content-term weights of each customer's training purchases as of
    their held-out order (``scoring.history_weights``), rows summing to 1."""
    pos = {int(u): k for k, u in enumerate(users)}
    rows_of = {u: i for i, u in enumerate(m.user_ids)}
    index = {p: i for i, p in enumerate(m.item_ids)}
    last: dict[tuple[int, int], float] = {}
    for ln in train_lines:
        k = pos.get(rows_of.get(ln.customer_id, -1))
        i = index.get(ln.product_id)
        if k is not None and i is not None and ln.purchased_at > last.get((k, i), -np.inf):
            last[(k, i)] = ln.purchased_at
    if not last:
        return sp.csr_matrix((len(users), len(m.item_ids)))
    keys = np.array(list(last), dtype=np.int64)
    age = np.maximum(at[keys[:, 0]] - np.fromiter(last.values(), float), 0.0) / DAY
    weights = 0.5 ** (age / scoring.CONTENT_HALF_LIFE_DAYS)
    hist = sp.csr_matrix((weights, (keys[:, 0], keys[:, 1])), shape=(len(users), len(m.item_ids)))
    sums = np.asarray(hist.sum(axis=1)).ravel()
    return (sp.diags(1.0 / np.maximum(sums, 1e-12)) @ hist).tocsr()


def _hits(scores: np.ndarray, seen: sp.csr_matrix | None, target: sp.csr_matrix, k: int) -> int:
    """Targets among each row's top ``k``, the ``seen`` products (when given) ranked out."""
    if seen is not None:
        r, c = seen.nonzero()
        scores[r, c] = -np.inf
    kk = min(k, scores.shape[1])
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    return int(sum(np.isin(top[j], target[j].indices).sum() for j in range(len(top))))
