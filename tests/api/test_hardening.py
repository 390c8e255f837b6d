"""Abuse limits and transport hardening: unknown query parameters, JSON shape guard, rate
limits (429 + Retry-After, problem+json), page and batch caps, CORS, Cache-Control."""

from __future__ import annotations

import time

import pytest

from profiles.keys import Keys
from service import create_app
from service.hardening import json_shape_problem
from tests.conftest import ApiClient

KEYS = Keys()


def test_unknown_query_parameters_are_refused(api):
    resp = api.get("/v1/products?limit=5&colour=red")
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    assert resp.json["errors"] == [
        {"field": "colour", "location": "query", "message": "Unknown field."}
    ]
    assert api.get("/v1/admin/keys?x=1").status_code == 422  # a route without query parameters
    assert api.get("/v1/products?limit=5").status_code == 200


def test_json_shape_scanner():
    assert json_shape_problem(b'{"a": [1, 2, {"b": "[[[[[[[[["}]}', 3, 100) is None
    assert "deeper" in json_shape_problem(b"[[[[1]]]]", 3, 100)
    assert "more than" in json_shape_problem(b"[" + b"1," * 200 + b"1]", 32, 100)
    assert json_shape_problem(b'["a,b,c,d"]', 32, 3) is None  # commas inside strings


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 10_000 + b"]" * 10_000,  # deep arrays
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,  # deep objects
        b'{"events": [' + b",".join([b"{}"] * 200_000) + b"]}",  # a huge array (~600 kB)
    ],
    ids=["deep-array", "deep-object", "huge-array"],
)
def test_deep_and_huge_json_are_refused_quickly(api, body):
    started = time.perf_counter()
    resp = api.post("/v1/events", data=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    assert resp.status_code == 422, resp.json
    assert resp.json["type"] == "urn:rapport:problem:json-shape"
    assert elapsed < 0.5, elapsed


def test_page_and_batch_caps(api):
    assert api.get("/v1/products?limit=200").status_code == 200
    assert api.get("/v1/products?limit=201").status_code == 422
    cid = api.post("/v1/profiles", json={"first_name": "Ann"}).json["id"]
    assert api.get(f"/v1/profiles/{cid}/purchases?limit=101").status_code == 422
    assert api.get("/v1/admin/audit?limit=1001").status_code == 422
    events = [{"message_id": f"m{i}", "type": "view"} for i in range(501)]
    resp = api.post("/v1/events", json={"events": events})
    assert resp.status_code == 422
    assert resp.json["errors"][0]["field"] == "events"
    products = [{"product_id": f"p{i}", "name": "x"} for i in range(501)]
    assert api.post("/v1/products/batch", json={"items": products}).status_code == 422


@pytest.fixture
def limited_app(app_config, redis_client):
    return create_app({**app_config, "rate_limit": "5 per minute"}, redis=redis_client)


def test_rate_limit_per_key_with_retry_after(limited_app, redis_client):
    store = limited_app.extensions["rapport"].api_keys
    client = limited_app.test_client()
    first = ApiClient(client, store.create("one", ["recommend:read"])[1])
    second = ApiClient(client, store.create("two", ["recommend:read"])[1])
    codes = [first.get("/v1/products").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    over = first.get("/v1/products")
    assert over.status_code == 429
    assert over.mimetype == "application/problem+json"
    assert over.json["status"] == 429
    assert over.json["type"] == "urn:rapport:problem:rate-limited"
    assert 0 < int(over.headers["Retry-After"]) <= 60
    assert second.get("/v1/products").status_code == 200  # per key, not global
    assert client.get("/healthz").status_code == 200  # operations routes are not limited
    assert any(redis_client.scan_iter(f"{KEYS.rate_limit_prefix()}*"))  # counted in Redis


def test_rate_limit_off(app_config, redis_client, monkeypatch):
    """``RAPPORT_RATE_LIMIT=off``: a key already over a tiny limit gets 50 answers in a row,
    none refused and none counted."""

    def app_with(limit: str):
        monkeypatch.setenv("RAPPORT_RATE_LIMIT", limit)
        return create_app(app_config, redis=redis_client)

    limited = app_with("2 per minute")
    token = limited.extensions["rapport"].api_keys.create("k", ["admin"])[1]
    on = ApiClient(limited.test_client(), token)
    assert [on.get("/v1/products").status_code for _ in range(3)] == [200, 200, 429]
    pattern = f"{KEYS.rate_limit_prefix()}*"
    counted = {c: redis_client.get(c) for c in redis_client.scan_iter(pattern)}
    assert list(counted.values()) == ["3"]

    unlimited = app_with("off")
    assert unlimited.extensions["rapport"].config.rate_limit == "off"
    off = ApiClient(unlimited.test_client(), token)  # the same key, still over "2 per minute"
    responses = [off.get("/v1/products") for _ in range(50)]
    assert [r.status_code for r in responses] == [200] * 50
    assert not any("X-RateLimit-Limit" in r.headers for r in responses)
    assert {c: redis_client.get(c) for c in redis_client.scan_iter(pattern)} == counted


def test_no_store_on_api_responses(api):
    cid = api.post("/v1/profiles", json={"first_name": "Ann"}).json["id"]
    for path in (f"/v1/profiles/{cid}", "/v1/profiles/c_nope", "/v1/products"):
        resp = api.get(path)
        assert resp.headers["Cache-Control"] == "no-store"


def test_cors_denied_by_default(api):
    pre = api.client.options(
        "/v1/products",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert pre.status_code == 403
    assert "Access-Control-Allow-Origin" not in pre.headers
    resp = api.get("/v1/products", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_cors_for_configured_origins(app_config, redis_client):
    app = create_app(
        {**app_config, "cors_origins": "https://helpdesk.example, https://crm.example"},
        redis=redis_client,
    )
    client = app.test_client()
    pre = client.options(
        "/v1/profiles/c_1",
        headers={
            "Origin": "https://helpdesk.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "https://helpdesk.example"
    assert "PATCH" in pre.headers["Access-Control-Allow-Methods"]
    assert "If-Match" in pre.headers["Access-Control-Allow-Headers"]
    assert "Origin" in pre.headers["Vary"]
    token = app.extensions["rapport"].api_keys.create("k", ["admin"])[1]
    resp = ApiClient(client, token).get("/v1/products", headers={"Origin": "https://crm.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://crm.example"
    assert "ETag" in resp.headers["Access-Control-Expose-Headers"]
    other = client.options(
        "/v1/products",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert other.status_code == 403


def test_refused_requests_count_against_the_limit(limited_app):
    store = limited_app.extensions["rapport"].api_keys
    api = ApiClient(limited_app.test_client(), store.create("bad", ["admin"])[1])
    deep = b"[" * 100 + b"]" * 100
    codes = [
        api.post("/v1/events", data=deep, headers={"Content-Type": "application/json"}).status_code
        for _ in range(6)
    ]
    assert codes == [422] * 5 + [429]
