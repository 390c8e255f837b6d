"""Profiles over HTTP: create, read, PATCH (If-Match, concurrency), look-up, identify, erase,
export, and the 422/409/412 cases."""

from __future__ import annotations

import json
import threading

import pytest

from profiles.keys import Keys
from tests.conftest import ApiClient
from tests.redis_text import all_redis_text, erased_events

KEYS = Keys()

PROBLEM = "application/problem+json"

ADA = {
    "email": "Ada@Example.com",
    "phone": "+43 664 1234567",
    "external_ids": ["shop:42"],
    "first_name": "Ada",
    "last_name": "Lovelace",
    "locale": "de-AT",
    "timezone": "Europe/Vienna",
    "country": "AT",
    "loyalty_tier": "gold",
    "preferences": {"categories": ["tea"], "channels": ["chat"], "custom": {"size": "M"}},
    "consent": {"marketing": {"granted": True, "at": "2025-01-01T00:00:00Z", "source": "web"}},
}


def purchase(api, cid, oid, price="10.00", quantity=1, at="2024-03-01T10:00:00Z"):
    body = {
        "order_id": oid,
        "lines": [{"product_id": "P1", "quantity": quantity, "unit_price": price}],
        "currency": "EUR",
        "purchased_at": at,
        "channel": "web",
    }
    resp = api.post(f"/v1/profiles/{cid}/purchases", json=body)
    assert resp.status_code in (200, 201), resp.json
    return resp.json


def create(api, body=None, **fields):
    resp = api.post("/v1/profiles", json={**(body or {}), **fields})
    assert resp.status_code == 201, resp.json
    return resp.json


def test_create_and_read(api):
    resp = api.post("/v1/profiles", json=ADA)
    assert resp.status_code == 201
    doc = resp.json
    assert doc["id"].startswith("c_")
    assert resp.headers["Location"].endswith(f"/v1/profiles/{doc['id']}")
    assert resp.headers["ETag"] == '"1"'
    assert doc["email"] == "ada@example.com" and doc["phone"] == "+436641234567"
    assert doc["external_ids"] == ["shop:42"] and doc["version"] == 1
    assert doc["consent"]["marketing"] == {"granted": True, "at": 1735689600.0, "source": "web"}

    read = api.get(f"/v1/profiles/{doc['id']}")
    assert read.status_code == 200
    assert read.headers["ETag"] == '"1"'
    assert read.json["locale"] == "de-AT" and "traits" in read.json
    assert "Rapport-Merged-Into" not in read.headers


def test_national_phone_uses_country_as_region(api):
    doc = create(api, phone="0664 1234567", country="at")
    assert doc["phone"] == "+436641234567" and doc["country"] == "AT"


def test_unknown_profile_is_404(api):
    resp = api.get("/v1/profiles/c_doesnotexist")
    assert resp.status_code == 404
    assert resp.content_type == PROBLEM
    assert api.get("/v1/profiles/a%7Bb%7D").status_code == 404


def test_scopes(api_as):
    reader = api_as("profiles:read")
    assert reader.post("/v1/profiles", json={"first_name": "x"}).status_code == 403
    assert api_as("recommend:read").get("/v1/profiles/c_x").status_code == 403
    writer = api_as("profiles:write")
    assert writer.post("/v1/profiles", json={"first_name": "x"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"phone": "+1 123"}, "phone"),
        ({"phone": "0664 1234567"}, "phone"),  # national form, no country
        ({"locale": "xx-YY"}, "locale"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"country": "XY"}, "country"),
        ({"loyalty_tier": "diamond"}, "loyalty_tier"),
        ({"nickname": "Ada"}, "nickname"),
        ({"preferences": {"custom": {"note": "x" * 1025}}}, "preferences.custom.note"),
        ({"preferences": {"custom": {f"k{i}": i for i in range(51)}}}, "preferences.custom"),
        ({"preferences": {"channels": ["pigeon"]}}, "preferences.channels.0"),
        ({"preferences": {"colour": "red"}}, "preferences.colour"),
        ({"external_ids": ["no-separator"]}, "external_ids.0"),
        ({"external_ids": ["Bad System!:1"]}, "external_ids.0"),
        (
            {"consent": {"marketing": {"granted": "yes", "source": "web"}}},
            "consent.marketing.granted",
        ),
        ({"consent": {"marketing": {"granted": True}}}, "consent.marketing.source"),
        ({"consent": {"spam": {"granted": True, "source": "web"}}}, "consent.spam"),
        ({"first_name": "x" * 101}, "first_name"),
        ({"first_name": 42}, "first_name"),
    ],
)
def test_bad_input_is_422_with_the_field(api, body, field):
    resp = api.post("/v1/profiles", json=body)
    assert resp.status_code == 422, resp.json
    assert resp.content_type == PROBLEM
    assert field in [e["field"] for e in resp.json["errors"]], resp.json


