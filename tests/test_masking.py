"""The masking collator: equivalence with the released code, invariants, curricula, Trainer use."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import oracle_released as oracle
from genemask.masking import (
    DEFAULT_CENTRE_PROBABILITY,
    DataCollatorForSpanMasking,
    MaskingCurriculumCallback,
    centre_probability_for,
    make_collator,
    masked_fraction,
    python_set_iteration_rank,
)
from genemask.tokenizer import SPECIAL_TOKENS, build_tokenizer, encode_ids, vocab_kmers
from helpers import committed_ranking, real_data

K = 6
N_KMERS = 4**K
VOCAB = list(SPECIAL_TOKENS) + vocab_kmers(K)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(K)


@pytest.fixture(scope="module")
def rank_table():
    """A deterministic stand-in for an NPMI ranking: a seeded permutation of 1..4096 by token id."""
    table = torch.zeros(len(VOCAB), dtype=torch.long)
    table[5:] = torch.randperm(N_KMERS, generator=torch.Generator().manual_seed(0)) + 1
    return table


def random_dna(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ACGT") for _ in range(n))


def batch_from(seqs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [encode_ids(s, K) for s in seqs]
    width = max(len(e) for e in encoded)
    ids = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, : len(e)] = torch.from_numpy(e)
    return ids, ids.ne(0).long()


def mixed_batch(seed: int, rows: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Varied lengths (down to one k-mer) and repetitive content, so that anchor ranks tie."""
    rng = random.Random(seed)
    seqs = []
    for _ in range(rows):
        n = rng.choice([6, 8, 12, 40, 200, 511, 511])
        kind = rng.choice(["random", "repeat", "dinucleotide", "polyA"])
        if kind == "random":
            seqs.append(random_dna(rng, n))
        elif kind == "repeat":
            seqs.append((random_dna(rng, rng.randint(1, 8)) * 600)[:n])
        elif kind == "dinucleotide":
            seqs.append(("CA" * 400)[:n])
        else:
            seqs.append("A" * n)
    return batch_from(seqs)


def released_ranks(rank_table, special_rank_zero: bool, lookup: str) -> oracle.ReleasedRanks:
    rank_of = {kmer: int(rank_table[i + 5]) for i, kmer in enumerate(vocab_kmers(K))}
    return oracle.ReleasedRanks(VOCAB, rank_of, "code-b" if special_rank_zero else "cm", lookup)


# ----------------------------------------------------------------------------------------------
# Equivalence with the released code


GENEMASK_MODES = [(v, lookup, zero) for v in ("v1", "v2", "v3") for lookup in ("position", "token") for zero in (True, False)]
GLOBAL_MODES = [(lookup, zero) for lookup in ("position", "token") for zero in (True, False)]


def bernoulli_centres(ids: torch.Tensor, probability: float, seed: int) -> torch.Tensor:
    """Centre draws to inject into both implementations (k-mer positions only)."""
    return (torch.rand(ids.shape, generator=torch.Generator().manual_seed(seed)) < probability) & ids.ge(5)


def run_both(tokenizer, rank_table, ids, att, strategy, *, seed, centres=None, selection="v3", lookup="position",
             zero=True, replacement="vocab", probability=None):
    """The collator and the released code on the same centres (drawn here unless given)."""
    default = {"random": 0.025, "genemask": 0.0176, "global": 0.0136}[strategy]
    if centres is None:
        centres = bernoulli_centres(ids, probability or default, seed)
    options = dict(rank_lookup=lookup, selection=selection, special_rank_zero=zero, random_replacement=replacement)
    collator = make_collator(strategy, tokenizer, rank_table=None if strategy == "random" else rank_table, seed=seed, **options)
    ours = collator.mask_batch(ids, att, centres=centres)
    theirs = oracle.mask_tokens(
        ids, strategy, released_ranks(rank_table, zero, lookup), torch.Generator().manual_seed(seed),
        mlm_probability=0.5, version=selection, centres=centres, low=0 if replacement == "vocab" else 5,
        mask_list_11=oracle.MASK_LIST_11_CODE_B if strategy == "genemask" else oracle.MASK_LIST_11_CM,
    )
    return ours, theirs


def assert_same(ours, theirs):
    """Same masked positions (labels carry both the positions and the original ids)."""
    labels = ours[1]
    assert torch.equal(labels, theirs[1]), f"masks differ at {(labels != theirs[1]).nonzero()[:5].tolist()}"


