"""Plateau curricula: CM-GEMS (GeneMask, then Global) and its reverse control (Global, then GeneMask).

The reverse curriculum (issue 24 part 3) was added to the collator after transition-16k's seeds were
committed, so the mask streams of the existing strategies are pinned here: their digests were
computed with the collator as it was before ``cmgems-reverse`` existed (main at 92081ff) and must
never change, or committed runs could no longer be extended with the same masks.
"""
from __future__ import annotations

import hashlib
import json
import math

import pandas as pd
import pytest
import torch

from genemask import masking, pretrain
from genemask.masking import MaskingCurriculumCallback, make_collator
from test_masking import mixed_batch, rank_table, tokenizer  # noqa: F401  (fixtures)
from test_pretrain import config, inputs  # noqa: F401  (fixture)

#: Validation perplexities fed after each batch: |change| falls below 2.0 at the 4th (60 -> 59).
PERPLEXITIES = (300.0, 120.0, 60.0, 59.0, 20.0, 19.5)


def mask_stream(strategy: str, tokenizer, rank_table, **options) -> tuple[str, list[str], int | None]:
    """(sha256 of six seeded batches' corrupted ids and labels, the phase of each batch, the switch
    step) with a validation perplexity observed after every batch at steps 0, 10, 20, ..."""
    if strategy == "cmstep":
        options.setdefault("total_steps", 60)
    if strategy.startswith("cmgems"):
        options.setdefault("switch_threshold", 2.0)
    collator = make_collator(strategy, tokenizer, rank_table=None if strategy == "random" else rank_table, seed=11, **options)
    digest, phases = hashlib.sha256(), []
    for i, perplexity in enumerate(PERPLEXITIES):
        collator.set_step(10 * i)
        ids, att = mixed_batch(100 + i)
        corrupted, labels, info = collator.mask_batch(ids, att)
        digest.update(corrupted.numpy().astype("<i8").tobytes())
        digest.update(labels.numpy().astype("<i8").tobytes())
        phases.append(info["phase"])
        collator.observe_validation_perplexity(perplexity)
    return digest.hexdigest(), phases, collator.switched_at_step


#: Computed on main at 92081ff, before cmgems-reverse: (digest, phases, switch step).
PINNED = {
    "random": ("0bf08a798b7e62721995bd72bda6b9f365b4dd5d87048836c6e20fc6eb4a4323", ["random"] * 6, None),
    "genemask": ("2349feacff4a12c273e349bf675b6463022d6f841183dceccd4a8d15f8b2abd3", ["genemask"] * 6, None),
    "global": ("d66f35c354ac5fe164370078cea96ef7168dc4eabc9560c4996a7ac38ce44ac1", ["global"] * 6, None),
    "cmgems": ("c77c9ee6779ad06186076526bfab9642f565fac7a43dddf3dd47613d489d29e6", ["genemask"] * 4 + ["global"] * 2, 30),
    "cmstep": ("984154b3b660aa7a38af393174cd2f9be6da0fb0968126640731c5a2a98c131a", ["random"] * 6, None),
    "genemask-position-v1": ("cff78ea3aef8c6a15c7238ed645a7c9b79088a5aee87c8a9b605d32d202b3da5", ["genemask"] * 6, None),
}


@pytest.mark.parametrize("strategy", sorted(PINNED))
def test_existing_mask_streams_are_unchanged(tokenizer, rank_table, strategy):
    options = masking.variant_options(strategy) if strategy.startswith("genemask-") else {"strategy": strategy}
    assert mask_stream(options.pop("strategy"), tokenizer, rank_table, **options) == PINNED[strategy]


