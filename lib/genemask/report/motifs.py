"""The motif analysis: are the top-NPMI 6-mers the ones enriched in promoter sequences?

GeneMask compared its best-ranked 6-mers with motifs that rGADEM (R) found in promoter sets
(papers.md §1.8) and reported a "strong correlation" without a table. We ask the same question
directly and with a test: per 6-mer, how much more often it occurs in positive (promoter)
sequences than in negatives, and whether the top of the NPMI ranking is shifted towards
enrichment compared with the rest.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..tokenizer import N_SPECIAL, encode_batch, vocab_kmers


def kmer_enrichment(sequences: Sequence[str], labels: Sequence[int], ranking: pd.DataFrame,
                    k: int = 6, positive: int = 1) -> pd.DataFrame:
    """Per k-mer: positive and negative sequences containing it, the log2 odds ratio of presence
    (Haldane's +0.5), a one-sided hypergeometric p-value for enrichment in positives and its
    Benjamini–Hochberg q-value, next to the k-mer's NPMI ``rank`` from ``ranking``."""
    return with_ranks(presence_enrichment(sequences, labels, k, positive), ranking)


def with_ranks(enrichment: pd.DataFrame, ranking: pd.DataFrame) -> pd.DataFrame:
    """A ranking-free enrichment table with each k-mer's NPMI ``rank`` added, best rank first."""
    ranks = ranking[["kmer", "rank"]].assign(kmer=lambda f: f["kmer"].str.upper())
    return enrichment.merge(ranks, on="kmer", how="left").sort_values("rank", ignore_index=True)


def presence_enrichment(sequences: Sequence[str], labels: Sequence[int], k: int = 6, positive: int = 1) -> pd.DataFrame:
    """:func:`kmer_enrichment` without the ranking, in vocabulary order: computed once per dataset
    and shared by every ranking compared on it. Labels other than ``positive`` are the negatives."""
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
    frame = pd.DataFrame({"kmer": kmers, "gc": [kmer.count("G") + kmer.count("C") for kmer in kmers],
                          "cpg": [kmer.count("CG") for kmer in kmers], "in_positive": pos, "in_negative": neg,
                          "log2_odds_ratio": log2_or, "p_enriched": p,
                          "q_enriched": stats.false_discovery_control(p)})
    return frame


def top_versus_rest(enrichment: pd.DataFrame, top: int = 100, alpha: float = 0.05) -> dict:
    """Are the ``top`` NPMI 6-mers more enriched in positives than the other 6-mers?

    Mann–Whitney U on the log2 odds ratios (one-sided, top > rest), and Fisher's exact test on
    how many of each group are significantly enriched (q < ``alpha``). Promoters are GC-rich, so
    the U test is repeated on the odds ratios minus the mean of 6-mers with the same GC count:
    enrichment beyond what GC content alone explains; and once more against the mean of 6-mers
    with the same GC and CpG counts (promoters are CpG islands more often than the genome)."""
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
        **_beyond_gc_cpg(enrichment, in_top),
    }


def _beyond_gc_cpg(enrichment: pd.DataFrame, in_top: pd.Series) -> dict:
    """The U test on log2 odds ratios minus the mean of 6-mers with the same GC and CpG counts."""
    from scipy import stats

    if "cpg" not in enrichment:  # a table from before the CpG column
        return {}
    centred = enrichment["log2_odds_ratio"] - enrichment.groupby(["gc", "cpg"])["log2_odds_ratio"].transform("mean")
    return {"median_beyond_gc_cpg_top": float(centred[in_top].median()),
            "median_beyond_gc_cpg_rest": float(centred[~in_top].median()),
            "mannwhitney_beyond_gc_cpg_p": float(stats.mannwhitneyu(centred[in_top], centred[~in_top], alternative="greater").pvalue)}


# --------------------------------------------------------------------------------------------------
# The whole analysis as the 06_motifs notebook runs it: every input checked before anything is
# counted, each error naming the notebook parameter it concerns.
# --------------------------------------------------------------------------------------------------

def load_ranking(source: str | Path, k: int = 6) -> pd.DataFrame:
    """``kmer`` and ``rank`` of every k-mer, from our ``kmer_ranking.csv`` (01_pmi) or the authors'
    Data-A CSV, checked as the masking's rank table is (:func:`genemask.pmi.load_rank_table`)."""
    from ..pmi import load_rank_table

    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ranking file")
    try:
        table = load_rank_table(path, k)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path}: not a CSV k-mer ranking ({reason})") from None
    return pd.DataFrame({"kmer": vocab_kmers(k), "rank": table[N_SPECIAL:]})


def ranking_label(source: str | Path) -> str:
    """A reader's name for a ranking file: ``ours (<pmi>, <normalizer>)`` for a 01_pmi output (its
    ``params.json`` lies beside it), ``authors' (Data-A)`` for the released CSV, else the file name."""
    path = Path(source)
    params = path.with_name("params.json")
    if params.is_file():
        try:
            config = json.loads(params.read_text())["config"]
            return f"ours ({config['pmi']}, {config['normalizer']})"
        except (ValueError, KeyError, TypeError):
            pass
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    return "authors' (Data-A)" if "norm_pmi_rank_rel" in header else path.name


