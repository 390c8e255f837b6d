"""Small, deterministic recommendation data for tests: synthetic customers with a favourite
category, products in four categories, purchases over 200 days (repeats included)."""

from __future__ import annotations

import json
import random

from recommend.model.dataset import DAY, PurchaseLine, TrainingData
from recommend.model.training import TrainConfig

CATEGORIES = ("candles & lights", "kitchen & tea", "bags", "christmas")
COUNTRIES = ("United Kingdom", "France", "Germany")
START = 1_700_000_000.0  # purchases run from here for 200 days
END = START + 200 * DAY

FAST = TrainConfig(epochs=8, no_components=16, learning_rate=0.05, seed=7)


def product_id(category: int, n: int) -> str:
    return f"P{category}{n:02d}"


def products(per_category: int = 15) -> dict[str, dict]:
    out = {}
    for c, category in enumerate(CATEGORIES):
        for n in range(per_category):
            pid = product_id(c, n)
            out[pid] = {
                "product_id": pid,
                "name": f"{category.split()[0].upper()} ITEM {n}",
                "category": category,
                "brand": "acme" if n % 2 else None,
                "price": f"{1 + n % 7}.50",
                "currency": "GBP",
                "tags": [],
                "in_stock": True,
                "active": True,
                "description": f"{category.upper()} THING NUMBER {n}",
            }
    return out


def synthetic(n_customers: int = 120, per_category: int = 15, seed: int = 3) -> TrainingData:
    """Each customer buys mostly (90%) from one category, in 4-8 orders, re-buying a couple of
    staples; the country follows the category (so country popularity differs)."""
    rng = random.Random(seed)
    lines: list[PurchaseLine] = []
    customers = {}
    for u in range(n_customers):
        cid = f"C{u:03d}"
        fav = u % len(CATEGORIES)
        customers[cid] = {"country": COUNTRIES[fav % len(COUNTRIES)]}
        staples = [product_id(fav, rng.randrange(3)) for _ in range(2)]
        n_orders = rng.randint(4, 8)
        for o in range(n_orders):
            when = START + (o + 1) * (200 / (n_orders + 1)) * DAY + rng.random() * DAY
            basket = set(staples[: 1 + o % 2])
            while len(basket) < 4:
                cat = fav if rng.random() < 0.9 else rng.randrange(len(CATEGORIES))
                # within a category, earlier products are more popular
                n = min(int(rng.expovariate(1 / 4)), per_category - 1)
                basket.add(product_id(cat, n))
            for pid in sorted(basket):
                lines.append(
                    PurchaseLine(cid, pid, float(rng.randint(1, 6)), when, f"{cid}-O{o}", 2.5)
                )
    return TrainingData(lines=lines, customers=customers, products=products(per_category))


def record_purchase(client, keys, customer_id: str, purchase: dict) -> None:
    """Record a purchase through the activity store when it exists, else by its documented
    key schema (``Keys.orders`` hash + ``Keys.order_times`` zset)."""
    try:
        from profiles.activity import ActivityStore
    except ImportError:
        ActivityStore = None
    if ActivityStore is not None:
        ActivityStore(client, keys).record_purchase(customer_id, purchase)
        return
    client.hset(keys.orders(customer_id), purchase["order_id"], json.dumps(purchase))
    client.zadd(keys.order_times(customer_id), {purchase["order_id"]: purchase["purchased_at"]})


def purchase(order_id: str, when: float, *product_ids: str, quantity: int = 1) -> dict:
    return {
        "order_id": order_id,
        "purchased_at": when,
        "currency": "GBP",
        "channel": "web",
        "lines": [
            {"product_id": p, "quantity": quantity, "unit_price": "2.50"} for p in product_ids
        ],
    }


_CACHE: dict[str, object] = {}


def trained(name: str = "default", **config):
    """A TrainResult on :func:`synthetic` data, trained once per test session per name."""
    from dataclasses import replace

    from recommend.model.training import train

    if name not in _CACHE:
        _CACHE[name] = train(synthetic(), replace(FAST, **config), progress=False)
    return _CACHE[name]


def install_model(app, version: str = "v1", result=None):
    """Save a trained model into the app's model dir, register and activate it, and load it
    into the app's model holder (tests do by hand what the poller does)."""
    from recommend.model.job import save_result

    holder = app.extensions["rapport"].models
    artifact = save_result(result or trained(), holder.registry.model_dir, version)
    holder.registry.register(artifact)
    holder.registry.activate(version)
    holder.refresh()
    return artifact


def load_catalog(app, items: dict[str, dict] | None = None) -> None:
    from recommend.catalog.products import Catalog

    st = app.extensions["rapport"]
    results = Catalog(st.redis, st.keys).upsert_many(list((items or products()).values()))
    assert all(r["status"] in ("created", "updated") for r in results)


def assert_refused_and_v1_serves(api, app) -> None:
    """Activating the damaged ``v2`` answers 409 artifact-error and, even with the active key
    pointed at it behind the registry's back, the workers keep serving ``v1``."""
    resp = api.post("/v1/models/v2/activate")
    assert resp.status_code == 409
    assert resp.json["type"] == "urn:rapport:problem:artifact-error"
    assert api.get("/v1/models").json["active"] == "v1"
    st, holder = app.extensions["rapport"], app.extensions["rapport"].models
    st.redis.set(st.keys.model_active(), "v2")
    assert holder.refresh() is False
    assert holder.current.version == "v1"
    assert "v2 refused" in holder.status()["last_error"]
    recs = api.get("/v1/profiles/C001/recommendations?limit=3")
    assert recs.status_code == 200
    assert {it["model_version"] for it in recs.json["items"]} == {"v1"}
