"""Segment-spec messages -> what Rapport records (pure functions; no Redis).

:func:`parse_message` turns one message of the Segment spec (``identify``, ``track``, ``page``,
``screen``, ``group``, ``alias``) into a :class:`Message`: the identities it names, the
profile attributes it carries, the Rapport event it records (``profiles.activity_input``
format) or why it is ignored. Bad input raises :class:`~core.errors.InvalidInput` with the
field at fault named the Segment way (``properties.products.0.price``, ``traits.email``).
``profiles/segment_ingest.py`` applies the messages to the stores. The mapping:

* ids: ``userId`` -> external id ``segment:<userId>``, ``anonymousId`` ->
  ``segment_anonymous:<anonymousId>``, ``traits.email`` (``context.traits.email`` outside
  ``identify``) -> email, ``traits.phone`` -> phone;
* ``identify`` traits: ``firstName``/``first_name``, ``lastName``/``last_name``, ``name`` ->
  display name, ``address.country`` -> country (a trait Rapport cannot take is dropped, with a
  note; a bad email or phone rejects the message);
* ``track``: ``Order Completed`` -> ``purchase`` (``order_id``, ``products[]``: ``product_id``
  or ``sku``, ``quantity`` (1), ``price``; ``currency`` (USD, as Segment assumes)),
  ``Product Viewed`` -> ``view``, ``Product Added`` -> ``add_to_cart``; any other event, and
  ``page``, ``screen``, ``group`` are ignored with a note (Rapport's events have no generic
  type);
* ``context.consent.categoryPreferences`` -> consent (:data:`CONSENT_CATEGORIES`);
* the time: ``timestamp``, else ``originalTimestamp``, ``sentAt``, ``receivedAt`` (the first
  given is the one read and checked), else now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInput
from profiles import document
from profiles.activity_input import CHANNELS, normalise_event, parse_time
from profiles.identity_index import Identity

USER_SYSTEM = "segment"  # userId -> external id segment:<userId>
ANONYMOUS_SYSTEM = "segment_anonymous"  # anonymousId -> segment_anonymous:<anonymousId>
TYPES = ("identify", "track", "page", "screen", "group", "alias")
TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
TRACKED = {"Order Completed": "purchase", "Product Viewed": "view", "Product Added": "add_to_cart"}
DEFAULT_CURRENCY = "USD"  # Segment's own assumption for revenue without a currency
CONSENT_SOURCE = "segment"
# Segment consent category (case-insensitive) -> Rapport consent purpose; others are noted
CONSENT_CATEGORIES = {
    "marketing": "marketing",
    "advertising": "marketing",
    "personalization": "personalization",
    "personalisation": "personalization",
    "analytics": "profiling",
}
# Segment message channel -> Rapport purchase channel (``properties.channel`` may name one)
SEGMENT_CHANNELS = {"browser": "web", "mobile": "app", "server": "other"}
_NAMES = {"first_name": ("firstName", "first_name"), "last_name": ("lastName", "last_name"),
          "display_name": ("name",)}  # fmt: skip


@dataclass
class Message:
    """One parsed message. ``kind``: ``identify``, ``alias``, ``event`` or ``ignored``."""

    message_id: str
    kind: str
    at_ms: int = 0
    identities: dict[str, Any] = field(default_factory=dict)  # ProfileStore.identify's input
    wanted: list[Identity] = field(default_factory=list)  # the same, normalised
    attributes: dict[str, Any] = field(default_factory=dict)  # identify's attributes
    event: dict[str, Any] | None = None  # normalised (activity_input.normalise_event)
    user: Identity | None = None  # alias: the userId's identity
    previous: str | None = None  # alias: previousId
    notes: list[str] = field(default_factory=list)


def parse_message(raw: Any, now: float) -> Message:
    """One Segment message as a :class:`Message` (raises InvalidInput with the field)."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("a message must be an object")
    mtype = raw.get("type")
    if mtype not in TYPES:
        raise InvalidInput(f"must be one of: {', '.join(TYPES)}", field="type")
    mid = _text(raw.get("messageId"), "messageId")
    msg = Message(mid, "ignored")
    if mtype != "track":
        msg.at_ms = message_time(raw, now)[1]
    if mtype in ("page", "screen", "group"):
        msg.notes.append(f"{mtype} calls are accepted and not stored")
        return msg
    context = _object(raw.get("context"), "context")
    if mtype == "track":
        name = _text(raw.get("event"), "event", max_len=200)
        if name not in TRACKED:
            msg.at_ms = message_time(raw, now)[1]
            msg.notes.append(f"track event {name!r} has no Rapport event type; not stored")
            return msg
        msg.kind = "event"
        msg.event = _event(raw, TRACKED[name], mid, now)  # its time parsed there, once
        msg.at_ms = msg.event["at_ms"]
    else:
        msg.kind = mtype
    where = "traits" if mtype == "identify" else "context.traits"
    traits = _object((raw if mtype == "identify" else context).get("traits"), where)
    country = _country(traits, where, msg.notes) if mtype == "identify" else None
    _identities(msg, raw, traits, where, country, mtype == "identify")
    if mtype == "identify":
        msg.attributes = _attributes(traits, country, msg.notes)
    consent = consent_from(context, msg.at_ms / 1000, now, msg.notes)
    if consent:
        msg.attributes["consent"] = consent
    if mtype == "alias":
        msg.previous = external_value(raw.get("previousId"), "previousId")
        if msg.user is None:
            raise InvalidInput("is required", field="userId")
    return msg


