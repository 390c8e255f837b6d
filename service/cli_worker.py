"""``rapport worker``: the webhook delivery worker (``service/webhooks/worker.py``), a process of
its own; run as many as the load needs (they share the outbox shards)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any

import click

from profiles.keys import Keys
from service.cli_store import use_store
from service.config import Config
from service.logs import configure_logging
from service.redis_connect import connect as connect_redis


@click.command("worker")
@click.option("--id", "worker_id", help="Consumer name (default: host name and a random tag).")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus /metrics here (default RAPPORT_WORKER_METRICS_PORT, 9464; 0: off).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics server binds (0.0.0.0 in a container).",
)
def worker_command(worker_id: str | None, metrics_port: int | None, metrics_host: str) -> None:
    """Deliver change events to webhook subscriptions until SIGTERM or SIGINT."""
    from service.webhooks.worker import Worker  # imported by this command only

    config = Config.from_env()
    configure_logging(config.log_level)
    client = connect_redis(use_store(config), timeout=config.redis_timeout)
    port = config.worker_metrics_port if metrics_port is None else metrics_port
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=metrics_host)
    worker = Worker(client, Keys(config.key_prefix), config, worker_id=worker_id)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"rapport worker {worker.id}: delivering change events", err=True)
    worker.run(stop)
    client.close()


def start_worker_process(
    redis_url: str, worker_id: str | None = None, **env_overrides: str
) -> subprocess.Popen[Any]:
    """``rapport worker`` as a child process on ``redis_url`` (``rapport demo`` runs one)."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(REDIS_URL=redis_url, **env_overrides)
    args = [sys.executable, "-c", "from service.cli import main; main()", "worker"]
    if worker_id:
        args += ["--id", worker_id]
    return subprocess.Popen(args, env=env)
