"""What profiles/customer_view.py reads about a customer (one Redis round trip in the common
case, the same answer as the store on the slow paths: merge alias, very many orders), and the
model's context built from it (recommend/model/context.py)."""

from __future__ import annotations

import pytest

from profiles import customer_view
from profiles.activity import ActivityStore
from profiles.customer_view import CustomerView
from profiles.keys import Keys
from profiles.store import ProfileStore
from recommend.model import context

KEYS = Keys("rp")
NOW = 1_760_000_000.0


@pytest.fixture
def view(redis_client):
    return CustomerView(redis_client, KEYS)


@pytest.fixture
def stores(redis_client):
    activity = ActivityStore(redis_client, KEYS, clock=lambda: NOW)
    return ProfileStore(redis_client, KEYS, clock=lambda: NOW, activity=activity), activity


def _purchase(order_id: str, product_id: str) -> dict:
    return {
        "order_id": order_id,
        "lines": [{"product_id": product_id, "quantity": 2, "unit_price": "1.50"}],
        "currency": "GBP",
        "purchased_at": "2025-10-01T10:00:00+00:00",
        "channel": "web",
    }


def _calls(redis_client) -> dict[str, int]:
    stats = redis_client.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"}


def test_profile_features_and_orders_in_one_round_trip(redis_client, stores, view):
    profiles, activity = stores
    profiles.create(
        {"country": "FR", "locale": "fr-FR", "loyalty_tier": "gold",
         "preferences": {"categories": ["kitchen"]}},
        customer_id="c1",
    )  # fmt: skip
    activity.record_purchase("c1", _purchase("o1", "P1"))
    activity.record_purchase("c1", _purchase("o2", "P2"))
    context.customer_context(view, "c1")  # loads the script once
    before = _calls(redis_client)
    ctx = context.customer_context(view, "c1")
    after = _calls(redis_client)
    delta = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    # one script call from the client; Redis counts the three reads it makes inside it too
    assert delta == {"evalsha": 1, "hgetall": 1, "zrevrange": 1, "hmget": 1}
    assert ctx.customer_id == "c1" and ctx.has_profile
    assert (ctx.country, ctx.locale, ctx.tier) == ("FR", "fr-FR", "gold")
    assert ctx.preferred_categories == ["kitchen"]
    assert sorted(ln.product_id for ln in ctx.purchases) == ["P1", "P2"]
    assert {ln.quantity for ln in ctx.purchases} == {2}


def test_unknown_customer_and_orders_without_a_profile(redis_client, stores, view):
    _, activity = stores
    empty = context.customer_context(view, "nobody")
    assert empty.customer_id == "nobody" and not empty.has_profile and empty.purchases == []
    activity.record_purchase("c9", _purchase("o1", "P9"))
    only_orders = context.customer_context(view, "c9")
    assert not only_orders.has_profile
    assert [ln.product_id for ln in only_orders.purchases] == ["P9"]
    assert context.customer_context(view, "bad id!").customer_id is None


def test_a_merged_id_answers_with_the_target(redis_client, stores, view):
    profiles, activity = stores
    profiles.create({"country": "DE"}, customer_id="src")
    profiles.create({"country": "GB"}, customer_id="dst")
    activity.record_purchase("src", _purchase("o1", "P1"))
    activity.record_purchase("dst", _purchase("o2", "P2"))
    profiles.merges.merge("src", "dst", actor="test")
    ctx = context.customer_context(view, "src")
    assert ctx.customer_id == "dst" and ctx.country == "GB"
    assert sorted(ln.product_id for ln in ctx.purchases) == ["P1", "P2"]


def test_more_orders_than_the_cap_reads_the_newest(redis_client, stores, view, monkeypatch):
    profiles, activity = stores
    profiles.create({"country": "GB"}, customer_id="c2")
    for i in range(5):
        p = _purchase(f"o{i}", f"P{i}")
        p["purchased_at"] = f"2025-10-0{i + 1}T10:00:00+00:00"
        activity.record_purchase("c2", p)
    monkeypatch.setattr(customer_view, "MAX_ORDERS", 3)
    ctx = context.customer_context(view, "c2")
    assert sorted(ln.product_id for ln in ctx.purchases) == ["P2", "P3", "P4"]
    assert ctx.country == "GB"


def test_offered_products_ride_along_in_the_same_script(redis_client, stores, view):
    profiles, _ = stores
    profiles.create({"country": "FR"}, customer_id="c1")
    redis_client.zadd(KEYS.offered_products("c1"), {"old": NOW - 100, "P1": NOW - 10, "P2": NOW})
    view.read("c1", offered_since=NOW - 50)  # loads the script
    before = _calls(redis_client)
    record = view.read("c1", offered_since=NOW - 50)
    assert record.customer_id == "c1" and record.offered == {"P1", "P2"}
    after = _calls(redis_client)
    delta = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    assert delta == {"evalsha": 1, "hgetall": 1, "zrangebyscore": 1, "zrevrange": 1}
    assert view.read("c1").offered is None  # not asked for
    assert view.read("nobody", offered_since=0.0).offered == set()
    assert view.read("bad id!", offered_since=0.0).offered == set()


def test_offered_products_of_a_merged_id_are_the_targets(redis_client, stores, view):
    profiles, _ = stores
    profiles.create({"country": "DE"}, customer_id="src")
    profiles.create({"country": "GB"}, customer_id="dst")
    profiles.merges.merge("src", "dst", actor="test")
    redis_client.zadd(KEYS.offered_products("dst"), {"P1": NOW, "old": NOW - 100})
    record = view.read("src", offered_since=NOW - 50)
    assert record.customer_id == "dst" and record.offered == {"P1"}


def test_unreadable_orders_are_skipped_not_fatal(redis_client, stores, view):
    profiles, activity = stores
    profiles.create({"country": "GB"}, customer_id="c3")
    activity.record_purchase("c3", _purchase("o1", "P1"))
    redis_client.hset(KEYS.orders("c3"), mapping={"bad": "{not json", "list": "[1, 2]"})
    assert [p["order_id"] for p in view.read("c3").purchases] == ["o1"]
    assert view.bought_products("c3") == ["P1"]
    redis_client.hset(KEYS.orders("c3"), "noline", '{"order_id": "o2", "lines": [{"sku": 1}]}')
    ctx = context.customer_context(view, "c3")  # a line without a product id: order skipped
    assert [ln.product_id for ln in ctx.purchases] == ["P1"]


def test_bought_products_once_each(redis_client, stores, view):
    _, activity = stores
    activity.record_purchase("c4", _purchase("o1", "P1"))
    activity.record_purchase("c4", _purchase("o2", "P1"))
    activity.record_purchase("c4", _purchase("o3", "P2"))
    assert sorted(view.bought_products("c4")) == ["P1", "P2"]
    assert view.bought_products("nobody") == []


def test_profile_docs_of_many_customers(redis_client, stores, view):
    profiles, _ = stores
    profiles.create({"country": "FR"}, customer_id="a1")
    profiles.create({"country": "DE"}, customer_id="a2")
    docs = view.profile_docs(["a1", "a2", "missing", "bad id!"])
    assert sorted(docs) == ["a1", "a2"]
    assert docs["a1"]["country"] == "FR" and docs["a2"]["country"] == "DE"
