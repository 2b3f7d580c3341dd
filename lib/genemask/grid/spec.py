"""A params file, read and checked: every key, type and name, before anything runs.

A params file lists stages in order; each stage is a notebook plus a grid::

    profile: demo
    stages:
      - name: pmi
        notebook: notebooks/01_pmi.ipynb
        params: {max_n: 8}              # the same for every cell
        grid: {min_count: [5, 101]}     # cartesian product
        cells: [{k: 6}, {k: 4}]         # explicit list, crossed with the grid
        timeout: 600                    # seconds for the whole cell (optional)
      - name: masking
        notebook: notebooks/02_masking.ipynb
        grid: {rank_table: ["@pmi/kmer_ranking.csv"]}

A value ``"@stage"``, ``"@stage/file"`` or ``"@stage[name=value,...]/file"`` refers to the cells of
an earlier stage (those run with the named parameter values): the cell is repeated for each.
"""
from __future__ import annotations

import ast
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths, store
from ..identity import MLM_PROBABILITY
from ..io import read_yaml

TOP_KEYS = ("profile", "stages")
STAGE_KEYS = ("name", "notebook", "params", "grid", "cells", "timeout")

#: A profile or stage name is one path component: letters, digits, ``_ . -``, not starting with a dot.

_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
}

#: A cell key: 16 hex digits (what a key read from a file must be before it names a folder); the
#: key rule and the grammar of a params file's ``@`` references are the results store's.
KEY = store.KEY
REF = store.SELECTION


#: The notebooks a params file may run: the package's own, ``notebooks/0*.ipynb``. A params file is
#: data; the notebook it names is code, so a file from elsewhere must never choose it.
PACKAGE_NOTEBOOKS = "0*.ipynb"
#: An explicit allow-list of further folders of notebooks (``os.pathsep``-separated), set by whoever
#: runs the grid, never by a params file (tests use it for their tiny notebooks).
NOTEBOOK_DIRS_ENV = "GENEMASK_NOTEBOOK_DIRS"


def notebook_allowed(notebook: Path) -> bool:
    """Whether ``notebook`` (resolved: a link is judged by where it points) may run in a grid."""
    notebook = notebook.resolve()
    if notebook.suffix != ".ipynb":
        return False
    if notebook.parent == paths.NOTEBOOKS.resolve() and fnmatch.fnmatch(notebook.name, PACKAGE_NOTEBOOKS):
        return True
    extra = [Path(d).expanduser().resolve() for d in os.environ.get(NOTEBOOK_DIRS_ENV, "").split(os.pathsep) if d]
    return any(notebook.is_relative_to(folder) for folder in extra)


class GridError(ValueError):
    """A params file or cell that cannot run; raised before anything executes."""


@dataclass
class Stage:
    name: str
    notebook: Path
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    timeout: int | None = None  # seconds for the whole cell


@dataclass
class GridSpec:
    profile: str
    stages: list[Stage]
    source: Path


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def check_name(name: Any, what: str) -> str:
    """A profile or stage name that is safe as one path component (never ``..``, ``/`` or empty)."""
    if not isinstance(name, str):
        raise GridError(f"{what} must be a string, got {_kind(name)}")
    if not store.is_safe_name(name):
        raise GridError(f"{what} {name!r} is not a safe folder name (letters, digits, _ . -; no / or ..)")
    return name


