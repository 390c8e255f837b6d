"""POST /v1/ingest/segment: Segment-spec messages applied with per-item results (issue 14)."""

from __future__ import annotations

import base64

import pytest

URL = "/v1/ingest/segment"
AT = "2024-03-01T10:00:00Z"
PROBLEM = "application/problem+json"


def msg(mtype, mid, **fields):
    return {"type": mtype, "messageId": mid, "timestamp": AT, **fields}


def order(mid, order_id, user="u1", price=9.99, **props):
    products = [{"product_id": "P1", "sku": "S1", "quantity": 2, "price": price}]
    properties = {"order_id": order_id, "products": products, "currency": "EUR", **props}
    return msg("track", mid, userId=user, event="Order Completed", properties=properties)


def post(api, body, status=200):
    resp = api.post(URL, json=body)
    assert resp.status_code == status, resp.json
    return resp.json


def one(api, body):
    out = post(api, body)
    assert len(out["results"]) == 1
    return out["results"][0]


def profile_of(api, system, ident):
    resp = api.get("/v1/profiles", query_string={"external_id": f"{system}:{ident}"})
    assert resp.status_code == 200, resp.json
    return resp.json


def events_of(app, cid):
    return app.extensions["rapport"].activity.list_events(cid)


# -- identify ------------------------------------------------------------------------------------
def test_identify_creates_then_updates_a_profile(api):
    traits = {"email": "Ada@Example.com", "phone": "0664 1234567", "firstName": "Ada",
              "lastName": "Lovelace", "name": "Ada L.", "address": {"country": "at"},
              "plan": "pro"}  # fmt: skip
    first = one(api, msg("identify", "i1", userId="u1", anonymousId="a1", traits=traits))
    assert first["status"] == "accepted" and first["note"] == "created"
    profile = profile_of(api, "segment", "u1")
    assert profile["id"] == first["customer_id"]
    assert profile["email"] == "ada@example.com" and profile["phone"] == "+436641234567"
    assert (profile["first_name"], profile["last_name"]) == ("Ada", "Lovelace")
    assert (profile["display_name"], profile["country"]) == ("Ada L.", "AT")
    assert sorted(profile["external_ids"]) == ["segment:u1", "segment_anonymous:a1"]

    again = one(api, msg("identify", "i2", userId="u1", traits={"lastName": "King"}))
    assert (again["status"], again["customer_id"]) == ("accepted", profile["id"])
    assert profile_of(api, "segment", "u1")["last_name"] == "King"


def test_identify_merges_the_profiles_its_ids_belong_to(api):
    by_email = one(api, msg("identify", "i1", anonymousId="a9", traits={"email": "x@example.com"}))
    by_user = one(api, msg("identify", "i2", userId="u9"))
    assert by_email["customer_id"] != by_user["customer_id"]
    both = one(api, msg("identify", "i3", userId="u9", traits={"email": "x@example.com"}))
    assert both["status"] == "accepted" and both["note"].startswith("merged")
    assert both["customer_id"] == by_email["customer_id"]  # the oldest survives
    assert profile_of(api, "segment", "u9")["id"] == by_email["customer_id"]


def test_a_trait_rapport_cannot_take_is_noted_not_fatal(api):
    result = one(api, msg("identify", "i1", userId="u1", traits={"address": {"country": "Narnia"}}))
    assert result["status"] == "accepted"
    assert "traits.address.country" in result["note"]
    assert "country" not in profile_of(api, "segment", "u1")


# -- alias ---------------------------------------------------------------------------------------
def test_alias_merges_the_previous_profile_into_the_users(api, app):
    anon = one(api, msg("identify", "i1", anonymousId="a1"))
    user = one(api, msg("identify", "i2", userId="u1"))
    post(api, msg("track", "t1", anonymousId="a1", event="Product Viewed",
                  properties={"product_id": "P7"}))  # fmt: skip
    result = one(api, msg("alias", "al1", previousId="a1", userId="u1"))
    assert (result["status"], result["customer_id"]) == ("accepted", user["customer_id"])
    assert result["note"].startswith(f"merged {anon['customer_id']} into")
    merged = api.get(f"/v1/profiles/{anon['customer_id']}")
    assert merged.headers["Rapport-Merged-Into"] == user["customer_id"]
    assert [e["payload"]["product_id"] for e in events_of(app, user["customer_id"])] == ["P7"]
    assert one(api, msg("alias", "al1", previousId="a1", userId="u1"))["status"] == "duplicate"


def test_alias_with_one_side_known_attaches_the_other(api):
    user = one(api, msg("identify", "i1", userId="u1"))
    result = one(api, msg("alias", "al1", previousId="a5", userId="u1"))
    assert (result["status"], result["customer_id"]) == ("accepted", user["customer_id"])
    assert profile_of(api, "segment_anonymous", "a5")["id"] == user["customer_id"]
    missing = one(api, msg("alias", "al2", userId="u1"))
    assert (missing["status"], missing["field"]) == ("rejected", "previousId")


