"""What ``rapport demo`` adds to the shipped sample at load time (``profiles.importer.load_demo``).

The files in ``service/demo_data/`` stay the real data; everything here is derived while loading,
deterministically (from the customer id and the customer's own orders, never at random per run):

* **Recent dates**: every ``InvoiceDate`` moves by the same whole number of weeks, the largest
  that leaves the sample's last order at least :data:`RECENT_DAYS` days before "now" (so it lands
  3 to 9 days back). Order sequence, gaps, weekdays and times of day stay as they were.
* **Consent** (source ``demo``, given at the customer's first order): marketing and
  personalization granted for ~85% of customers, personalization only (marketing refused) for
  ~7%, none for the rest.
* **Loyalty tier** by the customer's spend in the sample (:data:`TIER_SPEND`).
* **Support contacts**: ~6% of customers have an open one, ~8% one that was resolved.
* **Merged identities**: :data:`MERGED_PAIRS` customers with two or more orders have a second
  account (the same name, another email) holding their oldest order, merged into the first
  through the real merge code.
* :data:`SHOWCASE`: the customers the README names get fixed values so that each one shows its
  console panels.

Every rule here is also described in ``service/demo_data/NOTICE.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from profiles.import_mapping import clean_id

RECENT_DAYS = 3
SOURCE = "demo"
ACTOR = "demo-loader"
MERGED_PAIRS = 5
TIMEZONE = ZoneInfo("Europe/London")  # the sample's times are local times in London
# spend in the sample (GBP) -> tier; below the last threshold no tier
TIER_SPEND: tuple[tuple[str, float], ...] = (
    ("platinum", 3000.0),
    ("gold", 1200.0),
    ("silver", 500.0),
    ("bronze", 150.0),
)
CONSENT_SHARE = 0.85  # marketing + personalization
PARTIAL_SHARE = 0.07  # personalization only, marketing refused
OPEN_CONTACT_SHARE = 0.06
RESOLVED_CONTACT_SHARE = 0.08
TOPICS = ("delivery status", "damaged item", "return", "invoice copy", "wrong item sent")
CHANNELS = ("email", "phone", "chat", "web")

# the customers the README names: fixed consent / tier / support contact (None: the rule's value)
SHOWCASE: dict[str, dict[str, Any]] = {
    # the README's example: gold, consent, an open support request, three orders
    "12348": {"consent": "granted", "tier": "gold", "support": "open"},
    # a new customer: one order, a few days ago
    "12650": {"consent": "granted", "tier": "none", "support": None},
    # two accounts of one person, merged
    "16719": {"consent": "granted", "support": None, "merged": True},
    # no order yet (its rows in the sample are manual charges and cancellations): cold start
    "12536": {"consent": "granted", "support": None},
}


def draw(customer: str, salt: str) -> float:
    """A number in [0, 1) fixed by the customer id (and what it is drawn for)."""
    digest = hashlib.sha256(f"{salt}:{customer}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Facts:
    """One customer of the sample: its orders (invoice -> original local time) and spend."""

    invoices: dict[str, datetime] = field(default_factory=dict)
    spend: float = 0.0


@dataclass
class DemoPlan:
    """What the load adds: the date shift, per-customer facts, the merged customers."""

    now: float
    shift: timedelta
    facts: dict[str, Facts]
    merged: list[str]
    only: Collection[str] | None = None
    last: datetime | None = None  # the sample's last order, as in the file (London time)

    def keeps(self, customer: str) -> bool:
        return self.only is None or customer in self.only

    def kept_customers(self, rows: Iterable[dict[str, str]]) -> list[dict[str, str]]:
        """The rows of the customers file this load keeps."""
        return [r for r in rows if self.keeps(clean_id(r.get("customer_id", "")))]

    def moved(self, customer: str) -> str | None:
        """The invoice that sits on the customer's second account, if it has one."""
        if customer not in self.merged:
            return None
        invoices = self.facts[customer].invoices
        return min(invoices, key=lambda inv: (invoices[inv], inv))

    def local_ts(self, when: datetime) -> float:
        """Epoch seconds of an original (naive, London) sample time after the shift."""
        return (when + self.shift).replace(tzinfo=TIMEZONE).timestamp()

    def customer_fields(self, customer: str, data: dict[str, Any]) -> None:
        """Add the synthetic consent and loyalty tier to a customer's import document."""
        show = SHOWCASE.get(customer, {})
        facts = self.facts.get(customer, Facts())
        first = min(facts.invoices.values(), default=None)
        at = self.local_ts(first) if first is not None else self.now - 7 * 86_400
        u = draw(customer, "consent")
        kind = show.get("consent") or (
            "granted" if u < CONSENT_SHARE else
            "partial" if u < CONSENT_SHARE + PARTIAL_SHARE else None
        )  # fmt: skip
        if kind is not None:
            data["consent"] = {
                "marketing": {"granted": kind == "granted", "at": at, "source": SOURCE},
                "personalization": {"granted": True, "at": at, "source": SOURCE},
            }
        tier = show.get("tier") or next(
            (name for name, floor in TIER_SPEND if facts.spend >= floor), None
        )
        if tier is not None:
            data["loyalty_tier"] = tier

    def support_events(self, customer: str) -> list[dict[str, Any]]:
        """The customer's synthetic support contact events (opened, and maybe resolved)."""
        facts = self.facts.get(customer)
        if not facts or not facts.invoices:
            return []
        u = draw(customer, "support")
        kind = SHOWCASE[customer].get("support") if customer in SHOWCASE else (
            "open" if u < OPEN_CONTACT_SHARE else
            "resolved" if u < OPEN_CONTACT_SHARE + RESOLVED_CONTACT_SHARE else None
        )  # fmt: skip
        if kind is None:
            return []
        last = self.local_ts(max(facts.invoices.values()))
        if kind == "open":  # opened in the last few days, not before the last order
            opened = max(last + 3600, self.now - 86_400 * (0.25 + 4 * draw(customer, "when")))
        else:
            opened = last + 86_400 * (1 + 2 * draw(customer, "when"))
        opened = min(opened, self.now - 600)
        base = {
            "contact_id": f"demo-{customer}-1",
            "channel": CHANNELS[int(draw(customer, "channel") * len(CHANNELS))],
            "topic": TOPICS[int(draw(customer, "topic") * len(TOPICS))],
        }
        events = [
            {"message_id": f"demo-support-{customer}-opened", "type": "support_contact",
             "at": opened, "status": "opened", **base},
        ]  # fmt: skip
        if kind == "resolved":
            events.append(
                {"message_id": f"demo-support-{customer}-resolved", "type": "support_contact",
                 "at": min(opened + 86_400, self.now - 60), "status": "resolved", **base}
            )  # fmt: skip
        return events


