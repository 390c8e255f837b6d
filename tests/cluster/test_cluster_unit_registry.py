"""tests/unit/test_registry.py (model registry) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_registry", globals())
