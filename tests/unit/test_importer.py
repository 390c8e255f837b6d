"""rapport import: Online Retail layout (every skip reason), re-runs, generic mapping, demo."""

from __future__ import annotations

import gzip
import json

from click.testing import CliRunner

from profiles.activity import ActivityStore
from profiles.import_mapping import ONLINE_RETAIL, Mapping
from profiles.importer import (
    catalog_products,
    load_demo,
    run_import,
)
from profiles.keys import Keys
from profiles.store import ProfileStore

KEYS = Keys("rp")
NOW = 1_750_000_000.0  # 2025-06-15
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
ROWS = [
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
    "536365,POST,POSTAGE,1,2010-12-01 08:26:00,18.00,17850.0,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom",
    '536367,84879,"ASSORTED COLOUR BIRD ORNAMENT, LARGE",32,2011-06-01 08:34:00,1.69,13047.0,EIRE',
    "536368,22960,JAM MAKING SET WITH JARS,6,2010-12-01 08:34:00,4.25,,United Kingdom",
    "C536379,22960,JAM MAKING SET WITH JARS,-1,2010-12-01 09:41:00,4.25,13047.0,EIRE",
    "536380,22961,JAM MAKING SET PRINTED,0,2010-12-01 09:41:00,1.45,13047.0,EIRE",
    "536381,22962,JAM JAR WITH PINK LID,2,2010-12-01 09:41:00,0.00,13047.0,EIRE",
    "536382,BANK CHARGES,Bank Charges,1,2010-12-01 09:41:00,15.00,13047.0,EIRE",
    "536383,AMAZONFEE,AMAZON FEE,1,2010-12-01 09:41:00,13541.33,13047.0,EIRE",
    "536384,22963,JAM JAR WITH GREEN LID,two,2010-12-01 09:41:00,0.85,13047.0,EIRE",
    "536385,21730,GLASS STAR FROSTED T-LIGHT HOLDER,6,2010-12-02 10:00:00,4.25,12345.0,Unspecified",
]


def stores(redis_client):
    activity = ActivityStore(redis_client, KEYS, clock=lambda: NOW)
    return ProfileStore(redis_client, KEYS, lambda: NOW, activity), activity


def write_fixture(tmp_path, gz=True):
    path = tmp_path / ("retail.csv.gz" if gz else "retail.csv")
    text = "\n".join([HEADER, *ROWS]) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def dump(redis_client):
    out = {}
    for key in sorted(redis_client.scan_iter(count=1000)):
        kind = redis_client.type(key)
        if kind == "hash":
            out[key] = redis_client.hgetall(key)
        elif kind == "zset":
            out[key] = redis_client.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            out[key] = redis_client.get(key)
    return out


def test_online_retail_import_skips_with_reasons_and_reruns_change_nothing(redis_client, tmp_path):
    path = write_fixture(tmp_path)
    profiles, activity = stores(redis_client)
    summary = run_import(profiles, activity, orders=path, batch_size=2).as_dict()
    assert summary["rows_read"] == 13
    assert summary["skipped_by_reason"] == {
        "bad_value": 1,
        "cancellation": 1,
        "no_customer_id": 1,
        "non_product_code": 3,
        "price_not_positive": 1,
        "quantity_not_positive": 1,
    }
    assert summary["rows_imported"] == 5
    assert summary["customers_created"] == 3
    assert summary["orders_created"] == 4

    uk = profiles.lookup("ext:retail", "17850")
    assert uk.doc["country"] == "GB"
    assert profiles.lookup("ext:retail", "13047").doc["country"] == "IE"
    assert "country" not in profiles.lookup("ext:retail", "12345").doc  # Unspecified
    purchases, _ = activity.list_purchases(uk.id, limit=10)
    assert [p["order_id"] for p in purchases] == ["536366", "536365"]
    assert purchases[1]["lines"] == [
        {"product_id": "85123A", "quantity": 6, "unit_price": "2.55"},
        {"product_id": "71053", "quantity": 6, "unit_price": "3.39"},
    ]
    assert purchases[1]["purchased_at"] == "2010-12-01T08:26:00Z"
    irish = activity.list_purchases(profiles.lookup("ext:retail", "13047").id, limit=10)[0]
    assert irish[0]["purchased_at"] == "2011-06-01T07:34:00Z"  # BST in June
    traits = activity.traits(uk.id)
    assert traits["order_count"] == 2
    assert traits["total_spend"] == {"GBP": "46.74"}  # 15.30 + 20.34 + 11.10

    before = dump(redis_client)
    again = run_import(profiles, activity, orders=path).as_dict()
    assert again["customers_created"] == 0 and again["customers_existing"] == 3
    assert again["orders_created"] == 0 and again["orders_unchanged"] == 4
    assert dump(redis_client) == before


