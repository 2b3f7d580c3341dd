"""The published numbers, as data: every table and figure value of GeneMask (ECAI 2023) and CM-GEMS
(ECAI 2024), transcribed once from the papers (reference/paper_numbers.md), and the GUE rows of the
DNABERT-2 paper (Table 4) that the GUE chapter sets beside ours, each with its source and tag, so
that no page or module retypes a published number.

Files (one value per row, long format):

- ``values.csv``: paper, table (``T1``, ``Fig2`` ...), block (``DNABERT``, ``LOGO``, ``baseline``),
  model (the paper's row name), dataset (our dataset or GUE task id; ``mean (human)`` ... for printed
  means), shots (per class), steps (pretraining), metric, value, sd, sig (the paper's significance
  mark), source, tag, note (anomalies found in the paper, next to the number they concern). Read, each
  row also has ``printed``: the value's text at the paper's own precision, for display.
- ``genemask_t5_motifs.csv``: GeneMask Table 5, the NPMI ranks of rGADEM motifs (one row per motif,
  ranks ``;``-separated).

Tags: ``Q`` quoted from the source, ``C`` read in released code or data, ``I`` inferred (a reading
off a raster figure, ±1 unit of the last digit shown).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

TAGS = {"Q": "quoted", "C": "from released code or data", "I": "read off a figure or inferred"}
VALUE_COLUMNS = ("paper", "table", "block", "model", "dataset", "shots", "steps", "metric", "value", "sd", "sig",
                 "source", "tag", "note")
MOTIF_COLUMNS = ("dataset", "motif", "probe", "ranks", "source", "tag", "note")
#: Display names of our few-shot dataset ids, as the papers print them.
DATASET_LABELS = {"prom-core": "Prom-core", "prom-300": "Prom-300", "cohn-enh": "Cohn-enh", "splice-40": "Splice-40",
                  "silencer": "Sil-300"}


def _read(name: str, columns: tuple[str, ...], path=None) -> pd.DataFrame:
    with resources.as_file(path or resources.files(__name__) / name) as file:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    if tuple(frame.columns) != columns:
        raise ValueError(f"{name}: columns {list(frame.columns)}, expected {list(columns)}")
    bad = frame.index[~frame["tag"].isin(TAGS)]
    if len(bad):
        raise ValueError(f"{name} line {bad[0] + 2}: tag {frame.at[bad[0], 'tag']!r} is not one of {sorted(TAGS)}")
    return frame


def _numeric(frame: pd.DataFrame, column: str, name: str, integer: bool = False) -> pd.Series:
    raw = frame[column]
    parsed = pd.to_numeric(raw.where(raw != ""), errors="coerce")
    bad = frame.index[(raw != "") & parsed.isna()]
    if len(bad):
        raise ValueError(f"{name} line {bad[0] + 2}: {column} {raw[bad[0]]!r} is not a number")
    return parsed.astype("Int64") if integer else parsed.astype(float)


def read_values(path=None) -> pd.DataFrame:
    """Parse and check a values file (default: the package's ``values.csv``); a bad row fails with
    its line number. ``value`` is the number, ``printed`` its text as the paper prints it."""
    frame = _read("values.csv", VALUE_COLUMNS, path)
    frame["printed"] = frame["value"]  # the number as the paper prints it (73.81, 0.40): shown at its own precision
    for column, integer in (("shots", True), ("steps", True), ("value", False), ("sd", False)):
        frame[column] = _numeric(frame, column, "values.csv", integer)
    missing = frame.index[frame["value"].isna()]
    if len(missing):
        raise ValueError(f"values.csv line {missing[0] + 2}: no value")
    return frame


@lru_cache(maxsize=1)
def _values() -> pd.DataFrame:
    return read_values()


def values(paper: str | None = None, table: str | None = None, **where) -> pd.DataFrame:
    """Published values, optionally of one paper and table and with other columns fixed
    (``values("GeneMask", "T1", block="LOGO", metric="accuracy")``); a copy the caller may change."""
    frame = _values()
    mask = pd.Series(True, index=frame.index)
    for column, wanted in (("paper", paper), ("table", table), *where.items()):
        if wanted is None:
            continue
        if column not in frame:
            raise KeyError(f"published values have no column {column!r}")
        mask &= frame[column] == wanted
    out = frame[mask].reset_index(drop=True)
    if not len(out):
        raise KeyError(f"no published values for paper={paper!r} table={table!r} {where}")
    return out


@lru_cache(maxsize=1)
def _motifs() -> pd.DataFrame:
    frame = _read("genemask_t5_motifs.csv", MOTIF_COLUMNS)
    frame["ranks"] = [[int(r) for r in ranks.split(";")] for ranks in frame["ranks"]]
    return frame


def motif_ranks() -> pd.DataFrame:
    """GeneMask Table 5 and the ranks its text quotes: dataset, motif, probe (the 6-mer or 5-mer whose
    6-mers' best ranks the paper lists), ranks (list of int), source, tag, note."""
    return _motifs().copy()
