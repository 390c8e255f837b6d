"""The contract as written is the contract as served (issue 16): every error names its real
location and all fields at fault at once, one problem type per kind, the spec says what the
server refuses, and every answer, gunicorn's own included, is problem+json with a request id."""

from __future__ import annotations

import io
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

PROBLEM = "application/problem+json"
VALIDATION = "urn:rapport:problem:validation"
NOW = "2024-05-01T10:00:00+02:00"


def _faults(resp, status=422) -> set[tuple[str, str]]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.content_type == PROBLEM
    assert resp.json["request_id"] == resp.headers["X-Request-ID"]
    return {(e["field"], e["location"]) for e in resp.json["errors"]}


@pytest.fixture
def cid(api):
    return api.post("/v1/profiles", json={"email": "ann@example.com"}).json["id"]


def _purchase(**fields):
    line = {"product_id": "p1", "quantity": 1, "unit_price": "2.50"}
    line.update(fields.pop("line", {}))
    body = {"order_id": "o-1", "currency": "EUR", "purchased_at": NOW, "channel": "web"}
    return {**body, "lines": [line], **fields}


# -- 1. locations, all fields at once -----------------------------------------------------------
def test_a_query_parameter_error_reports_location_query(api, cid):
    resp = api.get("/v1/profiles?phone=0660%201234567")
    assert _faults(resp) == {("phone", "query")}
    assert resp.json["type"] == VALIDATION

    garbage = api.get(f"/v1/profiles/{cid}/purchases?cursor=garbage")
    assert _faults(garbage) == {("cursor", "query")}
    assert garbage.json["type"] == VALIDATION


def test_min_price_above_max_price_names_both_in_the_query(api, cid):
    resp = api.get(f"/v1/profiles/{cid}/recommendations?min_price=5&max_price=1")
    assert _faults(resp) == {("min_price", "query"), ("max_price", "query")}
    popular = api.get("/v1/recommendations/popular?min_price=5&max_price=1")
    assert _faults(popular) == {("min_price", "query"), ("max_price", "query")}
    assert api.get("/v1/recommendations/popular?min_price=1&max_price=5").status_code == 200


def test_a_path_parameter_error_reports_location_path(api):
    resp = api.get("/v1/greeting-templates/0/chat")
    assert _faults(resp) == {("locale", "path")}
    assert _faults(api.get("/v1/greeting-templates/de/00")) == {("channel", "path")}
    assert api.get("/v1/greeting-templates/de_at/chat").status_code in (200, 404)


def test_a_purchase_lists_every_field_at_fault_at_once(api, cid):
    body = _purchase(currency="euro", purchased_at="yesterday", line={"quantity": "two"})
    resp = api.post(f"/v1/profiles/{cid}/purchases", json=body)
    assert _faults(resp) == {
        ("currency", "json"),
        ("purchased_at", "json"),
        ("lines.0.quantity", "json"),
    }
    assert resp.json["type"] == VALIDATION
    prices = _purchase(line={"unit_price": "1.23456"}, currency="XXY")
    faults = _faults(api.post(f"/v1/profiles/{cid}/purchases", json=prices))
    assert faults == {("lines.0.unit_price", "json"), ("currency", "json")}
    ok = api.post(f"/v1/profiles/{cid}/purchases", json=_purchase())
    assert ok.status_code == 201, ok.json


def test_two_identities_in_a_greeting_query_are_both_at_fault(api):
    resp = api.get("/v1/greeting?channel=chat&email=a%40example.com&external_id=crm:1")
    assert _faults(resp) == {("email", "query"), ("external_id", "query")}
    lookup = api.get("/v1/profiles?email=a%40example.com&external_id=crm:1")
    assert _faults(lookup) == {("email", "query"), ("external_id", "query")}


# -- 2. one problem type per kind ---------------------------------------------------------------
def test_schema_and_domain_validation_share_one_type(api, cid):
    schema = api.post(f"/v1/profiles/{cid}/purchases", json=_purchase(line={"quantity": 0}))
    domain = api.get(f"/v1/profiles/{cid}/purchases?cursor=garbage")
    unknown = api.get(f"/v1/profiles/{cid}/purchases?colour=red")
    for resp in (schema, domain, unknown):
        assert (resp.json["type"], resp.json["title"]) == (VALIDATION, "Validation failed")


# -- 3. If-Match -----------------------------------------------------------------------------
def test_an_empty_if_match_is_400_on_the_header(api, cid):
    resp = api.patch(f"/v1/profiles/{cid}", json={"first_name": "A"}, headers={"If-Match": ""})
    assert _faults(resp, 400) == {("If-Match", "header")}
    assert resp.json["type"] == "urn:rapport:problem:malformed"
    assert "-1" not in resp.json["detail"]
    assert api.get(f"/v1/profiles/{cid}").json.get("first_name") is None  # nothing written
    stale = api.patch(f"/v1/profiles/{cid}", json={"first_name": "A"}, headers={"If-Match": '"9"'})
    assert stale.status_code == 412
    fresh = api.patch(f"/v1/profiles/{cid}", json={"first_name": "A"}, headers={"If-Match": '"1"'})
    assert fresh.status_code == 200 and fresh.headers["ETag"] == '"2"'


