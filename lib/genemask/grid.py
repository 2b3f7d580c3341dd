"""Parameter grids → headless papermill runs, cached, in parallel, with a failure report.

A params file lists stages in order; each stage is a notebook plus a grid::

    profile: demo
    stages:
      - name: pmi
        notebook: notebooks/01_pmi.ipynb
        params: {max_n: 8}              # the same for every cell
        grid: {min_count: [5, 101]}     # cartesian product
        cells: [{k: 6}, {k: 4}]         # explicit list, crossed with the grid
      - name: masking
        notebook: notebooks/02_masking.ipynb
        grid: {rank_table: ["@pmi/kmer_ranking.csv"]}

A value ``"@stage"`` or ``"@stage/file"`` refers to an earlier stage: the cell is repeated for
each successful cell of that stage, with its ``out_dir`` (or a file in it) substituted.

Each cell runs as ``runs/<profile>/<stage>/<key>.ipynb`` with ``out_dir`` =
``runs/<profile>/<stage>/<key>/`` when the notebook declares ``out_dir``; ``key`` hashes the
notebook's content, the cell's parameters and the package version, so a finished cell is skipped on
re-run and an edited notebook or parameter reruns only what changed. A cell is finished only once
its executed notebook has been moved into place; a failing cell leaves ``<key>.failed.ipynb`` and
its error in the report, never a cache entry, and does not stop the other cells.
"""
from __future__ import annotations

import ast
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import __version__, paths
from .io import write_json, write_text

_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
}


class GridError(ValueError):
    """A params file or cell that cannot run; raised before anything executes."""


@dataclass
class Stage:
    name: str
    notebook: Path
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    timeout: int | None = None  # seconds per cell


@dataclass
class Cell:
    stage: str
    notebook: Path
    params: dict[str, Any]
    key: str
    output: Path
    out_dir: Path | None
    status: str = "pending"  # pending | cached | done | failed | skipped
    seconds: float = 0.0
    error: str = ""


@dataclass
class GridSpec:
    profile: str
    stages: list[Stage]
    source: Path


def load_spec(path: str | Path) -> GridSpec:
    """Read and check a params file: stage names, notebooks, and the shape of each section."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GridError(f"{path}: no such params file") from None
    except yaml.YAMLError as err:
        raise GridError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    if not isinstance(raw, dict) or "stages" not in raw:
        raise GridError(f"{path}: expected a mapping with 'profile' and 'stages'")
    profile = str(raw.get("profile") or path.stem)
    stages = []
    for i, st in enumerate(raw["stages"] or []):
        where = f"{path}: stage {i + 1}"
        if not isinstance(st, dict):
            raise GridError(f"{where}: expected a mapping")
        unknown = set(st) - {"name", "notebook", "params", "grid", "cells", "timeout"}
        if unknown:
            raise GridError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: name, notebook, params, grid, cells, timeout")
        for key in ("name", "notebook"):
            if key not in st:
                raise GridError(f"{where}: missing '{key}'")
        nb = (paths.ROOT / st["notebook"]).resolve()
        if not nb.exists():
            raise GridError(f"{where} ({st['name']}): notebook {st['notebook']} does not exist")
        grid = st.get("grid") or {}
        if not isinstance(grid, dict) or not all(isinstance(v, list) for v in grid.values()):
            raise GridError(f"{where} ({st['name']}): 'grid' must map parameter names to lists of values")
        cells = st.get("cells") or [{}]
        if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
            raise GridError(f"{where} ({st['name']}): 'cells' must be a list of mappings")
        stages.append(Stage(st["name"], nb, dict(st.get("params") or {}), grid, cells, st.get("timeout")))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise GridError(f"{path}: duplicate stage names in {names}")
    return GridSpec(profile, stages, path)


def notebook_parameters(notebook: Path) -> dict[str, dict]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (papermill's reading)."""
    import papermill as pm

    return pm.inspect_notebook(str(notebook))


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


