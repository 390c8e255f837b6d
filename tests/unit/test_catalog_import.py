import pytest

from profiles.importer import catalog_products
from recommend.catalog.importing import load_catalog, retail_products
from recommend.catalog.products import Catalog
from recommend.errors import ProductNotFound

ROWS = [
    {
        "InvoiceNo": "1",
        "StockCode": "85123A",
        "Description": "WHITE HANGING HEART T-LIGHT HOLDER",
        "Quantity": "6",
        "InvoiceDate": "2010-12-01 08:26:00",
        "UnitPrice": "2.55",
        "CustomerID": "17850.0",
        "Country": "United Kingdom",
    },
    {
        "InvoiceNo": "1",
        "StockCode": "POST",
        "Description": "POSTAGE",
        "Quantity": "1",
        "InvoiceDate": "2010-12-01 08:26:00",
        "UnitPrice": "18.0",
        "CustomerID": "17850.0",
        "Country": "United Kingdom",
    },
    {
        "InvoiceNo": "2",
        "StockCode": "22138",
        "Description": "BAKING SET 9 PIECE RETROSPOT ",
        "Quantity": "3",
        "InvoiceDate": "2010-12-02 09:00:00",
        "UnitPrice": "4.95",
        "CustomerID": "12680.0",
        "Country": "France",
    },
]


def test_online_retail_rows_become_catalog_products(redis_client):
    from profiles.keys import Keys

    catalog = Catalog(redis_client, Keys("rp"))
    products = retail_products(catalog_products(ROWS))
    assert [p["product_id"] for p in products] == ["22138", "85123A"]  # POST is not a product
    assert load_catalog(catalog, products) == {"created": 2}
    heart = catalog.get("85123A")
    assert heart["name"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert heart["price"] == "2.55" and heart["currency"] == "GBP"
    assert heart["category"] != "other"  # derived from the description
    # a second load changes nothing but the status
    assert load_catalog(catalog, products) == {"updated": 2}
    again = catalog.get("85123A")
    assert {k: v for k, v in again.items() if k != "updated_at"} == {
        k: v for k, v in heart.items() if k != "updated_at"
    }


def test_adjustments_services_and_case_variants_never_enter_the_catalog(redis_client):
    """docs/profiles.md "What becomes a product": only sales of product codes; a stock
    adjustment (price 0), a service coded like a product and a cancellation create nothing, and
    a lower-case variant of a code is the same product."""
    from profiles.keys import Keys

    base = {"InvoiceDate": "2011-09-16 15:58:00", "Country": "United Kingdom"}
    rows = [
        {**base, "InvoiceNo": "567152", "StockCode": "35598C", "Description": "found",
         "Quantity": "3", "UnitPrice": "0.0", "CustomerID": ""},
        {**base, "InvoiceNo": "576077", "StockCode": "35598c", "Description":
         "WHITE CHRISTMAS TREE 60CM", "Quantity": "1", "UnitPrice": "2.95",
         "CustomerID": "16720.0"},
        {**base, "InvoiceNo": "5", "StockCode": "23444", "Description": "Next Day Carriage",
         "Quantity": "1", "UnitPrice": "15.0", "CustomerID": "16720.0"},
        {**base, "InvoiceNo": "6", "StockCode": "22016", "Description":
         "Dotcomgiftshop Gift Voucher £100.00", "Quantity": "1", "UnitPrice": "83.33",
         "CustomerID": ""},
        {**base, "InvoiceNo": "C7", "StockCode": "21000", "Description": "MUG", "Quantity": "-1",
         "UnitPrice": "1.0", "CustomerID": "16720.0"},
        {**base, "InvoiceNo": "8", "StockCode": "BANK CHARGES", "Description": "Bank Charges",
         "Quantity": "1", "UnitPrice": "15.0", "CustomerID": "16720.0"},
    ]  # fmt: skip
    catalog = Catalog(redis_client, Keys("rp"))
    products = retail_products(catalog_products(rows))
    assert [p["product_id"] for p in products] == ["35598C"]
    assert load_catalog(catalog, products) == {"created": 1}
    assert catalog.get("35598C")["name"] == "WHITE CHRISTMAS TREE 60CM"
    for absent in ("23444", "22016", "21000", "BANK CHARGES", "35598c"):
        with pytest.raises(ProductNotFound):
            catalog.get(absent)
