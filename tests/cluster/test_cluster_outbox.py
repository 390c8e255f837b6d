"""tests/api/test_outbox.py (change events appended in the slot of the write) on the Redis
Cluster: one outbox stream per slot, so every script stays on one slot."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_outbox", globals())
