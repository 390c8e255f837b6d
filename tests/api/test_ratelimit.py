"""The per-key limiter (service/ratelimit.py): every window in one script call, headers, the
per-process block of a caller over its limit, and the configuration's notation."""

from __future__ import annotations

import pytest
import redis

from service import create_app
from service.config import Config, ConfigError
from service.ratelimit import RateLimiter, parse_limits
from tests.conftest import ApiClient


def _api(app, *scopes):
    return ApiClient(app.test_client(), app.extensions["rapport"].api_keys.create("k", scopes)[1])


def test_headers_name_the_tightest_window(app_config, redis_client):
    app = create_app({**app_config, "rate_limit": "100 per minute; 3 per hour"}, redis=redis_client)
    api = _api(app, "recommend:read")
    first = api.get("/v1/products")
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "3"
    assert first.headers["X-RateLimit-Remaining"] == "2"
    assert int(first.headers["X-RateLimit-Reset"]) > 0
    assert "Retry-After" not in first.headers
    api.get("/v1/products")
    api.get("/v1/products")
    over = api.get("/v1/products")
    assert over.status_code == 429
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert 3000 < int(over.headers["Retry-After"]) <= 3600  # the hour window refused it
    assert "3 per 1 hour" in over.json["detail"]


def test_one_limit_per_key_across_the_whole_api(app_config, redis_client):
    app = create_app({**app_config, "rate_limit": "4 per minute"}, redis=redis_client)
    api = _api(app, "admin")
    cid = api.post("/v1/profiles", json={"first_name": "Ann"}).json["id"]
    codes = [
        api.get(f"/v1/profiles/{cid}").status_code,
        api.get("/v1/products").status_code,
        api.get(f"/v1/profiles/{cid}/purchases").status_code,
        api.get("/v1/products").status_code,
    ]
    assert codes == [200, 200, 200, 429]  # the POST above was the first of the four


def test_windows_of_a_caller_share_one_slot(redis_client):
    limiter = RateLimiter(redis_client, "rp:ratelimit", parse_limits("5/second; 9/minute"))
    keys = limiter.keys("key:abc")
    assert len(keys) == 2
    slots = {redis.cluster.key_slot(k.encode()) for k in keys}
    assert len(slots) == 1
    # a caller id with braces cannot break out of its hash tag
    assert all("{key:a(b)c}" in k for k in limiter.keys("key:a{b}c"))


def test_a_caller_over_its_limit_is_refused_without_asking_redis(redis_client):
    limiter = RateLimiter(redis_client, "rp:ratelimit", parse_limits("2 per minute"))
    assert [limiter.hit("key:x").allowed for _ in range(3)] == [True, True, False]
    (counter,) = limiter.keys("key:x")
    assert redis_client.get(counter) == "3"
    for _ in range(50):
        verdict = limiter.hit("key:x")
        assert not verdict.allowed and verdict.remaining == 0 and verdict.retry_after >= 1
    assert redis_client.get(counter) == "3"  # the flood cost Redis nothing
    assert limiter.hit("key:other").allowed  # other callers are counted as before


def test_the_block_ends_with_the_window(redis_client):
    now = [1_000_000.0]
    limiter = RateLimiter(
        redis_client, "rp:ratelimit", parse_limits("1 per second"), clock=lambda: now[0]
    )
    assert limiter.hit("key:y").allowed
    assert not limiter.hit("key:y").allowed
    redis_client.delete(*limiter.keys("key:y"))  # the window has ended in Redis ...
    now[0] += 2  # ... and for the process
    assert limiter.hit("key:y").allowed


def test_redis_down_serves_rather_than_blocks(app_config):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    limiter = RateLimiter(dead, "rp:ratelimit", parse_limits("1 per minute"))
    assert limiter.hit("key:z") is None


@pytest.mark.parametrize("text", ["garbage", "5 per fortnight", "per minute"])
def test_bad_notation_is_a_config_error(text):
    with pytest.raises(ConfigError, match="RAPPORT_RATE_LIMIT"):
        Config.from_env({}, rate_limit=text)


@pytest.mark.parametrize("text", ["off", "", "OFF"])
def test_off_means_no_limits(text):
    assert parse_limits(text) == []