#: Issue 22 renamed make_collator's centre-probability option from ``mlm_probability`` to
#: ``centre_probability`` (``mlm_probability`` now means Hugging Face's masked fraction). These digests
#: were computed on main at e62790c, before the rename, with ``mlm_probability=p``; the committed
#: doubled-rate runs are genemask at 0.05. The same centre probability must give the same masks.
PINNED_CENTRE = {
    ("genemask", 0.05): "8f33a677d271c2035e649be2c2ad07cce2b7e02a594b439439fb28c051265bca",
    ("random", 0.1): "a16547ac6ab909b8f34f8b4b916d5006776619c187f17499874ff02155eeffb7",
    ("global", 0.03): "904896f0c63a6a9abe87bafdc3012d0b6c12021a38e7b25fcd2924dafdbb051f",
}


@pytest.mark.parametrize("strategy, probability", sorted(PINNED_CENTRE))
def test_centre_probability_masks_as_the_old_spelling_did(tokenizer, rank_table, strategy, probability):
    digest, phases, _ = mask_stream(strategy, tokenizer, rank_table, centre_probability=probability)
    assert digest == PINNED_CENTRE[(strategy, probability)] and phases == [strategy] * 6


# ----------------------------------------------------------------------------------------------
# The reverse curriculum: Global first, GeneMask once the same plateau rule fires


def test_reverse_starts_with_global_and_switches_to_genemask_once(tokenizer, rank_table):
    digest, phases, switched = mask_stream("cmgems-reverse", tokenizer, rank_table)
    # The same perplexities switch both curricula at the same step (the 4th evaluation, step 30).
    assert switched == PINNED["cmgems"][2] == 30
    assert phases == ["global"] * 4 + ["genemask"] * 2  # 20 -> 19.5 after the switch: never back
    assert digest not in {pinned[0] for pinned in PINNED.values()}


def test_reverse_masks_as_global_then_as_genemask(tokenizer, rank_table):
    """Before its switch the reverse curriculum is Global masking, batch for batch, with the same
    seed; after it, GeneMask's rule at GeneMask's centre probability."""
    reverse = make_collator("cmgems-reverse", tokenizer, rank_table, seed=7, switch_threshold=2.0)
    plain = make_collator("global", tokenizer, rank_table, seed=7)
    assert reverse.phase == "global" and reverse.centre_probability == plain.centre_probability == 0.0136
    for i, perplexity in enumerate((100.0, 50.0, 49.0)):
        reverse.set_step(i)
        ids, att = mixed_batch(200 + i)
        ours, theirs = reverse.mask_batch(ids, att), plain.mask_batch(ids, att)
        assert ours[2]["phase"] == "global"
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
        reverse.observe_validation_perplexity(perplexity)
    assert reverse.switched_at_step == 2 and reverse.phase == "genemask" and reverse.centre_probability == 0.0176
    ids, att = mixed_batch(300)
    centres = torch.rand(ids.shape, generator=torch.Generator().manual_seed(1)) < 0.05
    after = reverse.mask_batch(ids, att, centres=centres)
    expected = make_collator("genemask", tokenizer, rank_table, seed=0).mask_batch(ids, att, centres=centres)
    assert after[2]["phase"] == "genemask" and torch.equal(after[2]["masked"], expected[2]["masked"])
    reverse.observe_validation_perplexity(10.0)  # a large change again: still GeneMask (one way)
    assert reverse.phase == "genemask"


def test_reverse_never_switches_at_threshold_zero(tokenizer, rank_table):
    never = make_collator("cmgems-reverse", tokenizer, rank_table, switch_threshold=0.0)
    for perplexity in (5.0, 5.0, 5.0):  # |change| = 0 is not below 0
        never.observe_validation_perplexity(perplexity)
    assert never.phase == "global" and never.switched_at_step is None


def test_reverse_needs_its_centre_probabilities_named(tokenizer, rank_table):
    with pytest.raises(ValueError, match="centre_probability is ambiguous for 'cmgems-reverse'"):
        make_collator("cmgems-reverse", tokenizer, rank_table, centre_probability=0.1)
    with pytest.raises(ValueError, match="rank_table is required for strategy 'cmgems-reverse'"):
        make_collator("cmgems-reverse", tokenizer)


