#!/usr/bin/env python3
"""CPU profile of single requests, in process (Flask test client, no HTTP, no gunicorn).

    .venv/bin/python bench/profile_requests.py --products 10000 --endpoint recommendations

Seeds its own redis-server like ``bench/serve.py`` (small by default), then runs the endpoint
N times under cProfile and prints the top functions, plus the mean time per request and the
number of Redis commands per request (``INFO commandstats`` before and after). Where
``bench/serve.py --profile`` shows wall time under load (waiting included), this shows what
one request costs in CPU and round trips.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as gunicorn.conf.py sets for the workers, before numpy

from bench import seed  # noqa: E402
from bench.serve import ENDPOINTS, PREFIX  # noqa: E402
from profiles.keys import Keys  # noqa: E402
from service.redis_server import RedisServer  # noqa: E402


def commandstats(client) -> dict[str, int]:
    return {k: v["calls"] for k, v in client.info("commandstats").items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--products", type=int, default=10000)
    p.add_argument("--endpoint", action="append", help="default: all")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--top", type=int, default=35)
    p.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    p.add_argument(
        "--wall",
        action="store_true",
        help="time with the wall clock (waiting included); default: this process's CPU time, "
        "which a busy machine disturbs less",
    )
    args = p.parse_args()
    import redis

    from service import create_app
    from service.auth import ApiKeyStore
    from service.wiring import warm_up

    tmp = Path(tempfile.mkdtemp(prefix="rapport-prof-"))
    server = RedisServer(tmp / "redis").start()
    try:
        plan = seed.Plan(server.url, PREFIX, args.customers, args.products, args.products, 1.5,
                         time.time())  # fmt: skip
        seed.seed_products(plan, 0, args.products)
        seed.seed_customers(plan)
        trained = seed.train_and_activate(plan, tmp / "models")
        client = redis.Redis.from_url(server.url, decode_responses=True)
        _, token = ApiKeyStore(client, Keys(PREFIX)).create("prof", "admin")
        app = create_app(
            {"redis_url": server.url, "data_dir": tmp / "var", "model_dir": tmp / "models",
             "key_prefix": PREFIX, "log_level": "WARNING"}
        )  # fmt: skip
        warm_up(app)
        print(f"model {trained['version']} ({trained['items']} items)")
        http = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        ids = [seed.customer_id(i) for i in range(args.customers)]
        for name in args.endpoint or list(ENDPOINTS):
            t = ENDPOINTS[name]

            def call(i: int, t=t) -> int:
                cid = ids[(i * 7919) % len(ids)]
                path = t.path.replace("{id}", cid)
                body = t.body.replace("{id}", cid).replace("{n}", f"p{i}") if t.body else None
                resp = http.open(path, method=t.method, data=body, headers=headers,
                                 content_type="application/json" if body else None)  # fmt: skip
                return resp.status_code

            statuses = {call(i) for i in range(50)}  # warm-up
            before = commandstats(client)
            prof = cProfile.Profile() if args.wall else cProfile.Profile(time.process_time)
            started = time.perf_counter()
            cpu_started = time.process_time()
            prof.enable()
            for i in range(50, 50 + args.requests):
                statuses.add(call(i))
            prof.disable()
            if os.environ.get("PROFILE_DUMP"):
                prof.dump_stats(f"{os.environ['PROFILE_DUMP']}.{name}")
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            after = commandstats(client)
            cmds = {k: (after.get(k, 0) - before.get(k, 0)) / args.requests for k in after}
            cmds = {k.removeprefix("cmdstat_"): round(v, 2) for k, v in cmds.items() if v > 0.005}
            print(f"\n=== {name}: statuses {sorted(statuses)}; "
                  f"{1000 * elapsed / args.requests:.2f} ms/request under cProfile "
                  f"({1000 * cpu / args.requests:.2f} ms CPU); "
                  f"Redis commands per request: {cmds}")  # fmt: skip
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(args.sort).print_stats(args.top)
            print("\n".join(out.getvalue().splitlines()[4:]))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