@pytest.mark.parametrize("selection,lookup,zero", GENEMASK_MODES)
def test_genemask_matches_released_code(tokenizer, rank_table, selection, lookup, zero):
    """Same centres, same masks as Code-B vX, at the paper's and a higher centre rate."""
    ids, att = mixed_batch(1, rows=16)
    for probability in (None, 0.05):
        ours, theirs = run_both(tokenizer, rank_table, ids, att, "genemask", seed=3, selection=selection,
                                lookup=lookup, zero=zero, probability=probability)
        assert_same(ours, theirs)


@pytest.mark.parametrize("selection,lookup,zero", GENEMASK_MODES)
def test_genemask_matches_released_code_on_injected_centres(tokenizer, rank_table, selection, lookup, zero):
    """Edge cases by construction: dense centres (sets of 19..250 elements, so CPython tables of
    128 and 512 slots), centres next to [CLS]/[SEP], one-k-mer sequences, ties in anchor rank."""
    gen = torch.Generator().manual_seed(11)
    for seed, density in ((2, 0.02), (3, 0.06), (4, 0.2), (5, 0.5)):
        ids, att = mixed_batch(seed)
        centres = (torch.rand(ids.shape, generator=gen) < density) & ids.ge(5)
        centres[:3, 1:4] = ids[:3, 1:4].ge(5)  # near the start: positions 1-4 rank 0 under Bug 1b
        ours, theirs = run_both(tokenizer, rank_table, ids, att, "genemask", seed=seed, centres=centres,
                                selection=selection, lookup=lookup, zero=zero, replacement="kmers")
        assert_same(ours, theirs)


@pytest.mark.parametrize("lookup,zero", GLOBAL_MODES)
def test_global_matches_released_code(tokenizer, rank_table, lookup, zero):
    ids, att = mixed_batch(6, rows=16)
    assert_same(*run_both(tokenizer, rank_table, ids, att, "global", seed=5, lookup=lookup, zero=zero))
    centres = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.1) & ids.ge(5)
    assert_same(*run_both(tokenizer, rank_table, ids, att, "global", seed=5, lookup=lookup, zero=zero, centres=centres))


def test_random_matches_dnabert_code(tokenizer, rank_table):
    ids, att = mixed_batch(7, rows=16)
    assert_same(*run_both(tokenizer, rank_table, ids, att, "random", seed=9))


def test_cmstep_and_cmgems_branches_match_released_code(tokenizer, rank_table):
    ids, att = mixed_batch(8, rows=12)
    ranks = released_ranks(rank_table, False, "position")
    compat = dict(rank_lookup="position", random_replacement="vocab")
    cmstep = make_collator("cmstep", tokenizer, rank_table, seed=4, total_steps=1000, **compat)
    for use_global in (False, True):
        centres = bernoulli_centres(ids, 0.0136 if use_global else 0.025, 4)
        ours = cmstep.mask_batch(ids, att, use_global=use_global, centres=centres)
        assert ours[2]["phase"] == ("global" if use_global else "random")
        assert_same(ours, oracle.cmstep_mask_tokens(ids, ranks, None, use_global, centres=centres))

    cmgems = make_collator("cmgems", tokenizer, rank_table, seed=4, selection="v2", **compat)
    history = []
    for perplexity in (80.0, 60.0, 59.5, None):
        centres = bernoulli_centres(ids, 0.0136 if cmgems.phase == "global" else 0.0176, len(history))
        ours = cmgems.mask_batch(ids, att, centres=centres)
        assert_same(ours, oracle.cmgems_mask_tokens(ids, ranks, None, history, centres=centres))
        if perplexity is not None:
            cmgems.observe_validation_perplexity(perplexity)
            history.append(perplexity)
    assert cmgems.phase == "global"


