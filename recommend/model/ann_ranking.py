"""``discover`` and ``blend`` from the nearest-neighbour index's candidates, ranked exactly.

The full score of ``recommend.model.scoring`` is ``z(model) + trend term + w z(content)``
(``blend`` adds ``log1p(orders)`` to the bought products and rescales). The index
(``recommend.model.ann``) finds the items with the largest model scores; the other terms can
lift items it did not return, so the candidates are

- the index's top ``k`` by model score,
- the top ``k`` items by the trend term and by the content term (items with none share one
  value: the lowest),
- the products added since training (not in the index), the customer's bought products
  (``blend``), and every item of a small filtered category,

each scored exactly with the full score. ``z(model)`` needs the catalog's mean and standard
deviation of the model scores: both follow from the items' first and second moments, summed
once per model (``user . item + bias`` is linear in ``[u, 1]``), so no request scores the
catalog. An item that is no candidate scores at most ``bound``: the k-th model score found
plus the largest trend and content terms left out. Items are taken best first while their
score is at least ``bound`` and they pass the filters on the live catalog (the same checks as
``recommend.model.candidates.select``); with fewer than ``limit`` taken, ``k`` doubles (the
search effort with it), and past half the catalog :func:`ann_select` returns None, so the
caller scores exactly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recommend.model import scoring
from recommend.model.serving import Filters, Lookup

SMALL_CATEGORY = 20_000  # a category this small is scored whole: cheaper than widening


def item_moments(vectors: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums over the items of ``a = [v, b]`` (d + 1,) and ``a a^T`` (d + 1, d + 1), float64,
    from which any user's mean and variance of model scores follow."""
    a = np.hstack([np.asarray(vectors, np.float32), np.asarray(bias, np.float32)[:, None]])
    return a.sum(axis=0, dtype=np.float64), (a.T @ a).astype(np.float64)


def _top(values: np.ndarray | None, k: int) -> tuple[np.ndarray, float]:
    """Rows of the ``k`` largest values above the minimum, and the largest value left out."""
    if values is None or not len(values):
        return np.zeros(0, dtype=np.int64), 0.0
    low = float(values.min())
    rows = np.flatnonzero(values > low)
    if len(rows) <= k:
        return rows, low
    part = np.argpartition(values[rows], len(rows) - k - 1)
    return rows[part[-k:]], float(values[rows[part[-k - 1]]])


class TermSummary:
    """A catalog-wide term's rows above its lowest value, best first, its lowest value,
    mean, variance and (d + 1,) sum of ``[v, b] * term`` over the items."""

    def __init__(self, term: np.ndarray, vectors: np.ndarray, bias: np.ndarray):
        self.term = term
        self.low = float(term.min()) if len(term) else 0.0
        rows = np.flatnonzero(term > self.low)
        self.order = rows[np.argsort(-term[rows], kind="stable")]
        self.mean, self.var = float(term.mean()), float(term.var())
        cross = np.asarray(vectors, np.float32).T @ term.astype(np.float32)
        self.cross = np.append(cross, np.asarray(bias, np.float32) @ term.astype(np.float32))

    def top(self, k: int) -> tuple[np.ndarray, float]:
        """The ``k`` best rows and the largest value left out."""
        if len(self.order) <= k:
            return self.order, self.low
        return self.order[:k], float(self.term[self.order[k]])