def test_generic_mapping_with_customers_file(redis_client, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "id,mail,first,cc\n42,Ada@Example.com,Ada,at\n43,bob@example.com,Bob,XX\n,nobody,,\n"
    )
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order,cust,sku,qty,price,when,cur\n"
        "A1,42,P1,2,9.99,2024-01-01T10:00:00+01:00,EUR\n"
        "A1,42,P2,1,0.50,2024-01-01T10:00:00+01:00,EUR\n"
        "B1,43,P1,1,10,2024-01-02 10:00:00,USD\n"
    )
    mapping = Mapping.from_json(
        {
            "system": "shop",
            "customers": {"external_id": "id", "email": "mail", "first_name": "first",
                          "country": "cc"},
            "orders": {"customer": "cust", "order_id": "order", "product_id": "sku",
                       "quantity": "qty", "unit_price": "price", "purchased_at": "when",
                       "currency": "cur"},
            "defaults": {"channel": "store", "timezone": "America/New_York"},
        }
    )  # fmt: skip
    profiles, activity = stores(redis_client)
    summary = run_import(
        profiles, activity, customers=customers, orders=orders, mapping=mapping
    ).as_dict()
    assert summary["customers_created"] == 2
    assert summary["skipped_by_reason"] == {"invalid_customer": 1}
    ada = profiles.lookup("email", "ada@example.com")
    assert ada.doc["first_name"] == "Ada" and ada.doc["country"] == "AT"
    assert activity.traits(ada.id)["total_spend"] == {"EUR": "20.48"}
    bob = profiles.lookup("ext:shop", "43")
    bought = activity.list_purchases(bob.id, limit=5)[0]
    assert bought[0]["purchased_at"] == "2024-01-02T15:00:00Z"
    assert bought[0]["channel"] == "store"


def test_catalog_products_hook(tmp_path):
    products = catalog_products(write_fixture(tmp_path, gz=False))
    assert products["84879"] == {
        "name": "ASSORTED COLOUR BIRD ORNAMENT, LARGE",
        "unit_price": "1.69",
    }
    assert "POST" not in products and "AMAZONFEE" not in products
    assert "22962" not in products  # never sold at a positive price: not a product


def test_stock_adjustments_never_name_or_create_a_product():
    rows = [
        {"InvoiceNo": "1", "StockCode": "35598C", "Description": "WHITE TREE", "Quantity": "2",
         "UnitPrice": "2.95", "CustomerID": "12346"},
        {"InvoiceNo": "2", "StockCode": "35598C", "Description": "found", "Quantity": "5",
         "UnitPrice": "0", "CustomerID": ""},
        {"InvoiceNo": "3", "StockCode": "35598C", "Description": "damaged", "Quantity": "-3",
         "UnitPrice": "2.95", "CustomerID": ""},
        {"InvoiceNo": "C4", "StockCode": "35598C", "Description": "check", "Quantity": "1",
         "UnitPrice": "2.95", "CustomerID": "12346"},
        {"InvoiceNo": "5", "StockCode": "21134", "Description": "?", "Quantity": "-10",
         "UnitPrice": "0", "CustomerID": ""},
        {"InvoiceNo": "6", "StockCode": "21135", "Description": "GUEST MUG", "Quantity": "1",
         "UnitPrice": "1.10", "CustomerID": ""},
    ]  # fmt: skip
    products = catalog_products(rows)
    assert products == {
        "35598C": {"name": "WHITE TREE", "unit_price": "2.95"},
        "21135": {"name": "GUEST MUG", "unit_price": "1.10"},  # a guest sale is a sale
    }


