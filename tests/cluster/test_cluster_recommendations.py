"""tests/api/test_recommendations.py (recommendations) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_recommendations", globals())
