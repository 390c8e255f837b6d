"""Personalised greetings: templates per locale and channel, rendered in a Jinja2 sandbox.

Templates are data: shipped defaults (``recommend/engage/greeting_defaults.py``) overridden per
``(locale, channel)`` by admins (Redis hash ``SharedKeys.greeting_templates()``). The locale
chain is the exact locale, then its language, then English (``de-AT`` → ``de`` → ``en``); at
each step an admin override wins over a default. Dates, numbers and money follow the language
of the template used, and the answer says whether it fell back
(``recommend/engage/language.py``).

Safety (``recommend/engage/sandbox.py``): a template is validated on save (syntax, length, only the
documented ``VARIABLES``, no calls or underscore attributes: ``{{ ''.__class__ }}`` is refused)
and rendered in Jinja2's ``ImmutableSandboxedEnvironment`` with autoescaping. A stored
template that still misbehaves (``SecurityError`` or any other error, or output too long) is
logged and the shipped default for that locale and channel is used instead; the caller never
sees a 500.

The result carries ``text`` (plain, for speech and chat), ``html`` (the autoescaped render,
safe to put in a page), the template used and the facts the template can see.
"""

from __future__ import annotations

import builtins
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import redis
from markupsafe import Markup

from core.channels import CHANNELS, zone
from core.errors import InvalidInput
from core.keys import SharedKeys
from recommend.engage import sandbox
from recommend.engage.greeting_defaults import (
    DEFAULT_TEMPLATES,
    HONORIFICS,
    LAST_RESORT,
    TITLE_GENDER,
)
from recommend.engage.language import (
    DEFAULT_LOCALE,
    LOCALE_PATTERN,
    babel_locale,
    format_locale,
    is_fallback,
    language,
    locale_chain,
    long_date,
    money,
    normalise_locale,
    tier_name,
)
from recommend.engage.sandbox import render, template_version, used_variables
from recommend.errors import TemplateNotFound

# the locale helpers moved to recommend/engage/language.py and are still named here
__all__ = [
    "DEFAULT_LOCALE",
    "LOCALE_PATTERN",
    "SAMPLE_VALUES",
    "VARIABLES",
    "Greeter",
    "GreetingTemplates",
    "babel_locale",
    "locale_chain",
    "normalise_locale",
    "time_of_day",
    "validate_template",
    "variables",
]

log = logging.getLogger("rapport.greetings")

# The documented template variables (every one is always defined; unknown ones are None).
VARIABLES: dict[str, str] = {
    "name": "the form of address for the channel: given name in chat; honorific and family "
    "name (Frau Schmidt, Ms Smith) or full name on the phone and in email",
    "given_name": "given name",
    "family_name": "family name",
    "full_name": "given and family name",
    "formal_name": "honorific and family name, else the full name",
    "honorific": "Ms/Mr, Frau/Herr, Madame/Monsieur, Sra./Sr. when the profile has a title",
    "time_of_day": "morning, afternoon, evening or night in the customer's timezone",
    "local_date": "today's date in the customer's timezone, formatted for the locale",
    "tier": "loyalty tier as recorded (bronze, silver, gold, platinum): for conditions",
    "tier_name": "the loyalty tier in the template's language (gold, Gold, Or, Oro)",
    "is_known": "the caller was identified",
    "is_returning": "the customer has bought before",
    "is_first_time": "an identified customer without purchases",
    "order_count": "number of orders",
    "recent_product": "name of the latest purchase's main product (never empty)",
    "recent_purchase_date": "date of the latest purchase, formatted for the locale",
    "recent_purchase_amount": "total of the latest purchase, formatted for the locale",
    "recent_purchase_days": "whole days since the latest purchase",
    "has_open_issue": "the customer has an open support contact",
    "open_support_contacts": "number of open support contacts",
    "locale": "the locale dates and money are formatted for (the template's language)",
    "channel": "chat, email or phone",
}


# -- time of day ---------------------------------------------------------------------------
def time_of_day(hour: int) -> str:
    """morning 05-12, afternoon 12-18, evening 18-22, night 22-05 (local hours)."""
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 18:
        return "afternoon"
    if 18 <= hour < 22:
        return "evening"
    return "night"