def _check_params(stage: Stage, params: dict[str, Any], declared: dict[str, dict]) -> None:
    """Reject unknown names and values of the wrong type, naming the parameter and the notebook."""
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise GridError(
            f"stage {stage.name!r}: unknown parameter(s) {unknown} for {stage.notebook.name}; "
            f"it declares {sorted(declared)}"
        )
    for name, value in params.items():
        if value is None or (isinstance(value, str) and value.startswith("@")):
            continue
        kind = _expected_type(declared[name])
        if kind is not None and not _TYPE_CHECKS[kind](value):
            raise GridError(
                f"stage {stage.name!r}: parameter {name!r} of {stage.notebook.name} expects {kind} "
                f"(default {declared[name].get('default')}), got {value!r}"
            )


def _expand_env(value: Any, where: str) -> Any:
    """Expand ``${VAR}`` in string values (e.g. ``${GENEMASK_DATA}/genome/x.fa``) when a cell runs;
    the key hashes the unexpanded text, so results keep their keys across machines."""
    if isinstance(value, list):
        return [_expand_env(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v, where) for k, v in value.items()}
    if isinstance(value, str) and "$" in value:
        expanded = _ENV_VAR.sub(_env_value, value)
        if "$" in expanded:
            raise GridError(f"{where}: {value!r} uses an environment variable that is not set")
        return expanded
    return value


_ENV_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _env_value(match: re.Match) -> str:
    """A variable's value; a relative path that exists is made absolute, because papermill runs each
    notebook in its own folder (``GENEMASK_DATA=../shared/data`` must mean the caller's ../shared)."""
    value = os.environ.get(match.group(1) or match.group(2))
    if value is None:
        return match.group(0)
    return os.path.abspath(value) if value and not os.path.isabs(value) and os.path.exists(value) else value


