#!/usr/bin/env python3
"""Webhook delivery benchmark (issue 14): lag from the API's 2xx to a receiver on 127.0.0.1.

    python3 dev.py bench-connect                      # 60 s per run, receiver down 30 s
    .venv/bin/python bench/connect.py --seconds 10 --down 10

Starts its own ``redis-server``, one subscription to ``profile.created``, a receiver (an HTTP
server in a process of its own, ``bench/connect_receiver.py``) and ``rapport worker``
processes. Creates profiles through the app (Flask test client, in process, ``--threads``
threads) paced at ``--rate`` changes/s for ``--seconds``; the lag of a change is the receiver's
arrival time minus the API's 2xx. Runs (``--runs``): 1 worker, 2 workers, a worker killed with
SIGKILL mid-load then started again, the receiver down for ``--down`` s then up (a new process
on the same port). Every run counts deliveries by ``webhook-id``: lost (not delivered within
``--drain`` s of the load's end) and duplicates, and the CPU per change of each process: the
load generator with the API in it, the worker(s), the receiver and Redis. ``--worker-src DIR``
runs the workers from another checkout (before/after in one run). Prints a table and the
command; writes nothing else.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.connect_receiver import RemoteReceiver, cpu_seconds  # noqa: E402
from bench.report import md_table  # noqa: E402
from bench.serve import PREFIX  # noqa: E402
from profiles.keys import Keys  # noqa: E402
from service.redis_server import RedisServer  # noqa: E402

RUNS = ("1", "2", "kill", "outage")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=500.0, help="changes per second")
    p.add_argument("--seconds", type=float, default=60.0, help="load per run")
    p.add_argument("--down", type=float, default=30.0, help="receiver outage (s)")
    p.add_argument("--drain", type=float, default=180.0, help="max wait for the last delivery")
    p.add_argument("--threads", type=int, default=4, help="load generator threads")
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated, of " + ",".join(RUNS))
    p.add_argument("--worker-src", type=Path, help="run the workers from this checkout")
    args = p.parse_args(argv)
    args.runs = [r for r in args.runs.split(",") if r]
    if not set(args.runs) <= set(RUNS):
        p.error(f"--runs: one or more of {','.join(RUNS)}")
    return args


class Bench:
    def __init__(self, server: RedisServer, tmp: Path, args: argparse.Namespace):
        from service import create_app
        from service.auth import ApiKeyStore
        from service.webhooks.subscriptions import SubscriptionStore

        self.server, self.url, self.tmp, self.args = server, server.url, tmp, args
        self.client = redis.Redis.from_url(server.url, decode_responses=True)
        _, token = ApiKeyStore(self.client, Keys(PREFIX)).create("bench", "admin")
        self.headers = {"Authorization": f"Bearer {token}"}
        # key_concurrency off: the generator's threads share one key
        config = {"redis_url": server.url, "data_dir": tmp / "var", "key_prefix": PREFIX,
                  "log_level": "WARNING", "rate_limit": "off", "key_concurrency": 0}  # fmt: skip
        self.app = create_app(config)
        self.receiver = RemoteReceiver()
        SubscriptionStore(self.client, Keys(PREFIX)).create(self.receiver.url, ["profile.created"])
        self.n = 0
        self.workers: list[Any] = []

    def worker(self, worker_id: str | None = None) -> Any:
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(REDIS_URL=self.url, RAPPORT_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
                   RAPPORT_KEY_PREFIX=PREFIX, RAPPORT_DATA_DIR=str(self.tmp / "var"),
                   RAPPORT_WORKER_METRICS_PORT="0", RAPPORT_LOG_LEVEL="WARNING")  # fmt: skip
        args = [sys.executable, "-c", "from service.cli import main; main()", "worker"]
        args += ["--id", worker_id] if worker_id else []
        proc = subprocess.Popen(args, env=env, cwd=self.args.worker_src or ROOT)
        self.workers.append(proc)
        return proc

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: this process (generator and API), the workers (live ones),
        the receiver, Redis."""
        assert self.server.process is not None
        live = [p for p in self.workers if p.poll() is None]
        return {"api": time.process_time(), "worker": sum(cpu_seconds(p.pid) for p in live),
                "receiver": self.receiver.cpu_now(),
                "redis": cpu_seconds(self.server.process.pid)}  # fmt: skip

    def load(self, seconds: float, at: dict[str, float], hook=None) -> float:
        """Create profiles at ``--rate``/s from ``--threads`` threads; ``at``: customer id ->
        2xx time. The achieved rate."""
        start, rate = time.monotonic(), self.args.rate
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

        threads = [threading.Thread(target=client, daemon=True) for _ in range(self.args.threads)]
        for t in threads:
            t.start()
        while (elapsed := time.monotonic() - start) < seconds:
            if hook:
                hook(elapsed)
            time.sleep(0.05)
        for t in threads:
            t.join()
        return len(at) / (time.monotonic() - start)

    def drain(self, at: dict[str, float]) -> dict[str, list[float]]:
        """Wait up to ``--drain`` s for every customer in ``at``: customer -> arrival times."""
        deadline = time.time() + self.args.drain
        while True:
            got: dict[str, list[float]] = {}
            for customer, arrived, _ in self.receiver.snapshot():
                got.setdefault(customer, []).append(arrived)
            if set(at) <= set(got) or time.time() > deadline:
                return got
            time.sleep(0.2)

    def measure(self, name: str, seconds: float, hook=None) -> list[str]:
        """One run: load, drain, and its row (the CPU read before the workers stop)."""
        self.receiver.clear()
        at: dict[str, float] = {}
        before = self.cpu()
        rate = self.load(seconds, at, hook)
        got = self.drain(at)
        after = self.cpu()
        cpu = [(after[k] - before[k]) * 1000 / max(1, len(at)) for k in after]
        return row(name, rate, at, got) + [" / ".join(f"{c:.2f}" for c in cpu)]

    def stop_workers(self) -> None:
        for p in self.workers:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=20)
        self.workers.clear()


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
        if str(n) not in args.runs:
            continue
        for _ in range(n):
            b.worker()
        time.sleep(2.0)
        rows.append(b.measure(f"{n} worker{'s' * (n > 1)}", args.seconds))
        b.stop_workers()
    if "kill" in args.runs:
        rows.append(kill_run(args, b))
    if "outage" in args.runs:
        rows.append(outage_run(args, b))
    b.stop_workers()
    return rows


