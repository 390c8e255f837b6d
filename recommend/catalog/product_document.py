"""A product document: its format and its validation (the catalog stores what this returns).

Product document::

    {"product_id": "85123A", "name": "...", "category": "candles & lights", "brand": null,
     "price": "2.55", "currency": "GBP", "tags": ["heart"], "in_stock": true, "active": true,
     "description": "...", "updated_at": 1700000000.0}

``price`` is a decimal string (never a float: money). A product without a category gets one
from :func:`recommend.catalog.categories.derive_category` over its description or name. Text
fields refuse what profiles refuse: control, bidi-override and zero-width characters.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import InvalidInput
from profiles.activity_input import money_str
from recommend.catalog.categories import derive_category

PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
RESERVED_IDS = frozenset({"batch"})  # path words beside /v1/products/{id}: POST /v1/products/batch
CURRENCY = re.compile(r"^[A-Z]{3}$")
_FIELDS = {
    "product_id",
    "name",
    "category",
    "brand",
    "price",
    "currency",
    "tags",
    "in_stock",
    "active",
    "description",
}


def normalise_product(data: dict[str, Any], product_id: str | None = None) -> dict[str, Any]:
    """Validate a product body and return the stored form; raise :class:`InvalidInput`."""
    if not isinstance(data, dict):
        raise InvalidInput("a product must be an object")
    unknown = set(data) - _FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"unknown field {field!r}", field=field)
    pid = product_id if product_id is not None else data.get("product_id")
    if data.get("product_id") not in (None, pid):
        raise InvalidInput(
            "product_id in the body differs from the one in the path", field="product_id"
        )
    if not isinstance(pid, str) or not PRODUCT_ID.match(pid) or pid in RESERVED_IDS:
        raise InvalidInput(
            "product_id: 1-64 characters, letters, digits and . _ : - (starting with a "
            f"letter or digit), not {' or '.join(sorted(RESERVED_IDS))}",
            field="product_id",
        )
    name = _text(data, "name", 200, required=True)
    description = _text(data, "description", 2000)
    brand = _text(data, "brand", 64)
    category = _text(data, "category", 64)
    if category is None:
        category = derive_category(description or name)
    if any(ch in category for ch in "{}"):
        raise InvalidInput("category may not contain braces", field="category")
    price = data.get("price")
    currency = data.get("currency")
    if price is not None or currency is not None:
        if not isinstance(currency, str) or not CURRENCY.match(currency):
            raise InvalidInput("currency: an ISO 4217 code such as GBP", field="currency")
    if price is not None:  # stored as purchases store money: "8.5" EUR -> "8.50"
        price = money_str(Decimal(_price(price)), str(currency))
    tags = data.get("tags") or []
    if not isinstance(tags, list) or len(tags) > 20:
        raise InvalidInput("tags: a list of at most 20 strings", field="tags")
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not 1 <= len(tag) <= 40:
            raise InvalidInput("each tag is 1 to 40 characters", field=f"tags.{i}")
    flags = {}
    for flag in ("in_stock", "active"):
        value = data.get(flag, True)
        if not isinstance(value, bool):
            raise InvalidInput(f"{flag} must be true or false", field=flag)
        flags[flag] = value
    return {
        "product_id": pid,
        "name": name,
        "category": category,
        "brand": brand,
        "price": price,
        "currency": currency,
        "tags": list(dict.fromkeys(tags)),
        "in_stock": flags["in_stock"],
        "active": flags["active"],
        "description": description,
    }


def _text(data: dict, field: str, limit: int, *, required: bool = False) -> str | None:
    value = data.get(field)
    if value is None:
        if required:
            raise InvalidInput(f"{field} is required", field=field)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    value = value.strip()
    if not value:
        if required:
            raise InvalidInput(f"{field} may not be blank", field=field)
        return None
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters", field=field)
    # as profiles refuse them: no NUL or other control, no bidi override, no zero-width
    # characters (line breaks and tabs are fine in a description)
    shown = value.replace("\n", " ").replace("\t", " ") if field == "description" else value
    if not shown.isprintable():
        raise InvalidInput(f"{field} must not contain control or invisible characters", field=field)
    return value


def _price(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput('price: a decimal string such as "2.55"', field="price")
    try:
        dec = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput('price: a decimal string such as "2.55"', field="price") from None
    if not dec.is_finite() or dec < 0 or dec > Decimal("1e9"):
        raise InvalidInput("price must be between 0 and 1e9", field="price")
    exponent = dec.as_tuple().exponent  # an int: a finite Decimal has no 'n'/'N'/'F' marker
    if isinstance(exponent, int) and -exponent > 4:
        raise InvalidInput("price has more than 4 decimal places", field="price")
    return str(dec)
