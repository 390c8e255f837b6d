"""Change events delivered as signed webhooks (service/webhooks/worker.py) to a receiver on
127.0.0.1: from the API's write to the receiver, in order per customer, retried, dead-lettered,
redelivered, disabled on 410, shared by two workers, after a worker killed with SIGKILL, at once
after a target's outage, and counted by the worker's gauges."""

from __future__ import annotations

import json
import signal
import time

import pytest
from prometheus_client import REGISTRY

from profiles.keys import Keys
from service.cli_worker import start_worker_process
from service.config import Config
from service.webhooks import signing
from service.webhooks.queues import DeliveryQueues
from service.webhooks.subscriptions import SubscriptionStore
from service.webhooks.worker import LEASE_GROUPS, Worker
from tests.conftest import stop_process_group, wait_until
from tests.webhook_receiver import Receiver

KEYS = Keys()
CONFIG = Config(webhook_allowed_hosts="127.0.0.1", webhook_timeout=2.0, webhook_retry_seconds=3)


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.stop()


@pytest.fixture
def store(redis_client):
    return SubscriptionStore(redis_client, KEYS)


def worker(redis_client, name="w1", **kw) -> Worker:
    kw.setdefault("backoff_base_s", 0.05)
    w = Worker(redis_client, KEYS, CONFIG, worker_id=name, **kw)
    w.listen()  # wake-ups from the writes, as `rapport worker` runs it
    return w


