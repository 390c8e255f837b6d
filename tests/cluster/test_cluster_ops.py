"""tests/api/test_ops.py (readiness, metrics and the spec) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_ops", globals(), exclude=("test_checked_in_spec_matches_the_code",))