def time_field(raw: Mapping[str, Any]) -> str | None:
    """The field the message's time comes from: the first of :data:`TIME_FIELDS` given."""
    return next((name for name in TIME_FIELDS if raw.get(name) is not None), None)


def message_time(raw: Mapping[str, Any], now: float) -> tuple[str, int]:
    """The message's time ``(UTC ISO, epoch ms)`` from :func:`time_field` (only that one is
    read and checked), else now."""
    name = time_field(raw)
    return parse_time(raw[name] if name else now, name or "timestamp", now)


def external_value(value: Any, name: str) -> str:
    """A Segment id (string, or a number Segment passes through) as the id of an external id."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _text(value, name)


def _identities(
    msg: Message, raw: Mapping[str, Any], traits: Mapping[str, Any], where: str,
    country: str | None, with_phone: bool,
) -> None:  # fmt: skip
    """The message's ids into ``msg`` (``identities`` for identify, ``wanted`` normalised)."""
    externals = []
    for name, system in (("userId", USER_SYSTEM), ("anonymousId", ANONYMOUS_SYSTEM)):
        if raw.get(name) is not None:
            ext = document.normalise_external_id(
                f"{system}:{external_value(raw[name], name)}", name
            )
            externals.append(ext)
            msg.wanted.append(document.external_identity(ext))
            if name == "userId":
                msg.user = msg.wanted[-1]
    if externals:
        msg.identities["external_ids"] = externals
    if traits.get("email") is not None:
        email = document.normalise_email(traits["email"], f"{where}.email")
        msg.identities["email"] = email
        msg.wanted.append(("email", email))
    if with_phone and traits.get("phone") is not None:
        phone = document.normalise_phone(traits["phone"], country, f"{where}.phone")
        msg.identities["phone"] = phone
        msg.wanted.append(("phone", phone))
    if not msg.wanted and msg.kind != "alias":
        raise InvalidInput(f"give userId, anonymousId or {where}.email", field="userId")


def _country(traits: Mapping[str, Any], where: str, notes: list[str]) -> str | None:
    address = traits.get("address")
    if not isinstance(address, Mapping) or address.get("country") is None:
        return None
    try:
        return document.normalise_country(address["country"], f"{where}.address.country")
    except InvalidInput:
        notes.append(f"{where}.address.country is not an ISO 3166-1 alpha-2 code; not stored")
        return None


def _attributes(traits: Mapping[str, Any], country: str | None, notes: list[str]) -> dict[str, Any]:
    """identify's profile attributes from the traits; a trait Rapport cannot take is noted."""
    out: dict[str, Any] = {"country": country} if country else {}
    for attr, names in _NAMES.items():
        name = next((n for n in names if traits.get(n) is not None), None)
        if name is None:
            continue
        try:
            out[attr] = document.normalise_name(traits[name], attr)
        except InvalidInput as exc:
            notes.append(f"traits.{name} {exc.detail}; not stored")
    return out


