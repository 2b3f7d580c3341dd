"""Which library modules a notebook's code runs, found statically, and their hash: a cell's code.

A cell's results can change only when the code it runs changes: its notebook's code cells
(:func:`notebook_hash`; a cell's key is its stage and parameters only) and the library modules those
import, directly or through each other. :meth:`Library.code_hash` hashes exactly those modules, found with :mod:`ast` (nothing is imported), so an edit to a book
page's helper or to the grid leaves a pretraining cell fresh while an edit to the masking stales
it. The runners and the source hash (:data:`NOT_COMPUTING`) are never part of a cell's code: they
start notebooks, record what happened or key caches, and no computing module may import the runners
(``tests/test_layering.py``).

:class:`Library` reads the working tree (:meth:`Library.now`) or, through
:func:`genemask.grid.provenance.library_at`, a commit, so a record made before code hashes were
recorded is judged by the same rule at its commit.
"""
from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path

from ..source import library_files

PACKAGE = "genemask"
#: Packages that run cells and record them, not compute them: left out of every cell's code.
RUNNERS = (f"{PACKAGE}.grid", f"{PACKAGE}.gpu", f"{PACKAGE}.cli")
#: What a cell's code leaves out: the runners, and the library's source hash, which ``genome``
#: imports to key its corpus cache (a new key rebuilds a corpus; no result changes).
NOT_COMPUTING = (*RUNNERS, f"{PACKAGE}.source")


def blob_id(data: bytes) -> str:
    """Git's id of a file's bytes, so working-tree files and committed ones hash alike."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# Import graph ----------------------------------------------------------------------------------

def module_name(rel: str) -> str:
    """``report/pmi.py`` -> ``genemask.report.pmi``; ``report/__init__.py`` -> ``genemask.report``."""
    parts = [PACKAGE, *rel[: -len(".py")].split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports_in(source: bytes | str, module: str, is_package: bool) -> set[tuple[str, ...]]:
    """What ``module``'s code imports anywhere (top level or inside functions) from the library,
    each import as the names it may mean, most specific first: ``from .pretrain import X`` in
    ``report/runs.py`` is (``genemask.report.pretrain.X``, ``genemask.report.pretrain``);
    :func:`resolve` keeps the first that is a module."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[tuple[str, ...]] = set()
    for node in _import_statements(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {(alias.name,) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                origin = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found |= {(f"{origin}.{alias.name}", origin) for alias in node.names}
    return {names for names in found if names[-1] == PACKAGE or names[-1].startswith(PACKAGE + ".")}


def _import_statements(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements at any depth; only statement bodies are searched (an import is a
    statement), which skips the expressions that make up most of a module's syntax tree."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            stack += [n for n in getattr(node, name, None) or [] if isinstance(n, ast.AST)]


def resolve(imports: Iterable[tuple[str, ...]], known: Iterable[str], module: str = "") -> set[str]:
    """The modules of :func:`imports_in`'s imports, given the library's modules ``known``."""
    known = set(known)
    found = {next((n for n in names if n in known), None) for names in imports}
    return {m for m in found if m is not None and m != module}


def import_graph(files: Mapping[str, bytes]) -> dict[str, set[str]]:
    """``{module: library modules it imports}`` of a library given as {relative path: bytes}."""
    known = {module_name(rel) for rel in files}
    return {module_name(rel): resolve(imports_in(data, module_name(rel), rel.endswith("__init__.py")), known, module_name(rel))
            for rel, data in files.items()}


def notebook_imports(code: str | list[str], known: Iterable[str]) -> set[str]:
    """The library modules a notebook's code cells import (``code`` as :func:`grid.plan.notebook_code`
    gives it: JSON of the cells' sources, or the sources). Lines of IPython magic are skipped."""
    return resolve(_notebook_imports(json.dumps(code) if isinstance(code, list) else code), known)


@lru_cache(maxsize=64)
def _notebook_imports(code: str) -> frozenset[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for text in json.loads(code):
        lines = [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
        found |= imports_in("\n".join(lines), "__notebook__", False)
    return frozenset(found)


def closure(roots: Iterable[str], graph: Mapping[str, set[str]], left_out: tuple[str, ...] = NOT_COMPUTING) -> set[str]:
    """Every module ``roots`` import, directly or not, with the packages they sit in (importing
    ``genemask.report.pmi`` runs ``genemask/report/__init__.py``); ``left_out`` packages and
    what only they import are not followed."""

    def outside(name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in left_out)

    seen: set[str] = set()
    todo = [r for r in roots if not outside(r)]
    while todo:
        name = todo.pop()
        if name in seen or name not in graph:
            continue
        seen.add(name)
        todo += [m for m in [*graph[name], *_parents(name)] if not outside(m)]
    return seen


def notebook_hash(code: str | list[str]) -> str:
    """Hash of a notebook's code cells (:func:`genemask.grid.plan.notebook_code`): the half of a
    cell's code that is not the library's. Recorded beside ``code_hash``; an edit stales its cells."""
    text = json.dumps(code) if isinstance(code, list) else code
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Library:
    """One version of the library's source, its import graph built once: the working tree
    (:meth:`now`) or a commit (:meth:`from_blobs`, whose blobs ``read`` fetches when not cached)."""

    def __init__(self, blobs: Mapping[str, str], imports_of: Callable[[str, str], set[tuple[str, ...]]]) -> None:
        """``blobs``: {path relative to lib/genemask: git blob id}; ``imports_of(path, blob id)``:
        :func:`imports_in` of that file."""
        self.blobs = dict(blobs)
        known = {module_name(rel) for rel in self.blobs}
        self.graph = {module_name(rel): resolve(imports_of(rel, blob), known, module_name(rel))
                      for rel, blob in self.blobs.items()}
        self.path_of = {module_name(rel): rel for rel in self.blobs}
        self._files: dict[str, list[str]] = {}  # notebook code -> code_files

    @classmethod
    def now(cls, root: Path | None = None) -> "Library":
        files = library_files(root)
        return cls({rel: blob_id(data) for rel, data in files.items()},
                   lambda rel, _blob: imports_in(files[rel], module_name(rel), rel.endswith("__init__.py")))

    def code_hash(self, code: str | list[str]) -> str:
        """Hash of the library modules a notebook's code runs: their paths and git blob ids."""
        digest = hashlib.sha256()
        for rel in self.code_files(code):
            digest.update(f"{rel}\0{self.blobs[rel]}\0".encode())
        return digest.hexdigest()[:16]

    def code_files(self, code: str | list[str]) -> list[str]:
        """The files (relative to ``lib/genemask``) of the modules a notebook's code runs: those it
        imports and what they import, the runners left out (:func:`closure`)."""
        text = json.dumps(code) if isinstance(code, list) else code
        if text not in self._files:
            modules = closure(notebook_imports(text, self.graph), self.graph)
            self._files[text] = sorted(self.path_of[m] for m in modules)
        return self._files[text]

    def changed_files(self, other: "Library", code: str | list[str]) -> list[str]:
        """The files of ``code``'s closure (in either version) whose bytes differ between the two."""
        files = set(self.code_files(code)) | set(other.code_files(code))
        return sorted(f for f in files if self.blobs.get(f) != other.blobs.get(f))
