"""Replay benchmark (issue 19): the test period of the Online Retail split replayed day by day
through the HTTP API, without retraining.

    .venv/bin/python bench/replay.py [--data PATH] [--days N] [--per-day M] [--seed S]

One model is trained (the production code and defaults: ``training.fit_all``
with ``training.PRODUCTION``, ids only) on everything before the test window (the last 10% of
the time span, as ``bench/retail.py`` cuts it) and saved with ``job.save_result``, so its
``data_until`` is the newest training purchase. A private ``redis-server`` holds the catalog
(the products bought in training) and every training purchase (``ActivityStore``, as ``rapport
import`` stores them). Four apps (``create_app``, Flask test client, the whole middleware) load
the model and differ only in what serving uses since training:

* ``frozen``: neither fold-in nor live counters (what Rapport served before issue 19);
* ``fold-in``: the customer's purchases since training folded in (``recommend.model.foldin``);
* ``live trend``: the trend term and popular lists from the live counters
  (``recommend.model.live_trend``);
* ``fold-in + live trend``: both (what ``rapport serve`` now does).

Each test day D (UTC): the clock of every app is set to the start of D; each customer who buys
on D and bought before (in training or on an earlier replayed day) is asked for, per app,
``GET /v1/profiles/{id}/recommendations?strategy=discover&limit=10`` (scored against what they
buy on D that they never bought before: next-day P@10, new items) and ``strategy=blend``
(against everything they buy on D: all items); targets are products the model knows. Then D's
purchases are recorded through ``POST /v1/profiles/{id}/purchases``. ``--per-day`` subsamples
the evaluated customers of each day (seeded), ``--days`` stops early; both are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import retail

from profiles.activity import ActivityStore
from profiles.activity_input import MAX_QUANTITY
from profiles.store import ProfileStore
from recommend.catalog.products import Catalog
from recommend.model.artifact import load_artifact
from recommend.model.dataset import (
    DAY,
    IDS_ONLY,
    TrainingData,
    load_online_retail,
)
from recommend.model.job import save_result
from recommend.model.recommender import Recommender
from recommend.model.records import PurchaseLine
from recommend.model.training import PRODUCTION, fit_all
from service import create_app
from service.redis_server import RedisServer, redis_server_binary

ARMS = ("frozen", "fold-in", "live trend", "fold-in + live trend")
K = retail.K


def split_test(data: TrainingData) -> tuple[TrainingData, list[PurchaseLine], float]:
    """Training data before the test window (the last 10% of the span), the window's lines,
    and the window's start."""
    ts = np.array([ln.purchased_at for ln in data.lines])
    start = float(ts.max()) - 0.1 * float(ts.max() - ts.min())
    train = [ln for ln in data.lines if ln.purchased_at < start]
    items = {ln.product_id for ln in train}
    products = {p: v for p, v in data.products.items() if p in items}
    td = TrainingData(lines=train, customers=data.customers, products=products)
    return td, [ln for ln in data.lines if ln.purchased_at >= start], start


def train_model(td: TrainingData, model_dir: Path, threads: int, cache: Path | None, log) -> str:
    """Train with the production defaults and save the artifact (or copy the one ``cache``
    holds from an earlier run on the same data); returns its version."""
    key = f"replay-{len(td.lines)}-{int(max(ln.purchased_at for ln in td.lines))}"
    if cache is not None and (cache / key).is_dir():
        shutil.copytree(cache / key, model_dir / "replay")
        log(f"model from {cache / key}")
        return "replay"
    result = fit_all(td, replace(PRODUCTION, threads=threads), IDS_ONLY)
    m = result.matrices
    save_result(result, model_dir, "replay")
    if cache is not None:
        shutil.copytree(model_dir / "replay", cache / key)
    n = f"{len(m.user_ids)} users, {len(m.item_ids)} items"
    log(f"trained in {result.train_seconds:.0f} s ({n})")
    return "replay"


def orders_of(lines: list[PurchaseLine]) -> dict[tuple[str, str], list[PurchaseLine]]:
    out: dict[tuple[str, str], list[PurchaseLine]] = defaultdict(list)
    for ln in lines:
        out[(ln.customer_id, ln.order_id)].append(ln)
    return out


