"""One language per answer: locale tags, the locale chain and the formatting locale.

A rendered text (a greeting, an action's say line) is written in the language of the template
actually used, and its dates, numbers and money are formatted for that language: a ``fi-FI``
customer served by the English template gets an English date, not a Finnish one.

* The locale chain is the exact locale, then its language, then English
  (``de-AT`` → ``de`` → ``en``); the first template found along it is used.
* The formatting locale (:func:`format_locale`) is the requested locale when it speaks the
  template's language (``de-AT`` served by ``de``: Austrian formats, German words; ``en-GB``
  served by ``en``: British dates), otherwise the template's own locale.
* A text *falls back* (:func:`is_fallback`) when its template's language is not the requested
  one (``fi-FI`` served by ``en``). ``de-AT`` served by ``de`` is a regional step in the same
  language, not a fallback.
* Tier names are translated per shipped language (``TIER_NAMES`` beside the greeting
  templates); a tier without a translation is shown as recorded.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import babel
from babel.dates import format_date
from babel.numbers import format_currency

from recommend.engage.greeting_defaults import TIER_NAMES

DEFAULT_LOCALE = "en"
LOCALE_PATTERN = re.compile(r"^[a-z]{2,3}(?:-[A-Z]{2}|-[0-9]{3})?$")


def normalise_locale(value: str | None) -> str | None:
    """``de_at`` / ``DE-at`` → ``de-AT``; None when it is not a locale tag."""
    if not value or not isinstance(value, str):
        return None
    lang, _, region = value.strip().replace("_", "-").partition("-")
    tag = lang.lower() + (f"-{region.upper()}" if region else "")
    return tag if LOCALE_PATTERN.match(tag) else None


def language(tag: str) -> str:
    """``de-AT`` → ``de``."""
    return tag.split("-", 1)[0]


def locale_chain(locale: str | None) -> list[str]:
    """``de-AT`` → ``[de-AT, de, en]``."""
    chain: list[str] = []
    tag = normalise_locale(locale)
    if tag:
        chain.append(tag)
        lang = language(tag)
        if lang not in chain:
            chain.append(lang)
    if DEFAULT_LOCALE not in chain:
        chain.append(DEFAULT_LOCALE)
    return chain


def format_locale(used: str, requested: str | None) -> str:
    """The locale a text in ``used``'s language is formatted for: ``requested`` when it has
    the same language (regional formats), else ``used``."""
    tag = normalise_locale(requested)
    return tag if tag and language(tag) == language(used) else used


def is_fallback(used: str, requested: str | None) -> bool:
    """Whether a text in ``used`` is in another language than the ``requested`` locale (no
    requested locale: English is what was asked for)."""
    tag = normalise_locale(requested) or DEFAULT_LOCALE
    return language(tag) != language(used)


def babel_locale(tag: str) -> babel.Locale:
    """The Babel locale for a tag; its language when Babel lacks the region, else English."""
    try:
        return babel.Locale.parse(tag.replace("-", "_"))
    except (ValueError, babel.UnknownLocaleError):
        try:
            return babel.Locale.parse(language(tag))
        except (ValueError, babel.UnknownLocaleError):
            return babel.Locale.parse(DEFAULT_LOCALE)


def long_date(day: date, locale: str) -> str:
    """``25 September 2011`` / ``25. September 2011`` for the locale."""
    return format_date(day, format="long", locale=babel_locale(locale))


def money(amount: Any, currency: Any, locale: str) -> str | None:
    """``amount`` in ``currency`` (the data's, never converted) for the locale; None when
    either is missing or unreadable."""
    if amount in (None, "") or not currency:
        return None
    try:
        return format_currency(Decimal(str(amount)), str(currency), locale=babel_locale(locale))
    except (ArithmeticError, ValueError, TypeError, babel.UnknownLocaleError):
        return None


def tier_name(tier: str | None, locale: str) -> str | None:
    """The loyalty tier in the locale's language (``gold``: ``Gold`` in German, ``Or`` in
    French), as recorded when there is no translation."""
    if not tier:
        return None
    names = TIER_NAMES.get(language(locale)) or {}
    return names.get(tier.strip().casefold(), tier)
