"""Purchases over HTTP: record (201), replay (200), conflict (409), 422s, paging, concurrency."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from tests.conftest import ApiClient

PROBLEM = "application/problem+json"


def create(api, **fields):
    resp = api.post("/v1/profiles", json={"email": "ada@example.com", **fields})
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def order(oid, at="2024-03-01T10:00:00+01:00", **changes):
    body = {
        "order_id": oid,
        "lines": [
            {"product_id": "P1", "quantity": 2, "unit_price": "2.55"},
            {"product_id": "P2", "quantity": 1, "unit_price": 0.1},
        ],
        "currency": "GBP",
        "purchased_at": at,
        "channel": "web",
    }
    return {**body, **changes}


def test_record_replay_and_conflict(api):
    cid = create(api)
    url = f"/v1/profiles/{cid}/purchases"
    first = api.post(url, json=order("o-1"))
    assert first.status_code == 201
    assert first.json["total"] == "5.20"
    assert first.json["purchased_at"] == "2024-03-01T09:00:00Z"
    assert first.json["lines"][1]["unit_price"] == "0.10"
    replay = api.post(url, json=order("o-1"))
    assert replay.status_code == 200
    assert replay.json == first.json
    conflict = api.post(url, json=order("o-1", currency="EUR"))
    assert conflict.status_code == 409
    assert conflict.content_type == PROBLEM
    assert conflict.json["errors"][0]["field"] == "order_id"
    traits = api.get(f"/v1/profiles/{cid}").json["traits"]
    assert traits["order_count"] == 1
    assert traits["total_spend"] == {"GBP": "5.20"}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"currency": "XYZ"}, "currency"),
        ({"channel": "fax"}, "channel"),
        ({"purchased_at": "2024-03-01 10:00"}, "purchased_at"),
        ({"purchased_at": "2999-01-01T00:00:00Z"}, "purchased_at"),
        ({"lines": []}, "lines"),
        ({"lines": [{"product_id": "P1", "quantity": 0, "unit_price": "1"}]}, "lines.0.quantity"),
        ({"lines": [{"product_id": "P1", "quantity": "2", "unit_price": "1"}]}, "lines.0.quantity"),
        (
            {"lines": [{"product_id": "P", "quantity": 1, "unit_price": "-2"}]},
            "lines.0.unit_price",
        ),
        (
            {"lines": [{"product_id": "P", "quantity": 1, "unit_price": True}]},
            "lines.0.unit_price",
        ),
        ({"lines": [{"product_id": "P1", "quantity": 1}]}, "lines.0.unit_price"),
        ({"order_id": ""}, "order_id"),
        ({"gift": True}, "gift"),
    ],
)
def test_bad_purchase_is_422_with_field(api, change, field):
    cid = create(api)
    resp = api.post(f"/v1/profiles/{cid}/purchases", json=order("o-1", **change))
    assert resp.status_code == 422, resp.json
    assert resp.content_type == PROBLEM
    assert field in [e["field"] for e in resp.json["errors"]]
    assert api.get(f"/v1/profiles/{cid}/purchases").json["items"] == []


def test_unknown_profile_scopes_and_auth(api, api_as, client):
    assert api.post("/v1/profiles/c_nobody/purchases", json=order("o")).status_code == 404
    assert api.get("/v1/profiles/c_nobody/purchases").status_code == 404
    cid = create(api)
    url = f"/v1/profiles/{cid}/purchases"
    assert client.post(url, json={"bogus": 1}).status_code == 401
    assert api_as("profiles:read").post(url, json={"bogus": 1}).status_code == 403
    assert api_as("profiles:read").get(url).status_code == 200
    assert api_as("profiles:write").post(url, json=order("o")).status_code == 201


def test_list_newest_first_across_pages(api):
    cid = create(api)
    url = f"/v1/profiles/{cid}/purchases"
    days = [5, 1, 3, 3, 7, 2, 4]
    for i, day in enumerate(days):
        assert api.post(url, json=order(f"o{i}", at=f"2024-01-0{day}T12:00:00Z")).status_code == 201
    seen, cursor = [], None
    while True:
        resp = api.get(url + "?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert resp.status_code == 200
        seen += [p["order_id"] for p in resp.json["items"]]
        cursor = resp.json["next_cursor"]
        if cursor is None:
            break
    assert seen == ["o4", "o0", "o6", "o3", "o2", "o5", "o1"]
    assert api.get(url + "?limit=101").status_code == 422
    assert api.get(url + "?limit=0").status_code == 422
    bad = api.get(url + "?cursor=nope")
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "cursor"
    assert len(api.get(url).json["items"]) == 7  # default page 20


def test_merged_id_records_on_the_target(api):
    target = create(api, email="t@example.com")
    source = create(api, email="s@example.com")
    assert api.post(f"/v1/profiles/{source}/purchases", json=order("s-1")).status_code == 201
    merged = api.post(f"/v1/profiles/{target}/merge", json={"source_id": source})
    assert merged.status_code in (200, 201), merged.json
    resp = api.post(f"/v1/profiles/{source}/purchases", json=order("s-2"))
    assert resp.status_code == 201
    assert resp.headers["Rapport-Merged-Into"] == target
    items = api.get(f"/v1/profiles/{target}/purchases").json["items"]
    assert sorted(p["order_id"] for p in items) == ["s-1", "s-2"]


def test_concurrent_purchases_and_patches_on_one_customer(app, api):
    cid = create(api)
    token = api.token
    errors: list[object] = []
    start = threading.Barrier(20)

    def writer(i: int) -> None:
        client = ApiClient(app.test_client(), token)
        start.wait()
        for k in range(3):
            body = order(f"t{i}-{k}", at=f"2024-02-{1 + i:02d}T0{k}:00:00Z")
            resp = client.post(f"/v1/profiles/{cid}/purchases", json=body)
            if resp.status_code != 201:
                errors.append(resp.json)
        resp = client.patch(f"/v1/profiles/{cid}", json={"preferences": {"custom": {f"k{i}": i}}})
        if resp.status_code != 200:
            errors.append(resp.json)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    profile = api.get(f"/v1/profiles/{cid}").json
    assert profile["preferences"]["custom"] == {f"k{i}": i for i in range(20)}
    items, cursor = [], None
    while True:
        page = api.get(
            f"/v1/profiles/{cid}/purchases?limit=100" + (f"&cursor={cursor}" if cursor else "")
        ).json
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(p["order_id"] for p in items) == sorted(
        f"t{i}-{k}" for i in range(20) for k in range(3)
    )
    traits = profile["traits"]
    assert traits["order_count"] == 60
    assert Decimal(traits["total_spend"]["GBP"]) == sum(Decimal(p["total"]) for p in items)
    assert traits["item_count"] == 180
    assert traits["last_purchase_at"] == "2024-02-20T02:00:00Z"
    assert traits["first_purchase_at"] == "2024-02-01T00:00:00Z"


# -- bounded histories (issue 18; docs/profiles.md "Limits") -------------------------------------
def test_a_purchase_past_the_customer_cap_is_422_on_order_id(api, monkeypatch):
    from profiles import activity

    monkeypatch.setattr(activity, "MAX_ORDERS", 2)
    cid = create(api)
    url = f"/v1/profiles/{cid}/purchases"
    for i in range(2):
        assert api.post(url, json=order(f"o-{i}")).status_code == 201
    resp = api.post(url, json=order("o-9"))
    assert resp.status_code == 422 and resp.content_type == PROBLEM
    (error,) = resp.json["errors"]
    assert error["field"] == "order_id" and "2 purchases" in error["message"]
    assert api.post(url, json=order("o-1")).status_code == 200  # a replay is still a replay
    # the events batch refuses the purchase item alone
    at = "2024-03-02T10:00:00+00:00"
    items = [
        {"customer": {"profile_id": cid}, "message_id": "m-1", "type": "purchase", "at": at,
         **{k: v for k, v in order("o-8").items() if k != "purchased_at"}},
        {"customer": {"profile_id": cid}, "message_id": "m-2", "type": "view", "at": at,
         "product_id": "P1"},
    ]  # fmt: skip
    out = api.post("/v1/events", json={"events": items}).json
    assert [(r["status"], r.get("field")) for r in out["results"]] == [
        ("rejected", "order_id"),
        ("accepted", None),
    ]
    assert (
        "2 purchases" in out["results"][0]["reason"] or "purchases" in out["results"][0]["reason"]
    )
    assert api.get(f"/v1/profiles/{cid}").json["traits"]["order_count"] == 2


def test_more_lines_than_the_cap_is_422_on_lines(api):
    from profiles.activity_input import MAX_LINES

    cid = create(api)
    line = {"product_id": "P1", "quantity": 1, "unit_price": "1"}
    resp = api.post(
        f"/v1/profiles/{cid}/purchases", json=order("o-1", lines=[line] * (MAX_LINES + 1))
    )
    assert resp.status_code == 422 and "lines" in [e["field"] for e in resp.json["errors"]]
    ok = api.post(f"/v1/profiles/{cid}/purchases", json=order("o-2", lines=[line] * MAX_LINES))
    assert ok.status_code == 201


def test_export_of_a_customer_at_the_cap(api, app):
    import time

    from profiles.activity import MAX_ORDERS

    cid = create(api)
    activity = app.extensions["rapport"].profiles.activity
    lines = [{"product_id": f"P{n}", "quantity": 1, "unit_price": "1.25"} for n in range(20)]
    for start in range(0, MAX_ORDERS, 250):
        batch = [
            (cid, order(f"o-{i}", at=1_700_000_000 + i * 60, lines=lines))
            for i in range(start, start + 250)
        ]
        assert not any(isinstance(r, Exception) for r in activity.record_purchases(batch))
    started = time.perf_counter()
    resp = api.get(f"/v1/profiles/{cid}/export")
    seconds = time.perf_counter() - started
    assert resp.status_code == 200
    assert len(resp.json["activity"]["purchases"]) == MAX_ORDERS
    # measured on this machine: ~1 s and ~3.5 MB for 2,000 orders of 20 lines
    assert seconds < 10 and len(resp.data) < 10_000_000, (seconds, len(resp.data))
    over = api.post(f"/v1/profiles/{cid}/purchases", json=order("o-new"))
    assert over.status_code == 422
