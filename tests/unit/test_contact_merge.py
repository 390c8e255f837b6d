"""A customer's contact history (feedback, cooldowns, offers, offered products) on merge,
unmerge, a resumed merge and erasure, against a real Redis with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from profiles import contact_merge
from profiles.keys import Keys
from profiles.store import ProfileStore
from recommend.engage.contact import ContactPolicy

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()
KEYS = Keys("rp")
OFFER = {"id": "home-offer", "category": "sales", "cooldown_days": 7}
SURVEY = {"id": "survey", "category": "feedback", "cooldown_days": 30}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(redis_client, clock):
    return ProfileStore(redis_client, KEYS, clock)


@pytest.fixture
def policy(redis_client, clock):
    return ContactPolicy(redis_client, KEYS, clock)


def feedback(policy, cid, action, fid, outcome="dismissed", **kw):
    record, created = policy.record_feedback(
        cid, action, feedback_id=fid, outcome=outcome, agent_id="a1", **kw
    )
    assert created
    return record


def contact_keys(cid):
    return [
        KEYS.action_feedback(cid),
        KEYS.action_state(cid),
        KEYS.contacts(cid),
        KEYS.offered_products(cid),
        KEYS.impressions(cid),
    ]


def dump(redis_client, cid):
    """The four contact keys of ``cid`` as plain values (to compare states exactly)."""
    fb, st, co, of, shown = contact_keys(cid)
    return (
        redis_client.hgetall(fb),
        redis_client.hgetall(st),
        redis_client.zrange(co, 0, -1, withscores=True),
        redis_client.zrange(of, 0, -1, withscores=True),
        redis_client.zrange(shown, 0, -1, withscores=True),
    )


@pytest.fixture
def pair(store, policy, clock):
    """A target with its own feedback, and a source with newer feedback on the same action,
    a product offered, and an action the target never saw."""
    target = store.create({"first_name": "T"}).id
    source = store.create({"first_name": "S"}).id
    clock.now = T0 - 3 * 86400 + 0.123457
    feedback(policy, target, OFFER, "t1", product_id="sku-1")
    clock.now = T0 - 3599.876543
    feedback(policy, source, OFFER, "s1", outcome="accepted", product_id="sku-9")
    feedback(policy, source, SURVEY, "s2", channel="email")
    clock.now = T0
    return target, source


def test_the_target_inherits_cooldowns_offers_and_resting_products(store, policy, pair):
    target, source = pair
    record = store.merges.merge(source, target, actor="t")
    assert record["steps"][-4:] == ["contacts", "contacts_absorb", "contacts_drain", "drain"]
    assert record["moved"]["contacts"] == {
        "feedback": 2,
        "actions": 2,
        "offers": 2,
        "offered_products": 1,
        "shown": 0,
    }
    state = policy.customer_state(target, None)
    last = state["last_feedback"]["home-offer"]  # the feedback script keeps `at` to 0.1 ms
    assert last == {"at": pytest.approx(T0 - 3599.876543, abs=1e-3), "outcome": "accepted"}
    assert state["last_feedback"]["survey"]["outcome"] == "dismissed"
    assert policy.in_cooldown(OFFER, state["last_feedback"]["home-offer"], T0) is not None
    assert state["resting_products"] == {"sku-1", "sku-9"}
    assert state["used_today"]["chat"] == 1 and state["used_today"]["email"] == 1
    history = {r["feedback_id"] for r in policy.feedback_history(target)}
    assert history == {"t1", "s1", "s2"}
    # the source (an alias now) holds none of it
    assert not any(store.redis.exists(k) for k in contact_keys(source))


def test_the_older_last_feedback_and_a_shared_feedback_id_keep_the_targets(
    store, policy, clock, redis_client
):
    target = store.create({"first_name": "T"}).id
    source = store.create({"first_name": "S"}).id
    clock.now = T0 - 7200
    feedback(policy, source, OFFER, "same", product_id="sku-1")
    clock.now = T0 - 59.5
    mine = feedback(policy, target, OFFER, "same", outcome="accepted", product_id="sku-1")
    clock.now = T0
    before = dump(redis_client, target)
    record = store.merges.merge(source, target, actor="t")
    assert dump(redis_client, target)[:2] == before[:2]  # its record and its newer state stay
    assert policy.feedback_history(target) == [{k: v for k, v in mine.items()}]
    assert dict(dump(redis_client, target)[3]) == {"sku-1": T0 - 59.5}  # the newer time wins
    store.merges.unmerge(record["id"], actor="t")
    assert dump(redis_client, target) == before


def test_unmerge_gives_back_exactly_and_the_target_keeps_what_it_got_since(
    store, policy, clock, pair, redis_client
):
    target, source = pair
    target_before = dump(redis_client, target)
    source_before = dump(redis_client, source)
    record = store.merges.merge(source, target, actor="t")
    clock.now = T0 + 60.000321
    new = feedback(policy, target, SURVEY, "t-after", outcome="accepted", product_id="sku-5")
    store.merges.unmerge(record["id"], actor="t")
    assert dump(redis_client, source) == source_before
    fb, st, co, of, _ = dump(redis_client, target)
    assert set(fb) == {"t1", "t-after"} and fb["t1"] == target_before[0]["t1"]
    assert st["home-offer"] == target_before[1]["home-offer"]  # set back to its own
    last = policy.customer_state(target, None)["last_feedback"]["survey"]
    assert last["at"] == pytest.approx(new["at"], abs=1e-3)
    assert dict(of) == {"sku-1": T0 - 3 * 86400 + 0.123457, "sku-5": T0 + 60.000321}
    assert [m for m, _ in co] == [m for m, _ in target_before[2]] + ["chat|survey|t-after"]
    assert store.merges.resume(record["id"])["status"] == "unmerged"  # nothing more to do
    assert dump(redis_client, source) == source_before


@pytest.mark.parametrize("stop_after", ["alias", "contacts", "contacts_absorb"])
def test_a_merge_stopped_between_steps_resumes_without_doubling(
    store, policy, pair, redis_client, stop_after
):
    target, source = pair
    expected = _merged_state(store, redis_client, pair)
    _reset(store, policy, redis_client, pair)
    real = store.merges._step

    def stop(record, name):
        real(record, name)
        if name == stop_after:
            raise ConnectionError("simulated crash")

    store.merges._step = stop
    with pytest.raises(ConnectionError):
        store.merges.merge(source, target, actor="t")
    store.merges._step = real
    (merge_id,) = [m for m in redis_client.lrange(KEYS.customer_merges(target), 0, -1)]
    assert store.merges.resume(merge_id)["status"] == "done"
    assert store.merges.resume(merge_id)["status"] == "done"
    assert dump(redis_client, target) == expected
    assert len(policy.feedback_history(target)) == 3


def test_actions_shown_move_with_their_expiry_and_come_back(store, pair, redis_client):
    target, source = pair
    shown = KEYS.impressions(source)
    redis_client.zadd(shown, {"survey": T0 - 10.25, "home-offer": T0 - 20})
    redis_client.expire(shown, 3600)
    redis_client.zadd(KEYS.impressions(target), {"home-offer": T0 - 5})
    target_before = dump(redis_client, target)
    record = store.merges.merge(source, target, actor="t")
    mine = KEYS.impressions(target)
    assert dict(redis_client.zrange(mine, 0, -1, withscores=True)) == {
        "survey": T0 - 10.25,
        "home-offer": T0 - 5,
    }
    assert 3500 < redis_client.ttl(mine) <= 3600 and not redis_client.exists(shown)
    store.merges.unmerge(record["id"], actor="t")
    assert dump(redis_client, target) == target_before
    assert dict(redis_client.zrange(shown, 0, -1, withscores=True)) == {
        "survey": T0 - 10.25,
        "home-offer": T0 - 20,
    }
    assert 3500 < redis_client.ttl(shown) <= 3600


def test_an_absorb_run_twice_and_a_page_boundary_change_nothing(redis_client, monkeypatch):
    monkeypatch.setattr(contact_merge, "PAGE", 3)
    cm = contact_merge.ContactMerge(redis_client, KEYS)
    fb = {f"f{i}": f'{{"feedback_id": "f{i}"}}' for i in range(10)}
    redis_client.hset(KEYS.action_feedback("c_a"), mapping=fb)
    redis_client.zadd(KEYS.contacts("c_a"), {f"chat|x|f{i}": T0 + i for i in range(4)})
    snap = cm.snapshot("c_a")
    assert len(list(contact_merge.pages(snap))) == 5
    cm.absorb("c_b", snap)
    cm.absorb("c_b", snap)
    assert dump(redis_client, "c_b") == dump(redis_client, "c_a")
    cm.take_back("c_b", snap)
    cm.take_back("c_b", snap)
    assert not any(redis_client.exists(k) for k in contact_keys("c_b"))


def test_erasing_a_merged_customer_leaves_no_contact_keys_and_keeps_the_aggregates(
    store, policy, pair, redis_client
):
    target, source = pair
    store.merges.merge(source, target, actor="t")
    days = ("2026-11-19", "2026-11-22")  # the days of the pair's feedback
    named = [KEYS.action_stats(), KEYS.action_segments()]
    shared = [k for k in [*named, *map(KEYS.action_outcomes, days)] if redis_client.exists(k)]
    assert KEYS.action_stats() in shared and len(shared) > 1
    aggregates = {k: redis_client.dump(k) for k in shared}
    report = store.erase(target)
    assert set(report["erased_ids"]) == {target, source}
    for cid in (target, source):
        assert not any(redis_client.exists(k) for k in contact_keys(cid))
    assert {k: redis_client.dump(k) for k in shared} == aggregates


def _merged_state(store, redis_client, pair):
    target, source = pair
    record = store.merges.merge(source, target, actor="t")
    state = dump(redis_client, target)
    store.merges.unmerge(record["id"], actor="t")
    return state


def _reset(store, policy, redis_client, pair):
    """Undo leaves the pair as before, but with a merge in its history: start anew."""
    target, source = pair
    for cid in (target, source):
        redis_client.delete(KEYS.customer_merges(cid))
