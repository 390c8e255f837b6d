"""Micro-benchmark: server-side latency of the greeting and next-best-action endpoints.

A private Redis, a catalog of 300 products, one customer with 200 purchases (two years of
orders, 1-4 lines each), marketing consent, an open support contact, the shipped action
catalogue and feedback history. Each request runs through the whole Flask app (auth,
argument parsing, stores, rendering, response schema) with the WSGI test client, so the time
is what the server spends, without network or HTTP parsing. Wall-clock percentiles grow when
other processes compete for the cores; the CPU columns (this process, and Redis from its
``INFO cpu``, per request) do not, and their sum estimates the latency on an idle machine.
The model holder serves the popularity fallback (no trained model): product picks cost the
same catalog reads either way, and LightFM scoring itself is ~0.02 ms
(recommend/model/recommender.py).

    .venv/bin/python bench/greeting_nba.py [--iterations 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profiles.store import ProfileStore
from recommend.catalog.products import Catalog
from service import create_app
from service.redis_server import RedisServer, redis_server_binary

try:
    from profiles.activity import ActivityStore
except ImportError:  # the activity store is being written by another change
    ActivityStore = None  # type: ignore[assignment,misc]

DAY = 86400.0
PURCHASES = 200
PRODUCTS = 300
CATEGORIES = ("home", "garden", "kitchen", "toys", "books", "candles")


def build(client: redis.Redis, app) -> tuple[str, str]:
    st = app.extensions["rapport"]
    rng = random.Random(7)
    catalog = Catalog(client, st.keys)
    catalog.upsert_many(
        [
            {
                "product_id": f"p{i:04d}",
                "name": f"Product {i}",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "price": f"{rng.uniform(2, 80):.2f}",
                "currency": "EUR",
            }
            for i in range(PRODUCTS)
        ]
    )
    activity = (
        ActivityStore(client, st.keys, category_of=catalog.category_of)
        if ActivityStore is not None
        else None
    )
    profiles = ProfileStore(client, st.keys, activity=activity)
    cid = profiles.create(
        {
            "first_name": "Anna",
            "last_name": "Schmidt",
            "email": "anna@example.com",
            "locale": "de-AT",
            "timezone": "Europe/Vienna",
            "loyalty_tier": "silver",
            "preferences": {"categories": ["home"], "custom": {"salutation": "Frau"}},
            "consent": {"marketing": {"granted": True, "source": "bench"}},
        }
    ).id
    now = time.time()
    for n in range(PURCHASES):
        lines = [
            {
                "product_id": f"p{rng.randrange(PRODUCTS):04d}",
                "quantity": rng.randint(1, 3),
                "unit_price": f"{rng.uniform(2, 80):.2f}",
            }
            for _ in range(rng.randint(1, 4))
        ]
        purchase = {
            "order_id": f"o{n:05d}",
            "lines": lines,
            "currency": "EUR",
            "purchased_at": now - (PURCHASES - n) * 3.5 * DAY,
            "channel": "web",
        }
        if activity is None:
            raise SystemExit("profiles.activity.ActivityStore is not available yet")
        activity.record_purchase(cid, purchase)
    if activity is not None and hasattr(activity, "record_events"):
        try:
            activity.record_events(
                cid,
                [
                    {
                        "message_id": "m1",
                        "type": "support_contact",
                        "at": now,
                        "contact_id": "t-1",
                        "status": "opened",
                    }
                ],
            )
        except Exception as exc:
            print(f"(no support contact recorded: {exc})")
    _, token = st.api_keys.create("bench", ["profiles:read", "recommend:read", "actions:write"])
    return cid, token


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(client, redis_client, path: str, headers: dict, iterations: int):
    """Wall-clock ms per request, and the CPU ms per request of this process and of Redis
    (which do not grow when other processes compete for the cores)."""
    for _ in range(50):  # warm up: compiled templates, connections
        assert client.get(path, headers=headers).status_code == 200
    out = []
    cpu0, rcpu0 = time.process_time(), redis_cpu(redis_client)
    for _ in range(iterations):
        start = time.perf_counter()
        resp = client.get(path, headers=headers)
        out.append((time.perf_counter() - start) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"{path}: {resp.status_code} {resp.get_data(as_text=True)}")
    app_cpu = (time.process_time() - cpu0) * 1000 / iterations
    redis_ms = (redis_cpu(redis_client) - rcpu0) * 1000 / iterations
    return out, app_cpu, redis_ms


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis", binary=redis_server_binary("path"))
        server.start()
        try:
            client = redis.Redis.from_url(server.url, decode_responses=True)
            app = create_app(
                {
                    "redis_url": server.url,
                    "data_dir": Path(tmp) / "var",
                    "testing": True,
                    # the limiter would stop a loop from one key at 100/s; it adds its own
                    # Redis round trip per request (service/hardening.py), not measured here
                    "rate_limit": "off",
                },
                redis=client,
            )
            cid, token = build(client, app)
            headers = {"Authorization": f"Bearer {token}"}
            test_client = app.test_client()
            sample = test_client.get(f"/v1/profiles/{cid}/greeting?channel=phone", headers=headers)
            actions = test_client.get(f"/v1/profiles/{cid}/next-best-actions", headers=headers)
            print("greeting:", sample.json["text"])
            print("actions: ", [(i["action_id"], i["score"]) for i in actions.json["items"]])
            print("withheld:", actions.json["withheld"])
            rows = []
            for name, path in (
                (
                    "GET /v1/profiles/{id}/greeting?channel=phone",
                    f"/v1/profiles/{cid}/greeting?channel=phone",
                ),
                (
                    "GET /v1/greeting?email=...&channel=chat",
                    "/v1/greeting?email=anna@example.com&channel=chat",
                ),
                (
                    "GET /v1/profiles/{id}/next-best-actions?limit=3",
                    f"/v1/profiles/{cid}/next-best-actions?limit=3",
                ),
            ):
                times, app_cpu, redis_ms = measure(
                    test_client, client, path, headers, args.iterations
                )
                rows.append(
                    (
                        name,
                        pct(times, 50),
                        pct(times, 99),
                        statistics.fmean(times),
                        app_cpu,
                        redis_ms,
                    )
                )
        finally:
            server.stop()
    print()
    print(f"{PURCHASES} purchases, {args.iterations} requests each, Flask test client (WSGI)")
    print(f"load average (1 min) before {load_before:.1f}, after {os.getloadavg()[0]:.1f}")
    print("| endpoint | p50 ms | p99 ms | mean ms | app CPU ms | Redis CPU ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, p50, p99, mean, app_cpu, redis_ms in rows:
        print(f"| `{name}` | {p50:.2f} | {p99:.2f} | {mean:.2f} | {app_cpu:.2f} | {redis_ms:.2f} |")
    print()
    print(f"command: .venv/bin/python bench/greeting_nba.py --iterations {args.iterations}")


if __name__ == "__main__":
    main()
