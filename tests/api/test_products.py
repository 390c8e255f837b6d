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