def test_set_order_emulation_matches_cpython():
    """The vectorised emulation of ``list(set(sorted ints))`` against the interpreter itself."""
    rng = random.Random(0)
    rows = []
    for _ in range(600):
        n = rng.choice([0, 1, 3, 4, 5, 6, 8, 9, 12, 17, 18, 19, 20, 33, 76, 77, 80])
        length = rng.choice([40, 300, 512, 1000])
        rows.append(sorted(rng.sample(range(1, length - 1), min(n, length - 2))))
    width = max(len(r) for r in rows)
    values = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        values[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    ranks = python_set_iteration_rank(values, torch.tensor([len(r) for r in rows]))
    for i, r in enumerate(rows):
        emulated = [None] * len(r)
        for j, v in enumerate(r):
            emulated[int(ranks[i, j])] = v
        assert emulated == list(set(r)), r


# ----------------------------------------------------------------------------------------------
# Invariants


@pytest.fixture(scope="module")
def long_batch():
    """256 random 511-nt sequences: 506 k-mers each, 508 tokens with [CLS]/[SEP]."""
    rng = random.Random(42)
    return batch_from([random_dna(rng, 511) for _ in range(256)])


@pytest.mark.parametrize("strategy,low,high", [("random", 0.13, 0.155), ("genemask", 0.14, 0.165), ("global", 0.12, 0.16)])
def test_masked_fraction_near_15_percent(tokenizer, rank_table, long_batch, strategy, low, high):
    ids, att = long_batch
    collator = make_collator(strategy, tokenizer, rank_table=rank_table, seed=0)
    fractions = []
    for _ in range(4):
        _, labels, info = collator.mask_batch(ids, att)
        fractions.append((labels.ne(-100).sum(1).float() / att.sum(1).sub(2)).numpy())
        assert info["masked_fraction"] == collator.last_stats["masked_fraction"]
    fractions = np.concatenate(fractions)
    print(f"{strategy}: masked fraction {fractions.mean():.4f} ± {fractions.std():.4f} per 506-k-mer sequence")
    assert low < fractions.mean() < high


@pytest.mark.parametrize("strategy", ["random", "genemask", "global", "cmgems", "cmstep"])
def test_labels_specials_and_padding(tokenizer, rank_table, strategy):
    ids, att = mixed_batch(12, rows=32)
    collator = make_collator(strategy, tokenizer, rank_table=rank_table, seed=1,
                             **({"total_steps": 100} if strategy == "cmstep" else {}), **({"genemask_probability": 0.2} if strategy == "cmgems" else {}))
    if strategy == "cmstep":
        collator.set_step(50)
    out = collator({"input_ids": ids, "attention_mask": att})
    special = ids.lt(5)
    masked = out["labels"].ne(-100)
    assert not (masked & special).any()
    assert torch.equal(out["input_ids"][special], ids[special])
    assert torch.equal(out["labels"][masked], ids[masked])
    assert torch.equal(out["input_ids"][~masked], ids[~masked])
    assert torch.equal(out["attention_mask"], att)
    assert masked.any()


def test_span_near_sequence_end_is_clipped(tokenizer, rank_table):
    ids, att = batch_from(["ACGTACGTAC", "A" * 30])
    centres = torch.zeros_like(ids, dtype=torch.bool)
    centres[0, 5] = centres[1, 25] = True  # last k-mers: spans reach into [SEP] and padding
    for strategy in ("random", "genemask", "global"):
        _, labels, _ = make_collator(strategy, tokenizer, rank_table, seed=0).mask_batch(ids, att, centres=centres)
        assert not (labels.ne(-100) & ids.lt(5)).any()


def test_same_seed_same_masks(tokenizer, rank_table):
    ids, att = mixed_batch(13)
    for strategy in ("random", "genemask", "global"):
        a = make_collator(strategy, tokenizer, rank_table, seed=7).mask_batch(ids, att)
        b = make_collator(strategy, tokenizer, rank_table, seed=7).mask_batch(ids, att)
        c = make_collator(strategy, tokenizer, rank_table, seed=8).mask_batch(ids, att)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[1], c[1])


def test_unseeded_collator_follows_torch_manual_seed(tokenizer, rank_table):
    """Without ``seed`` it draws from torch's global RNG, so ``Trainer``'s set_seed governs it."""
    ids, att = mixed_batch(14)
    collator = make_collator("genemask", tokenizer, rank_table)
    torch.manual_seed(3)
    a = collator.mask_batch(ids, att)
    torch.manual_seed(3)
    b = collator.mask_batch(ids, att)
    assert torch.equal(a[1], b[1])


