"""Next-best actions over HTTP: ranking, consent, feedback, cooldown, budget, stats, admin."""

from __future__ import annotations

import math
import time

import pytest

from profiles.store import ProfileStore
from recommend.catalog.products import Catalog
from recommend.engage.action_defaults import DEFAULT_ACTIONS
from tests.recsys import END, install_model, load_catalog, purchase, record_purchase

PROBLEM = "application/problem+json"

CATALOGUE = [
    {
        "id": "home-offer",
        "title": "Offer the home range",
        "say": "{{ name }}, our new home range might suit you.",
        "category": "sales",
        "value": 100,
        "rules": {"field": "preferences.categories", "op": "contains", "value": "home"},
        "cooldown_days": 7,
    },
    {
        "id": "vip-thanks",
        "title": "Thank a gold customer",
        "category": "service",
        "value": 80,
        "rules": {"field": "profile.tier", "op": "==", "value": "gold"},
        "cooldown_days": 30,
    },
    {"id": "survey", "title": "Quick survey", "category": "feedback", "value": 10},
    {"id": "tips", "title": "Care tips", "category": "retention", "value": 6},
    {
        "id": "bronze-only",
        "title": "Bronze welcome",
        "category": "service",
        "value": 500,
        "rules": {"field": "profile.tier", "op": "==", "value": "bronze"},
    },
]


@pytest.fixture
def profiles(app, redis_client):
    return ProfileStore(redis_client, app.extensions["rapport"].keys)


def make_customer(profiles, *, marketing=True, tier="gold"):
    return profiles.create(
        {
            "first_name": "Lena",
            "last_name": "Berg",
            "locale": "en",
            "timezone": "Europe/Berlin",
            "loyalty_tier": tier,
            "preferences": {"categories": ["home", "garden"]},
            "consent": {"marketing": {"granted": marketing, "source": "web"}},
        }
    ).id


@pytest.fixture
def catalogue(api):
    resp = api.put("/v1/actions", json={"items": CATALOGUE})
    assert resp.status_code == 200, resp.json
    return resp.json["items"]


@pytest.fixture
def agent(api_as):
    return api_as("recommend:read", "actions:write")


def nba(client, cid, query="limit=5"):
    resp = client.get(f"/v1/profiles/{cid}/next-best-actions?{query}")
    assert resp.status_code == 200, resp.json
    return resp.json


def ids(body):
    return [i["action_id"] for i in body["items"]]


def held(body):
    return {h["action_id"]: h["reason"] for h in body["withheld"]}


def feedback(client, cid, action_id, fid, outcome="dismissed", **extra):
    body = {"feedback_id": fid, "outcome": outcome, "agent_id": "agent-7", **extra}
    return client.post(f"/v1/profiles/{cid}/next-best-actions/{action_id}/feedback", json=body)


def test_ranking_for_a_crafted_profile(agent, profiles, catalogue):
    cid = make_customer(profiles)
    body = nba(agent, cid)
    # home-offer 100 x 0.5, vip-thanks 80 x 0.5, survey 10 x 0.5, tips 6 x 0.5
    assert ids(body) == ["home-offer", "vip-thanks", "survey", "tips"]
    assert [i["score"] for i in body["items"]] == [50.0, 40.0, 5.0, 3.0]
    first = body["items"][0]
    assert first["reasons"] == ["interested in home"]
    assert first["say"] == "Lena, our new home range might suit you."
    assert first["propensity"] == 0.5 and first["value"] == 100
    assert body["items"][1]["reasons"] == ["tier is gold"]
    assert body["budget"] == {"channel": "chat", "limit": 3, "used": 0, "remaining": 3}
    assert ids(nba(agent, cid, "limit=2")) == ["home-offer", "vip-thanks"]


def test_consent_blocks_sales_actions(agent, profiles, catalogue):
    cid = make_customer(profiles, marketing=False)
    body = nba(agent, cid)
    assert ids(body) == ["vip-thanks", "survey"]
    assert held(body) == {"home-offer": "no_consent", "tips": "no_consent"}


def test_feedback_is_idempotent_and_starts_a_cooldown(agent, profiles, catalogue):
    cid = make_customer(profiles)
    first = feedback(agent, cid, "home-offer", "fb-1", note="not now")
    assert first.status_code == 201
    assert first.json["duplicate"] is False and first.json["customer_id"] == cid
    assert first.json["note"] == "not now" and first.json["outcome"] == "dismissed"
    again = feedback(agent, cid, "home-offer", "fb-1", note="not now")
    assert again.status_code == 200 and again.json["duplicate"] is True
    clash = feedback(agent, cid, "home-offer", "fb-1", outcome="accepted")
    assert clash.status_code == 409 and clash.content_type == PROBLEM
    assert clash.json["errors"][0]["field"] == "feedback_id"
    body = nba(agent, cid)
    assert "home-offer" not in ids(body) and held(body)["home-offer"] == "cooldown"
    assert body["budget"]["used"] == 1