# -- variables from facts -------------------------------------------------------------------
def variables(facts: Mapping, channel: str, locale: str, now: float) -> dict[str, Any]:
    """The template variables for a facts document (``recommend/engage/facts.py``), in and
    formatted for ``locale``: the formatting locale of the template used
    (``recommend/engage/language.py``)."""
    profile = facts.get("profile") or {}
    traits = facts.get("traits") or {}
    lang = language(locale)
    given, family = profile.get("given_name"), profile.get("family_name")
    full = profile.get("full_name")
    honorific = _honorific(profile.get("title"), lang)
    formal = f"{honorific} {family}" if honorific and family else full or given
    name = (given or full) if channel == "chat" else formal

    tz = zone(profile.get("timezone"))
    tod = local_date = None
    if tz is not None:
        local = datetime.fromtimestamp(now, tz)
        tod = time_of_day(local.hour)
        local_date = long_date(local.date(), locale)

    order_count = _int(traits.get("order_count"))
    known = bool(facts.get("known"))
    purchase = facts.get("recent_purchase") or {}
    if purchase and order_count == 0:
        order_count = 1
    product = purchase.get("product_name") or None
    p_date = p_amount = p_days = None
    if purchase.get("at") is not None:
        at = datetime.fromtimestamp(purchase["at"], tz or UTC)
        p_date = long_date(at.date(), locale)
        p_days = int(max(0.0, now - purchase["at"]) // 86400)
    if purchase.get("total") is not None:
        p_amount = money(purchase["total"], purchase.get("currency"), locale)
    open_contacts = _int(traits.get("open_support_contacts"))
    return {
        "name": name,
        "given_name": given,
        "family_name": family,
        "full_name": full,
        "formal_name": formal,
        "honorific": honorific,
        "time_of_day": tod,
        "local_date": local_date,
        "tier": profile.get("tier"),
        "tier_name": tier_name(profile.get("tier"), locale),
        "is_known": known,
        "is_returning": known and order_count > 0,
        "is_first_time": known and order_count == 0,
        "order_count": order_count if known else None,
        "recent_product": product,
        "recent_purchase_date": p_date,
        "recent_purchase_amount": p_amount,
        "recent_purchase_days": p_days,
        "has_open_issue": open_contacts > 0,
        "open_support_contacts": open_contacts if known else None,
        "locale": locale,
        "channel": channel,
    }


def _honorific(title: str | None, lang: str) -> str | None:
    if not title:
        return None
    gender = TITLE_GENDER.get(title.strip().rstrip(".").casefold())
    forms = HONORIFICS.get(lang, HONORIFICS[DEFAULT_LOCALE])
    if gender:
        return forms[gender]
    return title.strip()  # Dr, Prof. ...: used as recorded


def _int(value: Any) -> int:
    try:
        return max(0, int(float(value)))
    except (TypeError, ValueError):
        return 0


# Typed values for the test render on save (numbers where templates may compare numbers).
SAMPLE_VALUES: dict[str, Any] = {
    **dict.fromkeys(VARIABLES, "x" * 40),
    "is_known": True,
    "is_returning": True,
    "is_first_time": False,
    "has_open_issue": True,
    "order_count": 99,
    "open_support_contacts": 2,
    "recent_purchase_days": 3,
}


def validate_template(source: Any, field: str = "source") -> None:
    """Validate a greeting template (see ``recommend/engage/sandbox.py``)."""
    sandbox.validate(source, field, VARIABLES, SAMPLE_VALUES)


# -- storage --------------------------------------------------------------------------------
class GreetingTemplates:
    """Admin overrides in one Redis hash (field ``<locale>:<channel>``) over shipped defaults."""

    def __init__(self, client: redis.Redis, keys: SharedKeys, clock: Callable[[], float]):
        self.redis = client
        self.keys = keys
        self.clock = clock

    @staticmethod
    def check(locale: str, channel: str) -> str:
        tag = normalise_locale(locale)
        if tag is None:
            raise InvalidInput("locale is a tag such as 'en', 'de' or 'de-AT'", field="locale")
        if channel not in CHANNELS:
            raise InvalidInput(f"channel is one of {', '.join(CHANNELS)}", field="channel")
        return tag

    def _entry(self, locale: str, channel: str, raw: str | None) -> dict | None:
        """The override stored as ``raw`` if it is a valid one, else the shipped default
        (None when there is neither)."""
        if raw:
            try:
                data = json.loads(raw)
                source = data["source"]
            except (ValueError, KeyError, TypeError):
                data, source = None, None
            if isinstance(source, str):
                return _template_entry(locale, channel, source, "custom", data.get("updated_at"))
        source = DEFAULT_TEMPLATES.get((locale, channel))
        if source is None:
            return None
        return _template_entry(locale, channel, source, "default", None)

    def get(self, locale: str, channel: str) -> dict:
        tag = self.check(locale, channel)
        raw = cast(
            "str | None", self.redis.hget(self.keys.greeting_templates(), f"{tag}:{channel}")
        )
        entry = self._entry(tag, channel, raw)
        if entry is None:
            raise TemplateNotFound(f"no greeting template for {tag}/{channel}")
        return entry

    def list(self) -> list[dict]:
        # the client decodes responses (decode_responses=True): fields and values are str
        custom = cast("dict[str, str]", self.redis.hgetall(self.keys.greeting_templates()))
        pairs = set(DEFAULT_TEMPLATES)
        for field in custom:
            locale, _, channel = field.rpartition(":")
            pairs.add((locale, channel))
        out = []
        for locale, channel in sorted(pairs):
            entry = self._entry(locale, channel, custom.get(f"{locale}:{channel}"))
            if entry:
                out.append(entry)
        return out

    def put(self, locale: str, channel: str, source: str) -> tuple[dict, bool]:
        """Validate and store an override; returns (entry, created?)."""
        tag = self.check(locale, channel)
        validate_template(source)
        updated_at = self.clock()
        doc = json.dumps({"source": source, "updated_at": updated_at})
        created = self.redis.hset(self.keys.greeting_templates(), f"{tag}:{channel}", doc)
        return _template_entry(tag, channel, source, "custom", updated_at), bool(created)

    def delete(self, locale: str, channel: str) -> None:
        """Remove an override (back to the default); 404 when there is neither."""
        tag = self.check(locale, channel)
        removed = self.redis.hdel(self.keys.greeting_templates(), f"{tag}:{channel}")
        if not removed and (tag, channel) not in DEFAULT_TEMPLATES:
            raise TemplateNotFound(f"no greeting template for {tag}/{channel}")

    # ``builtins.list`` below: inside this class, ``list`` is the method above
    def queue_overrides(
        self, pipe: Any, _customer_id: str = ""
    ) -> Callable[[builtins.list[Any]], dict]:
        """Queue the read of every override (one global hash, small: a few per locale and
        channel) on ``pipe``, e.g. beside a profile read (``ProfileStore.get(..., extra=...)``)
        when the locale is not known yet; its value goes to :meth:`pick`."""
        pipe.hgetall(self.keys.greeting_templates())
        return lambda replies: replies[0]

    def resolve(self, chain: builtins.list[str], channel: str) -> dict:
        """The first template along the locale chain (one Redis round trip)."""
        fields = [f"{t}:{channel}" for t in chain]
        raws = cast(
            "builtins.list[str | None]", self.redis.hmget(self.keys.greeting_templates(), fields)
        )
        return self.pick(chain, channel, dict(zip(fields, raws, strict=True)))

    def pick(
        self, chain: builtins.list[str], channel: str, overrides: Mapping[str, str | None]
    ) -> dict:
        """:meth:`resolve` over overrides already read (the hash, or its fields for ``chain``)."""
        for tag in chain:
            entry = self._entry(tag, channel, overrides.get(f"{tag}:{channel}"))
            if entry is not None:
                return entry
        return self._entry(DEFAULT_LOCALE, channel, None) or {}


def _template_entry(
    locale: str, channel: str, source: str, origin: str, updated_at: float | None
) -> dict[str, Any]:
    return {
        "locale": locale,
        "channel": channel,
        "source": source,
        "origin": origin,
        "version": template_version(source),
        "updated_at": updated_at,
    }


def _tidy(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text).strip()


class Greeter:
    """Greets a customer (facts from ``recommend/engage/facts.py``) on a channel, in a locale:
    one language per greeting (``recommend/engage/language.py``)."""

    def __init__(self, templates: GreetingTemplates, clock: Callable[[], float]):
        self.templates = templates
        self.clock = clock

    def greet(
        self,
        facts: Mapping,
        channel: str,
        locale: str | None = None,
        *,
        overrides: Mapping[str, str] | None = None,
    ) -> dict:
        """``overrides``: the template overrides hash when the caller already read it
        (``GreetingTemplates.queue_overrides``); otherwise they are read here.

        The words, dates, numbers and money are all in the language of the template rendered;
        ``template.fallback`` is true when that is not the requested language or when a
        stored template failed and a default was used."""
        if channel not in CHANNELS:
            raise InvalidInput(f"channel is one of {', '.join(CHANNELS)}", field="channel")
        if locale is not None and normalise_locale(locale) is None:
            raise InvalidInput("locale is a tag such as 'en', 'de' or 'de-AT'", field="locale")
        requested = normalise_locale(locale or (facts.get("profile") or {}).get("locale"))
        chain = locale_chain(requested)
        if overrides is None:
            entry = self.templates.resolve(chain, channel)
        else:
            entry = self.templates.pick(chain, channel, overrides)
        now = self.clock()

        def values_for(template_locale: str) -> dict[str, Any]:
            return variables(facts, channel, format_locale(template_locale, requested), now)

        html, entry, failed, values = self._render(entry, channel, values_for)
        html = _tidy(html)
        text = _tidy(Markup(html).unescape())
        used = sorted(used_variables(entry["source"], VARIABLES))
        return {
            "text": text,
            "html": html,
            "channel": channel,
            "locale": entry["locale"],
            "requested_locale": requested,
            "format_locale": values["locale"],
            "template": {
                "id": f"{entry['origin']}:{entry['locale']}:{channel}",
                "origin": entry["origin"],
                "locale": entry["locale"],
                "version": entry["version"],
                "fallback": failed or is_fallback(entry["locale"], requested),
            },
            "facts": {k: values[k] for k in used if values.get(k) not in (None, "")},
        }

    def _render(
        self, entry: dict, channel: str, values_for: Callable[[str], dict[str, Any]]
    ) -> tuple[str, dict, bool, dict[str, Any]]:
        """Render ``entry`` with ``values_for(its locale)``; a failing template falls back to
        the default, then to the last resort text. Returns (html, the entry rendered, whether
        it fell back, the values used)."""
        values = values_for(entry["locale"])
        try:
            return render(entry["source"], values), entry, False, values
        except Exception as exc:  # a stored template must never cause a 500
            log.warning(
                "greeting template %s/%s (%s) failed: %s; using the default",
                entry["locale"],
                channel,
                entry["origin"],
                exc.__class__.__name__,
            )
        entry = self._default(entry["locale"], channel)
        if language(entry["locale"]) != language(values["locale"]):
            values = values_for(entry["locale"])  # the default speaks another language
        try:
            return render(entry["source"], values), entry, True, values
        except Exception:
            log.exception("default greeting template failed")
            html = LAST_RESORT.get(language(entry["locale"]), LAST_RESORT[DEFAULT_LOCALE])
            return html, {**entry, "origin": "builtin", "version": "last-resort"}, True, values

    @staticmethod
    def _default(locale: str, channel: str) -> dict:
        for tag in (locale, language(locale), DEFAULT_LOCALE):
            source = DEFAULT_TEMPLATES.get((tag, channel))
            if source:
                return {
                    "locale": tag,
                    "source": source,
                    "origin": "default",
                    "version": template_version(source),
                }
        raise AssertionError("English defaults exist for every channel")
