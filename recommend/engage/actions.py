"""Next-best actions: an admin-editable catalogue in Redis and a ranking over it.

An action (JSON, hash ``Keys.action_catalog()``; shipped defaults in ``DEFAULT_ACTIONS``,
written once on first use so that admin deletes stick)::

    {"id": "winback-60d", "title": "Win-back offer",
     "say": "{{ name }}, we have missed you ...",      # a template, same sandbox as greetings
     "category": "retention",                          # service | retention | sales | feedback
     "value": 60,                                      # business value, 0 .. 1000000
     "rules": {...},                                   # recommend/engage/rules.py; null = always
     "cooldown_days": 30,                              # per customer, after any feedback
     "product": null | "top_recommendation",           # product link
     "requires_consent": ["marketing"],                # sales and retention always need it
     "channels": ["chat", "email", "phone"],           # where it may be offered
     "contexts": [],                                   # request contexts; empty = any
     "active_from": "2026-01-01", "active_to": null}   # ISO dates or datetimes (UTC)

Ranking (``NextBestActions.rank``): for each active action on the channel and context whose
rules hold, ``score = value × propensity``:

* product actions: the top recommendation's score normalised to [0, 1] by the product picker
  (see ``service/api/actions.py``), skipping products that rest after a recent offer;
* every other action: the smoothed acceptance rate ``(accepted + 1) / (shown + 2)`` from the
  feedback statistics (``recommend/engage/contact.py``): 0.5 for a new action.

Then the contact policy applies (consent, cooldown, the shared daily budget; see
``recommend/engage/contact.py``). Eligible actions it holds back are listed under ``withheld`` with
the reason, so a console can say why. Ties order by value, then id.
"""

from __future__ import annotations

import builtins
import heapq
import json
import logging
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, cast

import redis
from babel.numbers import format_currency

from core.channels import CHANNELS
from core.errors import InvalidInput, RapportError
from profiles.keys import Keys
from recommend.engage import rules, sandbox
from recommend.engage.action_defaults import DEFAULT_ACTIONS
from recommend.engage.contact import ContactPolicy, parse_stats
from recommend.engage.greetings import (
    SAMPLE_VALUES,
    VARIABLES,
    babel_locale,
    locale_chain,
    variables,
)
from recommend.errors import ActionNotFound, InvalidAction

log = logging.getLogger("rapport.actions")

CATEGORIES = ("service", "retention", "sales", "feedback")
MARKETING_CATEGORIES = ("sales", "retention")
PRODUCT_LINKS = ("top_recommendation",)
CONSENTS = ("marketing", "personalization", "profiling")
ACTION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RESERVED_IDS = frozenset({"stats", "product-suggestion"})  # a route; product feedback
MAX_ACTIONS = 200
MAX_VALUE = 1_000_000
MAX_LIMIT = 10

# Variables a ``say`` line may use: the greeting variables plus the linked product.
SAY_VARIABLES: dict[str, str] = {
    **VARIABLES,
    "product_name": "name of the linked product (product actions)",
    "product_price": "its price, formatted for the locale",
    "product_category": "its category",
    "days_since_last_purchase": "whole days since the last purchase",
}
_SAY_SAMPLE = {**SAMPLE_VALUES, "days_since_last_purchase": 40}
_FIELDS = {
    "id",
    "title",
    "say",
    "category",
    "value",
    "rules",
    "cooldown_days",
    "product",
    "requires_consent",
    "channels",
    "contexts",
    "active_from",
    "active_to",
}


