"""The catalog store: validation, upsert, category indexes, paging with filters, delete."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from profiles.keys import Keys
from recommend.catalog.products import Catalog, normalise_product
from recommend.errors import ProductNotFound

KEYS = Keys("rp")


@pytest.fixture
def catalog(redis_client):
    return Catalog(redis_client, KEYS, clock=lambda: 1_700_000_000.0)


def product(pid: str, **extra) -> dict:
    return {
        "product_id": pid,
        "name": f"Product {pid}",
        "price": "2.50",
        "currency": "GBP",
        **extra,
    }


def test_upsert_creates_then_updates_and_moves_category(catalog, redis_client):
    doc, created = catalog.upsert(product("A1", category="bags"))
    assert created and doc["category"] == "bags" and doc["in_stock"] is True
    assert catalog.get("A1")["price"] == "2.50"
    _, created = catalog.upsert(product("A1", category="kitchen & tea"))
    assert not created
    assert redis_client.zrange(KEYS.category_index("bags"), 0, -1) == []
    assert redis_client.zrange(KEYS.category_index("kitchen & tea"), 0, -1) == ["A1"]
    assert catalog.categories() == {"kitchen & tea": 1}


def test_category_is_derived_when_missing(catalog):
    doc, _ = catalog.upsert({"product_id": "85123A", "name": "WHITE HANGING HEART T-LIGHT HOLDER"})
    assert doc["category"] == "candles & lights"
    assert catalog.category_of(["85123A", "nope"]) == {"85123A": "candles & lights"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"product_id": "a b", "name": "x"}, "product_id"),
        ({"product_id": "A"}, "name"),
        ({"product_id": "A", "name": "x", "price": "abc", "currency": "GBP"}, "price"),
        ({"product_id": "A", "name": "x", "price": "-1", "currency": "GBP"}, "price"),
        ({"product_id": "A", "name": "x", "price": 1.5, "currency": "GBP"}, "price"),
        ({"product_id": "A", "name": "x", "price": "1.5"}, "currency"),
        ({"product_id": "A", "name": "x", "in_stock": "yes"}, "in_stock"),
        ({"product_id": "A", "name": "x", "tags": ["a" * 41]}, "tags.0"),
        ({"product_id": "A", "name": "x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_products_name_the_field(body, field):
    with pytest.raises(InvalidInput) as err:
        normalise_product(body)
    assert err.value.field == field


def test_batch_reports_each_item(catalog):
    results = catalog.upsert_many(
        [product("B1"), {"product_id": "B2"}, product("B1"), product("B3", category="bags")]
    )
    assert [r["status"] for r in results] == ["created", "invalid", "invalid", "created"]
    assert results[1]["field"] == "name"
    assert "twice" in results[2]["error"]
    assert [r["status"] for r in catalog.upsert_many([product("B1")])] == ["updated"]


def test_list_pages_with_filters(catalog):
    for i in range(7):
        catalog.upsert(product(f"L{i}", category="bags" if i % 2 else "garden", in_stock=i != 3))
    page, cursor = catalog.list(limit=3)
    assert [p["product_id"] for p in page] == ["L0", "L1", "L2"] and cursor == "L2"
    page, cursor = catalog.list(limit=3, cursor=cursor)
    assert [p["product_id"] for p in page] == ["L3", "L4", "L5"]
    page, cursor = catalog.list(limit=3, cursor=cursor)
    assert [p["product_id"] for p in page] == ["L6"] and cursor is None
    bags, _ = catalog.list(category="bags", in_stock=True)
    assert [p["product_id"] for p in bags] == ["L1", "L5"]
    assert catalog.count() == 7


def test_delete(catalog, redis_client):
    catalog.upsert(product("D1", category="bags"))
    catalog.delete("D1")
    with pytest.raises(ProductNotFound):
        catalog.get("D1")
    with pytest.raises(ProductNotFound):
        catalog.delete("D1")
    assert redis_client.zcard(KEYS.category_index("bags")) == 0
    assert catalog.categories() == {}