def test_callback_drives_the_reverse_switch(tokenizer, rank_table):
    collator = make_collator("cmgems-reverse", tokenizer, rank_table, switch_threshold=1.0)
    callback = MaskingCurriculumCallback(collator)
    for step, loss in ((50, 5.0), (100, 4.0), (150, math.log(math.exp(4.0) + 0.5))):
        callback.on_step_begin(None, type("State", (), {"global_step": step})(), None)
        callback.on_evaluate(None, None, None, metrics={"eval_loss": loss})
    assert collator.switched_at_step == 150 and collator.phase == "genemask"


def test_reverse_is_named_wherever_strategies_are_listed():
    from genemask.identity import SWITCHING_STRATEGIES

    assert "cmgems-reverse" in masking.STRATEGIES and "cmgems-reverse" in masking.__doc__
    assert set(SWITCHING_STRATEGIES) == set(masking.PLATEAU_CURRICULA)
    help_text = pretrain.build_parser().format_help()
    assert "cmgems-reverse" in help_text and "switch from Global to GeneMask" in " ".join(help_text.split())


def test_reverse_pretraining_run_logs_its_phases_switch_and_resumes_exactly(inputs, tmp_path):
    from genemask.report.pretrain import summary, switch_step

    full = pretrain.run(config(inputs, tmp_path / "full", strategy="cmgems-reverse"))
    phases = full.metrics["phase"].tolist()
    assert phases == ["global"] * 6 + ["genemask"] * 6  # threshold 1e9: the first change (3 -> 6) switches
    assert full.switch_step == 6 == switch_step(full.metrics) == summary(full.metrics, "cmgems-reverse")["switch_step"]
    saved = json.loads((full.checkpoint / "pretrain.json").read_text())
    assert saved["switch_step"] == 6 and saved["masking_options"]["switch_threshold"] == 1e9
    part = pretrain.run(config(inputs, tmp_path / "part", strategy="cmgems-reverse"), stop_after=6)
    assert not part.finished
    resumed = pretrain.run(config(inputs, tmp_path / "part", strategy="cmgems-reverse"))
    assert resumed.resumed_from == 4 and resumed.switch_step == 6
    columns = ["step", "loss", "lr", "masked_fraction", "val_perplexity", "phase", "tokens"]
    pd.testing.assert_frame_equal(full.metrics[columns], resumed.metrics[columns], check_exact=True)
    with pytest.raises(ValueError, match="strategy 'cmgems-reverse' switches on validation perplexity"):
        config(inputs, tmp_path / "x", strategy="cmgems-reverse", eval_steps=0)


def test_the_frozen_plan_selects_reverse_runs_by_strategy_and_threshold():
    """The plan's curriculum-vs-reverse contrast names {strategy: cmgems-reverse, switch_threshold:
    20.0}; a reverse run's identity must carry its threshold, or the selector finds nothing."""
    from genemask.identity import RunIdentity
    from genemask.report.plan import load_plan
    from genemask.report.verdict import select

    contrast = next(c for f in load_plan().families.values() for c in f.contrasts if c.id == "curriculum-vs-reverse")
    base = dict(model="tiny", steps=16000, seed=0, batch_size=16, max_len=128, rank_table="@pmi/kmer_ranking.csv")
    runs = [RunIdentity.from_config({**base, "strategy": s, "switch_threshold": t})
            for s, t in (("cmgems-reverse", 20.0), ("cmgems-reverse", 1.0), ("cmgems", 20.0), ("global", 20.0))]
    frame = pd.DataFrame([{**r.columns(), "method": r.label()} for r in runs])
    assert runs[0].switch_threshold == 20.0 and runs[3].switch_threshold is None
    assert select(frame, contrast.b, 16000, "tiny") == [runs[0].label()]
    assert select(frame, contrast.a, 16000, "tiny") == [runs[2].label()]
