"""Webhook subscriptions over HTTP (admin): create with the secret shown once, list and read
without it, change, pause, re-activate, rotate the secret, delete; the SSRF guard on the URL;
every bad input a problem+json naming the field; changes audited; the delivery log, dead
letters and redelivery through the delivery engine's queues."""

from __future__ import annotations

import json

import pytest

from core.outbox import EVENT_TYPES
from service.webhooks import signing
from service.webhooks.subscriptions import SubscriptionStore

PUBLIC = "https://93.184.216.34/hooks/rapport"  # an IP literal: no DNS lookup in tests


@pytest.fixture
def app_config(redis_url, tmp_path) -> dict:
    return {
        "redis_url": redis_url,
        "data_dir": tmp_path / "var",
        "testing": True,
        "webhook_allowed_hosts": "127.0.0.1",
    }


def _create(api, **fields):
    body = {"url": PUBLIC, "event_types": ["profile.updated"], **fields}
    resp = api.post("/v1/subscriptions", json=body)
    assert resp.status_code == 201, resp.json
    return resp.json


def _problem_fields(resp) -> set[str]:
    assert resp.mimetype == "application/problem+json", resp.data
    return {e["field"] for e in resp.json["errors"]}


def test_subscriptions_need_admin(api_as, client):
    assert client.get("/v1/subscriptions").status_code == 401
    reader = api_as("profiles:read", "profiles:write")
    assert reader.get("/v1/subscriptions").status_code == 403
    assert reader.post("/v1/subscriptions", json={"url": PUBLIC}).status_code == 403


def test_create_shows_the_secret_once_and_reads_never_do(api):
    created = _create(api, description="helpdesk contact cache", include_pii=True)
    assert created["id"].startswith("sub_")
    assert created["secret"].startswith("whsec_")
    assert created["url"] == PUBLIC and created["event_types"] == ["profile.updated"]
    assert (created["include_pii"], created["status"], created["disabled_reason"]) == (
        True,
        "active",
        None,
    )
    assert created["description"] == "helpdesk contact cache"
    listed = api.get("/v1/subscriptions").json["items"]
    assert [s["id"] for s in listed] == [created["id"]]
    one = api.get(f"/v1/subscriptions/{created['id']}")
    assert one.status_code == 200
    assert "secret" not in listed[0] and "secret" not in one.json
    assert "secret" not in json.dumps(listed) and created["secret"] not in one.get_data(True)
    assert one.json["pending"] is not None


