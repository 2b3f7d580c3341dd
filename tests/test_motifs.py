"""The motif analysis finds a planted promoter 6-mer and ranks it as enriched."""
import numpy as np
import pandas as pd
import pytest

from genemask.report import motifs
from genemask.tokenizer import vocab_kmers


def _data(n=400, planted="TATAAA", seed=0):
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), 70)) for _ in range(n)]
    labels = np.arange(n) % 2
    seqs = [s[:30] + planted + s[36:] if y == 1 else s for s, y in zip(seqs, labels)]
    kmers = vocab_kmers(6)
    ranking = pd.DataFrame({"kmer": kmers, "rank": np.arange(1, len(kmers) + 1)})
    ranking.loc[ranking.kmer == planted, "rank"], ranking.loc[0, "rank"] = 1, ranking.loc[ranking.kmer == planted, "rank"].item()
    return seqs, labels, ranking


def test_planted_kmer_is_enriched_and_counted_once_per_sequence():
    seqs, labels, ranking = _data()
    table = motifs.kmer_enrichment(seqs, labels, ranking)
    row = table.set_index("kmer").loc["TATAAA"]
    assert row["in_positive"] == 200 and row["rank"] == 1
    assert row["q_enriched"] < 1e-20 and row["log2_odds_ratio"] > 3
    assert (table["in_positive"] <= 200).all()
    summary = motifs.top_versus_rest(table, top=1)
    assert summary["enriched_in_top"] == 1 and summary["fisher_p"] < 0.05


def test_needs_both_classes():
    seqs, labels, ranking = _data(n=10)
    with pytest.raises(ValueError, match="both positive"):
        motifs.kmer_enrichment(seqs, np.ones(10, int), ranking)
