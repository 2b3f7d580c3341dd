"""What the book reads: a profile's collected results, stage by stage, through the store's layout.

Its own module, not the ``report`` package's ``__init__``: every notebook imports the package for
:func:`genemask.report.setup_notebook`, and a cell's freshness is the code of the modules it runs
(:mod:`genemask.grid.code`), so the book's readers living there made every notebook's cells stale
whenever a reader changed.
"""
from __future__ import annotations

import os

from .. import paths, store


def book_profile() -> str:
    """The profile whose results the book shows: ``$GENEMASK_PROFILE`` (set by ``make reproduce``),
    else ``cpu`` when its committed results exist, else ``demo``."""
    env = os.environ.get("GENEMASK_PROFILE")
    if env:
        return env
    return "cpu" if paths.results_dir("cpu").is_dir() else "demo"


def stage_results(stage: str, profile: str | None = None):
    """(profile, cells frame with a ``dir`` column) for one stage's collected results, or
    (profile, None) when that profile has not run the stage."""
    import pandas as pd

    profile = profile or book_profile()
    index = store.cells_path(profile, stage)
    if not index.exists():
        return profile, None
    cells = pd.read_csv(index)
    cells["dir"] = [store.cell_dir(profile, stage, key) for key in cells["key"]]
    return profile, cells


def collect(cells, name: str):
    """One result file (``fewshot_results.csv``, ...) of every collected cell, concatenated; a model
    name that several cells share gets its cell key's first six characters. None when no cell has it."""
    import pandas as pd

    frames = [pd.read_csv(row.dir / name).assign(cell=row.key) for row in (cells.itertuples() if cells is not None else [])
              if (row.dir / name).exists() and (row.dir / name).stat().st_size > 1]
    frames = [f for f in frames if len(f)]
    if not frames:
        return None
    frame = pd.concat(frames, ignore_index=True)
    if "model" in frame:
        shared = frame.groupby("model")["cell"].transform("nunique") > 1
        frame.loc[shared, "model"] = frame.loc[shared, "model"] + " (" + frame.loc[shared, "cell"].str[:6] + ")"
    return frame.drop(columns="cell")


def rank_table_label(value: str, profile: str) -> str:
    """A reader's name for the rank table a cell used: ours (with the 01_pmi cell's PMI definition,
    looked up in that stage's ``cells.csv``) or the authors' Data-A."""
    import pandas as pd

    text = str(value)
    reference = store.parse_reference(text)
    if reference is not None and reference.stage == "pmi":
        index = store.cells_path(profile, "pmi")
        if index.exists():
            cells = pd.read_csv(index).set_index("key")
            if reference.key in cells.index:
                return f"ours ({cells.at[reference.key, 'pmi']}, {cells.at[reference.key, 'normalizer']})"
        return f"ours (01_pmi cell {reference.key})"
    if "Data-A" in text:
        return "authors' (Data-A)"
    return text.rsplit("/", 1)[-1]
