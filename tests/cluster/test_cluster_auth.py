"""tests/api/test_auth.py (API keys, 401/403) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_auth", globals())