def test_cli_import_prints_a_summary(redis_client, redis_url, tmp_path):
    from service.cli import cli

    path = write_fixture(tmp_path)
    env = {"REDIS_URL": redis_url, "RAPPORT_DATA_DIR": str(tmp_path / "var")}
    args = ["import", str(path), "--layout", "online-retail", "--no-progress", "--json"]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["orders_created"] == 4 and report["rows_read"] == 13
    again = json.loads(CliRunner().invoke(cli, args, env=env, catch_exceptions=False).stdout)
    assert again["orders_unchanged"] == 4 and again["orders_created"] == 0
    bad = CliRunner().invoke(cli, ["import", str(path)], env=env)
    assert bad.exit_code != 0 and "exactly one of --layout and --mapping" in bad.output


def test_load_demo_on_an_empty_store_only(redis_client):
    profiles, activity = stores(redis_client)
    summary = load_demo(profiles, activity)
    assert summary is not None
    assert summary.customers_created == 2400  # every row of customers.csv is valid
    assert summary.orders_created > 4000
    assert summary.orders_rejected == {}
    assert set(summary.skipped) <= {"cancellation", "non_product_code", "price_not_positive"}
    someone = next(iter(activity.iter_all_purchases()))[0]
    doc = profiles.get(someone).doc
    assert doc["emails"][0].endswith(("example.com", "example.net", "example.org"))
    assert doc["locale"] and doc["timezone"] and doc["first_name"]
    assert load_demo(profiles, activity) is None


def test_services_coded_like_products_and_lower_case_codes():
    """The product rule (import_mapping.retail_product_code): carriage, packing, image and voucher
    codes are not products though they start with a digit; ``85123a`` is ``85123A``."""
    from profiles.import_mapping import RETAIL_SERVICE_CODES, retail_product_code
    from profiles.importer import Summary, parse_orders

    assert RETAIL_SERVICE_CODES == {"23444", "23574", "23702", "22016"}
    for code in ("POST", "D", "M", "DOT", "C2", "BANK CHARGES", "AMAZONFEE", "gift_0001_20",
                 "DCGS0003", "", " ", "23444", "23574", "23702", "22016"):  # fmt: skip
        assert retail_product_code(code) is None, code
    assert retail_product_code(" 85123a ") == "85123A" and retail_product_code("22138") == "22138"
    base = {"InvoiceDate": "2011-05-01 10:00:00", "CustomerID": "12346.0", "Country": "France"}
    rows = [
        {**base, "InvoiceNo": "1", "StockCode": "85123a", "Description": "HEART",
         "Quantity": "2", "UnitPrice": "2.55"},
        {**base, "InvoiceNo": "1", "StockCode": "23444", "Description": "Next Day Carriage",
         "Quantity": "1", "UnitPrice": "15.0"},
        {**base, "InvoiceNo": "2", "StockCode": "23574", "Description": "PACKING CHARGE",
         "Quantity": "1", "UnitPrice": "4.0"},
    ]  # fmt: skip
    summary = Summary()
    orders, _ = parse_orders(rows, ONLINE_RETAIL, summary)
    assert summary.skipped == {"non_product_code": 2}
    assert [line[0] for order in orders.values() for line in order.lines] == ["85123A"]
    products = catalog_products(rows)
    assert products == {"85123A": {"name": "HEART", "unit_price": "2.55"}}
    # training from the CSV (rapport train --from-csv) keeps the same rows
    from recommend.model.sources import load_online_retail

    data = load_online_retail(rows)
    assert [ln.product_id for ln in data.lines] == ["85123A"] and set(data.products) == {"85123A"}
