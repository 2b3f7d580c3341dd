"""Which cells are done and fresh, done by other code (stale), or still to run.

A cell's record is its run record ``runs/<profile>/<stage>/<key>.provenance.json`` (valid only while
its ``out_dir`` exists), else its collected record ``results/<profile>/<stage>/<key>/provenance.json``
listed in that stage's ``cells.csv``: ``runs/`` is git-ignored, so on a fresh clone the committed
results are the record of what was done. A record is fresh when the code its cell runs (its
notebook's code cells, ``notebook_hash``, and the library modules they import, ``code_hash``) is
the code now, and every upstream cell it read is fresh (or verified) and unchanged since: the same
run (its run id) or, for upstream files, the same bytes (``input_files``, hashed when it ran). A
record made by other code is verified when a rerun by the code of now reproduced its results
(``genemask grid --verify``, :mod:`.verify`); otherwise it is stale, and a stale cell is never
reported as done. A record made before code hashes were recorded is judged by the code of its
commit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import paths, store
from . import provenance
from .cell import busy_pid
from .code import Library, notebook_hash
from .plan import Cell, Plan, key_portable, notebook_code, portable_params

FRESH, VERIFIED, STALE, TO_RUN = "fresh", "verified", "stale", "to run"
DONE = (FRESH, VERIFIED)  # states a downstream cell may build on
REMADE = "was remade since"  # the reason of a cell whose done upstream is not the run it consumed


@dataclass
class CellState:
    state: str
    reason: str = ""
    record: dict | None = None
    where: str = ""  # "runs" | "results" | ""
    record_key: str = ""  # the key the record was made under (differs for results keyed by an older formula)
    made_by: str | None = None  # the code hash that made the record (None: not known)
    reproduced: dict | None = None  # the rerun that verified it (state VERIFIED)


@dataclass
class GridState:
    plan: Plan
    states: dict[str, CellState]  # by cell id
    orphans: dict[str, list[str]] = field(default_factory=dict)  # stage -> recorded keys not in the plan
    library: str = ""
    code: "CodeJudge | None" = None

    def of(self, cell: Cell) -> CellState:
        return self.states[cell.id]

    def counts(self, stage: str | None = None) -> dict[str, int]:
        out = {FRESH: 0, VERIFIED: 0, STALE: 0, TO_RUN: 0}
        for cell in self.plan.cells:
            if stage is None or cell.stage == stage:
                out[self.of(cell).state] += 1
        return out


def results_rows(profile: str, stage: str) -> list[dict[str, str]]:
    """``results/<profile>/<stage>/cells.csv`` as strings, exactly as written (:func:`genemask.store.rows`)."""
    return store.rows(profile, stage)


def results_record(profile: str, stage: str, key: str) -> dict:
    """The collected record of one cell; a cell collected before provenance was recorded has none."""
    return store.cell_record(profile, stage, key)


def run_record(cell: Cell) -> tuple[dict | None, str]:
    """(record, why not) of a cell's run in runs/."""
    record = store.read_record(cell.marker)
    if record is None:
        return None, ""
    if cell.out_dir is not None and not cell.out_dir.is_dir():
        return None, f"its folder {paths.display(cell.out_dir)} was moved or deleted"
    return record, ""