def test_feedback_errors(agent, api_as, profiles, catalogue):
    cid = make_customer(profiles)
    assert feedback(agent, "nobody", "survey", "x").status_code == 404
    assert feedback(agent, cid, "no-such-action", "x").status_code == 404
    resp = feedback(agent, cid, "survey", "x", outcome="maybe")
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == "outcome"
    resp = feedback(agent, cid, "survey", "x", channel="fax")
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == "channel"
    resp = agent.post(
        f"/v1/profiles/{cid}/next-best-actions/survey/feedback",
        json={"feedback_id": "x", "outcome": "accepted"},
    )
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == "agent_id"
    assert feedback(api_as("recommend:read"), cid, "survey", "x").status_code == 403
    assert api_as("actions:write").get(f"/v1/profiles/{cid}/next-best-actions").status_code == 403


def test_statistics_after_a_sequence_of_feedback(api, agent, profiles, catalogue):
    a, b, c = (make_customer(profiles) for _ in range(3))
    assert feedback(agent, a, "survey", "1", "accepted").status_code == 201
    assert feedback(agent, a, "survey", "2", "completed").status_code == 201
    assert feedback(agent, b, "survey", "3", "dismissed").status_code == 201
    assert feedback(agent, c, "survey", "4", "accepted").status_code == 201
    assert feedback(agent, c, "survey", "4", "accepted").status_code == 200  # retry
    assert feedback(agent, c, "tips", "5", "dismissed").status_code == 201
    stats = {s["action_id"]: s for s in api.get("/v1/actions/stats").json["items"]}
    assert stats["survey"] == {
        "action_id": "survey",
        "shown": 3,
        "accepted": 2,
        "dismissed": 1,
        "completed": 1,
        "acceptance_rate": 0.6667,
    }
    assert stats["tips"]["acceptance_rate"] == 0.0
    assert stats["vip-thanks"]["shown"] == 0 and stats["vip-thanks"]["acceptance_rate"] is None
    # the survey's propensity is now (2 + 1) / (3 + 2) = 0.6 for everyone
    fresh = make_customer(profiles)
    survey = next(i for i in nba(agent, fresh)["items"] if i["action_id"] == "survey")
    assert survey["propensity"] == 0.6 and survey["score"] == 6.0
    assert api.get("/v1/actions/stats").status_code == 200
    assert agent.get("/v1/actions/stats").status_code == 403


def test_shared_daily_budget(agent, profiles, catalogue):
    cid = make_customer(profiles)
    # a product offered from the recommendations panel, through a product-linked action
    assert feedback(agent, cid, "tips", "p", product_id="sku-1").status_code == 201
    assert feedback(agent, cid, "survey", "s", "accepted").status_code == 201
    body = nba(agent, cid)
    assert body["budget"]["remaining"] == 1
    assert ids(body) == ["home-offer", "vip-thanks"]  # one offer left, service unrationed
    assert feedback(agent, cid, "home-offer", "h", "accepted").status_code == 201
    body = nba(agent, cid)
    assert body["budget"] == {"channel": "chat", "limit": 3, "used": 3, "remaining": 0}
    assert ids(body) == ["vip-thanks"]
    # the phone is another channel with its own budget
    phone = nba(agent, cid, "limit=5&channel=phone")
    assert phone["budget"]["used"] == 0


def test_query_validation(agent, profiles, catalogue):
    cid = make_customer(profiles)
    for query, field in (("limit=0", "limit"), ("limit=11", "limit"), ("channel=fax", "channel")):
        resp = agent.get(f"/v1/profiles/{cid}/next-best-actions?{query}")
        assert resp.status_code == 422 and resp.json["errors"][0]["field"] == field
    assert agent.get("/v1/profiles/nobody/next-best-actions").status_code == 404


def test_context_reaches_the_rules(api, agent, profiles, catalogue):
    cid = make_customer(profiles)
    rule = {"field": "context.name", "op": "==", "value": "returns"}
    doc = {"title": "Explain returns", "category": "service", "value": 300, "rules": rule}
    assert api.put("/v1/actions/returns-help", json=doc).status_code == 200
    assert "returns-help" not in ids(nba(agent, cid))
    assert ids(nba(agent, cid, "context=returns"))[0] == "returns-help"


