"""What a result *is* on disk: the one owner of the ``results/`` layout.

A profile's results are ``results/<profile>/<stage>/cells.csv`` (one row per cell: its key and
parameters as text) beside one folder per cell, ``<stage>/<key>/``, holding small result files
(:data:`RESULT_SUFFIXES`, at most :data:`RESULT_MAX_BYTES` as stored) and the cell's provenance
record (:data:`RECORD`). The grid collects into it, the GPU unit runner packs and unpacks it, the
book reads it; all of them go through this module, so the layout, the ``cells.csv`` text, the
record's reading and writing, the result file names, the portable form of stored text and the
checkpoint-reference rule each have one home (as showyourwork's single ``paths`` module has).

Kept light (the standard library, ``paths``, ``io`` and ``steplog``): the report and the GPU runner
import it without torch, the grid or each other. Nothing read from a file names a path outside its
folder: a key is 16 hex digits, a stage one safe folder name, a reference's sub-path relative and
without ``..``. A cell's key is :func:`cell_key` of its stage and parameters, here for the grid and
the GPU runner alike.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .io import write_json, write_text
from .steplog import METRICS_FILE, compact_log_text

# Names --------------------------------------------------------------------------------------------

CELLS = "cells.csv"  # results/<profile>/<stage>/cells.csv: key + parameters, one row per cell
RECORD = "provenance.json"  # results/<profile>/<stage>/<key>/provenance.json: how the cell was made
UNITS = "units"  # results/gpu/units/<unit>.json: a GPU window's record (not a stage)
#: Result files notebooks write (and the GPU runner writes as they do).
METRICS = METRICS_FILE  # a pretraining step log (compacted when stored)
SUMMARY = "summary.json"  # a pretraining run's summary
FEWSHOT_RESULTS = "fewshot_results.csv"
FEWSHOT_RUNS = "fewshot_runs.csv"
FEWSHOT_SUMMARY = "fewshot_summary.csv"
FEWSHOT_SKIPPED = "fewshot_skipped.csv"
CHECKPOINT_INFO = "checkpoint.json"  # the checkpoint a few-shot cell fine-tuned
GUE_RESULTS = "gue_results.csv"
GUE_RUNS = "gue_runs.csv"
GUE_SKIPPED = "gue_skipped.csv"

#: Result files small enough to commit: what the book reads (checkpoints and big tables stay in
#: runs/); the limit is on the text stored (:func:`stored_text`).
RESULT_SUFFIXES = (".csv", ".json", ".txt")
RESULT_MAX_BYTES = 1 << 20

#: A cell key: a folder name that cannot leave its stage folder.
KEY = re.compile(r"[0-9a-f]{16}")
#: A profile or stage name: one safe path component (never ``..``, ``/`` or empty); the grid checks
#: params files by the same rule.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class StoreError(ValueError):
    """A results file that cannot be read as what it claims to be; the message names the file."""


# Layout -------------------------------------------------------------------------------------------

def is_safe_name(name: object) -> bool:
    return isinstance(name, str) and bool(SAFE_NAME.fullmatch(name)) and not name.endswith(".")


def _stage_name(stage: str) -> str:
    if not is_safe_name(stage):
        raise StoreError(f"{stage!r} is not a safe folder name for a profile or stage (letters, digits, _ . -; no / or ..)")
    return stage


def _key(key: str, where: object = "") -> str:
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise StoreError(f"{where + ': ' if where else ''}key {key!r} is not a cell key (16 hex digits)")
    return key


def key_portable(value: Any) -> Any:
    """An upstream output path (``<runs>/<profile>/<stage>/<key>/<file>``) as ``@stage/key/file``, as
    a key hashes it: the same key on every machine. Anything else unchanged."""
    runs = str(paths.runs_root()) + os.sep
    if isinstance(value, str) and value.startswith(runs):
        parts = value[len(runs):].split(os.sep)  # profile, stage, key, file...
        return "@" + "/".join(parts[1:])
    return value


def cell_key(stage: str, params: Mapping[str, Any]) -> str:
    """A cell's key: what it computes, i.e. its stage's name and its parameters (upstream outputs as
    ``@stage/key/file``), never the notebook's text or the package version, so a code change shows as
    staleness (each record's code hash) and never orphans committed cells. The stage's name, not its
    notebook: two stages may run one notebook with the same parameters. The one formula: the grid's
    plan, the GPU runner and the key migration call it. ``params`` as planned: a grid-chosen
    ``out_dir`` is not among them (an explicit one is)."""
    payload = json.dumps({"stage": _stage_name(stage), "params": {k: key_portable(v) for k, v in params.items()}},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def profile_dir(profile: str, root: Path | None = None) -> Path:
    """``results/<profile>/``; ``root``: another folder laid out as ``results/`` (a GPU unit's
    staging folder, an archive being unpacked) instead of this checkout's."""
    return Path(root) / _stage_name(profile) if root is not None else paths.results_dir(profile)


def stage_dir(profile: str, stage: str, root: Path | None = None) -> Path:
    """``results/<profile>/<stage>/``."""
    return profile_dir(profile, root) / _stage_name(stage)


def cells_path(profile: str, stage: str, root: Path | None = None) -> Path:
    """``results/<profile>/<stage>/cells.csv``."""
    return stage_dir(profile, stage, root) / CELLS


def cell_dir(profile: str, stage: str, key: str, root: Path | None = None) -> Path:
    """``results/<profile>/<stage>/<key>/`` (the key checked: it never names another folder)."""
    return stage_dir(profile, stage, root) / _key(key)


def record_path(profile: str, stage: str, key: str, root: Path | None = None) -> Path:
    """A collected cell's provenance record."""
    return cell_dir(profile, stage, key, root) / RECORD


def stages(profile: str, root: Path | None = None) -> list[str]:
    """The stages a profile holds (folders with a ``cells.csv``), sorted by name."""
    folder = profile_dir(profile, root)
    return sorted(p.name for p in folder.iterdir() if (p / CELLS).exists()) if folder.is_dir() else []


# cells.csv ----------------------------------------------------------------------------------------

def read_cells(index: Path, shown: str | None = None) -> list[dict[str, str]]:
    """A ``cells.csv`` as strings, exactly as written ([] when there is none); every key checked, so a
    key read from it is a folder name inside its stage. ``shown``: the file's name in messages."""
    where = shown or str(index)
    if not index.exists():
        return []
    try:
        with index.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise StoreError(f"{where}: unreadable cells.csv ({err})") from None
    if rows and "key" not in (reader.fieldnames or []):
        raise StoreError(f"{where} has no 'key' column")
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        key = _key(row.get("key"), f"{where}, line {line}")  # type: ignore[arg-type]
        if key in seen:
            raise StoreError(f"{where} lists key {key} twice (line {line})")
        seen.add(key)
    return rows


def rows(profile: str, stage: str, root: Path | None = None) -> list[dict[str, str]]:
    """``results/<profile>/<stage>/cells.csv`` as strings, exactly as written."""
    return read_cells(cells_path(profile, stage, root))


def cell_text(value: Any) -> str:
    """A parameter as ``cells.csv`` keeps it: lists and mappings as JSON, None as empty, else ``str``."""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "" if value is None else str(value)


def cells_row(key: str, params: Mapping[str, Any]) -> dict[str, str]:
    """A cell's ``cells.csv`` row: its key, then its parameters as text (``out_dir`` is the runner's)."""
    return {"key": _key(key), **{name: cell_text(value) for name, value in params.items() if name != "out_dir"}}


def cells_text(rows: Iterable[Mapping[str, str]]) -> str:
    """The text of a ``cells.csv``: the columns in order of first appearance, missing ones empty."""
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_cells(index: Path, rows: Iterable[Mapping[str, str]]) -> None:
    """Write a ``cells.csv`` whole (atomically: a reader sees the old file or the new one)."""
    write_text(index, cells_text(rows))


def merge_cells(index: Path, new: Iterable[Mapping[str, str]], drop: Iterable[str] = ()) -> list[dict[str, str]]:
    """Merge rows into a ``cells.csv``: a row replaces the row of its key where it stands, a new key is
    appended, keys in ``drop`` are removed; the rest is kept as written. Returns the rows written."""
    merged = {row["key"]: dict(row) for row in read_cells(index)}
    for row in new:
        merged[_key(row["key"], index)] = dict(row)
    for key in drop:
        merged.pop(key, None)
    out = list(merged.values())
    write_cells(index, out)
    return out


def held_keys(profile: str, stage: str, root: Path | None = None) -> set[str]:
    """Keys a stage holds: listed in its ``cells.csv`` and present as a folder."""
    return {row["key"] for row in rows(profile, stage, root) if cell_dir(profile, stage, row["key"], root).is_dir()}


# Provenance records -------------------------------------------------------------------------------

def read_record(path: Path) -> dict | None:
    """A provenance record (a cell's, or a run's in runs/), None when there is none; a damaged one
    (not JSON, not a mapping) is an error naming it, never read as "not run" (which would rerun a
    finished cell silently)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StoreError(f"{path}: cannot read this run record ({err.strerror or err})") from None
    try:
        record = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise StoreError(f"{path}: damaged run record, not JSON ({err}); remove it to run the cell again") from None
    if not isinstance(record, dict):
        raise StoreError(f"{path}: damaged run record (a JSON {type(record).__name__}, not a mapping); "
                         "remove it to run the cell again")
    return record


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    write_json(path, dict(record))


#: What a collected cell without a record reads as (collected before provenance was recorded).
NO_RECORD = {"library_hash": None, "note": "made before provenance was recorded"}


def cell_record(profile: str, stage: str, key: str) -> dict:
    """The collected record of one cell; a cell collected before provenance was recorded has none."""
    record = read_record(record_path(profile, stage, key))
    return record if record is not None else dict(NO_RECORD)


# Result files as stored ---------------------------------------------------------------------------

def is_result_file(file: Path) -> bool:
    """A file results/ may keep: a plain (not linked, not hidden) .csv/.json/.txt, not a run record.
    Hidden files are genemask's claim markers and locks, or nobody's business."""
    return (file.is_file() and not file.is_symlink() and not file.name.startswith(".") and file.suffix in RESULT_SUFFIXES
            and file.name != RECORD)


def result_files(folder: Path) -> dict[str, str]:
    """``{name: text}`` of a cell folder's result files ({} when there is no folder)."""
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if is_result_file(p)} if folder.is_dir() else {}