# -- track ---------------------------------------------------------------------------------------
def test_order_completed_is_a_purchase_idempotent_by_order_id(api):
    first = one(api, order("o-msg-1", "ORD-1"))
    assert first["status"] == "accepted"
    cid = first["customer_id"]  # an unknown userId: the profile is created
    assert one(api, order("o-msg-1", "ORD-1"))["status"] == "duplicate"  # the same messageId
    replay = one(api, order("o-msg-2", "ORD-1"))  # another messageId, the same order
    assert (replay["status"], replay["customer_id"]) == ("duplicate", cid)
    other = one(api, order("o-msg-3", "ORD-1", price=5))
    assert (other["status"], other["field"]) == ("rejected", "properties.order_id")
    purchases = api.get(f"/v1/profiles/{cid}/purchases").json["items"]
    assert len(purchases) == 1
    assert purchases[0]["lines"] == [{"product_id": "P1", "quantity": 2, "unit_price": "9.99"}]
    assert (purchases[0]["currency"], purchases[0]["total"]) == ("EUR", "19.98")
    assert api.get(f"/v1/profiles/{cid}").json["traits"]["total_spend"] == {"EUR": "19.98"}


def test_an_order_twice_in_one_batch_is_recorded_once(api):
    out = post(api, {"batch": [order("m1", "ORD-1"), order("m2", "ORD-1"),
                               order("m3", "ORD-1", price=1)]})  # fmt: skip
    assert [(r["status"], r.get("field")) for r in out["results"]] == [
        ("accepted", None),
        ("duplicate", None),
        ("rejected", "properties.order_id"),
    ]
    cid = out["results"][0]["customer_id"]
    assert len(api.get(f"/v1/profiles/{cid}/purchases").json["items"]) == 1


def test_a_track_naming_two_profiles_merges_them(api, app):
    anon = one(api, msg("identify", "i1", anonymousId="a1"))
    user = one(api, msg("identify", "i2", userId="u1"))
    track = msg("track", "t1", userId="u1", anonymousId="a1", event="Product Viewed",
                properties={"product_id": "P1"})  # fmt: skip
    result = one(api, track)
    assert result["status"] == "accepted"
    assert result["customer_id"] == anon["customer_id"]  # the oldest survives, as in identify
    assert profile_of(api, "segment", "u1")["id"] == anon["customer_id"]
    assert api.get(f"/v1/profiles/{user['customer_id']}").headers["Rapport-Merged-Into"]
    assert [e["type"] for e in events_of(app, anon["customer_id"])] == ["view"]


def test_product_viewed_and_added_are_events(api, app):
    out = post(api, {"batch": [
        msg("track", "v1", userId="u1", event="Product Viewed", properties={"product_id": "P1"}),
        msg("track", "c1", userId="u1", event="Product Added",
            properties={"sku": "S2", "quantity": 3}),
        msg("track", "v1", userId="u1", event="Product Viewed", properties={"product_id": "P1"}),
    ]})  # fmt: skip
    assert [r["status"] for r in out["results"]] == ["accepted", "accepted", "duplicate"]
    cid = out["results"][0]["customer_id"]
    events = sorted(events_of(app, cid), key=lambda e: e["type"])
    assert [(e["type"], e["payload"]) for e in events] == [
        ("add_to_cart", {"product_id": "S2", "quantity": 3}),
        ("view", {"product_id": "P1"}),
    ]
    assert events[1]["at"] == AT


def test_other_calls_are_ignored_with_a_note(api, app):
    out = post(api, {"batch": [
        msg("track", "t1", userId="u1", event="Signed Up"),
        msg("page", "p1", userId="u1", name="Home"),
        msg("screen", "s1", userId="u1", name="Cart"),
        msg("group", "g1", userId="u1", groupId="acme"),
    ]})  # fmt: skip
    assert [r["status"] for r in out["results"]] == ["ignored"] * 4
    assert all(r["note"] for r in out["results"])
    assert (out["ignored"], out["accepted"]) == (4, 0)
    assert api.get("/v1/profiles", query_string={"external_id": "segment:u1"}).status_code == 404


# -- consent -------------------------------------------------------------------------------------
def test_consent_from_the_context(api):
    consent = {"categoryPreferences": {"Advertising": True, "Analytics": False,
                                       "Functional": True, "Personalization": True}}  # fmt: skip
    result = one(api, msg("identify", "i1", userId="u1", context={"consent": consent}))
    assert "Functional" in result["note"]
    got = profile_of(api, "segment", "u1")["consent"]
    assert {p: c["granted"] for p, c in got.items()} == {
        "marketing": True, "profiling": False, "personalization": True,
    }  # fmt: skip
    assert got["marketing"]["source"] == "segment"
    # on a track call too; and Marketing false with Advertising true is not a grant
    revoke = {"categoryPreferences": {"Advertising": True, "marketing": False}}
    track = msg("track", "t1", userId="u1", event="Product Viewed",
                properties={"product_id": "P1"}, context={"consent": revoke})  # fmt: skip
    assert one(api, track)["status"] == "accepted"
    assert profile_of(api, "segment", "u1")["consent"]["marketing"]["granted"] is False


