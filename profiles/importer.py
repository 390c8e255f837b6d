"""``rapport import``: customers and orders from CSV, in pipelined batches, idempotent.

Two ways to read columns:

* ``--layout online-retail``: the UCI Online Retail file (``InvoiceNo, StockCode, Description,
  Quantity, InvoiceDate, UnitPrice, CustomerID, Country``; ``.gz`` is fine). Rows become
  purchases grouped by ``InvoiceNo`` per ``CustomerID`` (order id = InvoiceNo, currency GBP,
  channel web, times are Europe/London). Customers get the external id ``retail:<CustomerID>``
  and the ISO country of their most frequent ``Country``. Skipped rows, by reason:
  ``no_customer_id``, ``cancellation`` (``C`` invoices), ``non_product_code`` (not a product
  by ``import_mapping.retail_product_code``: POST, D, M, BANK CHARGES, carriage, ...),
  ``quantity_not_positive``, ``price_not_positive``, ``bad_value``; codes are upper-cased.
* a generic mapping (JSON, see ``profiles/import_mapping.py``): which column holds what, for
  a customers file and/or an orders file, plus defaults (currency, channel, external-id
  system, time zone of naive times).

Re-running changes nothing: a customer is found by its first identity (external id, else
email, else phone) before one is created, and purchases are idempotent by order id (a replay of
the same order is counted as ``orders_unchanged``).

:func:`catalog_products` exposes the products an Online Retail file describes (StockCode ->
name and latest unit price) for the catalog; this module does not write the catalog.
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import Conflict, InvalidInput, RapportError
from profiles import demo, document
from profiles.activity import ActivityStore
from profiles.errors import OrderConflict
from profiles.import_mapping import (
    DEMO_CUSTOMERS_MAPPING,
    ONLINE_RETAIL,
    RETAIL_COUNTRIES,
    Mapping,
    clean_id,
    country_of,
    load_mapping,
    retail_product_code,
)

__all__ = ["RETAIL_COUNTRIES", "load_mapping"]  # moved to import_mapping; still imported here
DEMO_DIR = Path(__file__).resolve().parents[1] / "service" / "demo_data"


@dataclass
class Summary:
    rows_read: int = 0
    rows_imported: int = 0
    skipped: Counter = field(default_factory=Counter)
    customers_created: int = 0
    customers_existing: int = 0
    orders_created: int = 0
    orders_unchanged: int = 0
    orders_rejected: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_imported": self.rows_imported,
            "rows_skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "customers_created": self.customers_created,
            "customers_existing": self.customers_existing,
            "orders_created": self.orders_created,
            "orders_unchanged": self.orders_unchanged,
            "orders_rejected": dict(sorted(self.orders_rejected.items())),
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
        }


# -- reading -----------------------------------------------------------------------------------
def read_rows(source: str | Path | Iterable[dict[str, str]]) -> Iterator[dict[str, str]]:
    """CSV rows as dicts (a path, ``.gz`` or not, or already parsed rows)."""
    if not isinstance(source, str | Path):
        yield from source
        return
    path = Path(source)
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    with raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        yield from csv.DictReader(text)


@dataclass
class _Order:
    customer: str
    order_id: str
    purchased_at: str
    currency: str
    channel: str
    lines: list[tuple[str, int, str]] = field(default_factory=list)


def _to_iso(text: str, tz: ZoneInfo) -> str:
    when = datetime.fromisoformat(text.strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.isoformat()


def _skip_reason(row: dict[str, str], cols: dict[str, str], retail: bool) -> str | None:
    if not clean_id(row.get(cols["customer"], "")):
        return "no_customer_id"
    if retail:
        if row.get(cols["order_id"], "").upper().startswith("C"):
            return "cancellation"
        if retail_product_code(row.get(cols["product_id"], "")) is None:
            return "non_product_code"
    try:
        if int(float(row.get(cols["quantity"], ""))) <= 0:
            return "quantity_not_positive"
        if float(row.get(cols["unit_price"], "")) <= 0:
            return "price_not_positive"
    except ValueError:
        return "bad_value"
    return None


def parse_orders(
    rows: Iterable[dict[str, str]], mapping: Mapping, summary: Summary, progress: Any = None
) -> tuple[dict[tuple[str, str], _Order], dict[str, Counter]]:
    """Group order rows into purchases: (orders by (customer, order id), countries seen per
    customer); skipped rows are counted in ``summary``; ``progress``, a bar, closes at the end."""
    cols = mapping.orders
    missing = [f for f in ("customer", "order_id", "product_id", "quantity", "unit_price")
               if f not in cols]  # fmt: skip
    if missing or ("purchased_at" not in cols):
        raise InvalidInput(f"the orders mapping needs {(missing or ['purchased_at'])[0]}")
    retail = mapping is ONLINE_RETAIL
    tz = ZoneInfo(mapping.defaults.get("timezone", "UTC"))
    orders: dict[tuple[str, str], _Order] = {}
    countries: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        summary.rows_read += 1
        if progress is not None:
            progress.update(1)
        reason = _skip_reason(row, cols, retail)
        if reason is None:
            try:
                customer = clean_id(row[cols["customer"]])
                order_id = row[cols["order_id"]].strip()
                product_id = row[cols["product_id"]].strip()
                product_id = (retail_product_code(product_id) or "") if retail else product_id
                quantity = int(float(row[cols["quantity"]]))
                price = row[cols["unit_price"]].strip()
                at = _to_iso(row[cols["purchased_at"]], tz)
                if not order_id or not product_id:
                    raise ValueError
            except (ValueError, KeyError):
                reason = "bad_value"
        if reason is not None:
            summary.skipped[reason] += 1
            continue
        key = (customer, order_id)
        order = orders.get(key)
        if order is None:
            order = orders[key] = _Order(
                customer,
                order_id,
                at,
                row.get(cols.get("currency", ""), "") or mapping.defaults.get("currency", ""),
                row.get(cols.get("channel", ""), "") or mapping.defaults.get("channel", "web"),
            )
        order.lines.append((product_id, quantity, price))
        if "country" in cols:
            country = country_of(row.get(cols["country"], ""), retail)
            if country:
                countries[customer][country] += 1
    if progress is not None:
        progress.close()
    return orders, countries


# -- writing -----------------------------------------------------------------------------------
class Importer:
    """Writes parsed customers and orders through the profile and activity stores."""

    def __init__(self, profiles: Any, activity: ActivityStore, *, batch_size: int = 500):
        self.profiles = profiles
        self.activity = activity
        self.batch_size = batch_size

    def ensure_customer(self, data: dict[str, Any], summary: Summary) -> str | None:
        """The live profile id for the customer ``data`` describes (created when unknown)."""
        identities = []
        try:
            for ext in data.get("external_ids") or []:
                identities.append(document.external_identity(document.normalise_external_id(ext)))
            if data.get("email"):
                identities.append(("email", document.normalise_email(data["email"])))
        except InvalidInput:
            summary.skipped["invalid_customer"] += 1
            return None
        for identity in identities:
            owner = self.profiles.identities.owner(identity)
            if owner is not None:
                summary.customers_existing += 1
                return owner
        try:
            profile = self.profiles.create(data)
        except Conflict:
            summary.skipped["customer_conflict"] += 1
            return None
        except InvalidInput:
            # keep the identity, drop what does not validate (e.g. an odd phone number)
            slim = {k: data[k] for k in ("external_ids", "email", "country") if data.get(k)}
            try:
                profile = self.profiles.create(slim)
            except RapportError:
                summary.skipped["invalid_customer"] += 1
                return None
        summary.customers_created += 1
        return profile.id

    def import_customers(
        self,
        rows: Iterable[dict[str, str]],
        mapping: Mapping,
        summary: Summary,
        progress=None,
        enrich: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> dict[str, str]:
        """Customers file -> {external id value: profile id}; ``enrich(key, data)`` may add to
        each input document (the demo's consent); ``progress``, a bar, is closed at the end."""
        cols = mapping.customers
        out: dict[str, str] = {}
        retail = mapping is ONLINE_RETAIL
        for row in rows:
            summary.rows_read += 1
            if progress is not None:
                progress.update(1)
            data: dict[str, Any] = {}
            key = clean_id(row.get(cols.get("external_id", ""), ""))
            if key:
                data["external_ids"] = [f"{mapping.system}:{key}"]
            for name in ("email", "phone", "first_name", "last_name", "locale", "timezone"):
                value = (row.get(cols.get(name, ""), "") or "").strip()
                if value:
                    data[name] = value
            if cols.get("country"):
                country = country_of(row.get(cols["country"], ""), retail)
                if country:
                    data["country"] = country
            if not data.get("external_ids") and not data.get("email"):
                summary.skipped["no_customer_id"] += 1
                continue
            if enrich is not None:
                enrich(key, data)
            cid = self.ensure_customer(data, summary)
            if cid is not None:
                summary.rows_imported += 1
                if key:
                    out[key] = cid
        if progress is not None:
            progress.close()
        return out

    def import_orders(
        self,
        orders: dict[tuple[str, str], _Order],
        countries: dict[str, Counter],
        mapping: Mapping,
        summary: Summary,
        known: dict[str, str] | None = None,
        progress_factory: Callable[..., Any] | None = None,
    ) -> None:
        known = dict(known or {})
        customers = sorted({o.customer for o in orders.values()})
        bar = progress_factory(total=len(customers), desc="customers", unit="cust") if (
            progress_factory) else None  # fmt: skip
        for customer in customers:
            if customer not in known:
                data: dict[str, Any] = {"external_ids": [f"{mapping.system}:{customer}"]}
                if countries.get(customer):
                    data["country"] = countries[customer].most_common(1)[0][0]
                cid = self.ensure_customer(data, summary)
                if cid is not None:
                    known[customer] = cid
            else:
                known[customer] = self.profiles.resolve(known[customer])
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        bar = progress_factory(total=len(orders), desc="orders", unit="order") if (
            progress_factory) else None  # fmt: skip
        batch: list[_Order] = []
        for order in orders.values():
            if order.customer not in known:
                summary.skipped["customer_not_created"] += len(order.lines)
                continue
            batch.append(order)
            if len(batch) >= self.batch_size:
                self._flush(batch, known, summary)
                batch = []
            if bar is not None:
                bar.update(1)
        self._flush(batch, known, summary)
        if bar is not None:
            bar.close()

    def _flush(self, batch: list[_Order], known: dict[str, str], summary: Summary) -> None:
        if not batch:
            return
        items = []
        for order in batch:
            purchase = {
                "order_id": order.order_id,
                "lines": [
                    {"product_id": p, "quantity": q, "unit_price": price}
                    for p, q, price in order.lines
                ],
                "currency": order.currency,
                "purchased_at": order.purchased_at,
                "channel": order.channel,
            }
            items.append((known[order.customer], purchase))
        for order, result in zip(batch, self.activity.record_purchases(items), strict=True):
            if isinstance(result, OrderConflict):
                summary.orders_rejected["order_id_conflict"] += 1
                summary.skipped["order_conflict"] += len(order.lines)
            elif isinstance(result, RapportError):
                summary.orders_rejected[f"invalid {result.field}"] += 1
                summary.skipped["invalid_order"] += len(order.lines)
            else:
                summary.rows_imported += len(order.lines)
                if result[1]:
                    summary.orders_created += 1
                else:
                    summary.orders_unchanged += 1


def _progress_factory(progress: bool) -> Callable[..., Any] | None:
    """What makes a progress bar (tqdm, for the CLI), or None without progress."""
    if not progress:
        return None
    from tqdm import tqdm  # optional: only for the progress bars of the CLI

    def progress_bar(**kw: Any) -> Any:
        return tqdm(mininterval=0.5, **kw)

    return progress_bar


def run_import(
    profiles: Any,
    activity: ActivityStore,
    *,
    orders: str | Path | Iterable[dict[str, str]] | None = None,
    customers: str | Path | Iterable[dict[str, str]] | None = None,
    mapping: Mapping = ONLINE_RETAIL,
    batch_size: int = 500,
    progress: bool = False,
) -> Summary:
    """Import a customers file and/or an orders file; returns the summary."""
    summary = Summary()
    started = time.perf_counter()
    factory = _progress_factory(progress)
    importer = Importer(profiles, activity, batch_size=batch_size)
    known: dict[str, str] = {}
    if customers is not None:
        bar = factory(desc="customers file", unit="row") if factory else None
        known = importer.import_customers(read_rows(customers), mapping, summary, bar)
    if orders is not None:
        bar = factory(desc="reading orders", unit="row") if factory else None
        parsed, countries = parse_orders(read_rows(orders), mapping, summary, bar)
        importer.import_orders(parsed, countries, mapping, summary, known, factory)
    summary.seconds = time.perf_counter() - started
    return summary


# -- catalog hook ------------------------------------------------------------------------------
def catalog_products(source: str | Path | Iterable[dict[str, str]]) -> dict[str, dict[str, str]]:
    """StockCode -> ``{"name": Description, "unit_price": UnitPrice}`` from an Online Retail file.

    Only sales (a ``retail_product_code``, positive quantity and price, no cancellation; guest
    sales count) name a product, never stock adjustments ("found", price 0, a negative quantity)
    nor services (postage, carriage); the latest sale's description and price win."""
    out: dict[str, dict[str, str]] = {}
    for row in read_rows(source):
        code = retail_product_code(row.get("StockCode") or "")
        name = (row.get("Description") or "").strip()
        price = (row.get("UnitPrice") or "").strip()
        if code is None or not name or (row.get("InvoiceNo") or "").startswith("C"):
            continue
        try:
            if float(price) <= 0 or float(row.get("Quantity") or 0) <= 0:
                continue
        except ValueError:
            continue
        out[code] = {"name": name, "unit_price": price}
    return out


# -- demo data ---------------------------------------------------------------------------------
def load_demo(
    profiles: Any,
    activity: ActivityStore,
    *,
    data_dir: Path = DEMO_DIR,
    progress: bool = False,
    now: float | None = None,
    only_customers: Collection[str] | None = None,
) -> Summary | None:
    """Load the shipped demo sample when the store holds no profile yet (else None), its dates
    ending a few days before ``now`` (default: the store's clock), with the additions of
    ``profiles/demo.py``; ``only_customers`` (tests): these ids only. Counts the sample only."""
    pattern = profiles.keys.profile("*")
    if next(iter(activity.redis.scan_iter(match=pattern, count=1000)), None) is not None:
        return None
    summary, started = Summary(), time.perf_counter()
    orders_file, factory = data_dir / "orders.csv.gz", _progress_factory(progress)
    now = profiles.clock() if now is None else now
    plan = demo.plan_sample(read_rows(orders_file), now, only_customers)
    customers = plan.kept_customers(read_rows(data_dir / "customers.csv"))
    importer = Importer(profiles, activity)
    bar = factory(desc="customers file", unit="row", total=len(customers)) if factory else None
    known = importer.import_customers(customers, DEMO_CUSTOMERS_MAPPING, summary, bar,
                                      plan.customer_fields)  # fmt: skip
    aside: list[dict[str, str]] = []  # the rows of the second accounts' orders
    rows = demo.route_rows(read_rows(orders_file), plan, aside)
    bar = factory(desc="reading orders", unit="row") if factory else None
    parsed = parse_orders(rows, ONLINE_RETAIL, summary, bar)
    importer.import_orders(*parsed, ONLINE_RETAIL, summary, known, factory)
    seconds = demo.create_second_accounts(profiles, customers, plan)
    importer.import_orders(*parse_orders(aside, ONLINE_RETAIL, summary), ONLINE_RETAIL, summary,
                           seconds)  # fmt: skip
    demo.add_support_contacts(activity, known, plan)
    demo.merge_second_accounts(profiles, known, seconds)
    summary.seconds = time.perf_counter() - started
    return summary
