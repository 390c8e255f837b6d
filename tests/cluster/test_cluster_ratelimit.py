"""tests/api/test_ratelimit.py on the Redis Cluster (one script call over a caller's windows,
which share a slot)."""

from tests.cluster.reuse import reuse

reuse(
    "tests.api.test_ratelimit",
    globals(),
    exclude=(
        "test_redis_down_serves_rather_than_blocks",
        "test_bad_notation_is_a_config_error",
        "test_off_means_no_limits",
    ),
)
