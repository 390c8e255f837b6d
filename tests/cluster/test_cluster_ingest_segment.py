"""tests/api/test_ingest_segment.py on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_ingest_segment", globals())
