"""What serving knows about a customer at request time, built from what ``profiles/`` returns.

The reading (one round trip, merge aliases resolved, at most ``MAX_ORDERS`` orders) is
``profiles.customer_view.CustomerView``; this module turns its :class:`CustomerRecord` into the
model's :class:`CustomerContext` (profile features and purchase lines), so ``discover`` excludes
purchases made after training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from profiles.customer_view import CustomerRecord, CustomerView
from recommend.model.dataset import PurchaseLine, profile_features, purchase_lines
from recommend.model.serving import CustomerContext


def customer_context(view: CustomerView, customer_id: str) -> CustomerContext:
    """The customer's profile features and purchases; an unknown id gives an empty context
    (``has_profile`` False), which serving answers with popular products."""
    return context_of(view.read(customer_id))


def context_of(record: CustomerRecord) -> CustomerContext:
    """:class:`CustomerContext` of a record read by ``CustomerView.read``."""
    if record.customer_id is None:
        return CustomerContext(customer_id=None)
    cid = record.customer_id
    return _context(cid, record.profile, _lines(cid, record.purchases))


def context_from_profile(
    customer_id: str, profile: Mapping[str, Any] | None, bought: Iterable[str]
) -> CustomerContext:
    """A context from a profile document already read and the ids of the products bought
    (what ``discover`` reads of the history: it excludes them)."""
    lines = [PurchaseLine(customer_id, pid, 1.0, 0.0) for pid in bought]
    return _context(customer_id, dict(profile) if profile is not None else None, lines)


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


def _lines(customer_id: str, purchases: list[dict[str, Any]]) -> list[PurchaseLine]:
    lines: list[PurchaseLine] = []
    for purchase in purchases:
        try:
            lines.extend(purchase_lines(customer_id, purchase))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # one unreadable order must not break recommendations
    return lines
