"""``genemask grid PARAMS --verify``: rerun stale cells by the code of now and compare their results
with the committed ones, so a cell made by older code reads verified where its numbers still hold.

Each cell reruns in a scratch folder (a ``runs/`` of its own under the cache; its upstream outputs
linked from this machine's ``runs/`` or copied from ``results/``), never in the real ``runs/`` or
``results/``. Its result files, stored as ``results/`` stores them, are compared with the
committed ones:

* a deterministic cell (counts, rankings, masks, enrichment tests) must give the same files:
  text equal, or numbers equal to a relative 1e-9 (floats printed from sums move in the 15th
  digit), timings (columns and keys named ``*seconds*``) left out;
* a training cell (its code runs ``pretrain.py`` or ``finetune.py``) drifts chaotically across
  CPUs: it is compared bit for bit only when its record names this machine's CPU (model and
  flag set); otherwise its final metric (one per result file, :data:`FINAL_METRICS`) must lie
  within the 95 % prediction interval of its method's committed seeds (the cells of the same
  notebook whose parameters differ only in ``seed``; at least three).
An equal cell's provenance gains a ``reproduced`` entry (code hash, commit, CPU, which kind of
comparison) and reads verified (:mod:`.state`); a different one stays stale and its differences
are printed (file, column, old, new). A sample verifies the cells it reran, never more.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .. import paths, store
from ..io import write_json
from . import provenance
from .code import Library
from ..store import is_result_file, stored_text
from .plan import Cell, Plan, notebook_code, plan_grid
from .spec import GridError
from .state import REMADE, STALE, GridState, grid_state

#: Relative tolerance of a deterministic float: a sum printed in another order moves the 15th digit.
REL_TOL = 1e-9
#: Modules whose code trains a model: such a cell is reproducible across CPUs in distribution only.
TRAINING_FILES = ("pretrain.py", "finetune.py")
#: Each training result file's one final metric: (the rows it averages, by column value; the column).
#: One number a cell, not one a row: with 3 seeds a prediction interval Bonferroni-corrected over a
#: few-shot table's 60 rows is wider than the metric's range, and would pass any rerun.
FINAL_METRICS: dict[str, tuple[dict[str, str], str]] = {
    "summary.json": ({}, "final_val_perplexity"),
    "fewshot_summary.csv": ({"metric": "mcc"}, "mean"),  # mean MCC over datasets and shots
    "gue_scores.csv": ({}, "score"),  # mean score over tasks
}
SHOWN_DIFFERENCES = 10
#: A rerun on another CPU is judged against this prediction interval of its method's seeds, and
#: needs at least MIN_SEEDS of them (:func:`judge_in_distribution`).
IN_DISTRIBUTION_LEVEL = 0.95
MIN_SEEDS = 3


@dataclass
class Difference:
    file: str
    column: str  # a CSV column, a JSON key path, or "" for the whole file
    old: Any
    new: Any
    row: str = ""

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.row}]" if self.row else "") + (f" {self.column}" if self.column else "")
        return f"{where}: {_short(self.old)} -> {_short(self.new)}"


@dataclass
class Outcome:
    cell: Cell
    kind: str = ""  # how it was compared: "equal", "bit for bit on the same CPU", "in distribution"
    equal: bool = False
    differences: list[Difference] = field(default_factory=list)
    note: str = ""  # the distribution judged against, or why the rerun failed
    cpu_seconds: float | None = None


def _short(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value  # a numpy scalar as the number it holds
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_timing(name: str) -> bool:
    """Wall-clock columns and keys (``seconds``, ``data_seconds``, ``seconds_per_100_steps``)."""
    return "seconds" in name


def _close(old: Any, new: Any, rel_tol: float) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return old == new
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        if math.isnan(old) or math.isnan(new):
            return math.isnan(old) and math.isnan(new)
        return math.isclose(old, new, rel_tol=rel_tol, abs_tol=0.0)
    return old == new


def compare_json(name: str, old: Any, new: Any, rel_tol: float, where: str = "") -> list[Difference]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            if is_timing(str(key)):
                continue
            path = f"{where}.{key}" if where else str(key)
            if key not in old or key not in new:
                out.append(Difference(name, path, old.get(key, "<absent>"), new.get(key, "<absent>")))
            else:
                out += compare_json(name, old[key], new[key], rel_tol, path)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in compare_json(name, a, b, rel_tol, f"{where}[{i}]")]
    return [] if _close(old, new, rel_tol) else [Difference(name, where, old, new)]


def compare_csv(name: str, old_text: str, new_text: str, rel_tol: float) -> list[Difference]:
    """Column by column: numbers to ``rel_tol``, everything else exactly; timing columns left out."""
    import numpy as np
    import pandas as pd

    old, new = (pd.read_csv(io.StringIO(t), keep_default_na=False, na_values=[""]) for t in (old_text, new_text))
    columns = [c for c in old.columns if not is_timing(c)]
    if [c for c in new.columns if not is_timing(c)] != columns:
        return [Difference(name, "columns", list(old.columns), list(new.columns))]
    if len(old) != len(new):
        return [Difference(name, "rows", len(old), len(new))]
    out = []
    for column in columns:
        a, b = old[column], new[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(float), b.to_numpy(float)
            same = np.isclose(x, y, rtol=rel_tol, atol=0.0) | (np.isnan(x) & np.isnan(y))
        else:  # a missing text stays missing through astype(str) in pandas 3, and NaN != NaN
            same = ((a.astype(str) == b.astype(str)) | (a.isna() & b.isna())).to_numpy()
        for row in np.flatnonzero(~same)[:SHOWN_DIFFERENCES]:
            out.append(Difference(name, column, a.iloc[row], b.iloc[row], row=f"row {row + 1}"))
    return out


def compare_files(committed: Path, rerun: dict[str, str], rel_tol: float, left_out: list[str] = (),
                  profile: str | None = None) -> list[Difference]:
    """Differences between a committed result folder and a rerun's files as results/ stores them.
    With ``profile``, the committed text's paths are read as results/ would store them now (a file
    collected before a path form became portable, e.g. ``runs/cpu/<stage>/<key>/checkpoint``, names
    the same run as the rerun's ``@<stage>/<key>/checkpoint``)."""
    have = {p.name: p.read_text() if profile is None else store.portable_text(p.read_text(), profile)
            for p in sorted(committed.iterdir()) if is_result_file(p)}
    out = []
    for name in sorted(set(have) | set(rerun)):
        if name in left_out:
            continue
        if name not in have or name not in rerun:
            out.append(Difference(name, "", "<absent>" if name not in have else "<present>",
                                  "<absent>" if name not in rerun else "<present>"))
            continue
        old, new = have[name], rerun[name]
        if old == new:
            continue
        if name.endswith(".csv"):
            out += compare_csv(name, old, new, rel_tol)
        elif name.endswith(".json"):
            out += compare_json(name, json.loads(old), json.loads(new), rel_tol)
        else:
            out.append(Difference(name, "", old[:60], new[:60]))
    return out


