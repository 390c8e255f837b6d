"""tests/unit/test_greetings.py (greeting templates) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_greetings", globals())
