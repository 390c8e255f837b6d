"""bench/connect.py's receiver in a process of its own (``tests/webhook_receiver.py`` there), so
its HTTP parsing does not share the load generator's interpreter lock; the parent collects each
2xx-answered delivery as (customer id, arrival time, webhook id)."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from typing import Any


def _serve(port: int, conn: Any) -> None:
    from tests.webhook_receiver import Receiver

    rec = Receiver(port)
    conn.send(rec.port)
    seen = 0
    while True:
        stop = conn.poll(0.05)
        if stop:
            rec.stop()
        with rec.lock:
            new, seen = rec.requests[seen:], len(rec.requests)
        rows = [(json.loads(r["body"])["data"]["customer_id"], r["at"], r["headers"]["webhook-id"])
                for r in new if 200 <= r["status"] < 300]  # fmt: skip
        if rows:
            conn.send(rows)
        if stop:
            conn.send(("cpu", cpu_seconds(os.getpid())))
            return


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RemoteReceiver:
    """Start (or restart on the same port) the receiver process; :attr:`delivered` grows."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, float, str]] = []
        self.port = 0
        self.cpu = 0.0  # CPU seconds of the receiver processes stopped so far
        self._lock = threading.Lock()
        self._proc: Any = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        ours, theirs = multiprocessing.Pipe()
        self._proc = multiprocessing.get_context("fork").Process(
            target=_serve, args=(self.port, theirs), daemon=True
        )
        self._proc.start()
        self.port = ours.recv()
        self._conn = ours
        self._reader = threading.Thread(target=self._collect, args=(ours,), daemon=True)
        self._reader.start()

    def _collect(self, conn: Any) -> None:
        while True:
            try:
                rows = conn.recv()
            except EOFError:
                return
            if isinstance(rows, tuple):
                self.cpu += rows[1]
                return
            with self._lock:
                self.delivered.extend(rows)

    def snapshot(self) -> list[tuple[str, float, str]]:
        with self._lock:
            return list(self.delivered)

    def clear(self) -> None:
        with self._lock:
            self.delivered.clear()

    def stop(self) -> None:
        """Stop listening (open connections are dropped: the receiver is down)."""
        self._conn.send("stop")
        self._reader.join(timeout=10)
        self._proc.join(timeout=10)

    def cpu_now(self) -> float:
        return self.cpu + (cpu_seconds(self._proc.pid) if self._proc.is_alive() else 0.0)