def _signature(cell: Cell, by_id: dict[str, Cell]) -> str:
    """A cell's method: its notebook and parameters without ``seed``, upstream cells by their method."""
    params = {}
    for name, value in cell.shown_params().items():
        if name == "seed":
            continue
        dep = next((d for d in cell.deps if isinstance(value, str) and f"/{d[1]}" in value), None)
        params[name] = ["@", _signature(by_id[f"{dep[0]}/{dep[1]}"], by_id), value.split(dep[1], 1)[1]] if dep else value
    return json.dumps([paths.display(cell.notebook), params], sort_keys=True, default=str)


def _final_metrics(files: dict[str, str]) -> dict[tuple[str, str], float]:
    """{(file, which rows): final metric} of a training cell's result files (:data:`FINAL_METRICS`)."""
    import pandas as pd

    out = {}
    for name, (where, column) in FINAL_METRICS.items():
        if name not in files:
            continue
        if name.endswith(".json"):
            value = json.loads(files[name]).get(column)
            if isinstance(value, (int, float)):
                out[name, ""] = float(value)
            continue
        frame = pd.read_csv(io.StringIO(files[name]))
        for key, wanted in where.items():
            frame = frame[frame[key].astype(str) == wanted] if key in frame else frame.iloc[:0]
        if len(frame):
            rows = " ".join(f"{k}={v}" for k, v in where.items())
            out[name, f"mean over {len(frame)} rows" + (f" with {rows}" if rows else "")] = float(frame[column].mean())
    return out


