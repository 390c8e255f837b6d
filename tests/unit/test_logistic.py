"""The online Bayesian logistic model of next-best actions (recommend/engage/logistic.py): the
update script against an independent Python implementation, the offset at the global rate,
damaged state, the model switch and a reset, against a real Redis."""

# ruff: noqa: F811 - the fixtures imported from test_adaptive are parameters here

from __future__ import annotations

import logging
import math
import random

import pytest

from recommend.engage import logistic
from recommend.engage.actions import NextBestActions
from recommend.engage.adaptive import AdaptivePropensity, segment_of, suffixes
from recommend.engage.contact import ContactPolicy
from recommend.engage.learning_admin import reset_learning
from tests.unit.test_adaptive import (  # noqa: F401 - fixtures
    Clock,
    catalog,
    give,
    gold,
    ids,
    keys,
    learning,
    new,
    policy,
    teach,
)


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def weight(stored: str) -> float:
    """The mean of a stored ``"<m> <q>"`` weight."""
    return float(stored.split(" ")[0])


def reference_update(m, q, features, y, offset, lam=1.0):
    """Laplace update of one observation, minimising 1/2 Σ q_i (w_i - m_i)^2 +
    log(1 + exp(-y (offset + w·x))) by bisection on s (w = m + y s x / q)."""
    base = offset + sum(m.get(f, 0.0) for f in features)
    v = sum(1 / q.get(f, lam) for f in features)
    lo, hi = 0.0, 1.0  # s = sigmoid(-y (base + y s v)) has one root in [0, 1]
    for _ in range(200):
        s = (lo + hi) / 2
        if s - _sigmoid(-y * base - s * v) > 0:
            hi = s
        else:
            lo = s
    s = (lo + hi) / 2
    new_m = {f: m.get(f, 0.0) + y * s / q.get(f, lam) for f in features}
    p = _sigmoid(offset + sum(new_m.values()))
    new_q = {f: q.get(f, lam) + p * (1 - p) for f in features}
    return new_m, new_q


def test_the_update_script_matches_an_independent_implementation(redis_client, keys):
    script = redis_client.register_script(logistic.UPDATE_LUA)
    rng = random.Random(5)
    segment = segment_of(gold("c"))
    ends = suffixes(segment)
    features = logistic.prefixes("x", ends)
    m: dict[str, float] = {}
    q: dict[str, float] = {}
    for _ in range(25):
        y = 1 if rng.random() < 0.7 else -1
        offset = rng.uniform(-2, 1)
        args = logistic.update_args(y == 1, offset, "x", ends)
        script(keys=[keys.action_segments()], args=args)
        m, q = reference_update(m, q, features, y, offset)
    stored = redis_client.hgetall(keys.action_segments())
    for f in features:
        mean, precision = (float(x) for x in stored[f + ":w"].split(" "))
        assert mean == pytest.approx(m[f], rel=1e-9, abs=1e-12)
        assert precision == pytest.approx(q[f], rel=1e-9)
    assert len(stored) == len(features) == 9


def test_no_weights_means_the_global_rate(learning):
    segment = segment_of(gold("c"))
    stats = {"shown": 100, "accepted": 20}
    est = learning.estimate(stats, {}, "x", segment, weights=({}, set()))
    assert est["mean"] == pytest.approx(21 / 102)
    damaged = learning.estimate(stats, {}, "x", segment, weights=({}, {"x|bias|all"}))
    assert damaged["mean"] == pytest.approx(21 / 102)


def test_learns_the_two_segment_case_with_the_logistic_state(
    catalog, policy, learning, redis_client, keys
):
    teach(policy, catalog)
    stored = redis_client.hgetall(keys.action_segments())
    assert "a-offer|bias|all:w" in stored
    tier = segment_of(gold("x"))["tier"]
    assert weight(stored[f"a-offer|tier|{tier}:w"]) > 0.5  # gold customers accept A
    assert weight(stored["a-offer|tier|none:w"]) < -0.5  # new ones dismiss it
    nba = NextBestActions(catalog, policy, Clock(), learning=learning)
    assert ids(nba.rank(gold("g-new"), limit=2)) == ["a-offer", "b-offer"]
    assert ids(nba.rank(new("n-new"), limit=2)) == ["b-offer", "a-offer"]


def test_a_follow_up_and_a_replay_do_not_learn_again(catalog, policy, redis_client, keys):
    give(policy, catalog, gold("g1"), "a-offer", "accepted", "f1")
    first = redis_client.hgetall(keys.action_segments())
    give(policy, catalog, gold("g1"), "a-offer", "accepted", "f1")  # replayed id
    give(policy, catalog, gold("g1"), "a-offer", "completed", "f2")  # a follow-up of the offer
    after = redis_client.hgetall(keys.action_segments())
    assert {k: v for k, v in after.items() if k.endswith(":w")} == {
        k: v for k, v in first.items() if k.endswith(":w")
    }


def test_damaged_weights_fall_back_to_the_global_rate_with_a_warning(
    catalog, policy, learning, redis_client, keys, caplog
):
    teach(policy, catalog, n=12)
    redis_client.hset(keys.action_segments(), "a-offer|bias|all:w", "garbage")
    nba = NextBestActions(catalog, policy, Clock(), learning=learning)
    with caplog.at_level(logging.WARNING, logger="rapport.actions"):
        items = nba.rank(gold("g-new"), limit=2)["items"]
    assert "damaged learning weight" in caplog.text
    a = next(i for i in items if i["action_id"] == "a-offer")
    stats = policy.stats(["a-offer"])["a-offer"]
    assert a["propensity"] == pytest.approx(
        (stats["accepted"] + 1) / (stats["shown"] + 2), abs=1e-3
    )
    # the next update treats the damaged weight as its prior and repairs it
    give(policy, catalog, gold("g-2"), "a-offer", "accepted", "repair")
    assert weight(redis_client.hget(keys.action_segments(), "a-offer|bias|all:w")) > 0


def test_the_beta_model_writes_no_weights(catalog, redis_client, keys):
    beta = AdaptivePropensity(control_share=0.0, explore_share=0.0, model="beta")
    policy = ContactPolicy(redis_client, keys, Clock(), learning=beta)
    teach(policy, catalog, n=5)
    assert not [f for f in redis_client.hkeys(keys.action_segments()) if f.endswith(":w")]
    nba = NextBestActions(catalog, policy, Clock(), learning=beta)
    assert ids(nba.rank(gold("g-new"), limit=2)) == ["a-offer", "b-offer"]
    with pytest.raises(ValueError, match="model"):
        AdaptivePropensity(model="neural")


def test_a_reset_removes_the_actions_weights(catalog, policy, redis_client, keys):
    teach(policy, catalog, n=3)
    reset_learning(redis_client, keys, "a-offer", Clock()())
    fields = redis_client.hkeys(keys.action_segments())
    assert not [f for f in fields if f.startswith("a-offer|")]
    assert [f for f in fields if f.startswith("b-offer|") and f.endswith(":w")]
