"""tests/unit/test_adaptive.py (learned propensity, groups, counters) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse(
    "tests.unit.test_adaptive",
    globals(),
    exclude=(
        "test_back_off_with_few_observations",
        "test_control_group_is_stable_and_near_its_share",
        "test_wilson_intervals_on_known_values",
        "test_segments_are_bounded",
    ),
)
