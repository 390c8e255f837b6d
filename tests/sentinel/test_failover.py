"""The service on Redis Sentinel: a ``SENTINEL FAILOVER`` while purchases are written.

One master, one replica, one sentinel on loopback free ports (tests/cluster/harness.py). The
app is built from ``redis+sentinel://127.0.0.1:P/mymaster`` and records purchases through
its HTTP API (``POST /v1/profiles/<id>/purchases``, idempotent by order id) in a loop while
the sentinel fails the master over. The app is not restarted. The numbers (failed writes,
acknowledged writes lost, seconds until writes land on the new master) are printed with
``-s``; docs/scale.md has a table of them.

Two server configurations: Redis defaults, where the old master keeps accepting writes until
the client learns of the switch (those are lost: Sentinel replication is asynchronous), and
``min-replicas-to-write 1`` on the master, which refuses writes the moment its replica is
promoted away from it, so the client retries them on the new master and nothing is lost but,
at most, the one write in flight at that instant.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import pytest
import redis

from profiles.keys import Keys
from service import create_app
from tests.cluster.harness import LocalSentinel
from tests.conftest import ApiClient

WRITE_PAUSE = 0.002  # s between writes
RUN_AFTER_FAILOVER = 2.5  # s of writes after SENTINEL FAILOVER was issued, at least
RUN_AFTER_PROMOTION = 1.0  # s of writes after the sentinel names the new master, at least


@dataclass
class Write:
    order_id: str
    started: float
    ended: float
    status: int
    master_port: int | None  # where the app's pool believed the master was, after the write

    @property
    def acknowledged(self) -> bool:
        return self.status in (200, 201)


def purchase(order_id: str) -> dict:
    return {
        "order_id": order_id,
        "lines": [{"product_id": "P1", "quantity": 1, "unit_price": "9.99"}],
        "currency": "EUR",
        "purchased_at": "2026-01-02T10:00:00Z",
        "channel": "web",
    }


@pytest.fixture
def sentinel_setup(request, tmp_path):
    setup = LocalSentinel(tmp_path / "sentinel", **getattr(request, "param", {})).start()
    yield setup
    setup.stop()


def _write_through_failover(api: ApiClient, url: str, setup: LocalSentinel, pool):
    writes: list[Write] = []
    failover: dict[str, float] = {}

    def fail_over():
        failover["issued"] = time.monotonic()
        failover["promoted_after"] = setup.failover()
        failover["promoted"] = time.monotonic()

    def done() -> bool:
        now = time.monotonic()
        return (
            "promoted" in failover
            and now - failover["issued"] >= RUN_AFTER_FAILOVER
            and now - failover["promoted"] >= RUN_AFTER_PROMOTION
        )

    thread = threading.Thread(target=fail_over)
    started = time.monotonic()
    i = 0
    while not done():
        if not thread.is_alive() and "issued" not in failover and time.monotonic() - started > 0.3:
            thread.start()
        order_id = f"o{i:05d}"
        i += 1
        begin = time.monotonic()
        status = api.post(url, json=purchase(order_id)).status_code
        address = pool.master_address
        writes.append(Write(order_id, begin, time.monotonic(), status, address and address[1]))
        time.sleep(WRITE_PAUSE)
    thread.join()
    return writes, failover


# The purchases answering 404 after the switch (about 1 run in 5, marked as a known failure
# until 2026-11-29) were the harness's: the replica was promoted in its first second after
# the initial sync, before it had received any write (tests/cluster/harness.py,
# LocalSentinel._replica_synced), so the new master held no profile.
@pytest.mark.parametrize(
    "sentinel_setup",
    [
        pytest.param({}, id="default"),
        pytest.param({"min_replicas_to_write": 1}, id="min-replicas-to-write"),
    ],
    indirect=True,
)
def test_failover_while_recording_purchases(sentinel_setup, tmp_path, request):
    setup = sentinel_setup
    app = create_app({"redis_url": setup.url, "data_dir": tmp_path / "var", "testing": True})
    _, token = app.extensions["rapport"].api_keys.create("ops", ["admin"])
    api = ApiClient(app.test_client(), token)
    created = api.post("/v1/profiles", json={"email": "ada@example.com"})
    assert created.status_code == 201
    customer_id = created.json["id"]
    url = f"/v1/profiles/{customer_id}/purchases"
    old_master = setup.master_port()

    pool = app.extensions["rapport"].redis.connection_pool
    writes, failover = _write_through_failover(api, url, setup, pool)
    issued = failover["issued"]
    new_master = setup.master_port()
    assert new_master != old_master and new_master == setup.replica.port
    assert {w.status for w in writes} <= {201, 503}, "a write failed other than with 503"

    # What the new master holds is what survived: read it directly, not through the app.
    direct = redis.Redis("127.0.0.1", new_master, decode_responses=True)
    orders = Keys("rp").orders(customer_id)
    stored = set(direct.hkeys(orders))
    failed = [w for w in writes if not w.acknowledged]
    lost = [w for w in writes if w.acknowledged and w.order_id not in stored]
    on_new = [w for w in writes if w.acknowledged and w.master_port == new_master]

    # The app found the new master by itself, within seconds, with no restart ...
    assert len(on_new) >= 10
    recovery = min(w.ended for w in on_new) - issued
    assert recovery < 5.0
    # ... and from then on every acknowledged write is kept. (A write already in flight when
    # the first write landed on the new master may still have gone to the demoted one: with
    # asynchronous replication that is the loss window reported below.)
    switched = min(w.ended for w in on_new)
    assert all(w.order_id in stored for w in writes if w.acknowledged and w.started > switched)
    lost_window = max((w.ended for w in lost), default=issued) - issued
    assert lost_window < 3.0, "writes went on landing on the demoted master"

    # Failed writes are retried by the client with the same order ids, and then succeed
    # (201, or 200 when the first attempt had landed after all).
    for w in failed:
        assert api.post(url, json=purchase(w.order_id)).status_code in (200, 201)
    # Re-sending an order that is kept is a replay: 200, nothing recorded twice. (Kept, not
    # merely "on_new": master_port is read after the write, so a write the demoted master
    # acknowledged just before the pool switched counts as on_new and is among the lost.)
    for w in [w for w in on_new if w.order_id in stored][:20]:
        assert api.post(url, json=purchase(w.order_id)).status_code == 200
    assert direct.hlen(orders) == len(stored | {w.order_id for w in failed})
    listed = api.get(f"/v1/profiles/{customer_id}").json["traits"]["order_count"]
    assert listed == direct.hlen(orders)

    config = request.node.callspec.id
    if config == "min-replicas-to-write":
        # Only a write in flight to the replica when it was promoted can be lost (at most one
        # here, from one client): asynchronous replication; WAIT would close even that.
        assert len(lost) <= 1, [(w.order_id, round(w.ended - issued, 3)) for w in lost]
    numbers = {
        "config": config,
        "writes": len(writes),
        "failed_writes": len(failed),
        "lost_acknowledged_writes": len(lost),
        "lost_until_s": round(lost_window, 3) if lost else 0.0,
        "promoted_after_s": round(failover["promoted_after"], 3),
        "writes_on_new_master_after_s": round(recovery, 3),
        "slowest_write_s": round(max(w.ended - w.started for w in writes), 3),
    }
    print("\nsentinel failover:", json.dumps(numbers))
    direct.close()
