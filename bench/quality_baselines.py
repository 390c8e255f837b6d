"""The quality benchmark's baselines (bench/quality.py), each tuned on the validation window only.

* ``implicit ALS`` (benfred/implicit): weighting, factors, regularisation and alpha by grid;
* ``popularity``: distinct buyers in the training part;
* ``buy-again`` (naive): the customer's own products by distinct orders, ties broken by
  popularity, then the other products by popularity;
* ``recent popularity``: distinct buyers in the last ``days`` days before the evaluated window
  (ties: overall popularity), ``days`` tuned;
* ``EASE^R`` (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): the
  closed form ``B = I - P diagMat(1 / diag(P))``, ``P = (X^T X + lambda I)^-1``, X the binary
  (customer, product) matrix of the training part; scores ``X_u B``; ``lambda`` tuned. The
  Online Retail training parts hold about 3,600 products, so the dense inverse (3,600^2) is
  taken over every product: no restriction to frequent ones was needed;
* ``EASE^R + recent popularity``: ``z(EASE) + w * z(recent popularity)`` (z: standardised over
  the catalog per customer), ``w`` and ``days`` tuned on new items;
* ``buy-again + EASE^R + recent popularity`` (all items): ``log1p(distinct orders)`` for a
  product the customer bought, ``-gamma`` otherwise, ``+ beta * z(EASE^R + recent
  popularity)``, ``beta`` and ``gamma`` tuned on all items (the same one-scale form as Rapport's
  ``blend``, so the comparison is of the ranking terms, not of the way repeats are mixed in).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
import retail
import scipy.sparse as sp

from recommend.model import scoring
from recommend.model.dataset import DAY, PurchaseLine

RECENT_DAYS = (1.0, 2.0, 3.0, 7.0, 14.0, 28.0, 56.0)
EASE_LAMBDAS = (50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
EASE_RECENT_WEIGHTS = (0.1, 0.25, 0.5, 1.0, 2.0)
ALS_GRID = {
    "weighting": ["binary", "log_orders"],
    "factors": [32, 64, 128],
    "regularization": [1.0, 5.0, 20.0],
    "alpha": [0.5, 1.0, 2.0],
}
ALS_ITERATIONS = 15
REPEAT_GRID = {"beta": (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0), "gamma": (0.0, 0.5, 1.0)}


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


# --- popularity, buy-again, EASE^R --------------------------------------------------------------
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


def recent_popularity(t: retail.Task, train: list[PurchaseLine], start: float, days: float):
    """(n_items,) distinct buyers in ``[start - days, start)``, overall popularity below 1 as
    the tie-break (so an item nobody bought recently still has an order)."""
    since = start - days * DAY
    pairs = {
        (ln.customer_id, t.item_index[ln.product_id])
        for ln in train
        if since <= ln.purchased_at < start and ln.product_id in t.item_index
    }
    counts = np.zeros(len(t.items))
    for _, i in pairs:
        counts[i] += 1.0
    pop = np.asarray(t.seen.sum(axis=0), dtype=np.float64).ravel()
    return counts + pop / (pop.max() + 1.0)


def constant_method(vector: np.ndarray):
    return lambda users: np.broadcast_to(vector, (len(users), len(vector)))


def ease_fit(seen: sp.csr_matrix, lam: float) -> np.ndarray:
    """(n_items, n_items) EASE^R weights of the binary matrix ``seen`` (n_users, n_items)."""
    x = (seen > 0).astype(np.float64)
    gram = np.asarray((x.T @ x).todense())
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)  # B = I - P diagMat(1 / diag(P)): off-diagonal -P_ij / P_jj
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def ease_method(t: retail.Task, b: np.ndarray):
    seen = (t.seen > 0).astype(np.float32).tocsr()
    return lambda users: np.asarray(seen[users] @ b)


def mixed(first, second: np.ndarray, weight: float):
    """``z(first(users)) + weight * z(second)``, second an (n_items,) vector."""
    z2 = scoring.standardise(second)
    return lambda users: scoring.standardise(first(users)) + weight * z2


def with_repeats(base, counts: sp.csr_matrix, beta: float, gamma: float):
    """The one-scale repeat form: ``log1p(orders)`` if bought else ``-gamma``, ``+ beta *
    z(base)`` (``recommend.model.scoring.blend_scores``)."""
    return lambda users: scoring.blend_scores(
        base(users), counts[users].toarray(), beta=beta, gamma=gamma
    )


@dataclass
class Chosen:
    """The baselines' settings the validation window chose."""

    recent_days: float
    ease_lambda: float
    mix_days: float
    mix_weight: float
    beta: float
    gamma: float


