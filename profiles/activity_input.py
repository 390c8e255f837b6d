"""Validation and canonical form of purchases and events (used by ``profiles.activity``).

Everything here is pure: it turns client input into the canonical dicts the store keeps, or
raises :class:`~profiles.errors.InvalidInput` naming the field at fault (``lines.2.quantity``).

Money is exact: prices are :class:`~decimal.Decimal` with at most :data:`PRICE_PLACES`
fractional digits, written back as decimal strings; totals are kept in Redis as integers of
``10**-PRICE_PLACES`` currency units (``HINCRBY`` adds them exactly).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache
from typing import Any

from core.errors import InvalidInput

PRICE_PLACES = 4  # fractional digits a unit price may have; totals are kept in 1e-4 units
SCALE = 10**PRICE_PLACES
MAX_ID = 128  # order id, product id, message id, contact id
MAX_LINES = 600  # lines per purchase: real invoices reach 542 (docs/profiles.md "Limits")
MAX_QUANTITY = 1_000_000
MAX_UNIT_PRICE = Decimal(1_000_000_000)
MAX_ORDER_TOTAL = Decimal(1_000_000_000_000)  # keeps summed totals far inside int64
MAX_FUTURE_S = 86_400  # times more than a day ahead of the clock are refused
MAX_TEXT = 200  # free text in event payloads (topic, page, source)
MAX_EVENT_PAYLOAD = 4_096  # bytes of JSON per event payload

CHANNELS = ("web", "app", "store", "phone", "chat", "email", "marketplace", "other")
EVENT_TYPES = ("view", "add_to_cart", "purchase", "support_contact")
SUPPORT_STATUSES = ("opened", "resolved")
SUPPORT_CHANNELS = ("chat", "email", "phone", "web", "store", "social", "other")


@cache
def currencies() -> frozenset[str]:
    """ISO 4217 codes Babel knows (current and historical)."""
    from babel.numbers import list_currencies  # a heavy import, only when needed

    return frozenset(list_currencies())


@cache
def currency_places(code: str) -> int:
    from babel.numbers import get_currency_precision  # a heavy import, only when needed

    return get_currency_precision(code)


# -- small parsers ------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: Any, field: str, *, max_len: int = MAX_ID, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field)
    if not 1 <= len(value) <= max_len:
        raise InvalidInput(f"must be 1 to {max_len} characters", field=field)
    if _CONTROL.search(value):
        raise InvalidInput("must not contain control characters", field=field)
    return value


def _choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise InvalidInput(f"must be one of: {', '.join(options)}", field=field)
    return value


def parse_decimal(value: Any, field: str) -> Decimal:
    """A price as a decimal string or a JSON number; floats go through their shortest repr."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise InvalidInput("must be a decimal number or a decimal string", field=field)
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise InvalidInput("must be a decimal number", field=field) from None
    if not number.is_finite():
        raise InvalidInput("must be a finite number", field=field)
    return number


def decimal_places(number: Decimal) -> int:
    """Digits after the point of a finite ``number``, trailing zeros not counted (2.50: 1).
    (A finite Decimal's exponent is an int; only NaN and infinity have a letter there.)"""
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def money_str(amount: Decimal, currency: str) -> str:
    """``amount`` with at least the currency's minor-unit digits and no float drift."""
    places = max(currency_places(currency), decimal_places(amount))
    return str(amount.quantize(Decimal(1).scaleb(-places)))


def units_to_money(units: int, currency: str, *, divide_by: int | None = None) -> str:
    """Integer ``10**-PRICE_PLACES`` units (optionally divided, e.g. an average) as money.

    An average is rounded half-even to the currency's minor unit."""
    amount = Decimal(units) / SCALE
    if divide_by is not None:
        step = Decimal(1).scaleb(-currency_places(currency))
        return str((amount / divide_by).quantize(step, rounding=ROUND_HALF_EVEN))
    return money_str(amount, currency)


