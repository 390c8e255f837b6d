"""What serving reads about a customer at request time: profile features and every purchase.

Reads only (no writes): the profile through ``profiles.store.ProfileStore`` (aliases left by a
merge resolve to their target) and the orders hash ``Keys.orders`` (order id -> purchase JSON,
the ``profiles.activity`` contract), so ``discover`` excludes purchases made after training.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from profiles.errors import NotFound
from profiles.keys import Keys
from recommend.dataset import PurchaseLine, profile_features, purchase_lines
from recommend.recommender import CustomerContext

MAX_ORDERS = 5000  # a customer's orders read for one request (newest first beyond that)


def customer_context(client: redis.Redis, keys: Keys, customer_id: str) -> CustomerContext:
    """The customer's profile features and purchases; an unknown id gives an empty context
    (``has_profile`` False), which serving answers with popular products."""
    from profiles.model import is_customer_id  # noqa: PLC0415
    from profiles.store import ProfileStore  # noqa: PLC0415

    if not is_customer_id(customer_id):  # cannot be anybody (and must not reach a key name)
        return CustomerContext(customer_id=None)
    doc: dict[str, Any] | None = None
    cid = customer_id
    try:
        profile = ProfileStore(client, keys).get(customer_id, with_traits=False)
        doc, cid = profile.doc, profile.id
    except NotFound:
        pass
    purchases = read_purchases(client, keys, cid)
    features = profile_features(doc) if doc else {}
    return CustomerContext(
        customer_id=cid,
        country=features.get("country"),
        locale=features.get("locale"),
        tier=features.get("tier"),
        preferred_categories=list(features.get("preferred_categories") or []),
        purchases=purchases,
        has_profile=doc is not None,
    )


def read_purchases(client: redis.Redis, keys: Keys, customer_id: str) -> list[PurchaseLine]:
    if client.hlen(keys.orders(customer_id)) > MAX_ORDERS:
        ids = client.zrevrange(keys.order_times(customer_id), 0, MAX_ORDERS - 1)
        raws = client.hmget(keys.orders(customer_id), ids) if ids else []
    else:
        raws = client.hvals(keys.orders(customer_id))
    lines: list[PurchaseLine] = []
    for raw in raws:
        if not raw:
            continue
        try:
            lines.extend(purchase_lines(customer_id, json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            continue  # one unreadable order must not break recommendations
    return lines
