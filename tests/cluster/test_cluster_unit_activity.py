"""tests/unit/test_activity.py (activity Lua scripts, paging, absorb/remove) on the Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_activity", globals())