@dataclass
class Pool:
    """The labelled sequences of one dataset that the enrichment counts use, and where they came from."""

    dataset: str
    frame: pd.DataFrame  # sequence, label
    source: str  # the file, relative to the data folder (or the demo tasks folder)
    split: str  # which split and why
    duplicates_removed: int = 0
    conflicting_removed: int = 0


def labelled_pool(name: str) -> Pool:
    """The largest labelled set of ``name`` that the data folder holds: a GUE task's train split
    (its dev split where train.csv is absent), a few-shot dataset's largest released training file.
    Repeated rows are dropped once, and sequences that carry two labels entirely."""
    from .. import tasks

    d = tasks.get_dataset(name)
    root = d.root()
    if isinstance(d, tasks.GueTask):
        options = [] if "train" in d.missing else [("train.csv", "train split")]
        options.append(("dev.csv", "dev split (train.csv is not in the shared data)"))
        found = [(file, why) for file, why in options if (root / file).is_file()]
        if not found:
            raise tasks.DataUnavailable(f"{name}: neither {' nor '.join(f for f, _ in options)} is under {root}")
        file, split = found[0]
        path, source = root / file, f"gue/{d.name}/{file}"
    else:
        shots = [s for s in sorted(d.train_files) if s not in d.unavailable_shots and (root / d.train_files[s]).is_file()]
        if not shots:
            raise tasks.DataUnavailable(f"{name}: none of its released training files is under {root}")
        path, source = root / d.train_files[shots[-1]], d.train_files[shots[-1]]
        split = f"largest released training file ({shots[-1]}-shot)"
    frame = tasks.read_split(path, d.n_classes)
    unique = frame.drop_duplicates(ignore_index=True)
    conflicting = unique.groupby("sequence")["label"].transform("nunique") > 1
    return Pool(name, unique[~conflicting].reset_index(drop=True), source, split,
                len(frame) - len(unique), int(conflicting.sum()))


def composition(frame: pd.DataFrame, positive: int = 1) -> dict:
    """Size, GC content and CpG dinucleotides per 100 of the positive and the negative sequences:
    what a k-mer's enrichment may merely echo."""
    def stats(seqs: pd.Series) -> tuple[float, float]:
        text = "|".join(seqs)  # '|' keeps a CpG from spanning two sequences
        bases = sum(len(s) for s in seqs)
        dinucleotides = sum(max(len(s) - 1, 0) for s in seqs)
        return (text.count("G") + text.count("C")) / max(bases, 1), 100 * text.count("CG") / max(dinucleotides, 1)

    is_positive = frame["label"] == positive
    gc_pos, cpg_pos = stats(frame.loc[is_positive, "sequence"])
    gc_neg, cpg_neg = stats(frame.loc[~is_positive, "sequence"])
    return {"n_positive": int(is_positive.sum()), "n_negative": int((~is_positive).sum()),
            "negative_labels": ",".join(map(str, sorted(frame.loc[~is_positive, "label"].unique()))),
            "length_median": float(frame["sequence"].str.len().median()),
            "gc_positive": gc_pos, "gc_negative": gc_neg, "cpg_per_100_positive": cpg_pos, "cpg_per_100_negative": cpg_neg}


def top_kmers(enrichment: pd.DataFrame, n: int = 30, alpha: float = 0.05) -> pd.DataFrame:
    """The ``n`` best-ranked k-mers with their presence counts, log2 odds ratio and q-value."""
    top = enrichment.sort_values("rank", kind="stable").head(n)
    return top[["rank", "kmer", "gc", "cpg", "in_positive", "in_negative", "log2_odds_ratio", "q_enriched"]].assign(
        enriched=top["q_enriched"] < alpha).reset_index(drop=True)


def by_rank_bin(enrichment: pd.DataFrame, width: int = 128, alpha: float = 0.05) -> pd.DataFrame:
    """Consecutive bins of ``width`` NPMI ranks: the share of k-mers significantly enriched in
    positives (q < ``alpha``), median log2 odds ratio, the same minus the mean of k-mers with equal
    GC count, mean GC count and the share of k-mers holding a CpG: the data behind the
    enrichment-along-the-ranking figure."""
    frame = enrichment.assign(
        bin=(enrichment["rank"] - 1) // width,
        significant=enrichment["q_enriched"] < alpha,
        beyond_gc=enrichment["log2_odds_ratio"] - enrichment.groupby("gc")["log2_odds_ratio"].transform("mean"))
    out = frame.groupby("bin").agg(
        rank_from=("rank", "min"), rank_to=("rank", "max"), n_kmers=("kmer", "size"), n_enriched=("significant", "sum"),
        share_enriched=("significant", "mean"), median_log2_or=("log2_odds_ratio", "median"),
        median_beyond_gc=("beyond_gc", "median"), mean_gc=("gc", "mean"), share_cpg=("cpg", lambda c: float((c > 0).mean())))
    return out.reset_index(drop=True).astype({"n_enriched": "int64"})


