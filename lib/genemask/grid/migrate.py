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

``genemask grid params/cpu.yaml --migrate-keys`` (:func:`migrate_keys`): committed cells keyed by
an older formula (notebook code + parameters + package version) get the key of
:func:`genemask.store.cell_key`, matched by their parameters; idempotent too.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from .. import __version__, paths, store
from ..identity import legacy_params
from ..io import write_text
from ..store import RESULT_SUFFIXES, stored_text
from . import provenance
from .collect import row_of, write_rows
from .code import notebook_hash
from .plan import Plan, key_portable, notebook_code, plan_grid, portable_params
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


# Re-keying: every committed cell under store.cell_key (its stage and parameters) -----------------

def _signature(row: Mapping[str, str]) -> str:
    """A ``cells.csv`` row's parameters as text, the key left out (and empty columns: a parameter
    the cell does not have, as ``cells.csv`` pads it)."""
    return json.dumps(sorted((k, v) for k, v in row.items() if k != "key" and v != ""))


def _rekeyed_row(row: Mapping[str, str], keys: Mapping[tuple[str, str], str], profile: str, where: str) -> dict[str, str]:
    """The row with each upstream reference (``@stage/key/...``) renamed to its upstream cell's new
    key; a reference to a cell no ``cells.csv`` of the profile lists is an error naming the line."""
    out = {}
    for name, value in row.items():
        ref = store.parse_reference(value) if name != "key" else None
        if ref is not None:
            if (ref.stage, ref.key) not in keys:
                raise store.StoreError(f"{where}: {name}={value!r} names no cell listed in "
                                       f"{paths.display(store.cells_path(profile, ref.stage))}")
            value = str(replace(ref, key=keys[(ref.stage, ref.key)]))
        out[name] = value
    return out


def _params(profile: str, stage: str, row: Mapping[str, str], keys: Mapping[tuple[str, str], str]) -> dict[str, Any]:
    """The parameters of a cell the plan does not ask for, typed as planned: its record's (JSON),
    references renamed; a cell without a record, from its ``cells.csv`` text (YAML-typed)."""
    record = store.read_record(store.cell_dir(profile, stage, row["key"]) / store.RECORD) or {}
    if isinstance(record.get("params"), dict):
        return legacy_params(stage, {k: store.rekey_text(v, keys) if isinstance(v, str) else v for k, v in record["params"].items()})
    return {k: _parsed(v) for k, v in row.items() if k != "key" and v != ""}


def _rekeyed_notes(profile: str, stage: str, key: str) -> list[str]:
    """The keys a re-keyed cell had before (its record's ``rekeyed`` notes): a cell collected later by
    an older checkout names its upstream cells by them."""
    record = store.read_record(store.cell_dir(profile, stage, key) / store.RECORD) or {}
    return [n["from"] for n in record.get("rekeyed") or [] if isinstance(n, dict) and store.KEY.fullmatch(str(n.get("from")))]


def _stage_order(profile: str, listed: Mapping[str, list[dict[str, str]]]) -> list[str]:
    """The profile's stages, each after the stages its cells refer to (keys cascade downstream)."""
    from graphlib import CycleError, TopologicalSorter

    needs = {stage: {ref.stage for row in rows for ref in map(store.parse_reference, row.values()) if ref} - {stage}
             for stage, rows in listed.items()}
    try:
        return [s for s in TopologicalSorter(needs).static_order() if s in listed]
    except CycleError as err:
        raise store.StoreError(f"{paths.display(store.profile_dir(profile))}: stages refer to each other in a circle "
                               f"({' -> '.join(err.args[1])})") from None


def _attested(plan: Plan) -> dict[tuple[str, str], str]:
    """``(stage, old key) -> notebook hash`` of the cells the plan of now gave the key an older grid
    would have: that key hashed the notebook's code (and the package version), so a result under it
    was made by the notebook of now. Read only for that, never to key a cell: re-keyed records keep
    what their old key attested as ``notebook_hash`` (null where it was another notebook)."""
    codes = {stage.name: notebook_code(stage.notebook) for stage in plan.spec.stages}
    old: dict[tuple[str, str], str] = {}
    for cell in plan.cells:  # upstream first: an old key hashed its upstream cells' old keys
        chosen = cell.out_dir == paths.runs_dir(plan.spec.profile, cell.stage) / cell.key
        params = {k: store.rekey_text(key_portable(v), old) if isinstance(v, str) else v
                  for k, v in cell.params.items() if k != "out_dir" or not chosen}
        digest = hashlib.sha256(codes[cell.stage].encode())
        digest.update(json.dumps(params, sort_keys=True, default=str).encode())
        digest.update(__version__.encode())
        old[(cell.stage, cell.key)] = digest.hexdigest()[:16]
    return {(stage, key): notebook_hash(codes[stage]) for (stage, _), key in old.items()}


