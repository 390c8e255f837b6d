"""tests/api/test_errors.py (problem+json errors) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_errors", globals())
