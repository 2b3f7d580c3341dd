"""``genemask grid``: check the whole plan, say what is fresh, stale or to run, run the rest with
Snakemake, collect results.

Snakemake executes the cells (``Snakefile`` beside this module; one rule per stage, one job per
cell), so the same grid runs on a cluster with ``snakemake --executor slurm``. This front door adds
what a workflow engine does not know: the pre-flight of every parameter against its notebook, the
library-aware staleness of :mod:`.state`, a per-profile lock, and collection into ``results/``.
"""
from __future__ import annotations

import fcntl
import functools
import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import paths
from ..io import foreign_entries, prepare_out_dir, read_claim, shown_names, write_json
from .cell import (CELL_ERROR_PREFIX, CLAIM, GRID_ENV, busy_pid, claim_identity, die_with_parent, error_file,
                   grid_identity)
from .collect import collect_results
from .plan import Cell, Plan, plan_grid
from .spec import GridError
from .state import FRESH, STALE, TO_RUN, VERIFIED, grid_state, run_record, status_lines

SNAKEFILE = Path(__file__).with_name("Snakefile")


@contextmanager
def profile_lock(profile: str) -> Iterator[None]:
    """One grid per profile at a time: a second one fails at once instead of marking the first's
    cells failed or overwriting its ``cells.csv``."""
    root = paths.runs_root() / profile
    root.mkdir(parents=True, exist_ok=True)
    path = root / ".grid.lock"
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise GridError(f"another genemask grid is running profile {profile!r} (pid {holder}; lock {paths.display(path)}); "
                        "wait for it to finish") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        handle.close()


def check_writable(profile: str) -> None:
    """Prove ``runs/<profile>`` and ``results/<profile>`` writable before any cell runs (a full or
    read-only disk found at collection would cost every cell's run)."""
    for folder in (paths.runs_root() / profile, paths.results_dir(profile)):
        try:
            prepare_out_dir(folder, name="the grid's folder")
        except PermissionError as err:
            raise GridError(f"{err}; nothing was run") from None


def check_out_dirs(plan: Plan) -> None:
    """An ``out_dir`` given in a params file is one cell's: two cells naming one folder, or a folder
    holding files no grid cell wrote (they would be collected into results/), fail before anything runs."""
    owners: dict[Path, Cell] = {}
    for cell in plan.cells:
        if cell.out_dir is None or cell.out_dir == paths.runs_dir(plan.spec.profile, cell.stage) / cell.key:
            continue
        folder = cell.out_dir.resolve()
        if folder in owners:
            raise GridError(f"{plan.spec.source}: cells {owners[folder].id} and {cell.id} both write out_dir={str(cell.out_dir)!r}; "
                            "give each cell its own folder (or leave out_dir out)")
        owners[folder] = cell
        try:
            claim = read_claim(cell.out_dir, CLAIM)
        except ValueError as err:
            raise GridError(str(err)) from None
        if claim is not None and claim["identity"] != claim_identity(cell, plan.spec.profile):
            other = claim["identity"]
            raise GridError(f"{plan.spec.source}: stage {cell.stage!r}: out_dir={str(cell.out_dir)!r} belongs to another "
                            f"grid cell ({other.get('profile')}/{other.get('stage')}/{other.get('key')}); use another folder")
        foreign = foreign_entries(cell.out_dir) if claim is None else []
        if foreign:
            raise GridError(f"{plan.spec.source}: stage {cell.stage!r}: out_dir={str(cell.out_dir)!r} holds files no grid "
                            f"cell wrote ({shown_names(foreign)}); they would be collected into results/: choose an "
                            "empty or new folder")


