"""Cut the demo sample shipped in ``service/demo_data/`` from the UCI Online Retail file.

    .venv/bin/python bench/make_demo_sample.py [--source PATH] [--customers N] [--invoices N]

Deterministic (fixed seeds): picks ``--customers`` customer ids at random, keeps each one's
latest ``--invoices`` invoices (all their rows, cancellations and postage included, so the
import shows its skip reasons), and writes

* ``orders.csv.gz``  - those rows in the original 8-column layout and order;
* ``customers.csv``  - customer_id, first_name, last_name, email, phone, locale, timezone,
  country: names from Faker in a locale of the customer's country, emails under the reserved
  ``example.com/.net/.org`` domains, phone numbers that are valid for the country
  (``phonenumbers``), time zone and BCP 47 locale of the country;
* ``NOTICE.md``      - the CC BY 4.0 attribution and how the files were made.

Faker is a development dependency (``pip install -e .[dev]``); the service never needs it.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import random
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

import phonenumbers
from faker import Faker

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
OUT = ROOT / "service" / "demo_data"
SEED = 352  # the UCI dataset number

# ISO country -> (Faker locale, BCP 47 locale, IANA time zone)
COUNTRY_STYLE: dict[str, tuple[str, str, str]] = {
    "GB": ("en_GB", "en-GB", "Europe/London"), "DE": ("de_DE", "de-DE", "Europe/Berlin"),
    "FR": ("fr_FR", "fr-FR", "Europe/Paris"), "IE": ("en_IE", "en-IE", "Europe/Dublin"),
    "ES": ("es_ES", "es-ES", "Europe/Madrid"), "NL": ("nl_NL", "nl-NL", "Europe/Amsterdam"),
    "BE": ("nl_BE", "nl-BE", "Europe/Brussels"), "CH": ("de_CH", "de-CH", "Europe/Zurich"),
    "PT": ("pt_PT", "pt-PT", "Europe/Lisbon"), "AU": ("en_AU", "en-AU", "Australia/Sydney"),
    "NO": ("no_NO", "nb-NO", "Europe/Oslo"), "IT": ("it_IT", "it-IT", "Europe/Rome"),
    "JE": ("en_GB", "en-JE", "Europe/Jersey"), "FI": ("fi_FI", "fi-FI", "Europe/Helsinki"),
    "CY": ("el_CY", "el-CY", "Asia/Nicosia"), "SE": ("sv_SE", "sv-SE", "Europe/Stockholm"),
    "AT": ("de_AT", "de-AT", "Europe/Vienna"), "DK": ("da_DK", "da-DK", "Europe/Copenhagen"),
    "JP": ("ja_JP", "ja-JP", "Asia/Tokyo"), "PL": ("pl_PL", "pl-PL", "Europe/Warsaw"),
    "IL": ("he_IL", "he-IL", "Asia/Jerusalem"), "US": ("en_US", "en-US", "America/New_York"),
    "HK": ("zh_TW", "zh-HK", "Asia/Hong_Kong"), "SG": ("en_US", "en-SG", "Asia/Singapore"),
    "IS": ("is_IS", "is-IS", "Atlantic/Reykjavik"), "CA": ("en_CA", "en-CA", "America/Toronto"),
    "GR": ("el_GR", "el-GR", "Europe/Athens"), "MT": ("en_GB", "en-MT", "Europe/Malta"),
    "AE": ("ar_AE", "ar-AE", "Asia/Dubai"), "ZA": ("en_GB", "en-ZA", "Africa/Johannesburg"),
    "LB": ("en_US", "ar-LB", "Asia/Beirut"), "LT": ("lt_LT", "lt-LT", "Europe/Vilnius"),
    "BR": ("pt_BR", "pt-BR", "America/Sao_Paulo"), "CZ": ("cs_CZ", "cs-CZ", "Europe/Prague"),
    "BH": ("ar_BH", "ar-BH", "Asia/Bahrain"), "SA": ("ar_SA", "ar-SA", "Asia/Riyadh"),
}  # fmt: skip
UNKNOWN_STYLE = ("en_GB", "en-GB", "Europe/London")
DOMAINS = ("example.com", "example.net", "example.org")
NOTICE = """\
# Demo data: attribution and provenance

`orders.csv.gz` is a sample cut from the **Online Retail** dataset:

