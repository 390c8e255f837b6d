"""Catalog entries from an order file that names its products (the Online Retail layout).

The file gives StockCode, Description and UnitPrice; ``profiles.importer.catalog_products``
reads them. The category comes from the description through
:func:`recommend.catalog.categories.derive_category` (``Catalog.upsert`` derives it when none is
given).
Loading the catalog before the orders lets the favourite-category trait count them at write time.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from recommend.catalog.products import MAX_BATCH, Catalog


def retail_products(parsed: dict[str, dict[str, str]], currency: str = "GBP") -> list[dict]:
    """Catalog documents for ``{StockCode: {"name", "unit_price"}}``; blank names use the code."""
    products = []
    for code, item in sorted(parsed.items()):
        doc: dict[str, Any] = {
            "product_id": code,
            "name": item.get("name") or code,
            "currency": currency,
            "in_stock": True,
            "active": True,
        }
        if item.get("unit_price"):
            doc["price"] = item["unit_price"]
        products.append(doc)
    return products


def load_catalog(catalog: Catalog, products: list[dict]) -> dict[str, int]:
    """Upsert in batches; returns counts by status (created / updated / invalid)."""
    counts: Counter[str] = Counter()
    for start in range(0, len(products), MAX_BATCH):
        for result in catalog.upsert_many(products[start : start + MAX_BATCH]):
            counts[result["status"]] += 1
    return dict(counts)
