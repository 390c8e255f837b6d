"""Issue 19, a million products: recommendations from the nearest-neighbour index against
exact scoring, on synthetic seeded factors with the artifact's shapes (training LightFM at
1M x 1M is out of reach on this machine; a LightFM fit at a smaller size is timed instead).

Reports recall@10 of the index (model scores) and of the served lists (``discover`` and
``blend``: the full score with trend, filters on) against exact scoring, CPU per
recommendation exact vs from the index in the same run, p99, the index build time, and the
memory (PSS) of two workers that load the artifact with the arrays shared.

    flock /tmp/bench.lock python bench/ann.py [--items 1000000] [--users 1000000] [--dim 64]
    flock /tmp/bench.lock python bench/ann.py --libraries --items 200000   # faiss vs usearch
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommend.model.ann import build_index, index_metadata
from recommend.model.artifact import load_artifact, save_artifact
from recommend.model.dataset import DAY, PurchaseLine
from recommend.model.recommender import CustomerContext, Filters, Recommender
from recommend.model.shared_arrays import cache_dir, release_free_memory, share_arrays

END = 1_700_000_000.0
CATEGORIES = 50


def factors(n_items: int, n_users: int, dim: int, seed: int):
    """Clustered item and user factors (2,000 taste clusters), item biases, 2% of items with
    recent buyers (the trend term), 50 categories."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (2000, dim)).astype(np.float32)

    def draw(n):
        out = np.empty((n, dim), np.float32)
        for s in range(0, n, 100_000):
            m = min(100_000, n - s)
            lab = rng.integers(0, 2000, m)
            out[s : s + m] = centers[lab] * 0.35 + rng.normal(0, 0.25, (m, dim))
        return out

    items, users = draw(n_items), draw(n_users)
    bias = rng.normal(-1, 0.5, n_items).astype(np.float32)
    trend = np.zeros(n_items)
    hot = rng.choice(n_items, n_items // 50, replace=False)
    trend[hot] = np.log1p(rng.poisson(3, len(hot)) + 1)
    return items, users, bias, trend


def artifact_arrays(items, users, bias, trend) -> dict[str, np.ndarray]:
    """The artifact's arrays for ids-only factors (identity feature matrices)."""
    n_items, n_users = len(items), len(users)
    item_ids = np.array([f"P{i:07d}" for i in range(n_items)])
    user_ids = np.array([f"C{u:07d}" for u in range(n_users)])
    ones = np.ones
    return {
        "user_ids": user_ids,
        "item_ids": item_ids,
        "user_feature_names": user_ids,
        "item_feature_names": item_ids,
        "user_embeddings": users,
        "user_biases": np.zeros(n_users, np.float32),
        "item_embeddings": items,
        "item_biases": bias,
        "user_features_data": ones(n_users, np.float32),
        "user_features_indices": np.arange(n_users, dtype=np.int32),
        "user_features_indptr": np.arange(n_users + 1, dtype=np.int64),
        "item_features_data": ones(n_items, np.float32),
        "item_features_indices": np.arange(n_items, dtype=np.int32),
        "item_features_indptr": np.arange(n_items + 1, dtype=np.int64),
        "item_popularity": np.expm1(trend).astype(np.float32),
        "item_categories": np.array([f"cat{i % CATEGORIES:02d}" for i in range(n_items)]),
        "country_names": np.array(["United Kingdom"]),
        "country_popularity": np.expm1(trend).astype(np.float32)[None, :],
        "item_trend": trend,
    }


def lookup(ids):
    """The live catalog: every product active, one in ten out of stock, prices 1-20."""
    out = {}
    for pid in ids:
        n = int(pid[1:])
        out[pid] = {
            "product_id": pid,
            "category": f"cat{n % CATEGORIES:02d}",
            "price": f"{1 + n % 20}.00",
            "in_stock": n % 10 != 3,
            "active": True,
        }
    return out


def contexts(n_users: int, n_items: int, count: int, seed: int) -> list[CustomerContext]:
    rng = np.random.default_rng(seed + 1)
    out = []
    for u in rng.choice(n_users, count, replace=False):
        lines = [
            PurchaseLine(f"C{u:07d}", f"P{int(i):07d}", 1, END - (k + 1) * 9 * DAY, f"o{u}-{k}")
            for k, i in enumerate(rng.integers(0, n_items, 8))
        ]
        out.append(CustomerContext(f"C{u:07d}", purchases=lines, has_profile=True))
    return out


def measure(rec: Recommender, ctxs, strategy: str, filters: Filters) -> tuple[list, np.ndarray]:
    """The lists and the CPU seconds of each request."""
    lists, cpu = [], []
    for ctx in ctxs:
        t = time.process_time()
        out = rec.recommend(ctx, strategy=strategy, limit=10, filters=filters, lookup=lookup)
        cpu.append(time.process_time() - t)
        lists.append([i["product_id"] for i in out["items"]])
    return lists, np.array(cpu)


def recall(got: list, want: list) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(got, want, strict=True)])
    )