def _run_snakemake(cmd: list[str], log: Path, echo: Callable[[str], Any]) -> int:
    """Run Snakemake; on SIGINT/SIGTERM/SIGHUP stop it and every process under it (cell runners and their
    kernels), so nothing outlives the grid. A kill -9 cannot be caught: then Snakemake gets SIGKILL
    from the kernel (:func:`die_with_parent`), each cell runner SIGTERM when Snakemake dies (it stops
    its kernel), and a notebook kernel exits when its runner is gone (ipykernel polls its parent).

    Snakemake is killed, not asked to stop: on SIGTERM it waits for its running jobs, and orphaned,
    its output a pipe to this dead process, Snakemake 9.27 was seen (py-spy) to sleep for ever in that
    wait after its job had ended, the scheduler never told. Nothing is lost by the kill: a cell's
    record is written last, by its runner, so a stopped cell has none."""
    import psutil

    # In this process's group (a kill -9 of the group reaches Snakemake and its cell runners) and
    # told to stop when this process dies however it dies (a kill -9 of this process alone).
    # Each cell runner also watches this process (GRID_ENV) and stops its cell when it is gone.
    proc = subprocess.Popen(cmd, preexec_fn=functools.partial(die_with_parent, signal.SIGKILL), env={**os.environ, GRID_ENV: grid_identity()},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(signum, _frame):
        try:
            tree = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=10)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with open(log, "w") as keep:  # all of Snakemake's output; the terminal gets progress and cell errors
            for line in proc.stdout:
                keep.write(line)
                if _PROGRESS.match(line.strip()) or line.startswith(CELL_ERROR_PREFIX):
                    echo(f"  {line.strip()}")
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


_PROGRESS = re.compile(r"^\d+ of \d+ steps \(")


def snakemake_command(params_file: Path, profile: str, jobs: int, targets: list[Cell], force: list[Cell],
                      extra: list[str] = ()) -> list[str]:
    """Snakemake's argument list. The params path travels in a JSON config file: on the command line
    (``--config params=...``) Snakemake would parse it as YAML, and a path like ``a: b.yaml`` or
    ``x #y.yaml`` would turn into another value."""
    config = paths.runs_root() / profile / ".grid-config.json"
    write_json(config, {"params": str(params_file.resolve()), "python": sys.executable})
    cmd = [sys.executable, "-m", "snakemake", *[str(c.marker) for c in targets],
           "-s", str(SNAKEFILE), "--configfile", str(config),
           "--directory", str(paths.runs_root() / profile), "--cores", str(max(1, jobs)), "--keep-going",
           "--rerun-triggers", "mtime", "--nolock", "--quiet", "rules", "host", *extra]
    if force:
        cmd += ["--forcerun", *[str(c.marker) for c in force]]
    return cmd