class CodeJudge:
    """Which code made a record, and whether that is the code each stage's notebook runs now."""

    def __init__(self, plan: Plan, root: Path | None = None) -> None:
        self.now = Library.now(root)
        self.codes = {stage.name: notebook_code(stage.notebook) for stage in plan.spec.stages}
        self.now_hash = {name: self.now.code_hash(code) for name, code in self.codes.items()}
        self.notebook_now = {name: notebook_hash(code) for name, code in self.codes.items()}

    def other_notebook(self, stage: str, record: dict, key: str, record_key: str) -> bool:
        """Whether ``record`` (or a reproduction entry) was made by other notebook code than the
        stage's now: by its ``notebook_hash``; one without (made before the key lost the notebook's
        code) by its key, which then hashed that code (``genemask grid --migrate-keys`` records the
        hash when re-keying, null where the notebook was another)."""
        if "notebook_hash" in record:
            return record["notebook_hash"] != self.notebook_now[stage]
        return record_key != key

    def made_by(self, stage: str, record: dict) -> tuple[str | None, str]:
        """(code hash that made ``record``, why it is not known). A record names it (``code_hash``)
        since code hashes were recorded; an older one is judged by the code of its commit, unless
        the library it names differs from that commit's (made from a dirty tree)."""
        if record.get("code_hash"):
            return record["code_hash"], ""
        commit = record.get("commit")
        if not commit:
            return None, "made by unknown code (no commit recorded)"
        found = provenance.library_at(commit)
        if found is None:
            return None, f"made by commit {str(commit)[:10]}, which this clone does not have"
        library, whole = found
        if record.get("library_hash") and record["library_hash"] != whole:
            return None, (f"made by library {record['library_hash']}, not commit {str(commit)[:10]}'s "
                          f"({whole}): uncommitted library code")
        return library.code_hash(self.codes[stage]), ""

    def changed_files(self, stage: str, record: dict) -> list[str]:
        """The files of the stage's code that differ between the record's commit and now."""
        found = provenance.library_at(record["commit"]) if record.get("commit") else None
        return found[0].changed_files(self.now, self.codes[stage]) if found else []


def _consumed(record: dict, dep: tuple[str, str], record_key: str) -> str | None:
    """The run id of upstream ``dep`` that a run record (or a reproduction entry) consumed."""
    inputs = record.get("inputs") or {}
    return inputs.get(f"{dep[0]}/{record_key}", inputs.get(f"{dep[0]}/{dep[1]}"))


def same_input_files(cell: Cell, dep: tuple[str, str], entry: dict, dep_state: CellState, profile: str,
                     digests: dict[Path, str]) -> bool:
    """Whether upstream ``dep``'s files that ``cell`` reads have now the bytes a run of it read (a
    record's or a reproduction's ``input_files``): content decides, as Snakemake's checksum rerun
    trigger does, so a rerun upstream that gave the same files (a deterministic cell rerun on another
    machine or checkout) leaves its downstream fresh. Only where every input from ``dep`` is a file
    (a checkpoint folder is not kept by results/ and has only its run id)."""
    refs = [ref for ref in store.input_references(cell.params) if (ref.stage, ref.key) == dep]
    if not refs or not all(ref.file for ref in refs):
        return False
    for ref in refs:
        if dep_state.where == "runs":
            path = paths.runs_dir(profile, ref.stage) / ref.key / ref.file
        else:
            path = replace(ref, key=dep_state.record_key).path(profile)
        if not path.is_file():
            return False
        if path not in digests:
            digests[path] = store.content_digest(path, profile)
        read = [(entry.get("input_files") or {}).get(name) for name in (str(ref), str(replace(ref, key=dep_state.record_key)))]
        if digests[path] not in read:
            return False
    return True


def reproduced_now(record: dict, key: str, code_now: str, notebook_now: str | None = None) -> dict | None:
    """The record's rerun by the code of now under this key (``--verify`` adds them), if any:
    library code ``code_now`` and, where the entry names it, notebook code ``notebook_now``."""
    for entry in reversed(record.get("reproduced") or []):
        if (entry.get("code_hash") == code_now and entry.get("key", key) == key and entry.get("equal")
                and (notebook_now is None or entry.get("notebook_hash", notebook_now) == notebook_now)):
            return entry
    return None


def _resolve_refs(params: dict, matched_keys: dict[str, str]) -> dict:
    """Upstream references rewritten to the keys their upstream records were made under."""
    out = {}
    for name, value in params.items():
        text = key_portable(value)
        ref = store.parse_reference(text)
        if ref is not None:
            text = str(replace(ref, key=matched_keys.get(f"{ref.stage}/{ref.key}", ref.key)))
        out[name] = text
    return out


