"""ProfileStore.get reads the profile, its traits and extra reads in one pipeline: live
profiles, aliases, a target merged away between reads, erased and unknown ids."""

from __future__ import annotations

import pytest
import redis

from profiles.activity import ActivityStore
from profiles.errors import ProfileNotFound
from profiles.keys import Keys
from profiles.store import ProfileStore

KEYS = Keys("rp")
NOW = 1_700_000_000.0


class RacingStore(ProfileStore):
    """Runs ``after_resolve`` hooks once each, right after :meth:`resolve` answers: a merge
    landing between following an alias and reading its target."""

    after_resolve: list

    def resolve(self, customer_id: str) -> str:
        target = super().resolve(customer_id)
        if self.after_resolve:
            self.after_resolve.pop(0)(target)
        return target


@pytest.fixture
def store(redis_client):
    activity = ActivityStore(redis_client, KEYS, clock=lambda: NOW)
    racing = RacingStore(redis_client, KEYS, lambda: NOW, activity)
    racing.after_resolve = []
    return racing


def buy(store, cid, oid, price="2.50"):
    store.activity.record_purchase(
        cid,
        {
            "order_id": oid,
            "lines": [{"product_id": "P1", "quantity": 1, "unit_price": price}],
            "currency": "GBP",
            "purchased_at": "2023-11-01T10:00:00+00:00",
            "channel": "web",
        },
    )


def order_count(pipe, cid):
    pipe.hget(KEYS.traits(cid), "order_count")
    pipe.exists(KEYS.profile(cid))
    return lambda replies: (cid, replies[0], replies[1])


def commands(client) -> dict[str, int]:
    return {k: v["calls"] for k, v in client.info("commandstats").items()}


def test_live_profile_is_one_pipeline_without_resolve(store, redis_client):
    if not isinstance(redis_client, redis.Redis):
        pytest.skip("commandstats are per node on a Cluster")
    ada = store.create({"first_name": "Ada"})
    buy(store, ada.id, "o1")
    redis_client.config_resetstat()
    profile = store.get(ada.id)
    calls = commands(redis_client)
    assert "cmdstat_hmget" not in calls  # no resolve for a live profile
    assert calls["cmdstat_hgetall"] == 2  # the profile hash and the traits hash
    assert profile.traits == store.activity.traits(ada.id)
    assert profile.traits["order_count"] == 1 and profile.traits["total_spend"] == {"GBP": "2.50"}


def test_alias_answers_with_target_and_its_traits_and_extra_reads(store):
    a = store.create({"first_name": "A"})
    b = store.create({"first_name": "B"})
    c = store.create({"first_name": "C"})
    buy(store, a.id, "oa")
    buy(store, c.id, "oc")
    store.merges.merge(a.id, b.id, actor="t")
    store.merges.merge(b.id, c.id, actor="t")
    profile = store.get(a.id, extra=[order_count])
    assert (profile.id, profile.requested_id, profile.merged_from) == (c.id, a.id, a.id)
    assert profile.doc["first_name"] == "C"
    assert profile.traits == store.activity.traits(c.id)
    assert profile.traits["order_count"] == 2
    assert profile.extra == [(c.id, "2", 1)]  # read for the target, not the alias
    bare = store.get(a.id, with_traits=False, extra=[order_count])
    assert bare.traits == {} and bare.extra == [(c.id, "2", 1)]


def test_target_merged_away_between_resolve_and_read_is_followed(store):
    a = store.create({"first_name": "A"})
    b = store.create({"first_name": "B"})
    c = store.create({"first_name": "C"})
    store.merges.merge(a.id, b.id, actor="t")
    # get(a) finds an alias, resolves it to b; then b is merged into c before b is read
    store.after_resolve.append(lambda target: store.merges.merge(target, c.id, actor="t"))
    profile = store.get(a.id)
    assert store.after_resolve == []  # the race did happen
    assert (profile.id, profile.requested_id) == (c.id, a.id)
    assert profile.doc["first_name"] == "C"


def test_unknown_invalid_and_erased_ids_are_not_found(store, redis_client):
    a = store.create({"first_name": "A"})
    b = store.create({"first_name": "B"})
    store.merges.merge(a.id, b.id, actor="t")
    for bad in ("c_unknown", "", "x{y}", "a" * 65):
        with pytest.raises(ProfileNotFound):
            store.get(bad)
    store.erase(b.id)
    for cid in (a.id, b.id):
        with pytest.raises(ProfileNotFound):
            store.get(cid)
    # a hash with no document (e.g. only traits written) is no profile either
    redis_client.hset(KEYS.profile("c_partial"), "version", "3")
    with pytest.raises(ProfileNotFound):
        store.get("c_partial")
