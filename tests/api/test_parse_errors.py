"""Bodies that used to answer 500 answer 422 with the field at fault (issue 18): integers past
the 64-bit range (Python refuses more than 4,300 digits with a ValueError webargs does not
catch), infinities and NaN, times past the year 9999; and the small refusals of the same issue
(Retry-After only where it means something, the ``batch`` product id, invisible characters in
product text)."""

from __future__ import annotations

import json

import pytest

HUGE = "1" * 5000
AT = "2024-03-01T10:00:00Z"


def _raw(api, method, path, text):
    return api.open(method, path, data=text, headers={"Content-Type": "application/json"})


def _field(resp) -> str:
    assert resp.headers["Content-Type"].startswith("application/problem+json"), resp.data
    return resp.json["errors"][0]["field"]


@pytest.mark.parametrize("number", [HUGE, "-" + HUGE, "12345678901234567890", "1e400", "NaN"])
def test_a_number_out_of_range_is_a_422_naming_its_field(api, number):
    body = '{"email": "a@example.com", "first_name": ' + number + "}"
    resp = _raw(api, "POST", "/v1/profiles", body)
    assert resp.status_code == 422
    assert _field(resp) == "first_name"


def test_the_field_of_a_nested_number_is_its_path(api):
    body = '{"events": [{"type": "view"}, {"type": "view", "at": ' + HUGE + "}]}"
    resp = _raw(api, "POST", "/v1/events", body)
    assert resp.status_code == 422 and _field(resp) == "events.1.at"


def test_every_json_route_refuses_a_huge_integer_without_a_500(api, app):
    seen = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<string:{arg}>", "x1").replace(f"<{arg}>", "x1")
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH"}):
            resp = _raw(api, method, path, '{"id": ' + HUGE + "}")
            assert resp.status_code < 500, (method, path, resp.data[:200])
            seen += 1
    assert seen >= 15  # every writing route was tried


def test_an_event_time_past_9999_refuses_its_item_alone(api, app):
    app.extensions["rapport"].profiles.create({"email": "t@example.com"}, customer_id="t1")
    events = [
        {"message_id": f"m{i}", "type": "view", "customer": {"profile_id": "t1"}, "at": at,
         "product_id": "P1"}
        for i, at in enumerate((1e20, 253402300800, AT, "9999-12-31T23:00:00-05:00"))
    ]  # fmt: skip
    resp = api.post("/v1/events", json={"events": events})
    assert resp.status_code == 200, resp.json
    statuses = [(r["status"], r.get("field")) for r in resp.json["results"]]
    assert statuses == [("rejected", "at"), ("rejected", "at"), ("accepted", None),
                        ("rejected", "at")]  # fmt: skip


def test_a_purchase_time_past_9999_is_a_422(api, app):
    app.extensions["rapport"].profiles.create({"email": "p@example.com"}, customer_id="p1")
    order = {"order_id": "o1", "currency": "EUR", "purchased_at": 1e20,
             "lines": [{"product_id": "P1", "quantity": 1, "unit_price": "1.00"}]}  # fmt: skip
    resp = api.post("/v1/profiles/p1/purchases", json=order)
    assert resp.status_code == 422 and _field(resp) == "purchased_at"


def test_retry_after_only_on_429_and_503(api):
    for resp in (api.get("/v1/profiles?email=none@example.com"), api.get("/v1/profiles/nobody"),
                 api.post("/v1/profiles", json={"nope": 1}), api.get("/healthz")):  # fmt: skip
        assert "Retry-After" not in resp.headers, (resp.status_code, dict(resp.headers))


def test_batch_is_not_a_product_id(api):
    resp = api.put("/v1/products/batch", json={"name": "x", "price": "1.00", "currency": "EUR"})
    assert resp.status_code == 422 and _field(resp) == "product_id"
    assert api.get("/v1/products/batch").status_code in (404, 405)


@pytest.mark.parametrize("bad", ["a\u202eb", "zero\u200bwidth", "nul\x00", "bell\x07"])
@pytest.mark.parametrize("field", ["name", "brand", "category", "description"])
def test_product_text_refuses_invisible_and_control_characters(api, field, bad):
    body = {"name": "ok", "price": "1.00", "currency": "EUR", field: bad}
    resp = api.put("/v1/products/p-text", json=body)
    assert resp.status_code == 422 and _field(resp) == field


def test_a_description_keeps_its_line_breaks(api):
    text = "line one\nline two\tand a tab"
    resp = api.put("/v1/products/p-text", json={"name": "ok", "description": text})
    assert resp.status_code in (200, 201), resp.json
    assert resp.json["description"] == text


def test_a_consent_time_as_a_long_integer_is_a_422(api):
    body = {"email": "c@example.com", "consent": {"marketing": {"granted": True,
            "at": 9_999_999_999_999_999_999, "source": "web"}}}  # fmt: skip
    resp = _raw(api, "POST", "/v1/profiles", json.dumps(body))
    assert resp.status_code == 422 and _field(resp) == "consent.marketing.at"


def test_who_may_ask_is_answered_before_how_the_request_is_shaped(client, api_as):
    # an undeclared query parameter or a too-deep body is a 422, but only for a caller who
    # may use the route: without a key 401, with a key lacking the scope 403
    assert client.get("/v1/profiles/nobody?bogus=1").status_code == 401
    reader = api_as("recommend:read")
    assert reader.get("/v1/profiles/nobody?bogus=1").status_code == 403
    deep = "[" * 100 + "]" * 100
    resp = reader.open("PATCH", "/v1/profiles/nobody", data=deep,
                       headers={"Content-Type": "application/json"})  # fmt: skip
    assert resp.status_code == 403
    writer = api_as("profiles:read")
    assert writer.get("/v1/profiles/nobody?bogus=1").status_code == 422
