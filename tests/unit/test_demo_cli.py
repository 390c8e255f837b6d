"""`rapport demo`'s edges: the kept demo key, its banner and load report, the embedded Redis
said once, and the commands `rapport --help` shows."""

from __future__ import annotations

import logging
import stat

import click
from click.testing import CliRunner

from profiles.importer import Summary
from profiles.keys import Keys
from service.auth import ApiKeyStore
from service.cli import cli
from service.cli_store import use_store
from service.config import Config
from service.demo_cli import (
    demo_banner,
    demo_example_email,
    demo_key,
    demo_key_path,
    demo_load_report,
)


def key_store(redis_client) -> ApiKeyStore:
    return ApiKeyStore(redis_client, Keys("rp"))


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_demo_key_is_written_0600_and_reused(redis_client, tmp_path):
    store, path = key_store(redis_client), demo_key_path(tmp_path / "var")
    token, reused = demo_key(store, path)
    assert not reused and token.startswith("rpk_")
    assert path.read_text().strip() == token
    assert mode(path) == 0o600
    key = store.verify(token)
    assert key is not None and key.name == "demo" and key.scopes == ("admin",)

    again, reused = demo_key(store, path)
    assert (again, reused) == (token, True)
    assert [k.name for k in store.list()] == ["demo"]  # not revoked and recreated
    assert store.verify(token) is not None

    path.chmod(0o644)  # loosened by hand: tightened again on reuse
    assert demo_key(store, path) == (token, True)
    assert mode(path) == 0o600


def test_a_missing_file_gets_a_new_key_and_the_old_one_revoked(redis_client, tmp_path):
    store, path = key_store(redis_client), demo_key_path(tmp_path)
    first, _ = demo_key(store, path)
    path.unlink()
    second, reused = demo_key(store, path)
    assert not reused and second != first
    assert path.read_text().strip() == second and mode(path) == 0o600
    assert store.verify(first) is None  # its token was lost with the file
    assert len(store.list()) == 1


def test_a_revoked_or_foreign_key_in_the_file_is_replaced(redis_client, tmp_path):
    store, path = key_store(redis_client), demo_key_path(tmp_path)
    first, _ = demo_key(store, path)
    store.revoke(first.split("_")[1])
    second, reused = demo_key(store, path)
    assert not reused and second != first and path.read_text().strip() == second
    assert store.verify(second) is not None

    _, other = store.create("ops", "profiles:read")  # valid, but not the demo's admin key
    path.write_text(other)
    third, reused = demo_key(store, path)
    assert not reused and third not in (other, second)
    assert store.verify(other) is not None  # someone else's key is left alone
    path.write_text("not a token\n")
    assert demo_key(store, path)[1] is False


def test_banner_names_the_key_file_and_tries_a_keyed_endpoint(tmp_path):
    key_file = tmp_path / "var" / "demo-key"
    text = demo_banner("127.0.0.1:8123", "rpk_0123456789abcdef_s3cret", key_file, reused=True)
    email = demo_example_email()
    assert str(key_file) in text and "kept from the last start" in text
    try_line = text.split("Try:\n", 1)[1].splitlines()[0]
    assert "Authorization: Bearer rpk_0123456789abcdef_s3cret" in try_line
    assert f"'http://127.0.0.1:8123/v1/profiles?email={email}'" in try_line
    assert "/readyz" not in text
    fresh = demo_banner("127.0.0.1:8123", "rpk_0123456789abcdef_s3cret", key_file, reused=False)
    assert f"saved in {key_file}, reused by the next start" in fresh


def test_load_report_leaves_out_customers_the_same_load_created():
    summary = Summary(rows_read=12, customers_created=3, customers_existing=3, orders_created=5)
    summary.skipped["cancellation"] = 2
    report = demo_load_report(summary)
    assert report["customers_created"] == 3 and report["orders_created"] == 5
    assert report["rows_skipped"] == 2 and report["skipped_by_reason"] == {"cancellation": 2}
    assert "customers_existing" not in report


def test_use_store_says_once_which_embedded_redis_a_command_uses(tmp_path):
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("rapport.redis")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    config = Config.from_env({}, data_dir=tmp_path / "var")
    try:
        with click.Context(click.Command("x")) as ctx:
            first = use_store(config)
            assert use_store(config) == first
            assert ctx.meta  # the URL is remembered for this command
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    started = [m for m in seen if "embedded redis" in m and "stopped" not in m]
    assert started == [f"started embedded redis on {first} (set REDIS_URL to use your own server)"]


def test_help_hides_flask_commands_and_lists_ours(redis_url, tmp_path):
    env = {"REDIS_URL": redis_url, "RAPPORT_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(cli, ["--help"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    listed = {
        line.split()[0]
        for line in result.output.split("Commands:", 1)[1].splitlines()
        if line.startswith("  ") and line.strip()
    }
    assert listed.isdisjoint({"limiter", "openapi", "run"})
    ours = {"demo", "import", "keys", "models", "routes", "serve", "shell", "spec", "train"}
    assert ours <= listed
    hidden = CliRunner().invoke(cli, ["run", "--help"], env=env, catch_exceptions=False)
    assert hidden.exit_code == 0  # hidden, not removed


def test_demo_help_says_what_it_does(redis_url, tmp_path):
    env = {"REDIS_URL": redis_url, "RAPPORT_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(cli, ["demo", "--help"], env=env, catch_exceptions=False)
    assert result.exit_code == 0
    assert "once built" not in result.output
    assert "demo-key" in result.output and "reused" in result.output