def _rekey_files(folder: Path, old: str, new: str, keys: Mapping[tuple[str, str], str],
                 attested: Mapping[str, str] | None = None) -> int:
    """Rename every cell key a cell's text files name; its record names its own key as ``new`` (in
    its reproductions too) and, when the key changed, notes the old one (also when that was a copy
    dropped as a duplicate: later cells may name it). Returns the files rewritten."""
    rewritten = 0
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix in RESULT_SUFFIXES):
        text = file.read_text()
        new_text = store.rekey_text(text, keys)
        if file.name == store.RECORD and file.parent == folder:
            try:
                record = json.loads(new_text)
            except ValueError as err:
                raise store.StoreError(f"{paths.display(file)}: damaged run record, not JSON ({err})") from None
            if attested is not None and old != new and "notebook_hash" not in record:
                record["notebook_hash"] = attested.get(old)  # what its old key told of its notebook
            record["key"] = new
            for entry in record.get("reproduced") or []:
                if isinstance(entry, dict) and "key" in entry:
                    if attested is not None and "notebook_hash" not in entry:
                        entry["notebook_hash"] = attested.get(entry["key"])
                    entry["key"] = new  # a rerun of this cell, under whatever key the plan then gave it
            if old != new and not any(r.get("from") == old for r in record.get("rekeyed") or []):
                record["rekeyed"] = [*(record.get("rekeyed") or []), {"from": old, "to": new, "by": REKEYED_BY}]
            new_text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        if new_text != text:
            write_text(file, new_text)
            rewritten += 1
    return rewritten


#: What a re-keyed record says made its new key.
REKEYED_BY = "genemask.store.cell_key: stage and parameters (issue 25); numbers unchanged"


def _same_results(a: Path, b: Path, keys: Mapping[tuple[str, str], str]) -> bool:
    """Whether two folders of one cell hold the same result files, keys renamed (records aside)."""
    def texts(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): store.rekey_text(p.read_text(), keys) for p in folder.rglob("*")
                if p.is_file() and p.suffix in RESULT_SUFFIXES and p.name != store.RECORD}
    return texts(a) == texts(b)


