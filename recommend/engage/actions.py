"""Next-best actions: the ranking of the admin-editable catalogue for one customer.

The catalogue (the action document, its validation, the Redis hash) is
``recommend/engage/action_catalog.py``; its names are re-exported here for the callers that
import them from this module.

Ranking (``NextBestActions.rank``): for each active action on the channel and context whose
rules hold, ``score = value × propensity``:

* product actions: the top recommendation's score normalised to [0, 1] by the product picker
  (see ``service/api/actions.py``), skipping products that rest after a recent offer;
* every other action: for a customer of the ``adaptive`` group, the propensity learned per
  action and customer segment (``recommend/engage/adaptive.py``: Beta posteriors with back-off
  to the global rate, Thompson sampling on a share of the decisions); for the ``control``
  group (and without a learning model), the smoothed acceptance rate
  ``(accepted + 1) / (shown + 2)`` from the feedback statistics
  (``recommend/engage/contact.py``): 0.5 for a new action. The answer names the ``group``.

Then the contact policy applies (consent, cooldown, the shared daily budget; see
``recommend/engage/contact.py``). Eligible actions it holds back are listed under ``withheld`` with
the reason, so a console can say why. Ties order by value, then id.

Each item's say line is in one language (``recommend/engage/language.py``): the template for
the first locale of the customer's chain that the action has (a plain string is English), with
dates and money formatted for that language; the item says which (``locale``,
``format_locale``) and whether it fell back. Reasons are English, for the agent.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from babel.numbers import format_decimal, format_percent

from core.channels import CHANNELS
from core.errors import InvalidInput
from recommend.engage import rules
from recommend.engage.action_catalog import (
    CATEGORIES,
    PRODUCT_LINKS,
    ActionCatalog,
    normalise_action,
)
from recommend.engage.adaptive import AdaptivePropensity, parse_counters, segment_of
from recommend.engage.contact import ContactPolicy, parse_stats
from recommend.engage.language import DEFAULT_LOCALE
from recommend.engage.say_lines import SayLines

# the catalogue's names are re-exported: callers import them from here
__all__ = [
    "CATEGORIES",
    "MAX_LIMIT",
    "PRODUCT_LINKS",
    "ActionCatalog",
    "NextBestActions",
    "ProductPicker",
    "is_active",
    "normalise_action",
    "parse_stats",
    "smoothed_rate",
]

log = logging.getLogger("rapport.actions")

MAX_LIMIT = 10

# -- ranking -------------------------------------------------------------------------------
# pick_products(facts, n, exclude) -> [{"product_id", "name", "price", "currency",
#                                             "category", "propensity" (0..1), "score"}]
ProductPicker = Callable[[Mapping, int, set[str]], list[dict[str, Any]]]


def is_active(action: Mapping, now: float) -> bool:
    start = rules.to_epoch(action.get("active_from")) if action.get("active_from") else None
    end = rules.to_epoch(action.get("active_to")) if action.get("active_to") else None
    return (start is None or now >= start) and (end is None or now < end)


def smoothed_rate(stats: Mapping[str, Any] | None) -> float:
    """``(accepted + 1) / (shown + 2)``: a Beta(1, 1) prior, 0.5 with no history."""
    stats = stats or {}
    return (int(stats.get("accepted", 0)) + 1) / (int(stats.get("shown", 0)) + 2)


class NextBestActions:
    """Ranks the catalogue for one customer under the contact policy."""

    def __init__(
        self,
        catalog: ActionCatalog,
        policy: ContactPolicy,
        clock: Callable[[], float],
        pick_products: ProductPicker | None = None,
        learning: AdaptivePropensity | None = None,
    ):
        self.catalog = catalog
        self.policy = policy
        self.clock = clock
        self.pick_products = pick_products
        self.learning = learning  # None: everyone gets the global-rate ranking
        self._seen: dict[str, Mapping] = {}  # the last catalogue's actions without a product

    def rank(
        self,
        facts: Mapping,
        *,
        channel: str = "chat",
        context: str | None = None,
        limit: int = 3,
        locale: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """``request_id``: the serving request's id; given, the items shown are recorded as
        impressions, once per id (``recommend/engage/impressions.py``)."""
        if channel not in CHANNELS:
            raise InvalidInput(f"channel is one of {', '.join(CHANNELS)}", field="channel")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit is 1 to {MAX_LIMIT}", field="limit")
        now = self.clock()
        customer_id = facts.get("customer_id")
        profile = facts.get("profile") or {}
        facts = {**facts, "context": {"name": context, "channel": channel}}
        group = self.learning.group_of(customer_id) if self.learning else "control"
        # the learning counters of the actions seen last time come in the same round trip
        prefetch = self._fields(self._seen, facts) if group == "adaptive" else []
        actions, stats, state, fetched = self._read(customer_id, profile.get("timezone"), prefetch)
        if self.learning:  # the experiment settings read in the pipeline may move the customer
            group = self.learning.group_of(customer_id)
        self._seen = {a["id"]: a for a in actions if not a.get("product")}
        candidates, withheld = self._candidates(
            actions, stats, state["last_feedback"], facts, channel, context, now
        )
        if group == "adaptive":
            candidates = self._adapt(candidates, stats, facts, fetched)
        used = state["used_today"].get(channel, 0)
        items, held_back = self._fill(
            candidates,
            facts,
            resting=state["resting_products"],
            budget=max(0, self.policy.daily_budget - used),
            limit=limit,
            say=SayLines(facts, channel, locale or profile.get("locale"), now),
        )
        if customer_id and request_id is not None:
            shown = [item["action_id"] for item in items]
            seen = {a["id"]: a for a in actions}
            segments = {aid: segment_of(facts, seen.get(aid)) for aid in shown}
            self.policy.record_impressions(customer_id, group, shown, request_id, segments)
        return {
            "customer_id": customer_id,
            "channel": channel,
            "context": context,
            "group": group,
            "items": items,
            "withheld": withheld + held_back,
            "budget": self.policy.budget_view(channel, used),
        }

    def _read(
        self, customer_id: str | None, timezone: str | None, prefetch: list[str]
    ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The catalogue, the statistics, the customer's contact state (no customer: an empty
        state) and the ``prefetch`` learning counters (field -> raw value), in one round trip."""
        pipe = self.catalog.redis.pipeline(transaction=False)
        pipe.hgetall(self.catalog.keys.action_catalog())
        pipe.hgetall(self.policy.keys.action_stats())
        read_state = None
        if customer_id:
            read_state = self.policy.queue_customer_state(pipe, customer_id, timezone)
        if prefetch:
            pipe.hmget(self.policy.keys.action_segments(), prefetch)
        if self.learning:
            pipe.hgetall(self.policy.keys.action_experiment())
        results = pipe.execute()
        if self.learning:
            self.learning.apply(results.pop(), self.clock())
        actions = self.catalog.list(results[0])
        stats = parse_stats(results[1], [a["id"] for a in actions])
        if read_state is not None:
            state = read_state(results[2:5])
        else:
            state = {"last_feedback": {}, "used_today": {}, "resting_products": set()}
        fetched = dict(zip(prefetch, results[-1], strict=True)) if prefetch else {}
        return actions, stats, state, fetched

    def _fields(self, actions: Mapping[str, Mapping], facts: Mapping) -> list[str]:
        segments = {aid: segment_of(facts, action) for aid, action in actions.items()}
        return cast("AdaptivePropensity", self.learning).fields(segments, segments)

    def _adapt(
        self,
        candidates: list[dict[str, Any]],
        stats: Mapping[str, Any],
        facts: Mapping,
        fetched: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """The candidates without a product rescored by the learned propensity of the
        customer's segment (counters not ``fetched`` yet: one HMGET)."""
        learning = cast("AdaptivePropensity", self.learning)
        todo = {c["action"]["id"]: c["action"] for c in candidates if not c["pending"]}
        if not todo:
            return candidates
        segments = {aid: segment_of(facts, action) for aid, action in todo.items()}
        fields = learning.fields(segments, segments)
        missing = [f for f in fields if f not in fetched]
        if missing:
            values = self.catalog.redis.hmget(self.policy.keys.action_segments(), missing)
            fetched.update(zip(missing, values, strict=True))
        counters, weights = parse_counters({f: fetched[f] for f in fields})
        explore = learning.explores()
        out = []
        for cand in candidates:
            if cand["pending"]:
                out.append(cand)
                continue
            aid = cand["action"]["id"]
            est = learning.estimate(
                stats.get(aid), counters, aid, segments[aid], explore=explore, weights=weights
            )
            reasons = cand["rule_reasons"] + [est["reason"]] if est["reason"] else cand["reasons"]
            out.append(
                _candidate(cand["action"], None, est["propensity"], reasons, rule=cand)
                | {"exploring": est["exploring"]}
            )
        return out

    def _candidates(
        self,
        actions: list[dict[str, Any]],
        stats: Mapping[str, Any],
        last_feedback: Mapping[str, Any],
        facts: Mapping,
        channel: str,
        context: str | None,
        now: float,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(candidates, withheld): the actions that apply on this channel and context and
        whose rules hold; those without consent or in their cooldown are withheld."""
        consent = facts.get("consent") or {}
        candidates: list[dict[str, Any]] = []
        withheld: list[dict[str, Any]] = []
        for action in actions:
            if not is_active(action, now) or channel not in action.get("channels", CHANNELS):
                continue
            if action.get("contexts") and context not in action["contexts"]:
                continue
            try:
                ok, reasons = rules.evaluate(action.get("rules"), facts, now)
            except Exception:  # a stored rule must never cause a 500
                log.warning("rule of action %s failed to evaluate", action["id"])
                continue
            if not ok:
                continue
            missing = [p for p in action.get("requires_consent", []) if not consent.get(p)]
            if missing:
                withheld.append(_held(action, "no_consent", consent=missing[0]))
                continue
            ends = self.policy.in_cooldown(action, last_feedback.get(action["id"]), now)
            if ends is not None:
                withheld.append(_held(action, "cooldown", until=ends))
                continue
            candidates.append(_scored(action, stats.get(action["id"]), reasons))
        return candidates, withheld

    def _fill(
        self,
        candidates: list[dict[str, Any]],
        facts: Mapping,
        *,
        resting: set[str],
        budget: int,
        limit: int,
        say: SayLines,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(items, withheld): the best ``limit`` candidates within the daily ``budget`` (service
        actions without a product are not rationed); a product action gets the top
        recommendation not ``resting``, looked up once when the first one could still make the
        list. ``say`` renders the items' say lines."""
        heap = [(_order(c), i, c) for i, c in enumerate(candidates)]
        heapq.heapify(heap)
        items: list[dict[str, Any]] = []
        withheld: list[dict[str, Any]] = []
        top_product: dict[str, Any] | None = None
        looked_up = False
        while heap and len(items) < limit:
            _, i, cand = heapq.heappop(heap)
            action = cand["action"]
            rationed = action["category"] != "service" or bool(action.get("product"))
            if rationed and budget <= 0:
                withheld.append(_held(action, "budget"))
                continue
            if cand["pending"]:
                if not looked_up:
                    top_product, looked_up = self._top_product(facts, resting), True
                if not top_product:
                    withheld.append(_held(action, "no_product"))
                    continue
                cand = _with_product(cand, top_product)
                heapq.heappush(heap, (_order(cand), i, cand))
                continue
            if rationed:
                budget -= 1
            items.append(_item(cand, say))
        return items, withheld

    def _top_product(self, facts: Mapping, resting: set[str]) -> dict | None:
        if not facts.get("customer_id") or self.pick_products is None:
            return None
        try:
            picks = self.pick_products(facts, 1 + len(resting), set(resting))
        except Exception:  # no recommendation must not fail the actions
            log.warning("product picker failed", exc_info=True)
            return None
        for pick in picks:
            if pick.get("product_id") not in resting and pick.get("name"):
                return pick
        return None


def _item(cand: dict, say: SayLines) -> dict[str, Any]:
    action, product = cand["action"], cand["product"]
    line = say.line(action, product)
    return {
        "action_id": action["id"],
        "title": action["title"],
        "category": action["category"],
        "say": line["say"],
        "locale": line["locale"],
        "fallback": line["fallback"],
        "format_locale": line["format_locale"],
        "score": round(cand["score"], 4),
        "value": action["value"],
        "propensity": round(cand["propensity"], 4),
        "reasons": cand["reasons"],
        "exploring": cand.get("exploring", False),
        "product": _product_view(product, line["price_text"]) if product else None,
        "cooldown_days": action.get("cooldown_days", 0),
    }


def _candidate(
    action: Mapping,
    product: Mapping | None,
    propensity: float,
    reasons: list[str],
    *,
    pending: bool = False,
    rule: Mapping | None = None,
) -> dict[str, Any]:
    """``rule``: an earlier candidate of the action whose rule reasons this one keeps."""
    propensity = min(1.0, max(0.0, propensity))
    return {
        "action": action,
        "product": product,
        "propensity": propensity,
        "score": float(action["value"]) * propensity,
        "reasons": reasons,
        "rule_reasons": rule["rule_reasons"] if rule else reasons,
        "pending": pending,
    }


def _scored(action: Mapping, stats: Mapping[str, Any] | None, reasons: list[str]) -> dict[str, Any]:
    """The candidate for an applicable action: scored by its smoothed acceptance rate, or
    pending (score at most value x 1.0) when it links a product, which is resolved lazily
    (the recommender is asked only when the action could still make the list)."""
    if action.get("product"):
        return _candidate(action, None, 1.0, reasons, pending=True)
    counters = stats or {}
    shown = counters.get("shown", 0)
    rule_reasons = reasons
    if shown:
        # reasons are English: their numbers are formatted for English
        rate = format_percent(counters["acceptance_rate"], locale=DEFAULT_LOCALE)
        offered = format_decimal(shown, locale=DEFAULT_LOCALE)
        reasons = [*reasons, f"accepted {rate} of {offered} times offered"]
    return _candidate(
        action, None, smoothed_rate(stats), reasons, rule={"rule_reasons": rule_reasons}
    )


def _with_product(cand: Mapping, product: Mapping) -> dict[str, Any]:
    """A pending candidate scored with the product found for it."""
    propensity = float(product.get("propensity") or 0.0)
    reasons = [*cand["reasons"], f"top recommendation: {product['name']}"]
    return _candidate(cand["action"], product, propensity, reasons)


def _order(cand: Mapping) -> tuple[float, float, str]:
    """Best first: score, then value, then id."""
    return (-cand["score"], -float(cand["action"]["value"]), cand["action"]["id"])


def _product_view(product: Mapping, price_text: str | None) -> dict[str, Any]:
    """The product of an item; ``price_text``: its price formatted like the say line."""
    keys = ("product_id", "name", "category", "price", "currency", "score")
    return {**{k: product.get(k) for k in keys}, "price_text": price_text}


def _held(action: Mapping, reason: str, **extra: Any) -> dict[str, Any]:
    return {"action_id": action["id"], "reason": reason, **extra}
