"""The adaptive propensity of next-best actions: learning per segment, back-off, exploration,
the control group and the performance statistics, against a real Redis with a fixed clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from profiles.keys import Keys
from recommend.engage.actions import ActionCatalog, NextBestActions
from recommend.engage.adaptive import (
    SEGMENT_KEYS,
    AdaptivePropensity,
    bucket,
    day_of,
    segment_of,
)
from recommend.engage.contact import ContactPolicy
from recommend.engage.facts import build_facts
from recommend.engage.uplift import performance, wilson

DAY = 86400.0
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()
ACTIONS = [
    {"id": "a-offer", "title": "A", "category": "service", "value": 10, "cooldown_days": 0},
    {"id": "b-offer", "title": "B", "category": "service", "value": 10, "cooldown_days": 0},
]


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys():
    return Keys("rp")


@pytest.fixture
def learning():
    return AdaptivePropensity(control_share=0.0, explore_share=0.0)


@pytest.fixture
def policy(redis_client, keys, learning):
    return ContactPolicy(redis_client, keys, Clock(), learning=learning)


@pytest.fixture
def catalog(redis_client, keys):
    catalog = ActionCatalog(redis_client, keys, Clock())
    catalog.replace_all(ACTIONS)
    return catalog


def person(cid: str, *, tier: str | None, orders: int, channel: str = "chat") -> dict:
    profile = {"name": "Kim Lee", "loyalty_tier": tier or "none", "country": "DE"}
    traits = {"order_count": orders, "days_since_last_purchase": 20 if orders else None}
    return build_facts(cid, profile, traits, context={"name": None, "channel": channel})


def gold(cid: str) -> dict:
    return person(cid, tier="gold", orders=8)


def new(cid: str) -> dict:
    return person(cid, tier=None, orders=0)


def give(policy, catalog, facts, action_id, outcome, fid):
    action = catalog.get(action_id)
    policy.record_feedback(
        facts["customer_id"],
        action,
        feedback_id=fid,
        outcome=outcome,
        agent_id="agent",
        channel=facts["context"]["channel"],
        segment=segment_of(facts, action),
    )


def teach(policy, catalog, n=40):
    """A is accepted by gold customers and dismissed by new ones; B by half of each."""
    for i in range(n):
        give(policy, catalog, gold(f"g{i}"), "a-offer", "accepted", f"ga{i}")
        give(policy, catalog, new(f"n{i}"), "a-offer", "dismissed", f"na{i}")
        b_outcome = "accepted" if i % 2 else "dismissed"
        give(policy, catalog, gold(f"g{i}"), "b-offer", b_outcome, f"gb{i}")
        give(policy, catalog, new(f"n{i}"), "b-offer", b_outcome, f"nb{i}")


def ids(result):
    return [item["action_id"] for item in result["items"]]


def test_learns_a_two_segment_case(catalog, policy, learning):
    teach(policy, catalog)
    nba = NextBestActions(catalog, policy, Clock(), learning=learning)
    for_gold = nba.rank(gold("g-new"), limit=2)
    for_new = nba.rank(new("n-new"), limit=2)
    assert for_gold["group"] == for_new["group"] == "adaptive"
    assert ids(for_gold) == ["a-offer", "b-offer"]
    assert ids(for_new) == ["b-offer", "a-offer"]
    top = for_gold["items"][0]
    assert top["propensity"] > 0.8
    assert top["score"] == pytest.approx(10 * top["propensity"], abs=1e-3)
    assert "accepted by 100% of gold customers on chat (40 offers)" in top["reasons"]
    assert for_new["items"][1]["propensity"] < 0.2
    assert not top["exploring"]
    # the global-rate ranking (no learning: the control group) cannot tell them apart
    control = NextBestActions(catalog, policy, Clock())
    a_gold = control.rank(gold("g-new"), limit=2)["items"]
    a_new = control.rank(new("n-new"), limit=2)["items"]
    assert {i["action_id"]: i["propensity"] for i in a_gold} == {
        i["action_id"]: i["propensity"] for i in a_new
    }
    assert control.rank(gold("g-new"))["group"] == "control"


def test_back_off_with_few_observations(learning):
    segment = segment_of(gold("c"))
    stats = {"shown": 100, "accepted": 20}  # global (20 + 1) / (100 + 2) = 0.206
    g = 21 / 102
    few = {}
    for key in SEGMENT_KEYS:
        if key in (("tier",), ("tier", "channel")):
            prefix = f"x|{'.'.join(key)}|{'.'.join(segment[d] for d in key)}"
            few |= {f"{prefix}:shown": 2, f"{prefix}:accepted": 2}
    est = learning.estimate(stats, few, "x", segment)
    assert g < est["mean"] < g + 0.1  # two offers barely move it
    assert est["reason"] is None  # too few offers to name the segment
    many = {k: v * 100 for k, v in few.items()}
    est = learning.estimate(stats, many, "x", segment)
    assert est["mean"] > 0.9  # 200 offers speak for themselves
    assert "gold customers on chat (200 offers)" in est["reason"]
    # nothing known about the segment: the global rate itself
    assert learning.estimate(stats, {}, "x", segment)["mean"] == pytest.approx(g)
    assert learning.estimate(None, {}, "x", segment)["mean"] == pytest.approx(0.5)


def test_exploration_is_seeded_and_says_so(catalog, policy):
    teach(policy, catalog, n=10)
    runs = []
    for _ in range(2):
        explorer = AdaptivePropensity(control_share=0.0, explore_share=1.0, seed=3)
        nba = NextBestActions(catalog, policy, Clock(), learning=explorer)
        runs.append([nba.rank(new(f"n-{i}"), limit=2) for i in range(30)])
    assert runs[0] == runs[1]  # the same seed, the same decisions
    items = [item for result in runs[0] for item in result["items"]]
    exploring = [i for i in items if i["exploring"]]
    assert exploring and all(i["reasons"][-1].startswith("exploring:") for i in exploring)
    assert any(ids(r)[0] == "a-offer" for r in runs[0])  # A is tried for new customers too


def test_damaged_counters_fall_back_with_a_warning(
    catalog, policy, learning, redis_client, keys, caplog
):
    teach(policy, catalog, n=12)
    segment = segment_of(gold("x"), catalog.get("a-offer"))
    field = f"a-offer|tier.channel|{segment['tier']}.{segment['channel']}:shown"
    redis_client.hset(keys.action_segments(), field, "garbage")
    nba = NextBestActions(catalog, policy, Clock(), learning=learning)
    with caplog.at_level(logging.WARNING, logger="rapport.actions"):
        result = nba.rank(gold("g-new"), limit=2)
    assert ids(result)[0] == "a-offer"
    assert "damaged learning counter" in caplog.text


def test_control_group_is_stable_and_near_its_share():
    model = AdaptivePropensity(control_share=0.1, salt="s1")
    other = AdaptivePropensity(control_share=0.1, salt="s1")
    groups = [model.group_of(f"cust-{i}") for i in range(10_000)]
    assert groups == [other.group_of(f"cust-{i}") for i in range(10_000)]
    share = groups.count("control") / len(groups)
    assert 0.085 <= share <= 0.115
    resalted = AdaptivePropensity(control_share=0.1, salt="s2")
    assert groups != [resalted.group_of(f"cust-{i}") for i in range(10_000)]
    assert 0 <= bucket("c-1", "s1") < 1
    assert AdaptivePropensity(control_share=1.0).group_of("anyone") == "control"
    assert AdaptivePropensity(control_share=0.0).group_of("anyone") == "adaptive"
    assert AdaptivePropensity(control_share=0.0).group_of(None) == "control"
    with pytest.raises(ValueError):
        AdaptivePropensity(control_share=1.5)


def test_wilson_intervals_on_known_values():
    assert wilson(0, 0) is None
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_outcomes_are_counted_per_group_and_day(redis_client, keys, catalog):
    model = AdaptivePropensity(control_share=0.5, explore_share=0.0, salt="t")
    policy = ContactPolicy(redis_client, keys, Clock(), learning=model)
    for i in range(40):
        facts = gold(f"c{i}")
        give(policy, catalog, facts, "a-offer", "accepted" if i % 4 else "dismissed", f"f{i}")
    raw = redis_client.hgetall(keys.action_outcomes(day_of(T0)))
    assert 0 < redis_client.ttl(keys.action_outcomes(day_of(T0))) <= 400 * DAY
    out = performance([raw], ["a-offer", "b-offer"])
    a = next(i for i in out["items"] if i["action_id"] == "a-offer")
    n_control = [model.group_of(f"c{i}") for i in range(40)].count("control")
    assert 0 < n_control < 40
    assert a["groups"]["control"]["shown"] == n_control
    assert a["groups"]["adaptive"]["shown"] == 40 - n_control
    assert a["groups"]["adaptive"]["low"] <= a["groups"]["adaptive"]["acceptance_rate"]
    assert a["uplift"]["low"] <= a["uplift"]["difference"] <= a["uplift"]["high"]
    b = next(i for i in out["items"] if i["action_id"] == "b-offer")
    assert b["groups"]["adaptive"]["shown"] == 0 and b["uplift"] is None
    assert out["total"]["groups"]["control"]["shown"] == n_control


def test_segments_are_bounded():
    facts = build_facts(
        "c",
        {"name": "X", "loyalty_tier": "diamond", "country": "Germany", "locale": "de-AT"},
        {"order_count": 3, "days_since_last_purchase": 400, "open_support_contacts": 2},
        context={"name": "checkout", "channel": "fax"},
    )
    seg = segment_of(facts, {"contexts": ["billing"]})
    assert seg == {
        "tier": "other",
        "channel": "chat",
        "country": "other",
        "context": "other",
        "frequency": "2-4",
        "recency": "180d+",
        "category": "none",
        "support": "open",
    }
    no_country = build_facts("c", {"name": "X", "locale": "de-AT"}, {})
    assert segment_of(no_country)["country"] == "AT"
    assert segment_of(no_country)["recency"] == "never"
    assert segment_of(no_country, None)["context"] == "none"


def test_impressions_are_shown_once_per_request_and_match_feedback(redis_client, keys, catalog):
    from core.errors import InvalidInput

    clock = Clock()
    model = AdaptivePropensity(control_share=0.0, explore_share=0.0)
    policy = ContactPolicy(redis_client, keys, clock, learning=model, impression_window=3600)
    nba = NextBestActions(catalog, policy, clock, learning=model)
    facts = gold("c-1")
    assert ids(nba.rank(facts, request_id="r-1")) == ["a-offer", "b-offer"]
    nba.rank(facts, request_id="r-1")  # a retry of the same request
    day = keys.action_outcomes(day_of(T0))
    assert redis_client.hgetall(day) == {
        "adaptive:a-offer:shown": "1",
        "adaptive:b-offer:shown": "1",
    }
    assert 0 < redis_client.ttl(keys.action_impression_request(day_of(T0), "r-1")) <= DAY
    nba.rank(facts)  # no request id (a direct caller): no impression
    assert redis_client.hget(day, "adaptive:a-offer:shown") == "1"
    # feedback within the window matches; the offer is not counted twice as shown
    assert policy.check_shown("c-1", "a-offer", "f1", "accepted") is True
    policy.record_feedback(
        "c-1",
        catalog.get("a-offer"),
        feedback_id="f1",
        outcome="accepted",
        agent_id="a",
        segment=segment_of(facts),
        impressed=True,
    )
    assert redis_client.hget(day, "adaptive:a-offer:shown") == "1"
    assert redis_client.hget(day, "adaptive:a-offer:accepted") == "1"
    # past the window: no match, an offer outcome on it is 422 (a completion is not)
    clock.now = T0 + 3601
    with pytest.raises(InvalidInput) as info:
        policy.check_shown("c-1", "b-offer", "f2", "dismissed")
    assert info.value.field == "action_id"
    assert policy.check_shown("c-1", "b-offer", "f2", "completed") is False
    assert policy.check_shown("c-2", "a-offer", "f3", "completed") is False
    # earlier feedback on the action (a follow-up) and a known feedback id are not 422
    assert policy.check_shown("c-1", "a-offer", "f4", "dismissed") is False
    assert policy.check_shown("c-1", "a-offer", "f1", "accepted") is False


def test_daily_series_per_group():
    from recommend.engage.uplift import daily

    raws = [{"adaptive:a:shown": "4", "adaptive:a:accepted": "1", "control:b:shown": "2"}, {}]
    out = daily(["2026-11-21", "2026-11-22"], raws)
    assert out[0] == {
        "day": "2026-11-21",
        "adaptive": {"shown": 4, "accepted": 1, "acceptance_rate": 0.25},
        "control": {"shown": 2, "accepted": 0, "acceptance_rate": 0.0},
    }
    assert out[1]["adaptive"]["acceptance_rate"] is None
