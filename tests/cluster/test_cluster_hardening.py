"""tests/api/test_hardening.py on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_hardening", globals())
