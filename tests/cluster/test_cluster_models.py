"""tests/api/test_models.py (model versions, activation) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_models", globals())