@dataclass
class MotifAnalysis:
    """Every table of one run of the motif analysis (tidy: one row per observation)."""

    summary: pd.DataFrame  # ranking × dataset × top: the top-versus-rest tests
    top_kmers: pd.DataFrame  # ranking × dataset × the best-ranked k-mers
    rank_bins: pd.DataFrame  # ranking × dataset × rank bin
    pools: pd.DataFrame  # dataset: which sequences, how many, their composition
    enrichment: pd.DataFrame  # ranking × dataset × every k-mer


def _as_list(value, what: str) -> list:
    values = [value] if isinstance(value, (str, Path, int)) and not isinstance(value, bool) else value
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{what}={value!r}: expected a non-empty list")
    return list(values)


def motif_analysis(rank_tables, datasets, top=(50, 100, 200), k: int = 6, positive: int = 1,
                   alpha: float = 0.05, n_top_kmers: int = 30, bin_width: int = 128) -> MotifAnalysis:
    """For each ranking file in ``rank_tables`` and each dataset name in ``datasets``: per-k-mer
    presence enrichment in label ``positive`` against the other labels on the dataset's
    :func:`labelled_pool`, and :func:`top_versus_rest` for each cut-off in ``top``.

    Every input is checked first; errors name the parameter (``rank_tables``, ``datasets``, ``top``).
    """
    tops = _as_list(top, "top")
    for t in tops:
        if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or not 1 <= t < 4**k:
            raise ValueError(f"top: {t!r} is not a number of best-ranked {k}-mers between 1 and {4**k - 1}")
    rankings: dict[str, pd.DataFrame] = {}
    for source in _as_list(rank_tables, "rank_tables"):
        try:
            ranking = load_ranking(source, k)
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"rank_tables: {err}") from None
        label = ranking_label(source)
        rankings[label if label not in rankings else f"{label} [{len(rankings) + 1}]"] = ranking
    pools: list[Pool] = []
    for name in _as_list(datasets, "datasets"):
        try:
            pool = labelled_pool(name)
        except (ValueError, LookupError) as err:  # unknown name, unreadable file, absent data
            raise ValueError(f"datasets: {err}") from None
        labels = sorted(int(v) for v in pool.frame["label"].unique())
        if positive not in labels or labels == [positive]:
            raise ValueError(f"datasets: {name}: {pool.source} holds label(s) {labels} only; the motif analysis compares "
                             f"label {positive} (positive) with the other labels and needs both")
        pools.append(pool)
    summary, tops_frames, bins, tables, pool_rows = [], [], [], [], []
    for pool in pools:
        base = presence_enrichment(pool.frame["sequence"].tolist(), pool.frame["label"].to_numpy(), k, positive)
        pool_rows.append({"dataset": pool.dataset, "source": pool.source, "split": pool.split,
                          "n_sequences": len(pool.frame), **composition(pool.frame, positive),
                          "duplicates_removed": pool.duplicates_removed, "conflicting_removed": pool.conflicting_removed})
        for label, ranking in rankings.items():
            table = with_ranks(base, ranking)
            keys = {"ranking": label, "dataset": pool.dataset}
            for t in tops:
                result = top_versus_rest(table, int(t), alpha)
                in_top = table["rank"] <= t
                summary.append({**keys, "top": int(t), "n_top_enriched": result["enriched_in_top"],
                                "share_top": result["enriched_in_top"] / int(in_top.sum()),
                                "n_rest_enriched": result["enriched_in_rest"],
                                "share_rest": result["enriched_in_rest"] / int((~in_top).sum()),
                                "fisher_odds_ratio": result["fisher_odds_ratio"], "fisher_p": result["fisher_p"],
                                "median_log2_or_top": result["median_log2_or_top"], "median_log2_or_rest": result["median_log2_or_rest"],
                                "mannwhitney_p": result["mannwhitney_p"],
                                "median_beyond_gc_top": result["median_beyond_gc_top"], "median_beyond_gc_rest": result["median_beyond_gc_rest"],
                                "beyond_gc_p": result["mannwhitney_beyond_gc_p"], "beyond_gc_cpg_p": result["mannwhitney_beyond_gc_cpg_p"],
                                "mean_gc_top": float(table.loc[in_top, "gc"].mean()), "mean_gc_rest": float(table.loc[~in_top, "gc"].mean())})
            tops_frames.append(top_kmers(table, n_top_kmers, alpha).assign(**keys))
            bins.append(by_rank_bin(table, bin_width, alpha).assign(**keys))
            tables.append(table.assign(**keys))
    first = ["ranking", "dataset"]
    reorder = lambda frame: frame[first + [c for c in frame.columns if c not in first]]  # noqa: E731
    return MotifAnalysis(pd.DataFrame(summary), reorder(pd.concat(tops_frames, ignore_index=True)),
                         reorder(pd.concat(bins, ignore_index=True)), pd.DataFrame(pool_rows),
                         reorder(pd.concat(tables, ignore_index=True)))