def test_catalogue_admin(api, api_as):
    listed = api.get("/v1/actions").json["items"]
    assert [a["id"] for a in listed] == sorted(a["id"] for a in DEFAULT_ACTIONS)
    doc = {"title": "Call back", "category": "sales", "value": 20, "cooldown_days": 2}
    put = api.put("/v1/actions/call-back", json=doc)
    assert put.status_code == 200 and put.json["requires_consent"] == ["marketing"]
    assert api.get("/v1/actions/call-back").json["title"] == "Call back"
    assert api.delete("/v1/actions/call-back").status_code == 204
    assert api.get("/v1/actions/call-back").status_code == 404
    assert api.delete("/v1/actions/call-back").status_code == 404
    assert api.delete("/v1/actions/winback-60d").status_code == 204
    reset = api.delete("/v1/actions")
    assert reset.status_code == 200 and len(reset.json["items"]) == len(DEFAULT_ACTIONS)
    assert api_as("recommend:read").get("/v1/actions").status_code == 403


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (
            {
                "rules": {
                    "all": [
                        {"field": "traits.order_count", "op": ">=", "value": 3},
                        {"field": "traits.order_count", "op": "≈", "value": 3},
                    ]
                }
            },
            "rules.all.1.op",
        ),
        (
            {"rules": {"any": [{"not": {"days_since": "traits.x", "op": ">"}}]}},
            "rules.any.0.not.value",
        ),
        ({"say": "{{ ''.__class__ }}"}, "say"),
        ({"category": "spam"}, "category"),
        ({"colour": "red"}, "colour"),
        ({"channels": ["fax"]}, "channels.0"),
        ({"active_from": "tomorrow"}, "active_from"),
    ],
)
def test_invalid_action_is_422_with_the_path(api, patch, field):
    doc = {"title": "X", "category": "service", "value": 1, **patch}
    resp = api.put("/v1/actions/x", json=doc)
    assert resp.status_code == 422
    assert resp.content_type == PROBLEM
    assert resp.json["errors"][0]["field"] == field


def test_replace_all_validates_every_item(api):
    bad = [CATALOGUE[0], {**CATALOGUE[2], "rules": {"field": "traits.x", "op": "in", "value": 1}}]
    resp = api.put("/v1/actions", json={"items": bad})
    assert resp.status_code == 422
    assert resp.json["errors"][0]["field"] == "items.1.rules.value"
    assert len(api.get("/v1/actions").json["items"]) == len(DEFAULT_ACTIONS)


def test_product_action_uses_the_recommender_and_rests_a_declined_product(
    app, api, agent, profiles, redis_client
):
    st = app.extensions["rapport"]
    products = Catalog(redis_client, st.keys)
    for pid, name, price in (("p-a", "Kettle", "39.90"), ("p-b", "Mug", "5.00")):
        products.upsert({"name": name, "category": "home", "price": price, "currency": "EUR"}, pid)
    top = {
        "title": "Suggest our top pick",
        "say": "You might like {{ product_name }} ({{ product_price }}).",
        "category": "sales",
        "value": 40,
        "product": "top_recommendation",
    }
    assert api.put("/v1/actions", json={"items": [{"id": "top-pick", **top}]}).status_code == 200
    cid = make_customer(profiles)
    item = nba(agent, cid)["items"][0]
    assert item["product"]["product_id"] == "p-a"
    assert item["say"] == "You might like Kettle (€39.90)."
    assert "top recommendation: Kettle" in item["reasons"]
    assert item["score"] == pytest.approx(40 * item["propensity"])
    # declined: the Kettle rests for 30 days, the next pick is offered instead
    assert feedback(agent, cid, "top-pick", "k", product_id="p-a").status_code == 201
    item = nba(agent, cid)["items"][0]
    assert item["product"]["product_id"] == "p-b"


def test_product_feedback_from_the_recommendations_shares_the_budget(api, agent, profiles):
    assert api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    cid = make_customer(profiles)
    path = f"/v1/profiles/{cid}/product-feedback"
    for i, pid in enumerate(("sku-1", "sku-2", "sku-3")):
        body = {"feedback_id": f"r{i}", "outcome": "dismissed", "agent_id": "a", "product_id": pid}
        assert agent.post(path, json=body).status_code == 201
    assert agent.post(path, json=body).status_code == 200  # retry
    missing = {"feedback_id": "x", "outcome": "dismissed", "agent_id": "a"}
    resp = agent.post(path, json=missing)
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == "product_id"
    assert agent.post("/v1/profiles/nobody/product-feedback", json=body).status_code == 404
    # three products offered today: no action offer is made on chat, service still shows
    body = nba(agent, cid)
    assert body["budget"]["remaining"] == 0
    assert ids(body) == ["vip-thanks"]
    stats = {s["action_id"]: s for s in api.get("/v1/actions/stats").json["items"]}
    assert stats["product-suggestion"]["shown"] == 3
    assert stats["product-suggestion"]["dismissed"] == 3
    resp = api.put(
        "/v1/actions/product-suggestion", json={"title": "x", "category": "sales", "value": 1}
    )
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == "id"


