"""The whole grid as cells with keys and dependencies, planned before anything runs.

Every cell of every stage is known up front: a ``@stage`` reference expands over all *planned*
cells of that stage (not over those that happened to succeed), so a mistyped reference or a selector
that matches nothing fails here, before the upstream stage runs, and ``--dry-run`` lists every cell.
A downstream cell whose upstream cell failed is reported as blocked, never dropped.

Each cell runs as ``runs/<profile>/<stage>/<key>.ipynb`` with ``out_dir`` =
``runs/<profile>/<stage>/<key>/`` when the notebook declares ``out_dir``; ``key`` is
:func:`genemask.store.cell_key`: the stage's name and the cell's parameters (upstream paths made
portable). The notebook's code and the library it runs are the cell's freshness (:mod:`.state`),
not its identity.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..store import cell_key, key_portable  # noqa: F401 - the key formula's one home; callers import them here too
from .spec import REF, GridError, GridSpec, Stage, check_params, load_spec, notebook_parameters, parse_selector


@dataclass
class Cell:
    stage: str
    notebook: Path
    params: dict[str, Any]
    key: str
    output: Path  # the executed notebook
    out_dir: Path | None
    deps: list[tuple[str, str]] = field(default_factory=list)  # (stage, key) of upstream cells
    timeout: int | None = None
    status: str = "pending"  # after a run: done | cached | stale | failed | blocked | planned
    seconds: float = 0.0
    error: str = ""

    @property
    def marker(self) -> Path:
        """The run record, written last: its presence (with ``out_dir``) means the cell finished."""
        return self.output.with_name(f"{self.key}.provenance.json")

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.key}"

    def shown_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k != "out_dir"}


@dataclass
class Plan:
    spec: GridSpec
    cells: list[Cell]

    def stage_cells(self, stage: str) -> list[Cell]:
        return [c for c in self.cells if c.stage == stage]

    def cell(self, stage: str, key: str) -> Cell:
        for c in self.cells:
            if c.stage == stage and c.key == key:
                return c
        raise GridError(f"{self.spec.source}: no cell {stage}/{key} in the plan")

    def by_id(self) -> dict[str, Cell]:
        return {c.id: c for c in self.cells}


def portable_params(params: dict[str, Any]) -> dict[str, Any]:
    """A cell's parameters as its provenance records them: no ``out_dir``, upstream outputs as
    ``@stage/key/file``, data and repository paths relative (see :func:`provenance.portable_value`)."""
    from .provenance import portable_value

    return portable_value({k: key_portable(v) for k, v in params.items() if k != "out_dir"})


def notebook_code(notebook: Path) -> str:
    """The notebook's code cells, which decide its results (its stored outputs change whenever it
    is re-executed and must not)."""
    import nbformat

    return json.dumps([c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"])


_ENV_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _env_value(match: re.Match) -> str:
    """A variable's value; a relative path that exists is made absolute, because papermill runs each
    notebook in its own folder (``GENEMASK_DATA=../shared/data`` must mean the caller's ../shared)."""
    value = os.environ.get(match.group(1) or match.group(2))
    if value is None:
        return match.group(0)
    return os.path.abspath(value) if value and not os.path.isabs(value) and os.path.exists(value) else value


def expand_env(value: Any, where: str) -> Any:
    """Expand ``${VAR}`` in string values (e.g. ``${GENEMASK_DATA}/genome/x.fa``) when a cell runs;
    the key hashes the unexpanded text, so results keep their keys across machines."""
    if isinstance(value, list):
        return [expand_env(v, where) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v, where) for k, v in value.items()}
    if isinstance(value, str) and "$" in value:
        expanded = _ENV_VAR.sub(_env_value, value)
        if _ENV_VAR.search(expanded):  # a ``$`` not before a name (``$(``) is text
            raise GridError(f"{where}: {value!r} uses an environment variable that is not set")
        return expanded
    return value


#: The most cells a params file may plan (the paper's profiles plan a few hundred): a grid past it is
#: refused at once, before planning for minutes (a 10^6-cell product) or filling runs/.
MAX_CELLS = 20_000


def check_cell_count(count: int, where: str, at_least: bool = False) -> None:
    """Refuse a plan past :data:`MAX_CELLS` (``at_least``: ``count`` is a running total, not the whole)."""
    if count > MAX_CELLS:
        raise GridError(f"{where}: would plan {'at least ' if at_least else ''}{count:,} cells, over the limit of "
                        f"{MAX_CELLS:,} (genemask.grid.plan.MAX_CELLS); split the grid")