def stored_text(name: str, text: str, profile: str) -> str:
    """A result file's text as results/ keeps it: machine paths made portable, and a pretraining
    step log cut to ``steplog.RESULT_LOG_ROWS`` rows (its per-step log stays in runs/)."""
    text = portable_text(text, profile)
    return compact_log_text(text) if name == METRICS else text


# Content of inputs ---------------------------------------------------------------------------------

def content_digest(path: Path, profile: str) -> str:
    """``sha256:<hex>`` of what a downstream cell read from ``path``, whichever run wrote it: a result
    file as results/ stores it (machine paths made portable, so a run's file and its collected copy
    agree), anything else byte for byte."""
    if is_result_file(path):
        return "sha256:" + hashlib.sha256(stored_text(path.name, path.read_text(), profile).encode()).hexdigest()
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def input_references(params: Mapping[str, Any]) -> list[Reference]:
    """The upstream files and folders a cell's parameters name (``@stage/key[/file]``, or the path
    of a run in runs/ that :func:`key_portable` writes so), in parameter order."""
    values = [v for value in params.values() for v in (value if isinstance(value, list) else [value])]
    return [ref for v in values for ref in [parse_reference(key_portable(v))] if ref is not None]


def input_file_digests(params: Mapping[str, Any], profile: str, runs: Path | None = None) -> dict[str, str]:
    """``{"@stage/key/file": digest}`` of every upstream *file* a cell reads, as its run finds them in
    ``runs`` (default this machine's runs/): recorded with the run, so a later run of the upstream
    whose file has the same bytes is known to give the same input (content, not run id, decides).
    A folder (a checkpoint) is left out: results/ keeps none to compare with."""
    root = (runs or paths.runs_root()) / profile
    out = {}
    for ref in input_references(params):
        path = root / ref.stage / ref.key / ref.file
        if ref.file and path.is_file():
            out[str(ref)] = content_digest(path, profile)
    return out


