#!/usr/bin/env python3
"""Open-loop latency: each endpoint at 25%, 50% and 75% of its measured maximum throughput.

    python3 dev.py bench-openloop                 # 20k customers, 10k products, every endpoint
    .venv/bin/python bench/openloop.py --customers 2000 --seconds 5 --endpoints profile

A closed-loop load generator (bench/serve.py) sends the next request only when the last one
answered, so a slow answer lowers the offered load and hides the wait behind it (coordinated
omission). Services are specified at an arrival rate instead: here requests arrive on a seeded
Poisson schedule at a fixed rate, whatever the server does, and each latency is counted from the
moment its request was due, not from when a connection was free to send it, as wrk2 does.

1. starts its own ``redis-server``, seeds customers and products (``bench/seed.py``), trains
   and activates a small model, starts ``rapport serve`` (the shipped gunicorn config);
2. per endpoint: the maximum throughput, closed loop at ``--max-connections`` for
   ``--max-seconds`` (wrk when it can be installed, else bench/loadgen.py's Python loop), then
   the open loop at each load level for ``--seconds``;
3. prints the table (p50, p99, p99.9 from the due time, the rate reached, errors, and how late
   the generator itself was: the p99 of send time minus due time for arrivals that found an
   idle connection) and writes ``bench/results/openloop-<time>.json``.

The generator is Python threads with keep-alive ``http.client`` connections, on the same
machine as the server; its own lateness column says how much of the tail is the generator's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shlex
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen, seed  # noqa: E402
from bench.loadgen import Target, fill  # noqa: E402
from bench.serve import (  # noqa: E402
    ENDPOINTS,
    PREFIX,
    gunicorn_env,
    load_key_and_ids,
    start_rapport,
    wait_ready,
)
from service.redis_server import RedisServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LEVELS = (0.25, 0.50, 0.75)
GOAL_P99_MS = 25.0  # issue 17: p99 at 50% of the maximum throughput


def schedule(rate: float, seconds: float, rng: random.Random) -> list[float]:
    """Poisson arrivals: offsets (s) from the start, mean ``rate`` per second."""
    out, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            return out
        out.append(t)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


class OpenLoop:
    """One level: ``target`` on a Poisson schedule at ``rate``/s for ``seconds`` over a pool of
    ``connections`` keep-alive connections. A connection takes the next due arrival, waits
    for its time if it is early, and sends; if every connection is busy the arrival waits, and
    that wait is part of its latency."""

    def __init__(self, base_url: str, target: Target, rate: float, seconds: float, token: str,
                 ids: list[str], seed_value: int = 7):  # fmt: skip
        host, _, port = base_url.split("://", 1)[1].rstrip("/").partition(":")
        self.host, self.port, self.target, self.ids, self.rate = host, int(port), target, ids, rate
        self.due = schedule(rate, seconds, random.Random(seed_value))
        self.headers = {"Authorization": f"Bearer {token}"}
        if target.body:
            self.headers["Content-Type"] = "application/json"
        self.nonce = uuid.uuid4().hex[:10]
        self.lock = threading.Lock()
        self.next = 0
        self.latencies: list[float] = []
        self.lateness: list[float] = []  # send - due, for arrivals that found their connection idle
        self.errors: dict[str, int] = {}
        self.start = 0.0

    def _send(self, conn: http.client.HTTPConnection, i: int, counter: int):
        """Request ``i`` on ``conn``: (what failed or None, the id counter, the connection)."""
        path, counter = fill(self.target.path, self.ids, counter, f"{self.nonce}-{i}")
        body = None
        if self.target.body:
            body = fill(self.target.body, self.ids, counter, f"{self.nonce}-{i}")[0]
        try:
            conn.request(self.target.method, path, body=body, headers=self.headers)
            resp = conn.getresponse()
            resp.read()
            return (None if resp.status < 400 else str(resp.status)), counter, conn
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            fresh = http.client.HTTPConnection(self.host, self.port, timeout=10)
            return type(exc).__name__, counter, fresh

    def _connection(self, index: int) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        counter = index * 7919
        while True:
            with self.lock:
                i, self.next = self.next, self.next + 1
            if i >= len(self.due):
                break
            at = self.start + self.due[i]
            idle = time.perf_counter() < at
            if idle:
                time.sleep(max(0.0, at - time.perf_counter()))
            sent = time.perf_counter()
            failed, counter, conn = self._send(conn, i, counter)
            done = time.perf_counter()
            with self.lock:
                self.latencies.append(done - at)
                if idle:
                    self.lateness.append(sent - at)
                if failed:
                    self.errors[failed] = self.errors.get(failed, 0) + 1
        conn.close()

    def run(self, connections: int) -> dict:
        self.start = time.perf_counter() + 0.2
        cpu_before = time.process_time()
        threads = [threading.Thread(target=self._connection, args=(n,)) for n in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - self.start
        cores = (time.process_time() - cpu_before) / elapsed if elapsed else 0.0
        ms = [x * 1000 for x in self.latencies]
        return {
            "offered_rps": round(self.rate, 1),
            "reached_rps": round(len(ms) / elapsed, 1) if elapsed else 0.0,
            "requests": len(ms),
            "p50_ms": round(percentile(ms, 0.50), 2),
            "p99_ms": round(percentile(ms, 0.99), 2),
            "p999_ms": round(percentile(ms, 0.999), 2),
            "max_ms": round(max(ms), 2) if ms else 0.0,
            "generator_late_p99_ms": round(percentile([x * 1000 for x in self.lateness], 0.99), 2),
            "generator_cores": round(cores, 2),  # CPU the generator took from the machine
            "errors": self.errors,
        }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--products", type=int, default=10_000)
    p.add_argument("--orders-per-customer", type=float, default=1.5)
    p.add_argument("--endpoints", default=",".join(ENDPOINTS), help="subset, comma-separated")
    p.add_argument("--max-connections", type=int, default=32, help="closed-loop maximum run")
    p.add_argument("--max-seconds", type=float, default=8.0)
    p.add_argument("--connections", type=int, default=32, help="open-loop connection pool")
    p.add_argument("--seconds", type=float, default=15.0, help="per open-loop level")
    p.add_argument("--procs", type=int, default=2, help="processes seeding in parallel")
    p.add_argument("--python-load", action="store_true", help="closed loop without wrk")
    p.add_argument("--workers", type=int, help="gunicorn workers (default: the shipped config)")
    p.add_argument("--threads", type=int, help="threads per worker (default: the shipped config)")
    args = p.parse_args(argv)
    args.endpoint_names = [e for e in args.endpoints.split(",") if e]
    unknown = set(args.endpoint_names) - set(ENDPOINTS)
    if unknown:
        p.error(f"unknown endpoints: {', '.join(sorted(unknown))}")
    return args


def markdown(result: dict) -> str:
    lines = [
        f"Open loop (`bench/openloop.py`, {result['when']}, {result['machine']}; "
        f"{result['customers']:,} customers, {result['products']:,} products, `rapport serve` "
        f"with {result['server']}; maximum measured closed loop with {result['max_tool']} at "
        f"{result['max_connections']} connections; Poisson arrivals over "
        f"{result['connections']} connections, {result['seconds']:g} s per level). "
        f"Rerun: `{result['command']}`.",
        "",
        "| endpoint | max req/s (closed) | load | offered → reached req/s | p50 | p99 | p99.9 "
        "| errors | generator late (p99) | generator CPU (cores) |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, row in result["endpoints"].items():
        for level, r in row["levels"].items():
            lines.append(
                f"| {name} | {row['max_rps']:,.0f} | {level} | {r['offered_rps']:,.0f} → "
                f"{r['reached_rps']:,.0f} | {r['p50_ms']} ms | {r['p99_ms']} ms | "
                f"{r['p999_ms']} ms | {r['errors'] or 'none'} | {r['generator_late_p99_ms']} ms | "
                f"{r['generator_cores']} |"
            )
    lines.append("")
    for name, row in result["endpoints"].items():
        p99 = row["levels"]["50%"]["p99_ms"]
        verdict = "met" if p99 <= GOAL_P99_MS else "NOT met"
        lines.append(f"- {name}: p99 at 50% = {p99} ms (goal ≤ {GOAL_P99_MS:g} ms): {verdict}")
    return "\n".join(lines)


def measure_endpoint(wrk, url: str, name: str, token: str, ids: list[str], ids_file: Path,
                     args) -> dict:  # fmt: skip
    """The closed-loop maximum of one endpoint, then the open loop at each level of it."""
    target = ENDPOINTS[name]
    run = dict(concurrency=args.max_connections, token=token, ids_file=ids_file)
    loadgen.run(wrk, url, target, seconds=2, **run)  # warm-up
    top = loadgen.run(wrk, url, target, seconds=args.max_seconds, **run)
    row: dict = {"max_rps": top.rps, "max_errors": top.errors, "levels": {}}
    for level in LEVELS:
        r = OpenLoop(url, target, top.rps * level, args.seconds, token, ids).run(args.connections)
        row["levels"][f"{level:.0%}"] = r
        print(f"{name} {level:.0%}: {json.dumps(r)}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python3 dev.py bench-openloop " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    wrk = None if args.python_load else loadgen.ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="rapport-openloop-"))
    server = RedisServer(tmp / "redis")
    server.start()
    rapport = None
    try:
        plan = seed.Plan(
            redis_url=server.url, key_prefix=PREFIX, customers=args.customers,
            products=args.products, purchase_products=args.products,
            per_customer=args.orders_per_customer, now=time.time(),
        )  # fmt: skip
        seed.seed_products(plan, 0, args.products, args.procs)
        seed.seed_customers(plan, args.procs)
        trained = seed.train_and_activate(plan, tmp / "models", epochs=1)
        token, ids, ids_file = load_key_and_ids(server.url, args.customers, tmp, "openloop")
        rapport = start_rapport(gunicorn_env(server.url, tmp, tmp / "models", args), tmp)
        wait_ready(rapport, "/readyz", lambda b: trained["version"].encode() in b, timeout=180)
        time.sleep(1.0)
        result: dict = {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{__import__('os').cpu_count()} cores",
            "command": command, "customers": args.customers, "products": args.products,
            "max_tool": "wrk -t1" if wrk else "the Python loop",
            "max_connections": args.max_connections, "connections": args.connections,
            "seconds": args.seconds, "endpoints": {},
            "server": f"{args.workers or 'default'} workers x {args.threads or 'default'} threads",
        }  # fmt: skip
        for name in args.endpoint_names:
            result["endpoints"][name] = measure_endpoint(wrk, rapport.url, name, token, ids,
                                                         ids_file, args)  # fmt: skip
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"openloop-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2))
        print("\n" + markdown(result))
        print(f"\nwrote {out.relative_to(ROOT)}; rerun: {command}")
        met = all(r["levels"]["50%"]["p99_ms"] <= GOAL_P99_MS for r in result["endpoints"].values())
        return 0 if met else 1
    finally:
        if rapport is not None:
            rapport.stop()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