def test_default_catalogue_with_real_purchase_history(app, agent, profiles):
    st = app.extensions["rapport"]
    cid = make_customer(profiles, tier="silver")
    for n, days_ago in enumerate((400, 300, 200, 100, 70)):
        st.activity.record_purchase(
            cid,
            {
                "order_id": f"o-{n}",
                "lines": [{"product_id": f"p-{n}", "quantity": 1, "unit_price": "10.00"}],
                "currency": "EUR",
                "channel": "web",
                "purchased_at": time.time() - days_ago * 86400,
            },
        )
    body = nba(agent, cid)
    winback = next(i for i in body["items"] if i["action_id"] == "winback-60d")
    assert winback["reasons"] == ["5 orders", "last purchase 70 days ago"]
    assert winback["say"].startswith("It has been a while, Lena!")
    loyalty = next(i for i in body["items"] if i["action_id"] == "loyalty-upgrade")
    assert (
        "5 orders" in loyalty["reasons"]
        and "tier is silver, not gold, platinum" in loyalty["reasons"]
    )
    assert "satisfaction-survey" not in ids(body) and "first-order-welcome" not in ids(body)


def test_erasure_deletes_feedback_cooldowns_and_the_contact_log(app, api, agent, profiles):
    assert api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    cid = make_customer(profiles)
    assert feedback(agent, cid, "home-offer", "e1", product_id="sku-9").status_code == 201
    keys = app.extensions["rapport"].keys
    mine = [keys.action_feedback(cid), keys.action_state(cid), keys.contacts(cid)]
    mine.append(keys.offered_products(cid))
    redis_client = app.extensions["rapport"].redis
    assert all(redis_client.exists(k) for k in mine)
    erased = api.delete(f"/v1/profiles/{cid}")
    assert erased.status_code == 200
    assert set(mine) <= set(erased.json["keys_deleted"])
    assert not any(redis_client.exists(k) for k in mine)


def test_product_action_with_a_trained_model(app, api, agent, profiles):
    load_catalog(app)
    install_model(app, "v1")
    cid = profiles.create(
        {"first_name": "Kim", "consent": {"marketing": {"granted": True, "source": "web"}}},
        customer_id="C000",  # a customer the model was trained on
    ).id
    record_purchase(
        app.extensions["rapport"].redis,
        app.extensions["rapport"].keys,
        cid,
        purchase("o-1", END, "P000", "P001"),
    )
    top = {"title": "Top pick", "category": "sales", "value": 40, "product": "top_recommendation"}
    assert api.put("/v1/actions", json={"items": [{"id": "top-pick", **top}]}).status_code == 200
    item = nba(agent, cid)["items"][0]
    product = item["product"]
    assert product["product_id"] not in ("P000", "P001")  # discover: nothing already bought
    assert 0.0 < item["propensity"] < 1.0
    assert item["propensity"] == pytest.approx(1 / (1 + math.exp(-product["score"])), abs=1e-3)
    assert item["score"] == pytest.approx(40 * item["propensity"], abs=0.01)


# -- one language per answer ---------------------------------------------------------------
def customer_in(profiles, locale):
    return profiles.create(
        {
            "first_name": "Lena",
            "last_name": "Berg",
            "locale": locale,
            "timezone": "Europe/Vienna",
            "loyalty_tier": "gold",
            "consent": {"marketing": {"granted": True, "source": "web"}},
        }
    ).id


