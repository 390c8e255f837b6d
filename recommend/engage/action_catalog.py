"""The next-best-action catalogue: the action document, its validation, and the Redis hash
that holds the catalogue (ranking over it is ``recommend/engage/actions.py``).

An action (JSON, hash ``SharedKeys.action_catalog()``; shipped defaults in ``DEFAULT_ACTIONS``,
written once on first use so that admin deletes stick)::

    {"id": "winback-60d", "title": "Win-back offer",
     "say": {"en": "{{ name }}, we have missed you ...",  # templates, same sandbox as
             "de": "{{ name }}, wir haben Sie ..."},      # greetings; or one string (English)
     "category": "retention",                          # service | retention | sales | feedback
     "value": 60,                                      # business value, 0 .. 1000000
     "rules": {...},                                   # recommend/engage/rules.py; null = always
     "cooldown_days": 30,                              # per customer, after any feedback
     "product": null | "top_recommendation",           # product link
     "requires_consent": ["marketing"],                # sales and retention always need it
     "channels": ["chat", "email", "phone"],           # where it may be offered
     "contexts": [],                                   # request contexts; empty = any
     "active_from": "2026-01-01", "active_to": null}   # ISO dates or datetimes (UTC)

:func:`normalise_action` validates a body and returns the stored form; its errors name the
field at fault (``say.de`` for the German line), and :meth:`ActionCatalog.replace_all` prefixes
them with ``items.<i>``. :func:`say_for` picks the line along a locale chain, as greetings pick
their template (``de-AT`` → ``de`` → ``en``).
"""

from __future__ import annotations

import builtins
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

import redis

from core.channels import CHANNELS
from core.errors import RapportError
from core.keys import SharedKeys
from recommend.engage import rules, sandbox
from recommend.engage.action_defaults import DEFAULT_ACTIONS
from recommend.engage.greetings import SAMPLE_VALUES, VARIABLES
from recommend.engage.language import DEFAULT_LOCALE, normalise_locale
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
MAX_SAY_LOCALES = 20

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
    aid = _action_id(data, action_id)
    title = data.get("title")
    if not isinstance(title, str) or not 0 < len(title.strip()) <= 120:
        raise InvalidAction("title is 1 to 120 characters", field="title")
    say = _say(data.get("say"))
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
    _check_window(data)
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


def _say(value: Any) -> str | dict[str, str] | None:
    """A say line: None, one template (English) or ``{locale: template}`` (keys normalised,
    ``de_at`` → ``de-AT``); every template passes the sandbox's checks."""
    if value is None or isinstance(value, str):
        if value is not None:
            sandbox.validate(value, "say", SAY_VARIABLES, _SAY_SAMPLE)
        return value
    if not isinstance(value, Mapping) or not 0 < len(value) <= MAX_SAY_LOCALES:
        raise InvalidAction(
            f"say is a template or an object of 1 to {MAX_SAY_LOCALES} locale tags to templates",
            field="say",
        )
    out: dict[str, str] = {}
    for key, source in value.items():
        tag = normalise_locale(key) if isinstance(key, str) else None
        if tag is None:
            raise InvalidAction("a locale tag such as 'en', 'de' or 'de-AT'", field=f"say.{key}")
        if tag in out:
            raise InvalidAction(f"locale {tag} is given twice", field=f"say.{key}")
        sandbox.validate(source, f"say.{key}", SAY_VARIABLES, _SAY_SAMPLE)
        out[tag] = source
    return out


def say_for(say: Any, chain: list[str]) -> tuple[str | None, str | None]:
    """(template, its locale) for the first locale of ``chain`` the line has; a plain string
    is English. (None, None) when there is no line for the chain."""
    if isinstance(say, str):
        return say, DEFAULT_LOCALE
    if isinstance(say, Mapping):
        for tag in chain:
            source = say.get(tag)
            if isinstance(source, str):
                return source, tag
    return None, None


def _action_id(data: Mapping, action_id: str | None) -> str:
    """The action's id: ``action_id`` (the path's) when given, and the body's must then agree."""
    aid = action_id if action_id is not None else data.get("id")
    if data.get("id") not in (None, aid):
        raise InvalidAction("id in the body differs from the one in the path", field="id")
    if not isinstance(aid, str) or not ACTION_ID.match(aid) or aid in RESERVED_IDS:
        raise InvalidAction(
            f"id is 1-64 of a-z, 0-9, '-' and '_', not {' or '.join(sorted(RESERVED_IDS))}",
            field="id",
        )
    return aid


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


def _check_window(data: Mapping) -> None:
    """``active_from`` and ``active_to``: ISO dates or datetimes, the end after the start."""
    active_from = _when(data.get("active_from"), "active_from")
    active_to = _when(data.get("active_to"), "active_to")
    if active_from is not None and active_to is not None and active_from >= active_to:
        raise InvalidAction("active_to must be after active_from", field="active_to")


# -- the catalogue -------------------------------------------------------------------------
# KEYS[1]: the catalogue hash; ARGV: id, JSON, id, JSON, ...
_REPLACE_LUA = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
"""


class ActionCatalog:
    """Actions in one Redis hash; the shipped defaults are written on first use."""

    def __init__(self, client: redis.Redis, keys: SharedKeys, clock: Callable[[], float]):
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
