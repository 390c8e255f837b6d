"""Recommendation quality on the full UCI Online Retail data (protocol: bench/retail.py).

    .venv/bin/python bench/quality.py [--data PATH] [--json OUT] [--threads 2]

One run: tune on the validation window (ALS grid; Rapport candidate configurations with the
epoch count read off the validation curve; blend parameters), retrain every method on
train+validation with the chosen settings, and print precision@10 / recall@10 / catalog
coverage / train time on the test window for popularity, buy-again, implicit ALS, Rapport
``discover`` and Rapport ``blend``, in the new-items and the all-items evaluation.

Rapport's training goes through the production code: ``recommend.model.dataset.load_online_retail``
(the ``rapport train --from-csv`` source; ``tests/unit/test_bench_quality.py`` shows the Redis
path builds the same matrices), ``build_matrices``, ``TrainConfig.model`` + ``fit_epochs`` and
``training.model_scores``. "Rapport discover" / "Rapport blend" / "Rapport buy_again" are
the production serving code: ``recommend.model.recommender.Recommender.recommend`` called per
customer (what ``GET /v1/profiles/{id}/recommendations`` serves) on an artifact built by
``training.artifact_arrays`` (with the trend, description and cold-start arrays), with the
weights of ``recommend/model/scoring.py``. The validation grid over those weights is still run and
printed (it is how the constants in ``recommend/model/scoring.py`` were chosen); the test rows use
the constants; likewise the ``buy_again`` tie-break grid (``BUY_AGAIN_GRID``, against the naive
buy-again: own distinct orders, popularity ties) and the check that the shipped trend weight is
the validation choice. Every ``recommend`` call passes ``now=split.start`` (the evaluation
clock: the window is scored as of its own time). The "batch rules" reference row is the same
rules computed for all customers at once (a check that serving and the vectorised
re-implementation agree).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) otherwise

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import quality_baselines as baselines
import retail
from quality_baselines import als_fit, buy_again_method, popularity_method, tune_als
from quality_report import print_table
from quality_rules import (
    BLEND_GRID,
    DISCOVER_GRID,
    TREND_DAYS,
    blend_fn,
    discover_fn,
    rapport_terms,
    restore,
    snapshot,
)
from quality_served import (
    list_metrics,
    rapport_lists,
    recommender_for,
    tune_buy_again,
)

from recommend.model import scoring
from recommend.model.dataset import (
    IDS_ONLY,
    FeatureConfig,
    PurchaseLine,
    TrainingData,
    build_matrices,
    load_online_retail,
    split_holdout,
)
from recommend.model.holdout_weights import choose_trend_weight
from recommend.model.training import (
    PRODUCTION,
    TrainConfig,
    fit_epochs,
    item_descriptions,
    model_scores,
)

# --- what the validation window chooses between -------------------------------------------------
# The wider search that led to these candidates is in docs/benchmarks.md (all on validation).
RAPPORT_CANDIDATES: list[tuple[str, FeatureConfig, TrainConfig]] = [
    # the production defaults (recommend.model.dataset.IDS_ONLY,
    # recommend.model.training.PRODUCTION),
    # with the epoch count read off the validation curve up to 60
    (
        "production defaults: ids only, hl 60d, 128 comps, lr .02, ms 50",
        IDS_ONLY,
        replace(PRODUCTION, epochs=60),
    ),
]
EVAL_EVERY = 5


@dataclass
class Split:
    name: str
    data: TrainingData  # training lines; products restricted to those bought in training
    train: list[PurchaseLine]
    evaluate: list[PurchaseLine]
    start: float  # first second of the evaluation window (the "now" of serving)


def make_splits(data: TrainingData) -> tuple[Split, Split]:
    ts = np.array([ln.purchased_at for ln in data.lines])
    first, last = float(ts.min()), float(ts.max())
    span = last - first
    val_start, test_start = last - 0.2 * span, last - 0.1 * span

    def cut(name, lo, hi):
        train = [ln for ln in data.lines if ln.purchased_at < lo]
        ev = [ln for ln in data.lines if lo <= ln.purchased_at < hi]
        items = {ln.product_id for ln in train}
        td = TrainingData(
            lines=train,
            customers=data.customers,
            products={p: v for p, v in data.products.items() if p in items},
        )
        return Split(name, td, train, ev, lo)

    return cut("validation", val_start, test_start), cut("test", test_start, last + 1)


def make_task(split: Split, users: list[str], items: list[str]) -> retail.Task:
    return retail.task(
        users,
        items,
        ((ln.customer_id, ln.product_id) for ln in split.train),
        ((ln.customer_id, ln.product_id) for ln in split.evaluate),
    )


def order_counts(split: Split, t: retail.Task) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(n_users, n_items): distinct orders per pair, and the pair's last purchase time."""
    orders: set[tuple[str, str, str]] = set()
    last: dict[tuple[int, int], float] = {}
    r, c = [], []
    for ln in split.train:
        u, i = t.user_index[ln.customer_id], t.item_index[ln.product_id]
        last[(u, i)] = max(last.get((u, i), 0.0), ln.purchased_at)
        if (ln.customer_id, ln.product_id, ln.order_id) in orders:
            continue
        orders.add((ln.customer_id, ln.product_id, ln.order_id))
        r.append(u)
        c.append(i)
    shape = (len(t.users), len(t.items))
    counts = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=shape)
    lr, lc = zip(*last.keys(), strict=True)
    lasts = sp.csr_matrix((list(last.values()), (lr, lc)), shape=shape)
    return counts, lasts