def index_recall(rec: Recommender, users: np.ndarray, fetched: int) -> float:
    """Share of the exact top 10 by model score among the index's first ``fetched``."""
    vectors, bias = np.asarray(rec.item_vectors), np.asarray(rec.item_bias)
    assert rec.ann is not None
    hits = 0
    for u in users:
        s = vectors @ u + bias
        top = np.argpartition(s, len(s) - 10)[-10:]
        hits += len(set(top.tolist()) & set(rec.ann.search(u, fetched).tolist()))
    return hits / (10 * len(users))


def worker_pss(path: str, min_items: int, queue, done) -> None:
    """A worker: load the artifact, share the arrays, answer one request, report its memory
    (MB: RSS, PSS) and stay up until told, so the other worker's PSS counts the sharing."""
    artifact = load_artifact(path)
    rec = Recommender(artifact, clock=lambda: END + DAY, ann_min_items=min_items)
    share_arrays(rec, cache_dir(artifact.path, artifact.manifest_sha256))
    del artifact
    release_free_memory()
    rec.recommend(contexts(len(rec.user_index), len(rec.item_ids), 1, 0)[0], lookup=lookup)
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":")
        fields[name] = int(value.split()[0]) / 1024
    queue.put((fields["Rss"], fields["Pss"]))
    done.wait(600)


def memory(path: str, min_items: int) -> list[tuple[float, float]]:
    """Two workers, the second started once the first has written the shared files; each
    one's RSS and PSS, the first measured again while the second is up."""
    ctx = multiprocessing.get_context("spawn")
    queue, done = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=worker_pss, args=(path, min_items, queue, done)) for _ in "ab"]
    procs[0].start()
    queue.get()
    procs[1].start()
    second = queue.get()
    pss = {}
    for p in procs:
        for line in Path(f"/proc/{p.pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, value = line.split(":")
            pss.setdefault(p.pid, {})[name] = int(value.split()[0]) / 1024
    done.set()
    for p in procs:
        p.join()
    return [(pss[p.pid]["Rss"], pss[p.pid]["Pss"]) for p in procs] + [second]


def train_time(customers: int, per_category: int, dim: int) -> tuple[int, int, float]:
    """Seconds of a LightFM fit (WARP, 10 epochs) on the tests' synthetic purchases."""
    from recommend.model.training import TrainConfig, train
    from tests.recsys import synthetic

    data = synthetic(n_customers=customers, per_category=per_category, seed=11)
    result = train(data, TrainConfig(no_components=dim, epochs=10, seed=7), progress=False)
    return customers, 4 * per_category, result.train_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--train-customers", type=int, default=20_000)
    parser.add_argument("--train-per-category", type=int, default=2_500)
    parser.add_argument("--libraries", action="store_true", help="faiss vs usearch only")
    args = parser.parse_args()
    if args.libraries:
        return compare_libraries(args.items, args.dim, args.seed)
    items, users, bias, trend = factors(args.items, args.users, args.dim, args.seed)
    started = time.perf_counter()
    index = build_index(items, bias, threads=os.cpu_count())
    build_s = time.perf_counter() - started
    arrays = artifact_arrays(items, users, bias, trend)
    del items, users
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        meta = {"created_at": END, "data_until": END, "ann": index_metadata()}
        saved = save_artifact(Path(tmp), "ann1", arrays, meta, index=index)
        del arrays, index, saved
        release_free_memory()
        rows = run_requests(Path(tmp) / "ann1", args)
        mem = memory(str(Path(tmp) / "ann1"), 1)
    fit = (
        train_time(args.train_customers, args.train_per_category, args.dim)
        if args.train_customers
        else None
    )
    report(args, build_s, rows, mem, fit)


def run_requests(path: Path, args) -> dict[str, object]:
    artifact = load_artifact(path)
    rec = Recommender(artifact, clock=lambda: END + DAY, ann_min_items=1)
    del artifact
    exact = Recommender.__new__(Recommender)
    exact.__dict__.update(rec.__dict__)
    exact.ann = None
    ctxs = contexts(args.users, args.items, args.requests, args.seed)
    out: dict[str, object] = {}
    rng = np.random.default_rng(args.seed + 2)
    sample = np.asarray(rec.user_vectors)[rng.choice(args.users, 200, replace=False)]
    out["index"] = (index_recall(rec, sample, 10), index_recall(rec, sample, 100))
    cases = [
        ("discover", Filters()),
        ("blend", Filters()),
        ("discover, category + price", Filters(category="cat07", max_price=Decimal("10"))),
    ]
    for name, filters in cases:
        strategy = name.split(",")[0]
        want, cpu_exact = measure(exact, ctxs, strategy, filters)
        got, cpu_ann = measure(rec, ctxs, strategy, filters)
        out[name] = (recall(got, want), cpu_exact, cpu_ann)
    return out


def compare_libraries(n: int, dim: int, seed: int) -> None:
    """faiss HNSW and usearch on the same factors: build time, recall@10 against exact
    scores and CPU per single query, for the inner-product index and the L2 one over the
    norm-equalised vectors (``recommend.model.ann``). Needs ``pip install usearch``."""
    import faiss
    from usearch.index import Index

    from recommend.model.ann import augmented_items

    items, users, bias, _ = factors(n, 300, dim, seed)
    ip = np.hstack([items, bias[:, None]])
    queries = np.hstack([users, np.ones((len(users), 1), np.float32)])
    exact = np.argsort(-(queries @ ip.T), axis=1)[:, :10]
    l2 = augmented_items(items, bias)
    l2_queries = np.hstack([queries, np.zeros((len(users), 1), np.float32)])
    print("| library | space | M | build s | efSearch | recall@10 | CPU ms/query |")
    print("|---|---|---|---|---|---|---|")
    for space, base, qs in (("inner product", ip, queries), ("L2, norm-equalised", l2, l2_queries)):
        metric = faiss.METRIC_INNER_PRODUCT if space == "inner product" else faiss.METRIC_L2
        t = time.perf_counter()
        fi = faiss.IndexHNSWFlat(base.shape[1], 16, metric)
        fi.hnsw.efConstruction = 200
        fi.add(base)
        fb = time.perf_counter() - t
        t = time.perf_counter()
        kind = "ip" if metric == faiss.METRIC_INNER_PRODUCT else "l2sq"
        ui = Index(ndim=base.shape[1], metric=kind, dtype="f32", connectivity=16, expansion_add=200)
        ui.add(np.arange(len(base)), base, threads=os.cpu_count() or 1)
        ub = time.perf_counter() - t
        for ef in (64, 128, 256):
            fi.hnsw.efSearch = ef
            ui.expansion_search = ef
            for lib, build, search in (
                ("faiss-cpu", fb, lambda q, fi=fi: fi.search(q[None], 10)[1][0]),
                ("usearch", ub, lambda q, ui=ui: ui.search(q, 10, threads=1).keys),
            ):
                t = time.process_time()
                found = [search(q) for q in qs]
                cpu = (time.process_time() - t) / len(qs) * 1e3
                rec = np.mean(
                    [len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)]
                )
                print(f"| {lib} | {space} | 16 | {build:.0f} | {ef} | {rec:.4f} | {cpu:.3f} |")
    print(f"\nflock /tmp/bench.lock python bench/ann.py --libraries --items {n} --dim {dim}")