# Portable paths -----------------------------------------------------------------------------------

_PATH_CHARS = r"[^\s\"',\]\)}]"


def portable_value(value: Any) -> Any:
    """An upstream cell's output path as ``@stage/key/file`` (the key names the upstream cell in
    its own ``cells.csv``), a path in the data folder as ``${GENEMASK_DATA}/...``, one in the
    repository relative to it; lists and mappings element-wise; anything else unchanged."""
    if isinstance(value, list):
        return [portable_value(v) for v in value]
    if isinstance(value, dict):
        return {k: portable_value(v) for k, v in value.items()}
    if isinstance(value, str) and value.startswith(os.sep):
        runs = str(paths.runs_root()) + os.sep
        if value.startswith(runs):
            parts = value[len(runs):].split(os.sep)  # profile, stage, key, file...
            return "@" + "/".join(parts[1:])
        data = str(paths.data_dir()) + os.sep
        if value.startswith(data):
            return "${GENEMASK_DATA}/" + value[len(data):]
        root = str(paths.ROOT) + os.sep
        if value.startswith(root):
            return value[len(root):]
    return value


def portable_text(text: str, profile: str) -> str:
    """``text`` (a result file) with machine paths rewritten portably: any ``.../runs/<profile>/<stage>/<key>...``
    (made on whichever machine, absolute or relative to where it ran: ``runs/cpu/...``, a scratch
    ``.cache/verify/.../runs/cpu/...``) → ``@<stage>/<key>...``, the data folder →
    ``${GENEMASK_DATA}``, the repository → relative."""
    text = re.sub(rf"(?<![^\s\"'\[(,:=])(?:{_PATH_CHARS}*?/)?runs/{re.escape(profile)}/([\w.-]+/[0-9a-f]{{16}}{_PATH_CHARS}*)",
                  r"@\1", text)
    runs = str(paths.runs_root() / profile) + "/"
    text = re.sub(rf"{re.escape(runs)}([\w.-]+/[0-9a-f]{{16}}{_PATH_CHARS}*)", r"@\1", text)
    for prefix, repl in ((str(paths.data_dir()) + "/", "${GENEMASK_DATA}/"), (str(paths.ROOT) + "/", "")):
        text = text.replace(prefix, repl)
    return text


