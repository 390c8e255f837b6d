"""The rows training reads: purchase lines and the data set they form (no dependencies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class PurchaseLine:
    """One purchased product in one order."""

    customer_id: str
    product_id: str
    quantity: float
    purchased_at: float  # epoch seconds
    order_id: str = ""
    unit_price: float = 0.0


@dataclass
class TrainingData:
    """Everything training reads. ``customers``: id -> {country, locale, tier,
    preferred_categories}; ``products``: id -> catalog document (name, category, brand,
    price, description, tags)."""

    lines: list[PurchaseLine]
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "lines": len(self.lines),
            "customers": len({ln.customer_id for ln in self.lines}),
            "products": len(self.products),
            "orders": len({(ln.customer_id, ln.order_id or ln.purchased_at) for ln in self.lines}),
        }
