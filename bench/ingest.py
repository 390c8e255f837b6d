#!/usr/bin/env python3
"""Ingest benchmark: ``POST /v1/events`` (events/s) and ``rapport import`` (rows/s) at batch
sizes 1, 100 and 500.

    python3 dev.py bench-ingest                     # full
    .venv/bin/python bench/ingest.py --customers 2000 --duration 3 --import-rows 2000 --no-docs

Starts its own ``redis-server`` and ``rapport serve`` (the shipped gunicorn config) like
``bench/serve.py``; seeds customers through the profile store; then

* events: wrk posts batches of ``view`` events, each item for the next customer id (so a batch
  of 500 names 500 customers) with a unique ``message_id``; events/s = requests/s x batch.
  A sample batch is checked first: every item must be ``accepted``.
* import: the first ``--import-rows`` rows of the Online Retail file in ``../shared/data/``
  (or a generated file in the same layout when it is missing) into an emptied database with
  ``rapport import --layout online-retail --batch-size B``; rows/s is the importer's own
  figure (its summary), the wall time includes starting the command.

Writes ``bench/results/ingest-<time>.json`` and the "Ingest" section of
``docs/benchmarks.md`` (other sections, such as "Import", are left as they are).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen, seed  # noqa: E402
from bench.loadgen import Target  # noqa: E402
from bench.report import md_table, update_docs  # noqa: E402
from bench.serve import (  # noqa: E402
    PREFIX,
    RESULTS,
    gunicorn_env,
    http,
    machine,
    start_rapport,
    wait_ready,
)
from profiles.keys import Keys  # noqa: E402
from service.redis_server import RedisServer  # noqa: E402

RETAIL = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
GOAL_EVENTS_PER_S = 10_000
NOTES = ROOT / "bench" / "ingest_notes.md"  # the analysis, kept by hand, appended to the section


def event_body(batch: int, at: str) -> str:
    item = (
        '{"message_id":"{n}-{k}","type":"view","customer":{"profile_id":"{id}"},'
        f'"at":"{at}","product_id":"P000001"}}'
    )
    return '{"events":[' + ",".join([item] * batch) + "]}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--batches", default="1,100,500")
    p.add_argument("--concurrency", type=int, default=8, help="connections posting events")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--import-rows", type=int, default=20_000)
    p.add_argument("--workers", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--python-load", action="store_true")
    p.add_argument("--no-docs", action="store_true")
    args = p.parse_args(argv)
    args.batch_sizes = [int(x) for x in args.batches.split(",") if x]
    return args


def import_file(rows: int, directory: Path) -> tuple[Path, str]:
    """The first ``rows`` rows of the Online Retail file, or generated rows in its layout."""
    out = directory / f"retail-{rows}.csv"
    header = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
              "CustomerID", "Country"]  # fmt: skip
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        if RETAIL.exists():
            with gzip.open(RETAIL, "rt", newline="") as src:
                reader = csv.reader(src)
                next(reader)
                writer.writerow(header)
                for i, row in enumerate(reader):
                    if i >= rows:
                        break
                    writer.writerow(row)
            return out, f"first {rows:,} rows of the UCI Online Retail file"
        rng = random.Random(5)
        writer.writerow(header)
        start = datetime(2011, 1, 1)
        for i in range(rows):
            invoice = 500000 + i // 5
            when = start + timedelta(minutes=invoice - 500000)
            writer.writerow([invoice, f"{10000 + rng.randrange(3000)}", "GENERATED ITEM",
                             rng.randint(1, 12), when.strftime("%Y-%m-%d %H:%M:%S"),
                             f"{rng.uniform(0.5, 20):.2f}", f"{12000 + (i // 5) % 4000}.0",
                             "United Kingdom"])  # fmt: skip
    return out, f"{rows:,} generated rows in the Online Retail layout"


def run_import(env: dict[str, str], path: Path, batch: int) -> dict[str, Any]:
    rapport = Path(sys.executable).with_name("rapport")
    cmd = [str(rapport), "import", str(path), "--layout", "online-retail",
           "--batch-size", str(batch), "--no-progress", "--json"]  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"rapport import failed: {out.stderr[-1000:]}")
    summary = json.loads(out.stdout[out.stdout.index("{") :])
    return {"batch": batch, "wall_s": round(wall, 2), **summary}


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    given = argv if argv is not None else sys.argv[1:]
    command = "python3 dev.py bench-ingest " + shlex.join(given)
    wrk = None if args.python_load else loadgen.ensure_wrk()
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="rapport-ingest-"))
    server = RedisServer(tmp / "redis").start()
    import redis

    from service.auth import ApiKeyStore

    client = redis.Redis.from_url(server.url, decode_responses=True)
    result: dict[str, Any] = {"started": stamp, "command": command, "machine": info}
    try:
        plan = seed.Plan(server.url, PREFIX, args.customers, 100, 100, 0.0, time.time())
        seed.seed_products(plan, 0, 100)
        seed.seed_customers(plan)
        _, token = ApiKeyStore(client, Keys(PREFIX)).create("bench", "admin")
        ids = [seed.customer_id(i) for i in range(args.customers)]
        random.Random(7).shuffle(ids)
        ids_file = tmp / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        env = gunicorn_env(server.url, tmp, tmp / "models", args)
        rapport = start_rapport(env, tmp)
        at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
        events = []
        try:
            wait_ready(rapport, "/readyz")
            for batch in args.batch_sizes:
                body = event_body(batch, at)
                target = Target(f"events x{batch}", "POST", "/v1/events", body)
                sample, _ = loadgen.fill(body, ids, 0, f"check{batch}")
                status, resp = http(rapport.url + "/v1/events", token, "POST", sample)
                doc = json.loads(resp) if status == 200 else {}
                if status != 200 or doc.get("accepted") != batch:
                    raise RuntimeError(f"sample batch of {batch}: {status} {resp[:300]!r}")
                if args.warmup:
                    loadgen.run(wrk, rapport.url, target, concurrency=args.concurrency,
                                seconds=args.warmup, token=token, ids_file=ids_file)  # fmt: skip
                r = loadgen.run(wrk, rapport.url, target, concurrency=args.concurrency,
                                seconds=args.duration, token=token, ids_file=ids_file)  # fmt: skip
                r = r.as_dict()
                r["batch"] = batch
                r["events_per_s"] = round(r["rps"] * batch, 1)
                events.append(r)
                print(f"events batch {batch:>3}: {r['rps']:8.1f} req/s = "
                      f"{r['events_per_s']:9.0f} events/s  p50 {r['p50_ms']} ms  "
                      f"p99 {r['p99_ms']} ms  errors {r['errors']}", flush=True)  # fmt: skip
        finally:
            rapport.stop()
        result["events"] = events
        path, source = import_file(args.import_rows, tmp)
        imports = []
        for batch in args.batch_sizes:
            client.flushdb()
            r = run_import(env, path, batch)
            imports.append(r)
            print(f"import batch {batch:>3}: {r['rows_per_s']:8.0f} rows/s "
                  f"({r['rows_read']} rows, {r['orders_created']} orders, "
                  f"{r['customers_created']} customers; {r['wall_s']} s wall)")  # fmt: skip
        again = run_import(env, path, args.batch_sizes[-1])
        again["rerun"] = True
        imports.append(again)
        print(f"import re-run (nothing changes): {again['rows_per_s']:8.0f} rows/s", flush=True)
        result["imports"] = imports
        result["import_source"] = source
        info["load_average_at_end"] = list(os.getloadavg())
        result["settings"] = {
            "customers": args.customers,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "load_generator": "wrk -t1" if wrk else "python",
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"ingest-{stamp}.json"
        out.write_text(json.dumps(result, indent=2))
        print(f"results: {out}")
        if not args.no_docs:
            update_docs(ROOT / "docs" / "benchmarks.md", markdown(result))
            print("docs/benchmarks.md: Ingest section written")
    finally:
        client.close()
        server.stop()
    return 0


def markdown(result: dict[str, Any]) -> str:
    m, s = result["machine"], result["settings"]
    best = max((e["events_per_s"] for e in result["events"]), default=0)
    errors = sum(e["errors"] for e in result["events"])
    status = "met" if best >= GOAL_EVENTS_PER_S and errors == 0 else "not met"
    ev_rows = [[str(e["batch"]), f"{e['rps']:,.1f}", f"{e['events_per_s']:,.0f}",
                f"{e['p50_ms']:.1f}", f"{e['p99_ms']:.1f}", str(e["errors"])]
               for e in result["events"]]  # fmt: skip
    im_rows = [[str(r["batch"]) + (" (re-run)" if r.get("rerun") else ""),
                f"{r['rows_read']:,}", f"{r['orders_created']:,}", f"{r['customers_created']:,}",
                f"{r['seconds']}", f"{r['rows_per_s']:,.0f}", f"{r['wall_s']}"]
               for r in result["imports"]]  # fmt: skip
    return "\n".join(
        [
            "## Ingest",
            "",
            f"Measured {result['started']} on {m['cores']} cores ({m['cpu'] or 'unknown CPU'}), "
            f"load average {m['load_average_at_start'][0]:.1f} at the start and "
            f"{m.get('load_average_at_end', [0])[0]:.1f} at the end (the benchmark's own "
            "processes included; a shared virtual machine: figures swing between runs).",
            "",
            "```",
            result["command"],
            "```",
            "",
            f"**Goal: >= {GOAL_EVENTS_PER_S:,} events/s through the batch endpoint: {status}** "
            f"(best {best:,.0f} events/s, {errors} errors).",
            "",
            f"`POST /v1/events`, `view` events, each item for a different customer of "
            f"{s['customers']:,} (so a batch of 500 touches 500 customers), unique message ids, "
            f"{s['concurrency']} connections from {s['load_generator']}, {s['duration_s']:g} s "
            "per row, `rapport serve` with the shipped gunicorn config:",
            "",
            md_table(["batch", "req/s", "events/s", "p50 ms", "p99 ms", "errors"], ev_rows),
            "",
            f"`rapport import --layout online-retail --batch-size B` of the "
            f"{result['import_source']} into an emptied database (rows/s is the importer's own "
            "figure; wall time includes starting the command):",
            "",
            md_table(
                ["batch", "rows", "orders", "customers", "import s", "rows/s", "wall s"], im_rows
            ),  # fmt: skip
            "",
            *([NOTES.read_text().strip(), ""] if NOTES.exists() else []),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
