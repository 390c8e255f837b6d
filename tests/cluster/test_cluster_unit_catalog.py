"""tests/unit/test_catalog.py (catalog store Lua scripts) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_catalog", globals())
