"""A customer's traits: the counters the activity scripts keep current on every write, read
back in one pipeline and shaped for the API (``ActivityStore.traits``/``queue_traits``).

Traits, never computed by scanning on read:

    order_count               number of purchases
    item_count                units bought over all purchases
    total_spend               {currency: decimal string}, exact
    average_order_value       {currency: decimal string}, total / orders in that currency,
                              rounded half-even to the currency's minor unit
    first_purchase_at         UTC ISO time of the earliest purchase (None without one)
    last_purchase_at          UTC ISO time of the latest purchase
    days_since_last_purchase  whole days from last_purchase_at to the clock (computed at read)
    favourite_categories      top 3 categories by items bought (``category_of``; [] without it)
    open_support_contacts     support contacts opened and not yet resolved
    last_event_at             UTC ISO time of the latest event

Money arrives as integer units (``profiles.activity_input.units_to_money``); only
``days_since_last_purchase`` depends on the clock, at the time the replies are read.
"""

from __future__ import annotations

from typing import Any

from profiles.activity_input import units_to_money
from profiles.keys import Keys

FAVOURITES = 3


def queue_trait_reads(pipe: Any, keys: Keys, customer_id: str) -> None:
    """Queue the three reads :func:`traits_from` takes the replies of (the customer's slot)."""
    pipe.hgetall(keys.traits(customer_id))
    pipe.zrevrange(keys.categories(customer_id), 0, FAVOURITES - 1)
    pipe.hlen(keys.support_contacts(customer_id))


def traits_from(replies: list[Any], now: float) -> dict[str, Any]:
    """The traits from the replies of :func:`queue_trait_reads`; ``now``: the clock."""
    raw, favourites, open_contacts = replies
    spend, aov = {}, {}
    for name, value in raw.items():
        if name.startswith("spend:"):
            currency = name[len("spend:") :]
            orders = int(raw.get(f"orders:{currency}") or 0)
            spend[currency] = units_to_money(int(value), currency)
            if orders:
                aov[currency] = units_to_money(int(value), currency, divide_by=orders)
    days = None
    if raw.get("last_purchase_ms"):
        elapsed = now - int(float(raw["last_purchase_ms"])) / 1000
        days = int(max(0.0, elapsed) // 86_400)
    return {
        "order_count": int(raw.get("order_count") or 0),
        "item_count": int(raw.get("item_count") or 0),
        "total_spend": dict(sorted(spend.items())),
        "average_order_value": dict(sorted(aov.items())),
        "first_purchase_at": raw.get("first_purchase_at"),
        "last_purchase_at": raw.get("last_purchase_at"),
        "days_since_last_purchase": days,
        "favourite_categories": list(favourites),
        "open_support_contacts": int(open_contacts),
        "last_event_at": raw.get("last_event_at"),
    }
