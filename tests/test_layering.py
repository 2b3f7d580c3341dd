"""Imports run with the grain: each layer of the library imports only the layers below it, and no
module imports itself back through others (a circle). Parsed with ``ast``; nothing is imported.

The layers, lowest first: what everything shares (paths, file writing, run identity, the tokenizer,
the library's source, the step log's stored form); the computing modules (genome, PMI, masking,
models, training); the grid, which runs notebooks and records them; the report, which reads what the
grid recorded and draws the book; the runners on top (the GPU unit runner, the command line). And
the report reads paths and checkpoint names without the torch-heavy training loop. The results
store (``genemask.store``: what a result is on disk) sits lowest of all, so that the grid, the GPU
runner and the report can all read and write through it.
"""
from __future__ import annotations

import networkx as nx
import pytest

from genemask import source
from genemask.grid import code

BASE = {"genemask", "genemask.paths", "genemask.io", "genemask.identity", "genemask.tokenizer", "genemask.published",
        "genemask.source", "genemask.steplog", "genemask.store", "genemask.outdir"}
COMPUTE = {"genemask.genome", "genemask.pmi", "genemask.masking", "genemask.models", "genemask.yardstick",
           "genemask.pretrain", "genemask.finetune", "genemask.tasks", "genemask.integrity"}
TOP = {"genemask.gpu", "genemask.cli"}
#: Pairs that the layers allow but that are against the grain all the same: the report would load
#: torch and the training loop to read a checkpoint's name.
FORBIDDEN = {("genemask.report", "genemask.pretrain")}


def layer(module: str) -> int:
    if module in BASE:
        return 0
    if module in COMPUTE:
        return 1
    if module == "genemask.grid" or module.startswith("genemask.grid."):
        return 2
    if module == "genemask.report" or module.startswith("genemask.report."):
        return 3
    if module in TOP:
        return 4
    raise AssertionError(f"{module}: no layer; add it to tests/test_layering.py")


def against_the_grain(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a higher layer, or of a forbidden pair, as ``a -> b``."""
    found = []
    for module, imported in sorted(graph.items()):
        for other in sorted(imported):
            forbidden = any(module.startswith(a) and other == b for a, b in FORBIDDEN)
            if layer(other) > layer(module) or forbidden:
                found.append(f"{module} -> {other}")
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others."""
    g = nx.DiGraph([(a, b) for a, bs in graph.items() for b in bs])
    return sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)


#: What the results store may import from the library: where results live, atomic writes, the
#: step log's stored form. Never the grid, the report, training or torch.
STORE_IMPORTS = {"genemask", "genemask.paths", "genemask.io", "genemask.steplog"}
HEAVY = ("torch", "transformers", "pandas", "numpy")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return code.import_graph(source.library_files())


def test_no_import_against_the_grain(graph):
    assert against_the_grain(graph) == []


def test_no_import_circle(graph):
    assert circles(graph) == []


def test_the_store_sits_low(graph):
    """The store imports only the lowest modules, and nothing heavy at import time (the GPU runner
    and the report read results through it without loading torch, the grid or each other)."""
    import ast

    assert graph["genemask.store"] <= STORE_IMPORTS, graph["genemask.store"] - STORE_IMPORTS
    for module in sorted(graph["genemask.store"] | {"genemask.store"}):
        rel = "__init__.py" if module == "genemask" else module.removeprefix("genemask.").replace(".", "/") + ".py"
        tree = ast.parse(source.library_files(only=(rel,))[rel])
        top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        top |= {(node.module or "").split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and not node.level}
        assert not top & set(HEAVY), f"{module} imports {sorted(top & set(HEAVY))} at import time"


def test_the_check_sees_an_import_against_the_grain():
    """The parser finds relative, absolute and function-local imports, so the checks above can fail."""
    files = {"__init__.py": b"", "genome.py": b"def f():\n    from .grid.provenance import library_hash\n",
             "grid/__init__.py": b"", "grid/provenance.py": b"from genemask import genome\n",
             "report/__init__.py": b"", "report/runs.py": b"from ..pretrain import kept_step\n", "pretrain.py": b""}
    graph = code.import_graph(files)
    assert against_the_grain(graph) == ["genemask.genome -> genemask.grid.provenance",
                                        "genemask.report.runs -> genemask.pretrain"]
    assert circles(graph) == [["genemask.genome", "genemask.grid.provenance"]]