def test_80_10_10_per_masked_position(tokenizer, rank_table, long_batch):
    ids, att = long_batch
    collator = make_collator("random", tokenizer, seed=2, centre_probability=0.1)
    out_ids, labels, _ = collator.mask_batch(ids, att)
    masked = labels.ne(-100)
    n = int(masked.sum())
    to_mask = (out_ids[masked] == tokenizer.mask_token_id).sum().item() / n
    changed = ((out_ids[masked] != ids[masked]) & (out_ids[masked] != tokenizer.mask_token_id)).sum().item() / n
    kept = (out_ids[masked] == ids[masked]).sum().item() / n
    assert abs(to_mask - 0.8) < 0.01 and abs(changed - 0.1) < 0.01 and abs(kept - 0.1) < 0.01
    assert out_ids[masked & out_ids.ne(ids) & out_ids.ne(4)].ge(5).all()  # "kmers": never a special
    released = make_collator("random", tokenizer, seed=2, centre_probability=0.5, random_replacement="vocab")
    vocab_ids, vocab_labels, _ = released.mask_batch(ids, att)
    replaced = vocab_labels.ne(-100) & vocab_ids.ne(ids) & vocab_ids.ne(4)
    assert vocab_ids[replaced].lt(5).any()  # the released code draws specials too


def test_position_lookup_ignores_sequence_content(tokenizer, rank_table):
    """Bug 1: with rank_lookup="position", two different sequences with the same centres get the
    same anchors and masks; with token lookup they do not."""
    rng = random.Random(5)
    ids, att = batch_from([random_dna(rng, 511), random_dna(rng, 511)])
    centres = torch.zeros_like(ids, dtype=torch.bool)
    centres[:, [3, 40, 77, 120, 160, 201, 260, 300, 333, 370, 402, 450, 480]] = True
    for strategy in ("genemask", "global"):
        for selection in ("v2", "v3"):
            _, labels, info = make_collator(strategy, tokenizer, rank_table, seed=0, rank_lookup="position",
                                            selection=selection).mask_batch(ids, att, centres=centres)
            assert torch.equal(info["anchors"][0], info["anchors"][1])
            assert torch.equal(labels[0].ne(-100), labels[1].ne(-100))
        _, labels, info = make_collator(strategy, tokenizer, rank_table, seed=0).mask_batch(ids, att, centres=centres)
        assert not torch.equal(info["anchors"][0], info["anchors"][1])


