"""tests/api/test_contract_exact.py (issue 16: exact errors, spec in step) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_contract_exact", globals())
