"""Redis unreachable: recommendations come from the worker's in-memory popular list, a key
verified before the outage keeps working, writes answer 503 + Retry-After, and it all
recovers without a restart."""

from __future__ import annotations

import time

from service import create_app
from service.redis_server import RedisServer
from tests.recsys import install_model, load_catalog


def _app(server: RedisServer, tmp_path, **config):
    return create_app(
        {
            "redis_url": server.url,
            "data_dir": tmp_path / "var",
            "testing": True,
            "redis_timeout": 0.5,
            "retry_after": 3,
            **config,
        }
    )


def test_recommendations_served_from_memory_while_redis_is_down(tmp_path):
    server = RedisServer(
        tmp_path / "r", persistent=True, extra_args=("--appendfsync", "always")
    ).start()
    try:
        app = _app(server, tmp_path, auth_cache_seconds=0.05)
        st = app.extensions["rapport"]
        load_catalog(app)
        st.redis.zadd(st.keys.popular_products(), {"P105": 9, "P003": 8, "P201": 7})
        install_model(app, "v1")
        holder = app.extensions["rapport"].models
        holder.refresh_popular_snapshot()
        _, token = st.api_keys.create("t", ["admin"])
        headers = {"Authorization": f"Bearer {token}"}
        client = app.test_client()
        url = "/v1/profiles/C001/recommendations?limit=5"
        live = client.get(url, headers=headers)
        assert live.status_code == 200 and live.json["model_version"] == "v1"
        assert "Rapport-Degraded" not in live.headers

        server.kill()
        started = time.monotonic()
        down = client.get(url, headers=headers)  # the key's cache entry has expired: stale use
        assert down.status_code == 200, down.json
        assert down.headers["Rapport-Degraded"] == "store-unavailable"
        assert down.json["basis"] == "popularity" and down.json["model_version"] is None
        assert [i["product_id"] for i in down.json["items"]] == ["P105", "P003", "P201"]
        assert down.json["items"][0]["name"] == "KITCHEN ITEM 5"  # documents held in memory
        filtered = client.get(url + "&category=bags", headers=headers)
        assert [i["product_id"] for i in filtered.json["items"]] == ["P201"]
        popular = client.get("/v1/recommendations/popular?limit=2", headers=headers)
        assert popular.status_code == 200 and popular.headers["Rapport-Degraded"]
        assert [i["product_id"] for i in popular.json["items"]] == ["P105", "P003"]
        assert popular.json["model_version"] is None

        write = client.post(
            "/v1/profiles", json={"first_name": "Ann"}, headers=headers
        )  # writes cannot be served: 503 + Retry-After
        assert write.status_code == 503 and write.headers["Retry-After"] == "3"
        stranger = client.get(url, headers={"Authorization": "Bearer rpk_00aa_secret"})
        assert stranger.status_code == 503  # a key never verified cannot be checked now
        # the first failure waits at most the timeout (0.5 s), the rest fail at once
        assert time.monotonic() - started < 0.5 + 4 * 0.25

        server.start()  # same port: recovers by itself
        again = client.get(url, headers=headers)
        assert again.status_code == 200 and again.json["model_version"] == "v1"
        assert "Rapport-Degraded" not in again.headers
    finally:
        server.stop()


def test_no_copy_yet_means_503(tmp_path):
    server = RedisServer(tmp_path / "r").start()
    try:
        app = _app(server, tmp_path)
        _, token = app.extensions["rapport"].api_keys.create("t", ["admin"])
        headers = {"Authorization": f"Bearer {token}"}
        client = app.test_client()
        assert client.get("/v1/admin/keys", headers=headers).status_code == 200
        app.extensions["rapport"].models._snapshot = None  # nothing copied into this worker
        server.kill()
        resp = client.get("/v1/profiles/C001/recommendations", headers=headers)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "3"
    finally:
        server.stop()