def migrate_keys(params_file: str | Path, echo: Callable[[str], Any] = print) -> dict[str, int]:
    """Re-key ``results/<profile>/`` to :func:`genemask.store.cell_key` by parameters.

    ``genemask grid PARAMS --migrate-keys``. Stage by stage, upstream first: each ``cells.csv`` row's
    references are renamed to the new keys of their upstream cells, the row is matched to a planned
    cell by its parameters (as ``cells.csv`` text) and takes that cell's key; a row the plan does not
    ask for is keyed by the same formula from its record's parameters (reported as not in the plan).
    Its folder, its row and every key its text files name (record, ``fewshot_runs.csv``,
    ``checkpoint.json``, ``@stage/key`` references, ``migrated:stage/key`` run ids) are renamed; its
    record notes the old key (``rekeyed``) and, as ``notebook_hash``, what that key told of the
    notebook that made it (the notebook of now where the key is the one an older grid gives it now,
    else null: stale, as before). No number changes. Run again, it changes nothing; cells
    collected later under old keys (a checkout of an older commit) are re-keyed by the next run, and
    an old-keyed copy of a cell already re-keyed is dropped when its results are the same (an error
    naming both folders when they differ). ``@<profile>/<stage>/<key>`` references in the params
    files beside ``params_file`` (``params/gpu.yaml``'s committed rank table) are renamed too. A row's
    masking options are read as spelled today (:func:`genemask.identity.legacy_params`: issue 22's
    ``mlm_probability`` -> ``centre_probability``), so such a cell takes the key its parameters have
    now; its record and summary keep the old spelling, as history.

    ``runs/<profile>/`` is left as it is: its folders hold checkpoints whose files and claim markers
    name absolute paths with keys. A grid on a machine with old-keyed runs/ reads those cells from
    their re-keyed results/ copies, as a fresh clone does.
    """
    plan = plan_grid(params_file, check_env=False)
    profile = plan.spec.profile
    listed = {stage: store.rows(profile, stage) for stage in store.stages(profile)}
    attested: dict[str, dict[str, str]] = {}
    for (stage, key), made_by in _attested(plan).items():
        attested.setdefault(stage, {})[key] = made_by
    keys: dict[tuple[str, str], str] = {}
    moves: dict[str, list[tuple[str, str, dict[str, str]]]] = {}  # stage -> (old, new, row)
    not_in_plan: list[str] = []
    for stage in _stage_order(profile, listed):
        index = paths.display(store.cells_path(profile, stage))
        planned = {_signature(row_of(cell)): cell.key for cell in plan.stage_cells(stage)}
        for line, row in enumerate(listed[stage], start=2):
            row = legacy_params(stage, _rekeyed_row(row, keys, profile, f"{index}, line {line}"))  # options as spelled now
            new = planned.get(_signature(row))
            if new is None:
                new = store.cell_key(stage, _params(profile, stage, row, keys))
                not_in_plan.append(f"{stage}/{new}")
            keys[(stage, row["key"])] = new
            moves.setdefault(stage, []).append((row["key"], new, row))
            for note in _rekeyed_notes(profile, stage, row["key"]):  # its keys before: later cells may name them
                keys.setdefault((stage, note), new)
    for stage, cells in moves.items():  # every check before anything is renamed
        folders: dict[str, list[Path]] = {}
        for old, new, _ in cells:
            found = folders.setdefault(new, [])
            for folder in (store.stage_dir(profile, stage) / new, store.stage_dir(profile, stage) / old):
                if folder.is_dir() and folder not in found:
                    found.append(folder)
        for new, found in folders.items():
            for other in found[1:]:
                if not _same_results(found[0], other, keys):
                    raise store.StoreError(
                        f"{paths.display(found[0])} and {paths.display(other)} are one cell of {stage} (the same "
                        f"parameters, new key {new}) with different results: remove the one not wanted and run "
                        "--migrate-keys again")
    counts = {"cells": 0, "re-keyed": 0, "not in plan": len(not_in_plan), "duplicates dropped": 0, "files rewritten": 0,
              "params files rewritten": 0}
    for stage, cells in moves.items():
        stage_root = store.stage_dir(profile, stage)
        rows: dict[str, dict[str, str]] = {}
        changed = 0
        for old, new, row in cells:
            counts["cells"] += 1
            source, target = stage_root / old, stage_root / new
            dropped = False
            if old != new and source.is_dir():
                if target.is_dir():  # already here under its new key: an old-keyed copy collected again (checked above)
                    shutil.rmtree(source)
                    dropped = True
                    counts["duplicates dropped"] += 1
                else:
                    os.replace(source, target)
            if target.is_dir():
                counts["files rewritten"] += _rekey_files(target, old, new, keys, None if dropped else attested.get(stage, {}))
            if new in rows:  # a second row of one cell (its copy dropped above)
                continue
            changed += old != new and not dropped
            rows[new] = {**row, "key": new}
        index = store.cells_path(profile, stage)
        if store.cells_text(rows.values()) != index.read_text():
            store.write_cells(index, rows.values())
        counts["re-keyed"] += changed
        if changed:
            echo(f"  [{stage}] {changed} of {len(cells)} cell(s) re-keyed")
    for other in sorted(Path(params_file).resolve().parent.glob("*.yaml")):
        text = other.read_text()
        new_text = store.rekey_text(text, keys, prefix=f"@{profile}/")
        if new_text != text:
            write_text(other, new_text)
            counts["params files rewritten"] += 1
            echo(f"  {paths.display(other)}: its @{profile}/<stage>/<key> references renamed")
    for cell in not_in_plan:
        echo(f"  {cell}: not in {paths.display(plan.spec.source)} (re-keyed by its recorded parameters)")
    echo(f"migrate keys {profile}: {counts['cells']} cell(s), {counts['re-keyed']} re-keyed "
         f"({counts['not in plan']} not in the plan), {counts['duplicates dropped']} old-keyed duplicate(s) dropped, "
         f"{counts['files rewritten']} file(s) rewritten, {counts['params files rewritten']} params file(s) rewritten")
    return counts