def purchase_body(order_id: str, lines: list[PurchaseLine]) -> dict:
    when = datetime.fromtimestamp(lines[0].purchased_at, UTC).isoformat().replace("+00:00", "Z")
    qty: dict[str, int] = defaultdict(int)
    price: dict[str, float] = {}
    for ln in lines:
        qty[ln.product_id] += int(ln.quantity)
        price[ln.product_id] = ln.unit_price
    return {
        "order_id": order_id,
        "purchased_at": when,
        "currency": "GBP",
        "channel": "store",
        "lines": [
            {"product_id": p, "quantity": min(q, MAX_QUANTITY), "unit_price": f"{price[p]:.2f}"}
            for p, q in qty.items()
        ],
    }


def seed(client, keys, td: TrainingData, log) -> None:
    """The catalog and every training purchase, as an import stores them."""
    started = time.perf_counter()
    catalog = Catalog(client, keys)
    products = list(td.products.values())
    for i in range(0, len(products), 500):
        catalog.upsert_many(products[i : i + 500])
    profiles = ProfileStore(client, keys)
    for cid in sorted({ln.customer_id for ln in td.lines}):
        profiles.create({}, customer_id=cid)
    store = ActivityStore(client, keys)
    batch = [(cid, purchase_body(oid, lines)) for (cid, oid), lines in orders_of(td.lines).items()]
    for i in range(0, len(batch), 200):
        for r in store.record_purchases(batch[i : i + 200]):
            assert not isinstance(r, Exception), (r, getattr(r, "field", None))
    secs = time.perf_counter() - started
    log(f"seeded {len(products)} products, {len(batch)} orders in {secs:.0f} s")


def create_new_profiles(client, keys, window: list[PurchaseLine], td: TrainingData) -> None:
    """Profiles of the customers whose first purchase is in the test window (a shop creates
    the customer before recording the order)."""
    known = {ln.customer_id for ln in td.lines}
    profiles = ProfileStore(client, keys)
    for cid in sorted({ln.customer_id for ln in window} - known):
        profiles.create({}, customer_id=cid)


def make_arm(name: str, config: dict, client, clock: list[float]):
    """One app whose loaded Recommender uses fold-in and/or the live counters per ``name``."""
    app = create_app(config, redis=client)
    holder = app.extensions["rapport"].models
    holder.refresh()
    rec = holder.current.recommender
    assert isinstance(rec, Recommender), "the model did not load"
    rec.clock = lambda: clock[0]
    if "fold-in" not in name:
        rec.fold_in = None
    if "live" not in name:
        rec.live = None
    elif rec.live is not None:
        rec.live.ttl = 0.0  # the bench writes and reads in the same second
    return app


def precision(items: list[dict], targets: set[str]) -> float:
    return sum(1 for it in items[:K] if it["product_id"] in targets) / K