class Candidates:
    """One try: candidate rows, their discover scores, the bound and the catalog moments of
    the discover score (for ``blend``)."""

    def __init__(self, model, vector, trend, content, k: int, extra: np.ndarray, closed: bool):
        n = len(model.item_ids)
        q = np.append(np.asarray(vector, np.float64), 1.0)
        sum_a, sum_aa = model.ann_moments
        mean = float(sum_a @ q) / n
        sd = math.sqrt(max(float(q @ sum_aa @ q) / n - mean * mean, 0.0)) + 1e-9
        found = model.ann.search(vector, k)
        summary = None if trend is None else model.ann_term(trend)
        # the trend bound is loose while hot items are left out: take many more of them
        trend_rows, trend_left = (
            (np.zeros(0, np.int64), 0.0) if summary is None else summary.top(16 * k)
        )
        content_z = None if content is None else scoring.standardise(content)
        weight = scoring.CONTENT_WEIGHT
        content_rows, content_left = _top(content_z, k)
        new_rows = np.arange(model.ann.n_items, n)
        parts = [found, trend_rows, content_rows, new_rows, extra]
        rows = np.unique(np.concatenate([p.astype(np.int64) for p in parts]))
        model_scores = np.asarray(model.item_vectors)[rows] @ vector
        model_scores += np.asarray(model.item_bias)[rows]
        z = (model_scores - mean) / sd
        self.rows, self.mean, self.sd, self.q = rows, mean, sd, q
        self.discover = z + (trend[rows] if trend is not None else 0.0)
        if content_z is not None:
            self.discover += weight * content_z[rows]
        kth = float(np.asarray(model.item_vectors)[found[-1]] @ vector) if len(found) else mean
        kth += float(model.item_bias[found[-1]]) if len(found) else 0.0
        self.bound = (kth - mean) / sd + (trend_left if trend is not None else 0.0)
        self.bound += weight * content_left if content_z is not None else 0.0
        if closed or len(found) >= model.ann.n_items:
            self.bound = -math.inf  # every item that can be shown is a candidate
        self.trend, self.content, self.content_z = trend, content, content_z
        self.summary = summary

    def discover_spread(self, model) -> tuple[float, float]:
        """The catalog mean and standard deviation of the discover score (``blend``
        standardises it): from the moments and the trend and content terms' sums."""
        n = len(model.item_ids)
        var = (self.sd - 1e-9) ** 2 / self.sd**2  # z(model)'s own variance
        mean = 0.0
        terms = [t for t in (self.trend, self.content_z) if t is not None]
        w = [1.0 if t is self.trend else scoring.CONTENT_WEIGHT for t in terms]
        for wi, t in zip(w, terms, strict=True):
            summary = self.summary if t is self.trend else None
            t_mean = summary.mean if summary is not None else float(t.mean())
            mean += wi * t_mean
            var += wi * wi * (summary.var if summary is not None else float(t.var()))
            # cov(z(model), t) = (sum_i m_i t_i / n - mean_m mean_t) / sd_m
            cross = float(self._cross(model, t) @ self.q) / n
            var += 2 * wi * (cross - self.mean * t_mean) / self.sd
        if len(terms) == 2:
            var += 2 * w[1] * float(np.cov(terms[0], terms[1], bias=True)[0, 1])
        return mean, math.sqrt(max(var, 0.0)) + 1e-9

    def _cross(self, model, t: np.ndarray) -> np.ndarray:
        """(d + 1,) sum over the items of ``a_i t_i``: cached per trend term; for the content
        term from its non-zero raw values (``z = (c - mean) / sd``), not a pass over the
        catalog's vectors."""
        if t is self.trend and self.summary is not None:
            return self.summary.cross
        raw = self.content
        rows = np.flatnonzero(raw)
        a = np.hstack(
            [np.asarray(model.item_vectors)[rows], np.asarray(model.item_bias)[rows, None]]
        )
        sum_a = model.ann_moments[0]
        return (a.T @ raw[rows] - float(raw.mean()) * sum_a) / (float(raw.std()) + 1e-9)


def ann_select(
    model,
    vector: np.ndarray,
    trend: np.ndarray | None,
    content: np.ndarray | None,
    *,
    exclude: set[str],
    filters: Filters,
    limit: int,
    lookup: Lookup,
    orders: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[str, float, dict[str, Any]]] | None:
    """The best ``limit`` items by the discover score (``orders``: (item rows, distinct
    orders) of the customer's purchases, to rank by the blend score instead) that pass
    ``filters``, from the index's candidates; None when that needs most of the catalog."""
    extra, closed = np.zeros(0, dtype=np.int64), False
    if filters.category:
        code = model.category_code.get(filters.category)
        if code is None:
            return []
        if len(model.category_items[code]) <= SMALL_CATEGORY:
            extra, closed = model.category_items[code], True
    if orders is not None:
        extra = np.concatenate([extra, orders[0]])
    skip = {i for i in map(model.item_index.get, exclude) if i is not None}
    k = max(4 * (limit + len(skip)) + 50, 100)
    while k <= max(model.ann.n_items // 2, 100):
        c = Candidates(model, vector, trend, content, k, extra, closed)
        scores, bound = c.discover, c.bound
        if orders is not None:
            mean, sd = c.discover_spread(model)
            scores = scoring.BLEND_BETA * (scores - mean) / sd
            bound = scoring.BLEND_BETA * (bound - mean) / sd
            at = np.searchsorted(c.rows, orders[0])
            scores[at] += np.log1p(orders[1])
        picked = _walk(model, c.rows, scores, bound, skip, filters, limit, lookup)
        if len(picked) == limit or bound == -math.inf:
            return picked
        k *= 2
    return None


def _walk(model, rows, scores, bound, skip, filters, limit, lookup):
    """Candidates best first (lower row first among equal scores) down to ``bound``, the
    excluded skipped, the rest checked against the live catalog until ``limit`` pass."""
    order = np.lexsort((rows, -scores))
    order = order[scores[order] >= bound] if bound > -math.inf else order
    out: list[tuple[str, float, dict[str, Any]]] = []
    for start in range(0, len(order), 4 * limit + 10):
        chunk = [
            (int(rows[j]), float(scores[j]))
            for j in order[start : start + 4 * limit + 10]
            if int(rows[j]) not in skip and math.isfinite(scores[j])
        ]
        docs = lookup(model.item_ids[i] for i, _ in chunk)
        for i, score in chunk:
            doc = docs.get(model.item_ids[i])
            if doc is not None and filters.accepts(doc):
                out.append((model.item_ids[i], score, doc))
                if len(out) == limit:
                    return out
    return out
