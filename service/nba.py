"""Wiring for greetings and next-best actions: the domain objects over the app's stores.

Built per request from ``state()`` (construction is cheap: no Redis calls), over the app's
profile and activity stores, the catalog and the model holder's recommender.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app

from profiles.activity import ActivityStore
from profiles.store import ProfileStore
from recommend.catalog.products import Catalog
from recommend.engage.actions import ActionCatalog, NextBestActions
from recommend.engage.contact import ContactPolicy
from recommend.engage.facts import FactsLoader
from recommend.engage.greetings import Greeter, GreetingTemplates
from recommend.model.dataset import profile_features
from recommend.model.recommender import MAX_LIMIT, CustomerContext
from recommend.model.records import PurchaseLine
from recommend.model.serving import RecommendationSource
from service import model_holder
from service.extensions import catalog_cache
from service.state import state

log = logging.getLogger("rapport.nba")


def clock() -> float:
    return time.time()


@dataclass
class Personalisation:
    profiles: ProfileStore
    facts: FactsLoader
    greeter: Greeter
    templates: GreetingTemplates
    catalog: ActionCatalog
    policy: ContactPolicy
    nba: NextBestActions


def services() -> Personalisation:
    st = state()
    client, keys = st.redis, st.keys
    products = Catalog(client, keys, clock)
    activity = st.activity or ActivityStore(client, keys, clock, products.category_of)
    profiles = st.profiles or ProfileStore(client, keys, clock, activity)
    templates = GreetingTemplates(client, keys, clock)
    actions = ActionCatalog(client, keys, clock)
    policy = ContactPolicy(client, keys, clock)
    return Personalisation(
        profiles=profiles,
        facts=FactsLoader(profiles, activity, products),
        greeter=Greeter(templates, clock),
        templates=templates,
        catalog=actions,
        policy=policy,
        nba=NextBestActions(actions, policy, clock, _product_picker(products)),
    )


def _serving_model() -> RecommendationSource | None:
    """The recommender this worker serves (``Recommender`` or ``PopularityFallback``) from
    the model holder (``service/model_holder.py``), or None when the app has no holder."""
    holder: model_holder.ModelHolder | None = current_app.extensions.get(model_holder.EXTENSION)
    return holder.current.recommender if holder is not None else None


def _product_picker(products: Catalog):
    """``pick(facts, n, exclude)`` over the serving recommender (strategy ``discover``:
    something new for the customer), or None without one.

    Propensity is the top item's score normalised to [0, 1]: the logistic function of a model
    score (LightFM scores are unbounded preference logits); a popularity score (already
    ``1 - rank / n`` in [0, 1]) is kept as it is."""

    def pick(facts: Mapping, n: int, exclude: set[str]) -> list[dict[str, Any]]:
        model = _serving_model()
        if model is None:
            return []
        st = state()
        bought = _bought(st.redis, st.keys, facts["customer_id"])
        ctx = _customer_context(facts, bought)
        result = model.recommend(
            ctx,
            strategy="discover",
            limit=min(MAX_LIMIT, n + len(exclude)),
            lookup=catalog_cache().lookup,
        )
        picks = []
        for item in result.get("items", []):
            if item.get("product_id") in exclude or not item.get("name"):
                continue
            score = float(item.get("score") or 0.0)
            popular = item.get("source") == "popular"
            picks.append(
                {
                    **item,
                    "score": score,
                    "propensity": min(1.0, max(0.0, score)) if popular else _logistic(score),
                }
            )
        return picks[:n]

    return pick


def _bought(client, keys, customer_id: str) -> list[PurchaseLine]:
    """One line per product the customer bought: all that ``discover`` reads of the
    history (it excludes them). Cheaper than ``recommend.model.context.read_purchases``, which
    parses times and prices for the strategies that weigh repeats."""
    seen: dict[str, PurchaseLine] = {}
    for raw in client.hvals(keys.orders(customer_id)):
        try:
            lines = json.loads(raw).get("lines") or ()
        except (ValueError, AttributeError):
            continue
        for line in lines:
            pid = line.get("product_id") if isinstance(line, dict) else None
            if pid and pid not in seen:
                seen[pid] = PurchaseLine(customer_id, str(pid), 1.0, 0.0)
    return list(seen.values())


def _customer_context(facts: Mapping, purchases: list) -> CustomerContext:
    """What ``recommend.model.context.customer_context`` builds, from the facts already loaded
    (saves reading the profile twice)."""
    profile = facts.get("profile") or {}
    doc = {
        "country": profile.get("country"),
        "locale": profile.get("locale"),
        "loyalty_tier": profile.get("tier"),
        "preferences": facts.get("preferences") or {},
    }
    features = profile_features(doc)
    return CustomerContext(
        customer_id=facts["customer_id"],
        country=features.get("country"),
        locale=features.get("locale"),
        tier=features.get("tier"),
        preferred_categories=list(features.get("preferred_categories") or []),
        purchases=purchases,
        has_profile=True,
    )


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))
