"""The masking collator under the plain Hugging Face Trainer: resume, workers, switch step, bad input."""
from __future__ import annotations

import math
import random

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

from genemask.masking import MaskingCurriculumCallback, make_collator
from genemask.tokenizer import build_tokenizer, encode_ids, kmerize

K = 6


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(K)


@pytest.fixture(scope="module")
def rank_table():
    table = torch.zeros(4**K + 5, dtype=torch.long)
    table[5:] = torch.randperm(4**K, generator=torch.Generator().manual_seed(0)) + 1
    return table


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_examples(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"input_ids": encode_ids("".join(rng.choice("ACGT") for _ in range(rng.randint(50, 90))), K).tolist()}
            for _ in range(n)]


class RecordingTrainer(Trainer):
    """Keeps every training micro-batch (the masks the model saw), keyed by the step it trained."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen.append((self.state.global_step, inputs["input_ids"].clone(), inputs["labels"].clone()))
        return super().training_step(model, inputs, num_items_in_batch)


def cmgems_trainer(tokenizer, rank_table, out_dir, *, steps=12, grad_accum=1, threshold=1e9, workers=0,
                   restore_flag=False, n_examples=26, **collator_options):
    collator = make_collator("cmgems", tokenizer, rank_table, seed=7, genemask_probability=0.1, global_probability=0.08,
                             switch_threshold=threshold, **collator_options)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    args = TrainingArguments(output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=4,
                             gradient_accumulation_steps=grad_accum, learning_rate=1e-3, report_to=[], use_cpu=True,
                             eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=3,
                             per_device_eval_batch_size=8, disable_tqdm=True, seed=0, logging_steps=100,
                             dataloader_num_workers=workers, restore_callback_states_from_checkpoint=restore_flag)
    trainer = RecordingTrainer(model=BertForMaskedLM(config), args=args, train_dataset=toy_examples(n_examples, 0),
                               eval_dataset=toy_examples(8, 1), data_collator=collator,
                               callbacks=[MaskingCurriculumCallback(collator)])
    return trainer, collator


@pytest.mark.parametrize("grad_accum,resume_at,n_examples", [(1, 6, 26), (2, 6, 26), (1, 9, 26), (2, 3, 22)])
def test_resume_across_the_cmgems_switch_masks_as_an_uninterrupted_run(tokenizer, rank_table, tmp_path, grad_accum,
                                                                       resume_at, n_examples):
    """Switch at the second evaluation (step 6). Resuming at it (the batch collated ahead of the
    checkpoint is still GeneMask), after it (with the Trainer rebuilding the callback), or before
    it gives the same masks, perplexities and switch step. 26 examples in batches of 4 make
    every checkpoint mid-epoch and, with accumulation, end epochs mid-accumulation; 22 examples
    with accumulation put checkpoint 3 at an epoch's end (no batch ahead)."""
    options = dict(grad_accum=grad_accum, n_examples=n_examples)
    whole, whole_collator = cmgems_trainer(tokenizer, rank_table, tmp_path / "whole", **options)
    whole.train()
    assert whole_collator.switched_at_step == 6
    resumed, resumed_collator = cmgems_trainer(tokenizer, rank_table, tmp_path / "resumed", restore_flag=(resume_at == 9),
                                               **options)
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / f"checkpoint-{resume_at}"))
    after = [(step, ids, labels) for step, ids, labels in whole.seen if step >= resume_at]
    assert len(after) == len(resumed.seen) > 0
    for (step, ids, labels), (step2, ids2, labels2) in zip(after, resumed.seen):
        assert step == step2
        assert torch.equal(labels, labels2), f"masks differ at step {step}"
        assert torch.equal(ids, ids2), f"corruption differs at step {step}"
    resumed_callback = next(cb for cb in resumed.callback_handler.callbacks if isinstance(cb, MaskingCurriculumCallback))
    assert resumed_callback.collator is resumed_collator  # also when the Trainer rebuilt the callback
    assert resumed_collator.switched_at_step == 6
    assert resumed_collator.perplexities == whole_collator.perplexities
    assert resumed_collator.state_dict() == whole_collator.state_dict()


def test_without_the_saved_state_a_resumed_run_restarts_in_genemask(tokenizer, rank_table, tmp_path):
    """The check above can fail: drop the callback's saved state and the resumed run masks with
    GeneMask again after the switch (what every Trainer resume did before)."""
    whole, _ = cmgems_trainer(tokenizer, rank_table, tmp_path / "whole")
    whole.train()
    resumed, collator = cmgems_trainer(tokenizer, rank_table, tmp_path / "resumed")
    resumed.callback_handler.callbacks = [cb for cb in resumed.callback_handler.callbacks
                                          if not isinstance(cb, MaskingCurriculumCallback)]
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-9"))
    assert collator.phase == "genemask"
    after = {step: labels for step, _, labels in whole.seen}
    assert any(not torch.equal(after[step], labels) for step, _, labels in resumed.seen)


def test_curriculum_refuses_dataloader_workers_at_start(tokenizer, rank_table, tmp_path):
    trainer, _ = cmgems_trainer(tokenizer, rank_table, tmp_path, workers=2)
    with pytest.raises(ValueError, match="needs dataloader_num_workers=0 \\(got 2\\)"):
        trainer.train()


def test_switch_step_is_the_package_loops(tokenizer, rank_table, tmp_path):
    """The same perplexities give the same switch step under the Trainer and in the package's loop
    (genemask.pretrain._run: step += 1, set_step(step), evaluate, observe)."""
    perplexities = [900.0, 400.0, 380.0, 379.5, 379.4, 379.3]  # |change| < 1.0 first between the 3rd and 4th
    eval_steps = 3

    loop = make_collator("cmgems", tokenizer, rank_table, seed=0)
    evaluations = iter(perplexities)
    for step in range(1, 19):
        loop.set_step(step)
        if step % eval_steps == 0:
            loop.observe_validation_perplexity(next(evaluations))

    class ScriptedEvaluation(Trainer):
        """Reports the scripted perplexities instead of measuring them."""

        scripted = iter(perplexities)

        def evaluate(self, *args, **kwargs):
            metrics = {"eval_loss": math.log(next(self.scripted))}
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics=metrics)
            return metrics

    collator = make_collator("cmgems", tokenizer, rank_table, seed=0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=18, per_device_train_batch_size=4, report_to=[],
                             use_cpu=True, eval_strategy="steps", eval_steps=eval_steps, save_strategy="no",
                             disable_tqdm=True, logging_steps=100)
    ScriptedEvaluation(model=BertForMaskedLM(config), args=args, train_dataset=toy_examples(8, 0), eval_dataset=toy_examples(4, 1),
            data_collator=collator, callbacks=[MaskingCurriculumCallback(collator)]).train()
    assert loop.switched_at_step == 12
    assert collator.switched_at_step == loop.switched_at_step


def test_unkmerized_text_is_refused_with_the_fix(tokenizer, rank_table):
    dna = "ACGTTGCA" * 20
    collator = make_collator("genemask", tokenizer, rank_table, seed=0)
    raw = tokenizer([dna, dna[:50]])["input_ids"]  # one word each: [CLS] [UNK] [SEP]
    with pytest.raises(ValueError, match="call genemask.tokenizer.kmerize first"):
        collator([{"input_ids": ids} for ids in raw])
    kmerized = tokenizer([kmerize(dna), kmerize(dna[:50])])["input_ids"]
    batch = collator([{"input_ids": ids} for ids in kmerized])
    assert int((batch["labels"] != -100).sum()) > 0
