"""tests/api/test_erased_answers.py (404 for an erased customer) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_erased_answers", globals())
