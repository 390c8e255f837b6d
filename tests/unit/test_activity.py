"""ActivityStore against a real Redis: purchases, paging, events, traits, merge moves."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from core.errors import InvalidInput
from profiles.activity import ActivityStore
from profiles.errors import OrderConflict
from profiles.keys import Keys

KEYS = Keys("rp")
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CATS = {"P1": "mugs", "P2": "bags", "P3": "mugs", "P4": "toys", "P5": "lamps"}


def category_of(product_ids):
    return {p: CATS[p] for p in product_ids if p in CATS}


@pytest.fixture
def store(redis_client):
    return ActivityStore(redis_client, KEYS, clock=lambda: NOW, category_of=category_of)


def ln(product_id, quantity, unit_price):
    return {"lines": [{"product_id": product_id, "quantity": quantity, "unit_price": unit_price}]}


def order(oid, at="2023-11-01T10:00:00+01:00", lines=None, currency="GBP", channel="web"):
    return {
        "order_id": oid,
        "lines": lines or [{"product_id": "P1", "quantity": 2, "unit_price": "2.55"}],
        "currency": currency,
        "purchased_at": at,
        "channel": channel,
    }


def test_record_purchase_stores_canonical_form_and_traits(store):
    stored, created = store.record_purchase(
        "c1",
        order(
            "o1",
            lines=[
                {"product_id": "P1", "quantity": 3, "unit_price": 0.1},
                {"product_id": "P2", "quantity": 1, "unit_price": "0.085"},
            ],
        ),
    )
    assert created
    assert stored["purchased_at"] == "2023-11-01T09:00:00Z"
    assert stored["lines"][0]["unit_price"] == "0.10"
    assert stored["total"] == "0.385"  # 0.30 + 0.085, exact
    traits = store.traits("c1")
    assert traits["order_count"] == 1
    assert traits["item_count"] == 4
    assert traits["total_spend"] == {"GBP": "0.385"}
    assert traits["average_order_value"] == {"GBP": "0.38"}  # half-even to pennies
    assert traits["first_purchase_at"] == traits["last_purchase_at"] == "2023-11-01T09:00:00Z"
    assert traits["days_since_last_purchase"] == 13
    assert traits["favourite_categories"] == ["mugs", "bags"]


def test_replay_returns_stored_and_changes_nothing(store, redis_client):
    first, created = store.record_purchase("c1", order("o1"))
    before = redis_client.hgetall(KEYS.traits("c1"))
    # the same content spelt differently (number price, another offset) is the same purchase
    again = order("o1", at="2023-11-01T09:00:00Z")
    again["lines"][0]["unit_price"] = 2.55
    replay, created_again = store.record_purchase("c1", again)
    assert created and not created_again
    assert replay == first
    assert redis_client.hgetall(KEYS.traits("c1")) == before


def test_same_order_id_with_other_body_conflicts(store):
    store.record_purchase("c1", order("o1"))
    with pytest.raises(OrderConflict) as info:
        store.record_purchase("c1", order("o1", currency="EUR"))
    assert info.value.field == "order_id"
    assert store.traits("c1")["total_spend"] == {"GBP": "5.10"}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"order_id": ""}, "order_id"),
        ({"order_id": "x" * 129}, "order_id"),
        ({"currency": "ZZZ"}, "currency"),
        ({"currency": "gbp"}, "currency"),
        ({"channel": "pigeon"}, "channel"),
        ({"purchased_at": "2023-11-01T10:00:00"}, "purchased_at"),
        ({"purchased_at": "2023-11-17T10:00:00Z"}, "purchased_at"),
        ({"purchased_at": "yesterday"}, "purchased_at"),
        ({"lines": []}, "lines"),
        (ln("P1", 0, "1"), "lines.0.quantity"),
        (ln("P1", 1.5, "1"), "lines.0.quantity"),
        (ln("P1", 1, "-1"), "lines.0.unit_price"),
        (ln("P1", 1, "1e"), "lines.0.unit_price"),
        (
            ln("P1", 1, "0.00001"),
            "lines.0.unit_price",
        ),
        (ln("", 1, "1"), "lines.0.product_id"),
        (ln("P", 1, "NaN"), "lines.0.unit_price"),
        ({"coupon": "X"}, "coupon"),
    ],
)
def test_invalid_purchases_name_the_field(store, redis_client, change, field):
    with pytest.raises(InvalidInput) as info:
        store.record_purchase("c1", {**order("o1"), **change})
    assert info.value.field == field
    assert not redis_client.exists(KEYS.orders("c1"), KEYS.traits("c1"))


def test_list_purchases_newest_first_across_pages(store):
    # 7 orders, two sharing a time, recorded out of order
    times = ["2023-01-05", "2023-01-01", "2023-01-03", "2023-01-03", "2023-01-07", "2023-01-02"]
    for i, day in enumerate(times):
        store.record_purchase("c1", order(f"o{i}", at=f"{day}T12:00:00Z"))
    store.record_purchase("c1", order("o9", at="2023-01-04T12:00:00Z"))
    seen, cursor, pages = [], None, 0
    while True:
        items, cursor = store.list_purchases("c1", limit=3, cursor=cursor)
        seen += [p["order_id"] for p in items]
        pages += 1
        if cursor is None:
            break
    assert seen == ["o4", "o0", "o9", "o3", "o2", "o5", "o1"]
    assert pages == 3
    with pytest.raises(InvalidInput) as info:
        store.list_purchases("c1", limit=101)
    assert info.value.field == "limit"
    with pytest.raises(InvalidInput) as info:
        store.list_purchases("c1", limit=3, cursor="garbage!")
    assert info.value.field == "cursor"


def test_events_dedup_support_contacts_and_purchase_events(store, redis_client):
    at = "2023-11-14T10:00:00Z"
    batch = [
        {"message_id": "m1", "type": "view", "at": at, "product_id": "P1"},
        {"message_id": "m2", "type": "add_to_cart", "at": at, "product_id": "P1", "quantity": 2},
        {"message_id": "m1", "type": "view", "at": at, "product_id": "P1"},
        {
            "message_id": "m3",
            "type": "support_contact",
            "at": at,
            "contact_id": "T-1",
            "status": "opened",
            "topic": "late parcel",
        },
        {
            "message_id": "m4",
            "type": "purchase",
            "at": at,
            "order_id": "o1",
            "lines": [{"product_id": "P2", "quantity": 1, "unit_price": "10"}],
            "currency": "EUR",
            "channel": "app",
        },
    ]
    assert store.record_events("c1", batch) == [
        "accepted",
        "accepted",
        "duplicate",
        "accepted",
        "accepted",
    ]
    assert store.record_events("c1", batch[3:]) == ["duplicate", "duplicate"]
    traits = store.traits("c1")
    assert traits["open_support_contacts"] == 1
    assert traits["order_count"] == 1
    assert traits["total_spend"] == {"EUR": "10.00"}
    assert traits["last_event_at"] == at
    assert store.open_support_contacts("c1")[0]["topic"] == "late parcel"
    resolved = {**batch[3], "message_id": "m5", "status": "resolved"}
    conflicting = {**batch[4], "message_id": "m6", "currency": "USD"}
    assert store.record_events("c1", [resolved, conflicting]) == ["accepted", "conflict"]
    assert store.traits("c1")["open_support_contacts"] == 0
    assert redis_client.xlen(KEYS.events("c1")) == 5
    assert [e["message_id"] for e in store.list_events("c1")] == ["m5", "m4", "m3", "m2", "m1"]
    with pytest.raises(InvalidInput) as info:
        store.record_events("c1", [{"message_id": "m7", "type": "view", "at": at}])
    assert info.value.field == "product_id"


def test_message_ids_expire_after_the_window(redis_client):
    clock = [NOW]
    store = ActivityStore(redis_client, KEYS, clock=lambda: clock[0])
    event = {"message_id": "m1", "type": "view", "at": "2023-11-14T10:00:00Z", "product_id": "P"}
    assert store.record_events("c1", [event]) == ["accepted"]
    clock[0] += 6 * 86_400
    assert store.record_events("c1", [event]) == ["duplicate"]
    clock[0] += 2 * 86_400
    assert store.record_events("c1", [event]) == ["accepted"]


def _expected(purchases):
    spend, counts, items = {}, {}, 0
    for p in purchases:
        total = sum(Decimal(str(ln["unit_price"])) * ln["quantity"] for ln in p["lines"])
        spend[p["currency"]] = spend.get(p["currency"], Decimal(0)) + total
        counts[p["currency"]] = counts.get(p["currency"], 0) + 1
        items += sum(ln["quantity"] for ln in p["lines"])
    return spend, counts, items


def test_traits_match_purchases_exactly(store):
    purchases = []
    for i in range(40):
        lines = [
            {"product_id": f"P{1 + (i + j) % 5}", "quantity": 1 + (i * j) % 7, "unit_price": p}
            for j, p in enumerate(["0.10", "0.20", "19.99", "0.0105"][: 1 + i % 4])
        ]
        p = order(f"o{i}", at=f"2023-10-{1 + i % 28:02d}T08:00:00Z", lines=lines,
                  currency=["GBP", "EUR"][i % 2])  # fmt: skip
        purchases.append(p)
        store.record_purchase("c1", p)
    spend, counts, items = _expected(purchases)
    traits = store.traits("c1")
    assert traits["order_count"] == 40
    assert traits["item_count"] == items
    assert {c: Decimal(v) for c, v in traits["total_spend"].items()} == spend
    assert traits["first_purchase_at"] == "2023-10-01T08:00:00Z"
    assert traits["last_purchase_at"] == "2023-10-28T08:00:00Z"
    for currency, total in spend.items():
        aov = Decimal(traits["average_order_value"][currency])
        assert abs(aov - total / counts[currency]) <= Decimal("0.005")


def test_concurrent_purchases_on_one_customer(redis_client):
    errors = []
    start = threading.Barrier(20)

    def work(n):
        # one client shared by the threads (redis-py clients are thread-safe), so this test
        # also runs on the Cluster (tests/cluster/test_cluster_unit_activity.py)
        store = ActivityStore(redis_client, KEYS, clock=lambda: NOW, category_of=category_of)
        start.wait()
        try:
            for k in range(5):
                body = order(f"t{n}-{k}", at=f"2023-11-{1 + k:02d}T10:00:00Z")
                store.record_purchase("c1", body)
                store.record_purchase("c1", body)  # a replay changes nothing
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = ActivityStore(redis_client, KEYS, clock=lambda: NOW)
    assert redis_client.hlen(KEYS.orders("c1")) == 100
    traits = store.traits("c1")
    assert traits["order_count"] == 100
    assert traits["total_spend"] == {"GBP": "510.00"}
    assert traits["item_count"] == 200
    assert redis_client.zscore(KEYS.categories("c1"), "mugs") == 200


def _state(redis_client, cid):
    out = {}
    for key in KEYS.customer_keys(cid):
        kind = redis_client.type(key)
        if kind == "hash":
            out[key] = redis_client.hgetall(key)
        elif kind == "zset":
            out[key] = redis_client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key] = redis_client.xrange(key)
    return out


def test_absorb_and_remove_are_idempotent_inverses(store, redis_client):
    at = "2023-11-14T10:00:00Z"
    store.record_purchase("t", order("shared"))
    store.record_purchase("t", order("t1", at="2023-09-01T00:00:00Z"))
    store.record_events("t", [{"message_id": "tm", "type": "view", "at": at, "product_id": "P1"}])
    store.record_purchase("s", order("shared", currency="EUR"))  # same id, another body
    store.record_purchase("s", order("s1", lines=[{"product_id": "P4", "quantity": 9,
                                                    "unit_price": "1.5"}]))  # fmt: skip
    store.record_events(
        "s",
        [
            {"message_id": "sm", "type": "view", "at": at, "product_id": "P4"},
            {"message_id": "sc", "type": "support_contact", "at": at, "contact_id": "T9",
             "status": "opened"},
        ],
    )  # fmt: skip
    target_before, source_before = _state(redis_client, "t"), _state(redis_client, "s")
    source_traits = store.traits("s")

    snap = store.snapshot("s")
    store.absorb("t", snap)
    store.absorb("t", snap)  # idempotent
    store.remove("s", snap)  # drain the source
    store.remove("s", snap)
    merged = store.traits("t")
    assert merged["order_count"] == 4
    assert merged["total_spend"] == {"EUR": "5.10", "GBP": "23.70"}
    assert merged["favourite_categories"][0] == "toys"
    assert merged["open_support_contacts"] == 1
    ids = sorted(p["order_id"] for p in store.snapshot("t")["purchases"])
    assert ids == ["s1", "shared", "shared", "t1"]
    assert store.traits("s")["order_count"] == 0
    # the source's index of its outbox events stays (the events were written as the source's;
    # erasing the merged person scrubs them through the alias's index)
    left = [k for k in KEYS.customer_keys("s") if redis_client.exists(k)]
    assert left == [KEYS.outbox_ids("s")]
    # a duplicate of an absorbed message id is recognised on the target
    dup = {"message_id": "sm", "type": "view", "at": at, "product_id": "P4"}
    assert store.record_events("t", [dup]) == ["duplicate"]

    store.remove("t", snap)  # unmerge
    store.remove("t", snap)
    store.absorb("s", snap)
    store.absorb("s", snap)
    assert _state(redis_client, "t") == target_before
    assert _state(redis_client, "s") == source_before
    assert store.traits("s") == source_traits


def test_iter_all_purchases_covers_every_customer(store):
    for cid in ("a", "b", "c"):
        store.record_purchase(cid, order(f"{cid}-1"))
        store.record_purchase(cid, order(f"{cid}-2", at="2023-10-01T00:00:00Z"))
    got = sorted((cid, p["order_id"]) for cid, p in store.iter_all_purchases())
    assert got == [(c, f"{c}-{n}") for c in "abc" for n in (1, 2)]


def test_spend_overflow_is_invalid_input_and_other_errors_pass_through(store, redis_client):
    import redis as redis_lib

    redis_client.hset(KEYS.traits("c1"), "spend:GBP", str(2**63 - 10))
    with pytest.raises(InvalidInput) as info:
        store.record_purchase("c1", order("o1"))
    assert info.value.field == "lines"
    assert not redis_client.exists(KEYS.orders("c1"))
    # another error of the first write (here WRONGTYPE) is not reported as an overflow
    redis_client.delete(KEYS.traits("c1"))
    redis_client.set(KEYS.traits("c1"), "not a hash")
    with pytest.raises(redis_lib.ResponseError, match="WRONGTYPE"):
        store.record_purchase("c1", order("o1"))
    assert not redis_client.exists(KEYS.orders("c1"))


def test_purchase_event_that_cannot_be_stored_is_invalid_not_a_batch_failure(store, redis_client):
    redis_client.hset(KEYS.traits("c1"), "spend:GBP", str(2**63 - 10))
    at = "2023-11-14T10:00:00Z"
    events = [
        {"message_id": "m1", "type": "purchase", "at": at, **ln("P1", 1, "5"), "order_id": "o1",
         "currency": "GBP", "channel": "web"},
        {"message_id": "m2", "type": "view", "at": at, "product_id": "P1"},
    ]  # fmt: skip
    assert store.record_events("c1", events) == ["invalid", "accepted"]
    assert not redis_client.exists(KEYS.orders("c1"))
