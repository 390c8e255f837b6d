"""The rule format: each operator, nesting, days-since, reasons, and validation paths."""

from __future__ import annotations

import pytest

from recommend.engage import rules
from recommend.errors import InvalidRule

NOW = 1_800_000_000.0
DAY = 86400.0

FACTS = {
    "traits": {
        "order_count": 3,
        "total_spend": {"EUR": 120.5},
        "favourite_categories": ["home", "garden"],
        "last_purchase_at": NOW - 45 * DAY - 3600,
        "last_seen_iso": "2027-01-10T00:00:00Z",
        "next_visit_iso": "2030-01-01T00:00:00+01:00",
        "open_support_contacts": 0,
        "nickname": None,
    },
    "profile": {"tier": "gold", "country": "DE", "locale": "de-AT"},
    "preferences": {"newsletter": True, "channel": "email"},
    "consent": {"marketing": True, "profiling": False},
    "context": {"name": "checkout", "channel": "chat"},
}


def holds(rule) -> bool:
    rules.validate(rule)
    return rules.evaluate(rule, FACTS, NOW)[0]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("==", 3, True),
        ("==", 4, False),
        ("!=", 4, True),
        ("!=", 3, False),
        ("<", 4, True),
        ("<", 3, False),
        ("<=", 3, True),
        ("<=", 2, False),
        (">", 2, True),
        (">", 3, False),
        (">=", 3, True),
        (">=", 4, False),
        ("in", [1, 2, 3], True),
        ("in", [4, 5], False),
        ("not_in", [4, 5], True),
        ("not_in", [3], False),
    ],
)
def test_comparison_operators(op, value, expected):
    assert holds({"field": "traits.order_count", "op": op, "value": value}) is expected


def test_string_comparisons_ignore_case_and_strings_do_not_compare_with_numbers():
    assert holds({"field": "profile.tier", "op": "==", "value": "GOLD"})
    assert holds({"field": "profile.country", "op": "in", "value": ["de", "at"]})
    assert not holds({"field": "profile.tier", "op": ">", "value": 3})
    assert not holds({"field": "traits.order_count", "op": "==", "value": "3"})


def test_exists_and_missing():
    assert holds({"field": "profile.tier", "op": "exists"})
    assert not holds({"field": "profile.tier", "op": "missing"})
    assert holds({"field": "traits.unknown", "op": "missing"})
    assert holds({"field": "traits.nickname", "op": "missing"})  # null counts as missing
    assert not holds({"field": "traits.unknown", "op": "exists"})


def test_contains_on_lists_strings_and_mappings():
    assert holds({"field": "traits.favourite_categories", "op": "contains", "value": "Home"})
    assert not holds({"field": "traits.favourite_categories", "op": "contains", "value": "toys"})
    assert holds({"field": "profile.locale", "op": "contains", "value": "AT"})
    assert holds({"field": "traits.total_spend", "op": "contains", "value": "EUR"})
    assert not holds({"field": "traits.order_count", "op": "contains", "value": 3})


def test_missing_field_fails_comparisons_but_satisfies_negative_ones():
    assert not holds({"field": "traits.none", "op": ">", "value": 1})
    assert not holds({"field": "traits.none", "op": "==", "value": 1})
    assert holds({"field": "traits.none", "op": "!=", "value": 1})
    assert holds({"field": "traits.none", "op": "not_in", "value": [1]})


def test_booleans_compare_by_identity():
    assert holds({"field": "consent.marketing", "op": "==", "value": True})
    assert not holds({"field": "consent.profiling", "op": "==", "value": True})
    assert not holds({"field": "traits.order_count", "op": "==", "value": True})


def test_days_since_epoch_and_iso():
    assert holds({"days_since": "traits.last_purchase_at", "op": ">", "value": 44})
    assert holds({"days_since": "traits.last_purchase_at", "op": "==", "value": 45})
    assert not holds({"days_since": "traits.last_purchase_at", "op": ">", "value": 45})
    assert holds({"days_since": "traits.last_purchase_at", "op": "!=", "value": 3})
    # ISO-8601 times work too (NOW is 2027-01-15T08:00Z); a future time is 0 days ago
    assert holds({"days_since": "traits.last_seen_iso", "op": "==", "value": 5})
    assert holds({"days_since": "traits.next_visit_iso", "op": "==", "value": 0})
    assert not holds({"days_since": "traits.none", "op": ">=", "value": 0})


