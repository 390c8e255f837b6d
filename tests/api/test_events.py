"""POST /v1/events: per-item results, duplicates, bad items, customers by any identity."""

from __future__ import annotations

AT = "2024-03-01T10:00:00Z"


def create(api, **fields):
    resp = api.post("/v1/profiles", json=fields)
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def test_batch_with_duplicates_and_bad_items(api):
    ada = create(api, email="ada@example.com", external_ids=["shop:42"])
    bob = create(api, phone="+436641234567")
    events = [
        {"message_id": "m1", "type": "view", "customer": {"profile_id": ada}, "at": AT,
         "product_id": "P1"},
        {"message_id": "m2", "type": "add_to_cart", "customer": {"email": "ADA@example.com"},
         "at": AT, "product_id": "P1", "quantity": 2},
        {"message_id": "m1", "type": "view", "customer": {"profile_id": ada}, "at": AT,
         "product_id": "P1"},
        {"message_id": "m3", "type": "support_contact", "customer": {"phone": "+43 664 1234567"},
         "at": AT, "contact_id": "T-7", "status": "opened", "topic": "refund"},
        {"message_id": "m4", "type": "purchase", "customer": {"external_id": "shop:42"}, "at": AT,
         "order_id": "o-1", "currency": "EUR", "channel": "app",
         "lines": [{"product_id": "P1", "quantity": 2, "unit_price": "9.99"}]},
        {"message_id": "m5", "type": "teleport", "customer": {"profile_id": ada}, "at": AT},
        {"message_id": "m6", "type": "view", "customer": {"email": "nobody@example.com"},
         "at": AT, "product_id": "P1"},
        {"message_id": "m7", "type": "view", "customer": {"profile_id": ada}, "at": "soon",
         "product_id": "P1"},
        "not an event",
        {"message_id": "m8", "type": "purchase", "customer": {"profile_id": ada}, "at": AT,
         "order_id": "o-2", "currency": "EUR", "channel": "app",
         "lines": [{"product_id": "P1", "quantity": -1, "unit_price": "9.99"}]},
        {"message_id": "m9", "type": "view", "customer": {"email": "a@x.io", "phone": "+1"},
         "at": AT, "product_id": "P1"},
    ]  # fmt: skip
    resp = api.post("/v1/events", json={"events": events})
    assert resp.status_code == 200, resp.json
    results = resp.json["results"]
    assert [r["status"] for r in results] == [
        "accepted", "accepted", "duplicate", "accepted", "accepted",
        "rejected", "rejected", "rejected", "rejected", "rejected", "rejected",
    ]  # fmt: skip
    assert [r["field"] for r in results[5:]] == [
        "type", "customer.email", "at", None, "lines.0.quantity", "customer",
    ]  # fmt: skip
    assert all(r["reason"] for r in results[5:])
    assert results[3]["customer_id"] == bob
    assert (resp.json["accepted"], resp.json["duplicate"], resp.json["rejected"]) == (4, 1, 6)

    ada_doc = api.get(f"/v1/profiles/{ada}").json
    assert ada_doc["traits"]["order_count"] == 1
    assert ada_doc["traits"]["total_spend"] == {"EUR": "19.98"}
    assert ada_doc["traits"]["last_event_at"] == AT
    assert api.get(f"/v1/profiles/{bob}").json["traits"]["open_support_contacts"] == 1
    purchases = api.get(f"/v1/profiles/{ada}/purchases").json["items"]
    assert [p["order_id"] for p in purchases] == ["o-1"]

    # the whole batch again: all duplicates or the same rejections, nothing changes
    again = api.post("/v1/events", json={"events": events}).json
    assert [r["status"] for r in again["results"][:5]] == ["duplicate"] * 5
    assert api.get(f"/v1/profiles/{ada}").json["traits"] == ada_doc["traits"]

    resolved = {**events[3], "message_id": "m10", "status": "resolved"}
    other_body = {**events[4], "message_id": "m11", "currency": "USD"}
    resp = api.post("/v1/events", json={"events": [resolved, other_body]}).json
    assert [r["status"] for r in resp["results"]] == ["accepted", "rejected"]
    assert resp["results"][1]["field"] == "order_id"
    assert api.get(f"/v1/profiles/{bob}").json["traits"]["open_support_contacts"] == 0


def test_envelope_errors_are_422(api):
    assert api.post("/v1/events", json={"events": "nope"}).status_code == 422
    assert api.post("/v1/events", json={"events": []}).status_code == 422
    assert api.post("/v1/events", json=[{"message_id": "m"}]).status_code == 422
    assert api.post("/v1/events", json={"events": [{}], "extra": 1}).status_code == 422
    too_many = [{"message_id": f"m{i}"} for i in range(501)]
    resp = api.post("/v1/events", json={"events": too_many})
    assert resp.status_code == 422
    assert resp.json["errors"][0]["field"] == "events"


def test_full_batch_of_500_and_scopes(api, api_as, client):
    ada = create(api, email="ada@example.com")
    batch = [
        {"message_id": f"m{i}", "type": "view", "customer": {"profile_id": ada}, "at": AT,
         "product_id": f"P{i % 7}"}
        for i in range(500)
    ]  # fmt: skip
    assert client.post("/v1/events", json={"events": batch}).status_code == 401
    assert api_as("profiles:read").post("/v1/events", json={"events": batch}).status_code == 403
    resp = api_as("profiles:write").post("/v1/events", json={"events": batch})
    assert resp.status_code == 200
    assert resp.json["accepted"] == 500
