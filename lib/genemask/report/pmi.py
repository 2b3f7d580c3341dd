"""01_pmi: analyses of the NPMI ranking."""
from __future__ import annotations


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
