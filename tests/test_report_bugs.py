"""report.bugs: the tables the released-code-bugs chapter derives from a rank table, and its readers
of collected masking, pretraining and few-shot results."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import oracle_released as oracle
from genemask import masking, tokenizer
from genemask.report import bugs
from helpers import real_data

VOCAB = list(tokenizer.SPECIAL_TOKENS) + tokenizer.vocab_kmers(6)


@pytest.fixture(scope="module")
def rank_table():
    """A seeded permutation of 1..4096 by token id (specials set by the collator)."""
    table = torch.zeros(len(VOCAB), dtype=torch.long)
    table[5:] = torch.randperm(4096, generator=torch.Generator().manual_seed(1)) + 1
    return table


def released_anchor(ranks: oracle.ReleasedRanks, centre: int, end: int) -> int:
    """Code-B's anchor search for one centre: strict < over the centre, then -2, -1, +1, +2, +3."""
    best_rank, best = ranks.at([], centre), centre
    for offset in oracle.MASK_LIST[6]:
        index = centre + offset
        if 1 <= index <= end and ranks.at([], index) < best_rank:
            best_rank, best = ranks.at([], index), index
    return best


@pytest.mark.parametrize("special_rank_zero", [True, False])
def test_anchor_map_is_the_released_position_lookup(rank_table, special_rank_zero):
    n = 60
    frame = bugs.position_anchor_map(rank_table, n_tokens=n, special_rank_zero=special_rank_zero)
    kmer_rank = {VOCAB[i]: int(rank_table[i]) for i in range(5, len(VOCAB))}
    ranks = oracle.ReleasedRanks(VOCAB, kmer_rank, era="code-b" if special_rank_zero else "cm", lookup="position")
    assert frame["centre"].tolist() == list(range(1, n + 1))
    assert frame["anchor"].tolist() == [released_anchor(ranks, c, n) for c in range(1, n + 1)]
    assert frame["token_read"].tolist() == [VOCAB[a] for a in frame["anchor"]]
    assert ((frame["rank_read"] == 0) == (frame["anchor"] <= 4)).all() if special_rank_zero else (frame["rank_read"] > 0).all()


def test_anchor_map_does_not_read_the_sequence(rank_table):
    """The same centres in two different sequences give the same anchors with position lookup."""
    tok = tokenizer.build_tokenizer(6)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(5, len(VOCAB), size=(2, 40)))
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    centres = torch.zeros_like(ids, dtype=torch.bool)
    centres[:, [3, 17, 30]] = True
    collator = masking.make_collator("genemask", tok, rank_table=rank_table, rank_lookup="position", seed=0)
    _, _, info = collator.mask_batch(ids, torch.ones_like(ids), centres=centres)
    a, b = info["anchor_position"].view(2, 3)
    assert torch.equal(a, b)
    table = bugs.position_anchor_map(rank_table, n_tokens=38, special_rank_zero=False).set_index("centre")
    assert a.tolist() == table.loc[[3, 17, 30], "anchor"].tolist()


def test_preference_is_what_global_position_masks(rank_table):
    tok = tokenizer.build_tokenizer(6)
    n, k = 100, 7
    order = bugs.position_preference(rank_table, n_tokens=n, top=None)
    assert sorted(order["position"]) == list(range(1, n + 1))
    assert (np.diff(order["rank_read"]) >= 0).all()
    ids = torch.full((1, n + 2), 5)
    ids[0, 0], ids[0, -1] = tok.cls_token_id, tok.sep_token_id
    centres = torch.zeros_like(ids, dtype=torch.bool)
    centres[0, 10 : 10 + k] = True  # only their count matters
    options = masking.variant_options("global-position")
    collator = masking.make_collator(options.pop("strategy"), tok, rank_table=rank_table, seed=0, **options)
    _, _, info = collator.mask_batch(ids, torch.ones_like(ids), centres=centres)
    assert sorted(info["anchors"][0].nonzero().squeeze(1).tolist()) == sorted(order["position"].head(k))
    assert len(bugs.position_preference(rank_table, n_tokens=n)) == 20


