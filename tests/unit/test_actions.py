"""Next-best actions and the contact policy, against a real Redis with a fixed clock."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from profiles.keys import Keys
from recommend.engage.action_defaults import DEFAULT_ACTIONS
from recommend.engage.actions import ActionCatalog, NextBestActions, normalise_action, smoothed_rate
from recommend.engage.contact import ContactPolicy
from recommend.engage.facts import build_facts
from recommend.errors import (
    ActionNotFound,
    FeedbackConflict,
    InvalidAction,
    InvalidRule,
    InvalidTemplate,
)

DAY = 86400.0
# 2026-11-22 10:00 UTC (11:00 in Berlin)
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


PRODUCTS = [
    {"product_id": "p1", "name": "Kettle", "price": "39.90", "currency": "EUR", "propensity": 0.9},
    {"product_id": "p2", "name": "Toaster", "price": "25.00", "currency": "EUR", "propensity": 0.8},
    {"product_id": "p3", "name": "Mug", "price": "5.00", "currency": "EUR", "propensity": 0.7},
]


def pick_products(facts, n, exclude):
    return [p for p in PRODUCTS if p["product_id"] not in exclude][:n]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def keys():
    return Keys("rp")


@pytest.fixture
def catalog(redis_client, keys, clock):
    return ActionCatalog(redis_client, keys, clock)


@pytest.fixture
def policy(redis_client, keys, clock):
    return ContactPolicy(redis_client, keys, clock)


@pytest.fixture
def nba(catalog, policy, clock):
    return NextBestActions(catalog, policy, clock, pick_products)


def customer(
    cid="c-1",
    *,
    marketing=True,
    orders=6,
    days_ago=70,
    tickets=1,
    tier="silver",
    tz="Europe/Berlin",
):
    traits = {"order_count": orders, "open_support_contacts": tickets}
    if days_ago is not None:
        traits["last_purchase_at"] = T0 - days_ago * DAY
        traits["days_since_last_purchase"] = days_ago
    profile = {
        "name": {"given": "Anna", "family": "Schmidt", "title": "Frau"},
        "locale": "en",
        "timezone": tz,
        "tier": tier,
        "consent": {"marketing": {"granted": marketing, "at": T0, "source": "web"}},
    }
    return build_facts(cid, profile, traits)


def ids(result):
    return [item["action_id"] for item in result["items"]]


def held(result):
    return {h["action_id"]: h["reason"] for h in result["withheld"]}


# -- catalogue -----------------------------------------------------------------------------
def test_defaults_are_seeded_once_and_deletes_stick(catalog):
    assert [a["id"] for a in catalog.list()] == sorted(a["id"] for a in DEFAULT_ACTIONS)
    catalog.delete("winback-60d")
    assert "winback-60d" not in [a["id"] for a in catalog.list()]
    with pytest.raises(ActionNotFound):
        catalog.get("winback-60d")
    catalog.reset()
    assert catalog.get("winback-60d")["category"] == "retention"


def test_put_validates_and_implies_marketing_consent(catalog):
    doc, created = catalog.put(
        "vip-call",
        {"title": "Call", "category": "sales", "value": 10, "rules": None, "cooldown_days": 3},
    )
    assert created and doc["requires_consent"] == ["marketing"]
    assert doc["channels"] == ["chat", "email", "phone"]
    _, created = catalog.put("vip-call", {**doc, "value": 12})
    assert not created and catalog.get("vip-call")["value"] == 12


@pytest.mark.parametrize(
    ("patch", "field", "error"),
    [
        (
            {
                "rules": {
                    "all": [
                        {"field": "traits.x", "op": ">=", "value": 1},
                        {"field": "traits.x", "op": "~"},
                    ]
                }
            },
            "rules.all.1.op",
            InvalidRule,
        ),
        ({"say": "{{ ''.__class__ }}"}, "say", InvalidTemplate),
        ({"say": "{{ unknown_thing }}"}, "say", InvalidTemplate),
        ({"category": "spam"}, "category", InvalidAction),
        ({"value": -1}, "value", InvalidAction),
        ({"value": True}, "value", InvalidAction),
        ({"cooldown_days": 400}, "cooldown_days", InvalidAction),
        ({"product": "random"}, "product", InvalidAction),
        ({"channels": ["fax"]}, "channels.0", InvalidAction),
        ({"active_from": "2027-01-01", "active_to": "2026-01-01"}, "active_to", InvalidAction),
        ({"active_from": "soon"}, "active_from", InvalidAction),
        ({"title": ""}, "title", InvalidAction),
        ({"colour": "red"}, "colour", InvalidAction),
        ({"id": "other"}, "id", InvalidAction),
    ],
)
def test_invalid_actions_name_the_field(catalog, patch, field, error):
    body = {"title": "X", "category": "service", "value": 1, **patch}
    with pytest.raises(error) as info:
        catalog.put("x", body)
    assert info.value.field == field


def test_replace_all_prefixes_the_item_index(catalog):
    good = normalise_action(DEFAULT_ACTIONS[0])
    bad = {**good, "id": "b", "rules": {"not": {"field": "traits.x", "op": "between"}}}
    with pytest.raises(InvalidRule) as info:
        catalog.replace_all([good, bad])
    assert info.value.field == "items.1.rules.not.op"
    assert [a["id"] for a in catalog.replace_all([good])] == [good["id"]]
    assert [a["id"] for a in catalog.list()] == [good["id"]]


# -- ranking -------------------------------------------------------------------------------
def test_ranking_order_for_a_crafted_profile(nba):
    # open ticket, 6 orders, last purchase 70 days ago, silver tier, marketing consent:
    # resolve 100 x 0.5 = 50, suggest-top-product 40 x 0.9 = 36, win-back 60 x 0.5 = 30,
    # loyalty 50 x 0.5 = 25; the survey (3..30 days) and first-order welcome do not apply.
    result = nba.rank(customer(), channel="chat", limit=5)
    assert ids(result) == [
        "resolve-open-ticket",
        "suggest-top-product",
        "winback-60d",
        "loyalty-upgrade",
    ]
    assert [i["score"] for i in result["items"]] == [50.0, 36.0, 30.0, 25.0]
    top = result["items"][1]
    assert top["product"]["product_id"] == "p1"
    assert top["say"] == "Based on what you like, you might enjoy Kettle (€39.90)."
    assert "top recommendation: Kettle" in top["reasons"]
    winback = result["items"][2]
    assert winback["reasons"] == ["6 orders", "last purchase 70 days ago"]
    assert winback["say"].startswith("It has been a while, Anna!")
    assert ids(nba.rank(customer(), channel="chat", limit=2)) == ids(result)[:2]


def test_history_changes_propensity(nba, policy, catalog):
    # win-back accepted twice elsewhere: (2 + 1) / (2 + 2) = 0.75 -> 45, above the product's 36
    winback = catalog.get("winback-60d")
    for i in range(2):
        policy.record_feedback(
            f"other-{i}", winback, feedback_id=f"f{i}", outcome="accepted", agent_id="a"
        )
    assert smoothed_rate(policy.stats()["winback-60d"]) == 0.75
    result = nba.rank(customer(), channel="chat", limit=3)
    assert ids(result) == ["resolve-open-ticket", "winback-60d", "suggest-top-product"]
    assert result["items"][1]["score"] == 45.0
    assert "accepted 100% of 2 times offered" in result["items"][1]["reasons"]


def test_consent_blocks_sales_and_retention_actions(nba):
    result = nba.rank(customer(marketing=False), channel="chat", limit=5)
    assert ids(result) == ["resolve-open-ticket"]
    assert held(result) == {
        "suggest-top-product": "no_consent",
        "winback-60d": "no_consent",
        "loyalty-upgrade": "no_consent",
    }
    # a first-time customer without consent gets no welcome offer either
    first = nba.rank(customer(marketing=False, orders=0, days_ago=None, tickets=0))
    assert ids(first) == [] and held(first) == {"first-order-welcome": "no_consent"}


def test_unknown_customer_gets_only_rule_free_service(nba, catalog):
    catalog.put("greet-back", {"title": "Ask how we can help", "category": "service", "value": 1})
    result = nba.rank(build_facts(None, None), channel="phone")
    assert ids(result) == ["greet-back"]


def test_cooldown_after_feedback(nba, policy, catalog, clock):
    policy.record_feedback(
        "c-1", catalog.get("winback-60d"), feedback_id="fb-1", outcome="dismissed", agent_id="a"
    )
    result = nba.rank(customer(), channel="chat", limit=5)
    assert "winback-60d" not in ids(result)
    hold = next(h for h in result["withheld"] if h["action_id"] == "winback-60d")
    assert hold["reason"] == "cooldown" and hold["until"] == T0 + 30 * DAY
    clock.now = T0 + 29 * DAY
    assert held(nba.rank(customer(), channel="chat", limit=5))["winback-60d"] == "cooldown"
    clock.now = T0 + 30 * DAY + 1
    assert "winback-60d" in ids(nba.rank(customer(), channel="email", limit=5))


def test_statistics_after_a_sequence_of_feedback(policy, catalog, clock):
    survey = catalog.get("satisfaction-survey")
    winback = catalog.get("winback-60d")

    def fb(cid, action, fid, outcome):
        return policy.record_feedback(cid, action, feedback_id=fid, outcome=outcome, agent_id="ag")

    fb("c-1", survey, "1", "accepted")
    fb("c-1", survey, "2", "completed")  # follow-up of the accepted offer: not a new offer
    fb("c-2", survey, "3", "dismissed")
    fb("c-3", survey, "4", "completed")  # done without an offer first: offered and accepted
    record, created = fb("c-1", survey, "1", "accepted")  # a retry: counted once
    assert not created and record["outcome"] == "accepted" and "fingerprint" not in record
    fb("c-4", winback, "5", "dismissed")
    with pytest.raises(FeedbackConflict) as info:
        fb("c-1", survey, "1", "dismissed")
    assert info.value.field == "feedback_id"
    stats = policy.stats(["resolve-open-ticket"])
    assert stats["satisfaction-survey"] == {
        "shown": 3,
        "accepted": 2,
        "dismissed": 1,
        "completed": 2,
        "acceptance_rate": round(2 / 3, 4),
    }
    assert stats["winback-60d"]["acceptance_rate"] == 0.0
    assert stats["resolve-open-ticket"] == {
        "shown": 0,
        "accepted": 0,
        "dismissed": 0,
        "completed": 0,
        "acceptance_rate": None,
    }
    assert [r["feedback_id"] for r in policy.feedback_history("c-1")] == ["1", "2"]


def test_shared_budget_across_actions_and_product_suggestions(nba, policy, catalog, clock):
    cid = "c-1"
    facts = customer(cid, tickets=0)
    product_action = catalog.get("suggest-top-product")
    # 1: the agent offered the Kettle; the customer declined
    policy.record_feedback(
        cid, product_action, feedback_id="a", outcome="dismissed", agent_id="ag", product_id="p1"
    )
    result = nba.rank(facts, channel="chat", limit=5)
    assert result["budget"] == {"channel": "chat", "limit": 3, "used": 1, "remaining": 2}
    # the declined product is not pushed again: the action rests in cooldown, and once that
    # is over the next recommendation is offered instead
    assert held(result)["suggest-top-product"] == "cooldown"
    assert ids(result) == ["winback-60d", "loyalty-upgrade"]  # two left today
    # 2 and 3: two more offers today (a custom product-linked service action counts too)
    catalog.put(
        "spare-part",
        {
            "title": "Offer a spare part",
            "category": "service",
            "value": 5,
            "product": "top_recommendation",
        },
    )
    policy.record_feedback(
        cid, catalog.get("loyalty-upgrade"), feedback_id="b", outcome="accepted", agent_id="ag"
    )
    result = nba.rank(facts, channel="chat", limit=5)
    assert result["budget"]["remaining"] == 1
    assert ids(result) == ["winback-60d"]
    assert held(result)["spare-part"] == "budget"
    policy.record_feedback(
        cid,
        catalog.get("spare-part"),
        feedback_id="c",
        outcome="dismissed",
        agent_id="ag",
        product_id="p2",
    )
    # three offers today: no fourth on chat, while a service action would still show
    catalog.put(
        "resolve-open-ticket",
        {**catalog.get("resolve-open-ticket"), "rules": None},
    )
    result = nba.rank(facts, channel="chat", limit=5)
    assert ids(result) == ["resolve-open-ticket"]
    assert held(result)["winback-60d"] == "budget"
    # the phone channel has its own budget
    assert "winback-60d" in ids(nba.rank(facts, channel="phone", limit=5))
    # the next local day the budget is fresh; both declined products still rest (30 days)
    clock.now = T0 + 8 * DAY
    result = nba.rank(facts, channel="chat", limit=5)
    assert result["budget"]["used"] == 0
    top = next(i for i in result["items"] if i["action_id"] == "suggest-top-product")
    assert top["product"]["product_id"] == "p3"
    assert top["score"] == pytest.approx(40 * 0.7)


def test_budget_day_is_the_customers_local_day(nba, policy, catalog, clock):
    # 23:30 in Berlin on the 22nd; 00:30 on the 23rd is a new day there
    clock.now = datetime(2026, 11, 22, 22, 30, tzinfo=UTC).timestamp()
    for fid in ("a", "b", "c"):
        policy.record_feedback(
            "c-1", catalog.get("winback-60d"), feedback_id=fid, outcome="dismissed", agent_id="x"
        )
    assert policy.budget("c-1", "chat", "Europe/Berlin")["remaining"] == 0
    clock.now += 3600
    assert policy.budget("c-1", "chat", "Europe/Berlin")["remaining"] == 3
    assert policy.budget("c-1", "chat", "America/New_York")["remaining"] == 0


def test_service_feedback_does_not_use_the_budget(policy, catalog):
    policy.record_feedback(
        "c-1",
        catalog.get("resolve-open-ticket"),
        feedback_id="s",
        outcome="completed",
        agent_id="x",
    )
    assert policy.budget("c-1", "chat", None)["used"] == 0


def test_inactive_channel_and_context_filters(nba, catalog, clock):
    base = {"title": "T", "category": "service", "value": 1}
    catalog.put("past", {**base, "active_to": "2026-01-01"})
    catalog.put("future", {**base, "active_from": "2027-01-01T00:00:00Z"})
    catalog.put("now", {**base, "active_from": "2026-11-01", "active_to": "2026-12-01"})
    catalog.put("phone-only", {**base, "channels": ["phone"]})
    catalog.put("checkout", {**base, "contexts": ["checkout"]})
    catalog.put(
        "ctx-rule",
        {**base, "rules": {"field": "context.name", "op": "==", "value": "returns"}},
    )
    facts = customer(tickets=0, marketing=False)
    chat = ids(nba.rank(facts, channel="chat", limit=10))
    assert {"now"} <= set(chat) and not {"past", "future", "phone-only", "checkout"} & set(chat)
    assert "phone-only" in ids(nba.rank(facts, channel="phone", limit=10))
    assert "checkout" in ids(nba.rank(facts, channel="chat", context="checkout", limit=10))
    assert "ctx-rule" in ids(nba.rank(facts, channel="chat", context="returns", limit=10))


def test_a_broken_say_line_stored_behind_our_back_does_not_fail(nba, catalog, redis_client, keys):
    doc = copy.deepcopy(catalog.get("resolve-open-ticket"))
    doc["say"] = "{{ ''.__class__.__mro__ }}"
    redis_client.hset(keys.action_catalog(), doc["id"], json.dumps(doc))
    result = nba.rank(customer(), channel="chat")
    item = next(i for i in result["items"] if i["action_id"] == "resolve-open-ticket")
    assert item["say"] is None


def test_no_product_available_withholds_the_product_action(catalog, policy, clock):
    nba = NextBestActions(catalog, policy, clock, lambda facts, n, exclude: [])
    assert held(nba.rank(customer(), limit=5))["suggest-top-product"] == "no_product"


def test_per_customer_keys_are_erasable(redis_client, policy, catalog, keys):
    policy.record_feedback(
        "c-9",
        catalog.get("suggest-top-product"),
        feedback_id="z",
        outcome="dismissed",
        agent_id="x",
        product_id="p1",
    )
    found = set(redis_client.scan_iter(match=keys.customer_pattern("c-9")))
    assert found and found <= set(keys.customer_keys("c-9"))


def test_the_recommender_is_asked_only_when_a_product_action_could_make_the_list(
    catalog, policy, clock
):
    calls = []

    def counting(facts, n, exclude):
        calls.append(facts["customer_id"])
        return pick_products(facts, n, exclude)

    nba = NextBestActions(catalog, policy, clock, counting)
    # resolve-open-ticket (50) beats the product action's best case (40 x 1.0)
    assert ids(nba.rank(customer(), limit=1)) == ["resolve-open-ticket"]
    assert calls == []
    assert ids(nba.rank(customer(), limit=2))[1] == "suggest-top-product"
    assert calls == ["c-1"]


# -- one language per answer ---------------------------------------------------------------
def customer_in(locale, **over):
    facts = customer(**over)
    facts["profile"]["locale"] = locale
    return facts


def test_the_say_line_for_de_at_is_german_with_german_money(nba):
    items = {i["action_id"]: i for i in nba.rank(customer_in("de-AT"), limit=5)["items"]}
    top = items["suggest-top-product"]
    assert top["say"] == "Nach deinem Geschmack könnte dir Kettle (€\xa039,90) gefallen."
    assert (top["locale"], top["fallback"], top["format_locale"]) == ("de", False, "de-AT")
    assert top["product"]["price_text"] == "€\xa039,90"  # the console shows this one
    assert items["winback-60d"]["say"].startswith("Lange nicht gesehen, Anna! ")
    assert "10 % Rabatt auf deine" in items["winback-60d"]["say"]
    phone = {i["action_id"]: i for i in nba.rank(customer_in("de-AT"), channel="phone")["items"]}
    assert phone["resolve-open-ticket"]["say"] == (
        "Ich sehe Ihre offene Anfrage, Frau Schmidt; ich schaue gleich nach dem Stand."
    )


def test_a_customer_without_lines_in_their_language_gets_english_formatted_as_english(nba):
    top = next(
        i
        for i in nba.rank(customer_in("fi-FI"), limit=5)["items"]
        if i["action_id"] == "suggest-top-product"
    )
    assert top["say"] == "Based on what you like, you might enjoy Kettle (€39.90)."
    assert (top["locale"], top["fallback"], top["format_locale"]) == ("en", True, "en")
    assert top["product"]["price_text"] == "€39.90"


@pytest.mark.parametrize(
    ("locale", "start"),
    [
        ("fr-FR", "D'après tes goûts, Kettle (39,90\xa0€) pourrait te plaire."),
        ("es", "Por tus gustos, te podría gustar Kettle (39,90\xa0€)."),
        ("en-GB", "Based on what you like, you might enjoy Kettle (€39.90)."),
    ],
)
def test_shipped_lines_per_locale(nba, locale, start):
    top = next(
        i
        for i in nba.rank(customer_in(locale), limit=5)["items"]
        if i["action_id"] == "suggest-top-product"
    )
    assert top["say"] == start and top["fallback"] is False
    assert top["format_locale"] == locale


def test_every_shipped_action_has_a_line_per_shipped_locale():
    for action in DEFAULT_ACTIONS:
        assert set(action["say"]) == {"en", "de", "fr", "es"}, action["id"]
        normalise_action(action)  # every line passes the sandbox's checks


def test_a_say_mapping_renders_per_locale_and_a_plain_string_is_english(nba, catalog):
    catalog.put(
        "hello",
        {
            "title": "Hello",
            "category": "service",
            "value": 500,
            "say": {"en": "Hello {{ name }}", "fr_ca": "Allô {{ name }}", "fr": "Salut {{ name }}"},
        },
    )
    catalog.put("plain", {"title": "Plain", "category": "service", "value": 400, "say": "Hi"})
    catalog.put(
        "german-only", {"title": "G", "category": "service", "value": 300, "say": {"de": "Hallo"}}
    )

    def lines(locale):
        result = nba.rank(customer_in(locale), limit=10)
        return {i["action_id"]: (i["say"], i["locale"], i["fallback"]) for i in result["items"]}

    assert catalog.get("hello")["say"]["fr-CA"] == "Allô {{ name }}"  # keys normalised
    fr_ca = lines("fr-CA")
    assert fr_ca["hello"] == ("Allô Anna", "fr-CA", False)
    assert fr_ca["plain"] == ("Hi", "en", True)
    assert fr_ca["german-only"] == (None, None, False)  # no line along fr-CA -> fr -> en
    assert lines("fr-BE")["hello"] == ("Salut Anna", "fr", False)
    de = lines("de-AT")
    assert de["hello"] == ("Hello Anna", "en", True)
    assert de["german-only"] == ("Hallo", "de", False)


@pytest.mark.parametrize(
    ("say", "field"),
    [
        ({"en": "Hi", "de": "{{ ''.__class__ }}"}, "say.de"),
        ({"en": "Hi", "fr": "{{ unknown_thing }}"}, "say.fr"),
        ({"en": "Hi", "es": "{% for x in y %}{% endfor %}"}, "say.es"),
        ({"en": "Hi", "de-AT": ""}, "say.de-AT"),
        ({"en": "Hi", "de": 5}, "say.de"),
        ({"not a locale!": "Hi"}, "say.not a locale!"),
        ({"de": "Hallo", "DE": "Hallo"}, "say.DE"),
        ({}, "say"),
        (["Hi"], "say"),
    ],
)
def test_an_invalid_say_line_in_any_locale_is_refused(catalog, say, field):
    body = {"title": "x", "category": "service", "value": 1, "say": say}
    with pytest.raises((InvalidTemplate, InvalidAction)) as info:
        catalog.put("bad", body)
    assert info.value.field == field


def test_reasons_are_english_with_english_numbers(nba, policy, catalog):
    winback = catalog.get("winback-60d")
    for i in range(3):
        policy.record_feedback(
            f"c-{i + 10}", winback, feedback_id=f"w{i}", outcome="accepted", agent_id="a"
        )
    item = next(
        i
        for i in nba.rank(customer_in("de-AT"), limit=5)["items"]
        if i["action_id"] == "winback-60d"
    )
    assert "accepted 100% of 3 times offered" in item["reasons"]
    assert item["locale"] == "de"
