"""Tables and figures the notebooks and the book show, and the notebook environment they share.

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


# ---------------------------------------------------------------------------------------------
# 01_pmi: the NPMI ranking
# ---------------------------------------------------------------------------------------------


def npmi_summary(table):
    """NPMI quantiles per n-gram length (the data behind the distribution figure)."""
    return (
        table.groupby("n")["npmi"]
        .describe(percentiles=[0.05, 0.5, 0.95])
        .rename(columns={"count": "n_ngrams"})
        .reset_index()
    )


def variant_ranks(table, k: int = 6):
    """Each k-mer's rank under naive PMI, segmentation PMI and the discounted NPMI (1 = highest),
    so the book can show how the definitions reorder the same k-mers."""
    kmers = table[table["n"] == k].copy()
    out = kmers[["ngram", "count"]].rename(columns={"ngram": "kmer"})
    for column, name in (("pmi_naive", "rank_naive"), ("pmi_segmentation", "rank_segmentation"), ("npmi", "rank_npmi")):
        out[name] = kmers[column].rank(ascending=False, method="first").astype(int).to_numpy()
    return out.sort_values("rank_npmi", ignore_index=True)


def occurrence_share_by_decile(ranking, n_bins: int = 10):
    """Share of all k-mer occurrences in the counted genome that falls in each rank decile
    (decile 1 = the best-ranked tenth): how often the masking's favourite k-mers occur."""
    import numpy as np
    import pandas as pd

    ranks = ranking["rank"].to_numpy()
    decile = np.ceil(ranks / (len(ranks) / n_bins)).astype(int)
    counts = ranking["count"].to_numpy(dtype=float)
    share = pd.Series(counts).groupby(decile).sum() / counts.sum()
    return pd.DataFrame({"decile": share.index, "share": share.to_numpy()})


def compare_rankings(ours, theirs):
    """Spearman and Kendall correlation between two k-mer rank tables (columns kmer, rank), and
    the overlap of their top 100; returns (merged frame, summary dict)."""
    from scipy import stats

    merged = ours[["kmer", "rank"]].merge(theirs[["kmer", "rank"]], on="kmer", suffixes=("_ours", "_authors"))
    rho = stats.spearmanr(merged["rank_ours"], merged["rank_authors"])
    tau = stats.kendalltau(merged["rank_ours"], merged["rank_authors"])
    top = lambda frame, col: set(frame.nsmallest(100, col)["kmer"])
    summary = {
        "n_kmers": len(merged),
        "spearman_rho": float(rho.statistic),
        "spearman_p": float(rho.pvalue),
        "kendall_tau": float(tau.statistic),
        "top100_overlap": len(top(merged, "rank_ours") & top(merged, "rank_authors")),
    }
    return merged, summary


# ---------------------------------------------------------------------------------------------
# The book: which results a chapter shows
# ---------------------------------------------------------------------------------------------


def book_profile() -> str:
    """The profile whose results the book shows: ``$GENEMASK_PROFILE`` (set by ``make reproduce``),
    else ``cpu`` when its committed results exist, else ``demo``."""
    from . import paths

    env = os.environ.get("GENEMASK_PROFILE")
    if env:
        return env
    return "cpu" if (paths.results_dir("cpu")).is_dir() else "demo"


def stage_results(stage: str, profile: str | None = None):
    """(profile, cells frame with a ``dir`` column) for one stage's collected results, or
    (profile, None) when that profile has not run the stage."""
    import pandas as pd

    from . import paths

    profile = profile or book_profile()
    index = paths.results_dir(profile) / stage / "cells.csv"
    if not index.exists():
        return profile, None
    cells = pd.read_csv(index)
    cells["dir"] = [paths.results_dir(profile) / stage / key for key in cells["key"]]
    return profile, cells
