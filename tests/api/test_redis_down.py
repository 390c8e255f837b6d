"""Redis unreachable: 503 problem + Retry-After, then recovery without a restart."""

from __future__ import annotations

import redis

from service import create_app
from service.redis_server import RedisServer


def test_redis_down_gives_503_then_recovers(tmp_path):
    server = RedisServer(tmp_path / "r").start()
    try:
        app = create_app(
            {
                "redis_url": server.url,
                "data_dir": tmp_path / "var",
                "testing": True,
                "redis_timeout": 0.5,
                "retry_after": 7,
                "auth_cache_seconds": 0,
            }
        )  # every request verifies its key
        client = app.test_client()
        _, token = app.extensions["rapport"].api_keys.create("t", ["admin"])
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/admin/keys", headers=headers).status_code == 200

        server.stop()
        resp = client.get("/v1/admin/keys", headers=headers)
        assert resp.status_code == 503
        assert resp.content_type == "application/problem+json"
        assert resp.headers["Retry-After"] == "7"
        assert resp.json["type"] == "urn:rapport:problem:store-unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json["checks"]["redis"].startswith("unavailable")
        assert client.get("/healthz").status_code == 200

        server.start()  # same port, empty data (not persistent): the key is gone, Redis is back
        assert client.get("/readyz").status_code == 200
        assert client.get("/v1/admin/keys", headers=headers).status_code == 401
    finally:
        server.stop()


def test_timeout_setting_reaches_the_client(tmp_path):
    app = create_app(
        {"redis_url": "redis://127.0.0.1:1/0", "data_dir": tmp_path, "redis_timeout": 0.25}
    )
    pool = app.extensions["rapport"].redis.connection_pool
    assert pool.connection_kwargs["socket_timeout"] == 0.25
    assert isinstance(app.extensions["rapport"].redis, redis.Redis)