def test_fixed_span_share_counts_overlapping_spans_once():
    preference = pd.DataFrame({"position": [5, 9, 278, 6, 100]})
    # 1..10 and 4..14 and 1..11 overlap into 1..14; 273..283 adds 11.
    assert bugs.fixed_span_share(preference, 506, k=4) == pytest.approx(25 / 506)
    assert bugs.fixed_span_share(preference, 506, k=1) == pytest.approx(10 / 506)  # clipped at position 1
    assert bugs.fixed_span_share(preference, 280, k=3) == pytest.approx((14 + 8) / 280)  # clipped at the end


def test_special_rank_zero_moves_only_centres_near_the_start(rank_table):
    effect = bugs.special_rank_zero_effect(rank_table, n_tokens=200, centre_probability=0.0176)
    assert effect["changed_centres"] and max(effect["changed_centres"]) <= 6
    assert effect["anchors_at_rank_zero"] == 6  # centres 1..6 reach one of positions 1..4
    assert effect["sequence_share"] == pytest.approx(1 - (1 - 0.0176) ** len(effect["changed_centres"]))


def test_special_replacement_share():
    assert bugs.special_replacement_share() == pytest.approx(0.1 * 5 / 4101)
    assert bugs.special_replacement_share(k=3, random_replace_prob=0.2) == pytest.approx(0.2 * 5 / 69)


def test_released_numbers_for_the_authors_ranking():
    """papers.md §1.4 and §2.2, computed on Data-A: 166 anchor positions over centres 1..506, and
    Global's fixed preference 5, 9, 278, 6, 346, 197, ..."""
    data_a = real_data("genemask/Data-A_norm-pmi-score-ranking.csv")
    assert bugs.position_anchor_map(data_a)["anchor"].nunique() == 166
    assert bugs.position_preference(data_a, top=8)["position"].tolist() == [5, 9, 278, 6, 346, 197, 345, 69]
    assert bugs.position_anchor_map(data_a).set_index("centre").loc[6, "token_read"] == "[MASK]"


def test_masking_effects_and_long_spans():
    summary = pd.DataFrame({
        "variant": ["random", "genemask"], "masked_fraction_mean": [0.14, 0.15], "masked_fraction_sd": [0.03, 0.03],
        "mean_rank_masked": [1400.0, 1300.0], "mean_rank_unmasked": [1390.0, 1390.0], "fully_hidden_share": [0.02, 0.14],
        "mean_span_length": [6.5, 10.2], "anchors_per_sequence": [0.0, 5.9]})
    spans = pd.DataFrame({"variant": ["random", "random", "genemask", "genemask"], "span_length": [6, 12, 6, 11],
                          "count": [10, 0, 1, 6]})
    invariance = pd.DataFrame({"variant": ["genemask"], "sequences_with_identical_anchors": [0.004]})
    table = bugs.masking_effects(summary, spans, invariance)
    assert table.loc["genemask", "rank gap"] == pytest.approx(90.0)
    assert table.loc["random", "rank gap"] == pytest.approx(-10.0)
    assert table.loc["genemask", "in runs ≥ 11 %"] == pytest.approx(100 * 66 / 72)
    assert table.loc["random", "in runs ≥ 11 %"] == 0
    assert table.loc["genemask", "same anchors %"] == pytest.approx(0.4)
    assert np.isnan(table.loc["random", "same anchors %"])
    assert list(bugs.masking_effects(summary).columns)[:3] == ["masked %", "anchors / seq", "mean span"]


def test_options_as_cells_csv_writes_them():
    assert bugs._options("{}") == {} and bugs._options(float("nan")) == {}
    assert bugs._options(json.dumps({"centre_probability": 0.05})) == {"centre_probability": 0.05}
    assert bugs._options("{'centre_probability': 0.05}") == {"centre_probability": 0.05}


