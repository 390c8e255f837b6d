"""tests/api/test_recommendations_clock.py (evaluation clock, filled buy_again) on the Redis
Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_recommendations_clock", globals())