def test_patch_validates_too(api):
    doc = create(api, first_name="Ada")
    resp = api.patch(f"/v1/profiles/{doc['id']}", json={"timezone": "Nowhere/City"})
    assert resp.status_code == 422
    assert resp.json["errors"][0]["field"] == "timezone"
    too_many = {"preferences": {"custom": {f"k{i}": i for i in range(30)}}}
    assert api.patch(f"/v1/profiles/{doc['id']}", json=too_many).status_code == 200
    more = {"preferences": {"custom": {f"x{i}": i for i in range(30)}}}
    resp = api.patch(f"/v1/profiles/{doc['id']}", json=more)
    assert resp.status_code == 422  # 60 keys after the merge
    assert resp.json["errors"][0]["field"] == "preferences.custom"


def test_identity_taken_is_409(api):
    first = create(api, email="ada@example.com", external_ids=["shop:1"])
    resp = api.post("/v1/profiles", json={"email": "ADA@example.com"})
    assert resp.status_code == 409
    assert resp.content_type == PROBLEM
    assert resp.json["errors"][0]["field"] == "email"
    assert resp.json["owner_id"] == first["id"]
    other = create(api, email="eve@example.com")
    resp = api.patch(f"/v1/profiles/{other['id']}", json={"external_ids": ["shop:1"]})
    assert resp.status_code == 409
    assert resp.json["errors"][0]["field"] == "external_ids"
    # the failed create did not keep a claim: the email is still only Ada's
    assert api.get("/v1/profiles?email=ada@example.com").json["id"] == first["id"]


def test_patch_merges_and_null_deletes(api):
    doc = create(api, ADA)
    resp = api.patch(
        f"/v1/profiles/{doc['id']}",
        json={
            "first_name": None,
            "display_name": "Countess",
            "preferences": {"custom": {"size": None, "colour": "green"}, "language": "en"},
            "consent": {"profiling": {"granted": False, "source": "call"}},
        },
    )
    assert resp.status_code == 200
    new = resp.json
    assert resp.headers["ETag"] == '"2"' and new["version"] == 2
    assert "first_name" not in new and new["last_name"] == "Lovelace"
    assert new["display_name"] == "Countess"
    assert new["preferences"] == {
        "categories": ["tea"],
        "channels": ["chat"],
        "language": "en",
        "custom": {"colour": "green"},
    }
    assert set(new["consent"]) == {"marketing", "profiling"}


def test_patch_email_swaps_the_identity(api):
    doc = create(api, email="old@example.com")
    resp = api.patch(f"/v1/profiles/{doc['id']}", json={"email": "new@example.com"})
    assert resp.json["emails"] == ["new@example.com"]
    assert api.get("/v1/profiles?email=old@example.com").status_code == 404
    assert api.get("/v1/profiles?email=new@example.com").json["id"] == doc["id"]
    assert create(api, email="old@example.com")["email"] == "old@example.com"


