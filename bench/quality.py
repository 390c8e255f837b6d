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
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) otherwise

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import retail

from recommend.model import scoring
from recommend.model.artifact import Artifact
from recommend.model.dataset import (
    DAY,
    IDS_ONLY,
    FeatureConfig,
    PurchaseLine,
    TrainingData,
    build_matrices,
    load_online_retail,
)
from recommend.model.recommender import BlendConfig, CustomerContext, Filters, Recommender
from recommend.model.training import (
    PRODUCTION,
    TrainConfig,
    TrainResult,
    artifact_arrays,
    fit_epochs,
    item_popularity,
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
ALS_GRID = {
    "weighting": ["binary", "log_orders"],
    "factors": [32, 64, 128],
    "regularization": [1.0, 5.0, 20.0],
    "alpha": [0.5, 1.0, 2.0],
}
ALS_ITERATIONS = 15


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


# --- baselines ----------------------------------------------------------------------------------
def popularity_method(t: retail.Task):
    pop = np.asarray(t.seen.sum(axis=0), dtype=np.float64).ravel()
    pop = pop + np.linspace(1e-3, 0, len(pop))  # same tie-break as serving
    return lambda users: np.broadcast_to(pop, (len(users), len(pop)))


def buy_again_method(t: retail.Task, counts: sp.csr_matrix):
    """The naive buy-again: the customer's own products by number of distinct orders (ties:
    more popular first), then the other products by popularity."""
    pop = np.asarray(t.seen.sum(axis=0), dtype=np.float64).ravel()
    pop = pop + np.linspace(1e-3, 0, len(pop))  # same tie-break as popularity_method
    tie = pop / (pop.max() + 1.0)  # in [0, 1): only breaks ties between equal counts
    fallback = tie - 2.0  # in (-2, -1): below any history item

    def score(users):
        s = np.tile(fallback, (len(users), 1))
        n = counts[users].toarray()
        has = n > 0
        s[has] = (n + tie)[has]
        return s

    return score


# --- implicit ALS -------------------------------------------------------------------------------
def als_fit(counts: sp.csr_matrix, p: dict, threads: int):
    from implicit.als import AlternatingLeastSquares

    w = counts.copy().astype(np.float32)
    w.data = np.ones_like(w.data) if p["weighting"] == "binary" else 1.0 + np.log(w.data)
    model = AlternatingLeastSquares(
        factors=p["factors"],
        regularization=p["regularization"],
        alpha=p["alpha"],
        iterations=ALS_ITERATIONS,
        random_state=7,
        num_threads=threads,
        calculate_training_loss=False,
    )
    started = time.perf_counter()
    model.fit(w, show_progress=False)
    elapsed = time.perf_counter() - started
    uf, itf = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return (lambda users: uf[users] @ itf.T), elapsed


def tune_als(t: retail.Task, counts: sp.csr_matrix, threads: int, log) -> tuple[dict, list]:
    rows = []
    for values in itertools.product(*ALS_GRID.values()):
        p = dict(zip(ALS_GRID, values, strict=True))
        fn, _ = als_fit(counts, p, threads)
        m = retail.evaluate(t, fn, "new")
        rows.append((m["precision"], p))
        log(f"  als {p}: p@10 {m['precision']:.4f}")
    best = max(rows, key=lambda r: r[0])
    log(f"ALS chosen: {best[1]} (validation p@10 new items {best[0]:.4f})")
    return best[1], rows


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


def recommender_for(split: Split, model, m, fc, tc, blend: BlendConfig | None) -> Recommender:
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


def rapport_lists(rec: Recommender, split: Split, t: retail.Task, strategy: str, which: str):
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


# --- Rapport scoring terms (recommend/model/scoring.py) -------------------------------------
@dataclass
class Terms:
    """What the discover / blend rules need besides the model, for one split."""

    trend: dict[float, np.ndarray]  # days -> (n_items,)
    content: np.ndarray  # (n_users, n_items) cosine, all users
    orders: sp.csr_matrix  # (n_users, n_items) distinct orders


def rapport_terms(split: Split, t: retail.Task, counts: sp.csr_matrix, lasts: sp.csr_matrix):
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


BUY_AGAIN_GRID = {
    "tiebreak": (0.2, 1.0),
    "timing_weight": (0.0, 1.0),
    "popularity_weight": (0.0, 0.5, 2.0, 8.0),
}


def tune_buy_again(rec: Recommender, split: Split, t: retail.Task, counts, log) -> dict:
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
    ci, epochs, dp, bp = tune_rapport(val, args.threads, log)
    name, fc, tc = RAPPORT_CANDIDATES[ci]
    tc = replace(tc, epochs=epochs, threads=args.threads)
    log(f"Rapport chosen: [{name}] epochs={epochs}; discover {dp}; blend {bp}")
    shipped = {"days": scoring.TREND_DAYS, "trend_weight": scoring.TREND_WEIGHT}
    chosen = {k: dp[k] for k in shipped}
    log(
        f"shipped trend (recommend/model/scoring.py) {shipped} vs validation {chosen}: "
        + (
            "agree"
            if chosen == shipped
            else "DIFFER: update scoring.TREND_* to the validation choice"
        )
    )
    tuning_seconds = time.perf_counter() - t0

    log("test window: every method trained on train+validation")
    results = run_test(test, als_params, fc, tc, dp, bp, args.threads)
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


def run_test(split: Split, als_params, fc, tc, dp, bp, threads) -> dict:
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
    # Rapport as served: the artifact (built like `rapport train` builds it) loaded into the
    # production Recommender, one recommend() call per customer
    started = time.perf_counter()
    rec = recommender_for(split, model, m, fc, tc, None)
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
        "trend_weight": scoring.TREND_WEIGHT,
        "content_weight": scoring.CONTENT_WEIGHT,
    }
    batch = discover_fn(model_scores(model, m), terms, **prod)
    record("batch rules discover", batch, rapport_seconds, ("new",))
    blend = blend_fn(batch, terms, beta=scoring.BLEND_BETA, gamma=scoring.BLEND_GAMMA)
    record("batch rules blend", blend, rapport_seconds, ("all",))
    record("ALS + trend/content", discover_fn(als, terms, **prod), als_seconds, ("new",))
    return results