def test_defaults_and_all_event_types(api):
    created = _create(api, event_types=["*"])
    assert (created["include_pii"], created["status"], created["description"]) == (
        False,
        "active",
        "",
    )
    both = _create(api, event_types=["profile.erased", "profile.erased", "*"])
    assert both["event_types"] == ["*"]
    every = _create(api, event_types=list(EVENT_TYPES))
    assert every["event_types"] == list(EVENT_TYPES)
    paused = _create(api, status="paused")
    assert paused["status"] == "paused"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"event_types": ["profile.updated"]}, "url"),
        ({"url": PUBLIC}, "event_types"),
        ({"url": PUBLIC, "event_types": []}, "event_types"),
        ({"url": PUBLIC, "event_types": ["profile.exploded"]}, "event_types.0"),
        ({"url": PUBLIC, "event_types": "profile.updated"}, "event_types"),
        ({"url": PUBLIC, "event_types": ["*"], "include_pii": "yes"}, "include_pii"),
        ({"url": PUBLIC, "event_types": ["*"], "status": "disabled"}, "status"),
        ({"url": PUBLIC, "event_types": ["*"], "description": "x" * 501}, "description"),
        ({"url": PUBLIC, "event_types": ["*"], "secret": "whsec_mine"}, "secret"),
        ({"url": 7, "event_types": ["*"]}, "url"),
        ({"url": "ftp://93.184.216.34/x", "event_types": ["*"]}, "url"),
        ({"url": "https://a:b@93.184.216.34/x", "event_types": ["*"]}, "url"),
        ({"url": "http://169.254.169.254/latest", "event_types": ["*"]}, "url"),
        ({"url": "http://10.0.0.8/hook", "event_types": ["*"]}, "url"),
        ({"url": "http://[::ffff:127.0.0.2]/hook", "event_types": ["*"]}, "url"),
        ({"url": "http://[::1]:8080/hook", "event_types": ["*"]}, "url"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field(api, body, field):
    resp = api.post("/v1/subscriptions", json=body)
    assert resp.status_code == 422
    assert field in _problem_fields(resp)
    assert api.get("/v1/subscriptions").json["items"] == []


def test_a_body_that_is_not_an_object_is_refused(api):
    resp = api.post("/v1/subscriptions", data="[1]", content_type="application/json")
    assert resp.status_code in (400, 422)
    assert resp.mimetype == "application/problem+json"


def test_the_allowed_list_lets_the_local_receiver_in(api):
    created = _create(api, url="http://127.0.0.1:8999/hook")
    assert created["url"] == "http://127.0.0.1:8999/hook"
    resp = api.patch(f"/v1/subscriptions/{created['id']}", json={"url": "http://127.0.0.2/x"})
    assert resp.status_code == 422 and _problem_fields(resp) == {"url"}


def test_patch_changes_fields_and_keeps_the_secret(api, app):
    created = _create(api)
    sid = created["id"]
    resp = api.patch(
        f"/v1/subscriptions/{sid}",
        json={
            "url": "https://93.184.216.35/v2",
            "event_types": ["profile.erased", "purchase.recorded"],
            "include_pii": True,
            "description": "CRM",
            "status": "paused",
        },
    )
    assert resp.status_code == 200, resp.json
    changed = resp.json
    assert "secret" not in changed
    assert changed["url"] == "https://93.184.216.35/v2"
    assert changed["event_types"] == ["profile.erased", "purchase.recorded"]
    assert (changed["include_pii"], changed["description"], changed["status"]) == (
        True,
        "CRM",
        "paused",
    )
    assert changed["created_at"] == created["created_at"]
    assert changed["updated_at"] >= created["updated_at"]
    st = app.extensions["rapport"]
    assert SubscriptionStore(st.redis, st.keys).get(sid).secret == created["secret"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "status"),
        ({"status": "disabled"}, "status"),
        ({"status": "on"}, "status"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["nope"]}, "event_types.0"),
        ({"include_pii": 1}, "include_pii"),
        ({"url": "gopher://93.184.216.34/"}, "url"),
        ({"id": "sub_other"}, "id"),
        ({"secret": "whsec_x"}, "secret"),
    ],
)
def test_bad_changes_are_problems_naming_the_field(api, body, field):
    sid = _create(api)["id"]
    resp = api.patch(f"/v1/subscriptions/{sid}", json=body)
    assert resp.status_code == 422
    assert field in _problem_fields(resp)
    assert api.get(f"/v1/subscriptions/{sid}").json["status"] == "active"


def test_a_disabled_subscription_is_reactivated_by_patch(api, app):
    sid = _create(api)["id"]
    st = app.extensions["rapport"]
    SubscriptionStore(st.redis, st.keys).disable(sid, "410 Gone")
    got = api.get(f"/v1/subscriptions/{sid}").json
    assert (got["status"], got["disabled_reason"]) == ("disabled", "410 Gone")
    assert SubscriptionStore(st.redis, st.keys).active() == []
    back = api.patch(f"/v1/subscriptions/{sid}", json={"status": "active"}).json
    assert (back["status"], back["disabled_reason"]) == ("active", None)
    assert [s.id for s in SubscriptionStore(st.redis, st.keys).active()] == [sid]


def test_rotate_secret_shows_a_new_secret_once(api, app):
    created = _create(api)
    sid = created["id"]
    resp = api.post(f"/v1/subscriptions/{sid}/rotate-secret")
    assert resp.status_code == 200
    rotated = resp.json["secret"]
    assert rotated.startswith("whsec_") and rotated != created["secret"]
    st = app.extensions["rapport"]
    assert SubscriptionStore(st.redis, st.keys).get(sid).secret == rotated
    headers = signing.headers(rotated, "msg_0_1-0", 1_700_000_000, b"{}")
    signing.verify(rotated, headers, b"{}", now=1_700_000_000)
    with pytest.raises(signing.SignatureError):
        signing.verify(created["secret"], headers, b"{}", now=1_700_000_000)


def test_unknown_subscriptions_are_404(api):
    for method, path in [
        ("GET", "/v1/subscriptions/sub_nope"),
        ("PATCH", "/v1/subscriptions/sub_nope"),
        ("DELETE", "/v1/subscriptions/sub_nope"),
        ("POST", "/v1/subscriptions/sub_nope/rotate-secret"),
        ("GET", "/v1/subscriptions/sub_nope/deliveries"),
        ("GET", "/v1/subscriptions/sub_nope/dead-letters"),
        ("POST", "/v1/subscriptions/sub_nope/redeliver"),
    ]:
        body = {"status": "paused"} if method == "PATCH" else {} if method == "POST" else None
        resp = api.open(method, path, json=body)
        assert resp.status_code == 404, (method, path)
        assert resp.mimetype == "application/problem+json"