# -- 4. OPTIONS --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/actions/stats", {"GET", "HEAD", "OPTIONS"}),
        ("/v1/products/batch", {"POST", "OPTIONS"}),
        ("/v1/profiles/identify", {"POST", "OPTIONS"}),
        ("/v1/profiles/c_1", {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}),
    ],
)
def test_options_lists_the_methods_of_the_matched_route_only(client, path, allowed):
    resp = client.open(path, method="OPTIONS")
    assert resp.status_code == 200
    assert set(resp.allow) == allowed


# -- 6. a chunked body over the limit ----------------------------------------------------------
def test_a_chunked_413_carries_the_request_id(api, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    payload = json.dumps({"name": "x" * limit, "scopes": ["admin"]}).encode()
    for sent in ({"X-Request-ID": "chunk-1"}, {}):
        resp = api.post(
            "/v1/admin/keys",
            input_stream=io.BytesIO(payload),
            content_type="application/json",
            headers={"Transfer-Encoding": "chunked", **sent},
            environ_base={"wsgi.input_terminated": True},
        )
        assert resp.status_code == 413 and resp.content_type == PROBLEM
        assert resp.json["request_id"] == resp.headers["X-Request-ID"]
        assert resp.headers["X-Request-ID"] == sent.get("X-Request-ID", resp.json["request_id"])
        assert len(resp.headers["X-Request-ID"]) >= 7


# -- 7. schema-breaking requests refused --------------------------------------------------------
@pytest.mark.parametrize("field", ["active", "in_stock"])
@pytest.mark.parametrize("value", [0, 1, "true", "yes"])
def test_product_booleans_are_strict(api, field, value):
    resp = api.put("/v1/products/p0", json={"name": "Mug", field: value})
    assert _faults(resp) == {(field, "json")}
    assert api.get("/v1/products/p0").status_code == 404
    assert api.put("/v1/products/p0", json={"name": "Mug", field: False}).status_code in (200, 201)
    assert api.get("/v1/products/p0").json[field] is False


@pytest.mark.parametrize("body", [None, {}, {"email": None, "phone": None}])
def test_an_empty_profile_is_refused(api, body):
    resp = api.post("/v1/profiles") if body is None else api.post("/v1/profiles", json=body)
    assert resp.status_code == 422, resp.json
    assert resp.json["type"] == VALIDATION
    assert api.post("/v1/profiles", json={"first_name": "Walk-in"}).status_code == 201


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "cursor=", "cursor=" + "a" * 1001])
def test_purchases_paging_out_of_range_is_422_in_the_query(api, cid, query):
    name = query.split("=")[0]
    assert _faults(api.get(f"/v1/profiles/{cid}/purchases?{query}")) == {(name, "query")}


# -- 8. the spec says what the server refuses ---------------------------------------------------
def _params(spec, path, method="get"):
    item = spec["paths"][path]
    params = item.get("parameters", []) + item[method].get("parameters", [])
    return {(p["in"], p["name"]): p for p in params}


def test_the_spec_documents_the_rules_the_server_enforces(client):
    spec = client.get("/openapi.json").json
    template = _params(spec, "/v1/greeting-templates/{locale}/{channel}")
    assert template[("path", "locale")]["schema"]["pattern"]
    assert template[("path", "channel")]["schema"]["enum"] == ["chat", "email", "phone"]
    for method in ("get", "put", "delete"):
        assert (
            "422" in spec["paths"]["/v1/greeting-templates/{locale}/{channel}"][method]["responses"]
        )
    greeting = _params(spec, "/v1/greeting")
    for name in ("email", "phone", "external_id"):
        assert "At most one" in greeting[("query", name)]["description"]
    assert "422" in spec["paths"]["/v1/greeting"]["get"]["responses"]
    recs = _params(spec, "/v1/profiles/{customer_id}/recommendations")
    assert "max_price" in recs[("query", "min_price")]["description"]
    assert "422" in spec["paths"]["/v1/profiles/{customer_id}/recommendations"]["get"]["responses"]
    profile_in = spec["components"]["schemas"]["ProfileInput"]["properties"]
    assert profile_in["phone"]["pattern"] and greeting[("query", "phone")]["schema"]["pattern"]
    create = spec["paths"]["/v1/profiles"]["post"]["requestBody"]["content"]["application/json"]
    assert create["schema"] == {"$ref": "#/components/schemas/ProfileCreate"}
    assert spec["components"]["schemas"]["ProfileCreate"]["minProperties"] == 1
    patch = spec["paths"]["/v1/profiles/{customer_id}"]["patch"]
    assert "400" in patch["responses"]
    assert (
        _params(spec, "/v1/profiles/{customer_id}", "patch")[("header", "If-Match")]["schema"][
            "minLength"
        ]
        == 1
    )


