"""The ``rapport`` command, built on Flask's CLI (``routes`` and ``shell`` work as with ``flask``).

Commands other tools drive (keep them stable): ``serve``, ``demo``, ``keys create|list|revoke``,
``spec``. Without ``REDIS_URL`` every command uses the embedded Redis under
``RAPPORT_DATA_DIR``: it joins a server already running there or starts one and stops it on exit.
Flask's ``run`` and the extensions' ``limiter`` and ``openapi`` groups still work but are left
out of ``rapport --help``: ``serve``, ``demo`` and ``spec`` are what a user needs instead.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import click
import yaml
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from core.errors import InvalidInput
from profiles.activity import ActivityStore
from profiles.importer import DEMO_DIR, catalog_products, load_demo, load_mapping, run_import
from profiles.keys import Keys
from profiles.store import ProfileStore
from recommend.catalog.importing import load_catalog, retail_products
from recommend.catalog.products import Catalog
from service import create_app
from service.auth import ApiKeyNotFound, ApiKeyStore
from service.cli_store import app_state, use_store
from service.cli_training import models_group, train_command
from service.cli_worker import start_worker_process, worker_command
from service.config import Config, ConfigError
from service.demo_cli import demo_banner, demo_key, demo_key_path, demo_load_report
from service.logs import configure_logging
from service.redis_connect import connect as connect_redis
from service.slow_clients import SlowClientLimits

log = logging.getLogger("rapport.cli")
ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "api_spec" / "openapi.yaml"


class RapportGroup(FlaskGroup):
    """Flask's group with the commands a user of ``rapport`` does not need hidden from --help."""

    HIDDEN = frozenset({"run", "limiter", "openapi"})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None and name in self.HIDDEN and not command.hidden:
            command = copy.copy(command)  # Flask's and the extensions' objects stay untouched
            command.hidden = True
        return command


# the app is built only when a command needs it (FlaskGroup calls create_app then)
@click.group(cls=RapportGroup, create_app=create_app, add_version_option=False)
def cli() -> None:
    """Rapport: customer profiles, greetings, next-best actions and recommendations."""


def main() -> None:
    try:
        cli.main(prog_name="rapport")
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)


# -- serve / demo -----------------------------------------------------------------------------
def default_gunicorn_config() -> Path | None:
    configured = os.environ.get("RAPPORT_GUNICORN_CONFIG")
    if configured:
        return Path(configured)
    candidate = ROOT / "gunicorn.conf.py"
    return candidate if candidate.exists() else None


def _serve(config: Config, gunicorn_args: list[str], *, banner: str | None = None) -> int:
    """Run gunicorn in a child process with the store ready; forward signals; clean up."""
    SlowClientLimits.from_env()  # a bad limit stops here, naming the variable, not in a worker
    env = os.environ.copy()
    env["REDIS_URL"] = use_store(config)
    prom_dir = (config.data_dir / "prometheus" / str(os.getpid())).resolve()
    shutil.rmtree(prom_dir, ignore_errors=True)
    prom_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prom_dir)
    args = [sys.executable, "-m", "gunicorn", *gunicorn_args, "service:create_app()"]
    proc = subprocess.Popen(args, env=env)

    def forward(signum, _frame):
        proc.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    if banner:
        click.echo(banner, err=True)
    try:
        return proc.wait()
    finally:
        shutil.rmtree(prom_dir, ignore_errors=True)


def _gunicorn_args(bind, workers, threads, timeout, gunicorn_config) -> list[str]:
    args: list[str] = []
    conf = Path(gunicorn_config) if gunicorn_config else default_gunicorn_config()
    if conf is not None:
        args += ["--config", str(conf)]
    if bind:
        args += ["--bind", bind]
    if workers:
        args += ["--workers", str(workers)]
    if threads:
        args += ["--threads", str(threads)]
    if timeout:
        args += ["--timeout", str(timeout)]
    return args


def _gunicorn_options(func):
    func = click.option(
        "-c",
        "--config",
        "gunicorn_config",
        type=click.Path(dir_okay=False),
        help="gunicorn config file (default: the shipped gunicorn.conf.py).",
    )(func)
    func = click.option("-t", "--timeout", type=click.IntRange(1), help="Worker timeout, s.")(func)
    func = click.option("--threads", type=click.IntRange(1), help="Threads per worker.")(func)
    func = click.option("-w", "--workers", type=click.IntRange(1), help="Worker processes.")(func)
    func = click.option("-b", "--bind", help="HOST:PORT to listen on (default 127.0.0.1:8000).")(
        func
    )
    return func