def kill_run(args: argparse.Namespace, b: Bench) -> list[str]:
    """kill -9 the worker mid-load, then start it again (the same id: it resumes its leases)."""
    procs = [b.worker("bench-w")]
    time.sleep(2.0)

    def kill(elapsed: float) -> None:
        if elapsed > args.seconds / 2 and procs[0].poll() is None:
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            procs.append(b.worker("bench-w"))

    result = b.measure("kill -9 mid-load, restart", args.seconds, kill)
    b.stop_workers()
    return result


def outage_run(args: argparse.Namespace, b: Bench) -> list[str]:
    """The receiver down for ``--down`` s from the load's first second, then up again."""
    b.worker()
    time.sleep(2.0)
    state = {"down": False, "up": False}

    def outage(elapsed: float) -> None:
        if not state["down"] and elapsed > 1.0:
            state["down"] = True
            b.receiver.stop()
        elif state["down"] and not state["up"] and elapsed > 1.0 + args.down:
            state["up"] = True
            b.receiver.start()  # the same port; deliveries before the outage still count

    return b.measure(f"receiver down {args.down:.0f} s", max(args.seconds, args.down + 2.0), outage)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    tmp = Path(tempfile.mkdtemp(prefix="rapport-connect-"))
    server = RedisServer(tmp / "redis").start()
    try:
        bench = Bench(server, tmp, args)
        rows = run(args, bench)
        bench.receiver.stop()
    finally:
        server.stop()
    print(md_table(["run", "changes/s", "changes", "lag p50 ms", "lag p99 ms", "lost",
                    "duplicates", "CPU ms/change: API+load / workers / receiver / Redis"],
                   rows))  # fmt: skip
    print("\nreproduce: python3 dev.py bench-connect " + shlex.join(given))
    return 0


if __name__ == "__main__":
    sys.exit(main())