def write_metrics(folder, steps: int, ppl: float):
    folder.mkdir(parents=True)
    rows = [{"step": s, "loss": 8.0 - s / steps, "lr": 1e-3, "masked_fraction": 0.15,
             "val_perplexity": ppl if s % 50 == 0 else np.nan, "phase": "genemask", "tokens": 100, "seconds": s / 10}
            for s in range(1, steps + 1)]
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)


def test_pretrain_comparison_keeps_default_masking_at_the_longest_budget(tmp_path):
    data_a = "${GENEMASK_DATA}/genemask/Data-A_norm-pmi-score-ranking.csv"
    specs = [("a", "random", 100, "{}", "@pmi/x/kmer_ranking.csv", 900.0),
             ("b", "genemask-position-v1", 100, "{}", "@pmi/x/kmer_ranking.csv", 950.0),
             ("c", "genemask", 100, "{}", data_a, 800.0),
             ("d", "genemask", 100, '{"centre_probability": 0.05}', "@pmi/x/kmer_ranking.csv", 700.0),
             ("e", "genemask", 50, "{}", "@pmi/x/kmer_ranking.csv", 1200.0),
             ("f", "global", 100, "{}", "@pmi/x/kmer_ranking.csv", None)]  # not finished: no metrics
    for key, _, steps, _, _, ppl in specs:
        if ppl is not None:
            write_metrics(tmp_path / key, steps, ppl)
    cells = pd.DataFrame([{"key": k, "strategy": s, "steps": n, "model": "logo", "masking_options": o, "rank_table": r,
                           "dir": tmp_path / k} for k, s, n, o, r, _ in specs])
    table = bugs.pretrain_comparison(cells)
    assert table["run"].tolist() == ["random@100:logo", "genemask-position-v1@100:logo", "genemask[Data-A]@100:logo"]
    assert (table["steps"] == 100).all()
    assert table.set_index("run").loc["genemask[Data-A]@100:logo", "final_val_perplexity"] == 800.0
    assert bugs.pretrain_comparison(cells[cells.key == "f"]) is None


def test_fewshot_method_picks_default_options_at_the_longest_budget():
    from genemask.identity import RunIdentity

    runs = [RunIdentity.from_config(c) for c in (
        {"strategy": "genemask", "steps": 1000, "model": "logo"},
        {"strategy": "genemask", "steps": 250, "model": "logo"},
        {"strategy": "genemask", "steps": 2000, "model": "logo", "masking_options": {"centre_probability": 0.05}},
        {"strategy": "genemask", "steps": 1000, "model": "logo", "rank_table": "x/Data-A_norm-pmi-score-ranking.csv"},
        {"strategy": "cmgems", "steps": 1000, "model": "logo", "switch_threshold": 20.0},
        {"strategy": "cmgems", "steps": 500, "model": "logo", "switch_threshold": 1.0})]
    results = pd.DataFrame([{**r.columns(), "method": r.label(), "metric": "mcc", "value": 0.1} for r in runs])
    assert bugs.fewshot_method(results, "genemask") == "genemask@1000:logo"
    assert bugs.fewshot_method(results, "genemask", "Data-A") == "genemask[Data-A]@1000:logo"
    assert bugs.fewshot_method(results, "cmgems") == "cmgems@500:logo"  # the released threshold only
    assert bugs.fewshot_method(results, "global") is None


def test_resolve_rank_table(monkeypatch, tmp_path):
    from genemask import paths

    monkeypatch.setenv("GENEMASK_DATA", str(tmp_path))
    assert bugs.resolve_rank_table("${GENEMASK_DATA}/genemask/x.csv", "cpu") == paths.data_dir() / "genemask" / "x.csv"
    key = "0123456789abcdef"
    assert bugs.resolve_rank_table(f"@pmi/{key}/kmer_ranking.csv", "cpu") == paths.results_dir("cpu") / "pmi" / key / "kmer_ranking.csv"