def test_the_action_line_for_de_at_is_german_with_german_money(app, api, agent, profiles):
    st = app.extensions["rapport"]
    Catalog(st.redis, st.keys).upsert(
        {"name": "Teekanne", "category": "home", "price": "1.65", "currency": "GBP"}, "p-t"
    )
    top = {
        "title": "Suggest our top pick",
        "say": {
            "en": "You might like {{ product_name }} ({{ product_price }}).",
            "de": "{{ product_name }} ({{ product_price }}) könnte Ihnen gefallen.",
        },
        "category": "sales",
        "value": 40,
        "product": "top_recommendation",
    }
    resp = api.put("/v1/actions/top-pick", json=top)
    assert resp.status_code == 200, resp.json
    assert resp.json["say"] == top["say"]
    item = nba(agent, customer_in(profiles, "de-AT"))["items"][0]
    assert item["say"] == "Teekanne (£\xa01,65) könnte Ihnen gefallen."
    assert (item["locale"], item["fallback"], item["format_locale"]) == ("de", False, "de-AT")
    assert item["product"]["price_text"] == "£\xa01,65"
    item = nba(agent, customer_in(profiles, "en-AU"))["items"][0]
    assert item["say"] == "You might like Teekanne (GBP1.65)."  # en-AU's own format
    assert item["product"]["price_text"] == "GBP1.65"  # the console shows the same
    item = nba(agent, customer_in(profiles, "fi-FI"))["items"][0]
    assert item["say"] == "You might like Teekanne (£1.65)."
    assert (item["locale"], item["fallback"], item["format_locale"]) == ("en", True, "en")


def test_shipped_actions_speak_the_customers_language(api, agent, profiles):
    assert api.delete("/v1/actions").status_code == 200  # the shipped defaults
    listed = {a["id"]: a for a in api.get("/v1/actions").json["items"]}
    assert set(listed["first-order-welcome"]["say"]) == {"en", "de", "fr", "es"}
    for locale, start in (
        ("de-AT", "Willkommen, Lena! Deine erste Bestellung"),
        ("fr", "Bienvenue, Lena ! Cette semaine"),
        ("es-MX", "¡Bienvenido, Lena! Esta semana"),
        ("en", "Welcome, Lena! Your first order"),
    ):
        items = nba(agent, customer_in(profiles, locale))["items"]
        welcome = next(i for i in items if i["action_id"] == "first-order-welcome")
        assert welcome["say"].startswith(start), (locale, welcome)
        assert welcome["fallback"] is False


@pytest.mark.parametrize(
    ("say", "field"),
    [
        ({"en": "Hi", "de": "{{ ''.__class__ }}"}, "say.de"),
        ({"en": "Hi", "fr-CA": "{{ nope }}"}, "say.fr-CA"),
        ({"xx!": "Hi"}, "say.xx!"),
        ({}, "say"),
        (5, "say"),
    ],
)
def test_an_invalid_say_line_in_any_locale_is_422_naming_it(api, say, field):
    doc = {"title": "X", "category": "service", "value": 1, "say": say}
    resp = api.put("/v1/actions/x", json=doc)
    assert resp.status_code == 422, resp.json
    assert resp.json["errors"][0]["field"] == field
    resp = api.put("/v1/actions", json={"items": [{"id": "x", **doc}]})
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == f"items.0.{field}"


# -- learning, the control group and the performance statistics (recommend/engage/adaptive.py)
@pytest.fixture
def learning_app(app_config, redis_client):
    """An app whose customers are half adaptive, half control, ranked by the learned means."""
    from service import create_app

    config = {**app_config, "nba_control_share": 0.5, "nba_explore_share": 0.0, "nba_salt": "t"}
    return create_app(config, redis=redis_client)


@pytest.fixture
def learning_api(learning_app):
    from tests.conftest import ApiClient

    _, token = learning_app.extensions["rapport"].api_keys.create("admin", ["admin"])
    return ApiClient(learning_app.test_client(), token)


def test_the_test_app_ranks_everyone_by_the_global_rate(agent, profiles, catalogue):
    body = nba(agent, make_customer(profiles))
    assert body["group"] == "control"
    assert not any(item["exploring"] for item in body["items"])


def test_adaptive_customers_learn_per_segment_over_http(learning_app, learning_api, profiles):
    assert learning_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    learning = learning_app.extensions["rapport"].engage.policy.learning
    gold, bronze = [], []
    while len(gold) < 13 or len(bronze) < 13:
        tier = "gold" if len(gold) < 13 else "bronze"
        cid = make_customer(profiles, tier=tier)
        if learning.group_of(cid) == "adaptive":
            (gold if tier == "gold" else bronze).append(cid)
    for i, (g, b) in enumerate(zip(gold[:12], bronze[:12], strict=True)):
        assert feedback(learning_api, g, "tips", f"g{i}", "accepted").status_code == 201
        assert feedback(learning_api, b, "tips", f"b{i}", "dismissed").status_code == 201
    tips = {}
    for cid in (gold[12], bronze[12]):
        body = nba(learning_api, cid, "limit=10")
        assert body["group"] == "adaptive"
        tips[cid] = next(i for i in body["items"] if i["action_id"] == "tips")
    assert tips[gold[12]]["propensity"] > 0.6 > 0.4 > tips[bronze[12]]["propensity"]
    assert "accepted by 100% of gold customers on chat (12 offers)" in tips[gold[12]]["reasons"]
    assert "accepted by 0% of bronze customers on chat (12 offers)" in tips[bronze[12]]["reasons"]


