"""tests/api/test_export_stream.py (the streamed export) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_export_stream", globals())