def tune(t: retail.Task, train: list[PurchaseLine], start: float, counts, log) -> Chosen:
    """Every setting on the validation window: recent days and EASE lambda on new items, the
    EASE + recent mix on new items, the repeat form on all items."""

    def best(rows: list[tuple[float, object]], label: str, which: str):
        x, p = max(rows, key=lambda r: r[0])
        log(f"{label} chosen: {p} (validation p@10 {which} items {x:.4f})")
        return p

    recent = {d: recent_popularity(t, train, start, d) for d in RECENT_DAYS}
    rows = []
    for d in RECENT_DAYS:
        x = retail.evaluate(t, constant_method(recent[d]), "new")["precision"]
        rows.append((x, d))
        log(f"  recent popularity {d:g} days: p@10 new {x:.4f}")
    days = best(rows, "recent popularity days", "new")
    rows, fits = [], {}
    for lam in EASE_LAMBDAS:
        fits[lam] = ease_method(t, ease_fit(t.seen, lam))
        x = retail.evaluate(t, fits[lam], "new")["precision"]
        rows.append((x, lam))
        log(f"  EASE^R lambda {lam:g}: p@10 new {x:.4f}")
    lam = best(rows, "EASE^R lambda", "new")
    ease = fits[lam]
    rows = []
    for d, w in itertools.product(RECENT_DAYS, EASE_RECENT_WEIGHTS):
        x = retail.evaluate(t, mixed(ease, recent[d], w), "new")["precision"]
        rows.append((x, (d, w)))
        log(f"  EASE^R + recent {d:g} days x {w:g}: p@10 new {x:.4f}")
    mix_days, mix_weight = best(rows, "EASE^R + recent popularity (days, weight)", "new")
    base = mixed(ease, recent[mix_days], mix_weight)
    rows = []
    for beta, gamma in itertools.product(*REPEAT_GRID.values()):
        x = retail.evaluate(t, with_repeats(base, counts, beta, gamma), "all")["precision"]
        rows.append((x, (beta, gamma)))
        log(f"  buy-again + EASE^R + recent beta {beta:g} gamma {gamma:g}: p@10 all {x:.4f}")
    beta, gamma = best(rows, "buy-again + EASE^R + recent (beta, gamma)", "all")
    return Chosen(days, lam, mix_days, mix_weight, beta, gamma)


def methods(
    t: retail.Task, train: list[PurchaseLine], start: float, counts, chosen: Chosen
) -> list[tuple[str, object, tuple[str, ...]]]:
    """(name, score function, evaluations) of the new baselines with the chosen settings,
    fitted on this split's training part."""
    recent = recent_popularity(t, train, start, chosen.recent_days)
    ease = ease_method(t, ease_fit(t.seen, chosen.ease_lambda))
    mix = mixed(ease, recent_popularity(t, train, start, chosen.mix_days), chosen.mix_weight)
    return [
        (f"recent popularity {chosen.recent_days:g}d", constant_method(recent), ("new", "all")),
        (f"EASE^R l={chosen.ease_lambda:g}", ease, ("new", "all")),
        ("EASE^R + recent pop", mix, ("new", "all")),
        ("buy-again+EASE^R+recent", with_repeats(mix, counts, chosen.beta, chosen.gamma), ("all",)),
    ]


NEW_ITEM_BASELINES = ("popularity", "implicit ALS", "recent popularity", "EASE^R")
ALL_ITEM_BASELINES = NEW_ITEM_BASELINES + ("buy-again",)
