"""tests/api/test_profiles.py (profiles, identities, erase) on the Redis Cluster."""

from tests.cluster.reuse import reuse

reuse("tests.api.test_profiles", globals())