def test_performance_per_group_with_intervals(learning_app, learning_api, profiles, api):
    assert learning_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    learning = learning_app.extensions["rapport"].engage.policy.learning
    shown = {"adaptive": 0, "control": 0}
    accepted = {"adaptive": 0, "control": 0}
    for i in range(30):
        cid = make_customer(profiles)
        group = learning.group_of(cid)
        outcome = "accepted" if (group == "adaptive" or i % 3 == 0) else "dismissed"
        assert feedback(learning_api, cid, "survey", f"f{i}", outcome).status_code == 201
        shown[group] += 1
        accepted[group] += outcome == "accepted"
    assert shown["adaptive"] and shown["control"]
    resp = learning_api.get("/v1/actions/performance")
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["control_share"] == 0.5 and body["from"] <= body["to"]
    survey = next(i for i in body["items"] if i["action_id"] == "survey")
    for group in ("adaptive", "control"):
        view = survey["groups"][group]
        assert view["shown"] == shown[group] and view["accepted"] == accepted[group]
        assert view["low"] <= view["acceptance_rate"] <= view["high"]
    uplift = survey["uplift"]
    assert uplift["difference"] == pytest.approx(
        accepted["adaptive"] / shown["adaptive"] - accepted["control"] / shown["control"], abs=1e-3
    )
    assert uplift["low"] <= uplift["difference"] <= uplift["high"]
    assert body["total"]["groups"]["control"]["shown"] == shown["control"]
    tips = next(i for i in body["items"] if i["action_id"] == "tips")
    assert tips["groups"]["adaptive"]["shown"] == 0 and tips["uplift"] is None
    # a range before the feedback has none of it
    old = learning_api.get("/v1/actions/performance?from=2020-01-01&to=2020-01-31").json
    assert old["total"]["groups"]["adaptive"]["shown"] == 0
    assert old["from"] == "2020-01-01" and old["to"] == "2020-01-31"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("from=2024-01-01&to=2026-01-01", "from"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("since=2026-01-01", "since"),
    ],
)
def test_performance_bad_inputs_are_422_with_the_field(api, query, field):
    resp = api.get(f"/v1/actions/performance?{query}")
    assert resp.status_code == 422, resp.json
    assert resp.content_type == PROBLEM
    assert resp.json["errors"][0]["field"] == field


def test_performance_needs_admin(agent):
    assert agent.get("/v1/actions/performance").status_code == 403


# -- impressions and the feedback window (recommend/engage/impressions.py) ----------------------
@pytest.fixture
def shown_app(app_config, redis_client):
    """An app that needs an impression for offer feedback (a 1 h window), half control."""
    from service import create_app

    config = {
        **app_config,
        "nba_control_share": 0.5,
        "nba_explore_share": 0.0,
        "nba_salt": "t",
        "nba_impression_window_s": 3600,
    }
    return create_app(config, redis=redis_client)


@pytest.fixture
def shown_api(shown_app):
    from tests.conftest import ApiClient

    _, token = shown_app.extensions["rapport"].api_keys.create("admin", ["admin"])
    return ApiClient(shown_app.test_client(), token)


def _outcomes(shown_app, redis_client):
    from recommend.engage.adaptive import day_of

    keys = shown_app.extensions["rapport"].keys
    return redis_client.hgetall(keys.action_outcomes(day_of(time.time())))


def test_feedback_on_an_action_never_shown_is_422_naming_action_id(shown_api, profiles):
    assert shown_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    cid = make_customer(profiles)
    for outcome in ("accepted", "dismissed"):
        resp = feedback(shown_api, cid, "survey", f"n-{outcome}", outcome)
        assert resp.status_code == 422 and resp.content_type == PROBLEM
        assert resp.json["errors"][0]["field"] == "action_id"
    # an unknown action is still 404, an unknown customer too
    assert feedback(shown_api, cid, "no-such-action", "x").status_code == 404
    assert feedback(shown_api, "nobody", "survey", "x").status_code == 404
    assert "survey" in ids(nba(shown_api, cid))  # shown now: its feedback will match
    # completed needs no impression (the agent did it); product feedback neither
    assert feedback(shown_api, cid, "tips", "c1", "completed").status_code == 201
    body = {"feedback_id": "p1", "outcome": "dismissed", "agent_id": "a", "product_id": "sku-1"}
    assert shown_api.post(f"/v1/profiles/{cid}/product-feedback", json=body).status_code == 201
    # shown: feedback matches the impression; a later dismissal follows earlier feedback
    assert feedback(shown_api, cid, "survey", "s1", "accepted").status_code == 201
    assert feedback(shown_api, cid, "tips", "t2", "dismissed").status_code == 201
    stats = {s["action_id"]: s for s in shown_api.get("/v1/actions/stats").json["items"]}
    assert stats["survey"]["accepted"] == 1 and stats["survey"]["shown"] == 1


