"""The profile document: validation, normalisation and merge-patch rules (no Flask).

A profile document (what ``profiles/store.py`` keeps as JSON in the ``doc`` field of
``Keys.profile(id)``)::

    {"id": "c_…", "emails": [...], "phones": [...], "external_ids": ["shop:42", ...],
     "first_name": str, "last_name": str, "display_name": str,
     "locale": "de-AT", "timezone": "Europe/Vienna", "country": "AT", "loyalty_tier": "gold",
     "preferences": {"categories": [...], "channels": ["chat", ...], "language": "de",
                     "custom": {key: str | number | bool}},
     "consent": {"marketing": {"granted": bool, "at": epoch s, "source": str}, ...},
     "created_at": epoch s, "updated_at": epoch s}

Optional fields are absent rather than null. ``emails[0]`` / ``phones[0]`` are the primary ones
(shown as ``email`` / ``phone``); the others arrive through merges or identify.

Input (create, PATCH, identify attributes) uses the same names, with ``email`` / ``phone``
instead of the lists. Every helper raises :class:`profiles.errors.InvalidInput` with ``field``
set to the dotted path of the bad input; each one is idempotent on an already normal value.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import math
import re
import secrets
import string
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import phonenumbers
from babel import Locale, UnknownLocaleError

from core.errors import InvalidInput

LOYALTY_TIERS: tuple[str, ...] = ("none", "bronze", "silver", "gold", "platinum")
CHANNELS: tuple[str, ...] = ("chat", "email", "phone", "sms")
CONSENT_PURPOSES: tuple[str, ...] = ("marketing", "personalization", "profiling")
IDENTITY_KINDS: tuple[str, ...] = ("email", "phone", "ext:<system>")

NAME_LIMITS = {"first_name": 100, "last_name": 100, "display_name": 200}
MAX_CUSTOM_KEYS = 50
MAX_CUSTOM_KEY_LEN = 64
MAX_CUSTOM_VALUE_LEN = 1024
MAX_CATEGORIES = 50
MAX_CATEGORY_LEN = 64
MAX_EXTERNAL_IDS = 20
MAX_EMAILS = 10
MAX_PHONES = 10
MAX_SOURCE_LEN = 64
MAX_EMAIL_LEN = 254

# The profile's fields as input names them, each with how ``apply_changes`` treats it: the one
# list of them (``PROFILE_INPUT_FIELDS``, ``SCALAR_FIELDS`` and ``merge_rules.FILL_FIELDS``
# derive from it). "identity": the primary one of a list (``email`` -> ``emails``);
# "identities": a list that replaces; "scalar": a value that replaces; "preferences" and
# "consent": objects merged key by key.
PROFILE_FIELDS: dict[str, str] = {
    "email": "identity",
    "phone": "identity",
    "external_ids": "identities",
    "first_name": "scalar",
    "last_name": "scalar",
    "display_name": "scalar",
    "locale": "scalar",
    "timezone": "scalar",
    "country": "scalar",
    "loyalty_tier": "scalar",
    "preferences": "preferences",
    "consent": "consent",
}
PROFILE_INPUT_FIELDS: tuple[str, ...] = tuple(PROFILE_FIELDS)
SCALAR_FIELDS: tuple[str, ...] = tuple(k for k, how in PROFILE_FIELDS.items() if how == "scalar")
PREFERENCE_FIELDS: tuple[str, ...] = ("categories", "channels", "language", "custom")

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_LEN = 22
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MERGE_ID = re.compile(r"^m_[A-Za-z0-9]{22}$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_EMAIL_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EXT_SYSTEM = re.compile(r"^[a-z0-9_-]{1,32}$")
_CUSTOM_KEY = re.compile(r"^[A-Za-z0-9_.:-]+$")
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"}
_EARLIEST = 946684800.0  # 2000-01-01: consent times before it are typos
_CLOCK_SKEW = 300.0  # seconds a client clock may run ahead of ours


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, field=field)


# -- ids -----------------------------------------------------------------------------------------
def new_customer_id() -> str:
    """An opaque, URL-safe id: ``c_`` + 22 base62 characters (131 bits) from :mod:`secrets`."""
    return "c_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LEN))


def new_merge_id() -> str:
    return "m_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LEN))


def is_customer_id(value: str) -> bool:
    """Ids we generate, and imported ones: 1..64 of ``[A-Za-z0-9_.-]`` (safe in a key tag)."""
    return bool(_CUSTOMER_ID.match(value or ""))


def is_merge_id(value: str) -> bool:
    return bool(_MERGE_ID.match(value or ""))


# -- identities ----------------------------------------------------------------------------------
def normalise_email(value: Any, field: str = "email") -> str:
    """Strip and lowercase; a pragmatic syntax check (local@domain.tld, no IP literals)."""
    if not isinstance(value, str):
        raise _bad(field, "must be a string")
    email = value.strip().lower()
    if not email or len(email) > MAX_EMAIL_LEN:
        raise _bad(field, f"must be 1 to {MAX_EMAIL_LEN} characters")
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise _bad(field, "not a valid email address")
    if len(local) > 64 or not _EMAIL_LOCAL.match(local) or ".." in local:
        raise _bad(field, "not a valid email address")
    if local.startswith(".") or local.endswith("."):
        raise _bad(field, "not a valid email address")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_EMAIL_LABEL.match(label) for label in labels):
        raise _bad(field, "not a valid email address")
    if labels[-1].isdigit():
        raise _bad(field, "not a valid email address")
    return email


def normalise_phone(value: Any, region: str | None = None, field: str = "phone") -> str:
    """To E.164 (``+436641234567``). A national number needs ``region`` (the profile's country)."""
    if not isinstance(value, str):
        raise _bad(field, "must be a string")
    text = value.strip()
    if not text or len(text) > 40:
        raise _bad(field, "must be 1 to 40 characters")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        hint = (
            "" if region else " (give it in international form, +<country code>…, or set country)"
        )
        raise _bad(field, f"not a valid phone number{hint}") from None
    if not phonenumbers.is_valid_number(number):
        raise _bad(field, "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_external_id(value: Any, field: str = "external_ids") -> str:
    """``system:id``: system ``[a-z0-9_-]{1,32}`` (lowercased), id 1..128 printable characters."""
    if not isinstance(value, str):
        raise _bad(field, "must be a string 'system:id'")
    system, sep, ident = value.strip().partition(":")
    system = system.lower()
    if not sep or not _EXT_SYSTEM.match(system):
        raise _bad(field, "must be 'system:id' with system of 1 to 32 of [a-z0-9_-]")
    if not 1 <= len(ident) <= 128 or not ident.isprintable() or ident != ident.strip():
        raise _bad(field, "the id after 'system:' must be 1 to 128 printable characters")
    return f"{system}:{ident}"


def normalise_external_ids(value: Any, field: str = "external_ids") -> list[str]:
    if not isinstance(value, list):
        raise _bad(field, "must be a list of 'system:id' strings")
    if len(value) > MAX_EXTERNAL_IDS:
        raise _bad(field, f"at most {MAX_EXTERNAL_IDS} external ids")
    out = [normalise_external_id(v, f"{field}.{i}") for i, v in enumerate(value)]
    return list(dict.fromkeys(out))


def identity_key(kind_and_value: tuple[str, str]) -> str:
    kind, value = kind_and_value
    return f"{kind}:{value}"


def external_identity(ext: str) -> tuple[str, str]:
    """``shop:42`` → (``ext:shop``, ``42``), the (kind, value) of its identity claim."""
    system, _, ident = ext.partition(":")
    return f"ext:{system}", ident


def identities_of(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every identity a profile document lists, as (kind, value) claim pairs."""
    out = [("email", e) for e in doc.get("emails", [])]
    out += [("phone", p) for p in doc.get("phones", [])]
    out += [external_identity(x) for x in doc.get("external_ids", [])]
    return out


def identity_field(kind: str) -> str:
    return {"email": "email", "phone": "phone"}.get(kind, "external_ids")


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


# -- whole inputs --------------------------------------------------------------------------------
def normalise_changes(
    data: Mapping[str, Any], *, now: float, country: str | None = None
) -> dict[str, Any]:
    """Validate a create/PATCH body (``None`` = delete a field). ``country``: the stored country,
    the default phone region when the body does not set one."""
    out: dict[str, Any] = {}
    for key in data:
        if key not in PROFILE_INPUT_FIELDS:
            raise _bad(key, "unknown field")
    if data.get("country") is not None:
        out["country"] = normalise_country(data["country"])
        country = out["country"]
    elif "country" in data:
        out["country"] = None
    for key, value in data.items():
        if key == "country":
            continue
        if value is None:
            if key == "external_ids":
                out[key] = []
            else:
                out[key] = None
        elif key == "email":
            out[key] = normalise_email(value)
        elif key == "phone":
            out[key] = normalise_phone(value, country)
        elif key == "external_ids":
            out[key] = normalise_external_ids(value)
        elif key in NAME_LIMITS:
            out[key] = normalise_name(value, key)
        elif key == "locale":
            out[key] = normalise_locale(value)
        elif key == "timezone":
            out[key] = normalise_timezone(value)
        elif key == "loyalty_tier":
            out[key] = normalise_tier(value)
        elif key == "preferences":
            out[key] = normalise_preferences_patch(value)
        elif key == "consent":
            out[key] = normalise_consent_patch(value, now)
    return out


def apply_changes(doc: Mapping[str, Any], changes: Mapping[str, Any], now: float) -> dict[str, Any]:
    """Merge-patch normalised ``changes`` into a copy of ``doc``.

    Scalars replace; ``None`` deletes. ``email``/``phone`` replace the primary one (``None`` drops
    it, the next becomes primary); ``external_ids`` replaces the list. ``preferences`` and
    ``consent`` merge key by key (``preferences.custom`` too); lists inside them replace.
    """
    new = copy.deepcopy(dict(doc))
    for key, value in changes.items():
        apply = _APPLY.get(PROFILE_FIELDS.get(key, ""))
        if apply is not None:
            apply(new, key, value)
    new["updated_at"] = now
    return new


def _identity_limit(key: str) -> int:
    return MAX_EMAILS if key == "email" else MAX_PHONES


def _apply_primary(doc: dict[str, Any], key: str, value: Any) -> None:
    """``email``/``phone``: ``value`` becomes ``emails[0]``/``phones[0]`` in place of the old
    primary one; ``None`` drops the primary one."""
    plural = key + "s"
    rest = list(doc.get(plural, []))[1:]
    doc[plural] = rest if value is None else [value] + [v for v in rest if v != value]
    limit = _identity_limit(key)
    if len(doc[plural]) > limit:
        raise _bad(key, f"a profile holds at most {limit} of these")


def _apply_list(doc: dict[str, Any], key: str, value: Any) -> None:
    doc[key] = list(value or [])


def _apply_scalar(doc: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        doc.pop(key, None)
    else:
        doc[key] = value


def _apply_preferences(doc: dict[str, Any], key: str, value: Any) -> None:
    prefs = {} if value is None else doc.get(key, {})
    for pkey, pval in (value or {}).items():
        if pval is None:
            prefs.pop(pkey, None)
        elif pkey == "custom":
            _apply_custom(prefs, pval)
        else:
            prefs[pkey] = pval
    _keep_if_any(doc, key, prefs)


def _apply_custom(prefs: dict[str, Any], changes: Mapping[str, Any]) -> None:
    custom = prefs.get("custom", {})
    _merge_keys(custom, changes)
    if len(custom) > MAX_CUSTOM_KEYS:
        raise _bad("preferences.custom", f"at most {MAX_CUSTOM_KEYS} keys")
    _keep_if_any(prefs, "custom", custom)


def _apply_consent(doc: dict[str, Any], key: str, value: Any) -> None:
    consent = {} if value is None else doc.get(key, {})
    _merge_keys(consent, value or {})
    _keep_if_any(doc, key, consent)


def _merge_keys(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
    """Set each key of ``changes`` in ``target``; a ``None`` value deletes the key."""
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _keep_if_any(doc: dict[str, Any], key: str, value: dict[str, Any]) -> None:
    """``doc[key] = value``, or no ``key`` at all when ``value`` is empty."""
    if value:
        doc[key] = value
    else:
        doc.pop(key, None)


# How apply_changes treats each kind of field (PROFILE_FIELDS).
_APPLY: dict[str, Callable[[dict[str, Any], str, Any], None]] = {
    "identity": _apply_primary,
    "identities": _apply_list,
    "scalar": _apply_scalar,
    "preferences": _apply_preferences,
    "consent": _apply_consent,
}


def new_document(customer_id: str, changes: Mapping[str, Any], now: float) -> dict[str, Any]:
    base = {"id": customer_id, "emails": [], "phones": [], "external_ids": [], "created_at": now}
    return apply_changes(base, changes, now)


def public_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document as the API shows it: adds ``email`` / ``phone`` (the primary ones)."""
    out = dict(doc)
    out["email"] = (doc.get("emails") or [None])[0]
    out["phone"] = (doc.get("phones") or [None])[0]
    return out


def added_identities(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, str]]:
    old = set(identities_of(before))
    return [i for i in identities_of(after) if i not in old]


def removed_identities(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[tuple[str, str]]:
    new = set(identities_of(after))
    return [i for i in identities_of(before) if i not in new]


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