def test_delete_removes_the_subscription(api):
    sid = _create(api)["id"]
    keep = _create(api)["id"]
    assert api.delete(f"/v1/subscriptions/{sid}").status_code == 204
    assert api.get(f"/v1/subscriptions/{sid}").status_code == 404
    assert [s["id"] for s in api.get("/v1/subscriptions").json["items"]] == [keep]


def test_changes_are_audited_and_reads_are_not(api):
    sid = _create(api)["id"]
    api.get("/v1/subscriptions")
    api.get(f"/v1/subscriptions/{sid}")
    api.patch(f"/v1/subscriptions/{sid}", json={"status": "paused"})
    api.post(f"/v1/subscriptions/{sid}/rotate-secret")
    api.post("/v1/subscriptions", json={"url": "ftp://x/", "event_types": ["*"]})  # refused
    api.delete(f"/v1/subscriptions/{sid}")
    entries = api.get("/v1/admin/audit?action=admin&limit=50").json["items"]
    routes = sorted(e["route"] for e in entries)
    assert routes == sorted(
        [
            "POST /v1/subscriptions",
            f"PATCH /v1/subscriptions/{sid}",
            f"POST /v1/subscriptions/{sid}/rotate-secret",
            f"DELETE /v1/subscriptions/{sid}",
        ]
    )
    assert all(e["profile_id"] == "" and e["key_name"] == "admin" for e in entries)


def test_only_later_events_are_for_a_subscription(api, app):
    created = _create(api, event_types=["profile.updated", "profile.erased"])
    st = app.extensions["rapport"]
    sub = SubscriptionStore(st.redis, st.keys).get(created["id"])
    at_ms = int(created["created_at"] * 1000)
    assert sub.accepts("profile.updated", at_ms + 5)
    assert not sub.accepts("profile.updated", at_ms - 1000)
    assert not sub.accepts("purchase.recorded", at_ms + 5)
    assert sub.wants("profile.erased") and not sub.wants("model.activated")


def test_the_store_allows_at_most_100_subscriptions(api, app):
    st = app.extensions["rapport"]
    store = SubscriptionStore(st.redis, st.keys)
    for _ in range(100):
        store.create(PUBLIC, ["*"])
    resp = api.post("/v1/subscriptions", json={"url": PUBLIC, "event_types": ["*"]})
    assert resp.status_code == 409 and resp.mimetype == "application/problem+json"


def test_concurrent_changes_do_not_overwrite_each_other(app):
    st = app.extensions["rapport"]
    store = SubscriptionStore(st.redis, st.keys)
    sid = store.create(PUBLIC, ["*"]).id
    import threading

    def change(n):
        for i in range(20):
            store.update(sid, description=f"{n}-{i}") if n % 2 else store.rotate_secret(sid)

    threads = [threading.Thread(target=change, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get(sid)
    assert final.description in {"1-19", "3-19"}
    assert final.secret.startswith("whsec_") and final.event_types == ["*"]


# -- the delivery engine's side (service/webhooks/queues.py) through the admin API ------------
def test_a_new_subscription_has_an_empty_log_no_dead_letters_and_nothing_to_redeliver(api):
    sid = _create(api)["id"]
    assert api.get(f"/v1/subscriptions/{sid}/deliveries").json == {"items": []}
    assert api.get(f"/v1/subscriptions/{sid}/deliveries?limit=5").json == {"items": []}
    assert api.get(f"/v1/subscriptions/{sid}/dead-letters").json == {"items": []}
    resp = api.post(f"/v1/subscriptions/{sid}/redeliver", json={})
    assert (resp.status_code, resp.json) == (202, {"count": 0})
    resp = api.post(f"/v1/subscriptions/{sid}/redeliver", json={"webhook_ids": ["msg_1_1-0"]})
    assert (resp.status_code, resp.json) == (202, {"count": 0})


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        ("GET", "deliveries?limit=0", None, "limit"),
        ("GET", "deliveries?limit=1001", None, "limit"),
        ("GET", "deliveries?limit=many", None, "limit"),
        ("GET", "deliveries?colour=red", None, "colour"),
        ("GET", "dead-letters?limit=0", None, "limit"),
        ("POST", "redeliver", {"webhook_ids": []}, "webhook_ids"),
        ("POST", "redeliver", {"webhook_ids": "msg_1_1-0"}, "webhook_ids"),
        ("POST", "redeliver", {"webhook_ids": [""]}, "webhook_ids.0"),
        ("POST", "redeliver", {"all": True}, "all"),
    ],
)
def test_bad_delivery_queries_are_problems_naming_the_field(api, method, path, body, field):
    sid = _create(api)["id"]
    resp = api.open(method, f"/v1/subscriptions/{sid}/{path}", json=body)
    assert resp.status_code == 422
    assert field in _problem_fields(resp)


