"""The real `rapport serve` (gunicorn, 2 workers) and `rapport demo` over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from service.redis_server import free_port
from tests.conftest import ROOT, stop_process_group, wait_for, wait_until

pytestmark = pytest.mark.e2e


def _access_lines(logs: str) -> list[dict]:
    """gunicorn's access log lines (JSON) in ``logs``; a line still being written is skipped."""
    out = []
    for line in logs.splitlines():
        if line.startswith("{") and '"gunicorn.access"' in line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def test_serve_authenticates_and_never_logs_the_key(live_server, redis_client, redis_url, tmp_path):
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "keys",
            "create",
            "--name",
            "e2e",
            "--scopes",
            "admin",
        ],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip()
    auth = {"Authorization": f"Bearer {token}", "X-Request-ID": "e2e-req-1"}

    assert requests.get(live_server.url("/v1/admin/keys"), timeout=5).status_code == 401
    resp = requests.get(live_server.url("/v1/admin/keys"), headers=auth, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["X-Request-ID"] == "e2e-req-1"
    for _ in range(20):  # spread over both workers
        requests.get(live_server.url("/healthz"), timeout=5)

    bad = requests.post(
        live_server.url("/v1/admin/keys"),
        data="{",
        timeout=5,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    assert bad.headers["Content-Type"] == "application/problem+json"

    # Prometheus aggregates every worker's samples
    metrics = requests.get(live_server.url("/metrics"), timeout=5).text
    match = re.search(
        r'rapport_http_requests_total\{method="GET",route="/healthz",'
        r'status="200"\} (\d+)',
        metrics,
    )
    assert match and float(match.group(1)) >= 20

    def keyed_requests_logged() -> bool:
        """gunicorn writes an access line after its response: both requests with the key."""
        access = _access_lines(live_server.logs())
        read = any(a["request_id"] == "e2e-req-1" and a["status"] == "200" for a in access)
        refused = any(a["method"] == "POST" and a["status"] == "400" for a in access)
        return read and refused

    wait_until(keyed_requests_logged, what="the access lines of the requests with the key")
    logs = live_server.logs()
    assert token not in logs and token.split("_", 2)[2] not in logs
    assert not any("Authorization" in line or "Bearer" in line for line in logs.splitlines())


def test_chunked_oversized_body_is_413_through_gunicorn(live_server):
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'

    def chunks():
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    resp = requests.post(
        live_server.url("/v1/admin/keys"),
        data=chunks(),
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 413
    assert resp.headers["Content-Type"] == "application/problem+json"


def test_demo_command_serves_on_embedded_redis_and_cleans_up(tmp_path):
    data_dir = tmp_path / "var"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["RAPPORT_DATA_DIR"] = str(data_dir)
    log_path = tmp_path / "demo.log"
    started = time.monotonic()
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "demo", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the CLI and its gunicorn: one group to clean up
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=proc)
        up_after = time.monotonic() - started
        text = log_path.read_text()
        token = re.search(r"(rpk_[0-9a-f]+_[A-Za-z0-9_-]+)", text).group(1)
        assert "started embedded redis" in text
        resp = requests.get(
            f"http://127.0.0.1:{port}/v1/admin/keys",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert resp.status_code == 200
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        assert up_after < 60
    finally:
        # SIGTERM to the CLI alone (it passes it on to gunicorn); SIGKILL to all after 60 s
        stop_process_group(proc, 60, leader_only=True)
    assert proc.returncode == 0, log_path.read_text()[-2000:]
    assert "stopped embedded redis" in log_path.read_text()
    assert not Path(data_dir / "redis.sock").exists()
