"""Run another test module's tests again, here, with this directory's fixtures.

``reuse("tests.api.test_auth", globals())`` copies the module's test functions, test classes,
fixtures and ``pytestmark`` into the calling module, so pytest collects them a second time
under ``tests/cluster/`` where ``redis_url``/``redis_client`` point at the Redis Cluster. The
functions keep their own module globals, so their helpers still resolve. A module that cannot
be imported (renamed, removed, or broken) fails the collection of its twin, naming both: a twin
that skipped would hide that its tests no longer run on the cluster.
"""

from __future__ import annotations

import importlib
from typing import Any


def reuse(module_name: str, namespace: dict[str, Any], *, exclude: tuple[str, ...] = ()) -> None:
    """Copy ``module_name``'s tests into ``namespace``; ``exclude``: names not to copy (tests
    that do not touch Redis gain nothing from a second run)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        twin = namespace.get("__name__", "a tests/cluster module")
        raise ImportError(
            f"{twin} re-runs {module_name} on the cluster, which cannot be imported: {exc}",
            name=exc.name,
            path=exc.path,
        ) from exc
    for name, value in vars(module).items():
        if name.startswith("_") or name in exclude:
            continue
        if name == "pytestmark" or name.startswith(("test", "Test")) or _is_fixture(value):
            namespace[name] = value


def _is_fixture(value: object) -> bool:
    # pytest >= 8.4 wraps fixtures in FixtureFunctionDefinition; older ones mark the function.
    kind = type(value).__name__
    return kind == "FixtureFunctionDefinition" or hasattr(value, "_pytestfixturefunction")
