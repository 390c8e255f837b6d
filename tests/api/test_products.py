"""Catalog over HTTP: scopes, upsert (201/200), batch with per-item results, list, delete."""

from __future__ import annotations

import pytest

PROBLEM = "application/problem+json"


def test_put_creates_then_replaces(api):
    body = {"name": "JUMBO BAG RED RETROSPOT", "price": "1.95", "currency": "GBP"}
    resp = api.put("/v1/products/85099B", json=body)
    assert resp.status_code == 201
    assert resp.json["category"] == "bags" and resp.json["in_stock"] is True
    resp = api.put("/v1/products/85099B", json={**body, "in_stock": False, "tags": ["red"]})
    assert resp.status_code == 200 and resp.json["in_stock"] is False
    got = api.get("/v1/products/85099B").json
    assert got["tags"] == ["red"] and got["price"] == "1.95"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": "1.95", "currency": "GBP"}, "name"),
        ({"name": "x", "price": "1,95", "currency": "GBP"}, "price"),
        ({"name": "x", "price": "1.95", "currency": "pounds"}, "currency"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "price": "1.95"}, "currency"),
        ({"name": "x", "product_id": "OTHER"}, "product_id"),
    ],
)
def test_bad_products_are_422_with_the_field(api, body, field):
    resp = api.put("/v1/products/P1", json=body)
    assert resp.status_code == 422
    assert resp.content_type == PROBLEM
    assert resp.json["errors"][0]["field"] == field


def test_scopes(api_as, client):
    assert client.get("/v1/products").status_code == 401
    reader = api_as("recommend:read")
    assert reader.get("/v1/products").status_code == 200
    assert reader.put("/v1/products/P1", json={"name": "x"}).status_code == 403
    assert reader.post("/v1/products/batch", json={"items": []}).status_code == 403
    assert reader.delete("/v1/products/P1").status_code == 403
    assert api_as("profiles:read").get("/v1/products/P1").status_code == 403


def test_batch_gives_one_result_per_item(api):
    items = [
        {"product_id": "A1", "name": "RED MUG"},
        {"product_id": "A2"},
        {"product_id": "bad id", "name": "x"},
        {"product_id": "A3", "name": "CHRISTMAS CARD", "price": "0.42", "currency": "GBP"},
    ]
    resp = api.post("/v1/products/batch", json={"items": items})
    assert resp.status_code == 200
    assert [r["status"] for r in resp.json["items"]] == ["created", "invalid", "invalid", "created"]
    assert resp.json["items"][1]["field"] == "name"
    assert api.get("/v1/products/A3").json["category"] == "christmas"
    assert api.post("/v1/products/batch", json={"items": []}).status_code == 422
    assert api.post("/v1/products/batch", json={"items": [{}] * 501}).status_code == 422


def test_list_filters_and_pages(api):
    for i in range(5):
        api.put(
            f"/v1/products/L{i}",
            json={
                "name": f"item {i}",
                "category": "bags" if i % 2 else "garden",
                "in_stock": i != 1,
            },
        )
    first = api.get("/v1/products?limit=2").json
    assert [p["product_id"] for p in first["items"]] == ["L0", "L1"]
    second = api.get(f"/v1/products?limit=2&cursor={first['next_cursor']}").json
    assert [p["product_id"] for p in second["items"]] == ["L2", "L3"]
    bags = api.get("/v1/products?category=bags&in_stock=true").json
    assert [p["product_id"] for p in bags["items"]] == ["L3"] and bags["next_cursor"] is None
    assert api.get("/v1/products?limit=0").status_code == 422


def test_delete_and_404(api):
    api.put("/v1/products/D1", json={"name": "x"})
    assert api.delete("/v1/products/D1").status_code == 204
    resp = api.get("/v1/products/D1")
    assert resp.status_code == 404 and resp.content_type == PROBLEM
    assert api.delete("/v1/products/D1").status_code == 404


# -- read many: GET /v1/products?ids= ------------------------------------------------------------
def test_read_many_gives_the_found_in_the_order_asked_and_names_the_missing(api):
    for pid in ("M1", "M2", "M3"):
        api.put(f"/v1/products/{pid}", json={"name": f"item {pid}"})
    resp = api.get("/v1/products?ids=M3,NOPE,M1,M3,M2,GONE")
    assert resp.status_code == 200
    assert [p["product_id"] for p in resp.json["items"]] == ["M3", "M1", "M2"]  # once each
    assert resp.json["items"][0]["name"] == "item M3"
    assert resp.json["missing"] == ["NOPE", "GONE"]
    assert resp.json["next_cursor"] is None
    assert api.get("/v1/products?ids=NOPE").json == {
        "items": [],
        "next_cursor": None,
        "missing": ["NOPE"],
    }
    assert "missing" not in api.get("/v1/products").json  # the paged list is unchanged


def test_read_many_takes_at_most_100_ids(api):
    api.put("/v1/products/M1", json={"name": "x"})
    ids = ",".join(["M1"] + [f"X{i}" for i in range(99)])
    resp = api.get(f"/v1/products?ids={ids}")
    assert resp.status_code == 200 and len(resp.json["missing"]) == 99
    resp = api.get(f"/v1/products?ids={ids},X100")
    assert resp.status_code == 422 and resp.content_type == PROBLEM
    assert resp.json["errors"][0]["field"] == "ids"
    assert resp.json["errors"][0]["location"] == "query"


@pytest.mark.parametrize("ids", ["bad id", "M1,,M2", "M1,", "", "-M1", "M1,{x}", "A" * 65])
def test_read_many_checks_each_id_like_a_product_id(api, ids):
    resp = api.get("/v1/products", query_string={"ids": ids})
    assert resp.status_code == 422 and resp.content_type == PROBLEM
    assert resp.json["errors"][0]["field"] == "ids"


@pytest.mark.parametrize(
    "other", ["category=bags", "in_stock=true", "active=false", "cursor=M1", "limit=50"]
)
def test_read_many_does_not_combine_with_paging_or_filters(api, other):
    resp = api.get(f"/v1/products?ids=M1&{other}")
    assert resp.status_code == 422 and resp.content_type == PROBLEM
    field = other.split("=")[0]
    assert [e["field"] for e in resp.json["errors"]] == [field]
    assert "ids" in resp.json["errors"][0]["message"]


def test_read_many_scope_is_recommend_read(api_as, client):
    assert client.get("/v1/products?ids=M1").status_code == 401
    assert api_as("recommend:read").get("/v1/products?ids=M1").status_code == 200
    resp = api_as("profiles:read").get("/v1/products?ids=M1")
    assert resp.status_code == 403 and resp.json["required_scope"] == "recommend:read"


def test_catalog_prices_are_stored_as_purchases_store_money(api):
    body = {"name": "Tea towel", "price": "8.5", "currency": "EUR"}
    assert api.put("/v1/products/TT-1", json=body).status_code in (200, 201)
    assert api.get("/v1/products/TT-1").json["price"] == "8.50"
    body = {"name": "Yen item", "price": "300", "currency": "JPY"}
    assert api.put("/v1/products/JP-1", json=body).status_code in (200, 201)
    assert api.get("/v1/products/JP-1").json["price"] == "300"
    body = {"name": "Fine", "price": "1.2345", "currency": "GBP"}
    assert api.put("/v1/products/FN-1", json=body).status_code in (200, 201)
    assert api.get("/v1/products/FN-1").json["price"] == "1.2345"  # never rounded away