def _mapping_of_names(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GridError(f"{where} must be a mapping of parameter names to values, got {_kind(value)}")
    bad = [k for k in value if not isinstance(k, str) or not k.isidentifier()]
    if bad:
        raise GridError(f"{where}: parameter names must be identifiers, got {bad}")
    return dict(value)


def load_spec(path: str | Path) -> GridSpec:
    """Read and check a params file: top-level keys, stage keys and their types, safe names,
    notebooks that exist, grids with values. Every error names the file and the key."""
    path = Path(path)
    raw = read_yaml(path, GridError)
    if not isinstance(raw, dict):
        raise GridError(f"{path}: expected a mapping with 'profile' and 'stages', got {_kind(raw)}")
    unknown = sorted(set(map(str, raw)) - set(TOP_KEYS))
    if unknown:
        raise GridError(f"{path}: unknown top-level key(s) {unknown}; allowed: {', '.join(TOP_KEYS)}")
    if "stages" not in raw:
        raise GridError(f"{path}: missing 'stages'")
    profile = check_name(raw.get("profile", path.stem), f"{path}: 'profile'")
    if not isinstance(raw["stages"], list) or not raw["stages"]:
        raise GridError(f"{path}: 'stages' must be a non-empty list of stage mappings, got {_kind(raw['stages'])}")
    stages: list[Stage] = []
    for i, st in enumerate(raw["stages"]):
        where = f"{path}: stage {i + 1}"
        if not isinstance(st, dict):
            raise GridError(f"{where}: expected a mapping with {', '.join(STAGE_KEYS)}, got {_kind(st)}")
        unknown = sorted(set(map(str, st)) - set(STAGE_KEYS))
        if unknown:
            raise GridError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(STAGE_KEYS)}")
        for key in ("name", "notebook"):
            if key not in st:
                raise GridError(f"{where}: missing '{key}'")
        name = check_name(st["name"], f"{where}: 'name'")
        where = f"{path}: stage {i + 1} ({name})"
        if not isinstance(st["notebook"], str):
            raise GridError(f"{where}: 'notebook' must be a path, got {_kind(st['notebook'])}")
        nb = (paths.ROOT / st["notebook"]).resolve()
        if not nb.is_file():
            raise GridError(f"{where}: notebook {st['notebook']} does not exist")
        if not notebook_allowed(nb):
            raise GridError(f"{where}: notebook {st['notebook']} is not one of the package's notebooks "
                            f"({paths.display(paths.NOTEBOOKS)}/{PACKAGE_NOTEBOOKS}); a params file runs only those "
                            f"(other folders: ${NOTEBOOK_DIRS_ENV})")
        params = _mapping_of_names(st.get("params") or {}, f"{where}: 'params'")
        grid = _mapping_of_names(st.get("grid") or {}, f"{where}: 'grid'")
        for key, values in grid.items():
            if not isinstance(values, list):
                raise GridError(f"{where}: 'grid' parameter {key!r} must be a list of values, got {_kind(values)}")
            if not values:
                raise GridError(f"{where}: 'grid' parameter {key!r} has no values (an empty list would run nothing)")
        cells = st.get("cells", [{}])
        if not isinstance(cells, list) or not cells:
            raise GridError(f"{where}: 'cells' must be a non-empty list of mappings, got {_kind(cells)}")
        cells = [_mapping_of_names(c or {}, f"{where}: 'cells' item {j + 1}") for j, c in enumerate(cells)]
        timeout = st.get("timeout")
        if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0):
            raise GridError(f"{where}: 'timeout' must be a positive number of seconds, got {_kind(timeout)}")
        stages.append(Stage(name, nb, params, grid, cells, timeout))
    names = [s.name for s in stages]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GridError(f"{path}: duplicate stage name(s) {dupes}")
    return GridSpec(profile, stages, path)


def papermill_path(path: Path) -> str:
    """A path as papermill must be given it: papermill formats every path with the cell's parameters
    (``{x}`` in a folder name would be replaced, ``{y}`` fail), so braces are doubled to stay literal."""
    return str(path).replace("{", "{{").replace("}", "}}")


def notebook_parameters(notebook: Path) -> dict[str, dict]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (papermill's reading)."""
    import papermill as pm

    try:
        return pm.inspect_notebook(papermill_path(notebook))
    except Exception as err:  # noqa: BLE001 - nbformat and papermill raise many kinds; each means "not a notebook"
        raise GridError(f"{paths.display(notebook)}: not a readable notebook ({type(err).__name__}: "
                        f"{' '.join(str(err).split())[:200]})") from None


def _expected_type(spec: dict) -> str | None:
    """The type a parameter expects: its annotation, else the type of its literal default (None: any)."""
    kind = spec.get("inferred_type_name", "None")
    if kind in _TYPE_CHECKS:
        return kind
    try:
        default = ast.literal_eval(spec.get("default", "None"))
    except (ValueError, SyntaxError):
        return None
    for name in ("bool", "int", "float", "str"):  # bool first: True is also an int
        if type(default).__name__ == name:
            return name
    return None  # lists and None defaults accept a single value too (e.g. one path for a list of paths)


def check_params(spec: GridSpec, stage: Stage, params: dict[str, Any], declared: dict[str, dict]) -> None:
    """Reject unknown names and values of the wrong type, naming the file, stage, parameter and notebook."""
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise GridError(
            f"{spec.source}: stage {stage.name!r}: unknown parameter(s) {unknown} for {stage.notebook.name}; "
            f"it declares {sorted(declared)}"
        )
    options = params.get("masking_options")
    if isinstance(options, dict) and MLM_PROBABILITY in options:
        raise GridError(
            f"{spec.source}: stage {stage.name!r}: masking_options sets mlm_probability, a masked fraction calibrated "
            "per run; a grid cell names the centre_probability it masks with (masking.centre_probability_for converts "
            "a fraction), so that a committed row's options mean one thing"
        )
    for name, value in params.items():
        if value is None or (isinstance(value, str) and value.startswith("@")):
            continue
        kind = _expected_type(declared[name])
        if kind is not None and not _TYPE_CHECKS[kind](value):
            raise GridError(
                f"{spec.source}: stage {stage.name!r}: parameter {name!r} of {stage.notebook.name} expects {kind} "
                f"(default {declared[name].get('default')}), got {value!r}"
            )


def parse_selector(text: str | None, where: str) -> dict[str, str]:
    """``name=value,name=value`` → dict; a value may hold commas inside braces (``masking_options={}``)."""
    if not text:
        return {}
    items, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "{[(" and 1 or 0
        depth -= ch in "}])" and 1 or 0
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    wanted = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise GridError(f"{where}: selector item {item!r} is not name=value")
        name, value = item.split("=", 1)
        wanted[name.strip()] = value.strip()
    return wanted
