"""The real ``rapport serve`` (gunicorn) on the Redis Cluster, configured the ops way:
``REDIS_CLUSTER_NODES`` with one node (the client learns the others)."""

from __future__ import annotations

import pytest
import requests

from profiles.keys import Keys
from service.auth import ApiKeyStore
from tests.conftest import start_live_server, stop_live_server

pytestmark = pytest.mark.e2e


def test_serve_on_the_cluster_from_cluster_nodes(redis_cluster, redis_client, tmp_path):
    host, port = redis_cluster.nodes[1]
    env = {"REDIS_URL": "", "REDIS_CLUSTER_NODES": f"{host}:{port}"}
    _, token = ApiKeyStore(redis_client, Keys("rp")).create("ops", ["admin"])
    server = start_live_server("", tmp_path / "live", workers=1, env=env)
    try:
        assert requests.get(server.url("/readyz"), timeout=5).status_code == 200
        listed = requests.get(
            server.url("/v1/admin/keys"), headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert listed.status_code == 200
        assert [k["name"] for k in listed.json()["items"]] == ["ops"]
    finally:
        stop_live_server(server)
    # the key is on the cluster (and only there): a slot on one of the masters holds it
    assert sum(n.redis_connection.dbsize() for n in redis_client.get_primaries()) >= 2
