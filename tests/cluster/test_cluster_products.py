"""tests/api/test_products.py (catalog products) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_products", globals())