def test_genemask_info_describes_the_selection(tokenizer, rank_table, long_batch):
    ids, att = long_batch
    _, _, info = make_collator("genemask", tokenizer, rank_table, seed=0).mask_batch(ids, att)
    rows, cols, high, rank = info["centre_rows"], info["centre_cols"], info["high"], info["anchor_rank"]
    assert torch.equal(info["centres"].nonzero(as_tuple=True)[0], rows)
    n = torch.bincount(rows, minlength=len(ids))
    expected_high = torch.where((n + 1) // 2 < 5, n, (n + 1) // 2)
    assert torch.equal(torch.bincount(rows[high], minlength=len(ids)), expected_high)
    assert ((info["anchor_position"] - cols).abs() <= 3).all()
    assert torch.equal(rank, rank_table[ids[rows, info["anchor_position"]]])
    for row in range(16):  # v3: the high anchors have the best ranks of their row
        here = rows == row
        if n[row] >= 9:
            assert rank[here & high].max() <= rank[here & ~high].min()


def test_v1_masks_one_whole_kmer_span_per_sequence(tokenizer, rank_table, long_batch):
    ids, att = long_batch
    _, _, info = make_collator("genemask", tokenizer, rank_table, seed=0, selection="v1",
                               rank_lookup="position").mask_batch(ids, att)
    assert torch.equal(info["anchors"].sum(1), info["centres"].any(1).long())
    assert (info["anchors"] <= info["centres"]).all()  # the stale centre, not an anchor


# ----------------------------------------------------------------------------------------------
# Curricula


def test_cmgems_switches_once_when_perplexity_plateaus(tokenizer, rank_table, long_batch):
    ids, att = long_batch
    collator = make_collator("cmgems", tokenizer, rank_table, seed=0)
    assert collator.phase == "genemask"
    for step, perplexity in ((500, 300.0), (1000, 120.0), (1500, 60.0), (2000, 58.0)):
        collator.set_step(step)
        collator.observe_validation_perplexity(perplexity)
        assert collator.phase == "genemask"
        assert collator.mask_batch(ids[:4], att[:4])[2]["phase"] == "genemask"
    collator.set_step(2500)
    collator.observe_validation_perplexity(57.5)  # |Δ| = 0.5 < 1.0
    assert collator.phase == "global" and collator.switched_at_step == 2500
    collator.observe_validation_perplexity(20.0)  # big change again: still Global (one way)
    assert collator.phase == "global"
    assert collator.mask_batch(ids[:4], att[:4])[2]["phase"] == "global"
    assert collator.centre_probability == 0.0136


@pytest.mark.parametrize("strategy, first, then", [("cmgems", "genemask", "global"), ("cmgems-reverse", "global", "genemask")])
def test_cmgems_fixed_switch_step(tokenizer, rank_table, strategy, first, then):
    collator = make_collator(strategy, tokenizer, rank_table, switch_step=1000)
    collator.observe_validation_perplexity(10.0)
    collator.observe_validation_perplexity(10.0)  # a plateau, but the switch is fixed
    collator.set_step(999)
    assert collator.phase == first
    collator.set_step(1000)
    assert collator.phase == then and collator.switched_at_step == 1000


@pytest.mark.parametrize("strategy, after", [("cmgems", "global"), ("cmgems-reverse", "genemask")])
def test_state_dict_round_trip_resumes_the_same_stream(tokenizer, rank_table, strategy, after):
    ids, att = mixed_batch(15)
    collator = make_collator(strategy, tokenizer, rank_table, seed=5, switch_threshold=2.0)
    collator.mask_batch(ids, att)
    collator.set_step(10)
    for perplexity in (50.0, 40.0, 39.0):
        collator.observe_validation_perplexity(perplexity)
    state = json.loads(json.dumps(collator.state_dict()))
    expected = collator.mask_batch(ids, att)

    resumed = make_collator(strategy, tokenizer, rank_table, seed=999, switch_threshold=2.0)
    resumed.load_state_dict(state)
    assert resumed.phase == after and resumed.switched_at_step == 10 and resumed.step == 10
    got = resumed.mask_batch(ids, att)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    with pytest.raises(ValueError, match=f"state_dict is for strategy {strategy!r}"):
        make_collator("random", tokenizer).load_state_dict(state)


def test_cmstep_schedule(tokenizer, rank_table):
    collator = make_collator("cmstep", tokenizer, rank_table, seed=0, total_steps=1000)
    assert [collator.global_fraction(t) for t in (0, 9, 10, 505, 999, 1000, 5000)] == [0, 0, 0.01, 0.5, 0.99, 1.0, 1.0]
    ids, att = mixed_batch(16, rows=2)
    for step, expected in ((0, 0.0), (500, 0.5), (1000, 1.0)):
        collator.set_step(step)
        phases = [collator.mask_batch(ids, att)[2]["phase"] for _ in range(200)]
        share = phases.count("global") / len(phases)
        assert abs(share - expected) < 0.1
        assert collator.phase == phases[-1]
    short = make_collator("cmstep", tokenizer, rank_table, total_steps=50)  # released: division by zero
    assert short.global_fraction(30) == 0.3


# ----------------------------------------------------------------------------------------------
# Inputs, Trainer, errors


def test_collator_accepts_lists_tensors_and_batches(tokenizer, rank_table):
    rng = random.Random(3)
    seqs = [encode_ids(random_dna(rng, n), K) for n in (30, 511, 100)]
    collator = make_collator("genemask", tokenizer, rank_table, seed=0, pad_to_multiple_of=8)
    from_lists = collator([{"input_ids": s.tolist()} for s in seqs])
    assert from_lists["input_ids"].shape == (3, 512)
    assert from_lists["attention_mask"].sum(1).tolist() == [len(s) for s in seqs]
    collator.generator.manual_seed(0)
    from_tensors = collator([torch.from_numpy(s) for s in seqs])
    collator.generator.manual_seed(0)
    from_dicts_with_masks = collator([{"input_ids": s, "attention_mask": np.ones_like(s)} for s in seqs])
    collator.generator.manual_seed(0)
    from_batch = collator({"input_ids": batch_pad(seqs, 512)})
    collator.generator.manual_seed(0)
    again = collator([{"input_ids": s.tolist()} for s in seqs])
    for other in (from_tensors, from_dicts_with_masks, from_batch):
        for key in ("input_ids", "attention_mask", "labels"):
            assert torch.equal(other[key], again[key]), key
    prepadded = collator([{"input_ids": row.tolist()} for row in batch_pad(seqs, 512)])
    assert prepadded["attention_mask"].sum(1).tolist() == [len(s) for s in seqs]


def batch_pad(seqs, width):
    out = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.from_numpy(s)
    return out


def test_mask_batch_leaves_its_input_alone(tokenizer, rank_table):
    ids, att = mixed_batch(17)
    before = ids.clone()
    make_collator("genemask", tokenizer, rank_table, seed=0).mask_batch(ids, att)
    assert torch.equal(ids, before)


def test_trainer_runs_two_steps_with_the_collator(tokenizer, rank_table, tmp_path, one_torch_thread):
    from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

    rng = random.Random(0)
    train = [{"input_ids": encode_ids(random_dna(rng, rng.randint(60, 120)), K).tolist()} for _ in range(16)]
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    collator = make_collator("cmgems", tokenizer, rank_table, seed=0, genemask_probability=0.1)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, report_to=[],
                             use_cpu=True, logging_steps=1, save_strategy="no", eval_strategy="steps", eval_steps=1,
                             per_device_eval_batch_size=8, disable_tqdm=True, seed=0)
    trainer = Trainer(model=BertForMaskedLM(config), args=args, train_dataset=train, eval_dataset=train[:8],
                      data_collator=collator, callbacks=[MaskingCurriculumCallback(collator)])
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert collator.step == 2 and len(collator.perplexities) == 2  # steps finished, as in the package loop


