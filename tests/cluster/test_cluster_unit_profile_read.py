"""tests/unit/test_profile_read.py (the one-pipeline profile read) on the Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_profile_read", globals())