# -- validation ---------------------------------------------------------------------------
def normalise_action(data: Any, action_id: str | None = None) -> dict[str, Any]:
    """Validate an action body and return the stored form; raise :class:`InvalidAction` (or
    :class:`InvalidRule`/``InvalidTemplate``) naming the field at fault."""
    if not isinstance(data, Mapping):
        raise InvalidAction("an action is a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise InvalidAction(f"unknown field {unknown[0]!r}", field=unknown[0])
    aid = action_id if action_id is not None else data.get("id")
    if data.get("id") not in (None, aid):
        raise InvalidAction("id in the body differs from the one in the path", field="id")
    if not isinstance(aid, str) or not ACTION_ID.match(aid) or aid in RESERVED_IDS:
        raise InvalidAction(
            f"id is 1-64 of a-z, 0-9, '-' and '_', not {' or '.join(sorted(RESERVED_IDS))}",
            field="id",
        )
    title = data.get("title")
    if not isinstance(title, str) or not 0 < len(title.strip()) <= 120:
        raise InvalidAction("title is 1 to 120 characters", field="title")
    say = data.get("say")
    if say is not None:
        sandbox.validate(say, "say", SAY_VARIABLES, _SAY_SAMPLE)
    category = data.get("category")
    if category not in CATEGORIES:
        raise InvalidAction(f"category is one of {', '.join(CATEGORIES)}", field="category")
    value = data.get("value")
    if not rules._is_number(value) or not 0 <= value <= MAX_VALUE:
        raise InvalidAction(f"value is a number from 0 to {MAX_VALUE}", field="value")
    rule = data.get("rules")
    if rule is not None:
        rules.validate(rule, "rules")
    cooldown = data.get("cooldown_days", 0)
    if not rules._is_number(cooldown) or not 0 <= cooldown <= 365:
        raise InvalidAction("cooldown_days is a number from 0 to 365", field="cooldown_days")
    product = data.get("product")
    if product is not None and product not in PRODUCT_LINKS:
        raise InvalidAction(
            f"product is null or one of {', '.join(PRODUCT_LINKS)}", field="product"
        )
    consent = _string_list(data.get("requires_consent"), "requires_consent", CONSENTS)
    if category in MARKETING_CATEGORIES or product:
        consent = sorted(set(consent) | {"marketing"})
    channels = _string_list(data.get("channels"), "channels", CHANNELS) or list(CHANNELS)
    contexts = _string_list(data.get("contexts"), "contexts", None)
    active_from = _when(data.get("active_from"), "active_from")
    active_to = _when(data.get("active_to"), "active_to")
    if active_from is not None and active_to is not None and active_from >= active_to:
        raise InvalidAction("active_to must be after active_from", field="active_to")
    return {
        "id": aid,
        "title": title.strip(),
        "say": say,
        "category": category,
        "value": value,
        "rules": rule,
        "cooldown_days": cooldown,
        "product": product,
        "requires_consent": consent,
        "channels": channels,
        "contexts": contexts,
        "active_from": data.get("active_from"),
        "active_to": data.get("active_to"),
    }


def _string_list(value: Any, field: str, allowed: tuple[str, ...] | None) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 20:
        raise InvalidAction(f"{field} is a list of at most 20 strings", field=field)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not 0 < len(item) <= 64:
            raise InvalidAction(
                f"{field} holds strings of 1 to 64 characters", field=f"{field}.{i}"
            )
        if allowed is not None and item not in allowed:
            raise InvalidAction(f"one of {', '.join(allowed)}", field=f"{field}.{i}")
    return list(dict.fromkeys(value))


def _when(value: Any, field: str) -> float | None:
    if value is None:
        return None
    at = rules.to_epoch(value) if isinstance(value, str) else None
    if at is None:
        raise InvalidAction(f"{field} is an ISO date or datetime", field=field)
    return at


# -- the catalogue -------------------------------------------------------------------------
# KEYS[1]: the catalogue hash; ARGV: id, JSON, id, JSON, ...
_REPLACE_LUA = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
"""


class ActionCatalog:
    """Actions in one Redis hash; the shipped defaults are written on first use."""

    def __init__(self, client: redis.Redis, keys: Keys, clock: Callable[[], float]):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self._replace = client.register_script(_REPLACE_LUA)

    def _seed(self) -> None:
        if self.redis.set(self.keys.action_catalog_seeded(), "1", nx=True):
            docs = {a["id"]: json.dumps(normalise_action(a)) for a in DEFAULT_ACTIONS}
            self.redis.hset(self.keys.action_catalog(), mapping=docs)

    def list(self, raw: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every action, by id. ``raw``: the catalogue hash when the caller already read it."""
        if raw is None:
            raw = self._read_all()
        if not raw and not self.redis.exists(self.keys.action_catalog_seeded()):
            self._seed()
            raw = self._read_all()
        out = []
        for value in raw.values():
            try:
                out.append(json.loads(value))
            except ValueError:
                log.warning("skipping an unreadable action document")
        return sorted(out, key=lambda a: a["id"])

    def _read_all(self) -> dict[str, str]:
        # the client decodes responses (decode_responses=True): fields and values are str
        return cast("dict[str, str]", self.redis.hgetall(self.keys.action_catalog()))

    def get(self, action_id: str) -> dict[str, Any]:
        raw = self.redis.hget(self.keys.action_catalog(), action_id)
        if raw is None and not self.redis.exists(self.keys.action_catalog_seeded()):
            self._seed()
            raw = self.redis.hget(self.keys.action_catalog(), action_id)
        if raw is None:
            raise ActionNotFound(f"no action with id {action_id}")
        return json.loads(raw)

    def put(self, action_id: str, data: Mapping) -> tuple[dict[str, Any], bool]:
        doc = normalise_action(data, action_id)
        self._seed()
        if len(self.redis.hkeys(self.keys.action_catalog())) >= MAX_ACTIONS and not (
            self.redis.hexists(self.keys.action_catalog(), action_id)
        ):
            raise InvalidAction(f"the catalogue holds at most {MAX_ACTIONS} actions", field="id")
        created = self.redis.hset(self.keys.action_catalog(), action_id, json.dumps(doc))
        return doc, bool(created)

    def delete(self, action_id: str) -> None:
        self._seed()
        if not self.redis.hdel(self.keys.action_catalog(), action_id):
            raise ActionNotFound(f"no action with id {action_id}")

    # ``builtins.list`` below: inside this class, ``list`` is the method above
    def replace_all(self, items: builtins.list[Any]) -> builtins.list[dict[str, Any]]:
        """Replace the whole catalogue (validated first; errors name ``items.<i>.<field>``)."""
        if not isinstance(items, list) or len(items) > MAX_ACTIONS:
            raise InvalidAction(f"items is a list of at most {MAX_ACTIONS} actions", field="items")
        docs: dict[str, dict] = {}
        for i, item in enumerate(items):
            try:
                doc = normalise_action(item)
            except RapportError as exc:
                exc.field = f"items.{i}.{exc.field}" if exc.field else f"items.{i}"
                raise
            if doc["id"] in docs:
                raise InvalidAction(f"duplicate id {doc['id']}", field=f"items.{i}.id")
            docs[doc["id"]] = doc
        self.redis.set(self.keys.action_catalog_seeded(), "1")
        pairs = [x for k, v in docs.items() for x in (k, json.dumps(v))]
        self._replace(keys=[self.keys.action_catalog()], args=pairs)  # atomic, no MULTI
        return sorted(docs.values(), key=lambda a: a["id"])

    def reset(self) -> builtins.list[dict[str, Any]]:
        """Back to the shipped defaults."""
        return self.replace_all(DEFAULT_ACTIONS)


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
    ):
        self.catalog = catalog
        self.policy = policy
        self.clock = clock
        self.pick_products = pick_products

    def rank(
        self,
        facts: Mapping,
        *,
        channel: str = "chat",
        context: str | None = None,
        limit: int = 3,
        locale: str | None = None,
    ) -> dict[str, Any]:
        if channel not in CHANNELS:
            raise InvalidInput(f"channel is one of {', '.join(CHANNELS)}", field="channel")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit is 1 to {MAX_LIMIT}", field="limit")
        now = self.clock()
        customer_id = facts.get("customer_id")
        profile = facts.get("profile") or {}
        facts = {**facts, "context": {"name": context, "channel": channel}}
        actions, stats, state = self._read(customer_id, profile.get("timezone"))
        candidates, withheld = self._candidates(
            actions, stats, state["last_feedback"], facts, channel, context, now
        )
        used = state["used_today"].get(channel, 0)
        say_locale = locale_chain(locale or profile.get("locale"))[0]
        items, held_back = self._fill(
            candidates,
            facts,
            resting=state["resting_products"],
            budget=max(0, self.policy.daily_budget - used),
            limit=limit,
            channel=channel,
            locale=say_locale,
            now=now,
        )
        return {
            "customer_id": customer_id,
            "channel": channel,
            "context": context,
            "items": items,
            "withheld": withheld + held_back,
            "budget": self.policy.budget_view(channel, used),
        }

    def _read(
        self, customer_id: str | None, timezone: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        """The catalogue, the statistics and the customer's contact state, in one round trip
        (no customer: an empty state)."""
        pipe = self.catalog.redis.pipeline(transaction=False)
        pipe.hgetall(self.catalog.keys.action_catalog())
        pipe.hgetall(self.policy.keys.action_stats())
        read_state = None
        if customer_id:
            read_state = self.policy.queue_customer_state(pipe, customer_id, timezone)
        results = pipe.execute()
        actions = self.catalog.list(results[0])
        stats = parse_stats(results[1], [a["id"] for a in actions])
        if read_state is not None:
            state = read_state(results[2:5])
        else:
            state = {"last_feedback": {}, "used_today": {}, "resting_products": set()}
        return actions, stats, state

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
        channel: str,
        locale: str,
        now: float,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(items, withheld): the best ``limit`` candidates within the daily ``budget`` (service
        actions without a product are not rationed); a product action gets the top
        recommendation not ``resting``, looked up once when the first one could still make the
        list. ``channel``, ``locale`` and ``now`` are for the say lines' variables."""
        heap = [(_order(c), i, c) for i, c in enumerate(candidates)]
        heapq.heapify(heap)
        items: list[dict[str, Any]] = []
        withheld: list[dict[str, Any]] = []
        base_vars: dict[str, Any] | None = None
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
            if base_vars is None:
                base_vars = _say_variables(facts, channel, locale, now)
            items.append(self._item(cand, base_vars))
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

    @staticmethod
    def _item(cand: dict, base_vars: dict[str, Any]) -> dict[str, Any]:
        action, product = cand["action"], cand["product"]
        values = dict(base_vars)
        if product:
            values.update(
                product_name=product.get("name"),
                product_price=_money(product, base_vars.get("locale") or "en"),
                product_category=product.get("category"),
            )
        say = None
        if action.get("say"):
            try:
                say = sandbox.plain(sandbox.render(action["say"], values)) or None
            except Exception:  # a stored template must never cause a 500
                log.warning("say line of action %s failed to render", action["id"])
        return {
            "action_id": action["id"],
            "title": action["title"],
            "category": action["category"],
            "say": say,
            "score": round(cand["score"], 4),
            "value": action["value"],
            "propensity": round(cand["propensity"], 4),
            "reasons": cand["reasons"],
            "product": _product_view(product) if product else None,
            "cooldown_days": action.get("cooldown_days", 0),
        }


def _money(product: Mapping, locale: str) -> str | None:
    price, currency = product.get("price"), product.get("currency")
    if price in (None, "") or not currency:
        return None
    try:
        return format_currency(Decimal(str(price)), currency, locale=babel_locale(locale))
    except (ArithmeticError, ValueError, TypeError):
        return None


def _candidate(
    action: Mapping,
    product: Mapping | None,
    propensity: float,
    reasons: list[str],
    *,
    pending: bool = False,
) -> dict[str, Any]:
    propensity = min(1.0, max(0.0, propensity))
    return {
        "action": action,
        "product": product,
        "propensity": propensity,
        "score": float(action["value"]) * propensity,
        "reasons": reasons,
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
    if shown:
        rate = counters["acceptance_rate"]
        reasons = [*reasons, f"accepted {rate:.0%} of {shown} times offered"]
    return _candidate(action, None, smoothed_rate(stats), reasons)


def _with_product(cand: Mapping, product: Mapping) -> dict[str, Any]:
    """A pending candidate scored with the product found for it."""
    propensity = float(product.get("propensity") or 0.0)
    reasons = [*cand["reasons"], f"top recommendation: {product['name']}"]
    return _candidate(cand["action"], product, propensity, reasons)


def _say_variables(facts: Mapping, channel: str, locale: str, now: float) -> dict[str, Any]:
    """The variables of the say lines (without a product; :meth:`NextBestActions._item`
    adds the product's)."""
    values = variables(facts, channel, locale, now)
    traits = facts.get("traits") or {}
    values["days_since_last_purchase"] = traits.get("days_since_last_purchase")
    values.update(product_name=None, product_price=None, product_category=None)
    return values


def _order(cand: Mapping) -> tuple[float, float, str]:
    """Best first: score, then value, then id."""
    return (-cand["score"], -float(cand["action"]["value"]), cand["action"]["id"])


def _product_view(product: Mapping) -> dict[str, Any]:
    keys = ("product_id", "name", "category", "price", "currency", "score")
    return {k: product.get(k) for k in keys}


def _held(action: Mapping, reason: str, **extra: Any) -> dict[str, Any]:
    return {"action_id": action["id"], "reason": reason, **extra}
