"""Shipped next-best actions, written to the catalogue on first use (admins edit them after).

The fields are documented in ``recommend/engage/action_catalog.py``; rules in
``recommend/engage/rules.py``.
"""

from __future__ import annotations

from typing import Any

DEFAULT_ACTIONS: list[dict[str, Any]] = [
    {
        "id": "resolve-open-ticket",
        "title": "Resolve the open support request",
        "say": "I can see your open request{% if name %}, {{ name }}{% endif %}; "
        "let me check where it stands.",
        "category": "service",
        "value": 100,
        "rules": {"field": "traits.open_support_contacts", "op": ">=", "value": 1},
        "cooldown_days": 1,
    },
    {
        "id": "winback-60d",
        "title": "Win-back offer",
        "say": "It has been a while{% if name %}, {{ name }}{% endif %}! "
        "We would love to welcome you back with 10% off your next order.",
        "category": "retention",
        "value": 60,
        "rules": {
            "all": [
                {"field": "traits.order_count", "op": ">=", "value": 1},
                {"days_since": "traits.last_purchase_at", "op": ">", "value": 60},
            ]
        },
        "cooldown_days": 30,
    },
    {
        "id": "suggest-top-product",
        "title": "Suggest the top recommendation",
        "say": "{% if product_name %}Based on what you like, you might enjoy "
        "{{ product_name }}{% if product_price %} ({{ product_price }}){% endif %}.{% endif %}",
        "category": "sales",
        "value": 40,
        "rules": {"field": "traits.order_count", "op": ">=", "value": 1},
        "cooldown_days": 7,
        "product": "top_recommendation",
    },
    {
        "id": "loyalty-upgrade",
        "title": "Invite to the loyalty programme's next tier",
        "say": "As one of our regular customers you qualify for our next loyalty tier. "
        "Shall I upgrade you?",
        "category": "retention",
        "value": 50,
        "rules": {
            "all": [
                {"field": "traits.order_count", "op": ">=", "value": 5},
                {"field": "profile.tier", "op": "not_in", "value": ["gold", "platinum"]},
            ]
        },
        "cooldown_days": 90,
    },
    {
        "id": "satisfaction-survey",
        "title": "Ask about the latest purchase",
        "say": "{% if recent_product %}How do you like your {{ recent_product }}? {% endif %}"
        "Would you answer two quick questions about your last order?",
        "category": "feedback",
        "value": 15,
        "rules": {
            "all": [
                {"days_since": "traits.last_purchase_at", "op": ">=", "value": 3},
                {"days_since": "traits.last_purchase_at", "op": "<=", "value": 30},
            ]
        },
        "cooldown_days": 60,
    },
    {
        "id": "first-order-welcome",
        "title": "Welcome offer for a first order",
        "say": "Welcome{% if name %}, {{ name }}{% endif %}! "
        "Your first order ships free this week.",
        "category": "sales",
        "value": 30,
        "rules": {
            "any": [
                {"field": "traits.order_count", "op": "missing"},
                {"field": "traits.order_count", "op": "==", "value": 0},
            ]
        },
        "cooldown_days": 14,
    },
]