def judge_in_distribution(rerun: dict[str, str], seeds: list[dict[str, str]],
                          level: float = IN_DISTRIBUTION_LEVEL) -> tuple[bool, list[Difference], str]:
    """Is each final metric of the rerun inside the prediction interval of its method's committed
    seeds (``seeds``: their files)? A new seed's metric falls inside ``mean ± t·sd·√(1 + 1/n)`` with
    probability ``level`` where seeds are normal, whereas the seeds' min-max range holds it only
    (n - 1)/(n + 1) of the time: half at 3 seeds, so a faithful rerun would read "different" every
    other time. Bonferroni over the k metrics judged keeps the chance of calling a faithful rerun
    different at most 1 - ``level``; each file has one metric (:data:`FINAL_METRICS`), so k is small.
    Fewer than MIN_SEEDS seeds give no interval worth the name (at 2 it is ±15 sd wide)."""
    from scipy import stats

    mine = _final_metrics(rerun)
    spread = [_final_metrics(files) for files in seeds]
    if not mine:
        return False, [], f"no final metric ({', '.join(FINAL_METRICS)}) in the rerun"
    if len(seeds) < MIN_SEEDS:
        return False, [], (f"{len(seeds)} committed seed(s) of its method: too few for a prediction interval "
                           f"(at least {MIN_SEEDS}) to judge a rerun on another CPU against")
    per_metric = 1 - (1 - level) / len(mine)  # Bonferroni over the metrics judged
    out, notes = [], []
    for (file, row), value in sorted(mine.items()):
        column = FINAL_METRICS[file][1]
        values = [s[file, row] for s in spread if (file, row) in s]
        if len(values) < MIN_SEEDS:
            out.append(Difference(file, column, f"{len(values)} seed(s)", value, row))
            continue
        n = len(values)
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        half = float(stats.t.ppf(1 - (1 - per_metric) / 2, n - 1)) * sd * math.sqrt(1 + 1 / n)
        low, high = mean - half, mean + half
        label = f"{n} seeds' {level:.0%} prediction interval {low:.4g}-{high:.4g}"
        if low <= value <= high:
            notes.append(f"{column}{f' [{row}]' if row else ''} {value:.4g} within {label}")
        else:
            out.append(Difference(file, column, label, value, row))
    note = "; ".join(notes[:3]) + (f"; and {len(notes) - 3} more" if len(notes) > 3 else "")
    if len(mine) > 1:
        note += f" (Bonferroni over {len(mine)} metrics)"
    return not out, out, note


def trains(library: Library, notebook: Path) -> bool:
    """Whether a notebook's code trains a model (:data:`TRAINING_FILES`): its reruns drift across CPUs."""
    return any(f in library.code_files(notebook_code(notebook)) for f in TRAINING_FILES)


def same_cpu(record: dict, here: dict) -> bool:
    cpu = record.get("cpu") or {}
    return bool(cpu.get("model")) and cpu.get("model") == here.get("model") and cpu.get("flags_hash") == here.get("flags_hash")


def _committed_files(folder: Path) -> dict[str, str]:
    return store.result_files(folder)


def _stage_inputs(cell: Cell, gs: GridState, scratch: Path, profile: str) -> str:
    """Put the cell's upstream outputs and run records into the scratch runs/; '' or why not."""
    for stage, key in cell.deps:
        dep = gs.plan.cell(stage, key)
        target = scratch / profile / stage / key
        record_file = scratch / profile / stage / f"{key}.provenance.json"
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        real = paths.runs_dir(profile, stage) / key
        if store.read_record(dep.marker) and real.is_dir():
            target.symlink_to(real, target_is_directory=True)
            shutil.copyfile(dep.marker, record_file)
            continue
        st = gs.of(dep)
        committed = store.cell_dir(profile, stage, st.record_key) if st.record_key else None
        if st.record is None or committed is None or not committed.is_dir():
            return f"upstream {stage}/{key} has no outputs here (not in runs/ or results/)"
        shutil.copytree(committed, target)
        # its record as it is now: an upstream verified earlier in this run gives its downstream the reproduction
        write_json(record_file, store.read_record(committed / store.RECORD) or st.record)
    return ""


def rerun(cell: Cell, params_file: Path, scratch: Path, log: Path) -> tuple[int, dict | None]:
    """Run one planned cell with ``GENEMASK_RUNS=scratch``; (exit status, its run record)."""
    env = {**os.environ, "GENEMASK_RUNS": str(scratch)}
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "genemask.grid.cell", str(params_file.resolve()), cell.stage, cell.key],
                              env=env, stdout=out, stderr=subprocess.STDOUT)
    record = store.read_record(scratch / cell.marker.relative_to(paths.runs_root()))
    return proc.returncode, record


