"""Synthetic data for the serving benchmark, written through the domain stores (not HTTP).

Deterministic (fixed seed): customers ``b0000000``… with names, locales, countries, tiers and
preferred categories; products ``P000000``… with category, brand, price, tags; purchases of
1-4 lines, product popularity Zipf-like. Writes run in a few processes at once (each store
call is one Lua script round trip; the stores have no batch-write API for these yet).
The model is trained with the project's own matrices, LightFM fit and artifact code, without
the holdout evaluation (which costs O(users x items) and says nothing about serving speed),
then registered and activated through the registry.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis

from profiles.keys import Keys

CATEGORIES = [
    "candles & lights", "kitchen", "garden", "stationery", "bags", "toys", "party",
    "home decor", "christmas", "storage", "bathroom", "jewellery", "clocks", "textiles",
    "gift wrap", "baking", "tea & coffee", "pets", "outdoor", "vintage",
]  # fmt: skip
WORDS = (
    "heart lantern mug glass vintage red blue white pink set box bag star bird tin paper "
    "wooden metal retro garden cake tea cup jar sign light candle flower owl cat dog"
).split()
LOCALES = [("en-GB", "GB", "Europe/London"), ("fr-FR", "FR", "Europe/Paris"),
           ("de-DE", "DE", "Europe/Berlin"), ("es-ES", "ES", "Europe/Madrid"),
           ("nl-NL", "NL", "Europe/Amsterdam")]  # fmt: skip
TIERS = ["none", "bronze", "silver", "gold", "platinum"]
FIRST = ["Ada", "Ben", "Chloe", "Dan", "Eva", "Finn", "Grace", "Hugo", "Iris", "Jon"]
LAST = ["Smith", "Martin", "Muller", "Garcia", "de Vries", "Jones", "Bernard", "Weber"]
DAY = 86400.0


def customer_id(i: int) -> str:
    return f"b{i:07d}"


def product_id(i: int) -> str:
    return f"P{i:06d}"


def product(i: int) -> dict[str, Any]:
    rng = random.Random(i)
    words = rng.sample(WORDS, 3)
    return {
        "product_id": product_id(i),
        "name": " ".join(words).upper(),
        "category": CATEGORIES[i % len(CATEGORIES)],
        "brand": f"brand{i % 50}",
        "price": f"{rng.uniform(0.5, 60):.2f}",
        "currency": "GBP",
        "tags": words[:2],
        "in_stock": i % 17 != 0,
        "active": True,
    }


def customer(i: int) -> dict[str, Any]:
    rng = random.Random(1_000_000 + i)
    locale, country, tz = LOCALES[i % len(LOCALES)]
    return {
        "first_name": FIRST[i % len(FIRST)],
        "last_name": LAST[i % len(LAST)],
        "locale": locale,
        "country": country,
        "timezone": tz,
        "loyalty_tier": TIERS[i % len(TIERS)],
        "preferences": {"categories": rng.sample(CATEGORIES, 2), "channels": ["chat"]},
    }


def purchases(i: int, n_products: int, now: float, per_customer: float) -> list[dict[str, Any]]:
    """The purchases of customer ``i`` (0 to 2*per_customer orders, newest within a year)."""
    rng = random.Random(2_000_000 + i)
    count = rng.randint(0, max(1, round(2 * per_customer)))
    out = []
    for k in range(count):
        lines = []
        for _ in range(rng.randint(1, 4)):
            # Zipf-like: a few products are bought a lot
            p = min(int(rng.paretovariate(1.1)) - 1, n_products - 1)
            p = (p * 7919 + i % 3) % n_products if rng.random() < 0.5 else p
            lines.append(
                {
                    "product_id": product_id(p),
                    "quantity": rng.randint(1, 6),
                    "unit_price": f"{rng.uniform(0.5, 60):.2f}",
                }
            )
        out.append(
            {
                "order_id": f"o{i}-{k}",
                "lines": _merge_lines(lines),
                "currency": "GBP",
                "purchased_at": now - rng.uniform(1, 365) * DAY,
                "channel": "web",
            }
        )
    return out


def _merge_lines(lines: list[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for ln in lines:
        seen.setdefault(ln["product_id"], ln)
    return list(seen.values())


# -- writing -------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    redis_url: str
    key_prefix: str
    customers: int
    products: int  # catalog size now
    purchase_products: int  # purchases pick from the first N products (the smallest catalog)
    per_customer: float
    now: float


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=30)


def _chunks(start: int, stop: int, size: int) -> Iterator[tuple[int, int]]:
    for a in range(start, stop, size):
        yield a, min(a + size, stop)


def _write_products(args: tuple[Plan, int, int]) -> int:
    from recommend.catalog.products import MAX_BATCH, Catalog

    plan, a, b = args
    catalog = Catalog(_client(plan.redis_url), Keys(plan.key_prefix))
    for x, y in _chunks(a, b, MAX_BATCH):
        results = catalog.upsert_many([product(i) for i in range(x, y)])
        bad = [r for r in results if r["status"] == "invalid"]
        if bad:
            raise RuntimeError(f"product rejected: {bad[0]}")
    return b - a


def _write_customers(args: tuple[Plan, int, int]) -> tuple[int, int]:
    from core.errors import Conflict
    from profiles.store import ProfileStore

    plan, a, b = args
    client = _client(plan.redis_url)
    keys = Keys(plan.key_prefix)
    activity = _activity(client, keys)
    store = ProfileStore(client, keys, activity=activity)
    orders: list[tuple[str, dict]] = []
    for i in range(a, b):
        try:
            store.create(customer(i), customer_id=customer_id(i))
        except Conflict:
            pass  # seeded by an earlier run
        orders += [(customer_id(i), p) for p in purchases(i, plan.purchase_products, plan.now,
                                                          plan.per_customer)]  # fmt: skip
    for x in range(0, len(orders), 500):  # the store's pipelined batch write
        for result in activity.record_purchases(orders[x : x + 500]):
            if isinstance(result, Exception):
                raise RuntimeError(f"purchase rejected: {result}")
    return b - a, len(orders)


def _activity(client: redis.Redis, keys: Keys):
    from profiles.activity import ActivityStore

    return ActivityStore(client, keys)


def _parallel(func: Callable, jobs: list, procs: int) -> list:
    if procs <= 1:
        return [func(j) for j in jobs]
    with mp.get_context("fork").Pool(procs) as pool:
        return pool.map(func, jobs, chunksize=1)


def seed_products(plan: Plan, start: int, stop: int, procs: int = 2) -> int:
    jobs = [(plan, a, b) for a, b in _chunks(start, stop, 2000)]
    return sum(_parallel(_write_products, jobs, procs))


def seed_customers(plan: Plan, procs: int = 2) -> tuple[int, int]:
    jobs = [(plan, a, b) for a, b in _chunks(0, plan.customers, 2000)]
    done = _parallel(_write_customers, jobs, procs)
    return sum(d[0] for d in done), sum(d[1] for d in done)


# -- the model -------------------------------------------------------------------
def training_data(plan: Plan):
    """The same purchases, customers and products in memory (what load_from_redis would read)."""
    from recommend.model.dataset import PurchaseLine, TrainingData, profile_features

    lines = []
    customers = {}
    for i in range(plan.customers):
        cid = customer_id(i)
        customers[cid] = profile_features(customer(i))
        for p in purchases(i, plan.purchase_products, plan.now, plan.per_customer):
            for ln in p["lines"]:
                lines.append(
                    PurchaseLine(
                        customer_id=cid,
                        product_id=ln["product_id"],
                        quantity=float(ln["quantity"]),
                        purchased_at=p["purchased_at"],
                        order_id=p["order_id"],
                        unit_price=float(ln["unit_price"]),
                    )
                )
    products = {product_id(i): product(i) for i in range(plan.products)}
    return TrainingData(lines=lines, customers=customers, products=products)


def train_and_activate(plan: Plan, model_dir: Path, *, epochs: int = 1) -> dict[str, Any]:
    """Fit LightFM on every purchase (no holdout evaluation), save, register, activate."""
    from recommend.model.dataset import FeatureConfig
    from recommend.model.job import save_result, write_popularity
    from recommend.model.registry import ModelRegistry
    from recommend.model.training import TrainConfig, fit_all

    started = time.perf_counter()
    data = training_data(plan)
    fitted = fit_all(data, TrainConfig(epochs=epochs, threads=2), FeatureConfig())
    m = fitted.matrices
    zero = {"precision": 0.0, "recall": 0.0, "auc": 0.0, "coverage": 0.0, "users": 0}
    # as before: the artifact records no training data (the trend is not computed here)
    result = replace(
        fitted,
        metrics={"model": zero, "popularity": zero},
        counts={**data.counts(), "users": len(m.user_ids), "items": len(m.item_ids)},
        data=None,
        train_seconds=time.perf_counter() - started,
    )
    client = _client(plan.redis_url)
    keys = Keys(plan.key_prefix)
    registry = ModelRegistry(client, keys, model_dir)
    version = registry.new_version()
    artifact = save_result(result, model_dir, version)
    registry.register(artifact)
    write_popularity(client, keys, result)
    registry.promote(version, force=True)
    return {
        "version": version,
        "users": len(m.user_ids),
        "items": len(m.item_ids),
        "interactions": int(m.interactions.nnz),
        "seconds": round(time.perf_counter() - started, 1),
        "path": str(artifact.path),
    }
