"""tests/unit/test_importer.py on the Redis Cluster (purchases one script call each there, since
a cluster pipeline cannot run scripts). The demo load is left out: same path, 2,400 customers."""

from tests.cluster.reuse import reuse

reuse(
    "tests.unit.test_importer",
    globals(),
    exclude=("test_load_demo_on_an_empty_store_only", "test_catalog_products_hook"),
)
