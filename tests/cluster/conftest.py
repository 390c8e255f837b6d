"""Every test under ``tests/cluster/`` runs against a real local 3-master Redis Cluster.

The session starts the cluster once (``redis-server --cluster-enabled yes`` ×3 on free ports,
joined with ``redis-cli --cluster create``); ``redis_url`` and ``redis_client`` are overridden
here, so the ``app``/``client``/``api`` fixtures of ``tests/conftest.py`` build the service on
the cluster through its ``redis+cluster://`` URL. Each test starts from empty masters.
"""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster

from service.redis_connect import connect
from tests.cluster.harness import LocalCluster


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_url(redis_cluster) -> str:
    return redis_cluster.url


@pytest.fixture(scope="session")
def cluster_client(redis_url):
    """One cluster client for the session (building one costs a slot-map round trip)."""
    client = connect(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_client(cluster_client):
    """A :class:`redis.cluster.RedisCluster`, built the way the service builds its client,
    on empty masters."""
    cluster_client.flushall(target_nodes=RedisCluster.PRIMARIES)
    return cluster_client
