"""tests/api/test_events_batch.py (a batch equals its items one by one) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_events_batch", globals())