def test_a_rejected_event_applies_none_of_its_consent(api):
    one(api, order("m1", "ORD-1"))
    grant = {"categoryPreferences": {"Marketing": True}}
    bad = order("m2", "ORD-1", price=1)
    bad["context"] = {"consent": grant}
    result = one(api, bad)
    assert (result["status"], result["field"]) == ("rejected", "properties.order_id")
    assert "consent" not in profile_of(api, "segment", "u1")


# -- bad input -----------------------------------------------------------------------------------
def test_a_mixed_batch_gets_per_item_results(api):
    good = msg("track", "v1", userId="u1", event="Product Viewed", properties={"product_id": "P"})
    batch = [
        good,
        msg("teleport", "x1", userId="u1"),
        {**good, "messageId": "v2", "timestamp": "yesterday"},
        {**good, "messageId": "v3", "timestamp": None, "sentAt": "2024-13-01T00:00:00Z"},
        msg("track", "v4", event="Product Viewed", properties={"product_id": "P"}),
        order("o1", "ORD-9", price="abc"),
        msg("identify", "i1", userId="u2", traits={"email": "not an email"}),
        {**good, "messageId": None},
        "not an object",
        msg("track", "v5", userId="u1", event="Product Viewed", properties={}),
        msg("identify", "i2", userId="u3"),
    ]
    out = post(api, {"batch": batch})
    assert [(r["status"], r.get("field")) for r in out["results"]] == [
        ("accepted", None), ("rejected", "type"), ("rejected", "timestamp"),
        ("rejected", "sentAt"), ("rejected", "userId"),
        ("rejected", "properties.products.0.price"), ("rejected", "traits.email"),
        ("rejected", "messageId"), ("rejected", None), ("rejected", "properties.product_id"),
        ("accepted", None),
    ]  # fmt: skip
    assert [r["index"] for r in out["results"]] == list(range(len(batch)))
    assert (out["accepted"], out["rejected"], out["duplicate"], out["ignored"]) == (2, 9, 0, 0)
    # nothing of a rejected item was applied
    assert api.get("/v1/profiles", query_string={"external_id": "segment:u2"}).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [({"batch": [msg("page", f"p{i}", userId="u") for i in range(501)]}, "batch"),
     ({"batch": []}, "batch")],
)  # fmt: skip
def test_oversize_or_empty_batch_is_422(api, body, field):
    resp = api.post(URL, json=body)
    assert resp.status_code == 422 and resp.content_type == PROBLEM
    assert [e["field"] for e in resp.json["errors"]] == [field]


def test_a_body_that_is_not_an_object_is_422(api):
    resp = api.post(URL, json=[msg("page", "p1", userId="u")])
    assert resp.status_code == 422 and resp.content_type == PROBLEM


# -- authentication ------------------------------------------------------------------------------
def basic(user, password=""):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_with_the_key_as_user_name(client, make_key):
    token = make_key("profiles:write")
    body = msg("identify", "i1", userId="u1")
    resp = client.post(URL, json=body, headers=basic(token))
    assert resp.status_code == 200, resp.json
    assert resp.json["accepted"] == 1
    assert client.post(URL, json=body, headers=basic(token, "ignored")).status_code == 200


def test_bearer_auth(client, make_key):
    token = make_key("profiles:write")
    resp = client.post(URL, json=msg("identify", "i1", userId="u1"),
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert resp.status_code == 200 and resp.json["accepted"] == 1


@pytest.mark.parametrize(
    "headers",
    [basic("rpk_0123456789abcdef_wrongsecret"), basic(""), {"Authorization": "Basic !!!"},
     {"Authorization": "Bearer rpk_0123456789abcdef_wrongsecret"}, {}],
)  # fmt: skip
def test_a_wrong_key_is_401(client, headers):
    resp = client.post(URL, json=msg("identify", "i1", userId="u1"), headers=headers)
    assert resp.status_code == 401 and resp.content_type == PROBLEM


def test_the_key_needs_profiles_write(client, make_key):
    resp = client.post(URL, json=msg("identify", "i1", userId="u1"),
                       headers=basic(make_key("profiles:read")))  # fmt: skip
    assert resp.status_code == 403


def test_ingest_is_audited(api):
    result = one(api, msg("identify", "i1", userId="u1"))
    resp = api.get(f"/v1/admin/audit?profile_id={result['customer_id']}&limit=50")
    assert resp.status_code == 200, resp.json
    assert [e["action"] for e in resp.json["items"]] == ["update"]