def _upstream_stale(reason: str) -> bool:
    """A reason a rerun of this cell alone cannot remove (its upstream is itself stale or not run)."""
    return reason.startswith("upstream ") and not reason.endswith(REMADE)


def choose(plan: Plan, gs: GridState, stages: list[str] | None, sample: int | None) -> list[Cell]:
    """The stale collected cells to rerun: the cheapest first by recorded CPU (else wall) seconds,
    or the ``sample`` cheapest of each stage. A sample takes first the cells whose upstream outputs
    are at hand (rerun by this verify, kept by ``results/``, or in this machine's runs/: a checkpoint
    results/ does not keep), then the cells made on this machine's CPU: only those can be compared
    bit for bit, the strongest verification a training cell can get (on another CPU it drifts and is
    judged in distribution). Where no cell of a sampled stage has its inputs at hand, the one whose
    missing upstream cells cost least is taken with them, rerun first: a downstream stage is never
    "sampled" by a rerun that cannot start, nor by a training cell no rerun here could judge (made on
    another CPU, its method with fewer than MIN_SEEDS committed seeds). A cell stale only through
    stale upstream cells is left out: its own code is the code of now, and a rerun cannot make its
    upstream fresh. One whose upstream is done but was remade since it ran is rerun: on the upstream
    of now it can be verified."""
    here = provenance.cpu_description()
    profile = plan.spec.profile

    def cost(cell: Cell) -> float:
        record = gs.of(cell).record or {}
        seconds = record.get("cpu_seconds") or record.get("wall_seconds")
        return float(seconds) if seconds else math.inf

    def at_hand(cell: Cell, stage: str, key: str) -> bool:
        """Whether the outputs of upstream ``stage/key`` that ``cell`` reads are here: rerun by this
        verify, in this machine's runs/, or files results/ keeps (a ranking; never a checkpoint)."""
        if any((c.stage, c.key) == (stage, key) for c in chosen):
            return True
        dep = plan.cell(stage, key)
        if (paths.runs_dir(profile, stage) / key).is_dir() and bool(store.read_record(dep.marker)):
            return True
        record_key = gs.of(dep).record_key
        refs = [ref for ref in store.input_references(cell.params) if (ref.stage, ref.key) == (stage, key)]
        return bool(record_key and refs) and all(ref.file and replace(ref, key=record_key).path(profile).exists() for ref in refs)

    def missing(cell: Cell) -> list[Cell]:
        return [plan.cell(s, k) for s, k in cell.deps if not at_hand(cell, s, k)]

    def rerunnable(cell: Cell) -> bool:
        return gs.of(cell).state == STALE and gs.of(cell).where == "results"

    def sample_rank(cell: Cell) -> tuple[bool, bool, float]:
        lacking = missing(cell)
        return bool(lacking), not same_cpu(gs.of(cell).record or {}, here), cost(cell) + sum(cost(c) for c in lacking)

    by_id = plan.by_id()
    library = Library.now()
    training = {s.name: trains(library, s.notebook) for s in plan.spec.stages}
    seeds_of: dict[str, int] = {}
    for c in plan.cells:
        if gs.of(c).where == "results":
            seeds_of[_signature(c, by_id)] = seeds_of.get(_signature(c, by_id), 0) + 1

    def judgeable(cell: Cell) -> bool:
        """Whether a rerun here can verify it: deterministic, made on this CPU (bit for bit), or of a
        method with enough committed seeds for a prediction interval (in distribution)."""
        return (not training[cell.stage] or same_cpu(gs.of(cell).record or {}, here)
                or seeds_of.get(_signature(cell, by_id), 0) >= MIN_SEEDS)

    chosen: list[Cell] = []
    for stage in plan.spec.stages:
        if stages and stage.name not in stages:
            continue
        stale = [c for c in plan.stage_cells(stage.name) if rerunnable(c)
                 and not all(_upstream_stale(r) for r in gs.of(c).reason.split("; "))]
        if not sample:
            chosen += sorted(stale, key=cost)
            continue
        # a sampled cell's missing upstream must be rerunnable itself (stale, collected), else it cannot start
        startable = [c for c in stale if judgeable(c) and all(rerunnable(d) and not missing(d) for d in missing(c))]
        for cell in sorted(startable, key=sample_rank)[:sample]:
            chosen += [d for d in missing(cell) if d not in chosen]
            chosen.append(cell)
    return sorted(chosen, key=cost) if not sample else chosen


