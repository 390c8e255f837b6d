"""Batch ingest (issue 7) without HTTP: ProfileStore.resolve_many and
ActivityStore.record_events_many give what resolve / record_events give one by one."""

from __future__ import annotations

import pytest
import redis as redis_lib

from core.errors import InvalidInput
from profiles.activity import ActivityStore
from profiles.errors import ProfileNotFound
from profiles.keys import Keys
from profiles.store import ProfileStore

KEYS = Keys("rp")
T0 = 1_790_000_000.0
NOW = 1_700_000_000.0
AT = "2023-11-14T10:00:00Z"
CATS = {"P1": "mugs", "P2": "bags"}


def category_of(product_ids):
    return {p: CATS[p] for p in product_ids if p in CATS}


@pytest.fixture
def profiles(redis_client):
    return ProfileStore(redis_client, KEYS, lambda: T0)


@pytest.fixture
def activity(redis_client):
    return ActivityStore(redis_client, KEYS, clock=lambda: NOW, category_of=category_of)


def test_resolve_many_agrees_with_resolve(profiles):
    a = profiles.create({"first_name": "A"})
    b = profiles.create({"first_name": "B"})
    c = profiles.create({"first_name": "C"})
    live = profiles.create({"first_name": "L"})
    profiles.merges.merge(a.id, b.id, actor="t")
    profiles.merges.merge(b.id, c.id, actor="t")  # a -> b -> c: two hops
    ids = [live.id, a.id, b.id, c.id, live.id, "c_unknown", "", "x{y}", "a" * 65]
    got = profiles.resolve_many(ids)
    assert list(got) == list(dict.fromkeys(ids))
    for cid in ids:
        try:
            expected = profiles.resolve(cid)
        except ProfileNotFound:
            expected = None
        assert got[cid] == expected, cid
    assert got[a.id] == c.id and got[live.id] == live.id
    assert profiles.resolve_many([]) == {}


def view(mid, product="P1"):
    return {"message_id": mid, "type": "view", "at": AT, "product_id": product}


def purchase(mid, order_id, currency="GBP", product="P1"):
    return {
        "message_id": mid,
        "type": "purchase",
        "at": AT,
        "order_id": order_id,
        "currency": currency,
        "channel": "web",
        "lines": [{"product_id": product, "quantity": 2, "unit_price": "2.50"}],
    }


def support(mid, status):
    return {"message_id": mid, "type": "support_contact", "at": AT, "contact_id": "T-1",
            "status": status, "topic": "late"}  # fmt: skip


BATCHES = [
    {
        "x": [view("m1"), view("m1"), purchase("p1", "o1"), purchase("p2", "o1", "EUR")],
        "y": [purchase("p1", "o1", product="P2"), support("s1", "opened"), view("m1")],
        "z": [view("m9")],
        "w": [purchase("p1", "o1"), purchase("p1", "o1")],  # the same message twice
        "e": [],
    },
    {
        "x": [view("m1"), purchase("p1", "o1"), purchase("p3", "o1", "USD"), view("m2")],
        "y": [support("s2", "resolved"), purchase("p4", "o2")],
        "v": [purchase("p5", "o5")],  # one purchase alone
    },
]


def test_record_events_many_matches_record_events_per_customer(activity, redis_client):
    # the spend of "v" would overflow: its purchase is "invalid" both ways
    for cid in ("v-many", "v-one"):
        redis_client.hset(KEYS.traits(cid), "spend:GBP", str(2**63 - 10))
    for batches in BATCHES:
        many = activity.record_events_many({f"{c}-many": e for c, e in batches.items()})
        one = {f"{c}-one": activity.record_events(f"{c}-one", e) for c, e in batches.items()}
        assert {c.removesuffix("-many"): r for c, r in many.items()} == {
            c.removesuffix("-one"): r for c, r in one.items()
        }
    assert many["x-many"] == ["duplicate", "duplicate", "conflict", "accepted"]
    assert many["v-many"] == ["invalid"]
    for cid in "xyzwv":
        assert activity.traits(f"{cid}-many") == activity.traits(f"{cid}-one")
        assert [e["message_id"] for e in activity.list_events(f"{cid}-many")] == [
            e["message_id"] for e in activity.list_events(f"{cid}-one")
        ]
        purchases = activity.list_purchases(f"{cid}-many")
        assert purchases == activity.list_purchases(f"{cid}-one")
    assert set(activity.traits("y-many")["favourite_categories"]) == {"bags", "mugs"}
    assert activity.traits("y-many")["open_support_contacts"] == 0


def test_record_events_many_validates_before_writing(activity, redis_client):
    with pytest.raises(InvalidInput):
        activity.record_events_many({"a": [view("m1")], "b": [{"message_id": "m2"}]})
    assert not redis_client.exists(KEYS.events("a"))
    assert activity.record_events_many({}) == {}


def test_a_redis_error_of_one_customer_is_raised(activity, redis_client):
    redis_client.set(KEYS.events("b"), "not a stream")  # WRONGTYPE for b's events script
    with pytest.raises(redis_lib.ResponseError, match="WRONGTYPE"):
        activity.record_events_many({"a": [view("m1")], "b": [view("m1")]})