def consent_from(
    context: Mapping[str, Any], at: float, now: float, notes: list[str]
) -> dict[str, Any] | None:
    """Rapport consent (``{purpose: {granted, at, source}}``) from ``context.consent`` or None.

    Categories are mapped by :data:`CONSENT_CATEGORIES`; two categories of one purpose grant it
    only when both are granted; unmapped categories are noted and ignored."""
    consent = context.get("consent")
    if consent is None:
        return None
    prefs = _object(consent, "context.consent").get("categoryPreferences")
    if prefs is None:
        return None
    prefs = _object(prefs, "context.consent.categoryPreferences")
    granted: dict[str, bool] = {}
    unmapped = []
    for name, value in prefs.items():
        purpose = CONSENT_CATEGORIES.get(str(name).lower())
        if purpose is None:
            unmapped.append(str(name))
            continue
        if not isinstance(value, bool):
            raise InvalidInput("must be true or false", field=f"context.consent."
                               f"categoryPreferences.{name}")  # fmt: skip
        granted[purpose] = granted.get(purpose, True) and value
    if unmapped:
        notes.append("consent categories not mapped (ignored): " + ", ".join(sorted(unmapped)))
    stamp = min(at, now)
    patch = {p: {"granted": g, "at": stamp, "source": CONSENT_SOURCE} for p, g in granted.items()}
    return document.normalise_consent_patch(patch, now, "context.consent") if patch else None


# -- track -> event ------------------------------------------------------------------------------
def _event(raw: Mapping[str, Any], etype: str, mid: str, now: float) -> dict[str, Any]:
    """The Rapport event of a tracked e-commerce event (normalised; fields named Segment's way)."""
    props = _object(raw.get("properties"), "properties")
    name = time_field(raw)
    body: dict[str, Any] = {"message_id": mid, "type": etype, "at": raw[name] if name else now}
    if etype == "purchase":
        body.update(
            order_id=external_value(props.get("order_id"), "properties.order_id"),
            lines=_lines(props.get("products")),
            currency=_currency(props.get("currency")),
            channel=_channel(raw, props),
        )
    else:
        product = props.get("product_id", props.get("sku"))
        body["product_id"] = external_value(product, "properties.product_id")
        if etype == "add_to_cart" and props.get("quantity") is not None:
            body["quantity"] = props["quantity"]
    try:
        return normalise_event(body, now)
    except InvalidInput as exc:
        raise InvalidInput(exc.detail, field=segment_field(exc.field, raw)) from None


def _lines(products: Any) -> Any:
    if not isinstance(products, list):
        raise InvalidInput("must be a list of products", field="properties.products")
    lines: list[Any] = []
    for i, product in enumerate(products):
        if not isinstance(product, Mapping):
            raise InvalidInput("a product must be an object", field=f"properties.products.{i}")
        pid = product.get("product_id", product.get("sku"))
        lines.append({
            "product_id": external_value(pid, f"properties.products.{i}.product_id"),
            "quantity": product.get("quantity", 1),
            "unit_price": product.get("price"),
        })  # fmt: skip
    return lines


def _currency(value: Any) -> Any:
    if value is None:
        return DEFAULT_CURRENCY
    return value.strip().upper() if isinstance(value, str) else value


def _channel(raw: Mapping[str, Any], props: Mapping[str, Any]) -> str:
    if props.get("channel") in CHANNELS:
        return props["channel"]
    return SEGMENT_CHANNELS.get(str(raw.get("channel")), "other")


_LINE = re.compile(r"^lines\.(\d+)(?:\.(\w+))?$")
_EVENT_FIELDS = {"message_id": "messageId", "order_id": "properties.order_id",
                 "currency": "properties.currency", "channel": "channel",
                 "lines": "properties.products", "product_id": "properties.product_id",
                 "quantity": "properties.quantity"}  # fmt: skip


def segment_field(name: str | None, raw: Mapping[str, Any]) -> str | None:
    """A field of Rapport's event input named as in the Segment message."""
    if name is None:
        return None
    if name == "at":
        return time_field(raw) or "timestamp"
    line = _LINE.match(name)
    if line:
        index, part = line.groups()
        part = {"unit_price": "price"}.get(part or "", part)
        return f"properties.products.{index}" + (f".{part}" if part else "")
    return _EVENT_FIELDS.get(name, name)


# -- small parsers -------------------------------------------------------------------------------
def _text(value: Any, name: str, *, max_len: int = 128) -> str:
    if value is None:
        raise InvalidInput("is required", field=name)
    if not isinstance(value, str) or not 1 <= len(value) <= max_len or not value.isprintable():
        raise InvalidInput(f"must be a string of 1 to {max_len} printable characters", field=name)
    return value


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput("must be an object", field=name)
    return value
