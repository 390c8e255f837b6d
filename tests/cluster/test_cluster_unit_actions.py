"""tests/unit/test_actions.py (actions and contact policy) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_actions", globals())