def test_an_impression_outside_the_window_does_not_match(shown_app, shown_api, profiles):
    assert shown_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    cid = make_customer(profiles)
    assert "survey" in ids(nba(shown_api, cid))
    st = shown_app.extensions["rapport"]
    # the impression was made two hours ago: outside the 1 h window
    st.redis.zadd(st.keys.impressions(cid), {"survey": time.time() - 7200})
    resp = feedback(shown_api, cid, "survey", "late", "accepted")
    assert resp.status_code == 422 and resp.json["errors"][0]["field"] == "action_id"


def test_impressions_count_once_per_request_id_as_shown(
    shown_app, shown_api, profiles, redis_client
):
    assert shown_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    learning = shown_app.extensions["rapport"].engage.policy.learning
    cid = make_customer(profiles)
    group = learning.group_of(cid)
    path = f"/v1/profiles/{cid}/next-best-actions?limit=5"
    for _ in range(2):  # a retry with the same request id
        resp = shown_api.get(path, headers={"X-Request-ID": "req-1"})
        assert resp.status_code == 200
    shown = ids(resp.json)
    counts = _outcomes(shown_app, redis_client)
    assert {f: int(v) for f, v in counts.items()} == {f"{group}:{a}:shown": 1 for a in shown}
    assert shown_api.get(path, headers={"X-Request-ID": "req-2"}).status_code == 200
    assert int(_outcomes(shown_app, redis_client)[f"{group}:survey:shown"]) == 2
    # feedback on the impression is not another offer per group: acceptance = accepted / shown
    assert feedback(shown_api, cid, "survey", "s1", "accepted").status_code == 201
    counts = _outcomes(shown_app, redis_client)
    assert int(counts[f"{group}:survey:shown"]) == 2
    assert int(counts[f"{group}:survey:accepted"]) == 1
    perf = shown_api.get("/v1/actions/performance").json
    survey = next(i for i in perf["items"] if i["action_id"] == "survey")
    assert survey["groups"][group]["acceptance_rate"] == 0.5
    # the customer's impressions are customer data: erasure deletes them
    keys = shown_app.extensions["rapport"].keys
    assert redis_client.exists(keys.impressions(cid))
    erased = shown_api.delete(f"/v1/profiles/{cid}")
    assert keys.impressions(cid) in erased.json["keys_deleted"]
    assert not redis_client.exists(keys.impressions(cid))


def test_a_replayed_feedback_id_changes_no_counter(shown_app, shown_api, profiles, redis_client):
    assert shown_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    cid = make_customer(profiles)
    assert "survey" in ids(nba(shown_api, cid))
    assert (
        feedback(shown_api, cid, "survey", "r1", "accepted", context="checkout").status_code == 201
    )
    keys = shown_app.extensions["rapport"].keys

    def counters():
        return (
            redis_client.hgetall(keys.action_stats()),
            redis_client.hgetall(keys.action_segments()),
            _outcomes(shown_app, redis_client),
            redis_client.zcard(keys.contacts(cid)),
        )

    before = counters()
    # a replay, also after the impression has gone (expired): the stored record, nothing counted
    redis_client.delete(keys.impressions(cid))
    again = feedback(shown_api, cid, "survey", "r1", "accepted", context="checkout")
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert counters() == before


