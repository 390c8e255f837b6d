"""Buy-again arithmetic: how due a customer is to re-buy each product they bought, their
repeat share, and the blend's slot rule (documented in ``recommend/model/recommender.py``)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommend.model.dataset import DAY, PurchaseLine
from recommend.model.serving import BlendConfig, plural_days


@dataclass(frozen=True)
class Repurchase:
    product_id: str
    orders: int  # distinct purchase days
    days_since: float
    interval_days: float | None  # median gap between purchase days
    history_score: float  # log1p(orders) * (due_weight * due + recency_weight * recency)
    reason: str
    order_count: int = 0  # distinct orders (order id, else purchase time)
    timing: float = 0.0  # (due_weight * due + recency_weight * recency) / (their sum), in [0, 1]


# ``buy_again`` ranking (chosen on the quality benchmark's validation window, docs/benchmarks.md
# "Issue 19"): the customer's own distinct orders first, the rest only breaks ties and near-ties
BUY_AGAIN_TIEBREAK = 0.2
BUY_AGAIN_TIMING_WEIGHT = 0.0
BUY_AGAIN_POPULARITY_WEIGHT = 0.5


def buy_again_score(
    c: Repurchase,
    model_pct: float,
    popularity_pct: float,
    cfg: BlendConfig,
    *,
    tiebreak: float = BUY_AGAIN_TIEBREAK,
    timing_weight: float = BUY_AGAIN_TIMING_WEIGHT,
    popularity_weight: float = BUY_AGAIN_POPULARITY_WEIGHT,
) -> float:
    """``log1p(distinct orders) + tiebreak * mix``, mix in [0, 1] the weighted mean of the
    timing (due / recency), the product's percentile in the model's scores for the customer
    and its popularity percentile (weights ``timing_weight``, ``cfg.model_weight``,
    ``popularity_weight``)."""
    wt = timing_weight
    total = wt + cfg.model_weight + popularity_weight
    mix = (wt * c.timing + cfg.model_weight * model_pct + popularity_weight * popularity_pct) / (
        total or 1.0
    )
    return math.log1p(c.order_count or c.orders) + tiebreak * mix


def repurchase_candidates(
    purchases: list[PurchaseLine], now: float, cfg: BlendConfig
) -> list[Repurchase]:
    """One candidate per product the customer bought, with its history score and reason."""
    by_product: dict[str, set[float]] = defaultdict(set)
    orders: dict[str, set[Any]] = defaultdict(set)
    for ln in purchases:
        by_product[ln.product_id].add(ln.purchased_at)
        orders[ln.product_id].add(ln.order_id or ln.purchased_at)
    weight = (cfg.due_weight + cfg.recency_weight) or 1.0
    out = []
    for pid, times in by_product.items():
        days = sorted({math.floor(t / DAY) for t in times})
        n = len(days)
        since = max(now - max(times), 0.0) / DAY
        recency = 0.5 ** (since / cfg.recency_half_life_days)
        interval = float(np.median(np.diff(days))) if n >= 2 else None
        if interval:
            z = (since - interval) / max(interval / 2, 7.0)
            due = math.exp(-0.5 * z * z)
        else:
            due = recency
        timing = cfg.due_weight * due + cfg.recency_weight * recency
        score = math.log1p(n) * timing
        if n >= 2 and interval:
            reason = f"bought {n} times, usually every {int(round(interval))} days"
        elif n >= 2:
            reason = f"bought {n} times, last {plural_days(since)}"
        else:
            reason = f"bought once, {plural_days(since)}"
        out.append(
            Repurchase(pid, n, since, interval, score, reason, len(orders[pid]), timing / weight)
        )
    return out


def repeat_share(purchases: list[PurchaseLine], cfg: BlendConfig) -> float:
    """The share of order lines after the first order that were repeats, clamped."""
    orders: dict[tuple[str, float], set[str]] = defaultdict(set)
    for ln in purchases:
        key = (ln.order_id, ln.purchased_at) if ln.order_id else ("", ln.purchased_at)
        orders[key].add(ln.product_id)
    if len(orders) < 2:
        return cfg.default_repeat_share
    seen: set[str] = set()
    repeats = total = 0
    for i, key in enumerate(sorted(orders, key=lambda k: (k[1], k[0]))):
        items = orders[key]
        if i:
            repeats += len(items & seen)
            total += len(items)
        seen |= items
    share = repeats / total if total else cfg.default_repeat_share
    return min(max(share, cfg.min_repeat_share), cfg.max_repeat_share)


def interleave(
    repeats: list[dict[str, Any]], news: list[dict[str, Any]], share: float, limit: int
) -> list[dict[str, Any]]:
    """Fill slots in order: a repeat while repeats are below ``round(share * slots)``, else a
    new product; when one list runs out the other fills; no product twice."""
    out: list[dict[str, Any]] = []
    ri = ni = n_repeats = 0
    used: set[str] = set()
    while len(out) < limit and (ri < len(repeats) or ni < len(news)):
        want_repeat = n_repeats < round(share * (len(out) + 1))
        if (want_repeat and ri < len(repeats)) or ni >= len(news):
            item, ri = repeats[ri], ri + 1
        else:
            item, ni = news[ni], ni + 1
        if item["product_id"] not in used:
            used.add(item["product_id"])
            out.append(item)
            n_repeats += item["source"] == "buy_again"
    return out
