"""Scratch exploration for the quality benchmark (validation window only; a record of the search).

    .venv/bin/python bench/quality_explore.py baselines|als|lfm|blend [...]

Every attempt is appended to bench/results/quality_attempts.md. Nothing here reads the test window.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import retail

LOG = Path(__file__).resolve().parent / "results" / "quality_attempts.md"
DAY = 86400.0


def old_task(split: retail.Split) -> retail.Task:
    tr, ev = split.train, split.evaluate
    return retail.task(
        sorted(set(tr.customer.tolist())),
        sorted(set(tr.item.tolist())),
        zip(tr.customer, tr.item, strict=True),
        zip(ev.customer, ev.item, strict=True),
    )


def log(line: str) -> None:
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("a") as f:
        f.write(line + "\n")
    print(line, flush=True)


def fmt(m: dict) -> str:
    return f"p@10={m['precision']:.4f} r@10={m['recall']:.4f} cov={m['coverage']:.3f}"


# ---------------------------------------------------------------- matrices


def pair_stats(split: retail.Split, t: retail.Task):
    """Per (user, item): distinct invoices, total quantity, last purchase time."""
    tr = split.train
    u = np.array([t.user_index[c] for c in tr.customer])
    i = np.array([t.item_index[s] for s in tr.item])
    shape = (len(t.users), len(t.items))
    # distinct invoices per pair
    key = np.char.add(np.char.add(tr.invoice, "|"), tr.item)
    _, first = np.unique(key, return_index=True)
    invoices = sp.csr_matrix((np.ones(len(first)), (u[first], i[first])), shape=shape)
    qty = sp.csr_matrix((tr.quantity.astype(float), (u, i)), shape=shape)
    lin = u * shape[1] + i
    order = np.argsort(lin, kind="stable")
    lin_s, ts_s = lin[order], tr.ts[order]
    uniq, start = np.unique(lin_s, return_index=True)
    last = np.maximum.reduceat(ts_s, start)
    last_m = sp.csr_matrix((last.astype(float), (uniq // shape[1], uniq % shape[1])), shape=shape)
    return invoices, qty, last_m


def weights(split, t, inv, qty, last, scheme: str, half_life: float) -> sp.csr_matrix:
    """Interaction weight per pair: base (binary / log invoices / log qty) x recency decay."""
    base = inv.copy()
    if scheme == "binary":
        base.data[:] = 1.0
    elif scheme == "loginv":
        base.data = 1.0 + np.log(base.data)
    elif scheme == "logqty":
        q = qty.tocsr()
        base.data = np.log1p(q.data)
    elif scheme == "inv":
        pass
    if half_life > 0:
        age = (split.start - last.data) / DAY
        base.data = base.data * np.power(0.5, age / half_life)
    return base.tocsr()


# ---------------------------------------------------------------- baselines


def popularity(t: retail.Task) -> np.ndarray:
    return np.asarray(t.seen.sum(axis=0)).ravel()


def buy_again_scores(t, inv, last, pop, users):
    """History by frequency (distinct invoices), ties by recency, then popularity."""
    n = len(users)
    s = np.tile(pop / (pop.max() + 1.0), (n, 1)) - 2.0  # fallback in (-2, -1)
    sub_inv = inv[users].toarray()
    sub_last = last[users].toarray()
    has = sub_inv > 0
    s[has] = sub_inv[has] + sub_last[has] / 1e10  # epoch/1e10 < 1: recency breaks ties
    return s


def run_baselines():
    rows = retail.load()
    val, _ = retail.splits(rows)
    t = old_task(val)
    inv, qty, last = pair_stats(val, t)
    pop = popularity(t)
    for which in ("new", "all"):
        m = retail.evaluate(t, lambda us: np.tile(pop.astype(float), (len(us), 1)), which)
        log(f"| baseline | popularity | {which} | {fmt(m)} | users={m['users']} |")
        m = retail.evaluate(t, lambda us: buy_again_scores(t, inv, last, pop, us), which)
        log(f"| baseline | buy-again | {which} | {fmt(m)} | users={m['users']} |")


# ---------------------------------------------------------------- implicit ALS


def run_als(grid: str = "default"):
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import bm25_weight

    rows = retail.load()
    val, _ = retail.splits(rows)
    t = old_task(val)
    inv, qty, last = pair_stats(val, t)
    if grid == "default":
        combos = itertools.product(
            ["binary", "loginv", "bm25"], [32, 64, 128], [0.01, 0.1, 1.0], [5.0, 20.0, 40.0], [15]
        )
    elif grid == "fine":
        combos = itertools.product(
            ["binary", "loginv"], [32, 64, 128], [0.1, 1.0, 5.0, 20.0], [0.5, 1.0, 2.0, 5.0], [15]
        )
    else:
        combos = [tuple(eval_literal(x) for x in grid.split(","))]
    for scheme, factors, reg, alpha, iters in combos:
        if scheme == "bm25":
            w = bm25_weight(inv.tocoo(), K1=100, B=0.8).tocsr()
        else:
            w = weights(val, t, inv, qty, last, scheme, 0)
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=reg,
            alpha=alpha,
            iterations=iters,
            random_state=7,
            num_threads=2,
            calculate_training_loss=False,
        )
        t0 = time.perf_counter()
        model.fit(w, show_progress=False)
        dt = time.perf_counter() - t0
        uf, itf = model.user_factors, model.item_factors
        m = retail.evaluate(t, lambda us, uf=uf, itf=itf: uf[us] @ itf.T, "new")
        log(
            f"| als | {scheme} f={factors} reg={reg} alpha={alpha} it={iters} | new | {fmt(m)} "
            f"| {dt:.1f}s |"
        )


def eval_literal(x: str):
    try:
        return int(x)
    except ValueError:
        try:
            return float(x)
        except ValueError:
            return x


# ---------------------------------------------------------------- LightFM

WORD = re.compile(r"[A-Z]{3,}")


def lfm_features(split, t, user_feats: str, item_feats: str, min_word: int = 5):
    """Sparse (n_users, n_user_features) / (n_items, n_item_features) with identity columns.

    Rows are normalised to sum 1 (LightFM's Dataset default)."""
    tr = split.train
    # user features
    ucols: list[list[str]] = [[f"u:{u}"] for u in t.users]
    if "country" in user_feats:
        last_country = {}
        for c, k in zip(tr.customer, tr.country, strict=True):
            last_country[c] = k
        for ui, u in enumerate(t.users):
            ucols[ui].append("country:" + last_country[u])
    # item features
    desc = {}
    price = {}
    for s, d, p in zip(tr.item, tr.description, tr.price, strict=True):
        desc[s] = d
        price.setdefault(s, []).append(p)
    icols: list[list[str]] = [[f"i:{s}"] for s in t.items]
    if "words" in item_feats:
        counts: dict[str, int] = {}
        toks = {s: set(WORD.findall(desc.get(s, "").upper())) for s in t.items}
        for ws in toks.values():
            for w in ws:
                counts[w] = counts.get(w, 0) + 1
        for ii, s in enumerate(t.items):
            icols[ii].extend(f"w:{w}" for w in sorted(toks[s]) if counts[w] >= min_word)
    if "price" in item_feats:
        for ii, s in enumerate(t.items):
            med = float(np.median(price[s]))
            icols[ii].append(f"pb:{int(np.floor(np.log2(med + 1e-9)))}")
    return _to_matrix(ucols), _to_matrix(icols)


def _to_matrix(cols: list[list[str]], id_weight: float | None = None) -> sp.csr_matrix:
    names: dict[str, int] = {}
    r, c, v = [], [], []
    for ri, fs in enumerate(cols):
        for f in fs:
            r.append(ri)
            c.append(names.setdefault(f, len(names)))
            v.append(1.0 / len(fs))
    return sp.csr_matrix((v, (r, c)), shape=(len(cols), len(names)), dtype=np.float32)


def lfm_scores(model, uf, itf, users):
    ub, ue = model.get_user_representations(uf)
    ib, ie = model.get_item_representations(itf)
    return lambda us: (ue[us] @ ie.T) + ub[us][:, None] + ib[None, :]


def run_lfm(spec: str):
    """spec: comma list key=value; lists with '/' expand to a grid."""
    from lightfm import LightFM

    rows = retail.load()
    val, _ = retail.splits(rows)
    t = old_task(val)
    inv, qty, last = pair_stats(val, t)
    opts = dict(kv.split("=") for kv in spec.split(",") if kv)
    keys = list(opts)
    for values in itertools.product(*(opts[k].split("/") for k in keys)):
        o = dict(zip(keys, values, strict=True))
        loss = o.get("loss", "warp")
        comp = int(o.get("no", 64))
        lr = float(o.get("lr", 0.05))
        ep = int(o.get("ep", 30))
        ua = float(o.get("ua", 0.0))
        ia = float(o.get("ia", 0.0))
        scheme = o.get("w", "binary")
        hl = float(o.get("hl", 0))
        uft = o.get("uf", "")
        ift = o.get("if", "")
        mx = int(o.get("ms", 10))
        kk = int(o.get("k", 5))
        minw = int(o.get("minw", 5))
        w = weights(val, t, inv, qty, last, scheme, hl).tocoo()
        interactions = w.copy()
        interactions.data[:] = 1.0
        uf, itf = lfm_features(val, t, uft, ift, minw)
        model = LightFM(
            no_components=comp,
            loss=loss,
            learning_rate=lr,
            user_alpha=ua,
            item_alpha=ia,
            max_sampled=mx,
            k=kk,
            learning_schedule=o.get("sched", "adagrad"),
            random_state=np.random.RandomState(int(o.get("seed", 7))),
        )
        t0 = time.perf_counter()
        curve = []
        every = int(o.get("every", ep))
        for e in range(ep):
            model.fit_partial(
                interactions,
                user_features=uf,
                item_features=itf,
                sample_weight=None if loss == "warp-kos" else w,
                epochs=1,
                num_threads=2,
            )
            if (e + 1) % every == 0 and (e + 1) != ep:
                m = retail.evaluate(t, lfm_scores(model, uf, itf, None), "new")
                curve.append(f"{e + 1}:{m['precision']:.4f}")
        dt = time.perf_counter() - t0
        m = retail.evaluate(t, lfm_scores(model, uf, itf, None), "new")
        log(f"| lfm | {o} | new | {fmt(m)} | {dt:.1f}s | {' '.join(curve)} |")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "baselines":
        run_baselines()
    elif cmd == "als":
        run_als(sys.argv[2] if len(sys.argv) > 2 else "default")
    elif cmd == "lfm":
        run_lfm(sys.argv[2] if len(sys.argv) > 2 else "")


# ---------------------------------------------------------------- R1's production code path


def validation_data():
    """(TrainingData restricted to the validation-train part, train lines, eval lines)."""
    from recommend.model.dataset import TrainingData, load_online_retail

    data = load_online_retail(retail.DATA)
    ts = np.array([ln.purchased_at for ln in data.lines])
    first, last = ts.min(), ts.max()
    span = last - first
    val_start, test_start = last - 0.2 * span, last - 0.1 * span
    train = [ln for ln in data.lines if ln.purchased_at < val_start]
    ev = [ln for ln in data.lines if val_start <= ln.purchased_at < test_start]
    items = {ln.product_id for ln in train}
    td = TrainingData(
        lines=train,
        customers=data.customers,
        products={p: v for p, v in data.products.items() if p in items},
    )
    return td, train, ev


def _typed(default, text: str):
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes")
    if default is None:
        return None if text in ("none", "None") else float(text)
    return type(default)(text)


def run_r1(spec: str):
    """Grid over FeatureConfig / TrainConfig fields (key=v1/v2,...), 'every' = eval interval."""
    from dataclasses import fields, replace

    from recommend.model.dataset import FeatureConfig, build_matrices
    from recommend.model.training import TrainConfig, fit_epochs, model_scores

    td, train, ev = validation_data()
    opts = dict(kv.split("=") for kv in spec.split(",") if kv)
    every = int(opts.pop("every", 0))
    fdef = {f.name: getattr(FeatureConfig(), f.name) for f in fields(FeatureConfig)}
    tdef = {f.name: getattr(TrainConfig(), f.name) for f in fields(TrainConfig)}
    keys = list(opts)
    for values in itertools.product(*(opts[k].split("/") for k in keys)):
        o = dict(zip(keys, values, strict=True))
        fc = replace(FeatureConfig(), **{k: _typed(fdef[k], v) for k, v in o.items() if k in fdef})
        tc = replace(
            TrainConfig(threads=2),
            **{k: _typed(tdef[k], v) for k, v in o.items() if k in tdef},
        )
        m = build_matrices(td, train, None, fc)
        t = retail.task(
            m.user_ids,
            m.item_ids,
            ((ln.customer_id, ln.product_id) for ln in train),
            ((ln.customer_id, ln.product_id) for ln in ev),
        )
        model = tc.model()
        curve = []

        def on_epoch(e, model=model, m=m, t=t, tc=tc, curve=curve):
            if every and e % every == 0 and e != tc.epochs:
                curve.append(
                    f"{e}:{retail.evaluate(t, model_scores(model, m), 'new')['precision']:.4f}"
                )

        t0 = time.perf_counter()
        fit_epochs(model, m, tc, progress=False, on_epoch=on_epoch)
        dt = time.perf_counter() - t0
        mm = retail.evaluate(t, model_scores(model, m), "new")
        log(f"| r1 | {o} | new | {fmt(mm)} | {dt:.1f}s | {' '.join(curve)} |")


if __name__ == "__main__" and sys.argv[1] == "r1":
    run_r1(sys.argv[2] if len(sys.argv) > 2 else "")


def history_matrices(lines, t: retail.Task, reference: float, half_life: float | None):
    """(n_users, n_items) CSR: distinct orders per pair, and the same with recency decay."""
    seen_orders: set = set()
    r, c, plain, decayed = [], [], [], []
    for ln in lines:
        key = (ln.customer_id, ln.product_id, ln.order_id)
        if key in seen_orders:
            continue
        seen_orders.add(key)
        r.append(t.user_index[ln.customer_id])
        c.append(t.item_index[ln.product_id])
        plain.append(1.0)
        age = max(reference - ln.purchased_at, 0.0) / DAY
        decayed.append(0.5 ** (age / half_life) if half_life else 1.0)
    shape = (len(t.users), len(t.items))
    return (
        sp.csr_matrix((plain, (r, c)), shape=shape),
        sp.csr_matrix((decayed, (r, c)), shape=shape),
    )


def blend_scores(freq, model_fn, beta, gamma):
    """history term log1p(decayed orders) + beta * per-user z-score of the model; items never
    bought get -gamma as their history term."""

    def score(us):
        h = freq[us].toarray()
        s = np.asarray(model_fn(us), dtype=np.float64)
        z = (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-9)
        hist = np.where(h > 0, np.log1p(h), -gamma)
        return hist + beta * z

    return score


def run_blend(spec: str):
    from dataclasses import fields, replace

    from recommend.model.dataset import FeatureConfig, build_matrices
    from recommend.model.training import TrainConfig, fit_epochs, model_scores

    td, train, ev = validation_data()
    opts = dict(kv.split("=") for kv in spec.split(",") if kv)
    hls = [None if x == "none" else float(x) for x in opts.pop("hl", "none/30/90").split("/")]
    betas = [float(x) for x in opts.pop("beta", "0/0.1/0.3/1").split("/")]
    gammas = [float(x) for x in opts.pop("gamma", "0/0.5/1/2").split("/")]
    fdef = {f.name: getattr(FeatureConfig(), f.name) for f in fields(FeatureConfig)}
    tdef = {f.name: getattr(TrainConfig(), f.name) for f in fields(TrainConfig)}
    fc = replace(FeatureConfig(), **{k: _typed(fdef[k], v) for k, v in opts.items() if k in fdef})
    tc = replace(
        TrainConfig(threads=2), **{k: _typed(tdef[k], v) for k, v in opts.items() if k in tdef}
    )
    m = build_matrices(td, train, None, fc)
    t = retail.task(
        m.user_ids,
        m.item_ids,
        ((ln.customer_id, ln.product_id) for ln in train),
        ((ln.customer_id, ln.product_id) for ln in ev),
    )
    model = tc.model()
    fit_epochs(model, m, tc, progress=False)
    mf = model_scores(model, m)
    log(f"| blend-model | {opts} | all | {fmt(retail.evaluate(t, mf, 'all'))} | model alone |")
    reference = m.reference_time
    for hl in hls:
        _, dec = history_matrices(train, t, reference, hl)
        for beta in betas:
            for gamma in gammas:
                mm = retail.evaluate(t, blend_scores(dec, mf, beta, gamma), "all")
                log(f"| blend | hl={hl} beta={beta} gamma={gamma} | all | {fmt(mm)} |")


if __name__ == "__main__" and sys.argv[1] == "blend":
    run_blend(sys.argv[2] if len(sys.argv) > 2 else "")
