"""Profile store rates against a private local Redis (no HTTP): create, get, patch, look-up,
contended patch (20 threads on one profile, none lost) and merge.

    .venv/bin/python bench/profiles_store.py [--n 2000]

Results are recorded in docs/profiles.md.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import redis

from profiles.activity import ActivityStore
from profiles.keys import Keys
from profiles.store import ProfileStore
from service.redis_server import RedisServer, redis_server_binary


def rate(label: str, count: int, started: float) -> None:
    print(f"{label}: {count / (time.perf_counter() - started):,.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    server = RedisServer(Path(tempfile.mkdtemp()), binary=redis_server_binary("path"))
    server.start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        keys = Keys("rp")
        store = ProfileStore(client, keys, activity=ActivityStore(client, keys))
        started = time.perf_counter()
        ids = [
            store.create({"email": f"u{i}@example.com", "phone": f"+4366412{i:05d}"}).id
            for i in range(n)
        ]
        rate("create", n, started)
        started = time.perf_counter()
        for cid in ids:
            store.get(cid)
        rate("get (with traits)", n, started)
        started = time.perf_counter()
        for cid in ids:
            store.patch(cid, {"preferences": {"custom": {"k": 1}}})
        rate("patch", n, started)
        started = time.perf_counter()
        for i in range(n):
            store.lookup("email", f"u{i}@example.com")
        rate("look-up by email", n, started)

        def writer(j: int) -> None:
            for k in range(50):
                store.patch(ids[0], {"preferences": {"custom": {f"t{j}": k}}})

        threads = [threading.Thread(target=writer, args=(j,)) for j in range(20)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate("contended patch (20 threads, one profile)", 1000, started)
        print(f"  version {store.get(ids[0]).version} (expected 1002: none lost)")
        started = time.perf_counter()
        pairs = min(100, n // 2)
        for i in range(0, 2 * pairs, 2):
            store.merges.merge(ids[i + 1], ids[i], actor="bench")
        rate("merge", pairs, started)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
