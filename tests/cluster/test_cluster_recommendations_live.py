"""tests/api/test_recommendations_live.py (fold-in, live counters) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_recommendations_live", globals())
