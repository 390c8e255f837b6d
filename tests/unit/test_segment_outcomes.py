"""Impressions and outcomes counted per segment key and value (recommend/engage/impressions.py,
AdaptivePropensity.queue_count) and the per-segment report (uplift.segment_performance), on a
real Redis with a fixed clock: a crafted two-segment case (gold and bronze customers), the
bound on values per key, retries, and the learning reset."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from profiles.keys import Keys
from recommend.engage import impressions
from recommend.engage.adaptive import (
    MAX_REPORT_VALUES,
    REPORT_KEYS,
    AdaptivePropensity,
    day_of,
    segment_of,
    segment_outcomes_key,
)
from recommend.engage.contact import ContactPolicy
from recommend.engage.facts import build_facts
from recommend.engage.learning_admin import reset_learning
from recommend.engage.uplift import (
    performance,
    read_segment_days,
    segment_performance,
    wilson,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()
DAY = day_of(T0)
ACTION = {"id": "a-offer", "title": "A", "category": "service", "value": 10, "cooldown_days": 0}


@pytest.fixture
def keys():
    return Keys("rp")


@pytest.fixture
def script(redis_client):
    return redis_client.register_script(impressions.COUNT_LUA)


def _segment(tier: str, category: str = "home", channel: str = "chat") -> dict[str, str]:
    profile = {"loyalty_tier": tier, "country": "DE"}
    traits = {"order_count": 3, "days_since_last_purchase": 10}
    facts = build_facts("c", profile, traits, context={"name": None, "channel": channel})
    facts["preferences"] = {"categories": [category]}
    return segment_of(facts, ACTION)


def _policy(redis_client, keys, group: str) -> ContactPolicy:
    share = 1.0 if group == "control" else 0.0  # everyone in the one group
    learning = AdaptivePropensity(control_share=share, explore_share=0.0)
    return ContactPolicy(redis_client, keys, lambda: T0, learning=learning)


def _show(script, keys, group, segment, request_id):
    impressions.count(
        script,
        keys,
        group=group,
        action_ids=[ACTION["id"]],
        request_id=request_id,
        now=T0,
        segments={ACTION["id"]: segment},
    )


def _serve(redis_client, keys, script, group, tier, shown, accepted, completed=0):
    """``shown`` impressions of gold or bronze customers, ``accepted`` of them accepted (as
    feedback answering the impression), ``completed`` of those then completed."""
    policy = _policy(redis_client, keys, group)
    segment = _segment(tier)
    for i in range(shown):
        cid = f"{group}-{tier}-{i}"
        _show(script, keys, group, segment, f"req-{cid}")
        outcome = "accepted" if i < accepted else "dismissed"
        policy.record_feedback(
            cid,
            ACTION,
            feedback_id=f"f-{cid}",
            outcome=outcome,
            agent_id="a",
            segment=segment,
            impressed=True,
        )
        if i < completed:
            policy.record_feedback(
                cid,
                ACTION,
                feedback_id=f"c-{cid}",
                outcome="completed",
                agent_id="a",
                segment=segment,
                impressed=True,
            )


def _crafted(redis_client, keys, script):
    _serve(redis_client, keys, script, "adaptive", "gold", shown=4, accepted=3, completed=1)
    _serve(redis_client, keys, script, "adaptive", "bronze", shown=5, accepted=1)
    _serve(redis_client, keys, script, "control", "gold", shown=3, accepted=1)
    _serve(redis_client, keys, script, "control", "bronze", shown=2, accepted=0)


def test_impressions_are_counted_per_segment_key_in_the_same_script_call(
    redis_client, keys, script
):
    segment = _segment("gold")
    _show(script, keys, "adaptive", segment, "r1")
    _show(script, keys, "adaptive", segment, "r1")  # a retried request counts once
    raw = redis_client.hgetall(segment_outcomes_key(keys, DAY))
    counts = {f: int(v) for f, v in raw.items() if f.startswith("adaptive:")}
    assert counts == {
        "adaptive:a-offer:shown:tier:gold": 1,
        "adaptive:a-offer:shown:channel:chat": 1,
        "adaptive:a-offer:shown:country:DE": 1,
        "adaptive:a-offer:shown:context:none": 1,
        "adaptive:a-offer:shown:frequency:2-4": 1,
        "adaptive:a-offer:shown:recency:<30d": 1,
        "adaptive:a-offer:shown:category:home": 1,
        "adaptive:a-offer:shown:support:none": 1,
        "adaptive:a-offer:shown:tier.channel:gold.chat": 1,
        "adaptive:a-offer:shown:frequency.recency:2-4.<30d": 1,
    }
    assert len(counts) == len(REPORT_KEYS)
    # the per-group count of the same call, and both keys expire
    assert redis_client.hget(keys.action_outcomes(DAY), "adaptive:a-offer:shown") == "1"
    assert redis_client.ttl(segment_outcomes_key(keys, DAY)) > 0
    # without segments (older callers) only the per-group count moves
    impressions.count(
        script, keys, group="control", action_ids=["a-offer"], request_id="r2", now=T0
    )
    assert redis_client.hget(keys.action_outcomes(DAY), "control:a-offer:shown") == "1"
    assert not any(
        f.startswith("control:") for f in redis_client.hkeys(segment_outcomes_key(keys, DAY))
    )


def test_a_crafted_two_segment_case_reports_exact_numbers(redis_client, keys, script):
    _crafted(redis_client, keys, script)
    days = read_segment_days(redis_client, keys, [DAY])
    [item] = segment_performance(days, ["a-offer"], "tier")
    assert item["action_id"] == "a-offer"
    values = {v["value"]: v for v in item["values"]}
    assert list(values) == ["bronze", "gold"]
    gold, bronze = values["gold"]["groups"], values["bronze"]["groups"]
    assert gold["adaptive"] == {
        "shown": 4,
        "accepted": 3,
        "completed": 1,
        "acceptance_rate": 0.75,
        "completion_rate": 0.25,
        "low": 0.3006,
        "high": 0.9544,
    }
    assert (gold["control"]["shown"], gold["control"]["accepted"]) == (3, 1)
    assert gold["control"]["acceptance_rate"] == 0.3333
    assert (bronze["adaptive"]["shown"], bronze["adaptive"]["accepted"]) == (5, 1)
    assert bronze["adaptive"]["acceptance_rate"] == 0.2
    assert (bronze["control"]["shown"], bronze["control"]["accepted"]) == (2, 0)
    assert bronze["control"]["acceptance_rate"] == 0.0
    low, high = wilson(1, 5)
    assert (bronze["adaptive"]["low"], bronze["adaptive"]["high"]) == (
        round(low, 4),
        round(high, 4),
    )
    uplift = values["gold"]["uplift"]
    assert uplift["difference"] == 0.4167  # 3/4 - 1/3
    assert uplift["low"] < 0.4167 < uplift["high"]
    assert values["bronze"]["uplift"]["difference"] == 0.2
    # every key's values add up to the per-group totals of the action
    totals = performance([redis_client.hgetall(keys.action_outcomes(DAY))], ["a-offer"])
    per_group = totals["items"][0]["groups"]
    for key in REPORT_KEYS:
        [row] = segment_performance(days, ["a-offer"], key)
        for group in ("adaptive", "control"):
            for counter in ("shown", "accepted", "completed"):
                total = sum(v["groups"][group][counter] for v in row["values"])
                assert total == per_group[group][counter], (key, group, counter)
    # tier.channel names the pair
    [pair] = segment_performance(days, ["a-offer"], "tier.channel")
    assert [v["value"] for v in pair["values"]] == ["bronze.chat", "gold.chat"]


def test_values_past_the_bound_count_as_other(redis_client, keys, script):
    extra = 3
    for i in range(MAX_REPORT_VALUES + extra):
        _show(script, keys, "adaptive", _segment("gold", category=f"cat-{i:02d}"), f"r{i}")
    name = segment_outcomes_key(keys, DAY)
    assert redis_client.hget(name, "#category") == str(MAX_REPORT_VALUES)
    assert redis_client.hget(name, "adaptive:a-offer:shown:category:other") == str(extra)
    assert redis_client.hget(name, "adaptive:a-offer:shown:category:cat-49") == "1"
    assert not redis_client.hexists(name, "adaptive:a-offer:shown:category:cat-50")
    # an admitted value keeps counting as itself
    _show(script, keys, "adaptive", _segment("gold", category="cat-00"), "again")
    assert redis_client.hget(name, "adaptive:a-offer:shown:category:cat-00") == "2"
    # feedback (no read in its pipeline) writes its own value; the report folds it into other
    _policy(redis_client, keys, "adaptive").record_feedback(
        "late",
        ACTION,
        feedback_id="f-late",
        outcome="accepted",
        agent_id="a",
        segment=_segment("gold", category="cat-51"),
        impressed=True,
    )
    assert redis_client.hget(name, "adaptive:a-offer:accepted:category:cat-51") == "1"
    [row] = segment_performance(
        read_segment_days(redis_client, keys, [DAY]), ["a-offer"], "category"
    )
    values = {v["value"]: v["groups"]["adaptive"] for v in row["values"]}
    assert len(values) == MAX_REPORT_VALUES + 1 and "cat-51" not in values
    assert (values["other"]["shown"], values["other"]["accepted"]) == (extra, 1)
    assert [v["value"] for v in row["values"]][-1] == "other"
    # the keys with a closed set of values need no admission
    assert redis_client.hget(name, "#tier") is None
    assert redis_client.hget(name, "adaptive:a-offer:shown:tier:gold") == str(MAX_REPORT_VALUES + 4)


def test_the_report_names_at_most_the_bound_over_a_range(redis_client, keys, script):
    day2 = T0 + 86400
    for i in range(MAX_REPORT_VALUES):
        _show(script, keys, "adaptive", _segment("gold", category=f"a-{i:02d}"), f"d1-{i}")
    for i in range(2):  # a second day admits two more values, one of them twice
        for n in range(i + 1):
            impressions.count(
                script,
                keys,
                group="adaptive",
                action_ids=["a-offer"],
                request_id=f"d2-{i}-{n}",
                now=day2,
                segments={"a-offer": _segment("gold", category=f"b-{i}")},
            )
    days = read_segment_days(redis_client, keys, [DAY, day_of(day2)])
    [row] = segment_performance(days, ["a-offer"], "category")
    names = [v["value"] for v in row["values"]]
    assert len(names) == MAX_REPORT_VALUES + 1 and names[-1] == "other"
    assert "b-1" in names  # two offers: among the 50 with most offers
    other = row["values"][-1]["groups"]["adaptive"]["shown"]
    assert other == 2  # the one-offer values last by name: a-49 and b-0


def test_an_unknown_key_is_refused_and_an_action_without_offers_has_no_values(redis_client, keys):
    with pytest.raises(ValueError):
        segment_performance([], ["a-offer"], "planet")
    assert segment_performance([], ["a-offer"], "tier") == [{"action_id": "a-offer", "values": []}]


def test_reset_learning_removes_the_per_segment_outcomes(redis_client, keys, script):
    _crafted(redis_client, keys, script)
    name = segment_outcomes_key(keys, DAY)
    segment_fields = sum(":a-offer:" in f for f in redis_client.hkeys(name))
    group_fields = redis_client.hlen(keys.action_outcomes(DAY))
    # gold and bronze differ in tier and tier.channel (12 fields per counter, 10 with one tier):
    # adaptive shown, accepted 12 each, completed 10 (gold); control shown 12, accepted 10 (gold)
    assert segment_fields == 12 + 12 + 10 + 12 + 10
    out = reset_learning(redis_client, keys, "a-offer", now=T0)
    left = redis_client.hkeys(name)
    assert not any(":a-offer:" in f for f in left)
    assert left and all(f[0] in "=#" for f in left)  # the admitted values stay
    assert out["outcome_fields"] == group_fields + segment_fields
    assert segment_performance([redis_client.hgetall(name)], ["a-offer"], "tier")[0]["values"] == []
