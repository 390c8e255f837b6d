from profiles.importer import catalog_products
from recommend.catalog.importing import load_catalog, retail_products
from recommend.catalog.products import Catalog

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
