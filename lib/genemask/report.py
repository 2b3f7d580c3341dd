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


# ---------------------------------------------------------------------------------------------
# 02_masking: what each strategy masks
# ---------------------------------------------------------------------------------------------

#: Named masking configurations compared in the notebooks and the book: strategy + options.
MASKING_VARIANTS: dict[str, dict] = {
    "random": {"strategy": "random"},
    "genemask": {"strategy": "genemask"},  # paper's intent: token lookup, sorted top half (v3)
    "genemask-position-v1": {"strategy": "genemask", "rank_lookup": "position", "selection": "v1",
                             "special_rank_zero": True, "random_replacement": "vocab"},
    "genemask-position-v3": {"strategy": "genemask", "rank_lookup": "position", "selection": "v3",
                             "special_rank_zero": True, "random_replacement": "vocab"},
    "global": {"strategy": "global"},
    "global-position": {"strategy": "global", "rank_lookup": "position", "random_replacement": "vocab"},
    "cmstep": {"strategy": "cmstep", "total_steps": 100},
}


def masking_variant(name: str) -> dict:
    """Options of a named variant, with a clear error listing the known names."""
    if name not in MASKING_VARIANTS:
        raise ValueError(f"unknown masking variant {name!r}; known: {', '.join(MASKING_VARIANTS)}")
    return dict(MASKING_VARIANTS[name])


def sample_windows(fasta, n: int, length: int, seed: int = 0) -> list[str]:
    """``n`` random A/C/G/T windows of ``length`` nt from a FASTA (uniform over runs long enough)."""
    import numpy as np

    from .genome import iter_record_segments

    runs, buffer = [], b""
    for _, seg in iter_record_segments(fasta):
        buffer += seg.seq
        if not seg.continues:
            if len(buffer) >= length:
                runs.append(buffer)
            buffer = b""
    if not runs:
        raise ValueError(f"{fasta}: no A/C/G/T run of {length} nt or more")
    rng = np.random.default_rng(seed)
    weights = np.array([len(r) - length + 1 for r in runs], dtype=float)
    picks = rng.choice(len(runs), size=n, p=weights / weights.sum())
    return [runs[i][s : s + length].decode() for i, s in
            ((i, int(rng.integers(0, len(runs[i]) - length + 1))) for i in picks)]


def masking_statistics(name: str, ids, attention, labels, info, token_ranks, k: int = 6):
    """Per-sequence and per-span statistics of one masked batch (tidy frames):
    masked fraction, span lengths, NPMI rank of masked vs unmasked k-mers, and the share of
    masked k-mers that no unmasked overlapping k-mer reveals (all tokens within k-1 masked)."""
    import numpy as np
    import pandas as pd
    import torch

    masked = labels != -100
    real = attention.bool() & (ids > 4)
    fraction = (masked & real).sum(1).double() / real.sum(1).double()
    padded = torch.nn.functional.pad(masked.int(), (k - 1, k - 1))
    window = padded.unfold(1, 2 * k - 1, 1).sum(-1)  # masked tokens within +-(k-1)
    # A token is revealed by an unmasked real neighbour; count only real neighbours.
    real_pad = torch.nn.functional.pad(real.int(), (k - 1, k - 1)).unfold(1, 2 * k - 1, 1).sum(-1)
    hidden = masked & (window == real_pad)
    ranks = token_ranks[ids]
    spans = []
    m = masked.numpy()
    for row in m:  # analysis only (not the collator): run lengths per sequence
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
        spans.extend((edges[1::2] - edges[0::2]).tolist())
    per_sequence = pd.DataFrame({"variant": name, "masked_fraction": fraction.numpy()})
    summary = {
        "variant": name,
        "masked_fraction_mean": float(fraction.mean()),
        "masked_fraction_sd": float(fraction.std()),
        "mean_rank_masked": float(ranks[masked & real].double().mean()),
        "mean_rank_unmasked": float(ranks[~masked & real].double().mean()),
        "fully_hidden_share": float(hidden.sum() / max(int(masked.sum()), 1)),
        "mean_span_length": float(np.mean(spans)) if spans else 0.0,
        "anchors_per_sequence": float(info["anchors"].sum(1).double().mean()),
    }
    span_frame = pd.DataFrame({"variant": name, "span_length": spans})
    return summary, per_sequence, span_frame
