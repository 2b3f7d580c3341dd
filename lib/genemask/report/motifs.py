"""The motif analysis: are the top-NPMI 6-mers the ones enriched in promoter sequences?

GeneMask compared its best-ranked 6-mers with motifs that rGADEM (R) found in promoter sets
(papers.md §1.8) and reported a "strong correlation" without a table. We ask the same question
directly and with a test: per 6-mer, how much more often it occurs in positive (promoter)
sequences than in negatives, and whether the top of the NPMI ranking is shifted towards
enrichment compared with the rest.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..tokenizer import N_SPECIAL, encode_batch, vocab_kmers


def kmer_enrichment(sequences: Sequence[str], labels: Sequence[int], ranking: pd.DataFrame,
                    k: int = 6, positive: int = 1) -> pd.DataFrame:
    """Per k-mer: positive and negative sequences containing it, the log2 odds ratio of presence
    (Haldane's +0.5), a one-sided hypergeometric p-value for enrichment in positives and its
    Benjamini–Hochberg q-value, next to the k-mer's NPMI ``rank`` from ``ranking``."""
    from scipy import stats

    labels = np.asarray(labels)
    if len(labels) != len(sequences):
        raise ValueError(f"{len(sequences)} sequences but {len(labels)} labels")
    is_positive = labels == positive
    if is_positive.all() or not is_positive.any():
        raise ValueError(f"labels: need both positive ({positive}) and negative sequences")
    ids = encode_batch(list(sequences), k, max_length=None)
    row = np.repeat(np.arange(len(ids)), [len(x) for x in ids])
    token = np.concatenate(ids) - N_SPECIAL
    keep = token >= 0  # drop [CLS]/[SEP]/[UNK]
    n_kmers = 4**k
    pairs = np.unique(row[keep] * n_kmers + token[keep])  # presence: each k-mer once per sequence
    seq_of, kmer_of = np.divmod(pairs, n_kmers)
    pos = np.bincount(kmer_of[is_positive[seq_of]], minlength=n_kmers)
    neg = np.bincount(kmer_of[~is_positive[seq_of]], minlength=n_kmers)
    n_pos, n_neg = int(is_positive.sum()), int((~is_positive).sum())
    log2_or = np.log2((pos + 0.5) * (n_neg - neg + 0.5) / ((n_pos - pos + 0.5) * (neg + 0.5)))
    p = stats.hypergeom.sf(pos - 1, n_pos + n_neg, pos + neg, n_pos)
    kmers = vocab_kmers(k)
    frame = pd.DataFrame({"kmer": kmers, "gc": [kmer.count("G") + kmer.count("C") for kmer in kmers], "in_positive": pos, "in_negative": neg,
                          "log2_odds_ratio": log2_or, "p_enriched": p,
                          "q_enriched": stats.false_discovery_control(p)})
    ranks = ranking[["kmer", "rank"]].assign(kmer=lambda f: f["kmer"].str.upper())
    return frame.merge(ranks, on="kmer", how="left").sort_values("rank", ignore_index=True)


def top_versus_rest(enrichment: pd.DataFrame, top: int = 100, alpha: float = 0.05) -> dict:
    """Are the ``top`` NPMI 6-mers more enriched in positives than the other 6-mers?

    Mann–Whitney U on the log2 odds ratios (one-sided, top > rest), and Fisher's exact test on
    how many of each group are significantly enriched (q < ``alpha``). Promoters are GC-rich, so
    the U test is repeated on the odds ratios minus the mean of 6-mers with the same GC count:
    enrichment beyond what GC content alone explains."""
    from scipy import stats

    in_top = enrichment["rank"] <= top
    a, b = enrichment.loc[in_top, "log2_odds_ratio"], enrichment.loc[~in_top, "log2_odds_ratio"]
    significant = enrichment["q_enriched"] < alpha
    table = [[int((significant & in_top).sum()), int((~significant & in_top).sum())],
             [int((significant & ~in_top).sum()), int((~significant & ~in_top).sum())]]
    fisher = stats.fisher_exact(table, alternative="greater")
    beyond_gc = enrichment["log2_odds_ratio"] - enrichment.groupby("gc")["log2_odds_ratio"].transform("mean")
    return {
        "top": top,
        "median_log2_or_top": float(a.median()),
        "median_log2_or_rest": float(b.median()),
        "mannwhitney_p": float(stats.mannwhitneyu(a, b, alternative="greater").pvalue),
        "enriched_in_top": table[0][0],
        "enriched_in_rest": table[1][0],
        "fisher_odds_ratio": float(fisher.statistic),
        "fisher_p": float(fisher.pvalue),
        "median_beyond_gc_top": float(beyond_gc[in_top].median()),
        "median_beyond_gc_rest": float(beyond_gc[~in_top].median()),
        "mannwhitney_beyond_gc_p": float(stats.mannwhitneyu(beyond_gc[in_top], beyond_gc[~in_top], alternative="greater").pvalue),
    }
