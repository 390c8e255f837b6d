"""Wiring for greetings and next-best actions: the domain objects over the app's stores.

Built per request from ``state()`` (construction is cheap: no Redis calls). Stores that other
parts of the service provide are used when present (activity, catalog, recommender), so the
endpoints work, with fewer facts, while one of them is missing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from profiles.store import ProfileStore
from recommend.actions import ActionCatalog, NextBestActions
from recommend.catalog import Catalog
from recommend.contact import ContactPolicy
from recommend.facts import FactsLoader
from recommend.greetings import Greeter, GreetingTemplates
from service.extensions import state

log = logging.getLogger("rapport.nba")

try:  # profiles/activity.py: the activity store (purchases, traits)
    from profiles.activity import ActivityStore
except ImportError:  # pragma: no cover - only while the store is being written
    ActivityStore = None  # type: ignore[assignment,misc]


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
    activity = _existing("activity") or (
        ActivityStore(client, keys, clock, category_of=products.category_of)
        if ActivityStore is not None
        else None
    )
    profiles = _existing("profiles") or ProfileStore(client, keys, clock, activity)
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


def _existing(name: str) -> Any:
    """A store the app already holds on its state (other parts may add them there)."""
    return getattr(state(), name, None)


def _product_picker(products: Catalog):
    """``pick(customer_id, n, exclude)`` over the serving recommender, or None without one.

    The top item's score is normalised to a propensity in [0, 1] with the logistic function
    (LightFM scores are unbounded logits of preference); a score already in [0, 1] (the
    popularity fallback's normalised count) is kept as it is."""
    recommender = _existing("recommender")
    if recommender is None:
        return None

    def pick(customer_id: str, n: int, exclude: set[str]) -> list[dict[str, Any]]:
        items = _recommend(recommender, customer_id, n + len(exclude))
        picks = []
        wanted = [i for i in items if i.get("product_id") not in exclude][:n]
        known = products.get_many([i["product_id"] for i in wanted])
        for item in wanted:
            product = known.get(item["product_id"]) or {}
            if not product.get("name") or product.get("active") is False:
                continue
            score = float(item.get("score") or 0.0)
            picks.append(
                {
                    **product,
                    "product_id": item["product_id"],
                    "score": score,
                    "propensity": score if 0.0 <= score <= 1.0 else _logistic(score),
                }
            )
        return picks

    return pick


def _recommend(recommender: Any, customer_id: str, n: int) -> list[dict[str, Any]]:
    result = recommender.recommend(customer_id, n=n)
    items = result.get("items", []) if isinstance(result, dict) else result
    return [i for i in items if isinstance(i, dict) and i.get("product_id")]


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))
