"""tests/api/test_parse_errors.py on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_parse_errors", globals())