def run_until(workers, done, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for w in workers:
            w.step()
            w.wait(0.02)
        if done():
            return
    raise AssertionError("not delivered in time")


def create(api, email, **more):
    resp = api.post("/v1/profiles", json={"email": email, **more})
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def test_a_change_reaches_the_receiver_signed_and_masked(api, redis_client, receiver, store):
    masked = store.create(receiver.url, ["profile.created"])
    clear = store.create(receiver.url, ["profile.created"], include_pii=True)
    cid = create(api, "ada@example.com", first_name="Ada")
    w = worker(redis_client)
    run_until([w], lambda: len(receiver.delivered()) == 2)
    by_secret = {}
    for got in receiver.delivered():
        for sub in (masked, clear):
            try:
                signing.verify(sub.secret, got["headers"], got["raw"])
            except signing.SignatureError:
                continue
            by_secret[sub.id] = got["body"]
    assert set(by_secret) == {masked.id, clear.id}  # each signed with its own secret
    assert by_secret[clear.id]["type"] == "profile.created"
    assert by_secret[clear.id]["data"]["profile"]["email"] == "ada@example.com"
    assert by_secret[clear.id]["data"]["customer_id"] == cid
    assert by_secret[clear.id]["data"]["version"] == 1
    assert "ada@example.com" not in json.dumps(by_secret[masked.id])
    assert by_secret[masked.id]["data"]["profile"]["id"] == cid  # ids are never masked
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1  # the same event: one webhook id for both subscriptions
    w.close()


def test_failures_retry_in_order_per_customer_then_dead_letter_and_redeliver(
    api, redis_client, receiver, store
):
    sub = store.create(receiver.url, ["profile.created", "profile.updated"])
    receiver.status = 503
    cid = create(api, "bo@example.com")
    for name in ("B", "Bo", "Bob"):
        assert api.patch(f"/v1/profiles/{cid}", json={"first_name": name}).status_code == 200
    other = create(api, "cy@example.com")
    w = worker(redis_client)
    run_until([w], lambda: len(receiver.requests) >= 6)
    queues = DeliveryQueues(redis_client, KEYS)
    assert queues.pending(sub.id)["customers_waiting"] == 2
    receiver.status = 204
    run_until([w], lambda: len(receiver.delivered()) == 5)
    got = [d["body"] for d in receiver.delivered() if d["body"]["data"]["customer_id"] == cid]
    assert [b["data"]["version"] for b in got] == [1, 2, 3, 4]  # in order, after the retries
    assert [b["data"]["profile"].get("first_name") for b in got] == [None, "B", "Bo", "Bob"]
    assert any(d["body"]["data"]["customer_id"] == other for d in receiver.delivered())
    assert queues.pending(sub.id)["customers_waiting"] == 0
    statuses = {e["status"] for e in queues.log(sub.id)}
    assert statuses == {"delivered", "failed"}

    # retries exhausted (RAPPORT_WEBHOOK_RETRY_SECONDS=3 here): a dead letter, redelivered
    receiver.status = 500
    assert api.patch(f"/v1/profiles/{cid}", json={"last_name": "Dead"}).status_code == 200
    run_until([w], lambda: queues.pending(sub.id)["dead_letters"] == 1, timeout=20)
    (dead,) = queues.dead_letters(sub.id)
    assert dead["type"] == "profile.updated" and dead["attempts"] >= 2
    assert dead["last_error"] == "HTTP 500"
    receiver.status = 204
    assert queues.redeliver(sub.id, None) == 1
    run_until([w], lambda: receiver.delivered()[-1]["id"] == dead["webhook_id"])
    assert receiver.delivered()[-1]["body"]["data"]["profile"]["last_name"] == "Dead"
    w.close()


def test_a_410_disables_the_subscription(api, redis_client, receiver, store):
    sub = store.create(receiver.url, ["*"])
    receiver.status = 410
    create(api, "gone@example.com")
    w = worker(redis_client)
    run_until([w], lambda: store.get(sub.id).status == "disabled")
    assert "410" in (store.get(sub.id).disabled_reason or "")
    sent = len(receiver.requests)
    create(api, "after@example.com")
    for _ in range(20):
        w.step()
        w.wait(0.01)
    assert len(receiver.requests) == sent  # nothing more goes to a disabled subscription
    w.close()


def test_a_paused_subscription_keeps_its_events_until_it_is_active(
    api, redis_client, receiver, store
):
    sub = store.create(receiver.url, ["profile.created"], status="paused")
    cid = create(api, "wait@example.com")
    w = worker(redis_client)
    for _ in range(20):
        w.step()
        w.wait(0.01)
    assert receiver.requests == []
    store.update(sub.id, status="active")
    w._subs_at = 0.0
    run_until([w], lambda: len(receiver.delivered()) == 1)
    assert receiver.delivered()[0]["body"]["data"]["customer_id"] == cid
    w.close()


def test_an_erasure_drops_the_customers_waiting_events(api, redis_client, receiver, store):
    sub = store.create(receiver.url, ["*"])
    receiver.status = 503
    cid = create(api, "erase.me@example.com")
    w = worker(redis_client, backoff_base_s=30.0)  # the first failure waits
    run_until([w], lambda: len(receiver.requests) >= 1)
    assert api.delete(f"/v1/profiles/{cid}").status_code == 200
    queues = DeliveryQueues(redis_client, KEYS)
    assert queues.head(sub.id, cid)["entry"]["type"] == "profile.created"  # waiting, with PII
    run_until([w], lambda: queues.head(sub.id, cid)["entry"]["type"] == "profile.erased")
    head = queues.head(sub.id, cid)  # the created event went with the erasure: only this waits
    assert redis_client.llen(KEYS.subscription_queue(sub.id, cid)) == 1
    assert "erase.me" not in json.dumps(head)
    w.close()


def test_two_workers_split_the_lease_groups(redis_client):
    a, b = worker(redis_client, "a"), worker(redis_client, "b")
    a.step()
    b.step()
    a._last_beat = b._last_beat = 0.0
    a.step()
    b.step()
    assert a.groups and b.groups and not a.groups & b.groups
    assert len(a.groups | b.groups) == LEASE_GROUPS
    b.close()
    a._last_beat = 0.0
    a.step()
    assert len(a.groups) == LEASE_GROUPS  # b's groups are taken over
    a.close()


def test_a_killed_worker_loses_nothing(api, redis_client, redis_url, receiver, store, tmp_path):
    store.create(receiver.url, ["profile.created"])
    env = {"RAPPORT_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "RAPPORT_DATA_DIR": str(tmp_path)}
    env["RAPPORT_WORKER_METRICS_PORT"] = "0"
    proc = start_worker_process(redis_url, **env)
    try:
        cids = [create(api, f"k{i}@example.com") for i in range(40)]
        wait_until(lambda: len(receiver.delivered()) >= 5, timeout=20)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        cids += [create(api, f"after{i}@example.com") for i in range(20)]
        # what the 15 s lease expiry does for a killed worker: its leases and heartbeat go
        redis_client.delete(*(KEYS.outbox_lease(g) for g in range(LEASE_GROUPS)))
        redis_client.delete(KEYS.outbox_workers())
        w = worker(redis_client, "second")
        run_until([w], lambda: {d["body"]["data"]["customer_id"] for d in receiver.delivered()}
                  >= set(cids), timeout=30)  # fmt: skip
        w.close()
    finally:
        if proc.poll() is None:
            stop_process_group(proc)
    ids = [d["id"] for d in receiver.delivered()]
    assert len(set(ids)) == 60  # every change at least once (duplicates allowed)


def test_a_worker_started_again_with_its_id_resumes_its_leases_at_once(redis_client):
    first = worker(redis_client, "same")
    first.step()
    assert len(first.groups) == LEASE_GROUPS
    first._pubsub.close()  # killed: its leases stay until they expire
    again, other = worker(redis_client, "same"), worker(redis_client, "other")
    other.step()
    assert other.groups == set()  # still held by the dead "same"
    again.step()
    # its own: taken back without waiting for the 15 s expiry (its fair share of 2 live workers)
    assert len(again.groups) == LEASE_GROUPS // 2
    again.close()
    other.close()


def _gauge(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_gauges_count_every_held_shard_and_every_queued_event(
    api, redis_client, receiver, store
):
    sub = store.create(receiver.url, ["profile.created", "profile.updated"])
    cids = [create(api, f"gauge{i}@example.com") for i in range(6)]  # several shards (slots)
    w = worker(redis_client)
    w._beat(time.time())  # every lease group held, nothing read yet
    w.gauges.update(w._held_shards(), w._existing_shards(time.time()), [sub.id])
    assert _gauge("rapport_outbox_pending") == 6  # on the Cluster: 16384 shards held
    receiver.status = 503
    assert api.patch(f"/v1/profiles/{cids[0]}", json={"first_name": "Q"}).status_code == 200
    run_until([w], lambda: len(receiver.requests) >= 6)
    deadline = time.time() + 10  # the worker deletes handled entries within a few rounds
    while True:
        w.gauges._at = float("-inf")
        w.step()
        if _gauge("rapport_outbox_pending") == 0 or time.time() > deadline:
            break
    assert _gauge("rapport_outbox_pending") == 0  # handled: queued for the subscription
    assert _gauge("rapport_webhook_queued", subscription=sub.id) == 7
    receiver.status = 204
    run_until([w], lambda: len(receiver.delivered()) == 7)
    w.gauges._at = float("-inf")
    w.step()
    assert _gauge("rapport_webhook_queued", subscription=sub.id) == 0
    w.close()


def test_the_backoff_never_exceeds_its_configured_maximum(redis_client):
    config = Config(webhook_allowed_hosts="127.0.0.1", webhook_max_backoff_seconds=2.0)
    w = Worker(redis_client, KEYS, config, worker_id="cap", backoff_base_s=1.0)
    now = time.time()
    waits = [w._next_at({"attempts": n}) - now for n in (1, 5, 12, 400) for _ in range(50)]
    assert 0.4 < min(waits) and max(waits) <= 2.0 + 1.0  # (the clock moves during the loop)
    assert max(waits[150:]) <= 2.0 + 1.0 and min(waits[150:]) >= 1.9
    w.close()


def test_a_target_that_answers_again_gets_its_waiting_events_at_once(
    api, redis_client, receiver, store
):
    sub = store.create(receiver.url, ["profile.created", "profile.updated"])
    receiver.status = 503
    first = create(api, "down1@example.com")
    assert api.patch(f"/v1/profiles/{first}", json={"first_name": "A"}).status_code == 200
    others = [create(api, f"down{i}@example.com") for i in (2, 3, 4)]
    w = worker(redis_client, backoff_base_s=60.0)  # without the recovery: a minute's wait
    run_until([w], lambda: len(receiver.requests) >= 4)
    for _ in range(10):  # down: one probe per round at most, and none is due yet
        w.step()
        w.wait(0.01)
    assert len(receiver.requests) == 4
    receiver.status = 204
    fresh = create(api, "up@example.com")  # its 2xx shows the target is back
    run_until([w], lambda: len(receiver.delivered()) == 6, timeout=5)
    got = [d["body"]["data"] for d in receiver.delivered()]
    assert {g["customer_id"] for g in got} == {first, fresh, *others}
    assert [g["version"] for g in got if g["customer_id"] == first] == [1, 2]  # in order
    assert DeliveryQueues(redis_client, KEYS).pending(sub.id)["customers_waiting"] == 0
    w.close()