def replay(args, log) -> dict:
    data = load_online_retail(args.data)
    td, window, start = split_test(data)
    work = Path(tempfile.mkdtemp(prefix="rapport-replay-"))
    server = RedisServer(work / "redis", binary=redis_server_binary("path"))
    server.start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        config = {
            "redis_url": server.url,
            "data_dir": work / "var",
            "model_dir": work / "models",
            "testing": True,
            "model_poll_seconds": 0.0,
            "share_model_arrays": 0,
            "rate_limit": "off",
            "log_level": "WARNING",
        }
        (work / "models").mkdir(parents=True)
        version = train_model(td, work / "models", args.threads, args.model_cache, log)
        first = create_app(config, redis=client)
        st = first.extensions["rapport"]
        st.models.registry.register(load_artifact(work / "models" / version))
        st.models.registry.activate(version)
        seed(client, st.keys, td, log)
        create_new_profiles(client, st.keys, window, td)
        _, token = st.api_keys.create("replay", ["admin"])
        clock = [start]
        apps = {name: make_arm(name, config, client, clock).test_client() for name in ARMS}
        return run_days(args, td, window, start, apps, token, clock, log)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def run_days(args, td, window, start, apps, token, clock, log) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    known_items = set(td.products)
    bought: dict[str, set[str]] = defaultdict(set)
    for ln in td.lines:
        bought[ln.customer_id].add(ln.product_id)
    trained = set(bought)
    by_day: dict[int, list[PurchaseLine]] = defaultdict(list)
    for ln in window:
        by_day[int(ln.purchased_at // DAY)].append(ln)
    rng = random.Random(args.seed)
    hits = {a: {"new": [], "all": []} for a in ARMS}
    groups = {a: {"trained": [], "new since training": []} for a in ARMS}
    seconds = {a: 0.0 for a in ARMS}
    days = sorted(by_day)[: args.days]
    requests = 0
    for d in days:
        clock[0] = max(d * DAY, start)
        todays: dict[str, set[str]] = defaultdict(set)
        for ln in by_day[d]:
            todays[ln.customer_id].add(ln.product_id)
        evaluated = sorted(c for c in todays if bought.get(c))
        if args.per_day and len(evaluated) > args.per_day:
            evaluated = sorted(rng.sample(evaluated, args.per_day))
        for cid in evaluated:
            new = (todays[cid] - bought[cid]) & known_items
            every = todays[cid] & known_items
            for arm, app in apps.items():
                t0 = time.perf_counter()
                if new:
                    got = app.get(
                        f"/v1/profiles/{cid}/recommendations?strategy=discover&limit={K}",
                        headers=headers,
                    )
                    assert got.status_code == 200, got.get_json()
                    p = precision(got.get_json()["items"], new)
                    hits[arm]["new"].append(p)
                    groups[arm]["trained" if cid in trained else "new since training"].append(p)
                if every:
                    got = app.get(
                        f"/v1/profiles/{cid}/recommendations?strategy=blend&limit={K}",
                        headers=headers,
                    )
                    assert got.status_code == 200, got.get_json()
                    hits[arm]["all"].append(precision(got.get_json()["items"], every))
                seconds[arm] += time.perf_counter() - t0
                requests += bool(new) + bool(every)
        writer = apps[ARMS[0]]
        for (cid, oid), lines in orders_of(by_day[d]).items():
            got = writer.post(
                f"/v1/profiles/{cid}/purchases", json=purchase_body(oid, lines), headers=headers
            )
            assert got.status_code in (200, 201), got.get_json()
            bought[cid].update(ln.product_id for ln in lines)
        log(f"day {datetime.fromtimestamp(d * DAY, UTC).date()}: {len(evaluated)} customers, "
            + ", ".join(f"{a} {np.mean(hits[a]['new'] or [0]):.4f}" for a in ARMS))  # fmt: skip
    return {
        "days": len(days),
        "per_day": args.per_day,
        "seed": args.seed,
        "arms": {
            a: {
                "p10_new": float(np.mean(hits[a]["new"])) if hits[a]["new"] else 0.0,
                "n_new": len(hits[a]["new"]),
                "p10_all": float(np.mean(hits[a]["all"])) if hits[a]["all"] else 0.0,
                "n_all": len(hits[a]["all"]),
                "p10_new_trained": _mean(groups[a]["trained"]),
                "p10_new_since_training": _mean(groups[a]["new since training"]),
                "n_new_since_training": len(groups[a]["new since training"]),
                "ms_per_request": 1000 * seconds[a] / max(requests / len(ARMS), 1),
            }
            for a in ARMS
        },
    }


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else 0.0


def print_table(out: dict) -> None:
    base_new = out["arms"]["frozen"]["p10_new"] or 1e-9
    base_all = out["arms"]["frozen"]["p10_all"] or 1e-9
    print(f"\nnext-day P@10 over {out['days']} replayed days (<= {out['per_day'] or 'all'} "
          f"customers a day, seed {out['seed']})")  # fmt: skip
    print(f"{'':<24}{'new items':>10}{'x frozen':>9}{'all items':>10}{'x frozen':>9}"
          f"{'new: trained':>13}{'new: since':>11}{'ms/req':>8}")  # fmt: skip
    for a, r in out["arms"].items():
        print(
            f"{a:<24}{r['p10_new']:>10.4f}{r['p10_new'] / base_new:>9.3f}{r['p10_all']:>10.4f}"
            f"{r['p10_all'] / base_all:>9.3f}{r['p10_new_trained']:>13.4f}"
            f"{r['p10_new_since_training']:>11.4f}{r['ms_per_request']:>8.1f}"
        )
    r = out["arms"]["frozen"]
    print(f"(evaluations: new items {r['n_new']}, of which customers new since training "
          f"{r['n_new_since_training']}; all items {r['n_all']})")  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=retail.DATA)
    ap.add_argument("--days", type=int, default=None, help="replay at most this many days")
    ap.add_argument("--per-day", type=int, default=150, help="customers evaluated per day (0: all)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--model-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "rapport-replay-models",
        help="keep the trained model here and reuse it on the same data (--no-cache: none)",
    )
    args = ap.parse_args(argv)
    if args.model_cache:
        args.model_cache.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    out = replay(args, log)
    print_table(out)
    print(
        "\nreproduce: .venv/bin/python bench/replay.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
