"""The audit log: who read, changed, exported, merged, unmerged or erased which profile."""

from __future__ import annotations

import time

from profiles.audit import AuditLog
from profiles.keys import Keys

KEYS = Keys()


def _actions(api, profile_id):
    resp = api.get(f"/v1/admin/audit?profile_id={profile_id}&limit=50")
    assert resp.status_code == 200, resp.json
    return [(e["action"], e["key_name"]) for e in resp.json["items"]]


def test_every_profile_operation_is_audited_newest_first(api, client, make_key):
    from tests.conftest import ApiClient

    agent = ApiClient(client, make_key("profiles:read", "profiles:write", name="helpdesk"))
    a = agent.post("/v1/profiles", json={"email": "ann@example.com"}).json["id"]
    b = agent.post("/v1/profiles", json={"email": "bob@example.com"}).json["id"]
    assert agent.get(f"/v1/profiles/{a}").status_code == 200
    assert agent.get("/v1/profiles?email=ann@example.com").status_code == 200
    assert agent.patch(f"/v1/profiles/{a}", json={"first_name": "Ann"}).status_code == 200
    assert agent.get(f"/v1/profiles/{a}/export").status_code == 200
    merge = agent.post(f"/v1/profiles/{a}/merge", json={"source_id": b})
    assert merge.status_code == 201, merge.json
    assert agent.post(f"/v1/merges/{merge.json['id']}/unmerge").status_code == 200
    assert agent.delete(f"/v1/profiles/{b}").status_code == 200

    assert _actions(api, a) == [
        ("unmerge", "helpdesk"),
        ("merge", "helpdesk"),
        ("export", "helpdesk"),
        ("update", "helpdesk"),
        ("read", "helpdesk"),
        ("read", "helpdesk"),
        ("create", "helpdesk"),
    ]
    assert _actions(api, b)[0] == ("erase", "helpdesk")
    assert ("merge", "helpdesk") in _actions(api, b)


def test_failed_requests_and_other_routes_are_not_audited(api):
    assert api.get("/v1/profiles/c_doesnotexist").status_code == 404
    assert api.get("/v1/products").status_code == 200
    assert api.get("/v1/admin/audit").json["items"] == []


def test_audit_needs_admin_and_validates_its_query(api, api_as):
    assert api_as("profiles:read").get("/v1/admin/audit").status_code == 403
    assert api.get("/v1/admin/audit?limit=0").status_code == 422
    assert api.get("/v1/admin/audit?who=x").status_code == 422


def test_entries_hold_ids_only_and_survive_erasure(api, redis_client):
    cid = api.post(
        "/v1/profiles",
        json={"email": "zed@example.com", "phone": "+436641234567", "first_name": "Zed"},
    ).json["id"]
    assert api.get("/v1/profiles?email=zed@example.com").status_code == 200
    assert api.delete(f"/v1/profiles/{cid}").status_code == 200
    entries = redis_client.xrange(KEYS.audit_log())
    assert [e[1]["action"] for e in entries] == ["create", "read", "erase"]
    text = repr(entries)
    for pii in ("zed@example.com", "+436641234567", "Zed"):
        assert pii not in text
    assert all(e[1]["profile_id"] == cid for e in entries)


def test_retention_trims_old_entries(redis_client):
    # Entry ids are the server's clock (XADD *), so this uses real time and a tiny retention.
    old = AuditLog(redis_client, KEYS, retention_seconds=3600)
    for i in range(300):
        old.record("read", [f"c{i}"], key_id="k", key_name="n", route="GET /x", status=200)
    time.sleep(0.05)
    short = AuditLog(redis_client, KEYS, retention_seconds=0.02)
    short.record("read", ["fresh"], key_id="k", key_name="n", route="GET /x", status=200)
    # MINID ~ trims whole stream nodes (100 entries each): the 300 old ones go, the new one stays
    assert redis_client.xlen(KEYS.audit_log()) < 101
    assert short.read(limit=1)[0]["profile_id"] == "fresh"


def _entries(redis_client, action):
    return [e[1] for e in redis_client.xrange(KEYS.audit_log()) if e[1]["action"] == action]


def test_next_best_action_feedback_is_audited_with_the_customer_id(api, redis_client):
    catalogue = [{"id": "survey", "title": "Quick survey", "category": "feedback", "value": 10}]
    assert api.put("/v1/actions", json={"items": catalogue}).status_code == 200
    cid = api.post("/v1/profiles", json={"email": "fay@example.com"}).json["id"]
    body = {"feedback_id": "fb-1", "outcome": "dismissed", "agent_id": "agent-7"}
    path = f"/v1/profiles/{cid}/next-best-actions/survey/feedback"
    assert api.post(path, json=body).status_code == 201
    (entry,) = _entries(redis_client, "update")
    assert entry["profile_id"] == cid
    rule = "/v1/profiles/<string:customer_id>/next-best-actions/<string:action_id>/feedback"
    assert entry["route"] == f"POST {rule}" and entry["status"] == "201"


def test_product_feedback_is_audited_with_the_customer_id(api, redis_client):
    cid = api.post("/v1/profiles", json={"email": "gus@example.com"}).json["id"]
    body = {"feedback_id": "pf-1", "outcome": "dismissed", "agent_id": "a", "product_id": "sku-1"}
    assert api.post(f"/v1/profiles/{cid}/product-feedback", json=body).status_code == 201
    (entry,) = _entries(redis_client, "update")
    assert entry["profile_id"] == cid
    assert entry["route"] == "POST /v1/profiles/<string:customer_id>/product-feedback"
