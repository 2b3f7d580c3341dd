"""Finished cells → ``results/<profile>/``: small tidy files with portable paths, provenance, cells.csv.

``results/<profile>/<stage>/cells.csv`` (key + parameters) and ``<stage>/<key>/`` are the book's only
input and, for committed profiles, the record of what was done. Collection merges into what is
there (a grid that ran some cells never drops the others), rewrites machine paths portably, records
each cell's provenance beside its files, and says which files were too large to collect.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any, Callable

from .. import paths
from ..io import write_text
from . import provenance
from .plan import Cell, Plan, key_portable, portable_params
from .state import GridState, grid_state, results_record, results_rows

#: Result files small enough to commit: what the book reads (checkpoints and big tables stay in runs/);
#: the limit is on the text stored (``stored_text``).
RESULT_SUFFIXES = (".csv", ".json", ".txt")
RESULT_MAX_BYTES = 1 << 20


def row_of(cell: Cell) -> dict[str, str]:
    """A cell's ``cells.csv`` row: lists and mappings as JSON, upstream outputs as ``@stage/key/file``."""
    row = {"key": cell.key}
    for name, value in cell.params.items():
        if name == "out_dir":
            continue
        value = json.dumps(value) if isinstance(value, (list, dict)) else key_portable(value)
        row[name] = "" if value is None else str(value)
    return row


def write_rows(profile: str, stage: str, rows: list[dict[str, str]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(paths.results_dir(profile) / stage / "cells.csv", buffer.getvalue())


def stored_text(name: str, text: str, profile: str) -> str:
    """A result file's text as results/ keeps it: machine paths made portable, and a pretraining
    step log cut to ``steplog.RESULT_LOG_ROWS`` rows (its per-step log stays in runs/)."""
    from ..steplog import METRICS_FILE, compact_log_text

    text = provenance.portable_text(text, profile)
    return compact_log_text(text) if name == METRICS_FILE else text


def _copy_results(cell: Cell, dest: Path, profile: str, echo: Callable[[str], Any]) -> list[str]:
    """Copy the small result files as results/ keeps them; return the names left out for their size."""
    from ..steplog import METRICS_FILE

    left_out = []
    dest.mkdir(parents=True, exist_ok=True)
    for file in sorted(cell.out_dir.iterdir()) if cell.out_dir and cell.out_dir.is_dir() else []:
        if not file.is_file() or file.suffix not in RESULT_SUFFIXES or file.name == provenance.RECORD:
            continue
        # a step log is measured as stored (compacted); any other file is not even read when too large
        text = stored_text(file.name, file.read_text(), profile) if file.name == METRICS_FILE else None
        size = len(text.encode()) if text is not None else file.stat().st_size
        if size > RESULT_MAX_BYTES:
            left_out.append(file.name)
            echo(f"  note: {cell.id}/{file.name} is {size / 2**20:.1f} MiB, over the {RESULT_MAX_BYTES >> 20} MiB "
                 f"limit for results/: not collected (it stays in {paths.display(file)})")
            continue
        text = text if text is not None else stored_text(file.name, file.read_text(), profile)
        left = provenance.machine_paths(text)
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
        rows = {row["key"]: row for row in results_rows(profile, stage.name)}
        changed = False
        for cell in plan.stage_cells(stage.name):
            st = gs.of(cell)
            if st.where != "runs" or st.record is None:
                continue
            dest = root / stage.name / cell.key
            have = results_record(profile, stage.name, cell.key)
            if cell.key in rows and have.get("run_id") == st.record.get("run_id"):
                continue  # already collected
            if dest.exists():
                shutil.rmtree(dest)  # an older run of the same cell: replaced whole, never mixed
            left_out = _copy_results(cell, dest, profile, echo)
            provenance.write_record(dest / provenance.RECORD, {**st.record, "not_collected": left_out})
            rows[cell.key] = row_of(cell)
            changed = True
            signature = json.dumps(portable_params(cell.params), sort_keys=True, default=str)
            for key in [k for k in rows if k != cell.key]:  # the same parameters under an older notebook
                old = results_record(profile, stage.name, key).get("params")
                if old is not None and json.dumps(old, sort_keys=True, default=str) == signature:
                    rows.pop(key)
                    shutil.rmtree(root / stage.name / key, ignore_errors=True)
                    echo(f"  {stage.name}/{key} superseded by {cell.key} (same parameters, newer notebook)")
        if changed:
            write_rows(profile, stage.name, list(rows.values()))
    return root