def test_delete_drops_the_subscriptions_delivery_state(api, app):
    sid = _create(api)["id"]
    st = app.extensions["rapport"]
    keys = st.keys
    st.redis.zadd(keys.subscription_retry(sid), {"c-1": 1})
    st.redis.rpush(keys.subscription_queue(sid, "c-1"), "{}")
    st.redis.hset(keys.subscription_blocked(sid), "c-1", "{}")
    st.redis.xadd(keys.subscription_log(sid), {"webhook_id": "msg_1_1-0"})
    assert isinstance(api.get(f"/v1/subscriptions/{sid}").json["pending"], dict)
    assert api.delete(f"/v1/subscriptions/{sid}").status_code == 204
    for key in (
        keys.subscription_retry(sid),
        keys.subscription_blocked(sid),
        keys.subscription_queue(sid, "c-1"),
        keys.subscription_log(sid),
        keys.subscription_dead(sid),
    ):
        assert st.redis.exists(key) == 0, key


def _dead(webhook_id: str, customer: str) -> dict:
    entry = {"type": "profile.updated", "customer_id": customer, "at_ms": "1", "data": "{}"}
    return {
        "webhook_id": webhook_id,
        "customer": customer,
        "shard": 1,
        "entry": entry,
        "attempts": 12,
        "last_error": "HTTP 503",
        "first_attempt_at": 1.0,
        "died_at": 86_401.0,
    }


def test_log_dead_letters_and_redelivery_through_the_admin_api(api, app):
    from service.webhooks.queues import DeliveryQueues

    sid = _create(api)["id"]
    st = app.extensions["rapport"]
    queues = DeliveryQueues(st.redis, st.keys)
    for n in range(5):
        outcome = {"webhook_id": f"msg_1_{n}-0", "type": "profile.updated", "customer_id": "c-1"}
        queues.record(sid, {**outcome, "status": "delivered", "attempts": 1, "http_status": 204})
    queues.record(sid, {"webhook_id": "msg_1_9-0", "status": "dead", "error": "HTTP 503"})
    page = api.get(f"/v1/subscriptions/{sid}/deliveries?limit=4").json["items"]
    assert [d["webhook_id"] for d in page] == ["msg_1_9-0", "msg_1_4-0", "msg_1_3-0", "msg_1_2-0"]
    assert (page[0]["status"], page[0]["error"], page[0]["http_status"]) == (
        "dead",
        "HTTP 503",
        None,
    )
    assert (page[1]["status"], page[1]["http_status"], page[1]["attempts"]) == ("delivered", 204, 1)
    older = api.get(f"/v1/subscriptions/{sid}/deliveries?before={page[-1]['id']}").json["items"]
    assert [d["webhook_id"] for d in older] == ["msg_1_1-0", "msg_1_0-0"]

    for webhook_id, customer in [("msg_1_7-0", "c-1"), ("msg_2_8-0", "c-2"), ("msg_1_9-0", "c-1")]:
        queues.dead_letter(sid, _dead(webhook_id, customer))
    dead = api.get(f"/v1/subscriptions/{sid}/dead-letters").json["items"]
    assert [d["webhook_id"] for d in dead] == ["msg_1_9-0", "msg_2_8-0", "msg_1_7-0"]
    assert dead[0]["attempts"] == 12 and dead[0]["last_error"] == "HTTP 503"
    assert api.get(f"/v1/subscriptions/{sid}").json["pending"]["dead_letters"] == 3

    resp = api.post(f"/v1/subscriptions/{sid}/redeliver", json={"webhook_ids": ["msg_2_8-0"]})
    assert (resp.status_code, resp.json) == (202, {"count": 1})
    assert queues.head(sid, "c-2")["webhook_id"] == "msg_2_8-0"
    assert [
        d["webhook_id"] for d in api.get(f"/v1/subscriptions/{sid}/dead-letters").json["items"]
    ] == [
        "msg_1_9-0",
        "msg_1_7-0",
    ]
    assert api.post(f"/v1/subscriptions/{sid}/redeliver", json={}).json == {"count": 2}
    assert api.get(f"/v1/subscriptions/{sid}/dead-letters").json["items"] == []
    pending = api.get(f"/v1/subscriptions/{sid}").json["pending"]
    assert pending["customers_waiting"] == 2 and pending["dead_letters"] == 0
    audited = api.get("/v1/admin/audit?action=admin&limit=50").json["items"]
    assert sum(e["route"] == f"POST /v1/subscriptions/{sid}/redeliver" for e in audited) == 2
