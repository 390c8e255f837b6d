"""tests/api/test_pii.py on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_pii", globals())