# --- Rapport ------------------------------------------------------------------------------------
def rapport_fit(split: Split, fc: FeatureConfig, tc: TrainConfig, on_epoch=None):
    """build_matrices + fit_epochs, exactly as recommend.model.training.train does."""
    started = time.perf_counter()
    m = build_matrices(split.data, split.train, None, fc)
    model = tc.model()
    fit_epochs(
        model,
        m,
        tc,
        progress=False,
        on_epoch=(lambda e: on_epoch(e, model, m)) if on_epoch else None,
    )
    return model, m, time.perf_counter() - started


def tune_rapport(split: Split, threads: int, log):
    """Best (candidate, epochs) by the model's own validation p@10 on new items (checked every
    EVAL_EVERY epochs), then the discover and blend weights on the same window."""
    best = {"precision": -1.0}
    for ci, (name, fc, tc) in enumerate(RAPPORT_CANDIDATES):
        tc = replace(tc, threads=threads)
        curve = []
        state = {}

        def on_epoch(e, model, m, tc=tc, curve=curve, state=state, ci=ci):
            if e % EVAL_EVERY and e != tc.epochs:
                return None
            if "task" not in state:
                state["task"] = make_task(split, m.user_ids, m.item_ids)
            p = retail.evaluate(state["task"], model_scores(model, m), "new")["precision"]
            curve.append((e, p))
            if p > best["precision"]:
                best.update(
                    precision=p, candidate=ci, epochs=e, snap=snapshot(model), model=model, m=m
                )
            return None

        rapport_fit(split, fc, tc, on_epoch)
        log(
            f"  rapport [{name}] model p@10 by epoch: " + " ".join(f"{e}:{p:.4f}" for e, p in curve)
        )
    model, m = best["model"], best["m"]
    restore(model, best["snap"])
    t = make_task(split, m.user_ids, m.item_ids)
    counts, lasts = order_counts(split, t)
    terms = rapport_terms(split, t, counts, lasts)
    mf = model_scores(model, m)
    rows = []
    for values in itertools.product(*DISCOVER_GRID.values()):
        p = dict(zip(DISCOVER_GRID, values, strict=True))
        if p["trend_weight"] == 0 and p["days"] != TREND_DAYS[0]:
            continue
        x = retail.evaluate(t, discover_fn(mf, terms, **p), "new")["precision"]
        rows.append((x, p))
        log(f"  discover {p}: p@10 {x:.4f}")
    best_d = max(rows, key=lambda r: r[0])
    dp = best_d[1]
    log(f"discover chosen: {dp} (validation p@10 new items {best_d[0]:.4f})")
    disc = discover_fn(mf, terms, **dp)
    rows = []
    for values in itertools.product(*BLEND_GRID.values()):
        p = dict(zip(BLEND_GRID, values, strict=True))
        x = retail.evaluate(t, blend_fn(disc, terms, **p), "all")["precision"]
        rows.append((x, p))
        log(f"  blend {p}: p@10 {x:.4f}")
    best_b = max(rows, key=lambda r: r[0])
    bp = best_b[1]
    log(f"blend chosen: {bp} (validation p@10 all items {best_b[0]:.4f})")
    _, fc, tc = RAPPORT_CANDIDATES[best["candidate"]]
    tune_buy_again(recommender_for(split, model, m, fc, tc, None), split, t, counts, log)
    return best["candidate"], best["epochs"], dp, bp


THREADS = 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=retail.DATA)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "quality.json")
    ap.add_argument("--threads", type=int, default=THREADS)
    args = ap.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731

    t0 = time.perf_counter()
    data = load_online_retail(args.data)
    val, test = make_splits(data)
    log(f"loaded {len(data.lines)} purchase lines in {time.perf_counter() - t0:.1f}s")
    for s in (val, test):
        log(
            f"{s.name}: train on {len(s.train)} lines before {_day(s.start)}, "
            f"evaluate {len(s.evaluate)} lines after"
        )

    log("tuning on the validation window")
    tv = make_task(
        val,
        sorted({ln.customer_id for ln in val.train}),
        sorted({ln.product_id for ln in val.train}),
    )
    counts_v, _ = order_counts(val, tv)
    als_params, _ = tune_als(tv, counts_v, args.threads, log)
    for label, fn, which in (
        ("popularity", popularity_method(tv), "new"),
        ("buy-again", buy_again_method(tv, counts_v), "all"),
    ):
        x = retail.evaluate(tv, fn, which)["precision"]
        log(f"validation {label} p@10 ({which} items): {x:.4f}")
    chosen_baselines = baselines.tune(tv, val.train, val.start, counts_v, log)
    ci, epochs, dp, bp = tune_rapport(val, args.threads, log)
    name, fc, tc = RAPPORT_CANDIDATES[ci]
    tc = replace(tc, epochs=epochs, threads=args.threads)
    log(f"Rapport chosen: [{name}] epochs={epochs}; discover {dp}; blend {bp}")
    tuning_seconds = time.perf_counter() - t0

    log("test window: every method trained on train+validation")
    results = run_test(test, als_params, fc, tc, dp, args.threads, chosen_baselines, log)
    print()
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "als": als_params,
                "rapport": {"name": name, "features": asdict(fc), "train": asdict(tc)},
                "discover": dp,
                "blend": bp,
                "baselines": asdict(chosen_baselines),
                "shipped_scoring": results.pop("shipped_scoring"),
                "test": results,
                "tuning_seconds": tuning_seconds,
            },
            indent=2,
            default=str,
        )
    )
    log(
        f"\ntotal {time.perf_counter() - t0:.0f}s (tuning {tuning_seconds:.0f}s); json: {args.json}"
    )
    return 0


