"""What serving takes and gives, shared by the recommender and the fallback: the customer
context read at request time, filters on the live catalog, blend settings, the item shape, and
:class:`RecommendationSource`, the interface both serve through."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from recommend.model.dataset import PurchaseLine

MAX_LIMIT = 50
STRATEGIES = ("blend", "discover", "buy_again")
Lookup = Callable[[Iterable[str]], dict[str, dict[str, Any]]]


@dataclass
class CustomerContext:
    """What serving knows about one customer at request time."""

    customer_id: str | None
    country: str | None = None
    locale: str | None = None
    tier: str | None = None
    preferred_categories: list[str] = field(default_factory=list)
    purchases: list[PurchaseLine] = field(default_factory=list)
    has_profile: bool = False
    # (product id, event type, epoch s): views and cart adds, folded in with smaller weights
    events: list[tuple[str, str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    in_stock_only: bool = True
    min_price: Decimal | None = None
    max_price: Decimal | None = None

    def accepts(self, product: dict[str, Any] | None) -> bool:
        if product is None:
            return False
        if not product.get("active", True):
            return False
        if self.in_stock_only and not product.get("in_stock", True):
            return False
        if self.category and product.get("category") != self.category:
            return False
        if self.min_price is not None or self.max_price is not None:
            if product.get("price") in (None, ""):
                return False
            try:
                price = Decimal(str(product["price"]))
            except ArithmeticError:  # a price we cannot read cannot be in a range
                return False
            if self.min_price is not None and price < self.min_price:
                return False
            if self.max_price is not None and price > self.max_price:
                return False
        return True


class RecommendationSource(Protocol):
    """What serving asks of whatever answers recommendations: a loaded
    :class:`~recommend.model.recommender.Recommender` or the
    :class:`~recommend.model.fallback.PopularityFallback` (both satisfy this structurally).
    ``similar`` and the model's indexes are the recommender's alone: narrow with
    ``isinstance(source, Recommender)`` for those."""

    @property
    def version(self) -> str | None:
        """The model version serving, None for the fallback."""
        ...

    def popular(
        self,
        country: str | None = None,
        *,
        limit: int = 10,
        filters: Filters | None = None,
        exclude: set[str] | None = None,
        lookup: Lookup,
    ) -> list[dict[str, Any]]:
        """Popular products (in ``country`` where known), best first."""
        ...

    def recommend(
        self,
        ctx: CustomerContext,
        *,
        strategy: str = "blend",
        limit: int = 10,
        filters: Filters | None = None,
        lookup: Lookup,
        now: float | None = None,
    ) -> dict[str, Any]:
        """``{"items": [...], "basis": ..., "strategy": ...}`` for one customer; ``now`` (epoch
        s, default the wall clock) is the evaluation clock every recency term is taken at."""
        ...


@dataclass(frozen=True)
class BlendConfig:
    recency_half_life_days: float = 90.0
    due_weight: float = 0.5
    recency_weight: float = 0.5
    model_weight: float = 0.5
    default_repeat_share: float = 0.4
    min_repeat_share: float = 0.2
    max_repeat_share: float = 0.8
    anchor_min_cosine: float = 0.2


def product_view(pid: str, product: dict[str, Any] | None) -> dict[str, Any]:
    p = product or {}
    return {
        "product_id": pid,
        "name": p.get("name"),
        "category": p.get("category"),
        "price": p.get("price"),
        "currency": p.get("currency"),
        "in_stock": p.get("in_stock"),
    }


def plural_days(days: float) -> str:
    d = max(int(round(days)), 0)
    return "today" if d == 0 else ("1 day ago" if d == 1 else f"{d} days ago")
