"""Serving cost of one recommendation request on the full Online Retail data (no Redis):
the measurement behind "score on request" in recommend/model/recommender.py.

    python bench/recommend_latency.py [--epochs 5] [--data PATH/online_retail.csv.gz]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from recommend.model.artifact import load_artifact
from recommend.model.dataset import load_online_retail
from recommend.model.job import save_result
from recommend.model.recommender import CustomerContext, Recommender
from recommend.model.training import TrainConfig, format_report, train

DEFAULT = Path(__file__).resolve().parents[2] / "shared/data/online_retail/online_retail.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DEFAULT))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args()

    data = load_online_retail(args.data)
    print(data.counts())
    result = train(data, TrainConfig(epochs=args.epochs, refit=False), progress=False)
    print(format_report(result))
    with tempfile.TemporaryDirectory() as tmp:
        saved = save_result(result, Path(tmp), "bench")
        started = time.perf_counter()
        rec = Recommender(load_artifact(saved.path))
        print(
            f"load + precompute: {(time.perf_counter() - started) * 1000:.1f} ms, "
            f"{len(rec.item_ids)} items, {rec.item_vectors.shape[1]} components"
        )

    products = data.products
    lookup = lambda ids: {p: products[p] for p in ids if p in products}  # noqa: E731
    by_customer: dict[str, list] = {}
    for ln in data.lines:
        by_customer.setdefault(ln.customer_id, []).append(ln)
    vector = rec.user_vectors[0]
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        scores = rec.scores(vector)
        np.argpartition(-scores, 49)[:50]
    print(f"scores + top-50: {(time.perf_counter() - started) / n * 1000:.3f} ms")
    users = list(rec.user_index)[: args.users]
    for strategy in ("discover", "buy_again", "blend"):
        started = time.perf_counter()
        for cid in users:
            ctx = CustomerContext(cid, country="United Kingdom", purchases=by_customer[cid])
            rec.recommend(ctx, strategy=strategy, limit=10, lookup=lookup)
        per = (time.perf_counter() - started) / len(users) * 1000
        print(f"{strategy:>9}: {per:.2f} ms per request (catalog in memory)")


if __name__ == "__main__":
    main()
