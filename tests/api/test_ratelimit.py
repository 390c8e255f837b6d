"""The rate limiter's Redis work (service/ratelimit.py): every window of a caller in one script
call, headers from its reply, one budget per key across /v1, and a caller over its limit refused
by the worker without Redis until the window ends."""

from __future__ import annotations

import pytest
import redis

from profiles.keys import Keys
from service import create_app
from service.config import Config, ConfigError
from service.ratelimit import Blocklist
from tests.conftest import ApiClient

KEYS = Keys()
COUNTERS = f"{KEYS.rate_limit_prefix()}*"  # SCAN MATCH: every rate-limit counter


def _api(app, *scopes):
    return ApiClient(app.test_client(), app.extensions["rapport"].api_keys.create("k", scopes)[1])


class RoundTrips:
    """Counts the commands and pipelines sent on one client's connections."""

    def __init__(self, monkeypatch, client):
        self.sent: list[bytes] = []
        pool = client.connection_pool
        original = pool.get_connection

        def get_connection(*args, **kwargs):
            conn = original(*args, **kwargs)
            if not getattr(conn, "_counted", False):
                send = conn.send_packed_command

                def counted(command, check_health=True):
                    raw = command if isinstance(command, bytes | bytearray) else b"".join(command)
                    self.sent.append(bytes(raw))
                    return send(command, check_health)

                conn.send_packed_command = counted
                conn._counted = True
            return conn

        monkeypatch.setattr(pool, "get_connection", get_connection)

    def limiter(self) -> int:
        return sum(b"ratelimit" in raw for raw in self.sent)


def test_every_window_is_counted_in_one_round_trip(app_config, redis_client, monkeypatch):
    if type(redis_client) is not redis.Redis:
        pytest.skip("counts the connections of a single-server client")
    app = create_app({**app_config, "rate_limit": "100 per minute; 3 per hour"}, redis=redis_client)
    api = _api(app, "recommend:read")
    api.get("/v1/products")  # loads the scripts
    trips = RoundTrips(monkeypatch, redis_client)
    resp = api.get("/v1/products")
    assert resp.status_code == 200
    assert trips.limiter() == 1  # limits' own storage: 2 windows x (hit, GET, TTL)
    # flask-limiter's choice while nothing is breached: the first window in its order
    assert resp.headers["X-RateLimit-Limit"] == "100"
    assert resp.headers["X-RateLimit-Remaining"] == "98"
    assert int(resp.headers["X-RateLimit-Reset"]) > 0
    counters = sorted(redis_client.scan_iter(COUNTERS))
    assert len(counters) == 2
    assert {redis_client.get(c) for c in counters} == {"2"}


def test_the_tightest_window_refuses_with_its_own_retry_after(app_config, redis_client):
    app = create_app({**app_config, "rate_limit": "100 per minute; 3 per hour"}, redis=redis_client)
    api = _api(app, "recommend:read")
    assert [api.get("/v1/products").status_code for _ in range(3)] == [200] * 3
    over = api.get("/v1/products")
    assert over.status_code == 429
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert 3000 < int(over.headers["Retry-After"]) <= 3601  # the hour window refused it
    assert "3 per 1 hour" in over.json["detail"]


def test_one_budget_per_key_across_the_whole_api(app_config, redis_client):
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


def test_a_caller_over_its_limit_is_refused_without_asking_redis(app_config, redis_client):
    app = create_app({**app_config, "rate_limit": "2 per minute"}, redis=redis_client)
    api = _api(app, "recommend:read")
    other = _api(app, "recommend:read")
    assert [api.get("/v1/products").status_code for _ in range(3)] == [200, 200, 429]
    (counter,) = [c for c in redis_client.scan_iter(COUNTERS)]
    assert redis_client.get(counter) == "3"
    for _ in range(30):
        resp = api.get("/v1/products")
        assert resp.status_code == 429
        assert resp.mimetype == "application/problem+json"
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert 0 < int(resp.headers["Retry-After"]) <= 60
    assert redis_client.get(counter) == "3"  # the flood cost Redis nothing
    assert other.get("/v1/products").status_code == 200  # other keys are counted as before


def test_the_windows_of_a_caller_share_one_cluster_slot(app_config, redis_client):
    app = create_app(
        {**app_config, "rate_limit": "50 per second; 60 per minute"}, redis=redis_client
    )
    api = _api(app, "recommend:read")
    assert api.get("/v1/products").status_code == 200
    counters = list(redis_client.scan_iter(COUNTERS))
    assert len(counters) == 2
    assert len({redis.cluster.key_slot(c.encode()) for c in counters}) == 1


def test_a_block_ends_with_its_window():
    now = [1000.0]
    blocks = Blocklist(clock=lambda: now[0])
    blocks.block("{key:a}", 1002.5, 5, "5 per 1 minute")
    assert blocks.check("{key:a}") == (1002.5, 5, "5 per 1 minute")
    assert blocks.check("{key:b}") is None
    now[0] = 1002.6
    assert blocks.check("{key:a}") is None


@pytest.mark.parametrize("text", ["garbage", "5 per fortnight", "per minute"])
def test_bad_notation_is_a_config_error(text):
    with pytest.raises(ConfigError, match="RAPPORT_RATE_LIMIT"):
        Config.from_env({}, rate_limit=text)


def test_a_blocked_caller_gets_the_full_429_before_flask(app_config, redis_client):
    app = create_app(
        {**app_config, "rate_limit": "1 per minute", "cors_origins": "https://desk.example"},
        redis=redis_client,
    )
    api = _api(app, "recommend:read")
    assert api.get("/v1/products").status_code == 200
    assert api.get("/v1/products").status_code == 429  # the limiter refuses: now blocked
    headers = {"X-Request-ID": "req-42", "Origin": "https://desk.example"}
    blocked = api.get("/v1/no-such-route", headers=headers)  # refused before routing: not 404
    assert blocked.status_code == 429
    assert blocked.mimetype == "application/problem+json"
    assert blocked.json["type"] == "urn:rapport:problem:rate-limited"
    assert blocked.json["request_id"] == "req-42" == blocked.headers["X-Request-ID"]
    assert "1 per 1 minute" in blocked.json["detail"]
    assert blocked.headers["Access-Control-Allow-Origin"] == "https://desk.example"
    assert blocked.headers["Cache-Control"] == "no-store"
    assert blocked.headers["X-RateLimit-Limit"] == "1"
    assert 0 < int(blocked.headers["Retry-After"]) <= 60
    assert app.test_client().get("/healthz").status_code == 200  # outside /v1: never blocked


def test_blocks_follow_the_credential_not_the_address(app_config, redis_client):
    app = create_app({**app_config, "rate_limit": "2 per minute"}, redis=redis_client)
    client = app.test_client()
    keyed = _api(app, "recommend:read")
    anonymous = [client.get("/v1/products").status_code for _ in range(3)]
    assert anonymous == [401, 401, 429]  # no key: limited (and now blocked) by address
    assert keyed.get("/v1/products").status_code == 200  # same address, its own key
    wrong = {"Authorization": "Bearer rpk_0000_wrong"}
    assert client.get("/v1/products", headers=wrong).status_code == 429  # by address too
