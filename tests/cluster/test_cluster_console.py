"""tests/api/test_console.py (console pages, session route, headers) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_console", globals())