def _notebook_code(notebook: Path) -> str:
    """The notebook's code cells, which decide its results (its stored outputs change whenever it
    is re-executed and must not)."""
    import nbformat

    return json.dumps([c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"])


def _cell_key(code: str, params: dict[str, Any]) -> str:
    """Hash of what decides a cell's result: the notebook's code, the parameters with upstream
    paths made portable, and the package version."""
    digest = hashlib.sha256()
    digest.update(code.encode())
    digest.update(json.dumps({k: _portable(v) for k, v in params.items()}, sort_keys=True, default=str).encode())
    digest.update(__version__.encode())
    return digest.hexdigest()[:16]


_REF = re.compile(r"@(?P<stage>[\w-]+)(?:\[(?P<selector>[^\]]+=[^\]]*)\])?(?:/(?P<file>.+))?")


def _expand_refs(params: dict[str, Any], done: dict[str, list[Cell]], stage: str) -> list[dict[str, Any]]:
    """Replace ``@stage[/file]`` values by each finished upstream cell's out_dir (cartesian over refs).

    ``@stage[name=value,...]/file`` keeps only the upstream cells run with those parameters, e.g.
    ``@pmi[pmi=segmentation]/kmer_ranking.csv`` for one ranking out of several.
    """
    options: list[list[tuple[str, Any]]] = []
    for name, value in params.items():
        if isinstance(value, str) and value.startswith("@"):
            match = _REF.fullmatch(value)
            if match is None:
                raise GridError(f"stage {stage!r}: parameter {name!r}: cannot parse reference {value!r} (@stage[name=value]/file)")
            ref, selector, sub = match.group("stage"), match.group("selector"), match.group("file") or ""
            if ref not in done:
                raise GridError(f"stage {stage!r}: parameter {name!r} refers to {value!r}, not an earlier stage")
            wanted = dict(item.split("=", 1) for item in selector.split(",")) if selector else {}
            selected = [c for c in done[ref] if all(str(c.params.get(k)) == v for k, v in wanted.items())]
            if not selected and wanted:
                raise GridError(f"stage {stage!r}: parameter {name!r}: no cell of stage {ref!r} has {selector}")
            ok = [c for c in selected if c.status in ("done", "cached") and c.out_dir is not None]
            options.append([(name, str(c.out_dir / sub) if sub else str(c.out_dir)) for c in ok])
        else:
            options.append([(name, value)])
    return [dict(choice) for choice in itertools.product(*options)]


def _combinations(stage: Stage) -> list[dict[str, Any]]:
    """The stage's parameter sets before ``@`` references: params, crossed grid, explicit cells."""
    combos = [dict(zip(stage.grid, values)) for values in itertools.product(*stage.grid.values())] or [{}]
    return [{**stage.params, **combo, **explicit} for explicit in stage.cells for combo in combos]


def plan_stage(spec: GridSpec, stage: Stage, done: dict[str, list[Cell]]) -> list[Cell]:
    """All cells of a stage, with keys and output locations, checked against the notebook's parameters."""
    declared = notebook_parameters(stage.notebook)
    stage_dir = paths.runs_dir(spec.profile, stage.name)
    cells: list[Cell] = []
    code = _notebook_code(stage.notebook)  # read once per stage, not once per cell
    for base in _combinations(stage):
        _check_params(stage, base, declared)
        for params in _expand_refs(base, done, stage.name):
            key = _cell_key(code, params)
            out_dir = None
            if "out_dir" in declared and "out_dir" not in params:
                out_dir = stage_dir / key
                params = {**params, "out_dir": str(out_dir)}
            elif "out_dir" in params:
                out_dir = Path(params["out_dir"])
            _expand_env(params, f"stage {stage.name!r}")  # fail before running, not in the cell
            cells.append(Cell(stage.name, stage.notebook, params, key, stage_dir / f"{key}.ipynb", out_dir))
    return cells


def _run_cell(cell: Cell, timeout: int | None) -> Cell:
    if cell.output.exists():
        cell.status = "cached"
        return cell
    cell.output.parent.mkdir(parents=True, exist_ok=True)
    partial = cell.output.with_name(f".{cell.key}.running.ipynb")
    failed = cell.output.with_name(f"{cell.key}.failed.ipynb")
    params_file = cell.output.with_name(f"{cell.key}.params.yaml")
    write_text(params_file, yaml.safe_dump(_expand_env(cell.params, cell.stage), sort_keys=True))
    cmd = [sys.executable, "-m", "papermill", str(cell.notebook), str(partial), "-f", str(params_file),
           "--cwd", str(cell.notebook.parent), "--log-level", "WARNING", "--no-progress-bar", "-k", "python3"]
    if timeout:
        cmd += ["--execution-timeout", str(timeout)]
    env = {**os.environ, "GENEMASK_QUIET": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    cell.seconds = round(time.perf_counter() - start, 2)
    if proc.returncode == 0:
        os.replace(partial, cell.output)
        failed.unlink(missing_ok=True)
        cell.status = "done"
    else:
        if partial.exists():
            os.replace(partial, failed)
        cell.status = "failed"
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln or "Exception" in ln]
        cell.error = (errors or lines or ["papermill failed"])[-1][:500]
    return cell


def run_grid(params_file: str | Path, jobs: int = 1, dry_run: bool = False,
             stages: list[str] | None = None, echo=print) -> list[Cell]:
    """Run every cell of every stage (or of ``stages``); return the cells with their status.

    All parameters of the first stage are checked before anything runs; later stages are checked
    as soon as their upstream cells are known (their ``@`` references need them).
    """
    spec = load_spec(params_file)
    selected = [s for s in spec.stages if not stages or s.name in stages]
    if stages:
        missing = sorted(set(stages) - {s.name for s in spec.stages})
        if missing:
            raise GridError(f"{spec.source}: no stage(s) {missing}; stages are {[s.name for s in spec.stages]}")
    for stage in selected:  # fail fast on unknown or mistyped parameters in any stage, before running anything
        declared = notebook_parameters(stage.notebook)
        for base in _combinations(stage):
            _check_params(stage, base, declared)
    done: dict[str, list[Cell]] = {}
    every: list[Cell] = []
    for stage in spec.stages:
        if stage not in selected:
            # Unselected stages still provide cached upstream outputs for @references.
            cells = plan_stage(spec, stage, done)
            for c in cells:
                c.status = "cached" if c.output.exists() else "skipped"
            done[stage.name] = cells
            continue
        cells = plan_stage(spec, stage, done)
        echo(f"[{stage.name}] {len(cells)} cell(s), notebook {paths.display(stage.notebook)}")
        if dry_run:
            for c in cells:
                c.status = "cached" if c.output.exists() else "planned"
                echo(f"  {c.status:7s} {c.key} {json.dumps({k: v for k, v in c.params.items() if k != 'out_dir'}, default=str)}")
        else:
            with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
                for c in pool.map(lambda c: _run_cell(c, stage.timeout), cells):
                    msg = f"  {c.status:7s} {c.key} {c.seconds:7.1f}s"
                    echo(msg + (f"  ERROR: {c.error}" if c.error else ""))
        done[stage.name] = cells
        every += cells
    if not dry_run:
        report = paths.runs_root() / spec.profile / "grid_report.json"
        write_json(report, [
            {**{k: v for k, v in asdict(c).items() if k not in ("notebook", "output", "out_dir")},
             "notebook": paths.display(c.notebook), "output": str(c.output),
             "out_dir": str(c.out_dir) if c.out_dir else None}
            for c in every
        ])
        collect_results(spec.profile, every)
        failed = [c for c in every if c.status == "failed"]
        echo(f"grid {spec.profile}: {sum(c.status == 'done' for c in every)} run, "
             f"{sum(c.status == 'cached' for c in every)} cached, {len(failed)} failed (report: {report})")
    return every


#: Result files small enough to commit: what the book reads (checkpoints and big tables stay in runs/).
RESULT_SUFFIXES = (".csv", ".json", ".txt")
RESULT_MAX_BYTES = 1 << 20


def _portable(value: Any) -> Any:
    """An upstream cell's output path as ``@stage/key/file`` (machine-independent, and the key
    names the upstream cell in its own ``cells.csv``); anything else unchanged."""
    runs = str(paths.runs_root()) + os.sep
    if isinstance(value, str) and value.startswith(runs):
        parts = value[len(runs):].split(os.sep)  # profile, stage, key, file...
        return "@" + "/".join(parts[1:])
    return value


def collect_results(profile: str, cells: list[Cell]) -> Path:
    """Copy each finished cell's small tidy result files to ``results/<profile>/<stage>/<key>/`` and
    write ``results/<profile>/<stage>/cells.csv`` (key + parameters), the book's only input."""
    import pandas as pd

    root = paths.results_dir(profile)
    by_stage: dict[str, list[Cell]] = {}
    for cell in cells:
        by_stage.setdefault(cell.stage, []).append(cell)
    for stage, stage_cells in by_stage.items():
        rows = []
        for cell in stage_cells:
            if cell.status not in ("done", "cached") or cell.out_dir is None or not cell.out_dir.is_dir():
                continue
            for file in sorted(cell.out_dir.iterdir()):
                if file.suffix in RESULT_SUFFIXES and file.stat().st_size <= RESULT_MAX_BYTES:
                    write_text(root / stage / cell.key / file.name, file.read_text())
            rows.append({"key": cell.key, **{k: json.dumps(v) if isinstance(v, (list, dict)) else _portable(v)
                                           for k, v in cell.params.items() if k != "out_dir"}})
        if rows:
            from .io import write_with

            frame = pd.DataFrame(rows)
            write_with(root / stage / "cells.csv", lambda tmp: frame.to_csv(tmp, index=False))
    return root
