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


# --------------------------------------------------------------------------------------------------
# The whole analysis (06_motifs): pools, rankings, tables, and errors that name the parameter.
# --------------------------------------------------------------------------------------------------

from genemask.report.motifs import motif_analysis  # noqa: E402
from genemask.tokenizer import kmerize  # noqa: E402
from helpers import real_data  # noqa: E402


def _ranking_files(tmp_path, planted="TATAAA"):
    """Our layout (with the 01_pmi params.json beside it) and the authors' Data-A layout."""
    _, _, ranking = _data(n=2, planted=planted)
    ours = tmp_path / "pmi" / "kmer_ranking.csv"
    ours.parent.mkdir()
    ranking.to_csv(ours, index=False)
    (ours.parent / "params.json").write_text('{"config": {"pmi": "segmentation", "normalizer": "per_length"}}')
    authors = tmp_path / "Data-A.csv"
    reverse = ranking.assign(rank=4097 - ranking["rank"])  # the planted k-mer last
    reverse.rename(columns={"kmer": "ngram", "rank": "norm_pmi_rank_rel"}).assign(
        **{"naive.pmi": 0.0, "true.pmi": 0.0, "dp.true.pmi": 0.0, "norm_dp_true_pmi": 0.0}).to_csv(authors, index=False)
    return ours, authors


def _write_gue(root, name, seqs, labels):
    folder = root / "gue" / name
    folder.mkdir(parents=True)
    frame = pd.DataFrame({"sequence": seqs, "label": labels})
    for split in ("train", "dev", "test"):
        frame.to_csv(folder / f"{split}.csv", index=False)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_analysis_finds_the_planted_kmer_with_either_ranking_layout(tmp_path, data_dir):
    seqs, labels, _ = _data(n=400)
    _write_gue(data_dir, "prom/prom_core_all", seqs + seqs[:3] + [seqs[1]], list(labels) + list(labels[:3]) + [0])
    ours, authors = _ranking_files(tmp_path)
    result = motif_analysis([str(ours), str(authors)], ["prom/prom_core_all"], [1, 100])
    pool = result.pools.iloc[0]
    assert pool.source == "gue/prom/prom_core_all/train.csv" and pool.split == "train split"
    assert pool.duplicates_removed == 3 and pool.conflicting_removed == 2 and pool.n_sequences == 399
    summary = result.summary.set_index(["ranking", "top"])
    assert list(summary.index.get_level_values(0).unique()) == ["ours (segmentation, per_length)", "authors' (Data-A)"]
    mine = summary.loc[("ours (segmentation, per_length)", 1)]
    assert mine.n_top_enriched == 1 and mine.share_top == 1.0 and mine.fisher_p < 0.05
    assert summary.loc[("authors' (Data-A)", 1)].n_top_enriched == 0  # the planted k-mer ranks last there
    assert {"beyond_gc_p", "beyond_gc_cpg_p", "mannwhitney_p", "share_rest"} <= set(result.summary.columns)
    top = result.top_kmers[result.top_kmers.ranking.str.startswith("ours")]
    assert len(top) == 30 and top.iloc[0].kmer == "TATAAA" and top.iloc[0].enriched
    bins = result.rank_bins[result.rank_bins.ranking.str.startswith("ours")]
    assert bins.n_kmers.sum() == 4096 and bins.rank_from.iloc[0] == 1 and bins.n_enriched.iloc[0] >= 1
    assert (bins.share_cpg * bins.n_kmers).sum() == pytest.approx(sum("CG" in k for k in vocab_kmers(6)))
    assert len(result.enrichment) == 2 * 4096


def test_fewshot_pool_is_the_largest_released_training_file(data_dir):
    seqs, labels, _ = _data(n=40)
    root = data_dir / "fewshot/genemask/Data-B_fewshot-task-datasets/Prom-core"
    for shots, n in ((10, 20), (50, 40)):
        (root / str(shots)).mkdir(parents=True)
        pd.DataFrame({"sequence": [kmerize(s) for s in seqs[:n]], "label": labels[:n]}).to_csv(
            root / str(shots) / "train.tsv", sep="\t", index=False)
    pool = motifs.labelled_pool("prom-core")
    assert pool.source.endswith("Prom-core/50/train.tsv") and len(pool.frame) == 40
    assert "50-shot" in pool.split


def test_composition_counts_gc_and_cpg_per_class():
    frame = pd.DataFrame({"sequence": ["CGCG", "AATT", "ACGT"], "label": [1, 0, 2]})
    comp = motifs.composition(frame)
    assert comp["n_positive"] == 1 and comp["n_negative"] == 2 and comp["negative_labels"] == "0,2"
    assert comp["gc_positive"] == 1.0 and comp["gc_negative"] == 0.25
    assert comp["cpg_per_100_positive"] == pytest.approx(200 / 3) and comp["cpg_per_100_negative"] == pytest.approx(100 / 6)


def test_bad_input_names_the_parameter(tmp_path, data_dir):
    seqs, labels, _ = _data(n=20)
    _write_gue(data_dir, "prom/prom_core_tata", seqs, [1] * len(seqs))
    ours, _ = _ranking_files(tmp_path)
    fasta = tmp_path / "x.fa"
    fasta.write_text(">x\nACGT\n")
    with pytest.raises(ValueError, match=r"^datasets: unknown dataset 'prom-kore'"):
        motif_analysis(str(ours), ["prom-kore"])
    with pytest.raises(ValueError, match=r"^rank_tables: .*x.fa: rank table needs columns 'kmer' and 'rank'"):
        motif_analysis([str(fasta)], ["prom/prom_core_tata"])
    with pytest.raises(ValueError, match=r"^rank_tables: .*absent.csv: no such ranking file"):
        motif_analysis([str(tmp_path / "absent.csv")], ["prom/prom_core_tata"])
    with pytest.raises(ValueError, match=r"^datasets: prom/prom_core_tata: gue/prom/prom_core_tata/train.csv holds label\(s\) \[1\] only"):
        motif_analysis(str(ours), "prom/prom_core_tata")
    with pytest.raises(ValueError, match=r"^datasets: prom/prom_core_notata: neither train.csv nor dev.csv is under"):
        motif_analysis(str(ours), ["prom/prom_core_notata"])
    with pytest.raises(ValueError, match=r"^top: 0 is not a number"):
        motif_analysis(str(ours), ["prom/prom_core_tata"], [0, 100])
    for message in (str(err) for err in _errors(ours)):
        assert "\n" not in message


def _errors(ours):
    for args in ((str(ours), ["prom-kore"]), (str(ours), "prom/prom_core_tata"), (str(ours), [])):
        try:
            motif_analysis(*args)
        except ValueError as err:
            yield err


def test_real_prom300_top_npmi_kmers_are_enriched_with_the_authors_ranking():
    """GeneMask §6.3's question on real data: the authors' top-100 6-mers are enriched in Prom-300 promoters."""
    real_data("fewshot/genemask/Data-B_fewshot-task-datasets/Prom-300/1000/train.tsv")
    authors = real_data("genemask/Data-A_norm-pmi-score-ranking.csv")
    result = motif_analysis([str(authors)], ["prom-300"], [100])
    row = result.summary.iloc[0]
    assert row.ranking == "authors' (Data-A)" and result.pools.iloc[0].n_sequences == 2000
    assert row.share_top > 4 * row.share_rest and row.fisher_p < 1e-10 and row.beyond_gc_p < 1e-6