@cli.command("serve")
@_gunicorn_options
def serve(bind, workers, threads, timeout, gunicorn_config) -> None:
    """Serve the API under gunicorn."""
    config = Config.from_env()
    configure_logging(config.log_level)
    sys.exit(_serve(config, _gunicorn_args(bind, workers, threads, timeout, gunicorn_config)))


@cli.command("demo")
@_gunicorn_options
def demo(bind, workers, threads, timeout, gunicorn_config) -> None:
    """Serve with an admin key, kept in <data dir>/demo-key, and the demo data.

    The key in that file (mode 0600) is reused while it is valid, so a restart keeps an open
    console signed in; otherwise a new key is made. On the first start the demo catalog,
    customers and orders load and a first model trains while the service already answers."""
    config = Config.from_env()
    configure_logging(config.log_level)
    url = use_store(config)
    client = connect_redis(url, timeout=config.redis_timeout)
    key_file = demo_key_path(config.data_dir)
    try:
        token, reused = demo_key(ApiKeyStore(client, Keys(config.key_prefix)), key_file)
    finally:
        client.close()
    # The service answers at once; the first start's data load and training run beside it
    # (recommendations use popular items until the first model is active: see /readyz).
    threading.Thread(
        target=_load_demo_in_background, args=(url, config), name="demo-loader", daemon=True
    ).start()
    address = bind or "127.0.0.1:8000"
    banner = demo_banner(address, token, key_file, reused=reused)
    # the webhook delivery worker beside the server (docs/webhooks.md); stopped with it
    delivery = start_worker_process(url, RAPPORT_WORKER_METRICS_PORT="0")
    try:
        code = _serve(
            config,
            _gunicorn_args(address, workers, threads, timeout, gunicorn_config),
            banner=banner,
        )
    finally:
        delivery.terminate()
        try:
            delivery.wait(timeout=10)
        except subprocess.TimeoutExpired:
            delivery.kill()
    sys.exit(code)


# -- import (profiles/importer.py) --------------------------------------------------------------
def _import_stores(client, keys):
    activity = ActivityStore(client, keys, category_of=Catalog(client, keys).category_of)
    return ProfileStore(client, keys, activity=activity), activity


def _load_demo_in_background(url: str, config: Config) -> None:
    client = connect_redis(url, timeout=max(config.redis_timeout, 30.0))
    try:
        _load_demo_data(client, Keys(config.key_prefix), config)
        click.echo("demo ready: data loaded and a model active", err=True)
    except Exception:  # a failed demo load must not take the running service down
        log.exception("loading the demo data failed")
    finally:
        client.close()


def _load_demo_data(client, keys, config: Config) -> None:
    """First start: the demo catalog, customers and orders, then a first model.

    Each step runs only when its data is missing, so later starts are quick."""
    # recommend.model (numpy, scipy, LightFM) is imported by the commands that use it only
    from recommend.model.registry import ModelRegistry

    catalog = Catalog(client, keys)
    if not catalog.list(limit=1)[0]:
        counts = load_catalog(
            catalog, retail_products(catalog_products(DEMO_DIR / "orders.csv.gz"))
        )
        click.echo(f"demo catalog loaded: {json.dumps(counts)}", err=True)
    summary = load_demo(*_import_stores(client, keys), progress=True)
    if summary is None:
        log.info("demo data: the store already holds profiles; nothing loaded")
    else:
        click.echo(f"demo data loaded: {json.dumps(demo_load_report(summary))}", err=True)
    if ModelRegistry(client, keys, config.models_path).active_version() is None:
        from recommend.model.job import run_training
        from recommend.model.sources import load_from_redis

        click.echo("training a first model on the demo data ...", err=True)
        run = run_training(
            client, keys, config.models_path, load_from_redis(client, keys), force=True
        )
        click.echo(f"model {run.artifact.version} active", err=True)


def _import_retail_catalog(client, keys, orders) -> None:
    counts = load_catalog(Catalog(client, keys), retail_products(catalog_products(orders)))
    click.echo(f"catalog: {json.dumps(counts)}", err=True)


