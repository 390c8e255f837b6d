#!/usr/bin/env python3
"""Webhook delivery benchmark (issue 14): lag from the API's 2xx to a receiver on 127.0.0.1.

    python3 dev.py bench-connect                      # 60 s per run, receiver down 30 s
    .venv/bin/python bench/connect.py --seconds 10 --down 10

Starts its own ``redis-server``, one subscription to every event type, a receiver (an HTTP
server in a thread, ``tests/webhook_receiver.py``) and ``rapport worker`` processes. Creates
profiles through the app (Flask test client, in process) paced at ``--rate`` changes/s for
``--seconds``; the lag of a change is the receiver's arrival time minus the API's 2xx. Runs:
1 worker, 2 workers, a worker killed with SIGKILL mid-load then started again, the receiver
down for ``--down`` s then up. Every fault run counts deliveries by ``webhook-id``: lost (never
delivered) and duplicates. Prints a table and the command; writes nothing else.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.report import md_table  # noqa: E402
from bench.serve import PREFIX  # noqa: E402
from profiles.keys import Keys  # noqa: E402
from service.redis_server import RedisServer  # noqa: E402
from tests.webhook_receiver import Receiver  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=500.0, help="changes per second")
    p.add_argument("--seconds", type=float, default=60.0, help="load per run")
    p.add_argument("--down", type=float, default=30.0, help="receiver outage (s)")
    p.add_argument("--drain", type=float, default=180.0, help="max wait for the last delivery")
    return p.parse_args(argv)


class Bench:
    def __init__(self, server_url: str, tmp: Path):
        from service import create_app
        from service.auth import ApiKeyStore
        from service.webhooks.subscriptions import SubscriptionStore

        self.url, self.tmp = server_url, tmp
        self.client = redis.Redis.from_url(server_url, decode_responses=True)
        _, token = ApiKeyStore(self.client, Keys(PREFIX)).create("bench", "admin")
        self.headers = {"Authorization": f"Bearer {token}"}
        config = {"redis_url": server_url, "data_dir": tmp / "var", "key_prefix": PREFIX,
                  "log_level": "WARNING", "rate_limit": "off"}  # fmt: skip
        self.app = create_app(config)
        self.receiver = Receiver()
        SubscriptionStore(self.client, Keys(PREFIX)).create(self.receiver.url, ["profile.created"])
        self.n = 0

    def worker(self, worker_id: str | None = None) -> Any:
        from service.cli_worker import start_worker_process

        env = {"RAPPORT_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "RAPPORT_KEY_PREFIX": PREFIX,
               "RAPPORT_DATA_DIR": str(self.tmp / "var"), "RAPPORT_WORKER_METRICS_PORT": "0",
               "RAPPORT_LOG_LEVEL": "WARNING"}  # fmt: skip
        return start_worker_process(self.url, worker_id, **env)

    def load(self, rate: float, seconds: float, at: dict[str, float], hook=None) -> float:
        """Create profiles at ``rate``/s from 4 threads; ``at``: customer id -> 2xx time. The
        achieved rate."""
        start = time.monotonic()
        lock = threading.Lock()
        sent = [0]

        def client() -> None:
            http = self.app.test_client()
            while (elapsed := time.monotonic() - start) < seconds:
                with lock:
                    if sent[0] > elapsed * rate:
                        n = 0
                    else:
                        sent[0] += 1
                        self.n += 1
                        n = self.n
                if not n:
                    time.sleep(0.001)
                    continue
                resp = http.post("/v1/profiles", json={"email": f"c{n}@example.com"},
                                 headers=self.headers)  # fmt: skip
                assert resp.status_code == 201, resp.json
                at[resp.json["id"]] = time.time()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        while (elapsed := time.monotonic() - start) < seconds:
            if hook:
                hook(elapsed)
            time.sleep(0.05)
        for t in threads:
            t.join()
        return len(at) / (time.monotonic() - start)

    def drain(self, at: dict[str, float], limit: float) -> dict[str, list[float]]:
        """Wait for every customer in ``at`` to be delivered: customer -> arrival times."""
        deadline = time.time() + limit
        while True:
            got: dict[str, list[float]] = {}
            for d in self.receiver.delivered():
                got.setdefault(d["body"]["data"]["customer_id"], []).append(d["at"])
            if set(at) <= set(got) or time.time() > deadline:
                return got
            time.sleep(0.2)


def row(name: str, rate: float, at: dict[str, float], got: dict[str, list[float]]) -> list[str]:
    lags = sorted(min(got[c]) - t for c, t in at.items() if c in got)
    lost = sum(1 for c in at if c not in got)
    dups = sum(len(got[c]) - 1 for c in at if c in got)
    p50 = statistics.median(lags) * 1000 if lags else float("nan")
    p99 = lags[int(len(lags) * 0.99) - 1] * 1000 if lags else float("nan")
    return [name, f"{rate:.0f}", str(len(at)), f"{p50:.0f}", f"{p99:.0f}", str(lost), str(dups)]


def run(args: argparse.Namespace, b: Bench) -> list[list[str]]:
    rows = []
    for n in (1, 2):
        procs = [b.worker() for _ in range(n)]
        time.sleep(2.0)
        b.receiver.requests.clear()
        at: dict[str, float] = {}
        rate = b.load(args.rate, args.seconds, at)
        rows.append(row(f"{n} worker{'s' * (n > 1)}", rate, at, b.drain(at, args.drain)))
        for p in procs:
            p.terminate()
            p.wait(timeout=20)
    # kill -9 mid-load, then start it again
    procs = [b.worker("bench-w")]
    time.sleep(2.0)
    b.receiver.requests.clear()
    at = {}

    def kill(elapsed: float) -> None:
        if elapsed > args.seconds / 2 and procs[0].poll() is None:
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            procs.append(b.worker("bench-w"))  # the same id: resumes its leases

    rate = b.load(args.rate, args.seconds, at, kill)
    rows.append(row("kill -9 mid-load, restart", rate, at, b.drain(at, args.drain)))
    # receiver down for --down s in the middle of the load
    b.receiver.requests.clear()
    at = {}
    port = b.receiver.port
    state = {"down": False, "up": False}

    def outage(elapsed: float) -> None:
        if not state["down"] and elapsed > 1.0:
            state["down"] = True
            b.receiver.stop()
        elif state["down"] and not state["up"] and elapsed > 1.0 + args.down:
            state["up"] = True
            fresh = Receiver(port)  # the same record: deliveries before the outage count
            fresh.requests, fresh.lock = b.receiver.requests, b.receiver.lock
            b.receiver = fresh

    rate = b.load(args.rate, max(args.seconds, args.down + 2.0), at, outage)
    rows.append(row(f"receiver down {args.down:.0f} s", rate, at, b.drain(at, args.drain)))
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=20)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    tmp = Path(tempfile.mkdtemp(prefix="rapport-connect-"))
    server = RedisServer(tmp / "redis").start()
    try:
        rows = run(args, Bench(server.url, tmp))
    finally:
        server.stop()
    print(md_table(["run", "changes/s", "changes", "lag p50 ms", "lag p99 ms", "lost",
                    "duplicates"], rows))  # fmt: skip
    print("\nreproduce: python3 dev.py bench-connect " + shlex.join(given))
    return 0


if __name__ == "__main__":
    sys.exit(main())