def grid_state(plan: Plan, use_runs: bool = True, library_root: Path | None = None) -> GridState:
    """The state of every planned cell, and the recorded cells the plan no longer asks for.
    ``use_runs=False`` judges by ``results/`` alone (what the book shows); ``library_root`` is the
    library the code of now is read from (default: this package's)."""
    profile = plan.spec.profile
    library = provenance.library_hash()
    judge = CodeJudge(plan, library_root)
    states: dict[str, CellState] = {}
    matched_keys: dict[str, str] = {}
    recorded: dict[str, dict[str, dict]] = {}  # stage -> key -> record (results)
    for stage in {c.stage for c in plan.cells}:
        recorded[stage] = {row["key"]: results_record(profile, stage, row["key"]) for row in results_rows(profile, stage)}
    by_signature: dict[str, dict[str, str]] = {}
    digests: dict[Path, str] = {}  # content of upstream files now, hashed once per call
    for stage, records in recorded.items():
        for key, record in records.items():
            if isinstance(record.get("params"), dict):
                by_signature.setdefault(stage, {})[json.dumps(record["params"], sort_keys=True, default=str)] = key
    for cell in plan.cells:
        record, why_not = run_record(cell) if use_runs else (None, "")
        where, record_key = ("runs", cell.key) if record else ("", "")
        if why_not:  # a run whose folder is gone is not done, whatever results/ still holds
            states[cell.id] = CellState(TO_RUN, why_not)
            continue
        if record is None and cell.key in recorded.get(cell.stage, {}):
            record, where, record_key = recorded[cell.stage][cell.key], "results", cell.key
        if record is None:
            sig = json.dumps(portable_params(_resolve_refs(cell.shown_params(), matched_keys)), sort_keys=True, default=str)
            old = by_signature.get(cell.stage, {}).get(sig)
            if old is not None:
                record, where, record_key = recorded[cell.stage][old], "results", old
        if record is None:
            states[cell.id] = CellState(TO_RUN, why_not or "not run yet")
            continue
        matched_keys[cell.id] = record_key
        reasons = []
        code_now = judge.now_hash[cell.stage]
        reproduced = reproduced_now(record, cell.key, code_now, judge.notebook_now[cell.stage])
        other_notebook = judge.other_notebook(cell.stage, record, cell.key, record_key)
        if other_notebook and reproduced is None:
            reasons.append("made by other notebook code" + (f" (recorded as {record_key})" if record_key != cell.key else ""))
        made_by, unknown = judge.made_by(cell.stage, record)
        if made_by is None and reproduced is None:
            reasons.append(unknown)
        elif made_by != code_now and reproduced is None:
            changed = judge.changed_files(cell.stage, record)
            reasons.append(f"made by code {made_by}, now {code_now}" + (f" ({', '.join(changed)} changed)" if changed else ""))
        rerun_inputs = False  # the committed run consumed an older upstream run; its reproduction the current one
        for dep in cell.deps:
            dep_id = f"{dep[0]}/{dep[1]}"
            dep_state = states.get(dep_id)
            if dep_state is None or dep_state.state not in DONE:
                reasons.append(f"upstream {dep_id} is {dep_state.state if dep_state else 'unknown'}")
            else:
                now = (dep_state.record or {}).get("run_id")
                if _consumed(record, dep, dep_state.record_key) == now:
                    continue
                if same_input_files(cell, dep, record, dep_state, profile, digests):
                    continue  # another run of the upstream, but the files this cell read have the same bytes
                # A reproduction by the code of now ran on the upstream of its day: its inputs count.
                if reproduced is not None and (_consumed(reproduced, dep, dep_state.record_key) == now
                                               or same_input_files(cell, dep, reproduced, dep_state, profile, digests)):
                    rerun_inputs = True
                else:
                    reasons.append(f"upstream {dep_id} {REMADE}")
        verified = reproduced is not None and (made_by != code_now or other_notebook or rerun_inputs)
        states[cell.id] = CellState(STALE if reasons else VERIFIED if verified else FRESH, "; ".join(reasons), record,
                                    where, record_key, made_by, reproduced)
    orphans: dict[str, list[str]] = {}
    used = {(c.stage, s.record_key) for c in plan.cells for s in [states[c.id]] if s.where == "results"}
    for stage in store.stages(profile):
        keys = [row["key"] for row in results_rows(profile, stage)]
        left = [k for k in keys if (stage, k) not in used and not any(c.stage == stage and c.key == k for c in plan.cells)]
        if left:
            orphans[stage] = left
    return GridState(plan, states, orphans, library, judge)