def combinations(stage: Stage, where: str = "") -> list[dict[str, Any]]:
    """The stage's parameter sets before ``@`` references: params, crossed grid, explicit cells."""
    check_cell_count(math.prod(len(v) for v in stage.grid.values()) * len(stage.cells), where or f"stage {stage.name!r}")
    combos = [dict(zip(stage.grid, values)) for values in itertools.product(*stage.grid.values())] or [{}]
    return [{**stage.params, **combo, **explicit} for explicit in stage.cells for combo in combos]


def _matches(cell: Cell, wanted: dict[str, str]) -> bool:
    return all(k in cell.params and str(cell.params[k]) == v for k, v in wanted.items())


def _expand_refs(spec: GridSpec, stage: Stage, params: dict[str, Any],
                 planned: dict[str, list[Cell]]) -> list[tuple[dict[str, Any], list[tuple[str, str]]]]:
    """Each combination of upstream cells the ``@`` references select: (params, upstream cell ids)."""
    options: list[list[tuple[str, Any, tuple[str, str] | None]]] = []
    names = [s.name for s in spec.stages]
    for name, value in params.items():
        if not (isinstance(value, str) and value.startswith("@")):
            options.append([(name, value, None)])
            continue
        where = f"{spec.source}: stage {stage.name!r}: parameter {name!r}"
        match = REF.fullmatch(value)
        if match is None:
            raise GridError(f"{where}: cannot parse reference {value!r} (@stage[name=value]/file)")
        ref, sub = match.group("stage"), match.group("file") or ""
        if ref not in planned:
            later = ref in names
            raise GridError(f"{where}: {value!r} refers to {'a later stage' if later else 'no stage'} {ref!r}; "
                            f"earlier stages are {sorted(planned) or 'none'}")
        wanted = parse_selector(match.group("selector"), f"{where}: {value!r}")
        selected = [c for c in planned[ref] if _matches(c, wanted)]
        if not selected:
            seen = {k: sorted({str(c.params.get(k)) for c in planned[ref]}) for k in wanted}
            raise GridError(f"{where}: {value!r}: no cell of stage {ref!r} has {match.group('selector')} "
                            f"(its cells have {seen})")
        if any(c.out_dir is None for c in selected):
            raise GridError(f"{where}: {value!r}: stage {ref!r} has no out_dir to refer to")
        options.append([(name, str(c.out_dir / sub) if sub else str(c.out_dir), (c.stage, c.key)) for c in selected])
    check_cell_count(math.prod(len(o) for o in options), f"{spec.source}: stage {stage.name!r}")
    out = []
    for choice in itertools.product(*options):
        out.append(({n: v for n, v, _ in choice}, [d for _, _, d in choice if d is not None]))
    return out


def plan_grid(source: str | Path | GridSpec, check_env: bool = True) -> Plan:
    """Every cell of every stage, checked: parameters against each notebook's ``parameters`` cell,
    references and selectors against the planned upstream cells, and (``check_env``) that every
    ``${VAR}`` is set. Nothing runs."""
    spec = source if isinstance(source, GridSpec) else load_spec(source)
    planned: dict[str, list[Cell]] = {}
    cells: list[Cell] = []
    for stage in spec.stages:
        try:
            declared = notebook_parameters(stage.notebook)
        except GridError as err:
            raise GridError(f"{spec.source}: stage {stage.name!r}: {err}") from None
        stage_dir = paths.runs_dir(spec.profile, stage.name)
        stage_cells: list[Cell] = []
        expansions, total = [], len(cells)
        for base in combinations(stage, f"{spec.source}: stage {stage.name!r}"):
            check_params(spec, stage, base, declared)
            expansions.append(_expand_refs(spec, stage, base, planned))
            total += len(expansions[-1])
            check_cell_count(total, f"{spec.source}: stages up to {stage.name!r}", at_least=True)
        for expansion in expansions:
            for params, deps in expansion:
                key = cell_key(stage.name, params)
                out_dir = None
                if "out_dir" in params:
                    out_dir = Path(params["out_dir"])
                elif "out_dir" in declared:
                    out_dir = stage_dir / key
                    params = {**params, "out_dir": str(out_dir)}
                if check_env:  # fail before running; the out_dir the grid chose is a path, never expanded
                    expand_env({k: v for k, v in params.items() if k != "out_dir" or out_dir != stage_dir / key},
                               f"{spec.source}: stage {stage.name!r}")
                if any(c.key == key for c in stage_cells):
                    continue  # the same cell asked twice (e.g. by a grid and an explicit cell)
                stage_cells.append(Cell(stage.name, stage.notebook, params, key, stage_dir / f"{key}.ipynb",
                                        out_dir, deps, stage.timeout))
        planned[stage.name] = stage_cells
        cells += stage_cells
    return Plan(spec, cells)
