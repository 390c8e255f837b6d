"""`rapport keys` and `rapport spec` through click, against the test Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from service.cli import cli
from service.redis_server import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]


def invoke(args, redis_url, tmp_path):
    env = {"REDIS_URL": redis_url, "RAPPORT_DATA_DIR": str(tmp_path)}
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_keys_create_list_revoke(redis_client, redis_url, tmp_path):
    created = invoke(
        ["keys", "create", "--name", "helpdesk", "--scopes", "profiles:read,recommend:read"],
        redis_url,
        tmp_path,
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("rpk_")

    listed = invoke(["keys", "list", "--json"], redis_url, tmp_path)
    keys = json.loads(listed.stdout)
    assert [k["name"] for k in keys] == ["helpdesk"]
    assert keys[0]["scopes"] == ["profiles:read", "recommend:read"]
    assert token not in listed.output

    revoked = invoke(["keys", "revoke", keys[0]["key_id"]], redis_url, tmp_path)
    assert revoked.exit_code == 0
    again = invoke(["keys", "revoke", keys[0]["key_id"]], redis_url, tmp_path)
    assert again.exit_code == 1
    assert "no API key" in again.output


def test_keys_create_rejects_unknown_scope(redis_client, redis_url, tmp_path):
    result = invoke(["keys", "create", "--name", "x", "--scopes", "root"], redis_url, tmp_path)
    assert result.exit_code == 2
    assert "unknown scope" in result.output


def test_spec_check_passes_on_the_checked_in_file(redis_url, tmp_path):
    result = invoke(["spec", "--check"], redis_url, tmp_path)
    assert result.exit_code == 0, result.output


def _rapport(args, data_dir):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["RAPPORT_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_commands_share_the_embedded_redis(tmp_path):
    """Without REDIS_URL, commands on one data directory see the same (persistent) data."""
    data_dir = tmp_path / "var"
    created = _rapport(["keys", "create", "--name", "ops", "--scopes", "admin"], data_dir)
    assert created.returncode == 0, created.stderr
    assert "started embedded redis on unix://" in created.stderr
    assert "already running" not in created.stderr  # one line says which server it uses
    # the command started the server, so it stopped it on exit; the key survives on disk
    assert not EmbeddedRedis(data_dir).socket.exists() or "stopped embedded redis" in created.stderr

    running = EmbeddedRedis(data_dir)
    assert running.ensure_running() is True  # like `rapport serve` holding it
    try:
        listed = _rapport(["keys", "list", "--json"], data_dir)
        assert listed.returncode == 0, listed.stderr
        assert "using the embedded redis already running on unix://" in listed.stderr
        assert "started embedded redis" not in listed.stderr
        assert [k["name"] for k in json.loads(listed.stdout)] == ["ops"]
        # the joining command must not stop the shared server
        assert running.server.client().ping()
    finally:
        running.stop()