def test_authors_ranking_file_loads(tokenizer):
    path = real_data("genemask/Data-A_norm-pmi-score-ranking.csv")
    collator = make_collator("global", tokenizer, rank_table=path)
    assert collator.rank_table[VOCAB.index("CCTCCC")] == 1
    assert collator.rank_table[5] == 7  # AAAAAA; position 5's rank under Bug 1 (papers.md §1.4)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda tok, table: make_collator("pmi", tok, table), "strategy='pmi'"),
        (lambda tok, table: make_collator("genemask", tok), "rank_table is required"),
        (lambda tok, table: make_collator("global", tok), "rank_table is required"),
        (lambda tok, table: make_collator("random", tok, centre_probability=1.5), "centre_probability=1.5"),
        (lambda tok, table: make_collator("genemask", tok, table, global_probability=-0.1), "global_probability"),
        (lambda tok, table: make_collator("genemask", tok, table, selection="v4"), "selection='v4'"),
        (lambda tok, table: make_collator("genemask", tok, table, rank_lookup="id"), "rank_lookup='id'"),
        (lambda tok, table: make_collator("cmstep", tok, table), "total_steps is required"),
        (lambda tok, table: make_collator("cmgems", tok, table, centre_probability=0.1), "ambiguous"),
        (lambda tok, table: make_collator("random", tok, mask_replace_prob=0.95, random_replace_prob=0.1), "> 1"),
        (lambda tok, table: make_collator("genemask", tok, table[:69]), "69 entries.*k=3"),
        (lambda tok, table: make_collator("genemask", tok, torch.zeros(4101, dtype=torch.long)), "no rank"),
        (lambda tok, table: make_collator("genemask", tok, missing_kmer_frame(table)), "lacks 1"),
        (lambda tok, table: make_collator("genemask", tok, short_kmer_frame()), "length"),
        (lambda tok, table: make_collator("genemask", build_tokenizer(3), table), "4101 entries.*k=3"),
        (lambda tok, table: make_collator("random", tok).mask_batch(torch.tensor([[2, 9000, 3]])), "input_ids"),
    ],
)
def test_bad_input_gets_a_clear_error(tokenizer, rank_table, call, message):
    with pytest.raises(ValueError, match=message):
        call(tokenizer, rank_table)


def test_unknown_option_is_named(tokenizer):
    with pytest.raises(TypeError, match="'swich_step'"):
        make_collator("cmgems", tokenizer, torch.ones(4101, dtype=torch.long), swich_step=5)


def missing_kmer_frame(table):
    import pandas as pd

    frame = pd.DataFrame({"kmer": vocab_kmers(K), "rank": table[5:].numpy()})
    return frame.iloc[1:]


def short_kmer_frame():
    import pandas as pd

    return pd.DataFrame({"kmer": vocab_kmers(3), "rank": np.arange(1, 65)})


def test_dataclass_is_the_public_type(tokenizer):
    assert isinstance(make_collator("random", tokenizer), DataCollatorForSpanMasking)


def test_non_contiguous_and_int32_inputs(tokenizer, rank_table):
    ids, att = mixed_batch(18)
    wide = torch.cat([ids, ids], 1)[:, : ids.shape[1]]  # a non-contiguous view
    collator = make_collator("genemask", tokenizer, rank_table, seed=0)
    a = collator.mask_batch(wide.int(), att.bool())
    collator.generator.manual_seed(0)
    b = collator.mask_batch(ids, att)
    assert torch.equal(a[1], b[1])


