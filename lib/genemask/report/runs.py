"""Downstream results with each row's pretraining run as typed columns.

A downstream cell names its checkpoint as a grid reference, ``@<stage>/<key>/checkpoint`` (or
``random:<size>`` for an untrained model); the referenced cell's parameters in that stage's
``cells.csv`` are the run's identity. Joining through the references, rather than reading a name
back, gives every row ``pretrain_strategy``, ``pretrain_seed``, ... whichever code version wrote it.
"""
from __future__ import annotations

from typing import Iterable

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


def resolve_checkpoint(reference: str, runs: pd.DataFrame) -> RunIdentity:
    """The identity of the run a downstream cell's ``checkpoint`` parameter names."""
    text = str(reference)
    if text.startswith(store.RANDOM):
        return RunIdentity.untrained(text[len(store.RANDOM):])
    ref = store.parse_reference(text)
    if ref is None:
        raise ValueError(f"checkpoint {text!r}: not a grid reference (@stage/key/checkpoint) or random:<size>")
    found = runs[(runs["stage"] == ref.stage) & (runs["key"] == ref.key)]
    if found.empty:
        raise ValueError(f"checkpoint {text!r}: no collected pretraining cell {ref.stage}/{ref.key}")
    identity = from_columns(found.iloc[0])
    step = kept_step(ref.file)
    return identity if step is None else identity.kept_at(step)


def downstream(stages: str | Iterable[str], file: str, profile: str | None = None) -> pd.DataFrame | None:
    """One result file (``fewshot_results.csv``, ``gue_results.csv``, ...) of every cell of
    ``stages``, each row with its pretraining run's identity columns, ``method`` (display label)
    and the ``stage`` and ``cell`` it came from. None when no cell has the file."""
    stages = [stages] if isinstance(stages, str) else list(stages)
    runs = pretraining_runs(profile)
    frames = []
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
            frame = frame.drop(columns=[c for c in COLUMNS if c in frame])
            frames.append(frame.assign(**identity.columns(), method=identity.label(), model=identity.label(),
                                       stage=stage, cell=cell["key"]))
    if not frames:
        return None
    out = pd.concat(frames, ignore_index=True)
    check_methods(out)
    return out


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