# -- the learning's admin operations (recommend/engage/learning_admin.py) ----------------------
def test_reset_zeroes_one_actions_learning_and_keeps_the_feedback(
    learning_app, learning_api, profiles, redis_client, caplog
):
    assert learning_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    keys = learning_app.extensions["rapport"].keys
    cids = [make_customer(profiles) for _ in range(6)]
    for i, cid in enumerate(cids):
        assert feedback(learning_api, cid, "tips", f"t{i}", "accepted").status_code == 201
        assert feedback(learning_api, cid, "survey", f"s{i}", "accepted").status_code == 201
    segments = redis_client.hgetall(keys.action_segments())
    assert any(f.startswith("tips|") for f in segments)
    with caplog.at_level("INFO", logger="rapport.admin"):
        resp = learning_api.post("/v1/actions/tips/learning/reset")
    assert resp.status_code == 200, resp.json
    assert resp.json["action_id"] == "tips" and resp.json["segment_fields"] > 0
    assert resp.json["outcome_fields"] >= 2  # shown and accepted of at least one group
    after = redis_client.hgetall(keys.action_segments())
    assert not any(f.startswith("tips|") for f in after)
    assert {f: v for f, v in segments.items() if f.startswith("survey|")} == after
    perf = learning_api.get("/v1/actions/performance").json
    tips = next(i for i in perf["items"] if i["action_id"] == "tips")
    assert tips["groups"]["adaptive"]["shown"] == tips["groups"]["control"]["shown"] == 0
    survey = next(i for i in perf["items"] if i["action_id"] == "survey")
    assert sum(survey["groups"][g]["shown"] for g in ("adaptive", "control")) == 6
    # the history stays: feedback records and the global statistics
    assert redis_client.hexists(keys.action_feedback(cids[0]), "t0")
    stats = {s["action_id"]: s for s in learning_api.get("/v1/actions/stats").json["items"]}
    assert stats["tips"]["accepted"] == 6
    (line,) = [r for r in caplog.records if r.name == "rapport.admin"]
    assert line.admin_change == "learning_reset" and line.action_id == "tips"
    assert line.key_name == "admin"
    assert learning_api.post("/v1/actions/nope/learning/reset").status_code == 404
    # the audit log names who reset what (one entry: the refused 404 is not an audited change)
    audited = learning_api.get("/v1/admin/audit?action=admin").json["items"]
    assert [(e["route"], e["key_name"], e["profile_id"]) for e in audited] == [
        ("POST /v1/actions/tips/learning/reset", "admin", "")
    ]


def test_the_experiment_settings_override_the_config_and_reach_the_ranking(
    learning_app, learning_api, agent, profiles, caplog
):
    assert learning_api.put("/v1/actions", json={"items": CATALOGUE}).status_code == 200
    got = learning_api.get("/v1/actions/experiment").json
    assert got == {"control_share": 0.5, "salt": "t", "overridden": []}
    cid = make_customer(profiles)
    with caplog.at_level("INFO", logger="rapport.admin"):
        resp = learning_api.put("/v1/actions/experiment", json={"control_share": 1.0})
    assert resp.status_code == 200, resp.json
    assert resp.json == {"control_share": 1.0, "salt": "t", "overridden": ["control_share"]}
    (line,) = [r for r in caplog.records if r.name == "rapport.admin"]
    assert line.admin_change == "experiment" and line.after["control_share"] == 1.0
    audited = learning_api.get("/v1/admin/audit?action=admin").json["items"]
    assert [e["route"] for e in audited] == ["PUT /v1/actions/experiment"]  # the GET is not
    assert nba(learning_api, cid)["group"] == "control"
    assert (
        learning_api.put("/v1/actions/experiment", json={"control_share": 0.0}).status_code == 200
    )
    assert nba(learning_api, cid)["group"] == "adaptive"
    assert learning_api.get("/v1/actions/performance").json["control_share"] == 0.0
    resp = learning_api.put("/v1/actions/experiment", json={"salt": "new-1"})
    assert resp.json["salt"] == "new-1" and resp.json["control_share"] == 0.0
    for body, field in (
        ({"control_share": 1.5}, "control_share"),
        ({"salt": "a b"}, "salt"),
        ({}, "control_share"),
        ({"share": 0.2}, "share"),
    ):
        resp = learning_api.put("/v1/actions/experiment", json=body)
        assert resp.status_code == 422 and resp.content_type == PROBLEM, body
        assert resp.json["errors"][0]["field"] == field
    assert agent.put("/v1/actions/experiment", json={"control_share": 0.2}).status_code == 403
    assert agent.post("/v1/actions/tips/learning/reset").status_code == 403


def test_a_damaged_experiment_setting_falls_back_to_the_config(
    learning_app, learning_api, redis_client, caplog
):
    keys = learning_app.extensions["rapport"].keys
    redis_client.hset(keys.action_experiment(), "control_share", "lots")
    with caplog.at_level("WARNING", logger="rapport.actions"):
        got = learning_api.get("/v1/actions/experiment").json
    assert got["control_share"] == 0.5
    assert any("damaged experiment" in r.getMessage() for r in caplog.records)
