"""tests/api/test_merge.py (merging profiles and identity claims) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_merge", globals())
