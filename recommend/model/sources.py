"""Where training data comes from: the Online Retail CSV, or Redis (purchases through the
activity store, profile features, the catalog). Every source returns a ``TrainingData``."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profiles.activity import ActivityStore
from profiles.customer_view import CustomerView
from profiles.import_mapping import retail_product_code
from recommend.catalog.categories import derive_category
from recommend.catalog.products import Catalog
from recommend.model.records import PurchaseLine, TrainingData


# -- Online Retail ---------------------------------------------------------------------------
def online_retail_rows(path: str | Path) -> Iterator[dict[str, str]]:
    """Rows of the Online Retail CSV (``.csv`` or ``.csv.gz``) as dicts of strings."""
    path = Path(path)
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    with raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
        yield from csv.DictReader(text)


def is_purchase_row(row: dict[str, str]) -> bool:
    """The usual filter: known customer, not a cancellation, positive quantity and price, and
    a product stock code (``profiles.import_mapping.retail_product_code``: starts with a digit,
    not a service code)."""
    try:
        return (
            bool(row.get("CustomerID", "").strip())
            and not row.get("InvoiceNo", "").startswith("C")
            and float(row.get("Quantity") or 0) > 0
            and float(row.get("UnitPrice") or 0) > 0
            and retail_product_code(row.get("StockCode", "")) is not None
        )
    except ValueError:
        return False


def parse_time(text: str) -> float:
    """``2010-12-01 08:26:00`` (or ISO 8601) as epoch seconds, UTC."""
    dt = datetime.fromisoformat(text.strip().replace("T", " ").replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def load_online_retail(
    rows: Iterable[dict[str, str]] | str | Path, *, limit: int | None = None
) -> TrainingData:
    """Online Retail rows (or a path) as :class:`TrainingData`: one line per purchase row,
    the customer's country, and a product per stock code (latest description and price,
    currency GBP, category derived from the description)."""
    if isinstance(rows, str | Path):
        rows = online_retail_rows(rows)
    lines: list[PurchaseLine] = []
    customers: dict[str, dict[str, Any]] = {}
    products: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not is_purchase_row(row):
            continue
        cid = row["CustomerID"].strip().removesuffix(".0")
        pid = row["StockCode"].strip().upper()
        desc = (row.get("Description") or "").strip()
        lines.append(
            PurchaseLine(
                customer_id=cid,
                product_id=pid,
                quantity=float(row["Quantity"]),
                purchased_at=parse_time(row["InvoiceDate"]),
                order_id=row["InvoiceNo"].strip(),
                unit_price=float(row["UnitPrice"]),
            )
        )
        if row.get("Country"):
            customers[cid] = {"country": row["Country"].strip()}
        prev = products.get(pid)
        if prev is None or desc:
            products[pid] = {
                "product_id": pid,
                "name": desc or (prev or {}).get("name") or pid,
                "description": desc or (prev or {}).get("description"),
                "category": derive_category(desc or (prev or {}).get("description")),
                "price": row["UnitPrice"].strip(),
                "currency": "GBP",
                "brand": None,
                "tags": [],
                "in_stock": True,
                "active": True,
            }
        if limit is not None and len(lines) >= limit:
            break
    return TrainingData(lines=lines, customers=customers, products=products)


def profile_features(profile: dict[str, Any] | None) -> dict[str, Any]:
    """The model's view of a profile: country, locale, tier, preferred categories.

    Tolerates the shapes a profile document may take (top level or nested under
    ``address``/``preferences``/``traits``)."""
    p = profile or {}
    address = _section(p, "address")
    prefs = _section(p, "preferences")
    traits = _section(p, "traits")
    cats = (
        p.get("preferred_categories")
        or prefs.get("categories")
        or prefs.get("preferred_categories")
        or traits.get("favourite_categories")
        or traits.get("favorite_categories")
        or []
    )
    if isinstance(cats, str):
        cats = [cats]
    favourite = traits.get("favourite_category") or traits.get("favorite_category")
    if not cats and isinstance(favourite, str):
        cats = [favourite]
    return {
        "country": p.get("country") or address.get("country"),
        "locale": p.get("locale"),
        "tier": p.get("loyalty_tier") or p.get("tier") or traits.get("tier"),
        "preferred_categories": [c for c in cats if isinstance(c, str)][:5],
    }


def _section(profile: dict[str, Any], name: str) -> dict[str, Any]:
    """``profile[name]`` when it is a dict, else an empty one."""
    value = profile.get(name)
    return value if isinstance(value, dict) else {}


def purchase_lines(customer_id: str, purchase: dict[str, Any]) -> list[PurchaseLine]:
    """The lines of one stored purchase (``profiles.activity`` shape)."""
    ts = purchase.get("purchased_at")
    when = parse_time(ts) if isinstance(ts, str) else float(ts or 0)
    out = []
    for line in purchase.get("lines") or ():
        try:
            price = float(line.get("unit_price") or 0)
        except (TypeError, ValueError):
            price = 0.0
        out.append(
            PurchaseLine(
                customer_id=customer_id,
                product_id=str(line["product_id"]),
                quantity=float(line.get("quantity") or 1),
                purchased_at=when,
                order_id=str(purchase.get("order_id") or ""),
                unit_price=price,
            )
        )
    return out


def load_from_redis(client, keys, *, clock=None) -> TrainingData:
    """Production source: every purchase, the profiles of their customers, the catalog (the
    purchases and profiles read through ``profiles/``)."""
    catalog = Catalog(client, keys)
    activity = ActivityStore(client, keys)
    lines: list[PurchaseLine] = []
    for cid, purchase in activity.iter_all_purchases():
        lines.extend(purchase_lines(cid, purchase))
    products = {p["product_id"]: p for p in catalog.iter_all() if p.get("active", True)}
    customers = read_profiles(CustomerView(client, keys), sorted({ln.customer_id for ln in lines}))
    return TrainingData(lines=lines, customers=customers, products=products)


def read_profiles(view: CustomerView, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Profile features of many customers (``CustomerView.profile_docs``: pipelines of
    reads); a customer without a profile has no features."""
    return {cid: profile_features(doc) for cid, doc in view.profile_docs(customer_ids).items()}
