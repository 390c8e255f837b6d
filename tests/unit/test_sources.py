"""Training data read from Redis: purchases (activity store), profile features, catalog."""

from __future__ import annotations

import pytest

from profiles import activity
from profiles.keys import Keys
from profiles.store import ProfileStore
from recommend.catalog.products import Catalog
from recommend.model.dataset import load_from_redis, profile_features, purchase_lines
from tests.recsys import products, purchase

KEYS = Keys("rp")


def test_profile_features_reads_the_profile_document():
    doc = {
        "country": "AT",
        "locale": "de-AT",
        "loyalty_tier": "gold",
        "preferences": {"categories": ["bags", "garden"]},
    }
    assert profile_features(doc) == {
        "country": "AT",
        "locale": "de-AT",
        "tier": "gold",
        "preferred_categories": ["bags", "garden"],
    }
    assert profile_features(None)["preferred_categories"] == []


def test_purchase_lines_accept_epoch_or_iso_times():
    lines = purchase_lines("c1", purchase("o1", 1_700_000_000.0, "P001", "P002", quantity=3))
    assert [(ln.product_id, ln.quantity, ln.order_id) for ln in lines] == [
        ("P001", 3.0, "o1"),
        ("P002", 3.0, "o1"),
    ]
    iso = purchase_lines(
        "c1", {**purchase("o2", 0, "P003"), "purchased_at": "2023-11-14T22:13:20Z"}
    )
    assert iso[0].purchased_at == 1_700_000_000.0


@pytest.mark.skipif(
    not hasattr(activity, "ActivityStore"), reason="profiles.activity.ActivityStore not built yet"
)
def test_load_from_redis_reads_purchases_profiles_and_catalog(redis_client):
    Catalog(redis_client, KEYS).upsert_many(list(products().values()))
    ProfileStore(redis_client, KEYS).create(
        {"country": "FR", "preferences": {"categories": ["bags"]}}, customer_id="c1"
    )
    store = activity.ActivityStore(redis_client, KEYS)
    store.record_purchase("c1", purchase("o1", 1_700_000_000.0, "P001", "P002"))
    store.record_purchase("c1", purchase("o2", 1_700_086_400.0, "P001"))
    data = load_from_redis(redis_client, KEYS)
    assert sorted((ln.order_id, ln.product_id) for ln in data.lines) == [
        ("o1", "P001"),
        ("o1", "P002"),
        ("o2", "P001"),
    ]
    assert data.customers["c1"]["country"] == "FR"
    assert data.customers["c1"]["preferred_categories"] == ["bags"]
    assert len(data.products) == 60
