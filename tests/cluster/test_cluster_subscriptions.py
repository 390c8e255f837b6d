"""tests/api/test_subscriptions.py (webhook subscriptions admin) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_subscriptions", globals())
