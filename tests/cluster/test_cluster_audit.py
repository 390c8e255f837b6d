"""tests/api/test_audit.py on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_audit", globals())