def parse_time(value: Any, field: str, now: float) -> tuple[str, int]:
    """ISO 8601 with an offset (or epoch seconds) -> (``...Z`` UTC string, epoch ms)."""
    if isinstance(value, bool):
        raise InvalidInput("must be an ISO 8601 time with an offset", field=field)
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise InvalidInput("must be a time after 1970", field=field)
        try:
            when = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # past the year 9999
            raise InvalidInput("is more than a day in the future", field=field) from None
    elif isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            when = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise InvalidInput("must be an ISO 8601 time with an offset", field=field) from None
        if when.tzinfo is None:
            raise InvalidInput("needs a UTC offset, e.g. 2024-05-01T10:00:00+02:00", field=field)
        try:
            when = when.astimezone(UTC)
        except OverflowError:  # 0001-01-01 with a positive offset, 9999-12-31 with a negative
            raise InvalidInput("must be a time between 1970 and now", field=field) from None
    else:
        raise InvalidInput("must be an ISO 8601 time with an offset", field=field)
    if when.year < 1970:
        raise InvalidInput("must be a time after 1970", field=field)
    epoch = when.timestamp()
    if epoch > now + MAX_FUTURE_S:
        raise InvalidInput("is more than a day in the future", field=field)
    text = when.isoformat(timespec="microseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z"), int(epoch * 1000)


def to_epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# -- purchases ---------------------------------------------------------------------------------
PURCHASE_FIELDS = ("order_id", "lines", "currency", "purchased_at", "channel")


