"""Tables and figures the notebooks and the book show, and the notebook environment they share.

One submodule per stage (``report.pmi``, ``report.masking``, ...) holds that stage's analyses;
this module holds what every notebook and chapter needs.

Notebooks call :func:`setup_notebook` first, so that every executed notebook has the same quiet,
deterministic output (nbval compares it), the same figure style, and no progress bars.
"""
from __future__ import annotations

import logging
import os
import warnings


def setup_notebook(seed: int = 0) -> None:
    """Quiet libraries, fix seeds and the figure style; call once at the top of a notebook."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    import matplotlib
    import numpy as np
    import seaborn as sns

    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "figure.figsize": (7, 3.6)})
    sns.set_theme(style="whitegrid", context="notebook")
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def book_profile() -> str:
    """The profile whose results the book shows: ``$GENEMASK_PROFILE`` (set by ``make reproduce``),
    else ``cpu`` when its committed results exist, else ``demo``."""
    from .. import paths

    env = os.environ.get("GENEMASK_PROFILE")
    if env:
        return env
    return "cpu" if (paths.results_dir("cpu")).is_dir() else "demo"


def stage_results(stage: str, profile: str | None = None):
    """(profile, cells frame with a ``dir`` column) for one stage's collected results, or
    (profile, None) when that profile has not run the stage."""
    import pandas as pd

    from .. import paths

    profile = profile or book_profile()
    index = paths.results_dir(profile) / stage / "cells.csv"
    if not index.exists():
        return profile, None
    cells = pd.read_csv(index)
    cells["dir"] = [paths.results_dir(profile) / stage / key for key in cells["key"]]
    if "masking_options" in cells:  # committed rows spell options as they were (identity.RENAMED_OPTIONS)
        from ..identity import legacy_params

        cells["masking_options"] = [legacy_params(stage, {"masking_options": v})["masking_options"]
                                    for v in cells["masking_options"]]
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


def show(*items) -> None:
    """What a book page displays, in order: text as Markdown, a matplotlib figure as its image (then
    closed, so that it is not drawn twice), anything else (a frame) as itself. None is skipped, so
    that a section with nothing to say returns None. The one way pages put out Markdown."""
    from IPython.display import Markdown, display

    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            display(Markdown(item))
        elif type(item).__name__ == "Figure" and hasattr(item, "savefig"):
            import matplotlib.pyplot as plt

            display(item)
            plt.close(item)
        else:
            display(item)


# The stage analyses the 01/02 notebooks call as report.<name>.
from .pmi import compare_rankings, npmi_summary, occurrence_share_by_decile, variant_ranks  # noqa: E402,F401
from .masking import masking_statistics, plot_method_figure  # noqa: E402,F401
