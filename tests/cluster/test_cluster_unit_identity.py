"""tests/unit/test_identity.py (identity claims in their own slots) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_identity", globals())
