"""What serving reads about a customer at request time: profile features and every purchase.

Reads only (no writes): the profile through ``profiles.store.ProfileStore`` (aliases left by a
merge resolve to their target) and the orders hash ``Keys.orders`` (order id -> purchase JSON,
the ``profiles.activity`` contract), so ``discover`` excludes purchases made after training.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis

from core.errors import NotFound
from profiles.keys import Keys
from recommend.model.dataset import PurchaseLine, profile_features, purchase_lines
from recommend.model.recommender import CustomerContext

MAX_ORDERS = 5000  # a customer's orders read for one request (newest first beyond that)

# One round trip, bounded: the profile hash, the products offered since ARGV[2] when KEYS[3]
# (the contact policy's offered products) is given, and the orders when there are at most
# ARGV[1] (every key carries the customer's hash tag: one cluster slot). Read-only.
_READ = """
local profile = redis.call('HGETALL', KEYS[1])
local offered = {}
if KEYS[3] then offered = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[2], '+inf') end
if redis.call('HLEN', KEYS[2]) > tonumber(ARGV[1]) then return {profile, offered} end
return {profile, offered, redis.call('HVALS', KEYS[2])}
"""


def customer_context(client: redis.Redis, keys: Keys, customer_id: str) -> CustomerContext:
    """The customer's profile features and purchases; an unknown id gives an empty context
    (``has_profile`` False), which serving answers with popular products.

    One read-only script (one round trip) reads the profile hash and the orders; only a merge
    alias, or a customer with more than ``MAX_ORDERS`` orders, takes more trips (the profile
    store resolves the alias; the newest orders are read by time)."""
    return read_customer(client, keys, customer_id)[0]


def read_customer(
    client: redis.Redis, keys: Keys, customer_id: str, *, offered_since: float | None = None
) -> tuple[CustomerContext, set[str] | None]:
    """:func:`customer_context` and, with ``offered_since`` (epoch s), the products offered
    to the customer since then (``Keys.offered_products``, the contact policy's resting
    products) read by the same script. That set is None when it was not read: no
    ``offered_since``, or the id is a merge alias (ask the policy about the target)."""
    from profiles.document import is_customer_id
    from profiles.store import Stored

    if not is_customer_id(customer_id):  # cannot be anybody (and must not reach a key name)
        return CustomerContext(customer_id=None), set()
    script_keys = [keys.profile(customer_id), keys.orders(customer_id)]
    args: list[Any] = [MAX_ORDERS]
    if offered_since is not None:
        script_keys.append(keys.offered_products(customer_id))
        args.append(repr(offered_since))
    flat, offered, *rest = client.register_script(_READ)(keys=script_keys, args=args)
    stored = Stored(customer_id, dict(zip(flat[::2], flat[1::2], strict=True)))
    if stored.merged_into:
        return _resolved_context(client, keys, customer_id), None
    if rest:
        purchases = _lines(customer_id, rest[0])
    else:  # more than MAX_ORDERS orders: the newest ones, by time
        purchases = read_purchases(client, keys, customer_id)
    ctx = _context(customer_id, stored.doc if stored.exists else None, purchases)
    return ctx, (set(offered) if offered_since is not None else None)


def _resolved_context(client: redis.Redis, keys: Keys, customer_id: str) -> CustomerContext:
    """The slow path: follow a merge alias through the profile store."""
    from profiles.store import ProfileStore

    doc: dict[str, Any] | None = None
    cid = customer_id
    try:
        profile = ProfileStore(client, keys).get(customer_id, with_traits=False)
        doc, cid = profile.doc, profile.id
    except NotFound:
        pass
    return _context(cid, doc, read_purchases(client, keys, cid))


def _context(
    customer_id: str, doc: dict[str, Any] | None, purchases: list[PurchaseLine]
) -> CustomerContext:
    features = profile_features(doc) if doc else {}
    return CustomerContext(
        customer_id=customer_id,
        country=features.get("country"),
        locale=features.get("locale"),
        tier=features.get("tier"),
        preferred_categories=list(features.get("preferred_categories") or []),
        purchases=purchases,
        has_profile=doc is not None,
    )


def _lines(customer_id: str, raws: list[str | None]) -> list[PurchaseLine]:
    lines: list[PurchaseLine] = []
    for raw in raws:
        if not raw:
            continue
        try:
            lines.extend(purchase_lines(customer_id, json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            continue  # one unreadable order must not break recommendations
    return lines


def read_purchases(client: redis.Redis, keys: Keys, customer_id: str) -> list[PurchaseLine]:
    # the client decodes responses (decode_responses=True): replies are str
    raws: list[str | None]
    if client.hlen(keys.orders(customer_id)) > MAX_ORDERS:
        ids = cast("list[str]", client.zrevrange(keys.order_times(customer_id), 0, MAX_ORDERS - 1))
        raws = cast("list[str | None]", client.hmget(keys.orders(customer_id), ids)) if ids else []
    else:
        raws = cast("list[str | None]", client.hvals(keys.orders(customer_id)))
    return _lines(customer_id, raws)