def changed_params(cells: list[Cell]) -> list[str]:
    """The parameters whose values differ between cells of a stage (what tells its cells apart)."""
    if len(cells) < 2:
        return []
    names: list[str] = []
    for cell in cells:
        for name in cell.shown_params():
            if name not in names:
                names.append(name)
    return [n for n in names if len({json.dumps(key_portable(c.params.get(n)), sort_keys=True, default=str) for c in cells}) > 1]


def describe(cell: Cell, names: list[str]) -> str:
    parts = []
    for name in names:
        value = key_portable(cell.params.get(name))
        text = json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
        parts.append(f"{name}={text if len(text) < 60 else text[:57] + '...'}")
    return " ".join(parts)


def status_lines(gs: GridState) -> list[str]:
    """One line per cell and a summary per stage, for ``--status`` and ``--dry-run``."""
    lines = [f"library now {gs.library}; profile {gs.plan.spec.profile} ({paths.display(gs.plan.spec.source)})"]
    for stage in gs.plan.spec.stages:
        cells = gs.plan.stage_cells(stage.name)
        counts = gs.counts(stage.name)
        code = f", code {gs.code.now_hash[stage.name]}" if gs.code else ""
        lines.append(f"[{stage.name}] {len(cells)} cell(s): {counts[FRESH]} done and fresh, {counts[VERIFIED]} verified, "
                     f"{counts[STALE]} stale, {counts[TO_RUN]} to run   ({paths.display(stage.notebook)}{code})")
        names = changed_params(cells)
        for cell in cells:
            st = gs.of(cell)
            label = {FRESH: "done", VERIFIED: "verified", STALE: "STALE", TO_RUN: "to run"}[st.state]
            detail = f" [{st.where}]" if st.where else ""
            made = (st.record or {}).get("commit")
            if made:
                detail += f" commit {str(made)[:10]}{' (dirty)' if (st.record or {}).get('dirty') else ''}"
            if st.reproduced:
                detail += f" ({describe_reproduced(st.reproduced)})"
            pid = busy_pid(cell)
            if pid is not None:
                label, detail = "RUNNING", f" (pid {pid}){detail}"
            line = f"  {label:8s} {cell.key} {describe(cell, names)}{detail}"
            if st.reason and st.state != FRESH:
                line += f"  -- {st.reason}"
            lines.append(line)
    for stage, keys in gs.orphans.items():
        lines.append(f"[{stage}] ORPHANED: {len(keys)} recorded cell(s) in {paths.display(store.stage_dir(gs.plan.spec.profile, stage))} "
                     f"that {paths.display(gs.plan.spec.source)} does not ask for: {', '.join(keys)}")
    total = gs.counts()
    lines.append(f"grid {gs.plan.spec.profile}: {len(gs.plan.cells)} cells: {total[FRESH]} done and fresh, "
                 f"{total[VERIFIED]} verified, {total[STALE]} stale, {total[TO_RUN]} to run")
    return lines


def describe_reproduced(entry: dict) -> str:
    """A verification in words: "reproduced by code X at commit Y on CPU Z, bit for bit"."""
    commit = str(entry.get("commit") or "unknown")[:10] + (" (dirty)" if entry.get("dirty") else "")
    return (f"reproduced by code {entry.get('code_hash')} at commit {commit} on {entry.get('cpu_model') or 'an unknown CPU'}, "
            f"{entry.get('kind', 'compared')}")

