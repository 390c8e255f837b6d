"""tests/api/test_actions_segment_report.py (performance per segment) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_actions_segment_report", globals())
