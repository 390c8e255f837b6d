"""Crash and fault tests on real processes (gunicorn + redis-server with appendfsync always).

Short variants of ``tests/faults/scenarios.py``; ``bench/faults.py`` runs longer ones. The
figures each test measured are printed (``pytest -s``) and summarised in docs/reliability.md.
"""

from __future__ import annotations

import pytest
import requests

from recommend.errors import ArtifactError
from recommend.model.registry import ModelRegistry
from tests.conftest import wait_until
from tests.faults import scenarios
from tests.faults.corrupt import CORRUPTIONS, make_corrupt
from tests.recsys import trained

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """One Redis + gunicorn for the module (starting one takes seconds on a loaded machine);
    each scenario uses its own order/message ids, and the model test runs last."""
    with scenarios.rig(tmp_path_factory.mktemp("faults")) as r:
        yield r


def _show(name: str, figures: dict) -> None:
    print(f"\n{name}: {scenarios.as_json(figures)}")


def _wait_every_worker_ranks_first(rig, product_id: str) -> None:
    """Until 20 popular-list answers in a row start with ``product_id``, each on a new
    connection (gunicorn keeps a connection on one worker), so they spread over the workers."""
    streak = 0

    def twenty_in_a_row() -> bool:
        nonlocal streak
        resp = requests.get(
            rig.url("/v1/recommendations/popular?limit=3"),
            headers={**rig.auth, "Connection": "close"},
            timeout=5,
        )
        items = resp.json().get("items", []) if resp.status_code == 200 else []
        first = items[0]["product_id"] if items else None
        streak = streak + 1 if first == product_id else 0
        return streak >= 20

    wait_until(twenty_in_a_row, 30, 0.05, what=f"every worker to rank {product_id} first")


def test_redis_kill9_loses_no_acknowledged_write(rig):
    f = scenarios.redis_crash(rig, threads=4, before=1.0, down=0.8, after=1.2)
    _show("redis_crash", f)
    assert f["acknowledged"] > 20 and f["failed"] > 0, f  # the crash hit the stream
    assert f["lost"] == 0, f
    assert f["failed_statuses"] == [503], f  # not 500, not a hang (status 0)
    assert f["failed_without_retry_after"] == 0, f
    assert f["max_latency_s"] < scenarios.REDIS_TIMEOUT * 2 + 1.0, f
    assert f["retries_ok"] == f["retried"], f  # same order/message ids: each succeeds
    assert f["missing_after_retry"] == 0 and f["duplicate_events_after_retry"] == 0, f
    assert f["order_counts_agree"], f  # no purchase counted twice


def test_redis_down_503_fast_reads_fall_back_and_recovers(rig):
    from recommend.catalog.products import Catalog
    from tests.recsys import products

    client = rig.client()
    Catalog(client, scenarios.KEYS).upsert_many(list(products().values()))
    client.zadd(scenarios.KEYS.popular_products(), {"P105": 3, "P003": 2})
    client.close()
    # the workers copy the popular list on their next poll (0.2 s): until every answer has it
    _wait_every_worker_ranks_first(rig, "P105")
    f = scenarios.redis_outage(rig, threads=4, before=1.0, down=5.0, after=1.5)
    _show("redis_outage", f)
    assert f["writes_while_down"] > 10, f
    assert f["writes_while_down_503"] == f["writes_while_down"], f
    assert f["writes_while_down_with_retry_after"] == f["writes_while_down"], f
    assert f["max_write_latency_while_down_s"] <= scenarios.REDIS_TIMEOUT + 0.5, f
    assert f["reads_while_down"] > 10, f
    assert f["reads_while_down_popularity"] == f["reads_while_down"], f
    assert f["errors_5xx_other_than_503"] == 0, f
    assert f["recovery_s"] is not None and f["recovery_s"] < 2.0, f
    assert f["failures_1s_after_restart"] == 0, f


def test_worker_kill9_fails_at_most_in_flight_requests(rig):
    f = scenarios.worker_kill(rig, threads=4, before=1.0, after=2.0)
    _show("worker_kill", f)
    assert f["replaced_in_s"] and f["workers_after"] == f["workers"], f
    assert f["failed"] <= f["max_in_flight"], f
    assert f["requests_1s_after_last_kill"] > 10, f
    assert f["statuses_1s_after_last_kill"] in ([200], [200, 201]), f


def test_corrupt_models_never_go_live_under_load(rig):
    f = scenarios.model_faults(rig, threads=3, settle=0.2)
    _show("model_faults", f)
    assert f["corrupt_artifacts"] >= 20
    assert f["refused"] == f["corrupt_artifacts"], f
    assert f["errors_5xx"] == 0 and f["non_200"] == 0, f
    assert f["served_by_other"] == 0 and f["served_by_v1"] == f["requests"], f


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_refused_by_the_loader(name, redis_client, tmp_path):
    registry = ModelRegistry(redis_client, scenarios.KEYS, tmp_path / "models")
    make_corrupt(name, registry, trained(), "bad")
    with pytest.raises(ArtifactError):
        registry.load("bad")
