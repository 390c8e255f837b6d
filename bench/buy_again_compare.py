"""buy_again against the naive buy-again on one window of the quality split (issue 19).

    .venv/bin/python bench/buy_again_compare.py validation|test [TIEBREAK TIMING POPULARITY]

Fits the production LightFM model (55 epochs) on the window's training part, then prints P@10
and recall@10 (all items) for the naive buy-again (own distinct orders, popularity ties), the
earlier recency-tie baseline, the formula ``buy_again`` used before issue 19 (not filled, at
the evaluation clock and at the wall clock) and today's ``buy_again`` with the given tie-break
weights (default: the shipped ones; on ``validation`` the grid of ``quality.BUY_AGAIN_GRID``).
Tune on validation only; report test.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import quality as q
import retail

import recommend.model.recommender as served
from recommend.model import repurchase
from recommend.model.dataset import IDS_ONLY, load_online_retail
from recommend.model.training import PRODUCTION


def recency_tie_baseline(t, counts, lasts):
    """The benchmark's buy-again baseline before issue 19: ties by recency."""
    pop = np.asarray(t.seen.sum(axis=0), dtype=np.float64).ravel()
    fallback = pop / (pop.max() + 1.0) - 2.0
    newest = lasts.data.max() if lasts.nnz else 1.0

    def score(users):
        s = np.tile(fallback, (len(users), 1))
        n, when = counts[users].toarray(), lasts[users].toarray()
        has = n > 0
        s[has] = n[has] + 0.5 * when[has] / newest
        return s

    return score


def old_score(c, model_pct, popularity_pct, cfg, **_):
    """buy_again's score before issue 19."""
    return c.history_score + cfg.model_weight * model_pct


def measure(rec, split, t, *, clock: str, own_only: bool):
    real = rec.recommend

    def call(*a, **k):
        if clock == "wall":
            k["now"] = None
        out = real(*a, **k)
        if own_only:
            out = {**out, "items": [it for it in out["items"] if it["source"] == "buy_again"]}
        return out

    rec.recommend = call
    try:
        u, lists = q.rapport_lists(rec, split, t, "buy_again", "all")
    finally:
        rec.recommend = real
    return q.list_metrics(t, u, lists, "all")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    which = argv[0] if argv else "test"
    val, test = q.make_splits(load_online_retail(retail.DATA))
    split = val if which == "validation" else test
    model, m, _ = q.rapport_fit(split, IDS_ONLY, replace(PRODUCTION, epochs=55, threads=2))
    t = q.make_task(split, m.user_ids, m.item_ids)
    counts, lasts = q.order_counts(split, t)
    naive = retail.evaluate(t, q.buy_again_method(t, counts), "all")
    recency = retail.evaluate(t, recency_tie_baseline(t, counts, lasts), "all")

    def row(label, x):
        ratio = x["precision"] / naive["precision"]
        print(f"{label:<58} p@10 {x['precision']:.4f} r@10 {x['recall']:.4f} {ratio:.3f}x")

    row("naive buy-again (popularity ties)", naive)
    row("buy-again, recency ties (the earlier baseline)", recency)
    rec = q.recommender_for(split, model, m, IDS_ONLY, PRODUCTION, None)
    served.buy_again_score = old_score
    for clock in ("eval", "wall"):
        row(
            f"before: buy_again, {clock} clock, not filled",
            measure(rec, split, t, clock=clock, own_only=True),
        )
    served.buy_again_score = repurchase.buy_again_score
    if len(argv) >= 4:
        grid = [tuple(map(float, argv[1:4]))]
    elif which == "validation":
        grid = list(itertools.product(*q.BUY_AGAIN_GRID.values()))
    else:
        grid = [
            (
                repurchase.BUY_AGAIN_TIEBREAK,
                repurchase.BUY_AGAIN_TIMING_WEIGHT,
                repurchase.BUY_AGAIN_POPULARITY_WEIGHT,
            )
        ]
    for tb, tw, pw in grid:
        rec.buy_again_tiebreak, rec.buy_again_timing_weight = tb, tw
        rec.buy_again_popularity_weight = pw
        for clock in ("eval", "wall"):
            x = measure(rec, split, t, clock=clock, own_only=False)
            row(f"after: buy_again ({tb}, {tw}, {pw}), {clock} clock", x)
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"total {time.perf_counter() - started:.0f}s")
    raise SystemExit(code)
