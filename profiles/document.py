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
instead of the lists. This module holds the ids, the identities and the document as a whole;
the descriptive attributes (names, locale, time zone, country, tier, preferences, consent) are
validated in ``profiles/attributes.py``. Every helper raises
:class:`profiles.errors.InvalidInput` with ``field`` set to the dotted path of the bad input;
each one is idempotent on an already normal value.
"""

from __future__ import annotations

import copy
import re
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import phonenumbers

from core.errors import InvalidInput
from profiles.attributes import (
    LOYALTY_TIERS,
    MAX_CUSTOM_KEY_LEN,
    MAX_CUSTOM_KEYS,
    MAX_CUSTOM_VALUE_LEN,
    NAME_LIMITS,
    normalise_consent_patch,
    normalise_country,
    normalise_locale,
    normalise_name,
    normalise_preferences_patch,
    normalise_tier,
    normalise_timezone,
)

# Moved to profiles/attributes.py and still named here (``document.normalise_locale``, ...).
__all__ = [
    "LOYALTY_TIERS",
    "MAX_CUSTOM_KEYS",
    "MAX_CUSTOM_KEY_LEN",
    "MAX_CUSTOM_VALUE_LEN",
    "NAME_LIMITS",
    "normalise_consent_patch",
    "normalise_country",
    "normalise_locale",
    "normalise_name",
    "normalise_preferences_patch",
    "normalise_tier",
    "normalise_timezone",
]

IDENTITY_KINDS: tuple[str, ...] = ("email", "phone", "ext:<system>")

MAX_EXTERNAL_IDS = 20
MAX_EMAILS = 10
MAX_PHONES = 10
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

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_LEN = 22
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MERGE_ID = re.compile(r"^m_[A-Za-z0-9]{22}$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_EMAIL_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EXT_SYSTEM = re.compile(r"^[a-z0-9_-]{1,32}$")


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
