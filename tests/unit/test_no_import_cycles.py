"""No import circle anywhere in our packages (issue 12): a module that needs another's piece
imports it at the top, and the layering contracts (setup.cfg, ``dev.py lint``) keep the rooms
one way; this keeps the modules inside each room one way too."""

from __future__ import annotations

import grimp

PACKAGES = ("core", "profiles", "recommend", "service")


def cycles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """``(a, b)`` for every direct import a -> b from which a chain leads back to a."""
    return [
        (module, imported)
        for module in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if graph.chain_exists(importer=imported, imported=module)
    ]


def test_no_module_imports_itself_back():
    # imports under TYPE_CHECKING count too: they are how a circle hides
    assert cycles(grimp.build_graph(*PACKAGES)) == []


def test_the_check_sees_a_circle():
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert cycles(graph) == [("pkg.a", "pkg.b"), ("pkg.b", "pkg.a")]