def test_a_phone_the_spec_refuses_is_refused_by_the_schema(api):
    for resp in (
        api.post("/v1/profiles", json={"phone": "0"}),
        api.get("/v1/profiles?phone=0"),
        api.get("/v1/greeting?phone=12"),
    ):
        faults = _faults(resp)
        assert len(faults) == 1 and next(iter(faults))[0] == "phone"
        assert "too few digits" in resp.json["errors"][0]["message"]
    ok = api.post("/v1/profiles", json={"phone": "+43 664 1234567"})
    assert ok.status_code == 201 and ok.json["phone"] == "+436641234567"


# -- 5. gunicorn's own errors -------------------------------------------------------------------
def _raw_request(base_url: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``request`` as it is; the status line, the headers, the body."""
    host = urlsplit(base_url)
    with socket.create_connection((host.hostname, host.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def test_gunicorn_answers_its_own_errors_as_problems(live_server):
    long_url = live_server.url("/v1/recommendations/popular?category=" + "c" * 9000)
    resp = requests.get(long_url, timeout=10)
    assert resp.status_code == 414
    assert resp.headers["Content-Type"] == PROBLEM
    body = resp.json()
    assert body["status"] == 414 and body["title"] == "URI Too Long"
    assert body["request_id"] == resp.headers["X-Request-ID"]
    assert "<html" not in resp.text

    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 150 + b"\r\n"
    status, headers, raw = _raw_request(live_server.base_url, request)
    assert status.startswith("HTTP/1.1 431")
    assert headers["content-type"] == PROBLEM
    doc = json.loads(raw)
    assert doc["status"] == 431 and doc["request_id"] == headers["x-request-id"]

    # Under the limit the app answers, as before (the limit is the request line's: 8190 bytes).
    ok = requests.get(live_server.url("/v1/recommendations/popular?category=" + "c" * 7000))
    assert ok.status_code in (401, 422) and ok.headers["Content-Type"] == PROBLEM


# -- 9. the event item schemas ------------------------------------------------------------------
def test_the_documented_events_are_accepted_over_http(api, client, cid):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    items = []
    for ref in schemas["Event"]["discriminator"]["mapping"].values():
        props = schemas[ref.rsplit("/", 1)[-1]]["properties"]
        item = {name: p["example"] for name, p in props.items()}
        items.append({**item, "customer": {"profile_id": cid}})
    resp = api.post("/v1/events", json={"events": items})
    assert resp.status_code == 200, resp.json
    assert resp.json["accepted"] == 4, resp.json["results"]
    # the body stays open: an item that is no event is rejected in its result, not the batch
    mixed = api.post("/v1/events", json={"events": [items[0] | {"message_id": "m-2"}, 7]})
    assert mixed.status_code == 200
    assert [r["status"] for r in mixed.json["results"]] == ["accepted", "rejected"]


# -- 10. batch items name every field at fault at once ------------------------------------------
def test_a_product_batch_item_lists_every_field_at_fault(api):
    items = [
        {"product_id": "p1", "name": "Mug"},
        {"product_id": "p2", "name": "", "price": "cheap", "in_stock": 1},
        {"product_id": "p1", "name": "Mug again"},
    ]
    resp = api.post("/v1/products/batch", json={"items": items})
    assert resp.status_code == 200, resp.json
    ok, bad, twice = resp.json["items"]
    assert ok["status"] == "created" and "errors" not in ok
    assert bad["status"] == "invalid"
    assert {(e["field"], e["location"]) for e in bad["errors"]} == {
        ("name", "json"),
        ("price", "json"),
        ("in_stock", "json"),
    }
    assert (bad["field"], bad["error"]) == (bad["errors"][0]["field"], bad["errors"][0]["message"])
    assert [e["field"] for e in twice["errors"]] == ["product_id"]  # the catalog's own check


def test_an_event_item_lists_every_field_at_fault(api, cid):
    bad = {
        "message_id": "m-1",
        "type": "purchase",
        "customer": {"profile_id": cid},
        "at": "yesterday",
        "order_id": "o-1",
        "currency": "euro",
        "channel": "web",
        "lines": [{"product_id": "p1", "quantity": "two", "unit_price": "2.50"}],
    }
    good = {**bad, "message_id": "m-2", "at": NOW, "currency": "EUR"}
    good["lines"] = [{"product_id": "p1", "quantity": 1, "unit_price": "2.50"}]
    resp = api.post("/v1/events", json={"events": [bad, good]})
    assert resp.status_code == 200, resp.json
    first, second = resp.json["results"]
    assert first["status"] == "rejected" and second["status"] == "accepted", resp.json
    assert {e["field"] for e in first["errors"]} == {"at", "currency", "lines.0.quantity"}
    assert first["field"] == first["errors"][0]["field"]
    assert resp.json["rejected"] == 1 and resp.json["accepted"] == 1