def run_grid(params_file: str | Path, jobs: int = 1, dry_run: bool = False, status: bool = False,
             stages: list[str] | None = None, rerun_stale: bool = False, echo=print,
             snakemake_args: list[str] = ()) -> list[Cell]:
    """Plan and check every cell, then (unless ``dry_run``/``status``) run those to run (and the
    stale ones with ``rerun_stale``) through Snakemake and collect results. Returns every planned
    cell with its status: done | cached | stale | failed | blocked (or, without running: cached |
    stale | planned)."""
    params_file = Path(params_file)
    plan = plan_grid(params_file, check_env=not status)
    names = [s.name for s in plan.spec.stages]
    missing = sorted(set(stages or []) - set(names))
    if missing:
        raise GridError(f"{params_file}: no stage(s) {missing}; stages are {names}")
    if not status:
        check_out_dirs(plan)
    gs = grid_state(plan)
    shown = {FRESH: "cached", VERIFIED: "cached", STALE: "stale", TO_RUN: "planned"}  # verified: reused as fresh
    if status or dry_run:
        for line in status_lines(gs):
            echo(line)
        for cell in plan.cells:
            cell.status = shown[gs.of(cell).state]
        return plan.cells
    selected = [c for c in plan.cells if not stages or c.stage in stages]
    targets = [c for c in selected if gs.of(c).state == TO_RUN or (rerun_stale and gs.of(c).state == STALE)]
    profile = plan.spec.profile
    check_writable(profile)
    with profile_lock(profile):
        busy = [(c, pid) for c in plan.cells if (pid := busy_pid(c)) is not None]
        if busy:
            cell, pid = busy[0]
            raise GridError(f"cell {cell.id} is still running (pid {pid}; {len(busy)} busy cell(s)), left by a grid that "
                            f"was stopped: wait for it or stop it (kill {pid}), then rerun")
        # A cell ran in this call when its marker was (re)written now: compare with the marker as it
        # was before, not with the clock (a cell finished by the previous call a moment ago is cached).
        before = {cell.marker: cell.marker.stat().st_mtime_ns if cell.marker.exists() else None for cell in plan.cells}
        if targets:
            force = [c for c in targets if c.marker.exists()]
            echo(f"grid {profile}: running {len(targets)} of {len(plan.cells)} cell(s) with Snakemake, {jobs} at a time")
            log = paths.runs_root() / profile / "snakemake.log"
            rc = _run_snakemake(snakemake_command(params_file, profile, jobs, targets, force, list(snakemake_args)), log, echo)
            if rc not in (0, 1):
                echo(f"  snakemake exited with {rc} (its output: {paths.display(log)})")
        else:
            echo(f"grid {profile}: nothing to run ({len(plan.cells)} cell(s))")
        after = grid_state(plan)
        by_id = plan.by_id()
        for cell in plan.cells:
            record, _ = run_record(cell)
            ran = record is not None and cell.marker.exists() and cell.marker.stat().st_mtime_ns != before[cell.marker]
            state = after.of(cell).state
            if ran:
                cell.status, cell.seconds = "done", float(record.get("wall_seconds") or 0)
            elif cell in targets:
                err = error_file(cell)
                if err.exists():
                    cell.status, cell.error = "failed", err.read_text().strip()
                else:
                    blockers = [d for d in cell.deps if by_id[f"{d[0]}/{d[1]}"].status in ("failed", "blocked")]
                    cell.status = "blocked"
                    cell.error = (f"not run: upstream {blockers[0][0]}/{blockers[0][1]} failed" if blockers
                                  else "not run (Snakemake did not schedule it)")
            else:
                cell.status = shown[state]  # not asked for: cached | stale | planned
        for stage in plan.spec.stages:
            cells = plan.stage_cells(stage.name)
            if not cells:
                continue
            echo(f"[{stage.name}] " + ", ".join(f"{n} {s}" for s in ("done", "cached", "stale", "failed", "blocked")
                                                if (n := sum(c.status == s for c in cells))))
            for c in cells:
                if c.status in ("done", "failed", "blocked"):
                    echo(f"  {c.status:7s} {c.key} {c.seconds:7.1f}s" + (f"  ERROR: {c.error}" if c.error else ""))
        report = paths.runs_root() / profile / "grid_report.json"
        write_json(report, [
            {**{k: v for k, v in asdict(c).items() if k not in ("notebook", "output", "out_dir", "deps", "params")},
             "params": {k: v for k, v in c.params.items() if k != "out_dir"},
             "notebook": paths.display(c.notebook), "output": paths.display(c.output),
             "out_dir": paths.display(c.out_dir) if c.out_dir else None}
            for c in plan.cells
        ])
        try:
            collect_results(plan, grid_state(plan), echo=echo)
        except OSError as err:
            raise GridError(f"collecting into {paths.display(paths.results_dir(profile))} failed: {err} "
                            "(results/ keeps every cell collected before; rerun to collect the rest)") from None
    counts = {s: sum(c.status == s for c in plan.cells) for s in ("done", "cached", "stale", "failed", "blocked")}
    echo(f"grid {profile}: {counts['done']} run, {counts['cached']} cached, {counts['stale']} stale (kept; "
         f"--rerun-stale reruns them), {counts['failed']} failed, {counts['blocked']} blocked "
         f"(report: {paths.display(report)})")
    if counts["failed"] or counts["blocked"]:
        stuck = {c.stage for c in plan.cells if c.status in ("failed", "blocked")}
        for stage in plan.spec.stages:
            cells = plan.stage_cells(stage.name)
            if stage.name in stuck and not any(c.status in ("done", "cached", "stale") for c in cells):
                echo(f"grid {profile}: stage {stage.name!r} has no successful cell")
    return plan.cells