> Daqing Chen, Sai Liang Sain, Kun Guo, "Data mining for the online retail industry: A case
> study of RFM model-based customer segmentation using data mining", *Journal of Database
> Marketing and Customer Strategy Management* 19(3), 2012. Published on the UCI Machine
> Learning Repository as dataset 352, "Online Retail"
> (<https://archive.ics.uci.edu/dataset/352/online+retail>), under the Creative Commons
> Attribution 4.0 International licence (CC BY 4.0,
> <https://creativecommons.org/licenses/by/4.0/>).

Changes: {customers} customers were drawn at random (seed {seed}) from those with a
CustomerID; for each, the rows of their latest {invoices} invoices were kept unchanged, in the
original column layout ({rows} rows). The rows come from the Spark export of the dataset
(`InvoiceDate` in ISO form, `CustomerID` written as a float).

`customers.csv` is **generated**, not part of the dataset: names come from Faker (seeded per
customer id) in a locale of the customer's country, emails use the reserved `example.com`,
`example.net` and `example.org` domains, phone numbers are valid for the country but
invented, and the locale and time zone follow the country. Any resemblance to real people is
coincidental. Regenerate both files with `python bench/make_demo_sample.py`.
"""


def _country(name: str) -> str | None:
    from profiles.importer import RETAIL_COUNTRIES

    return RETAIL_COUNTRIES.get(name)


def _ascii(text: str) -> str:
    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", flat.lower())


def _phone(country: str, customer_id: str) -> str:
    """A number valid for the country whose last five digits are the customer id (unique)."""
    example = phonenumbers.example_number_for_type(
        country, phonenumbers.PhoneNumberType.MOBILE
    ) or phonenumbers.example_number(country)
    if example is None:
        return ""
    digits = str(example.national_number)
    tail = f"{int(customer_id) % 100_000:05d}"
    for k in range(10):
        national = digits[:-6] + str(k) + tail if len(digits) > 6 else digits
        candidate = phonenumbers.PhoneNumber(
            country_code=example.country_code, national_number=int(national)
        )
        if phonenumbers.is_valid_number(candidate):
            return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
    return ""  # no valid number of this shape: better none than a duplicate


def person(customer_id: str, country: str | None) -> dict[str, str]:
    faker_locale, locale, timezone = COUNTRY_STYLE.get(country or "", UNKNOWN_STYLE)
    fake = Faker(faker_locale)
    fake.seed_instance(int(customer_id))
    first, last = fake.first_name(), fake.last_name()
    local = ".".join(p for p in (_ascii(first), _ascii(last)) if p) or "customer"
    return {
        "customer_id": customer_id,
        "first_name": first,
        "last_name": last,
        "email": f"{local}.{customer_id}@{DOMAINS[int(customer_id) % len(DOMAINS)]}",
        "phone": _phone(country, customer_id) if country else "",
        "locale": locale,
        "timezone": timezone,
        "country": country or "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--customers", type=int, default=2400)
    parser.add_argument("--invoices", type=int, default=3)
    args = parser.parse_args()

    with gzip.open(args.source, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    col = {name: i for i, name in enumerate(header)}
    invoices: dict[str, dict[str, str]] = defaultdict(dict)  # customer -> invoice -> date
    countries: dict[str, str] = {}
    for row in rows:
        cust = row[col["CustomerID"]].removesuffix(".0")
        if cust:
            invoices[cust].setdefault(row[col["InvoiceNo"]], row[col["InvoiceDate"]])
            countries.setdefault(cust, row[col["Country"]])
    chosen = set(random.Random(SEED).sample(sorted(invoices), args.customers))
    keep = {
        (c, inv)
        for c in chosen
        for inv in sorted(invoices[c], key=lambda i: (invoices[c][i], i))[-args.invoices :]
    }
    sample = [
        r for r in rows if (r[col["CustomerID"]].removesuffix(".0"), r[col["InvoiceNo"]]) in keep
    ]

    args.out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(sample)
    with open(args.out / "orders.csv.gz", "wb") as raw:
        # mtime=0 and no file name: the same input gives the same bytes
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            gz.write(buf.getvalue().encode("utf-8"))
    people = [person(c, _country(countries[c])) for c in sorted(chosen, key=int)]
    with open(args.out / "customers.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(people[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(people)
    (args.out / "NOTICE.md").write_text(
        NOTICE.format(customers=len(chosen), seed=SEED, invoices=args.invoices, rows=len(sample))
    )
    size = (args.out / "orders.csv.gz").stat().st_size
    print(f"{len(chosen)} customers, {len(sample)} rows, orders.csv.gz {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
