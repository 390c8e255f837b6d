#!/usr/bin/env python3
"""What one request costs, in process: CPU time and Redis round trips per endpoint, next to the
serving benchmark's two ceilings, with the rate limiter on and off.

    .venv/bin/python bench/request_cost.py                   # 3,000 customers, 10k products
    .venv/bin/python bench/request_cost.py --products 100000

No HTTP and no gunicorn (the Flask test client), so nothing else is measured: where
``bench/serve.py`` shows throughput under load on a shared machine (noisy, waiting included),
this shows the work one request does, which is what bounds that throughput on two cores. CPU
time is ``time.process_time`` of this process (the client's share is the same for every row,
about what the bare ceiling shows); a round trip is one write to a Redis connection (a
pipeline or a script call counts once). Best of 3 runs of ``--requests`` each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as gunicorn.conf.py sets for the workers, before numpy

import redis  # noqa: E402
import redis.connection  # noqa: E402

from bench import seed  # noqa: E402
from bench.serve import ENDPOINTS, PREFIX  # noqa: E402
from profiles.keys import Keys  # noqa: E402
from service.redis_server import RedisServer  # noqa: E402

SENT = [0]
_send = redis.connection.AbstractConnection.send_packed_command


def _counting_send(self, command, check_health=True):
    SENT[0] += 1
    return _send(self, command, check_health)


def measure(http, target, ids, headers, requests: int) -> tuple[float, float, set[int]]:
    """(CPU ms per request, round trips per request, statuses), best of three runs."""
    statuses: set[int] = set()

    def call(i: int) -> None:
        cid = ids[(i * 7919) % len(ids)]
        path = target.path.replace("{id}", cid)
        body = target.body.replace("{id}", cid).replace("{n}", f"c{i}") if target.body else None
        resp = http.open(path, method=target.method, data=body, headers=headers,
                         content_type="application/json" if body else None)  # fmt: skip
        statuses.add(resp.status_code)

    n = 0
    for _ in range(50):  # warm-up: scripts loaded, caches filled
        call(n)
        n += 1
    best_cpu, trips = float("inf"), 0.0
    for _ in range(3):
        SENT[0] = 0
        started = time.process_time()
        for _ in range(requests):
            call(n)
            n += 1
        best_cpu = min(best_cpu, (time.process_time() - started) * 1000 / requests)
        trips = SENT[0] / requests
    return best_cpu, trips, statuses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--products", type=int, default=10000)
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--json", type=Path, help="also write the rows here (bench/cost_compare.py)")
    args = p.parse_args(argv)
    from bench.ceiling_app import create_app as ceiling_app
    from service import create_app
    from service.auth import ApiKeyStore
    from service.wiring import warm_up

    tmp = Path(tempfile.mkdtemp(prefix="rapport-cost-"))
    server = RedisServer(tmp / "redis").start()
    redis.connection.AbstractConnection.send_packed_command = _counting_send
    try:
        plan = seed.Plan(server.url, PREFIX, args.customers, args.products, args.products, 1.5,
                         time.time())  # fmt: skip
        seed.seed_products(plan, 0, args.products)
        seed.seed_customers(plan)
        seed.train_and_activate(plan, tmp / "models")
        client = redis.Redis.from_url(server.url, decode_responses=True)
        _, token = ApiKeyStore(client, Keys(PREFIX)).create("cost", "admin")
        headers = {"Authorization": f"Bearer {token}"}
        ids = [seed.customer_id(i) for i in range(args.customers)]
        os.environ["REDIS_URL"] = server.url
        os.environ["RAPPORT_KEY_PREFIX"] = PREFIX
        rows = []
        ceiling = ceiling_app().test_client()
        from bench.serve import CEILINGS

        for target in CEILINGS.values():
            cpu, trips, statuses = measure(ceiling, target, ids, {}, args.requests)
            rows.append((target.name, cpu, None, trips, statuses))
        apps = {}
        for limit in ("100000000 per minute; 10000000 per second", "off"):
            app = create_app(
                {"redis_url": server.url, "data_dir": tmp / "var", "model_dir": tmp / "models",
                 "key_prefix": PREFIX, "log_level": "WARNING", "rate_limit": limit}
            )  # fmt: skip
            warm_up(app)
            apps[limit] = app.test_client()
        on, off = apps.values()
        for target in ENDPOINTS.values():
            cpu_on, trips, statuses = measure(on, target, ids, headers, args.requests)
            cpu_off, _, more = measure(off, target, ids, headers, args.requests)
            rows.append((target.name, cpu_on, cpu_off, trips, statuses | more))
    finally:
        redis.connection.AbstractConnection.send_packed_command = _send
        server.stop()
    read_ceiling = rows[1][1]
    if args.json:
        args.json.write_text(json.dumps([
            {"endpoint": label, "cpu_ms": on, "cpu_ms_limits_off": off, "round_trips": trips,
             "statuses": sorted(statuses)}
            for label, on, off, trips, statuses in rows
        ]))  # fmt: skip
    print(f"\n{args.products:,} products, {args.customers:,} customers, in process, best of 3 "
          f"x {args.requests} requests; command: python3 dev.py bench-cost "
          f"--products {args.products} --customers {args.customers}\n")  # fmt: skip
    print(
        "| endpoint | CPU ms/request | with limits off | Redis round trips | x read ceiling "
        "(CPU) | statuses |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for label, cpu_on, cpu_off, trips, statuses in rows:
        off_text = "" if cpu_off is None else f"{cpu_off:.2f}"
        print(f"| {label} | {cpu_on:.2f} | {off_text} | {trips:.1f} | "
              f"{read_ceiling / cpu_on:.2f} | {sorted(statuses)} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