def print_table(results: dict) -> None:
    head = (
        f"{'method':<22}| {'new items: p@10':>15} {'r@10':>7} {'cov':>6} "
        f"| {'all items: p@10':>15} {'r@10':>7} {'cov':>6} | train s"
    )
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        cells = []
        for which in ("new", "all"):
            x = r.get(which)
            cells.append(
                f" {x['precision']:>15.4f} {x['recall']:>7.4f} {x['coverage']:>6.3f} "
                if x
                else f" {'-':>15} {'-':>7} {'-':>6} "
            )
        ms = f"  ({r['ms_per_request']} ms/request)" if "ms_per_request" in r else ""
        print(f"{name:<22}|{cells[0]}|{cells[1]}| {r['train_seconds']:.1f}{ms}")
    print()
    for label, a, b, which, need in (
        (
            "Rapport discover vs tuned implicit ALS, new items",
            "Rapport discover",
            "implicit ALS",
            "new",
            10,
        ),
        ("Rapport blend vs buy-again, all items", "Rapport blend", "buy-again", "all", 5),
    ):
        x, y = results[a][which]["precision"], results[b][which]["precision"]
        lift = 100 * (x / y - 1)
        verdict = "MET" if lift >= need else "NOT MET"
        print(f"{label}: p@10 {x:.4f} vs {y:.4f} = {lift:+.1f}% (goal >= +{need}%): {verdict}")


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


if __name__ == "__main__":
    raise SystemExit(main())
