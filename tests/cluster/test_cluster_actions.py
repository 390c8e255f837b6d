"""tests/api/test_actions.py (next-best actions, feedback, contact policy) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_actions", globals())
