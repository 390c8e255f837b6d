"""tests/api/test_purchases.py (idempotent purchases, listing) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_purchases", globals())
