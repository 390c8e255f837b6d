"""tests/unit/test_ingest_batch.py (resolve_many, record_events_many) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_ingest_batch", globals())
