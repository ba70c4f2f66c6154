"""No two modules of ``mien`` import each other.

A pair that does is one concern split badly (or two tangled): neither side can be read,
tested or moved without the other, and one of them has to hide its import inside a
function to load at all. grimp (which import-linter uses) sees every import, including
those inside functions and under ``TYPE_CHECKING``; the layer contracts do not catch such a
pair when both modules sit in the same layer.
"""

from __future__ import annotations

import grimp


def mutual_imports(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Every pair of modules that import each other directly, each pair once."""
    pairs = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if module in graph.find_modules_directly_imported_by(imported):
                pairs.add((min(module, imported), max(module, imported)))
    return sorted(pairs)


def where(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return "; ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)


def test_no_two_modules_of_mien_import_each_other() -> None:
    graph = grimp.build_graph("mien", cache_dir=None)
    found = [
        f"{a} <-> {b}\n  {a}: {where(graph, a, b)}\n  {b}: {where(graph, b, a)}"
        for a, b in mutual_imports(graph)
    ]
    assert not found, "modules importing each other:\n" + "\n".join(found)


def test_mutual_imports_finds_exactly_the_pairs() -> None:
    graph = grimp.ImportGraph()
    edges = [("p.a", "p.b"), ("p.b", "p.a"), ("p.b", "p.c"), ("p.c", "p.d"), ("p.d", "p.c")]
    for importer, imported in edges:
        graph.add_import(importer=importer, imported=imported)
    assert mutual_imports(graph) == [("p.a", "p.b"), ("p.c", "p.d")]
