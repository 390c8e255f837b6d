"""Run another test module's tests again, here, with this directory's fixtures.

``reuse("tests.api.test_auth", globals())`` copies the module's test functions, test classes,
fixtures and ``pytestmark`` into the calling module, so pytest collects them a second time
under ``tests/cluster/`` where ``redis_url``/``redis_client`` point at the Redis Cluster. The
functions keep their own module globals, so their helpers still resolve. A module that does
not exist yet (another issue still writing it) skips with a reason instead of failing.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest


def reuse(module_name: str, namespace: dict[str, Any], *, exclude: tuple[str, ...] = ()) -> None:
    """Copy ``module_name``'s tests into ``namespace``; ``exclude``: names not to copy (tests
    that do not touch Redis gain nothing from a second run)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            pytest.skip(f"{module_name} does not exist yet", allow_module_level=True)
        raise
    for name, value in vars(module).items():
        if name.startswith("_") or name in exclude:
            continue
        if name == "pytestmark" or name.startswith(("test", "Test")) or _is_fixture(value):
            namespace[name] = value


def _is_fixture(value: object) -> bool:
    # pytest >= 8.4 wraps fixtures in FixtureFunctionDefinition; older ones mark the function.
    kind = type(value).__name__
    return kind == "FixtureFunctionDefinition" or hasattr(value, "_pytestfixturefunction")
