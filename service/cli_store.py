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


def use_store(config: Config) -> str:
    """Make sure a Redis is there for this command; return its URL.

    With no ``REDIS_URL``, join or start the embedded server and, if this command started it,
    stop it when the command ends.
    """
    if config.redis_url or config.redis_cluster_nodes:
        return config.effective_redis_url()
    embedded = EmbeddedRedis(config.data_dir)
    if embedded.ensure_running():
        click.get_current_context().call_on_close(embedded.stop)
    return embedded.url


def app_state() -> RapportState:
    """The app's state for a command running in the app context, its Redis made sure of."""
    st = state()
    use_store(st.config)
    return st
