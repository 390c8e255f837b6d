"""tests/api/test_events.py (batch events, message-id de-duplication) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_events", globals())
