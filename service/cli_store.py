"""Redis for ``rapport`` commands (``service/cli.py``, ``service/cli_training.py``).

Without ``REDIS_URL`` (or ``REDIS_CLUSTER_NODES``) a command uses the embedded Redis under
``RAPPORT_DATA_DIR``: it joins a server already running there or starts one and stops it when
the command ends.
"""

from __future__ import annotations

import click

from service.config import Config
from service.redis_server import EmbeddedRedis
from service.state import RapportState, state

_JOINED = "rapport.embedded_redis_urls"  # ctx.meta: the embedded servers this command uses


def use_store(config: Config) -> str:
    """Make sure a Redis is there for this command; return its URL.

    With no ``REDIS_URL``, join or start the embedded server and, if this command started it,
    stop it when the command ends. A second call in the same command returns the same URL
    without asking again (so the log says once which server the command uses).
    """
    if config.redis_url or config.redis_cluster_nodes:
        return config.effective_redis_url()
    ctx = click.get_current_context()
    embedded = EmbeddedRedis(config.data_dir)
    joined: set[str] = ctx.meta.setdefault(_JOINED, set())
    if embedded.url in joined:
        return embedded.url
    if embedded.ensure_running():
        ctx.call_on_close(embedded.stop)
    joined.add(embedded.url)
    return embedded.url


def app_state() -> RapportState:
    """The app's state for a command running in the app context, its Redis made sure of."""
    st = state()
    use_store(st.config)
    return st