@pytest.mark.parametrize("probability", [0.0176, 0.3])
def test_centres_are_bernoulli_on_maskable_positions(tokenizer, probability):
    """The geometric-gap sampler gives i.i.d. Bernoulli(p) centres, only on k-mer tokens."""
    ids, att = batch_from(["ACGT" * 30] * 8 + ["ACGTTGCA" * 10] * 8)  # two lengths, padding
    collator = make_collator("random", tokenizer, seed=0, centre_probability=probability)
    hits = torch.zeros(ids.shape)
    draws = 400
    for _ in range(draws):
        hits += collator.mask_batch(ids, att)[2]["centres"]
    maskable = ids.ge(5)
    assert hits[~maskable].sum() == 0
    rate = hits[maskable] / draws
    assert abs(rate.mean().item() - probability) < 0.1 * probability
    first, last = hits[:, 1][maskable[:, 1]] / draws, hits[:, 110][maskable[:, 110]] / draws
    assert abs(first.mean() - last.mean()) < 0.35 * probability + 0.01  # no drift along the row


# ----------------------------------------------------------------------------------------------
# Calibration: centre probability <-> masked fraction


def uniform_windows(n: int, length: int = 515, seed: int = 0) -> list[np.ndarray]:
    rng = random.Random(seed)
    return [encode_ids(random_dna(rng, length), K) for _ in range(n)]


def test_random_calibration_matches_the_closed_form(tokenizer, one_torch_thread):
    """Without end effects DNABERT's masking of 6-token spans masks 1 - (1 - p)**6; ends mask a
    little less, so the calibrated p sits just above the closed form (+1 % on 510-token windows;
    the bounds allow for sampling noise)."""
    windows = uniform_windows(256)
    closed_form = 1 - (1 - 0.15) ** (1 / K)
    p = centre_probability_for(0.15, "random", tokenizer, windows)
    assert closed_form * 0.99 < p < closed_form * 1.05
    assert abs(masked_fraction("random", tokenizer, windows) - (1 - (1 - 0.025) ** K)) < 0.005


@pytest.mark.parametrize("strategy", ["genemask", "global"])
def test_calibrated_probability_masks_the_target_on_fresh_draws(tokenizer, rank_table, strategy, one_torch_thread):
    windows = uniform_windows(64)
    p = centre_probability_for(0.2, strategy, tokenizer, windows, rank_table)
    assert abs(masked_fraction(strategy, tokenizer, windows, rank_table, centre_probability=p, seed=5) - 0.2) < 0.01
    # The trap this guards against: 0.15 as a centre probability masks most of the sequence.
    assert masked_fraction(strategy, tokenizer, windows, rank_table, centre_probability=0.15) > 0.6


def test_calibration_on_real_windows_with_the_committed_ranking(tokenizer, one_torch_thread):
    import itertools

    from genemask import genome, tokenizer as tk

    ranking = committed_ranking()
    fasta = real_data("genome/hg38_chr21_22000000_23000000.fasta")
    windows = tk.encode_batch([c.decode() for c in itertools.islice(genome.iter_corpus_chunks(fasta), 128)], K)
    assert 0.14 < masked_fraction("genemask", tokenizer, windows, ranking) < 0.17  # 0.157 on 2,048 windows
    p = centre_probability_for(0.15, "global", tokenizer, windows, ranking)
    assert p > DEFAULT_CENTRE_PROBABILITY["global"]  # Global's top-ranked spans overlap: 0.0136 masks ~11 %
    assert abs(masked_fraction("global", tokenizer, windows, ranking, centre_probability=p, seed=3) - 0.15) < 0.015


@pytest.mark.parametrize("call,message", [
    (lambda tok, table: centre_probability_for(0.15, "cmgems", tok, uniform_windows(2), table), "one masking at a time"),
    (lambda tok, table: centre_probability_for(15, "random", tok, uniform_windows(2)), "strictly between 0 and 1"),
    (lambda tok, table: masked_fraction("random", tok, uniform_windows(2), centre_probability=2.0), "centre_probability=2.0"),
])
def test_calibration_errors(tokenizer, rank_table, call, message):
    with pytest.raises(ValueError, match=message):
        call(tokenizer, rank_table)


