#!/usr/bin/env python3
"""Segment ingest benchmark: ``POST /v1/ingest/segment`` events/s at batch 100 and 500 next to
``POST /v1/events`` with the same items, in process (the Flask test client, no HTTP server).

    python3 dev.py bench-segment
    .venv/bin/python bench/segment_ingest.py --customers 5000 --duration 5

Starts its own ``redis-server`` (as ``bench/ingest.py`` does), creates ``--customers`` profiles
each with the external id ``segment:<userId>``, then for each batch size posts, for
``--duration`` seconds each (best of ``--rounds``, the kinds alternating), batches of
``Product Viewed`` track calls (each for the next customer, a unique ``messageId``) to the
Segment endpoint, and the same items as ``view``
events to ``POST /v1/events``, naming the customer by ``external_id`` (``segment:<userId>``,
what the Segment payload carries) and by ``profile_id`` (what ``bench-ingest`` posts).
A sample batch of each must be all ``accepted``. The goal: Segment >= 0.8x the events rate for
the same items (external ids). Prints a table and the command; writes nothing else.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.report import md_table  # noqa: E402
from bench.serve import PREFIX, machine  # noqa: E402
from profiles.keys import Keys  # noqa: E402
from service.redis_server import RedisServer  # noqa: E402

GOAL = 0.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=5_000)
    p.add_argument("--batches", default="100,500")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per row")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3, help="best of this many runs per cell")
    args = p.parse_args(argv)
    args.batch_sizes = [int(x) for x in args.batches.split(",") if x]
    return args


def seed_customers(client: redis.Redis, n: int) -> list[str]:
    """``n`` profiles with ``segment:u<i>`` external ids; their profile ids."""
    from profiles.store import ProfileStore

    store = ProfileStore(client, Keys(PREFIX))
    return [store.create({"external_ids": [f"segment:u{i}"]}).id for i in range(n)]


def segment_item(mid: str, user: int, at: str) -> dict[str, Any]:
    return {"type": "track", "messageId": mid, "userId": f"u{user}", "event": "Product Viewed",
            "timestamp": at, "properties": {"product_id": "P000001"}}  # fmt: skip


def event_item(mid: str, customer: dict[str, str], at: str) -> dict[str, Any]:
    return {"message_id": mid, "type": "view", "customer": customer, "at": at,
            "product_id": "P000001"}  # fmt: skip


def bodies(kind: str, batch: int, ids: list[str], at: str) -> Callable[[int], dict[str, Any]]:
    """The ``n``-th request body of a run: ``batch`` items for the next customers."""

    def body(n: int) -> dict[str, Any]:
        start = n * batch
        users = [(start + k) % len(ids) for k in range(batch)]
        mids = [f"{kind}-{batch}-{start + k}" for k in range(batch)]
        if kind == "segment":
            return {"batch": [segment_item(m, u, at) for m, u in zip(mids, users, strict=True)]}
        refs = [{"external_id": f"segment:u{u}"} if kind == "events-ext" else
                {"profile_id": ids[u]} for u in users]  # fmt: skip
        return {"events": [event_item(m, r, at) for m, r in zip(mids, refs, strict=True)]}

    return body


def run(client: Any, path: str, headers: dict[str, str], body: Callable[[int], dict],
        seconds: float, counter: itertools.count) -> tuple[int, float]:  # fmt: skip
    """Post bodies for ``seconds``; ``(requests, elapsed s)``. Bodies are built before timing."""
    prepared = [body(next(counter)) for _ in range(64)]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        resp = client.post(path, json=prepared[done % len(prepared)], headers=headers)
        if resp.status_code != 200:
            raise RuntimeError(f"{path}: {resp.status_code} {resp.get_data()[:300]!r}")
        done += 1
        if done % len(prepared) == 0:
            prepared = [body(next(counter)) for _ in range(64)]  # counted: the client's share
    return done, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    command = "python3 dev.py bench-segment " + shlex.join(given)
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="rapport-segment-"))
    server = RedisServer(tmp / "redis").start()
    try:
        from service import create_app
        from service.auth import ApiKeyStore

        client = redis.Redis.from_url(server.url, decode_responses=True)
        ids = seed_customers(client, args.customers)
        _, token = ApiKeyStore(client, Keys(PREFIX)).create("bench", "admin")
        headers = {"Authorization": f"Bearer {token}"}
        config = {"redis_url": server.url, "data_dir": tmp / "var", "key_prefix": PREFIX,
                  "log_level": "WARNING", "rate_limit": "off"}  # fmt: skip
        app = create_app(config)
        http = app.test_client()
        at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
        kinds = {"segment": "/v1/ingest/segment", "events-ext": "/v1/events",
                 "events-id": "/v1/events"}  # fmt: skip
        rates: dict[tuple[str, int], float] = {}
        for batch in args.batch_sizes:
            counters = {kind: itertools.count() for kind in kinds}
            makers = {kind: bodies(kind, batch, ids, at) for kind in kinds}
            for kind, path in kinds.items():
                sample = http.post(path, json=makers[kind](next(counters[kind])), headers=headers)
                if sample.json.get("accepted") != batch:
                    raise RuntimeError(f"{kind} sample batch of {batch}: {sample.json}")
                if args.warmup:
                    run(http, path, headers, makers[kind], args.warmup, counters[kind])
            for rnd in range(args.rounds):  # the kinds alternate: a noisy neighbour hits all
                for kind, path in kinds.items():
                    done, elapsed = run(http, path, headers, makers[kind], args.duration,
                                        counters[kind])  # fmt: skip
                    rate = done * batch / elapsed
                    rates[kind, batch] = max(rates.get((kind, batch), 0.0), rate)
                    print(f"round {rnd + 1} {kind:>10} batch {batch:>3}: {rate:9.0f} events/s",
                          flush=True)  # fmt: skip
        client.close()
    finally:
        server.stop()
    rows = []
    for batch in args.batch_sizes:
        seg, ext, pid = (rates[k, batch] for k in ("segment", "events-ext", "events-id"))
        rows.append([str(batch), f"{seg:,.0f}", f"{ext:,.0f}", f"{pid:,.0f}",
                     f"{seg / ext:.2f}x", f"{seg / pid:.2f}x"])  # fmt: skip
    worst = min(rates["segment", b] / rates["events-ext", b] for b in args.batch_sizes)
    print()
    print(f"{info['cores']} cores ({info['cpu'] or 'unknown CPU'}), load average "
          f"{os.getloadavg()[0]:.1f}; {args.customers:,} customers; in process (Flask test "
          f"client), best of {args.rounds} runs of {args.duration:g} s per cell; Product "
          "Viewed / view items, one customer each, unique message ids")  # fmt: skip
    print()
    print(md_table(["batch", "segment events/s", "events (external_id) events/s",
                    "events (profile_id) events/s", "segment / events (ext)",
                    "segment / events (id)"], rows))  # fmt: skip
    print()
    status = "met" if worst >= GOAL else "not met"
    print(
        f"Goal: Segment >= {GOAL}x POST /v1/events for the same items: {status} "
        f"(worst {worst:.2f}x)"
    )
    print()
    print(command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