def _valid_line(row: dict[str, str]) -> bool:
    """A product line the Online Retail import keeps (not a cancellation, fee or zero line)."""
    if row.get("InvoiceNo", "").upper().startswith("C"):
        return False
    if not row.get("StockCode", "")[:1].isdigit():
        return False
    try:
        return float(row.get("Quantity", "")) > 0 and float(row.get("UnitPrice", "")) > 0
    except ValueError:
        return False


def shift_for(last: datetime, now: float) -> timedelta:
    """The whole number of weeks that moves ``last`` (a London local time) to between
    :data:`RECENT_DAYS` and ``RECENT_DAYS + 7`` days before ``now``."""
    now_local = datetime.fromtimestamp(now, TIMEZONE).replace(tzinfo=None)
    weeks = (now_local - timedelta(days=RECENT_DAYS) - last) // timedelta(weeks=1)
    return timedelta(weeks=weeks)


def plan_sample(
    rows: Iterable[dict[str, str]], now: float, only: Collection[str] | None = None
) -> DemoPlan:
    """Read the orders file once: its last order (for the shift) and each customer's facts
    (the product lines the import keeps: no cancellations, fees or zero lines)."""
    facts: dict[str, Facts] = {}
    times = _Times()
    last: datetime | None = None  # of the orders the import keeps
    for row in rows:
        when = times.parse(row.get("InvoiceDate", ""))
        customer = clean_id(row.get("CustomerID", ""))
        if when is None or not customer or not _valid_line(row):
            continue
        item = facts.setdefault(customer, Facts())
        item.invoices.setdefault(row["InvoiceNo"].strip(), when)
        item.spend += float(row["Quantity"]) * float(row["UnitPrice"])
        last = when if last is None or when > last else last
    shift = shift_for(last, now) if last is not None else timedelta(0)
    showcase = [c for c, show in SHOWCASE.items() if show.get("merged")]
    others = sorted(
        (c for c, f in facts.items() if len(f.invoices) >= 2 and c not in SHOWCASE),
        key=lambda c: draw(c, "merge"),
    )
    merged = [c for c in showcase if len(facts.get(c, Facts()).invoices) >= 2]
    merged += others[: MERGED_PAIRS - len(merged)]
    return DemoPlan(now, shift, facts, sorted(merged), only, last)


