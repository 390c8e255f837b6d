"""tests/api/test_webhook_delivery.py (signed delivery, ordering, retries, dead letters, 410,
shared leases, a killed worker) on the Redis Cluster: one outbox stream per slot."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_webhook_delivery", globals())
