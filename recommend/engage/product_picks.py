"""The products a next-best action may suggest: the serving source's ``discover`` picks (never
bought before) for the customer the facts describe.

The facts (``recommend/engage/facts.py``) already hold the profile, so only the products the
customer bought are read (``profiles.customer_view.CustomerView.bought_products``).
Propensity is the top item's score brought to [0, 1]: the logistic function of a model score
(LightFM scores are unbounded preference logits); a popularity score (already
``1 - rank / n`` in [0, 1]) is kept as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from profiles.customer_view import CustomerView
from recommend.model.context import context_from_profile
from recommend.model.serving import MAX_LIMIT, Lookup, RecommendationSource

ProductPicker = Callable[[Mapping, int, set[str]], list[dict[str, Any]]]


def product_picker(
    view: CustomerView,
    source: Callable[[], RecommendationSource | None],
    lookup: Lookup,
) -> ProductPicker:
    """``pick(facts, n, exclude)``: up to ``n`` products with a name, none of ``exclude``,
    from what ``source()`` serves now (nothing when it gives None)."""

    def pick(facts: Mapping, n: int, exclude: set[str]) -> list[dict[str, Any]]:
        model = source()
        if model is None:
            return []
        customer_id = facts["customer_id"]
        ctx = context_from_profile(
            customer_id, _profile_of(facts), view.bought_products(customer_id)
        )
        result = model.recommend(
            ctx, strategy="discover", limit=min(MAX_LIMIT, n + len(exclude)), lookup=lookup
        )
        picks = []
        for item in result.get("items", []):
            if item.get("product_id") in exclude or not item.get("name"):
                continue
            score = float(item.get("score") or 0.0)
            popular = item.get("source") == "popular"
            propensity = min(1.0, max(0.0, score)) if popular else _logistic(score)
            picks.append({**item, "score": score, "propensity": propensity})
        return picks[:n]

    return pick


def _profile_of(facts: Mapping) -> dict[str, Any]:
    """The profile fields the model reads, back from the facts document."""
    profile = facts.get("profile") or {}
    return {
        "country": profile.get("country"),
        "locale": profile.get("locale"),
        "loyalty_tier": profile.get("tier"),
        "preferences": facts.get("preferences") or {},
    }


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))