def verify(params_file: str | Path, stages: list[str] | None = None, sample: int | None = None,
           echo: Callable[[str], Any] = print, dry_run: bool = False) -> list[Outcome]:
    """Rerun the chosen stale cells in scratch folders, compare, and record each reproduction in
    the committed cell's provenance; return every cell's outcome. ``dry_run``: list the cells it
    would rerun, with their recorded cost and CPU, and run nothing (a rerun can take core-hours)."""
    params_file = Path(params_file)
    plan = plan_grid(params_file)
    names = [s.name for s in plan.spec.stages]
    if stages and set(stages) - set(names):
        raise GridError(f"{params_file}: no stage(s) {sorted(set(stages) - set(names))}; stages are {names}")
    if sample is not None and sample < 1:
        raise GridError(f"--sample {sample}: expected a positive number of cells per stage")
    profile = plan.spec.profile
    gs = grid_state(plan, use_runs=False)
    cells = choose(plan, gs, stages, sample)
    here = provenance.cpu_description()
    for stage in names:
        stale = [c for c in plan.stage_cells(stage) if gs.of(c).state == STALE and gs.of(c).where == "results"]
        if sample and stale and (not stages or stage in stages) and not any(c.stage == stage for c in cells):
            echo(f"[{stage}] none of its {len(stale)} stale cell(s) can be verified by a rerun here: training cells made "
                 f"on another CPU, of methods with fewer than {MIN_SEEDS} committed seeds (or only stale through their upstream)")
    if dry_run:
        echo(f"verify {profile} (dry run): {len(cells)} stale cell(s) would rerun")
        for cell in cells:
            record = gs.of(cell).record or {}
            seconds = record.get("cpu_seconds") or record.get("wall_seconds")
            cost = f"{float(seconds) / 60:,.1f} CPU min recorded" if seconds else "no cost recorded"
            where = "this CPU" if same_cpu(record, here) else "another CPU" if record.get("cpu") else "CPU not recorded"
            echo(f"  {cell.id}  ({cost}; made on {where})")
        return []
    library = Library.now()
    by_id = plan.by_id()
    root = paths.cache_dir() / "verify"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{profile}-", dir=root))
    scratch = work / "runs"  # named runs/ so that result files' paths read as @stage/key like any run's
    echo(f"verify {profile}: {len(cells)} stale cell(s) to rerun in {paths.display(work)}")
    outcomes = []
    try:
        for cell in cells:
            failed = [o.cell.id for o in outcomes if not o.equal and (o.cell.stage, o.cell.key) in cell.deps]
            if failed:  # its inputs would be another run than the committed one: nothing to compare
                outcomes.append(Outcome(cell, note=f"upstream {failed[0]} did not reproduce in this verify"))
                echo(f"  not rerun {cell.id}: {outcomes[-1].note}")
                continue
            outcomes.append(_verify_one(cell, gs, params_file, scratch, work, here, library, by_id, echo))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _summarize(plan, gs, outcomes, sample, echo)
    write_json(paths.runs_root() / profile / "verify_report.json", [
        {"cell": o.cell.id, "kind": o.kind, "equal": o.equal, "note": o.note, "cpu_seconds": o.cpu_seconds,
         "differences": [str(d) for d in o.differences]} for o in outcomes])
    return outcomes


