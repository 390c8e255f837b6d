"""API keys: 401 vs 403, scopes, revocation, and no secret in clear in Redis."""

from __future__ import annotations

import pytest

PROBLEM = "application/problem+json"


def test_missing_key_is_401(client):
    resp = client.get("/v1/admin/keys")
    assert resp.status_code == 401
    assert resp.content_type == PROBLEM
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.json["status"] == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer rpk_0123456789abcdef_wrongsecret",
        "Bearer not-a-rapport-key",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
def test_unknown_or_malformed_key_is_401(client, header):
    resp = client.get("/v1/admin/keys", headers={"Authorization": header})
    assert resp.status_code == 401
    assert resp.content_type == PROBLEM


def test_right_key_id_with_wrong_secret_is_401(client, make_key):
    token = make_key("admin")
    forged = token[: token.rindex("_") + 1] + "x" * 43
    resp = client.get("/v1/admin/keys", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status_code == 401


def test_key_without_scope_is_403(api_as):
    resp = api_as("profiles:read").get("/v1/admin/keys")
    assert resp.status_code == 403
    assert resp.content_type == PROBLEM
    assert resp.json["required_scope"] == "admin"


def test_auth_comes_before_body_validation(client):
    resp = client.post("/v1/admin/keys", json={"bogus": 1})
    assert resp.status_code == 401


def test_admin_creates_lists_and_revokes_keys(api, client):
    created = api.post("/v1/admin/keys", json={"name": "helpdesk", "scopes": ["profiles:read"]})
    assert created.status_code == 201
    token = created.json["token"]
    assert token.startswith("rpk_")
    listed = api.get("/v1/admin/keys").json["items"]
    assert {k["name"] for k in listed} == {"admin", "helpdesk"}
    assert all("token" not in k and "hash" not in k for k in listed)

    helpdesk = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/admin/keys", headers=helpdesk).status_code == 403
    assert api.delete(f"/v1/admin/keys/{created.json['key_id']}").status_code == 204
    assert client.get("/v1/admin/keys", headers=helpdesk).status_code == 401
    assert api.delete(f"/v1/admin/keys/{created.json['key_id']}").status_code == 404


def test_unknown_scope_is_422_with_field(api):
    resp = api.post("/v1/admin/keys", json={"name": "x", "scopes": ["everything"]})
    assert resp.status_code == 422
    assert resp.json["errors"][0]["field"] == "scopes.0"


def test_secret_never_stored_in_clear(app, redis_client, make_key):
    token = make_key("admin", name="ops")
    secret = token.split("_", 2)[2]  # rpk_<key id>_<secret>; the secret may hold "_"
    for key in redis_client.scan_iter(count=1000):
        kind = redis_client.type(key)
        if kind == "hash":
            values = list(redis_client.hgetall(key).values())
        elif kind == "set":
            values = list(redis_client.smembers(key))
        elif kind == "string":
            values = [redis_client.get(key)]
        else:
            values = []
        for value in values:
            assert secret not in value and token not in value
