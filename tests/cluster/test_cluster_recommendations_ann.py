"""tests/api/test_recommendations_ann.py (recommendations from the index) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_recommendations_ann", globals())
