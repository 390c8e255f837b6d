#!/usr/bin/env python3
"""Serving benchmark: Rapport's endpoints against the bare-Flask ceilings, in one run.

    python3 dev.py bench-serve                      # full: 100k customers, 10k then 100k products
    .venv/bin/python bench/serve.py --customers 2000 --products 1000 --duration 3 \\
        --concurrency 1,32 --no-docs                 # a quick check

What it does, with nothing shared with anything else on the machine:

1. starts its own ``redis-server`` on a free port in a temporary directory;
2. seeds N customers (with purchases) and M products through the domain stores
   (``bench/seed.py``), trains a small LightFM model with the project's own code (one epoch: this
   is a serving benchmark) and activates it;
3. starts ``rapport serve`` (gunicorn with the shipped ``gunicorn.conf.py``) and the ceiling app
   (``bench/ceiling_app.py``, the same gunicorn config): a bare JSON endpoint and one
   ``HGETALL``;
4. drives each endpoint at each concurrency from a separate process (wrk, installed with apt-get
   when missing; else a small Python load generator), a short warm-up first; customer ids
   rotate; the single-read ceiling is measured before and after the endpoints of each
   concurrency level and the ratio uses their mean;
5. measures the workers' memory (RSS and PSS) with the model loaded;
6. prints the table, writes ``bench/results/serve-<time>.json`` and (unless ``--no-docs``) the
   "Serving" section of ``docs/benchmarks.md``, every goal marked met or not met.

For a larger catalog the products are added and the model retrained; customers stay.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen, seed  # noqa: E402
from bench.loadgen import Target  # noqa: E402
from bench.report import goals_for, markdown_section, text_table, update_docs  # noqa: E402
from profiles.keys import Keys  # noqa: E402
from service.redis_server import RedisServer, free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PREFIX = "rp"

# The ceilings (bench/ceiling_app.py) and Rapport's endpoints; "{id}" rotates over customers.
CEILINGS = {
    "bare": Target("bare flask (no I/O)", "GET", "/bare", auth=False),
    "redis_read": Target("flask + 1 HGETALL", "GET", "/hgetall/{id}", auth=False),
}
PURCHASE_BODY = (
    '{"order_id":"bench-{n}","currency":"GBP","channel":"web",'
    '"purchased_at":"2026-01-15T10:00:00+00:00",'
    '"lines":[{"product_id":"P000001","quantity":1,"unit_price":"2.50"}]}'
)
ENDPOINTS = {
    "profile": Target("profile read", "GET", "/v1/profiles/{id}"),
    "recommendations": Target(
        "recommendations", "GET", "/v1/profiles/{id}/recommendations?limit=10"
    ),
    "next_best_actions": Target(
        "next-best actions", "GET", "/v1/profiles/{id}/next-best-actions?limit=3"
    ),
    "greeting": Target("greeting", "GET", "/v1/profiles/{id}/greeting?channel=chat"),
    "purchase": Target("purchase write", "POST", "/v1/profiles/{id}/purchases", PURCHASE_BODY),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument(
        "--products", default="10000,100000", help="catalog sizes, ascending (default %(default)s)"
    )
    p.add_argument("--orders-per-customer", type=float, default=1.5, help="mean orders each")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per measurement")
    p.add_argument("--concurrency", default="1,8,32,64")
    p.add_argument(
        "--endpoints",
        default=",".join(ENDPOINTS),
        help=f"subset of {','.join(ENDPOINTS)} (the ceilings always run)",
    )
    p.add_argument("--workers", type=int, help="gunicorn workers (default: the shipped config)")
    p.add_argument("--threads", type=int, help="threads per worker (default: the shipped config)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--procs", type=int, default=3, help="processes seeding in parallel")
    p.add_argument("--python-load", action="store_true", help="use the Python load generator")
    p.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    p.add_argument("--keep", action="store_true", help="leave the servers running (debug)")
    p.add_argument(
        "--no-memory-compare",
        dest="memory_compare",
        action="store_false",
        help="skip the second start with RAPPORT_SHARE_MODEL_ARRAYS=0 (worker memory before/after)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the workers during each endpoint's run at the highest concurrency "
        "(collapsed stacks in bench/results/)",
    )
    args = p.parse_args(argv)
    args.product_sizes = sorted(int(x) for x in args.products.split(",") if x)
    args.levels = [int(x) for x in args.concurrency.split(",") if x]
    args.endpoint_names = [e for e in args.endpoints.split(",") if e]
    unknown = set(args.endpoint_names) - set(ENDPOINTS)
    if unknown:
        p.error(f"unknown endpoints: {', '.join(sorted(unknown))}")
    return args


# -- processes -------------------------------------------------------------------
@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def gunicorn_env(redis_url: str, tmp: Path, model_dir: Path, args) -> dict[str, str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "RAPPORT_DATA_DIR": str(tmp / "var"),
        "RAPPORT_MODEL_DIR": str(model_dir),
        "RAPPORT_KEY_PREFIX": PREFIX,
        "RAPPORT_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        # One API key drives all the load: the shipped per-key limits (two windows) would
        # answer 429. Two windows far above the load keep the limiter's Redis work measured.
        "RAPPORT_RATE_LIMIT": "100000000 per minute; 10000000 per second",
        # ...and it stands in for many integrations, so the per-key concurrency bound is off
        "RAPPORT_KEY_CONCURRENCY": "0",
    }
    if args.workers:
        env["RAPPORT_WORKERS"] = str(args.workers)
    if args.threads:
        env["RAPPORT_THREADS"] = str(args.threads)
    return env


def start_rapport(env: dict[str, str], tmp: Path) -> Server:
    port = free_port()
    log = tmp / f"rapport-{port}.log"
    rapport = Path(sys.executable).with_name("rapport")
    cmd = [str(rapport), "serve", "--bind", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,  # the access log: one JSON line per request
        stderr=open(log, "w"),
        start_new_session=True,
    )
    return Server("rapport", proc, f"http://127.0.0.1:{port}", log)


def start_ceiling(env: dict[str, str], tmp: Path) -> Server:
    port = free_port()
    log = tmp / f"ceiling-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(ROOT / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "bench.ceiling_app:create_app()",
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        start_new_session=True,
    )
    return Server("ceiling", proc, f"http://127.0.0.1:{port}", log)


def http(
    url: str, token: str = "", method: str = "GET", body: str | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=body.encode() if body else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: Server, path: str, check=lambda body: True, timeout: float = 120) -> bytes:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {server.log}:\n{tail(server.log)}")
        try:
            status, body = http(server.url + path)
            if status == 200 and check(body):
                return body
            last = f"{status} {body[:200]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{server.name} not ready after {timeout}s ({last}); see {server.log}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- memory -------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def _mem_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss", "Shared_Clean", "Private_Dirty", "Private_Clean"):
                out[name] = int(rest.split()[0])
    except OSError:
        pass
    return out


def worker_memory(server: Server) -> list[dict[str, Any]]:
    """RSS and PSS (MiB) of each gunicorn worker under ``rapport serve``."""
    masters = _children(server.proc.pid)  # rapport serve -> gunicorn master -> workers
    rows = []
    for master in masters:
        for pid in _children(master):
            kb = _mem_kb(pid)
            if kb:
                rows.append(
                    {
                        "pid": pid,
                        "rss_mib": round(kb.get("Rss", 0) / 1024, 1),
                        "pss_mib": round(kb.get("Pss", 0) / 1024, 1),
                        "private_dirty_mib": round(kb.get("Private_Dirty", 0) / 1024, 1),
                    }
                )
    return rows


# -- the run -------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": list(os.getloadavg()),
    }


def measure(
    wrk: str | None,
    base: str,
    target: Target,
    c: int,
    args,
    token: str,
    ids_file: Path,
    profile_to: tuple[int, Path] | None = None,
) -> dict[str, Any]:
    if args.warmup > 0:
        loadgen.run(
            wrk, base, target, concurrency=c, seconds=args.warmup, token=token, ids_file=ids_file
        )
    spy = None
    if profile_to is not None:
        pid, out = profile_to
        spy = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
             "--subprocesses", "--rate", "250",
             "--format", "raw", "--nonblocking", "--duration", str(max(1, round(args.duration))),
             "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    result = loadgen.run(
        wrk, base, target, concurrency=c, seconds=args.duration, token=token, ids_file=ids_file
    )
    if spy is not None:
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
    return result.as_dict()


def profile_target(server: Server, args, name: str, products: int, c: int):
    """(gunicorn master pid, output file) when this run is to be profiled, else None."""
    if not args.profile or c != max(args.levels):
        return None
    masters = _children(server.proc.pid)
    if not masters:
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    return masters[0], RESULTS / f"profile-{name}-{products}.txt"


def private_memory(env, tmp: Path, trained, args, token: str, ids_file: Path) -> list[dict]:
    """Worker memory with RAPPORT_SHARE_MODEL_ARRAYS=0 (each worker its own arrays), after the
    same kind of traffic has touched the model."""
    rapport = start_rapport({**env, "RAPPORT_SHARE_MODEL_ARRAYS": "0"}, tmp)
    try:
        wait_ready(rapport, "/readyz", lambda b: trained["version"].encode() in b, timeout=180)
        time.sleep(1.0)
        wrk = None if args.python_load else loadgen.ensure_wrk()
        loadgen.run(wrk, rapport.url, ENDPOINTS["recommendations"], concurrency=8,
                    seconds=max(2.0, args.warmup), token=token, ids_file=ids_file)  # fmt: skip
        return worker_memory(rapport)
    finally:
        rapport.stop()


def run_phase(
    n_products: int,
    args,
    plan: seed.Plan,
    tmp: Path,
    wrk: str | None,
    token: str,
    ids_file: Path,
) -> dict[str, Any]:
    model_dir = tmp / "models"
    print(f"\n== {n_products} products: training ...", flush=True)
    trained = seed.train_and_activate(
        replace(plan, products=n_products), model_dir, epochs=args.epochs
    )
    print(f"   model {trained['version']}: {trained['items']} items, {trained['users']} users, "
          f"{trained['seconds']} s", flush=True)  # fmt: skip
    env = gunicorn_env(plan.redis_url, tmp, model_dir, args)
    rapport = start_rapport(env, tmp)
    ceiling = start_ceiling(env, tmp)
    phase: dict[str, Any] = {"products": n_products, "model": trained, "rows": [], "checks": {}}
    try:
        wait_ready(ceiling, "/bare")
        wait_ready(
            rapport, "/readyz", lambda body: trained["version"].encode() in body, timeout=180
        )
        time.sleep(1.0)  # every worker warms up its model in post_worker_init
        sample = ids_file.read_text().split("\n", 1)[0]
        for name in args.endpoint_names:
            t = ENDPOINTS[name]
            body = t.body.replace("{id}", sample).replace("{n}", f"check-{n_products}")
            status, resp = http(rapport.url + t.path.replace("{id}", sample), token, t.method, body)
            phase["checks"][name] = {"status": status, "bytes": len(resp)}
            print(f"   check {name}: {status} ({len(resp)} bytes)", flush=True)
            if status >= 400:
                print(f"     {resp[:300]!r}", flush=True)
        for c in args.levels:
            before = measure(wrk, ceiling.url, CEILINGS["redis_read"], c, args, token, ids_file)
            rows = [measure(wrk, ceiling.url, CEILINGS["bare"], c, args, token, ids_file)]
            for name in args.endpoint_names:
                if phase["checks"][name]["status"] >= 400:
                    continue  # not built (404) or broken: reported, not loaded
                row = measure(
                    wrk, rapport.url, ENDPOINTS[name], c, args, token, ids_file,
                    profile_target(rapport, args, name, n_products, c),
                )  # fmt: skip
                row["endpoint"] = name
                rows.append(row)
            after = measure(wrk, ceiling.url, CEILINGS["redis_read"], c, args, token, ids_file)
            ceiling_rps = (before["rps"] + after["rps"]) / 2
            read_row = {
                **before,
                "rps": round(ceiling_rps, 1),
                "p50_ms": max(before["p50_ms"], after["p50_ms"]),
                "p99_ms": max(before["p99_ms"], after["p99_ms"]),
                "requests": before["requests"] + after["requests"],
                "errors": before["errors"] + after["errors"],
                "ceiling_runs_rps": [before["rps"], after["rps"]],
                "endpoint": "redis_read",
            }
            rows[0]["endpoint"] = "bare"
            for row in [rows[0], read_row, *rows[1:]]:
                row["ratio"] = round(row["rps"] / ceiling_rps, 2) if ceiling_rps else None
                phase["rows"].append(row)
                print(
                    f"   c={c:<3} {row['name']:<22} {row['rps']:>8.0f} req/s  "
                    f"p50 {row['p50_ms']:>6.2f} ms  p99 {row['p99_ms']:>7.2f} ms  "
                    f"err {row['errors']:<5} x{row['ratio']}",
                    flush=True,
                )
        phase["memory"] = worker_memory(rapport)
        print(f"   worker memory (arrays shared): {phase['memory']}", flush=True)
        if args.memory_compare and n_products == max(args.product_sizes):
            rapport.stop()
            phase["memory_private"] = private_memory(env, tmp, trained, args, token, ids_file)
            print(f"   worker memory (private arrays): {phase['memory_private']}", flush=True)
    finally:
        if not args.keep:
            rapport.stop()
            ceiling.stop()
    return phase


def load_key_and_ids(redis_url: str, customers: int, tmp: Path, name: str):
    """An admin key for the load, and the seeded customer ids in a fixed shuffled order, also
    written to ``tmp/ids.txt`` for wrk: ``(token, ids, ids_file)``."""
    import random

    import redis

    from service.auth import ApiKeyStore

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    _, token = ApiKeyStore(client, Keys(PREFIX)).create(name, "admin")
    ids = [seed.customer_id(i) for i in range(customers)]
    random.Random(7).shuffle(ids)
    ids_file = tmp / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    return token, ids, ids_file


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    command = "python3 dev.py bench-serve " + shlex.join(argv if argv is not None else sys.argv[1:])
    wrk = None if args.python_load else loadgen.ensure_wrk()
    print(f"load generator: {wrk or 'python (wrk not available)'}", flush=True)
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="rapport-bench-"))
    server = RedisServer(tmp / "redis")
    server.start()
    try:
        plan = seed.Plan(
            redis_url=server.url,
            key_prefix=PREFIX,
            customers=args.customers,
            products=args.product_sizes[0],
            purchase_products=args.product_sizes[0],
            per_customer=args.orders_per_customer,
            now=time.time(),
        )
        t0 = time.perf_counter()
        seed.seed_products(plan, 0, args.product_sizes[0], args.procs)
        t1 = time.perf_counter()
        n_customers, n_orders = seed.seed_customers(plan, args.procs)
        t2 = time.perf_counter()
        print(
            f"seeded {args.product_sizes[0]} products in {t1 - t0:.1f} s, {n_customers} "
            f"customers with {n_orders} orders in {t2 - t1:.1f} s",
            flush=True,
        )
        token, _, ids_file = load_key_and_ids(server.url, args.customers, tmp, "bench")
        phases = []
        have = args.product_sizes[0]
        for n in args.product_sizes:
            if n > have:
                t = time.perf_counter()
                seed.seed_products(replace(plan, products=n), have, n, args.procs)
                print(f"added products {have}..{n} in {time.perf_counter() - t:.1f} s", flush=True)
                have = n
            phases.append(run_phase(n, args, plan, tmp, wrk, token, ids_file))
        info["load_average_at_end"] = list(os.getloadavg())
        result = {
            "started": stamp,
            "command": command,
            "machine": info,
            "settings": {
                "customers": args.customers,
                "orders_seeded": n_orders,
                "products": args.product_sizes,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "concurrency": args.levels,
                "workers": args.workers or f"{os.environ.get('RAPPORT_WORKERS', '2')} (default)",
                "threads": args.threads or f"{os.environ.get('RAPPORT_THREADS', '4')} (default)",
                "load_generator": "wrk -t1" if wrk else "python",
                "seed_seconds": {"products": round(t1 - t0, 1), "customers": round(t2 - t1, 1)},
            },
            "phases": phases,
        }
        result["goals"] = goals_for(result)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"serve-{stamp}.json"
        out.write_text(json.dumps(result, indent=2))
        print("\n" + text_table(result))
        print(f"\nresults: {out}")
        if not args.no_docs:
            notes_file = ROOT / "bench" / "serve_notes.md"
            notes = notes_file.read_text() if notes_file.exists() else ""
            update_docs(ROOT / "docs" / "benchmarks.md", markdown_section(result, notes))
            print("docs/benchmarks.md: Serving section written")
        return 0
    finally:
        if not args.keep:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