def test_mlm_probability_is_the_masked_fraction_calibrated_on_the_examples(tokenizer, rank_table, one_torch_thread):
    """Hugging Face's meaning: ``mlm_probability=f`` with calibration examples gives the centre
    probability that masks ``f`` of them, found with a generator of its own (the collator's
    stream starts where ``seed`` puts it, as without calibration)."""
    windows = uniform_windows(64)
    collator = make_collator("genemask", tokenizer, rank_table, seed=3, mlm_probability=0.2, calibration_examples=windows)
    expected = centre_probability_for(0.2, "genemask", tokenizer, windows, rank_table)
    assert collator.centre_probability == collator.genemask_probability == expected
    assert DEFAULT_CENTRE_PROBABILITY["genemask"] < expected < 0.15  # a centre probability, far below 0.2
    assert abs(masked_fraction("genemask", tokenizer, windows, rank_table, centre_probability=expected) - 0.2) <= 5e-4
    fresh = make_collator("genemask", tokenizer, rank_table, seed=3, centre_probability=expected)
    assert torch.equal(collator.generator.get_state(), fresh.generator.get_state())
    ids, att = mixed_batch(40)
    assert torch.equal(collator.mask_batch(ids, att)[1], fresh.mask_batch(ids, att)[1])
    again = make_collator("genemask", tokenizer, rank_table, seed=9, mlm_probability=0.2, calibration_examples=windows)
    assert again.centre_probability == expected  # deterministic, whatever the collator's seed


def test_mlm_probability_of_a_curriculum_calibrates_each_phase(tokenizer, rank_table, one_torch_thread):
    windows = uniform_windows(256)
    collator = make_collator("cmgems", tokenizer, rank_table, mlm_probability=0.15, calibration_examples=windows,
                             selection="v2")
    for phase in ("genemask", "global"):
        assert getattr(collator, f"{phase}_probability") == centre_probability_for(
            0.15, phase, tokenizer, windows, rank_table, selection="v2"), phase
    assert collator.random_probability == DEFAULT_CENTRE_PROBABILITY["random"]  # a phase cmgems never uses


@pytest.mark.parametrize("options, message", [
    ({"mlm_probability": 0}, r"^mlm_probability=0 must lie strictly between 0 and 1"),
    ({"mlm_probability": 1.0}, r"^mlm_probability=1.0 must lie strictly between 0 and 1"),
    ({"mlm_probability": "0.15"}, r"^mlm_probability='0.15' must lie"),
    ({"mlm_probability": 0.15, "centre_probability": 0.02}, r"^mlm_probability and centre_probability both set"),
    ({"mlm_probability": 0.15, "genemask_probability": 0.02}, r"^mlm_probability and genemask_probability both set"),
    ({"mlm_probability": 0.15, "calibration_examples": None}, r"^mlm_probability=0.15 is a masked fraction: pass calibration_examples"),
    ({"centre_probability": 0.02, "calibration_examples": [[2, 9, 3]]}, r"^calibration_examples: only used to convert mlm_probability"),
])
def test_mlm_probability_bad_inputs_get_one_line_naming_the_parameter(tokenizer, rank_table, options, message):
    with pytest.raises(ValueError, match=message) as err:
        make_collator("genemask", tokenizer, rank_table, **options)
    assert "\n" not in str(err.value)


def test_the_readme_masked_fraction_table_is_what_the_collators_mask(tokenizer, one_torch_thread):
    """README.md's table of masked fractions (each named variant at its default centre probability
    and at 0.15), recomputed on the windows and ranking it names, to the printed 0.1 %."""
    import itertools
    import re

    from genemask import genome, tokenizer as tk
    from genemask.masking import MASKING_VARIANTS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    rows = re.findall(r"^\| `([\w-]+)` \| ([\d.]+) \| ([\d.]+) % \| ([\d.]+) % \|$", readme, re.M)
    assert {name for name, *_ in rows} == {n for n, o in MASKING_VARIANTS.items() if o["strategy"] != "cmstep"}
    ranking = committed_ranking()
    fasta = real_data("genome/hg38_chr21_22000000_23000000.fasta")
    windows = tk.encode_batch([c.decode() for c in itertools.islice(genome.iter_corpus_chunks(fasta), 2048)], K)
    assert len(windows) == 2048 and max(map(len, windows)) == 511 + 2 - K + 1  # "2,048 windows of 511 bp"
    for name, default, at_default, at_015 in rows:
        options = dict(MASKING_VARIANTS[name])
        strategy = options.pop("strategy")
        assert float(default) == DEFAULT_CENTRE_PROBABILITY[strategy], name
        table = None if strategy == "random" else ranking
        for probability, printed in ((None, at_default), (0.15, at_015)):
            measured = masked_fraction(strategy, tokenizer, windows, table, centre_probability=probability, **options)
            assert f"{100 * measured:.1f}" == printed, (name, probability, measured)
