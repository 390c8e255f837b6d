"""Rapport as served in the quality benchmark (bench/quality.py): the artifact built as ``rapport
train`` builds it, loaded into the production ``Recommender``, one ``recommend`` call per customer
at the evaluation clock (``now`` = the window's start); and the ``buy_again`` tie-break grid."""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import numpy as np
import retail
from quality_baselines import buy_again_method

from recommend.model.artifact import Artifact
from recommend.model.dataset import PurchaseLine
from recommend.model.recommender import BlendConfig, CustomerContext, Filters, Recommender
from recommend.model.training import TrainResult, artifact_arrays, item_popularity


def recommender_for(
    split, model, m, fc, tc, blend: BlendConfig | None, chosen: dict | None = None
) -> Recommender:
    """The production Recommender on an artifact built as ``rapport train`` builds it;
    ``chosen``: the scoring weights its training run chose (``TrainResult.scoring``)."""
    result = TrainResult(
        model=model,
        matrices=m,
        metrics={},
        history=[],
        counts={},
        config=tc,
        features=fc,
        train_seconds=0.0,
        popularity=item_popularity(m),
        data=split.data,
        scoring=chosen or {},
    )
    artifact = Artifact(
        version="bench",
        path=Path("."),
        arrays=artifact_arrays(result),
        metadata={"params": result.params()},
        manifest_sha256="",
    )
    # the wall clock: every recommend() call below passes now=split.start (the evaluation clock)
    return Recommender(artifact, blend=blend)


def rapport_lists(rec: Recommender, split, t: retail.Task, strategy: str, which: str):
    """Top-10 index lists from Recommender.recommend for the evaluated users."""
    products = split.data.products
    lookup = lambda ids: {p: products[p] for p in ids if p in products}  # noqa: E731
    history: dict[str, list[PurchaseLine]] = defaultdict(list)
    for ln in split.train:
        history[ln.customer_id].append(ln)
    targets = t.eval_new if which == "new" else t.eval_all
    users = np.array(sorted(targets))
    lists = []
    for u in users:
        cid = t.users[u]
        ctx = CustomerContext(
            customer_id=cid,
            country=(split.data.customers.get(cid) or {}).get("country"),
            purchases=history[cid],
            has_profile=True,
        )
        out = rec.recommend(
            ctx,
            strategy=strategy,
            limit=retail.K,
            filters=Filters(in_stock_only=False),
            lookup=lookup,
            now=split.start,
        )
        lists.append([t.item_index[it["product_id"]] for it in out["items"]])
    return users, lists


def list_metrics(t, users, lists, which):
    targets = t.eval_new if which == "new" else t.eval_all
    prec, rec, shown = [], [], set()
    for u, row in zip(users, lists, strict=True):
        hits = sum(1 for i in row if i in targets[u])
        prec.append(hits / retail.K)
        rec.append(hits / len(targets[u]))
        shown.update(row)
    return {
        "precision": float(np.mean(prec)),
        "recall": float(np.mean(rec)),
        "coverage": len(shown) / len(t.items),
        "users": len(users),
    }


BUY_AGAIN_GRID = {
    "tiebreak": (0.2, 1.0),
    "timing_weight": (0.0, 1.0),
    "popularity_weight": (0.0, 0.5, 2.0, 8.0),
}


def tune_buy_again(rec: Recommender, split, t: retail.Task, counts, log) -> dict:
    """Served ``buy_again`` (evaluation clock) against the naive buy-again on this window over
    ``BUY_AGAIN_GRID`` (how ``recommend.model.repurchase``'s constants were chosen)."""
    naive = retail.evaluate(t, buy_again_method(t, counts), "all")["precision"]
    rows = []
    for values in itertools.product(*BUY_AGAIN_GRID.values()):
        p = dict(zip(BUY_AGAIN_GRID, values, strict=True))
        rec.buy_again_tiebreak = p["tiebreak"]
        rec.buy_again_timing_weight = p["timing_weight"]
        rec.buy_again_popularity_weight = p["popularity_weight"]
        u, lists = rapport_lists(rec, split, t, "buy_again", "all")
        x = list_metrics(t, u, lists, "all")["precision"]
        rows.append((x, p))
        log(f"  buy_again {p}: p@10 {x:.4f} ({x / naive:.3f}x naive buy-again {naive:.4f})")
    best = max(rows, key=lambda r: r[0])
    log(f"buy_again chosen: {best[1]} (validation p@10 all items {best[0]:.4f})")
    return best[1]
