"""tests/unit/test_contact_merge.py (contact history on merge, unmerge, resume, erasure) on the
Cluster: the source's and the target's keys are in different slots."""

from tests.cluster.reuse import reuse

reuse("tests.unit.test_contact_merge", globals())
