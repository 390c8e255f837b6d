"""tests/api/test_ratelimit.py on the Redis Cluster (one script call over a caller's windows,
which share a slot)."""

from tests.cluster.reuse import reuse

reuse(
    "tests.api.test_ratelimit",
    globals(),
    exclude=("test_a_block_ends_with_its_window", "test_bad_notation_is_a_config_error"),
)
