"""Hot swap under gunicorn (2 workers): a stream of recommendation requests sees v1, then v2
after activation, with zero failed requests; a corrupt version is refused while v2 serves."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from profiles.keys import Keys
from recommend.model.artifact import ARRAYS
from recommend.model.job import save_result
from recommend.model.registry import ModelRegistry
from service.auth import ApiKeyStore
from tests.conftest import wait_until
from tests.recsys import products, trained

pytestmark = pytest.mark.e2e
KEYS = Keys("rp")


def _install(registry: ModelRegistry, version: str, result) -> None:
    registry.register(save_result(result, registry.model_dir, version))
    registry.activate(version)


def _wait_all_workers(url, auth, version, timeout=30.0) -> None:
    """Until 20 answers in a row come from ``version``: each on a new connection (gunicorn
    keeps a connection on one worker), so they spread over both workers."""
    streak = 0

    def twenty_in_a_row() -> bool:
        nonlocal streak
        resp = requests.get(url, headers={**auth, "Connection": "close"}, timeout=5)
        streak = streak + 1 if resp.json().get("model_version") == version else 0
        return streak >= 20

    wait_until(twenty_in_a_row, timeout, 0.05, what=f"every worker to serve {version}")


def test_hot_swap_with_zero_failed_requests(live_server, redis_client, tmp_path):
    from recommend.catalog.products import Catalog

    Catalog(redis_client, KEYS).upsert_many(list(products().values()))
    _, token = ApiKeyStore(redis_client, KEYS).create("e2e", ["recommend:read"])
    auth = {"Authorization": f"Bearer {token}"}
    # the waiter has its own key: three streams plus the waiter on one key could land four
    # requests on one worker, past the per-key concurrency bound (RAPPORT_THREADS - 1)
    _, waiter_token = ApiKeyStore(redis_client, KEYS).create("e2e-wait", ["recommend:read"])
    waiter = {"Authorization": f"Bearer {waiter_token}"}
    registry = ModelRegistry(redis_client, KEYS, tmp_path / "live" / "models")
    url = live_server.url("/v1/profiles/C001/recommendations?limit=10")

    _install(registry, "v1", trained())
    _wait_all_workers(url, waiter, "v1")

    results: list[tuple[int, str | None, float]] = []
    stop = threading.Event()

    def stream() -> None:
        s = requests.Session()
        while not stop.is_set():
            started = time.perf_counter()
            try:
                resp = s.get(url, headers=auth, timeout=10)
                version = resp.json().get("model_version") if resp.status_code == 200 else None
                results.append((resp.status_code, version, time.perf_counter() - started))
            except requests.RequestException as exc:
                results.append((0, repr(exc), time.perf_counter() - started))

    streams = [threading.Thread(target=stream) for _ in range(3)]
    for t in streams:
        t.start()
    try:
        wait_until(lambda: len(results) >= 20, what="the streams to get v1 answers")
        _install(registry, "v2", trained("other", seed=11))
        _wait_all_workers(url, waiter, "v2")
        # a damaged version pointed at directly: workers refuse it and keep v2
        bad = save_result(trained(), registry.model_dir, "v3")
        registry.register(bad)
        (bad.path / ARRAYS).write_bytes(b"garbage")
        redis_client.set(KEYS.model_active(), "v3")
        # each worker's poller refuses v3 once (and not again for a minute)...
        wait_until(
            lambda: live_server.logs().count("model v3 refused") >= 2,
            timeout=30,
            interval=0.1,
            what="both workers to refuse v3",
        )
        # ...and the streams keep being served v2 after that
        refused_at = len(results)
        wait_until(lambda: len(results) >= refused_at + 30, what="answers after the refusal")
    finally:
        stop.set()
        for t in streams:
            t.join()

    statuses = [r[0] for r in results]
    versions = [r[1] for r in results]
    assert len(results) > 50
    assert statuses.count(200) == len(results), [r for r in results if r[0] != 200][:3]
    assert set(versions) == {"v1", "v2"}
    assert versions[-1] == "v2"
    assert max(r[2] for r in results) < 2.0  # nobody waited for a model load
    assert "model v3 refused" in live_server.logs()