def report(args, build_s: float, rows: dict, mem: list, fit: tuple) -> None:
    print(f"\n{args.items:,} products, {args.users:,} customers, d={args.dim}, "
          f"{args.requests} requests per case, limit 10, in stock only")  # fmt: skip
    print(f"index build: {build_s:.0f} s on {os.cpu_count()} cores")
    at10, at100 = rows.pop("index")
    print(f"index recall@10 of model scores: {at10:.4f} fetching 10, {at100:.4f} fetching 100")
    print("(a request fetches at least 100 and ranks them exactly)\n")
    print(
        "| case | recall@10 vs exact | exact CPU ms | index CPU ms | ratio | exact p99 | index p99 |"  # noqa: E501
    )
    print("|---|---|---|---|---|---|---|")
    for name, (r, ce, ca) in rows.items():
        me, ma = ce.mean() * 1e3, ca.mean() * 1e3
        pe, pa = np.percentile(ce, 99) * 1e3, np.percentile(ca, 99) * 1e3
        print(f"| {name} | {r:.4f} | {me:.2f} | {ma:.2f} | {ma / me:.3f} | {pe:.2f} | {pa:.2f} |")
    print("\n| worker | RSS MB | PSS MB |\n|---|---|---|")
    for label, (rss, pss) in zip(("first (both up)", "second (both up)"), mem[:2], strict=True):
        print(f"| {label} | {rss:.0f} | {pss:.0f} |")
    if fit is None:
        print("\nLightFM fit: skipped (--train-customers 0)")
    else:
        users, products, seconds = fit
        print(f"\nLightFM fit (WARP, 10 epochs, d={args.dim}): {users:,} customers x "
          f"{products:,} products in {seconds:.1f} s")  # fmt: skip
    print(f"\nflock /tmp/bench.lock python bench/ann.py --items {args.items} --users "
          f"{args.users} --dim {args.dim} --requests {args.requests} "
          f"--seed {args.seed}")  # fmt: skip


if __name__ == "__main__":
    main()
