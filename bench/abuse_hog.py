"""The fairness scenario of issue 18 for ``bench/abuse.py``: one API key with many connections
sends valid profile reads as fast as it can, in processes of its own (niced like the flood),
while the good clients are measured. What the per-key concurrency bound
(``RAPPORT_KEY_CONCURRENCY``) and the per-key rate limit leave the others."""

from __future__ import annotations

import http.client
import multiprocessing as mp
import os
import threading
import time
from collections import Counter
from typing import Any


def _hog_process(port: int, token: str, ids: list[str], threads: int, seconds: float, queue,
                 nice: int) -> None:  # fmt: skip
    if nice:
        os.nice(nice)
    statuses: Counter = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def run(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = offset
        mine: Counter = Counter()
        while time.monotonic() < stop_at:
            n += 1
            try:
                conn.request("GET", f"/v1/profiles/{ids[n % len(ids)]}",
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                resp = conn.getresponse()
                resp.read()
                mine[resp.status] += 1
            except (OSError, http.client.HTTPException) as exc:
                mine[type(exc).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.close()
        with lock:
            statuses.update(mine)

    pool = [threading.Thread(target=run, args=(i * 7919,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    queue.put({str(k): v for k, v in statuses.items()})


def one_key_hog(port: int, token: str, ids: list[str], connections: int, seconds: float,
                nice: int, processes: int = 2) -> dict[str, Any]:  # fmt: skip
    """``connections`` keep-alive connections of one key over ``processes`` processes for
    ``seconds``; the answers it got and its rate."""
    queue: mp.Queue = mp.Queue()
    per = max(1, connections // processes)
    procs = [
        mp.Process(target=_hog_process, args=(port, token, ids, per, seconds, queue, nice))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    statuses: Counter = Counter()
    for _ in procs:
        statuses.update(queue.get())
    for proc in procs:
        proc.join()
    total = sum(statuses.values())
    return {
        "connections": per * processes,
        "requests": total,
        "rps": round(total / seconds, 1),
        "statuses": dict(sorted(statuses.items())),
    }
