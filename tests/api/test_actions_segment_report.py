"""GET /v1/actions/performance?segment=<key>: acceptance and completion per action, segment
value and experiment group over HTTP, from the impressions the ranking records and the
feedback agents give; a crafted two-segment case (gold and bronze customers in both groups)
whose numbers are asserted exactly, and the bad inputs."""

from __future__ import annotations

import pytest

from profiles.store import ProfileStore
from recommend.engage.adaptive import REPORT_KEYS
from recommend.engage.uplift import wilson
from tests.api import test_actions

# the app with half the customers in control and impressions needed (test_actions' fixtures)
shown_app = test_actions.shown_app
shown_api = test_actions.shown_api
PROBLEM = "application/problem+json"
CATALOGUE = [{"id": "tips", "title": "Tips", "category": "service", "value": 6}]


@pytest.fixture
def customers(shown_app, redis_client):
    """Customer ids per (group, tier): three of each."""
    profiles = ProfileStore(redis_client, shown_app.extensions["rapport"].keys)
    learning = shown_app.extensions["rapport"].engage.policy.learning
    out: dict[tuple[str, str], list[str]] = {}
    for tier in ("gold", "bronze"):
        while any(len(out.get((g, tier), [])) < 3 for g in ("adaptive", "control")):
            doc = {"first_name": "Ana", "locale": "en", "loyalty_tier": tier}
            cid = profiles.create(doc).id
            out.setdefault((learning.group_of(cid), tier), []).append(cid)
    return out


def _serve(api, cid):
    path = f"/v1/profiles/{cid}/next-best-actions?limit=3"
    resp = api.get(path, headers={"X-Request-ID": f"req-{cid}"})
    assert resp.status_code == 200, resp.json
    assert [i["action_id"] for i in resp.json["items"]] == ["tips"]
    return resp.json["group"]


def _feedback(api, cid, fid, outcome):
    body = {"feedback_id": fid, "outcome": outcome, "agent_id": "agent-7"}
    resp = api.post(f"/v1/profiles/{cid}/next-best-actions/tips/feedback", json=body)
    assert resp.status_code == 201, resp.json


# (group, tier) -> outcomes of its customers' impressions (None: no feedback)
CRAFTED = {
    ("adaptive", "gold"): ["accepted", "accepted", None],
    ("adaptive", "bronze"): ["dismissed", None, None],
    ("control", "gold"): ["dismissed"],
    ("control", "bronze"): ["accepted", "dismissed"],
}


def _crafted(api, customers):
    for (group, tier), outcomes in CRAFTED.items():
        for i, outcome in enumerate(outcomes):
            cid = customers[(group, tier)][i]
            assert _serve(api, cid) == group
            if outcome:
                _feedback(api, cid, f"f-{cid}", outcome)
            if outcome == "accepted" and group == "adaptive" and i == 0:
                _feedback(api, cid, f"c-{cid}", "completed")  # a follow-up: no new offer


def _view(shown, accepted, completed=0):
    low, high = wilson(accepted, shown)
    return {
        "shown": shown,
        "accepted": accepted,
        "completed": completed,
        "acceptance_rate": round(accepted / shown, 4),
        "completion_rate": round(completed / shown, 4),
        "low": round(low, 4),
        "high": round(high, 4),
    }


def test_performance_per_tier_for_a_crafted_two_segment_case(shown_api, customers):
    assert shown_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    _crafted(shown_api, customers)
    resp = shown_api.get("/v1/actions/performance?segment=tier")
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["segment"] == "tier"
    tips = next(s for s in body["segments"] if s["action_id"] == "tips")
    values = {v["value"]: v for v in tips["values"]}
    assert [v["value"] for v in tips["values"]] == ["bronze", "gold"]
    gold, bronze = values["gold"], values["bronze"]
    assert gold["groups"] == {"adaptive": _view(3, 2, 1), "control": _view(1, 0)}
    assert bronze["groups"] == {"adaptive": _view(3, 0), "control": _view(2, 1)}
    assert gold["groups"]["adaptive"]["low"] == 0.2077  # Wilson 95% of 2 of 3
    assert gold["uplift"]["difference"] == 0.6667  # 2/3 - 0/1
    assert bronze["uplift"]["difference"] == -0.5  # 0/3 - 1/2
    assert bronze["uplift"]["low"] < -0.5 < bronze["uplift"]["high"]
    # the per-action report is unchanged and agrees with the sum over the values
    totals = next(i for i in body["items"] if i["action_id"] == "tips")["groups"]
    assert totals["adaptive"]["shown"] == 6 and totals["adaptive"]["accepted"] == 2
    assert totals["control"]["shown"] == 3 and totals["control"]["accepted"] == 1
    # every other segment key: one value per dimension these customers share
    for key in REPORT_KEYS:
        seg = shown_api.get(f"/v1/actions/performance?segment={key}").json
        row = next(s for s in seg["segments"] if s["action_id"] == "tips")
        for group in ("adaptive", "control"):
            assert sum(v["groups"][group]["shown"] for v in row["values"]) == totals[group]["shown"]
    channel = shown_api.get("/v1/actions/performance?segment=tier.channel").json
    row = next(s for s in channel["segments"] if s["action_id"] == "tips")
    assert [v["value"] for v in row["values"]] == ["bronze.chat", "gold.chat"]
    country = shown_api.get("/v1/actions/performance?segment=country").json
    row = next(s for s in country["segments"] if s["action_id"] == "tips")
    assert [v["value"] for v in row["values"]] == ["none"]


def test_without_segment_the_report_has_no_segment_part(shown_api, customers):
    assert shown_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    _crafted(shown_api, customers)
    body = shown_api.get("/v1/actions/performance").json
    assert "segment" not in body and "segments" not in body
    assert set(body) == {"from", "to", "control_share", "items", "total", "daily"}


def test_a_range_before_the_offers_has_no_values(shown_api, customers):
    assert shown_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    _crafted(shown_api, customers)
    old = shown_api.get("/v1/actions/performance?segment=tier&from=2020-01-01&to=2020-01-31")
    assert old.status_code == 200
    assert all(s["values"] == [] for s in old.json["segments"])


@pytest.mark.parametrize("value", ["planet", "", "TIER", "tier.country"])
def test_an_unknown_segment_key_is_422_in_the_query(shown_api, value):
    resp = shown_api.get(f"/v1/actions/performance?segment={value}")
    assert resp.status_code == 422, resp.json
    assert resp.content_type == PROBLEM
    assert {(e["field"], e["location"]) for e in resp.json["errors"]} == {("segment", "query")}


def test_the_segment_report_needs_admin(api_as):
    agent = api_as("recommend:read", "actions:write")
    assert agent.get("/v1/actions/performance?segment=tier").status_code == 403