@cli.command("import")
@click.argument("orders", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--customers", type=click.Path(exists=True, dir_okay=False), help="A customers CSV file."
)
@click.option(
    "--layout",
    type=click.Choice(["online-retail"]),
    help="A built-in column layout (the UCI Online Retail file).",
)
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A JSON column mapping (see profiles/importer.py).",
)
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--progress/--no-progress", default=True, help="Show tqdm progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--catalog/--no-catalog",
    "with_catalog",
    default=True,
    help="online-retail: load the products the file names into the catalog first.",
)
@with_appcontext
def import_command(
    orders, customers, layout, mapping_file, batch_size, progress, as_json, with_catalog
):
    """Import customers and orders from CSV (.gz ok); re-running changes nothing."""
    if not orders and not customers:
        raise click.UsageError("give an orders file and/or --customers")
    if bool(layout) == bool(mapping_file):
        raise click.UsageError("give exactly one of --layout and --mapping")
    st = app_state()
    try:
        mapping = load_mapping(layout, mapping_file)
        if orders and layout == "online-retail" and with_catalog:
            _import_retail_catalog(st.redis, st.keys, orders)
        summary = run_import(
            *_import_stores(st.redis, st.keys),
            orders=orders,
            customers=customers,
            mapping=mapping,
            batch_size=batch_size,
            progress=progress,
        )
    except InvalidInput as exc:
        raise click.ClickException(exc.detail) from exc
    report = summary.as_dict()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(
        f"rows read {report['rows_read']}, imported {report['rows_imported']}, "
        f"skipped {report['rows_skipped']} in {report['seconds']} s "
        f"({report['rows_per_s']} rows/s)"
    )
    for reason, count in report["skipped_by_reason"].items():
        click.echo(f"  skipped {reason}: {count}")
    click.echo(
        f"customers created {report['customers_created']}, existing "
        f"{report['customers_existing']}; orders created {report['orders_created']}, "
        f"unchanged {report['orders_unchanged']}, rejected {sum(summary.orders_rejected.values())}"
    )


# -- keys -------------------------------------------------------------------------------------
@cli.group("keys")
def keys_group() -> None:
    """Create, list and revoke API keys."""


@keys_group.command("create")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--scopes", required=True, help="Comma-separated, e.g. profiles:read,recommend:read")
@with_appcontext
def keys_create(name: str, scopes: str) -> None:
    """Create a key; its token is printed once, on stdout, and never stored."""
    try:
        key, token = app_state().api_keys.create(name, scopes)
    except InvalidInput as exc:
        raise click.BadParameter(exc.detail, param_hint=f"--{exc.field}") from exc
    click.echo(
        f"created key {key.key_id} ({key.name}; scopes {','.join(key.scopes)}). "
        "The token below is shown once:",
        err=True,
    )
    click.echo(token)


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@with_appcontext
def keys_list(as_json: bool) -> None:
    """List keys (ids, names, scopes; never secrets)."""
    keys = app_state().api_keys.list()
    if as_json:
        click.echo(json.dumps([k.public() for k in keys], indent=2))
        return
    click.echo(f"{'KEY ID':<18} {'NAME':<24} SCOPES")
    for k in keys:
        click.echo(f"{k.key_id:<18} {k.name:<24} {','.join(k.scopes)}")


@keys_group.command("revoke")
@click.argument("key_id")
@with_appcontext
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id; requests with it get 401 from then on."""
    try:
        app_state().api_keys.revoke(key_id)
    except ApiKeyNotFound as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"revoked {key_id}", err=True)


# -- spec -------------------------------------------------------------------------------------
def spec_yaml(app) -> str:
    spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return yaml.safe_dump(spec, sort_keys=True, allow_unicode=True, width=100)


@cli.command("spec")
@click.option("--write", is_flag=True, help=f"Write {SPEC_PATH.relative_to(ROOT)}.")
@click.option("--check", is_flag=True, help="Exit 1 when the checked-in spec differs.")
@with_appcontext
def spec(write: bool, check: bool) -> None:
    """Print the OpenAPI document generated from the code."""
    text = spec_yaml(current_app)
    if check:
        current = SPEC_PATH.read_text() if SPEC_PATH.exists() else ""
        if current != text:
            raise click.ClickException(f"{SPEC_PATH} is out of date: run 'rapport spec --write'")
        click.echo("spec is up to date", err=True)
    elif write:
        SPEC_PATH.parent.mkdir(exist_ok=True)
        SPEC_PATH.write_text(text)
        click.echo(f"wrote {SPEC_PATH}", err=True)
    else:
        click.echo(text, nl=False)


# -- train / models (service/cli_training.py) -------------------------------------------------
cli.add_command(train_command)
cli.add_command(models_group)
cli.add_command(worker_command)


if __name__ == "__main__":
    main()