def test_if_match(api):
    doc = create(api, first_name="Ada")
    url = f"/v1/profiles/{doc['id']}"
    ok = api.patch(url, json={"last_name": "L"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["ETag"] == '"2"'
    stale = api.patch(url, json={"last_name": "X"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.content_type == PROBLEM
    assert stale.json["current_version"] == 2
    assert api.get(url).json["last_name"] == "L"
    assert api.patch(url, json={"last_name": "Y"}, headers={"If-Match": 'W/"2"'}).status_code == 200
    assert api.patch(url, json={"last_name": "Z"}, headers={"If-Match": "*"}).status_code == 200
    assert api.patch(url, json={"last_name": "Q"}, headers={"If-Match": "junk"}).status_code == 412


def test_concurrent_patches_and_purchases_lose_nothing(app, api):
    doc = create(api, first_name="Ada")
    url = f"/v1/profiles/{doc['id']}"
    token = api.token
    errors: list[object] = []
    start = threading.Barrier(20)

    def writer(i: int) -> None:
        client = ApiClient(app.test_client(), token)
        start.wait()
        resp = client.patch(url, json={"preferences": {"custom": {f"t{i}": i}}})
        if resp.status_code != 200:
            errors.append(resp.json)
        body = {
            "order_id": f"o-{i}",
            "lines": [{"product_id": f"P{i}", "quantity": 1, "unit_price": f"{i + 1}.25"}],
            "currency": "EUR",
            "purchased_at": f"2024-03-{i + 1:02d}T10:00:00Z",
            "channel": "web",
        }
        resp = client.post(f"{url}/purchases", json=body)
        if resp.status_code != 201:
            errors.append(resp.json)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    final = api.get(url).json
    assert final["preferences"]["custom"] == {f"t{i}": i for i in range(20)}
    assert final["version"] == 21
    traits = final["traits"]
    assert traits["order_count"] == 20
    assert traits["total_spend"] == {"EUR": f"{sum(i + 1.25 for i in range(20)):.2f}"}
    assert traits["first_purchase_at"] == "2024-03-01T10:00:00Z"
    assert traits["last_purchase_at"] == "2024-03-20T10:00:00Z"


def test_lookup_by_each_identity(api):
    doc = create(api, ADA)
    for query in (
        "email=ADA@example.com",
        "phone=%2B436641234567",
        "external_id=shop:42",
    ):
        resp = api.get(f"/v1/profiles?{query}")
        assert resp.status_code == 200, query
        assert resp.json["id"] == doc["id"]
        assert resp.headers["ETag"] == '"1"'
    assert api.get("/v1/profiles?phone=+436641234567").json["id"] == doc["id"]
    assert api.get("/v1/profiles?email=nobody@example.com").status_code == 404
    assert api.get("/v1/profiles?external_id=shop:43").status_code == 404
    assert api.get("/v1/profiles").status_code == 422
    assert api.get("/v1/profiles?email=a@example.com&phone=%2B43664").status_code == 422
    assert api.get("/v1/profiles?email=junk").status_code == 422


def test_identify_creates_then_attaches(api):
    body = {"identities": {"email": "ada@example.com"}, "attributes": {"first_name": "Ada"}}
    created = api.post("/v1/profiles/identify", json=body)
    assert created.status_code == 201
    assert created.json["outcome"] == "created"
    pid = created.json["profile"]["id"]

    again = api.post(
        "/v1/profiles/identify",
        json={
            "identities": {"email": "ada@example.com", "external_ids": ["crm:7"]},
            "attributes": {"last_name": "Lovelace"},
        },
    )
    assert again.status_code == 200
    assert again.json["outcome"] == "attached"
    assert again.json["attached"] == ["ext:crm:7"]
    assert again.json["profile"]["id"] == pid
    assert again.json["profile"]["last_name"] == "Lovelace"
    assert api.get("/v1/profiles?external_id=crm:7").json["id"] == pid

    same = api.post("/v1/profiles/identify", json={"identities": {"external_ids": ["crm:7"]}})
    assert same.status_code == 200 and same.json["outcome"] == "matched"


def test_identify_validates(api):
    assert api.post("/v1/profiles/identify", json={"identities": {}}).status_code == 422
    resp = api.post(
        "/v1/profiles/identify",
        json={"identities": {"email": "a@example.com"}, "attributes": {"email": "b@example.com"}},
    )
    assert resp.status_code == 422


def test_identify_merges_two_profiles_into_the_oldest(api, app):
    clock = iter(range(10))
    store = app.extensions["rapport"].profiles
    store.clock = lambda: 1_790_000_000.0 + next(clock)
    older = create(api, email="ada@example.com", first_name="Ada")
    newer = create(api, phone="+16502530000", loyalty_tier="gold")
    resp = api.post(
        "/v1/profiles/identify",
        json={"identities": {"email": "ada@example.com", "phone": "+1 650 253 0000"}},
    )
    assert resp.status_code == 200
    assert resp.json["outcome"] == "merged"
    (merge,) = resp.json["merges"]
    assert merge["source_id"] == newer["id"] and merge["target_id"] == older["id"]
    profile = resp.json["profile"]
    assert profile["id"] == older["id"]
    assert profile["emails"] == ["ada@example.com"] and profile["phones"] == ["+16502530000"]
    assert profile["first_name"] == "Ada" and profile["loyalty_tier"] == "gold"
    assert api.get("/v1/profiles?phone=%2B16502530000").json["id"] == older["id"]
    record = api.get(f"/v1/merges/{merge['merge_id']}").json
    assert record["status"] == "done" and record["reason"] == "identify"
    assert record["actor"].startswith("apikey:")


def test_erase_leaves_nothing_and_frees_identities(api, redis_client):
    keep = create(api, email="bystander@example.com")
    doc = create(api, ADA)
    cid = doc["id"]
    other = create(api, email="second@example.com", first_name="Second")
    merged = api.post(f"/v1/profiles/{cid}/merge", json={"source_id": other["id"]})
    assert merged.status_code == 201
    assert api.patch(f"/v1/profiles/{cid}", json={"display_name": "x"}).status_code == 200
    purchase(api, cid, "o-1")
    purchase(api, keep["id"], "o-keep")
    events = [
        {"message_id": "ev-1", "type": "view", "customer": {"profile_id": cid},
         "at": "2024-03-01T10:00:00Z", "product_id": "P1"},
        {"message_id": "ev-2", "type": "support_contact", "customer": {"email": "ada@example.com"},
         "at": "2024-03-01T10:00:00Z", "contact_id": "T-1", "status": "opened", "topic": "x"},
    ]  # fmt: skip
    assert api.post("/v1/events", json={"events": events}).status_code == 200
    assert api.get(f"/v1/profiles/{cid}").json["traits"]["open_support_contacts"] == 1

    resp = api.delete(f"/v1/profiles/{cid}")
    assert resp.status_code == 200
    report = resp.json
    assert report["customer_id"] == cid
    assert set(report["erased_ids"]) == {cid, other["id"]}
    for key in (KEYS.profile(cid), KEYS.orders(cid), KEYS.events(cid)):
        assert key in report["keys_deleted"]
    assert report["keys_deleted_count"] == len(report["keys_deleted"])
    assert set(report["identities_released"]) == {
        "email:ada@example.com",
        "phone:+436641234567",
        "ext:shop:42",
        "email:second@example.com",
    }
    text = all_redis_text(redis_client)
    for needle in (cid, other["id"], "ada@example.com", "second@example.com", "Lovelace", "T-1"):
        assert needle not in text, needle
    assert keep["id"] in text and "o-keep" in text
    assert api.get(f"/v1/profiles/{keep['id']}").json["traits"]["order_count"] == 1
    # the outbox keeps one event about them: the erasure, with ids only, for the subscribers
    (event,) = erased_events(redis_client)
    assert event["customer_id"] == cid
    assert json.loads(event["data"]) == {"customer_id": cid, "erased_ids": [cid, other["id"]]}

    assert api.get(f"/v1/profiles/{cid}").status_code == 404
    assert api.get(f"/v1/profiles/{other['id']}").status_code == 404
    assert api.get("/v1/profiles?email=ada@example.com").status_code == 404
    again = create(api, email="ada@example.com", phone="+436641234567", external_ids=["shop:42"])
    assert again["id"] != cid
    assert api.delete(f"/v1/profiles/{cid}").status_code == 404


def test_export_contains_profile_purchases_events_and_merges(api):
    doc = create(api, ADA)
    other = create(api, email="second@example.com")
    for i in range(3):
        purchase(api, doc["id"], f"o-{i}", at=f"2024-03-0{i + 1}T10:00:00Z")
    purchase(api, other["id"], "o-other")
    api.post(
        "/v1/events",
        json={"events": [{"message_id": "ev-1", "type": "view", "product_id": "P9",
                          "customer": {"profile_id": doc["id"]}, "at": "2024-03-01T10:00:00Z"}]},
    )  # fmt: skip
    api.post(f"/v1/profiles/{doc['id']}/merge", json={"source_id": other["id"]})
    resp = api.get(f"/v1/profiles/{doc['id']}/export")
    assert resp.status_code == 200
    export = resp.json
    assert export["customer_id"] == doc["id"]
    assert export["profile"]["emails"] == ["ada@example.com", "second@example.com"]
    assert export["profile"]["consent"]["marketing"]["source"] == "web"
    assert export["profile"]["traits"]["order_count"] == 4
    orders = sorted(p["order_id"] for p in export["activity"]["purchases"])
    assert orders == ["o-0", "o-1", "o-2", "o-other"]
    assert [e["message_id"] for e in export["activity"]["events"]] == ["ev-1"]
    assert export["merged_ids"] == [other["id"]]
    assert [m["source_id"] for m in export["merges"]] == [other["id"]]
    # the same document by the old id
    assert api.get(f"/v1/profiles/{other['id']}/export").json["customer_id"] == doc["id"]


def test_concurrent_identify_of_one_new_customer_creates_one_profile(app, api):
    token = api.token
    results: list[tuple[int, dict]] = []
    start = threading.Barrier(10)
    body = {
        "identities": {"email": "new@example.com", "phone": "+16502530000"},
        "attributes": {"first_name": "New"},
    }

    def caller() -> None:
        client = ApiClient(app.test_client(), token)
        start.wait()
        resp = client.post("/v1/profiles/identify", json=body)
        results.append((resp.status_code, resp.json))

    threads = [threading.Thread(target=caller) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _ in results)
    assert statuses.count(201) == 1 and statuses.count(200) == 9, results
    assert len({r["profile"]["id"] for _, r in results}) == 1
    found = api.get("/v1/profiles?phone=%2B16502530000").json
    assert found["emails"] == ["new@example.com"] and found["first_name"] == "New"


def test_concurrent_identifies_that_merge_the_same_profiles(app, api):
    older = create(api, email="ada@example.com")
    newer = create(api, phone="+16502530000")
    token = api.token
    results: list[tuple[int, dict]] = []
    start = threading.Barrier(8)
    body = {"identities": {"email": "ada@example.com", "phone": "+16502530000"}}

    def caller() -> None:
        client = ApiClient(app.test_client(), token)
        start.wait()
        resp = client.post("/v1/profiles/identify", json=body)
        results.append((resp.status_code, resp.json))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(status == 200 for status, _ in results), results
    assert {r["profile"]["id"] for _, r in results} == {older["id"]}
    merge_ids = {m["merge_id"] for _, r in results for m in r["merges"]}
    assert len(merge_ids) == 1
    assert api.get(f"/v1/profiles/{newer['id']}").headers["Rapport-Merged-Into"] == older["id"]
    history = api.get(f"/v1/profiles/{older['id']}/export").json["merges"]
    assert [m["status"] for m in history] == ["done"]  # a merge that lost the race left nothing


def test_a_new_profile_answers_with_the_zeroed_traits_identify_gives(api):
    created = api.post("/v1/profiles", json={"email": "zero@example.com"}).json
    identified = api.post(
        "/v1/profiles/identify", json={"identities": {"email": "zero2@example.com"}}
    ).json["profile"]
    assert created["traits"] == identified["traits"] != {}
    assert created["traits"] == api.get(f"/v1/profiles/{created['id']}").json["traits"]