def holdout_choice(split: Split, fc: FeatureConfig, tc: TrainConfig) -> dict:
    """What ``rapport train`` ships for this split's training part: its evaluated twin (each
    customer's latest order held out) and the trend weight chosen on that holdout."""
    train_lines, test_lines = split_holdout(split.train)
    m = build_matrices(split.data, train_lines, test_lines, fc)
    model = tc.model()
    fit_epochs(model, m, tc, progress=False)
    descriptions = item_descriptions(split.data, m.item_ids)
    return choose_trend_weight(model, m, split.train, train_lines, test_lines, descriptions)


def run_test(split: Split, als_params, fc, tc, dp, threads, chosen, log) -> dict:
    results: dict[str, dict] = {}

    def record(name, fn, secs, which=("new", "all")):
        results[name] = {"train_seconds": secs}
        for w in which:
            results[name][w] = retail.evaluate(t, fn, w)

    model, m, fit_seconds = rapport_fit(split, fc, tc)
    t = make_task(split, m.user_ids, m.item_ids)
    started = time.perf_counter()
    pop = popularity_method(t)
    pop_seconds = time.perf_counter() - started
    started = time.perf_counter()
    counts, lasts = order_counts(split, t)
    again = buy_again_method(t, counts)
    again_seconds = time.perf_counter() - started
    als, als_seconds = als_fit(counts, als_params, threads)
    started = time.perf_counter()
    terms = rapport_terms(split, t, counts, lasts)
    rapport_seconds = fit_seconds + time.perf_counter() - started
    record("popularity", pop, pop_seconds)
    record("buy-again", again, again_seconds)
    record("implicit ALS", als, als_seconds)
    for name, fn, which in baselines.methods(t, split.train, split.start, counts, chosen):
        started = time.perf_counter()
        fn(np.arange(1))
        record(name, fn, time.perf_counter() - started, which)
    # Rapport as served: the artifact (built like `rapport train` builds it) loaded into the
    # production Recommender, one recommend() call per customer
    started = time.perf_counter()
    shipped = holdout_choice(split, fc, tc)
    log(
        f"trend weight: rapport train's holdout chose {shipped['trend_weight']:g} "
        f"({shipped['holdout_precision']}), the validation window {dp['trend_weight']:g} "
        f"(days {dp['days']:g}; shipped days {scoring.TREND_DAYS:g})"
    )
    rec = recommender_for(split, model, m, fc, tc, None, shipped)
    artifact_seconds = time.perf_counter() - started
    for name, strategy, which in (
        ("Rapport discover", "discover", "new"),
        ("Rapport blend", "blend", "all"),
        ("Rapport buy_again", "buy_again", "all"),
    ):
        started = time.perf_counter()
        u, lists = rapport_lists(rec, split, t, strategy, which)
        per_request = (time.perf_counter() - started) / max(len(u), 1)
        results[name] = {
            "train_seconds": fit_seconds + artifact_seconds,
            which: list_metrics(t, u, lists, which),
            "ms_per_request": round(per_request * 1000, 2),
        }
    # references: the model alone; the same rules computed in batch; ALS with the same terms
    record("LightFM alone", model_scores(model, m), fit_seconds)
    prod = {
        "days": scoring.TREND_DAYS,
        "trend_weight": shipped["trend_weight"],
        "content_weight": scoring.CONTENT_WEIGHT,
    }
    batch = discover_fn(model_scores(model, m), terms, **prod)
    record("batch rules discover", batch, rapport_seconds, ("new",))
    blend = blend_fn(batch, terms, beta=scoring.BLEND_BETA, gamma=scoring.BLEND_GAMMA)
    record("batch rules blend", blend, rapport_seconds, ("all",))
    record("ALS + trend/content", discover_fn(als, terms, **prod), als_seconds, ("new",))
    return {**results, "shipped_scoring": shipped}


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


if __name__ == "__main__":
    raise SystemExit(main())