def normalise_purchase(raw: Mapping[str, Any], now: float, *, prefix: str = "") -> dict[str, Any]:
    """The canonical stored purchase (raises :class:`InvalidInput`).

    Shape: ``{order_id, lines: [{product_id, quantity, unit_price}], currency, purchased_at
    (UTC ISO), channel, total, item_count}``; ``total`` is exact, in the currency's units."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("a purchase must be an object", field=prefix.rstrip(".") or None)
    # ``total``/``item_count`` of an already stored purchase are derived, so recomputed here
    unknown = sorted(set(raw) - set(PURCHASE_FIELDS) - {"total", "item_count"})
    if unknown:
        raise InvalidInput("unknown field", field=prefix + str(unknown[0]))
    for name in PURCHASE_FIELDS:
        if raw.get(name) is None:
            raise InvalidInput("is required", field=prefix + name)
    order_id = _text(raw["order_id"], prefix + "order_id")
    currency = raw["currency"]
    if not isinstance(currency, str) or currency not in currencies():
        raise InvalidInput("must be an ISO 4217 currency code, e.g. EUR", field=prefix + "currency")
    purchased_at, _ = parse_time(raw["purchased_at"], prefix + "purchased_at", now)
    channel = _choice(raw["channel"], prefix + "channel", CHANNELS)
    lines_in = raw["lines"]
    if not isinstance(lines_in, list) or not 1 <= len(lines_in) <= MAX_LINES:
        raise InvalidInput(f"must be a list of 1 to {MAX_LINES} lines", field=prefix + "lines")
    lines, total, items = [], Decimal(0), 0
    for i, line in enumerate(lines_in):
        stored, price = _purchase_line(line, f"{prefix}lines.{i}.", currency)
        lines.append(stored)
        total += price * stored["quantity"]
        items += stored["quantity"]
    if total > MAX_ORDER_TOTAL:
        raise InvalidInput(f"the order total exceeds {MAX_ORDER_TOTAL}", field=prefix + "lines")
    return {
        "order_id": order_id,
        "lines": lines,
        "currency": currency,
        "purchased_at": purchased_at,
        "channel": channel,
        "total": money_str(total, currency),
        "item_count": items,
    }


def _purchase_line(line: Any, where: str, currency: str) -> tuple[dict[str, Any], Decimal]:
    """One line of a purchase, canonical (``where``: its field prefix, ``lines.2.``), and its
    exact unit price."""
    if not isinstance(line, Mapping):
        raise InvalidInput("a line must be an object", field=where[:-1])
    extra = sorted(set(line) - {"product_id", "quantity", "unit_price"})
    if extra:
        raise InvalidInput("unknown field", field=where + str(extra[0]))
    product_id = _text(line.get("product_id"), where + "product_id")
    quantity = line.get("quantity")
    if isinstance(quantity, float) and quantity.is_integer():
        quantity = int(quantity)
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidInput("must be a whole number", field=where + "quantity")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(f"must be 1 to {MAX_QUANTITY}", field=where + "quantity")
    if line.get("unit_price") is None:
        raise InvalidInput("is required", field=where + "unit_price")
    price = parse_decimal(line["unit_price"], where + "unit_price")
    if price < 0 or price > MAX_UNIT_PRICE:
        raise InvalidInput(f"must be 0 to {MAX_UNIT_PRICE}", field=where + "unit_price")
    if decimal_places(price) > PRICE_PLACES:
        raise InvalidInput(
            f"has more than {PRICE_PLACES} decimal places", field=where + "unit_price"
        )
    stored = {
        "product_id": product_id,
        "quantity": quantity,
        "unit_price": money_str(price, currency),
    }
    return stored, price


def total_units(purchase: Mapping[str, Any]) -> int:
    """The purchase total as an integer of ``10**-PRICE_PLACES`` units (exact)."""
    return int(Decimal(purchase["total"]) * SCALE)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- events ------------------------------------------------------------------------------------
EVENT_COMMON = ("message_id", "type", "at")


def _payload(raw: Mapping[str, Any], etype: str, now: float, at: str) -> dict[str, Any]:
    """The documented payload of each event type (everything but message_id/type/at)."""
    body = {k: v for k, v in raw.items() if k not in EVENT_COMMON}
    if etype == "purchase":
        purchase = normalise_purchase({**body, "purchased_at": at}, now)
        return {"purchase": purchase}
    if etype in ("view", "add_to_cart"):
        allowed = {"product_id", "source"} | ({"quantity"} if etype == "add_to_cart" else set())
        out: dict[str, Any] = {"product_id": _text(body.get("product_id"), "product_id")}
        if etype == "add_to_cart":
            quantity = body.get("quantity", 1)
            if isinstance(quantity, bool) or not isinstance(quantity, int):
                raise InvalidInput("must be a whole number", field="quantity")
            if not 1 <= quantity <= MAX_QUANTITY:
                raise InvalidInput(f"must be 1 to {MAX_QUANTITY}", field="quantity")
            out["quantity"] = quantity
    else:  # support_contact
        allowed = {"contact_id", "status", "channel", "topic"}
        out = {
            "contact_id": _text(body.get("contact_id"), "contact_id"),
            "status": _choice(body.get("status"), "status", SUPPORT_STATUSES),
        }
        if body.get("channel") is not None:
            out["channel"] = _choice(body["channel"], "channel", SUPPORT_CHANNELS)
        if body.get("topic") is not None:
            out["topic"] = _text(body["topic"], "topic", max_len=MAX_TEXT)
    if "source" in body and etype != "support_contact":
        out["source"] = _text(body["source"], "source", max_len=MAX_TEXT)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput("unknown field for this event type", field=str(unknown[0]))
    return out


def normalise_event(raw: Mapping[str, Any], now: float) -> dict[str, Any]:
    """``{message_id, type, at, ...payload}`` -> ``{message_id, type, at, at_ms, payload}``.

    Payloads: ``view`` {product_id, source?}; ``add_to_cart`` {product_id, quantity=1,
    source?}; ``purchase`` {order_id, lines, currency, channel} (purchased at ``at``);
    ``support_contact`` {contact_id, status: opened|resolved, channel?, topic?}."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("an event must be an object")
    message_id = _text(raw.get("message_id"), "message_id")
    etype = _choice(raw.get("type"), "type", EVENT_TYPES)
    if raw.get("at") is None:
        raise InvalidInput("is required", field="at")
    at, at_ms = parse_time(raw["at"], "at", now)
    payload = _payload(raw, etype, now, at)
    if len(canonical_json(payload)) > MAX_EVENT_PAYLOAD and etype != "purchase":
        raise InvalidInput(f"the payload exceeds {MAX_EVENT_PAYLOAD} bytes")
    return {"message_id": message_id, "type": etype, "at": at, "at_ms": at_ms, "payload": payload}