def _verify_one(cell: Cell, gs: GridState, params_file: Path, scratch: Path, work: Path, here: dict, library: Library,
                by_id: dict[str, Cell], echo: Callable[[str], Any]) -> Outcome:
    profile = gs.plan.spec.profile
    st = gs.of(cell)
    outcome = Outcome(cell)
    why_not = _stage_inputs(cell, gs, scratch, profile)
    if why_not:
        outcome.note = why_not
        echo(f"  not rerun {cell.id}: {why_not}")
        return outcome
    log = work / f"{cell.stage}-{cell.key}.log"
    status, record = rerun(cell, params_file, scratch, log)
    if status != 0 or record is None:
        error = scratch / cell.output.with_name(f"{cell.key}.error.txt").relative_to(paths.runs_root())
        outcome.note = f"rerun failed: {error.read_text().strip() if error.exists() else log.read_text()[-300:]}"
        echo(f"  FAILED  {cell.id}: {outcome.note}")
        return outcome
    outcome.cpu_seconds = record.get("cpu_seconds")
    out_dir = scratch / cell.out_dir.relative_to(paths.runs_root())
    files = {p.name: stored_text(p.name, p.read_text(), profile) for p in sorted(out_dir.iterdir())
             if is_result_file(p)}
    committed = store.cell_dir(profile, cell.stage, st.record_key)
    left_out = list((st.record or {}).get("not_collected") or [])
    training = trains(library, cell.notebook)
    if not training:
        outcome.kind = "equal (deterministic; floats to a relative 1e-9)"
        outcome.differences = compare_files(committed, files, REL_TOL, left_out, profile)
        outcome.equal = not outcome.differences
    elif same_cpu(st.record or {}, here):
        outcome.kind = "bit for bit on the same CPU"
        outcome.differences = compare_files(committed, files, 0.0, left_out, profile)
        outcome.equal = not outcome.differences
    elif not compare_files(committed, files, 0.0, left_out, profile):
        # another CPU, or one the record does not name (made before CPUs were recorded), yet the same
        # digits: the strongest verification there is, so it is said as such
        outcome.kind = "bit for bit (the record names " + ("another CPU)" if (st.record or {}).get("cpu") else "no CPU)")
        outcome.equal = True
    else:
        outcome.kind = "in distribution (another CPU: final metric within its method's seeds' 95 % prediction interval)"
        mine = _signature(cell, by_id)
        seeds = [_committed_files(store.cell_dir(profile, c.stage, gs.of(c).record_key))
                 for c in gs.plan.cells if gs.of(c).where == "results" and _signature(c, by_id) == mine]
        outcome.equal, outcome.differences, outcome.note = judge_in_distribution(files, [s for s in seeds if s])
    if outcome.equal:
        _record_reproduction(committed, cell, record, here, outcome)
        # downstream cells rerun next consume it as the committed run it reproduced (its run id), not as
        # the scratch run: otherwise they would read "upstream remade since" once verified
        write_json(scratch / profile / cell.stage / f"{cell.key}.{store.RECORD}", store.read_record(committed / store.RECORD))
        echo(f"  equal   {cell.id}: {outcome.kind}" + (f"; {outcome.note}" if outcome.note else ""))
    else:
        echo(f"  DIFFERENT {cell.id}: {outcome.kind}" + (f"; {outcome.note}" if outcome.note else ""))
        for diff in outcome.differences[:SHOWN_DIFFERENCES]:
            echo(f"    {diff}")
        if len(outcome.differences) > SHOWN_DIFFERENCES:
            echo(f"    ... and {len(outcome.differences) - SHOWN_DIFFERENCES} more")
    return outcome


def _record_reproduction(committed: Path, cell: Cell, rerun_record: dict, here: dict, outcome: Outcome) -> None:
    """Add the reproduction to the committed cell's provenance (after the comparison, only if equal)."""
    path = committed / store.RECORD
    record = store.read_record(path) or {}
    entry = {"code_hash": rerun_record.get("code_hash"), "notebook_hash": rerun_record.get("notebook_hash"), "key": cell.key, "commit": rerun_record.get("commit"),
             "dirty": rerun_record.get("dirty"), "inputs": rerun_record.get("inputs") or None,
             "input_files": rerun_record.get("input_files") or None, "cpu_model": here.get("model"), "cpu_flags_hash": here.get("flags_hash"),
             "kind": outcome.kind, "note": outcome.note or None, "equal": True, "cpu_seconds": outcome.cpu_seconds,
             "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    record["reproduced"] = [*(record.get("reproduced") or []), {k: v for k, v in entry.items() if v is not None}]
    store.write_record(path, record)


def _summarize(plan: Plan, gs: GridState, outcomes: list[Outcome], sample: int | None, echo: Callable[[str], Any]) -> None:
    """Per stage: how many of its cells were rerun and how many came out equal, never more."""
    for stage in plan.spec.stages:
        mine = [o for o in outcomes if o.cell.stage == stage.name]
        if not mine:
            continue
        total = len(plan.stage_cells(stage.name))
        equal = sum(o.equal for o in mine)
        kinds = sorted({o.kind for o in mine if o.kind})
        verdict = (f"verified: {len(mine)} of {total} cells rerun, equal" if equal == len(mine) else
                   f"{len(mine)} of {total} cells rerun: {equal} equal (verified), {len(mine) - equal} different or "
                   "not rerun (still stale)")
        echo(f"[{stage.name}] {verdict}" + (f" (a sample of {sample} per stage)" if sample else "")
             + (f"; {'; '.join(kinds)}" if kinds else ""))
