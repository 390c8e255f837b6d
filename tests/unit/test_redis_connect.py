"""REDIS_URL forms: one server, Sentinel, Cluster (no server needed: clients connect lazily)."""

from __future__ import annotations

import pytest
import redis

from service import create_app
from service.config import Config, ConfigError
from service.redis_connect import (
    LazyRedisCluster,
    RedisUrlError,
    connect,
    parse_redis_url,
    redact,
)


@pytest.mark.parametrize(
    "url", ["redis://h:1/2", "rediss://u:p@h:6380/0", "unix:///tmp/r.sock?db=3"]
)
def test_plain_urls_are_one_server(url):
    assert parse_redis_url(url).mode == "single"
    client = connect(url, timeout=0.5)
    assert isinstance(client, redis.Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["decode_responses"] is True
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.5


def test_cluster_url_lists_startup_nodes():
    target = parse_redis_url("redis+cluster://:s%40cret@10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002")
    assert target.mode == "cluster"
    assert target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002))
    assert target.password == "s@cret" and target.username is None
    assert parse_redis_url("rediss+cluster://h:1").ssl is True


def test_sentinel_url_names_service_and_db():
    target = parse_redis_url(
        "redis+sentinel://app:pw@s1:26379,s2:26380/mymaster/2?sentinel_password=x"
    )
    assert target.mode == "sentinel"
    assert target.nodes == (("s1", 26379), ("s2", 26380))
    assert (target.service_name, target.db) == ("mymaster", 2)
    assert (target.username, target.password) == ("app", "pw")
    assert target.options == {"sentinel_password": "x"}
    assert parse_redis_url("redis+sentinel://s1:26379/mymaster").db == 0


def test_sentinel_client_is_master_for_the_service():
    client = connect("redis+sentinel://127.0.0.1:1/mymaster/4", timeout=0.3)
    pool = client.connection_pool
    assert pool.service_name == "mymaster" and pool.is_master
    kwargs = pool.connection_kwargs
    assert kwargs["db"] == 4 and kwargs["decode_responses"] is True
    assert kwargs["socket_timeout"] == 0.3
    assert kwargs["retry"].get_retries() >= 3  # rides out a failover


@pytest.mark.parametrize(
    "url, message",
    [
        ("redis+cluster://", "at least one host:port"),
        ("redis+cluster://h", "host:port"),
        ("redis+cluster://h:99999", "host:port"),
        ("redis+cluster://h:1/0", "no path"),
        ("redis+sentinel://h:1", "service_name"),
        ("redis+sentinel://h:1/svc/x", "must be a number"),
        ("memcached://h:1", "unknown Redis URL scheme"),
        ("localhost:6379", "not a URL"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, message):
    with pytest.raises(RedisUrlError, match=message):
        parse_redis_url(url)


def test_bad_url_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Config.from_env({"REDIS_URL": "redis+sentinel://h:1"})
    with pytest.raises(ConfigError, match="REDIS_CLUSTER_NODES"):
        Config.from_env({"REDIS_CLUSTER_NODES": "nohostport"})


def test_cluster_nodes_setting_becomes_a_cluster_url(tmp_path):
    cfg = Config.from_env({"REDIS_CLUSTER_NODES": "h1:7000, h2:7001"})
    assert cfg.effective_redis_url() == "redis+cluster://h1:7000,h2:7001"
    both = Config.from_env({"REDIS_CLUSTER_NODES": "h1:7000", "REDIS_URL": "redis://x:1/0"})
    assert both.effective_redis_url() == "redis://x:1/0"
    assert Config.from_env({}).effective_redis_url().startswith("unix://")


def test_create_app_builds_the_client_from_the_url(tmp_path):
    app = create_app({"redis_url": "redis+sentinel://127.0.0.1:1/svc", "data_dir": tmp_path})
    assert app.extensions["rapport"].redis.connection_pool.service_name == "svc"


def test_unreachable_cluster_does_not_stop_the_app_from_starting(tmp_path):
    app = create_app(
        {"redis_url": "redis+cluster://127.0.0.1:1", "data_dir": tmp_path, "redis_timeout": 0.2}
    )
    client = app.extensions["rapport"].redis
    assert isinstance(client, LazyRedisCluster)
    assert client._client is None  # stores registered their scripts without connecting
    with pytest.raises(redis.ConnectionError, match="cannot reach the Redis Cluster"):
        client.ping()
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["redis"] == "unavailable: ConnectionError"


def test_redact_hides_passwords_only():
    assert redact("redis://u:secret@h:1/0") == "redis://u:***@h:1/0"
    assert redact("redis+sentinel://:pw@a:1,b:2/m") == "redis+sentinel://:***@a:1,b:2/m"
    assert redact("redis://h:1/0") == "redis://h:1/0"