_MACHINE_PATH = re.compile(r"(?<![\w$}@.])(/(?:home|work|tmp|mnt|scratch|data|Users|root|var|opt|srv)/[^\s\"',]*)")


def machine_paths(text: str) -> list[str]:
    """Absolute paths of some machine left in ``text`` (what committed results must not hold)."""
    return _MACHINE_PATH.findall(text)


# References ---------------------------------------------------------------------------------------

#: A reference as a params file writes it: ``@stage``, ``@stage/file``, ``@stage[name=value,...]/file``
#: (it selects planned cells; the grid expands it).
SELECTION = re.compile(r"@(?P<stage>[\w.-]+)(?:\[(?P<selector>[^\]]*)\])?(?:/(?P<file>.+))?")
#: A reference as results keep it: ``@stage/key`` or ``@stage/key/sub/path`` (one collected cell).
_STORED = re.compile(r"@(?P<stage>[\w.-]+)/(?P<key>[0-9a-f]{16})(?:/(?P<file>.*))?")
RANDOM = "random:"  # a checkpoint parameter naming an untrained model: random:<size>


@dataclass(frozen=True)
class Reference:
    """A stored reference: the cell ``stage``/``key`` and a path ``file`` inside its folder ('' for the folder)."""

    stage: str
    key: str
    file: str = ""

    def __str__(self) -> str:
        return f"@{self.stage}/{self.key}" + (f"/{self.file}" if self.file else "")

    def path(self, profile: str, root: Path | None = None) -> Path:
        """Where the referenced file of a collected cell is: inside its folder, always."""
        folder = cell_dir(profile, self.stage, self.key, root)
        return folder / self.file if self.file else folder


def _inside(sub: str, text: str) -> str:
    parts = Path(sub).parts
    if sub.startswith("/") or ".." in parts:
        raise StoreError(f"reference {text!r}: its path {sub!r} leaves the cell's folder")
    return sub


def parse_reference(text: Any) -> Reference | None:
    """``@stage/key[/file]`` as a :class:`Reference`; None for anything that is no reference (a
    plain value, ``random:<size>``). A reference whose path leaves its folder is an error."""
    if not isinstance(text, str) or not text.startswith("@"):
        return None
    match = _STORED.fullmatch(text)
    if match is None:
        return None
    return Reference(match["stage"], match["key"], _inside(match["file"] or "", text))


#: A cell named in stored text: ``<stage>/<key>`` (in ``@stage/key/file``, ``runs/cpu/stage/key``,
#: an ``inputs`` entry, a ``migrated:stage/key`` run id), the stage a whole path component.
_CELL_NAMED = r"(?P<stage>[A-Za-z0-9][\w.-]*)/(?P<key>[0-9a-f]{16})(?![0-9a-f])"


def rekey_text(text: str, keys: Mapping[tuple[str, str], str], prefix: str = "") -> str:
    """``text`` with every ``<stage>/<key>`` that ``keys`` maps (``(stage, old key) -> new key``)
    renamed; ``prefix``: only those right after it (``"@cpu/"``: another profile's references).
    Nothing else changes: other hex digits (code hashes, run ids, commits) are never a stage's."""
    pattern = re.escape(prefix) + _CELL_NAMED if prefix else r"(?<![\w.-])" + _CELL_NAMED
    return re.sub(pattern, lambda m: f"{prefix}{m['stage']}/{keys.get((m['stage'], m['key']), m['key'])}", text)