class _Times:
    """``InvoiceDate`` cells parsed once each (an invoice's rows share one time)."""

    def __init__(self) -> None:
        self.seen: dict[str, datetime] = {}

    def parse(self, text: str) -> datetime | None:
        when = self.seen.get(text)
        if when is None:
            try:
                when = self.seen[text] = datetime.fromisoformat(text.strip())
            except ValueError:
                return None
        return when


def route_rows(
    rows: Iterable[dict[str, str]], plan: DemoPlan, aside: list[dict[str, str]]
) -> Iterator[dict[str, str]]:
    """The kept order rows with their dates shifted; rows of an invoice that belongs to a
    second account go to ``aside`` instead (filled by the time the iterator is exhausted)."""
    moved = {c: plan.moved(c) for c in plan.merged}
    times, shifted = _Times(), {}
    for row in rows:
        customer = clean_id(row.get("CustomerID", ""))
        if customer and not plan.keeps(customer):
            continue
        text = row.get("InvoiceDate", "")
        if text not in shifted:
            when = times.parse(text)  # None: left as it is, the import counts a bad value
            shifted[text] = text if when is None else (when + plan.shift).isoformat(sep=" ")
        row = {**row, "InvoiceDate": shifted[text]}
        if customer in moved and row.get("InvoiceNo", "").strip() == moved[customer]:
            aside.append(row)
        else:
            yield row


def second_account(row: dict[str, str]) -> dict[str, Any]:
    """The profile input of a customer's second account: the same person, another email."""
    local, _, domain = row["email"].partition("@")
    other = {"example.com": "example.net", "example.net": "example.org"}.get(domain, "example.com")
    data: dict[str, Any] = {"email": f"{local}@{other}"}
    for name in ("first_name", "last_name", "locale", "timezone", "country"):
        if (row.get(name) or "").strip():
            data[name] = row[name].strip()
    return data


def create_second_accounts(
    profiles: Any, customer_rows: Iterable[dict[str, str]], plan: DemoPlan
) -> dict[str, str]:
    """Create the second account of each merged customer: {sample customer id: profile id}."""
    out: dict[str, str] = {}
    for row in customer_rows:
        customer = clean_id(row.get("customer_id", ""))
        if customer in plan.merged and plan.keeps(customer) and row.get("email"):
            out[customer] = profiles.create(second_account(row)).id
    return out


def add_support_contacts(activity: Any, known: dict[str, str], plan: DemoPlan) -> int:
    """Record the synthetic support contacts through the activity store; returns how many."""
    batches = {known[c]: events for c in sorted(known) if (events := plan.support_events(c))}
    if batches:
        activity.record_events_many(batches)
    return len(batches)


def merge_second_accounts(profiles: Any, known: dict[str, str], seconds: dict[str, str]) -> int:
    """Merge each second account into the customer's profile (the real merge); returns how
    many were merged."""
    done = 0
    for customer, source in sorted(seconds.items()):
        if customer in known and not profiles.load(source).merged_into:
            profiles.merges.merge(source, known[customer], actor=ACTOR, reason="duplicate")
            done += 1
    return done
