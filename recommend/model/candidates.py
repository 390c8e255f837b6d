"""From a score vector to the items a response shows: the best items that pass the filters on
the live catalog, and the rank counting behind buy-again's model percentile.

Filters are applied to the live catalog (active products only; ``in_stock_only``; price range)
after the model ranking, fetching more candidates until ``limit`` pass. The selection only
reads the scores: argpartition for the top candidates, exclusions skipped as it walks, a
category filter ranking that category's precomputed items. The buy-again percentile counts
the scores below each candidate instead of sorting the catalog.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recommend.model.model_arrays import ModelArrays
from recommend.model.serving import Filters, Lookup


def select(
    model: ModelArrays,
    scores: np.ndarray,
    *,
    exclude: set[str],
    filters: Filters,
    limit: int,
    lookup: Lookup,
) -> list[tuple[str, float, dict[str, Any]]]:
    """The best ``limit`` items of ``model`` by ``scores`` that pass ``filters`` on the live
    catalog (highest score first, the lower item index first among equal scores). ``scores``
    is only read: a category filter ranks that category's items (precomputed indices), and
    excluded items are skipped as the ranking is walked."""
    candidates: np.ndarray | None = None
    if filters.category:
        code = model.category_code.get(filters.category)
        if code is None:
            return []
        candidates = model.category_items[code]
        scores = scores[candidates]
    skip = {i for i in map(model.item_index.get, exclude) if i is not None}
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
        docs = lookup(model.item_ids[i] for i, _ in picked)
        for i, score in picked:
            pid = model.item_ids[i]
            doc = docs.get(pid)
            if doc is not None and filters.accepts(doc):
                out.append((pid, score, doc))
                if len(out) == limit:
                    break
        taken = want
        want *= 2
    return out


def count_below(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
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
