"""tests/api/test_greetings.py (greetings and template admin) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_greetings", globals())
