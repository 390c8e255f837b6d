"""tests/unit/test_logistic.py (the logistic model's update script and state) on the Redis
Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_logistic", globals(), exclude=("test_no_weights_means_the_global_rate",))