def test_nesting_all_any_not():
    rule = {
        "all": [
            {"field": "traits.order_count", "op": ">=", "value": 3},
            {
                "any": [
                    {"field": "profile.tier", "op": "==", "value": "silver"},
                    {"not": {"field": "consent.marketing", "op": "==", "value": False}},
                ]
            },
            {"not": {"any": [{"field": "context.name", "op": "in", "value": ["refund"]}]}},
        ]
    }
    assert holds(rule)
    rule["all"][2] = {"not": {"field": "context.name", "op": "==", "value": "checkout"}}
    assert not holds(rule)
    assert holds({"all": []})
    assert not holds({"any": []})


def test_reasons_for_satisfied_leaves_only():
    rule = {
        "all": [
            {"days_since": "traits.last_purchase_at", "op": ">", "value": 30},
            {"field": "traits.favourite_categories", "op": "contains", "value": "Home"},
            {"field": "traits.order_count", "op": ">=", "value": 3},
            {"not": {"field": "profile.tier", "op": "==", "value": "bronze"}},
            {
                "any": [
                    {"field": "profile.country", "op": "==", "value": "FR"},
                    {
                        "field": "profile.tier",
                        "op": "==",
                        "value": "gold",
                        "reason": "{actual} member",
                    },
                ]
            },
        ]
    }
    rules.validate(rule)
    ok, reasons = rules.evaluate(rule, FACTS, NOW)
    assert ok
    assert reasons == [
        "last purchase 45 days ago",
        "bought in Home category",
        "3 orders",
        "gold member",
    ]
    ok, reasons = rules.evaluate({"field": "traits.order_count", "op": ">", "value": 9}, FACTS, NOW)
    assert (ok, reasons) == (False, [])


def test_no_rule_always_holds():
    assert rules.evaluate(None, FACTS, NOW) == (True, [])


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        (
            {
                "all": [
                    {"field": "traits.x", "op": ">=", "value": 1},
                    {"field": "traits.x", "op": "~"},
                ]
            },
            "rules.all.1.op",
        ),
        ({"any": {"field": "traits.x"}}, "rules.any"),
        ({"not": {"all": [{"oops": 1}]}}, "rules.not.all.0"),
        ({"field": "secrets.x", "op": "exists"}, "rules.field"),
        ({"field": "traits.__class__", "op": "exists"}, "rules.field"),
        ({"field": "traits.x", "op": "exists", "value": 1}, "rules.value"),
        ({"field": "traits.x", "op": "in", "value": 3}, "rules.value"),
        ({"field": "traits.x", "op": "in", "value": [1, {"a": 1}]}, "rules.value.1"),
        ({"field": "traits.x", "op": "<", "value": [1]}, "rules.value"),
        ({"field": "traits.x", "op": "=="}, "rules.value"),
        ({"field": "traits.x", "op": "==", "value": 1, "extra": 2}, "rules.extra"),
        ({"days_since": "traits.t", "op": "in", "value": [1]}, "rules.op"),
        ({"days_since": "traits.t", "op": ">", "value": "ten"}, "rules.value"),
        ({"field": "traits.x", "op": "==", "value": 1, "reason": ""}, "rules.reason"),
        ([1, 2], "rules"),
        ({"all": [], "any": []}, "rules"),
    ],
)
def test_invalid_rules_name_the_bad_node(rule, path):
    with pytest.raises(InvalidRule) as info:
        rules.validate(rule)
    assert info.value.field == path


def test_depth_and_size_limits():
    deep: dict = {"field": "traits.x", "op": "exists"}
    for _ in range(rules.MAX_DEPTH + 1):
        deep = {"not": deep}
    with pytest.raises(InvalidRule):
        rules.validate(deep)
    wide = {"all": [{"field": "traits.x", "op": "exists"}] * rules.MAX_NODES}
    with pytest.raises(InvalidRule) as info:
        rules.validate(wide)
    assert info.value.field.startswith("rules.all.")
