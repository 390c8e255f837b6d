"""tests/api/test_pii_corpus.py (the masking corpus through every endpoint) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_pii_corpus", globals())
