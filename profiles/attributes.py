"""A profile's descriptive attributes as input gives them: names, locale, time zone, country,
loyalty tier, preferences and consent, validated and normalised (no Flask).

The identities and the document as a whole are ``profiles/document.py``, which builds on this
module and re-exports what its callers name there. Every helper raises
:class:`core.errors.InvalidInput` with ``field`` set to the dotted path of the bad input; each
one is idempotent on an already normal value.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from babel import Locale, UnknownLocaleError

from core.errors import InvalidInput

LOYALTY_TIERS: tuple[str, ...] = ("none", "bronze", "silver", "gold", "platinum")
CHANNELS: tuple[str, ...] = ("chat", "email", "phone", "sms")
CONSENT_PURPOSES: tuple[str, ...] = ("marketing", "personalization", "profiling")

NAME_LIMITS = {"first_name": 100, "last_name": 100, "display_name": 200}
MAX_CUSTOM_KEYS = 50
MAX_CUSTOM_KEY_LEN = 64
MAX_CUSTOM_VALUE_LEN = 1024
MAX_CATEGORIES = 50
MAX_CATEGORY_LEN = 64
MAX_SOURCE_LEN = 64
PREFERENCE_FIELDS: tuple[str, ...] = ("categories", "channels", "language", "custom")

_CUSTOM_KEY = re.compile(r"^[A-Za-z0-9_.:-]+$")
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"}
_EARLIEST = 946684800.0  # 2000-01-01: consent times before it are typos
_CLOCK_SKEW = 300.0  # seconds a client clock may run ahead of ours


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, field=field)


# -- descriptive fields --------------------------------------------------------------------------
def normalise_name(value: Any, field: str) -> str:
    limit = NAME_LIMITS.get(field.rsplit(".", 1)[-1], 100)
    if not isinstance(value, str):
        raise _bad(field, "must be a string")
    text = " ".join(value.split())
    if not 1 <= len(text) <= limit:
        raise _bad(field, f"must be 1 to {limit} characters")
    if not text.isprintable():
        raise _bad(field, "must not contain control characters")
    return text


def normalise_locale(value: Any, field: str = "locale") -> str:
    """A BCP 47 tag babel knows (``de-AT``, ``zh-Hant-TW``), in canonical case."""
    if not isinstance(value, str) or not 2 <= len(value.strip()) <= 35:
        raise _bad(field, "must be a BCP 47 language tag such as 'de-AT'")
    try:
        locale = Locale.parse(value.strip().replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise _bad(field, f"unknown locale {value!r}; use a BCP 47 tag such as 'de-AT'") from None
    return "-".join(p for p in (locale.language, locale.script, locale.territory) if p)


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def normalise_timezone(value: Any, field: str = "timezone") -> str:
    if not isinstance(value, str) or value not in _timezones():
        raise _bad(field, "must be an IANA time zone such as 'Europe/Vienna'")
    return value


@functools.cache
def _countries() -> frozenset[str]:
    territories = Locale("en").territories
    return frozenset(
        c
        for c in territories
        if isinstance(c, str) and len(c) == 2 and c.isalpha() and c not in _NOT_COUNTRIES
    )


def normalise_country(value: Any, field: str = "country") -> str:
    code = value.strip().upper() if isinstance(value, str) else ""
    if code not in _countries():
        raise _bad(field, "must be an ISO 3166-1 alpha-2 country code such as 'AT'")
    return code


def normalise_tier(value: Any, field: str = "loyalty_tier") -> str:
    tier = value.strip().lower() if isinstance(value, str) else ""
    if tier not in LOYALTY_TIERS:
        raise _bad(field, f"must be one of {', '.join(LOYALTY_TIERS)}")
    return tier


def parse_time(value: Any, field: str, now: float) -> float:
    """Epoch seconds from a number or an ISO 8601 string with a zone; not before 2000, not in
    the future (beyond a few minutes of clock skew)."""
    if isinstance(value, bool):
        raise _bad(field, "must be epoch seconds or an ISO 8601 time")
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _bad(field, "must be epoch seconds or an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise _bad(field, "an ISO 8601 time needs a zone, e.g. 'Z' or '+01:00'")
        ts = parsed.timestamp()
    else:
        raise _bad(field, "must be epoch seconds or an ISO 8601 time")
    if not math.isfinite(ts) or ts < _EARLIEST or ts > now + _CLOCK_SKEW:
        raise _bad(field, "must be a time between 2000 and now")
    return ts


# -- preferences and consent ---------------------------------------------------------------------
def _string_list(value: Any, field: str, limit: int, item_len: int) -> list[str]:
    if not isinstance(value, list):
        raise _bad(field, "must be a list of strings")
    if len(value) > limit:
        raise _bad(field, f"at most {limit} items")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not 1 <= len(item.strip()) <= item_len:
            raise _bad(f"{field}.{i}", f"must be a string of 1 to {item_len} characters")
        out.append(item.strip())
    return list(dict.fromkeys(out))


def _custom_value(value: Any, field: str) -> str | int | float | bool:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(field, "numbers must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_CUSTOM_VALUE_LEN:
            raise _bad(field, f"a value is at most {MAX_CUSTOM_VALUE_LEN} characters")
        return value
    raise _bad(field, "a value must be a string, number or boolean")


def normalise_preferences_patch(value: Any, field: str = "preferences") -> dict[str, Any]:
    """A preferences change: known keys only; ``None`` means delete (in ``custom`` too)."""
    if not isinstance(value, Mapping):
        raise _bad(field, "must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{field}.{key}"
        if key not in PREFERENCE_FIELDS:
            raise _bad(path, f"unknown preference; known: {', '.join(PREFERENCE_FIELDS)}")
        if item is None:
            out[key] = None
        elif key == "categories":
            out[key] = _string_list(item, path, MAX_CATEGORIES, MAX_CATEGORY_LEN)
        elif key == "channels":
            channels = _string_list(item, path, len(CHANNELS), 16)
            for i, ch in enumerate(channels):
                if ch not in CHANNELS:
                    raise _bad(f"{path}.{i}", f"must be one of {', '.join(CHANNELS)}")
            out[key] = channels
        elif key == "language":
            out[key] = normalise_locale(item, path)
        else:
            if not isinstance(item, Mapping):
                raise _bad(path, "must be an object of key/value pairs")
            if len(item) > MAX_CUSTOM_KEYS:
                raise _bad(path, f"at most {MAX_CUSTOM_KEYS} keys")
            custom: dict[str, Any] = {}
            for ckey, cval in item.items():
                if not isinstance(ckey, str) or not 1 <= len(ckey) <= MAX_CUSTOM_KEY_LEN:
                    raise _bad(path, f"a key is 1 to {MAX_CUSTOM_KEY_LEN} characters")
                if not _CUSTOM_KEY.match(ckey):
                    raise _bad(f"{path}.{ckey}", "a key uses only [A-Za-z0-9_.:-]")
                custom[ckey] = None if cval is None else _custom_value(cval, f"{path}.{ckey}")
            out[key] = custom
    return out


def normalise_consent_patch(value: Any, now: float, field: str = "consent") -> dict[str, Any]:
    """Per purpose ``{"granted": bool, "at": time (default now), "source": str}`` or ``None``."""
    if not isinstance(value, Mapping):
        raise _bad(field, "must be an object keyed by purpose")
    out: dict[str, Any] = {}
    for purpose, item in value.items():
        path = f"{field}.{purpose}"
        if purpose not in CONSENT_PURPOSES:
            raise _bad(path, f"unknown purpose; known: {', '.join(CONSENT_PURPOSES)}")
        if item is None:
            out[purpose] = None
            continue
        if not isinstance(item, Mapping):
            raise _bad(path, "must be {granted, at, source}")
        unknown = set(item) - {"granted", "at", "source"}
        if unknown:
            raise _bad(f"{path}.{sorted(unknown)[0]}", "unknown field")
        if not isinstance(item.get("granted"), bool):
            raise _bad(f"{path}.granted", "must be true or false")
        source = item.get("source")
        if not isinstance(source, str) or not 1 <= len(source.strip()) <= MAX_SOURCE_LEN:
            raise _bad(f"{path}.source", f"must be a string of 1 to {MAX_SOURCE_LEN} characters")
        at = parse_time(item["at"], f"{path}.at", now) if item.get("at") is not None else now
        out[purpose] = {"granted": item["granted"], "at": at, "source": source.strip()}
    return out
