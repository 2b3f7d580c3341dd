"""Downstream results with each row's pretraining run as typed columns.

A downstream cell names its checkpoint as a grid reference, ``@<stage>/<key>/checkpoint`` (or
``random:<size>`` for an untrained model); the referenced cell's parameters in that stage's
``cells.csv`` are the run's identity. Joining through the references, rather than reading a name
back, gives every row ``pretrain_strategy``, ``pretrain_seed``, ... whichever code version wrote it.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import pandas as pd

from .. import store
from ..identity import COLUMNS, METHOD_COLUMNS, RunIdentity, from_columns, kept_step, legacy_params
from .results import stage_results


def pretraining_runs(profile: str | None = None) -> pd.DataFrame:
    """Every collected pretraining cell of a profile (any stage whose cells have a ``strategy``):
    ``stage``, ``key``, ``dir``, the identity columns and ``method`` (the display label)."""
    profile = profile or _profile()
    rows = []
    for stage in store.stages(profile):
        cells = pd.read_csv(store.cells_path(profile, stage))
        if "strategy" not in cells or "steps" not in cells:
            continue
        for cell in cells.to_dict("records"):
            identity = RunIdentity.from_config(legacy_params(stage, cell))  # committed rows: options as spelled then
            rows.append({"stage": stage, "key": cell["key"], "dir": store.cell_dir(profile, stage, cell["key"]),
                         **identity.columns(), "method": identity.label()})
    return pd.DataFrame(rows, columns=["stage", "key", "dir", *COLUMNS, "method"])


def identity_of(method: str, profile: str | None = None) -> RunIdentity:
    """The identity behind a method label of this profile's results (labels name methods one to
    one, :func:`check_methods`); the seed is dropped. A join on the label, never a parse of it."""
    from ..models import MODEL_SIZES

    runs = pretraining_runs(profile)
    found = runs[runs["method"] == method]
    if len(found):
        return from_columns(found.iloc[0]).method()
    for size in MODEL_SIZES:
        untrained = RunIdentity.untrained(size)
        if untrained.label() == method:
            return untrained
    raise ValueError(f"method {method!r}: no pretraining run of profile {profile or _profile()!r} has this label")


def _profile() -> str:
    from .results import book_profile

    return book_profile()


def resolve_checkpoint(reference: str, runs: pd.DataFrame | dict) -> RunIdentity:
    """The identity of the run a downstream cell's ``checkpoint`` parameter names. ``runs``: the
    pretraining runs, or their rows by ``(stage, key)`` (:func:`_runs_by_cell`, for many lookups)."""
    text = str(reference)
    if text.startswith(store.RANDOM):
        return RunIdentity.untrained(text[len(store.RANDOM):])
    ref = store.parse_reference(text)
    if ref is None:
        raise ValueError(f"checkpoint {text!r}: not a grid reference (@stage/key/checkpoint) or random:<size>")
    row = (runs if isinstance(runs, dict) else _runs_by_cell(runs)).get((ref.stage, ref.key))
    if row is None:
        raise ValueError(f"checkpoint {text!r}: no collected pretraining cell {ref.stage}/{ref.key}")
    identity = from_columns(row)
    step = kept_step(ref.file)
    return identity if step is None else identity.kept_at(step)


def _runs_by_cell(runs: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    return {(row["stage"], row["key"]): row for _, row in runs.iterrows()}


def downstream(stages: str | Iterable[str], file: str, profile: str | None = None) -> pd.DataFrame | None:
    """One result file (``fewshot_results.csv``, ``gue_results.csv``, ...) of every cell of
    ``stages``, each row with its pretraining run's identity columns, ``method`` (display label)
    and the ``stage`` and ``cell`` it came from. None when no cell has the file.

    The identity columns are set once on the joined rows, not per file: a book page joins ~1,000
    files, and adding fifteen columns to each took most of its time."""
    stages = [stages] if isinstance(stages, str) else list(stages)
    profile = profile or _profile()
    key = (tuple(stages), file, profile, _stages_signature(stages, file, profile))
    if key not in _DOWNSTREAM:
        _DOWNSTREAM[key] = _downstream(stages, file, profile)
    found = _DOWNSTREAM[key]
    return None if found is None else found.copy()


#: :func:`downstream`'s joins in this process, by stages, file, profile and the state of what they
#: read: a page asks for the same stages many times (the verdict plan, then each section).
_DOWNSTREAM: dict = {}


def _stages_signature(stages: list[str], file: str, profile: str) -> tuple:
    """What a join reads, as it stands: each stage's folder, its cells.csv text, and every cell's
    ``file`` (size and change time); a collection or a rewritten result changes it."""
    out = []
    for stage in stages:
        folder, cells = store.stage_dir(profile, stage), store.cells_path(profile, stage)
        files = []
        if folder.is_dir():
            for entry in os.scandir(folder):
                path = os.path.join(entry.path, file)
                if entry.is_dir() and os.path.exists(path):
                    stat = os.stat(path)
                    files.append((entry.name, stat.st_mtime_ns, stat.st_size))
        out.append((str(folder), cells.read_bytes() if cells.exists() else None, tuple(sorted(files))))
    return tuple(out)


def _downstream(stages: list[str], file: str, profile: str) -> pd.DataFrame | None:
    runs = _runs_by_cell(pretraining_runs(profile))
    frames, identities = [], []
    for stage in stages:
        _, cells = stage_results(stage, profile)
        if cells is None:
            continue
        for cell in cells.to_dict("records"):
            path = cell["dir"] / file
            if not path.exists() or path.stat().st_size <= 1:
                continue
            frame = pd.read_csv(path)
            if frame.empty:
                continue
            identity = resolve_checkpoint(cell["checkpoint"], runs)
            frames.append(frame.drop(columns=[c for c in COLUMNS if c in frame]))
            identities.append({**identity.columns(), "method": identity.label(), "model": identity.label(),
                               "stage": stage, "cell": cell["key"]})
    if not frames:
        return None
    out = pd.concat(frames, ignore_index=True)
    # one row per file, typed as the per-file columns would be once joined, then one row per result
    per_file = _typed_as_joined(identities)
    per_row = per_file.take(np.repeat(np.arange(len(frames)), [len(f) for f in frames]))
    for column in per_row.columns:  # an existing column (``model``) is replaced where it stands
        out[column] = per_row[column].to_numpy()
    # columns in the order a join of the files with their identity columns gives (a newer file's
    # extra columns after the first file's identity columns)
    order = {}
    for frame in frames:
        order.update(dict.fromkeys([*frame.columns, *(c for c in per_file.columns if c not in frame)]))
    out = out[list(order)]
    check_methods(out)
    return out


def _typed_as_joined(records: list[dict]) -> pd.DataFrame:
    """One row per record, each column typed as a join of one-row frames would type it: a column
    mixing None with values stays ``object`` with its None (inference would make ints floats)."""
    columns = {}
    for name in records[0]:
        values = [record[name] for record in records]
        columns[name] = pd.Series(values, dtype=object) if any(v is None for v in values) else pd.Series(values)
    return pd.DataFrame(columns)


def method_of(results: pd.DataFrame, strategy: str, ranking: str | None = None, options: str = "{}",
              switch: float | None = None) -> str | None:
    """The method label of ``strategy`` in results with identity columns, at its longest budget:
    masked with ``ranking`` (``"Data-A"``; None: ours), the given masking options (canonical JSON)
    and CM-GEMS switch threshold (None: the released one). None when no such run is there."""
    part = results[(results["pretrain_strategy"] == strategy) & (results["pretrain_masking_options"] == options)]
    part = part[part["pretrain_ranking"] == ranking] if ranking else part[part["pretrain_ranking"] != "Data-A"]
    threshold = part["pretrain_switch_threshold"]
    part = part[threshold.isna() | (threshold == 1.0)] if switch is None else part[threshold == switch]
    if part.empty:
        return None
    return str(part.loc[part["pretrain_steps"] == part["pretrain_steps"].max(), "method"].iloc[0])


def check_methods(frame: pd.DataFrame) -> None:
    """Labels must name methods one-to-one: two methods that print alike would be pooled."""
    pairs = frame[["method", *METHOD_COLUMNS]].drop_duplicates()
    shared = pairs["method"][pairs["method"].duplicated()]
    if len(shared):
        raise ValueError(f"methods {sorted(set(shared))} differ in identity columns their label does not show; "
                         f"extend RunIdentity.label")
