#!/usr/bin/env python3
"""Crash and fault benchmark: the scenarios of ``tests/faults/scenarios.py``, longer and
repeated, against ``rapport serve`` (gunicorn, 2 workers) and a private ``redis-server`` with
``appendonly yes`` / ``appendfsync always``.

    .venv/bin/python bench/faults.py                      # every scenario, 3 rounds
    .venv/bin/python bench/faults.py --rounds 1 --only redis_crash worker_kill
    .venv/bin/python bench/faults.py --redis-timeout 1 --retry-after 2   # the suite's settings

Scenarios (each in a fresh Redis + gunicorn per round):

* ``redis_crash``: writers (purchases, event batches) for ``--before`` s, ``kill -9`` Redis,
  down ``--crash-down`` s, restart on the same port and data directory, ``--after`` s more;
  every 2xx write must be in Redis, every failed one is retried with its id.
* ``redis_outage``: writers and recommendation readers; Redis down ``--outage-down`` s (5).
* ``worker_kill``: ``kill -9`` a gunicorn worker ``--kills`` times under reads and writes.
* ``model_faults``: the 21 corrupt artifacts of ``tests/faults/corrupt.py`` activated in turn.

Prints one JSON line per round and a summary, and writes ``bench/results/faults-<time>.json``.
The figures in ``docs/reliability.md`` come from this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.config import Config  # noqa: E402
from tests.faults import scenarios  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NAMES = ("redis_crash", "redis_outage", "worker_kill", "model_faults")


def _prepare_popular(r: scenarios.Rig) -> None:
    from recommend.catalog.products import Catalog
    from tests.recsys import products

    client = r.client()
    Catalog(client, scenarios.KEYS).upsert_many(list(products().values()))
    client.zadd(scenarios.KEYS.popular_products(), {"P105": 3, "P003": 2, "P201": 1})
    client.close()
    time.sleep(0.5)  # the workers copy the popular list on their next poll


def run(name: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="rapport-faults-") as tmp:
        env = {
            "RAPPORT_REDIS_TIMEOUT": str(args.redis_timeout),
            "RAPPORT_RETRY_AFTER": str(args.retry_after),
        }
        with scenarios.rig(Path(tmp), workers=args.workers, env=env) as r:
            if name == "redis_crash":
                return scenarios.redis_crash(
                    r, threads=args.threads, before=args.before, down=args.crash_down,
                    after=args.after,
                )  # fmt: skip
            if name == "redis_outage":
                _prepare_popular(r)
                return scenarios.redis_outage(
                    r, threads=args.threads, before=args.before, down=args.outage_down,
                    after=args.after,
                )  # fmt: skip
            if name == "worker_kill":
                return scenarios.worker_kill(
                    r, threads=args.threads, before=args.before, after=args.after,
                    kills=args.kills,
                )  # fmt: skip
            return scenarios.model_faults(r, threads=args.threads, settle=0.5)


SUMS = ("requests", "acknowledged", "failed", "lost", "retried", "retries_ok",
        "writes_while_down", "writes_while_down_503", "reads_while_down",
        "reads_while_down_popularity", "errors_5xx", "errors_5xx_other_than_503", "refused",
        "corrupt_artifacts", "served_by_other", "kills", "missing_after_retry",
        "duplicate_events_after_retry")  # fmt: skip
MAXES = ("max_latency_s", "max_latency_while_down_s", "max_write_latency_while_down_s",
         "recovery_s")  # fmt: skip


def summarise(rounds: list[dict]) -> dict:
    out: dict = {"rounds": len(rounds)}
    for key in SUMS:
        values = [r[key] for r in rounds if isinstance(r.get(key), int | float)]
        if values:
            out[key] = sum(values)
    for key in MAXES:
        values = [r[key] for r in rounds if isinstance(r.get(key), int | float)]
        if values:
            out[key] = max(values)
    if any("replaced_in_s" in r for r in rounds):
        out["replaced_in_s_max"] = max((s for r in rounds for s in r["replaced_in_s"]), default=0)
    if any("order_counts_agree" in r for r in rounds):
        out["order_counts_agree"] = all(r["order_counts_agree"] for r in rounds)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", nargs="*", choices=NAMES, default=list(NAMES))
    p.add_argument("--threads", type=int, default=6)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--before", type=float, default=3.0)
    p.add_argument("--after", type=float, default=3.0)
    p.add_argument("--crash-down", type=float, default=1.0)
    p.add_argument("--outage-down", type=float, default=5.0)
    p.add_argument("--kills", type=int, default=3)
    # The served app's Redis timeout and Retry-After: the service's defaults unless given (the
    # suite's variants use scenarios.REDIS_TIMEOUT, 1 s, to stay quick).
    p.add_argument("--redis-timeout", type=float, default=Config().redis_timeout)
    p.add_argument("--retry-after", type=int, default=Config().retry_after)
    args = p.parse_args()
    report: dict = {"args": vars(args), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime())}  # fmt: skip
    for name in args.only:
        rounds = []
        for i in range(args.rounds):
            figures = run(name, args)
            rounds.append(figures)
            print(f"{name} round {i + 1}: {scenarios.as_json(figures)}", flush=True)
        report[name] = {"rounds": rounds, "summary": summarise(rounds)}
        print(f"{name} summary: {json.dumps(report[name]['summary'], sort_keys=True)}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"faults-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(report, indent=2, sort_keys=True, default=list))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
