"""Give cells collected before provenance was recorded what is known of their making, and
rewrite their files as results/ keeps them now (``store.stored_text``: machine paths portable,
long step logs compacted). Nothing is recomputed; re-running it changes nothing more.

``genemask grid params/cpu.yaml --migrate``: for every cell of ``results/<profile>/`` without a
``provenance.json``, record the commit that first added it to git (the library it ran is that
commit's or older: git history tells no more), the hash of that commit's library source, its
parameters, and the wall time the grid report still holds; mark it ``migrated``. Cells the lead
merges later with the same layout are handled the same way by running it again. Cells in
``runs/<profile>/`` that finished without a run record get one too (same run id), so a later grid
on that machine treats them like their collected copies.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from .. import paths, store
from ..io import write_text
from ..store import RESULT_SUFFIXES, stored_text
from . import provenance
from .collect import write_rows
from .plan import plan_grid, portable_params
from .state import results_rows



def _parsed(value: str) -> Any:
    import yaml  # the workflow extra; the grid package is imported by the core for its source hash

    if value == "":
        return None
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _inputs(params: dict) -> dict[str, str]:
    found = {}
    for value in params.values():
        ref = store.parse_reference(value)
        if ref is not None:
            found[f"{ref.stage}/{ref.key}"] = f"migrated:{ref.stage}/{ref.key}"
    return found


def _report_seconds(profile: str) -> dict[str, float]:
    report = paths.runs_root() / profile / "grid_report.json"
    try:
        rows = json.loads(report.read_text())
    except (OSError, ValueError):
        return {}
    return {f"{r['stage']}/{r['key']}": r.get("seconds") for r in rows if r.get("status") == "done" and r.get("seconds")}


def migrate(params_file, echo: Callable[[str], Any] = print) -> dict[str, int]:
    """Record provenance for ``results/<profile>/`` cells that lack it and rewrite machine paths."""
    plan = plan_grid(params_file, check_env=False)
    profile = plan.spec.profile
    root = paths.results_dir(profile)
    planned = plan.by_id()
    head = provenance.git_state()
    seconds = _report_seconds(profile)
    library_at: dict[str, str | None] = {}
    counts = {"recorded": 0, "rewritten files": 0, "machine paths left": 0, "run records": 0}
    for stage in store.stages(profile):
        rows = results_rows(profile, stage)
        portable_rows = [{k: store.portable_text(v or "", profile) for k, v in row.items()} for row in rows]
        if portable_rows != rows:
            write_rows(profile, stage, portable_rows)
            counts["rewritten files"] += 1
        for row in portable_rows:
            key, folder = row["key"], root / stage / row["key"]
            for file in sorted(folder.iterdir()) if folder.is_dir() else []:
                if file.suffix not in RESULT_SUFFIXES or not file.is_file():
                    continue
                text = file.read_text()
                new = stored_text(file.name, text, profile)
                if new != text:
                    write_text(file, new)
                    counts["rewritten files"] += 1
                left = store.machine_paths(new)
                if left:
                    counts["machine paths left"] += len(left)
                    echo(f"  {paths.display(file)}: machine path(s) left {left[:2]} (is GENEMASK_DATA the folder they were made from?)")
            record_file = folder / store.RECORD
            if record_file.exists():
                continue
            first = provenance.first_commit_of(folder)
            commit = first or head["commit"]
            if commit not in library_at:
                library_at[commit] = provenance.library_hash_at(commit) if commit else None
            cell = planned.get(f"{stage}/{key}")
            params = portable_params(cell.params) if cell else {k: _parsed(v) for k, v in row.items() if k != "key"}
            when = (f"first committed in {commit[:10]}; the library it ran is that commit's or older, as far as git history tells"
                    if first else f"not yet committed when migrated; made by the library of {str(commit)[:10]} (HEAD then) or older")
            store.write_record(record_file, {
                "stage": stage, "key": key, "run_id": f"migrated:{stage}/{key}", "migrated": True,
                "note": f"made before provenance was recorded; {when}",
                "commit": commit, "dirty": None, "library_hash": library_at[commit], "versions": None,
                "notebook": paths.display(cell.notebook) if cell else None, "params": params,
                "inputs": _inputs(params), "wall_seconds": seconds.get(f"{stage}/{key}"), "cpu_seconds": None,
                "in_plan": cell is not None,
            })
            counts["recorded"] += 1
    for cell in plan.cells:  # runs/ of this machine: finished cells without a run record
        if cell.output.exists() and not cell.marker.exists():
            collected = store.read_record(root / cell.stage / cell.key / store.RECORD) or {}
            store.write_record(cell.marker, {
                "stage": cell.stage, "key": cell.key, "run_id": f"migrated:{cell.stage}/{cell.key}", "migrated": True,
                "note": "finished before run records were written" + (f"; {collected['note']}" if collected.get("note") else ""),
                "commit": collected.get("commit"), "dirty": None, "library_hash": collected.get("library_hash"),
                "params": portable_params(cell.params), "inputs": {f"{s}/{k}": f"migrated:{s}/{k}" for s, k in cell.deps},
                "wall_seconds": collected.get("wall_seconds"), "cpu_seconds": None,
            })
            mtime = cell.output.stat().st_mtime
            os.utime(cell.marker, (mtime, mtime))  # Snakemake orders reruns by time: keep the run's
            counts["run records"] += 1
    echo(f"migrate {profile}: {counts['recorded']} cell(s) given a migrated provenance record, "
         f"{counts['rewritten files']} file(s) rewritten as results/ keeps them (portable paths, compact step logs), "
         f"{counts['run records']} run record(s) "
         f"written in {paths.display(paths.runs_root() / profile)}, {counts['machine paths left']} machine path(s) left")
    return counts
