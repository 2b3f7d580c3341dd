"""Finished cells → ``results/<profile>/``: small tidy files with portable paths, provenance, cells.csv.

``results/<profile>/<stage>/cells.csv`` (key + parameters) and ``<stage>/<key>/`` are the book's only
input and, for committed profiles, the record of what was done. The layout, the ``cells.csv`` text and
the stored form of a file are the results store's (:mod:`genemask.store`); collection merges into what is
there (a grid that ran some cells never drops the others), rewrites machine paths portably, records
each cell's provenance beside its files, and says which files were too large to collect.

Only what the cell wrote is collected: the files its run wrote into the ``out_dir`` it claimed
(:func:`genemask.io.written_since_claim`; never a hidden file). Each cell is collected whole or not
at all: its folder is built beside the target, swapped in, and ``cells.csv`` rewritten; a failure
(a full or read-only disk) puts the previous folder back, so ``cells.csv`` and the cell folders
always agree, and the error names the file that could not be written.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from .. import paths, store
from ..io import write_text, written_since_claim
from ..store import RESULT_MAX_BYTES, RESULT_SUFFIXES, is_result_file, stored_text  # noqa: F401 - the names callers use
from .cell import CLAIM
from .plan import Cell, Plan, key_portable, portable_params
from .state import GridState, grid_state, results_record, results_rows

def row_of(cell: Cell) -> dict[str, str]:
    """A cell's ``cells.csv`` row: lists and mappings as JSON, upstream outputs as ``@stage/key/file``."""
    return store.cells_row(cell.key, {name: key_portable(value) for name, value in cell.params.items()})


def write_rows(profile: str, stage: str, rows: list[dict[str, str]]) -> None:
    store.write_cells(store.cells_path(profile, stage), rows)


def cell_files(cell: Cell) -> list[Path]:
    """The files of a cell's ``out_dir`` that its run wrote (all of them for a folder claimed before
    claims were recorded)."""
    if not cell.out_dir or not cell.out_dir.is_dir():
        return []
    written = written_since_claim(cell.out_dir, CLAIM)
    return written if written is not None else sorted(cell.out_dir.iterdir())


def _staging(stage_root: Path, key: str, what: str) -> Path:
    return stage_root / f".{key}.{what}"


def _recover(stage_root: Path) -> None:
    """Finish what a collection stopped by a crash left: a replaced folder whose successor never
    arrived is put back; half-built folders are removed."""
    for leftover in sorted(stage_root.glob(".*.collecting")):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in sorted(stage_root.glob(".*.replaced")):
        home = stage_root / leftover.name[1:-len(".replaced")]
        if home.exists():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            os.replace(leftover, home)


def _collect_cell(cell: Cell, record: dict, rows: dict[str, dict[str, str]], stage_root: Path, profile: str,
                  echo: Callable[[str], Any]) -> None:
    """Collect one cell whole: build its folder aside, swap it in, rewrite cells.csv; on any error put
    the previous folder back and re-raise (the error names the file)."""
    building, replaced, dest = (_staging(stage_root, cell.key, "collecting"), _staging(stage_root, cell.key, "replaced"),
                                stage_root / cell.key)
    shutil.rmtree(building, ignore_errors=True)
    try:
        left_out = _copy_results(cell, building, profile, echo)
        store.write_record(building / store.RECORD, {**record, "not_collected": left_out})
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    if dest.exists():
        os.replace(dest, replaced)  # an older run of the same cell: replaced whole, never mixed
    os.replace(building, dest)
    try:
        write_rows(profile, stage_root.name, list({**rows, cell.key: row_of(cell)}.values()))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        if replaced.exists():
            os.replace(replaced, dest)
        raise
    shutil.rmtree(replaced, ignore_errors=True)
    rows[cell.key] = row_of(cell)


def _copy_results(cell: Cell, dest: Path, profile: str, echo: Callable[[str], Any]) -> list[str]:
    """Copy the small result files as results/ keeps them; return the names left out for their size."""
    left_out = []
    dest.mkdir(parents=True, exist_ok=True)
    for file in cell_files(cell):
        if not is_result_file(file):
            continue
        # a step log is measured as stored (compacted); any other file is not even read when too large
        text = stored_text(file.name, file.read_text(), profile) if file.name == store.METRICS else None
        size = len(text.encode()) if text is not None else file.stat().st_size
        if size > RESULT_MAX_BYTES:
            left_out.append(file.name)
            echo(f"  note: {cell.id}/{file.name} is {size / 2**20:.1f} MiB, over the {RESULT_MAX_BYTES >> 20} MiB "
                 f"limit for results/: not collected (it stays in {paths.display(file)})")
            continue
        text = text if text is not None else stored_text(file.name, file.read_text(), profile)
        left = store.machine_paths(text)
        if left:
            echo(f"  note: {cell.id}/{file.name} still holds machine path(s) {left[:2]}")
        write_text(dest / file.name, text)
    return left_out


def collect_results(plan: Plan, gs: GridState | None = None, echo: Callable[[str], Any] = print) -> Path:
    """Collect every cell finished in ``runs/`` whose run is not yet in ``results/``; keep the rest."""
    profile = plan.spec.profile
    gs = gs or grid_state(plan)
    root = paths.results_dir(profile)
    for stage in plan.spec.stages:
        stage_root = store.stage_dir(profile, stage.name)
        if stage_root.is_dir():
            _recover(stage_root)
        rows = {row["key"]: row for row in results_rows(profile, stage.name)}
        for cell in plan.stage_cells(stage.name):
            st = gs.of(cell)
            if st.where != "runs" or st.record is None:
                continue
            have = results_record(profile, stage.name, cell.key)
            if cell.key in rows and have.get("run_id") == st.record.get("run_id"):
                continue  # already collected
            _collect_cell(cell, st.record, rows, stage_root, profile, echo)
            signature = json.dumps(portable_params(cell.params), sort_keys=True, default=str)
            superseded = [k for k in rows if k != cell.key  # the same parameters under an older notebook
                          and json.dumps(results_record(profile, stage.name, k).get("params"), sort_keys=True,
                                         default=str) == signature]
            if superseded:
                for key in superseded:
                    rows.pop(key)
                write_rows(profile, stage.name, list(rows.values()))  # listed no more, then removed
                for key in superseded:
                    shutil.rmtree(stage_root / key, ignore_errors=True)
                    echo(f"  {stage.name}/{key} superseded by {cell.key} (same parameters, newer notebook)")
    return root
