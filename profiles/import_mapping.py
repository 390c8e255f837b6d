"""How the columns of an import file map to profile and order fields (``rapport import``).

:class:`Mapping` names the column of each field and the defaults; ``ONLINE_RETAIL`` is the
built-in layout of the UCI Online Retail file and ``DEMO_CUSTOMERS_MAPPING`` that of the shipped
demo customers. :func:`clean_id` and :func:`country_of` read the values every layout shares;
:func:`retail_product_code` is the Online Retail rule of what is a product.
The reading and writing are ``profiles/importer.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from profiles import document

RETAIL_SYSTEM = "retail"

# Online Retail country names -> ISO 3166 alpha-2 (None: not a country)
RETAIL_COUNTRIES: dict[str, str | None] = {
    "Australia": "AU", "Austria": "AT", "Bahrain": "BH", "Belgium": "BE", "Brazil": "BR",
    "Canada": "CA", "Channel Islands": "JE", "Cyprus": "CY", "Czech Republic": "CZ",
    "Denmark": "DK", "EIRE": "IE", "European Community": None, "Finland": "FI", "France": "FR",
    "Germany": "DE", "Greece": "GR", "Hong Kong": "HK", "Iceland": "IS", "Israel": "IL",
    "Italy": "IT", "Japan": "JP", "Lebanon": "LB", "Lithuania": "LT", "Malta": "MT",
    "Netherlands": "NL", "Norway": "NO", "Poland": "PL", "Portugal": "PT", "RSA": "ZA",
    "Saudi Arabia": "SA", "Singapore": "SG", "Spain": "ES", "Sweden": "SE",
    "Switzerland": "CH", "USA": "US", "United Arab Emirates": "AE", "United Kingdom": "GB",
    "Unspecified": None,
}  # fmt: skip

CUSTOMER_FIELDS = ("external_id", "email", "phone", "first_name", "last_name", "locale",
                   "timezone", "country")  # fmt: skip
ORDER_FIELDS = ("customer", "order_id", "product_id", "quantity", "unit_price", "purchased_at",
                "currency", "channel", "description", "country")  # fmt: skip


@dataclass
class Mapping:
    """Column names for each field (missing = not in the file) and constant defaults.

    JSON form::

        {"system": "shop",                       # external ids are "<system>:<value>"
         "customers": {"external_id": "id", "email": "mail", "country": "cc", ...},
         "orders": {"customer": "id", "order_id": "order", "product_id": "sku",
                    "quantity": "qty", "unit_price": "price", "purchased_at": "time", ...},
         "defaults": {"currency": "EUR", "channel": "web", "timezone": "UTC"}}
    """

    system: str = "import"
    customers: dict[str, str] = field(default_factory=dict)
    orders: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Mapping:
        if not isinstance(data, dict):
            raise InvalidInput("a mapping is a JSON object", field="mapping")
        unknown = set(data) - {"system", "customers", "orders", "defaults"}
        if unknown:
            raise InvalidInput(f"unknown mapping key {sorted(unknown)[0]}", field="mapping")
        out = cls(
            system=str(data.get("system") or "import"),
            customers=dict(data.get("customers") or {}),
            orders=dict(data.get("orders") or {}),
            defaults=dict(data.get("defaults") or {}),
        )
        for name, allowed in (("customers", CUSTOMER_FIELDS), ("orders", ORDER_FIELDS)):
            bad = set(getattr(out, name)) - set(allowed)
            if bad:
                raise InvalidInput(f"unknown {name} field {sorted(bad)[0]}", field="mapping")
        return out


ONLINE_RETAIL = Mapping(
    system=RETAIL_SYSTEM,
    customers={"external_id": "CustomerID", "country": "Country"},
    orders={
        "customer": "CustomerID",
        "order_id": "InvoiceNo",
        "product_id": "StockCode",
        "description": "Description",
        "quantity": "Quantity",
        "unit_price": "UnitPrice",
        "purchased_at": "InvoiceDate",
        "country": "Country",
    },
    defaults={"currency": "GBP", "channel": "web", "timezone": "Europe/London"},
)
LAYOUTS = {"online-retail": ONLINE_RETAIL}

DEMO_CUSTOMERS_MAPPING = Mapping(
    system=RETAIL_SYSTEM,
    customers={name: name for name in CUSTOMER_FIELDS if name != "external_id"}
    | {"external_id": "customer_id"},
)


def load_mapping(layout: str | None, mapping_file: str | Path | None) -> Mapping:
    if mapping_file:
        return Mapping.from_json(json.loads(Path(mapping_file).read_text()))
    if layout not in LAYOUTS:
        raise InvalidInput(f"unknown layout {layout}; known: {', '.join(LAYOUTS)}", field="layout")
    return LAYOUTS[layout]


# Online Retail StockCodes that start with a digit but name a service or a voucher, not a product
# (the full file holds these four: carriage, packing, an image licence, a gift voucher)
RETAIL_SERVICE_CODES = frozenset({"23444", "23574", "23702", "22016"})


def retail_product_code(code: str) -> str | None:
    """The catalog id of an Online Retail StockCode, or None when the row is not a product.

    The rule (docs/profiles.md, "Importing orders"): a product code starts with a digit (so
    POST, D, M, DOT, C2, S, B, PADS, CRUK, BANK CHARGES, AMAZONFEE, DCGS..., gift_0001_...
    are not products) and is not one of :data:`RETAIL_SERVICE_CODES` (Next Day Carriage,
    PACKING CHARGE, High Resolution Image, a gift voucher); its letters are upper-cased, as
    the file writes ``85123A`` and ``85123a`` for one product."""
    code = (code or "").strip().upper()
    if not code[:1].isdigit() or code in RETAIL_SERVICE_CODES:
        return None
    return code


def clean_id(value: str) -> str:
    """A customer id cell: stripped, and ``12345.0`` (a spreadsheet's float) read as ``12345``."""
    value = (value or "").strip()
    return value[:-2] if value.endswith(".0") and value[:-2].isdigit() else value


def country_of(value: str, retail: bool) -> str | None:
    """A country cell as ISO alpha-2 (an Online Retail name when ``retail``), or None."""
    value = (value or "").strip()
    if not value:
        return None
    if retail:
        return RETAIL_COUNTRIES.get(value)
    try:
        return document.normalise_country(value.upper())
    except InvalidInput:
        return None
