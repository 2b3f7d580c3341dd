"""One yardstick for every checkpoint: masked-LM loss under one fixed masking of one fixed validation set.

Each pretraining run reports validation perplexity under its *own* masking (GeneMask spans, Global
spans, ...), so those curves measure different tasks and cannot be compared across strategies (the
papers say so too). The yardstick masks the same validation chunks the same way for every
checkpoint — DNABERT's random span masking from a fixed seed — and reports the mean cross-entropy
over the masked tokens, so two strategies' checkpoints, or one run's checkpoints before and after
its perplexity transition, are scored on the identical task.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import genome, masking, pretrain, tokenizer


@dataclass(frozen=True)
class Yardstick:
    """The fixed task: which validation chunks, how long, and which masks (all seeded)."""

    n_chunks: int = 256  # validation chunks scored (a fixed sample of the corpus's validation split)
    max_len: int = 128  # tokens per sequence with [CLS]/[SEP], as the cpu profile pretrains
    batch_size: int = 32
    strategy: str = "random"  # DNABERT's span masking: blind to every ranking, so no strategy is favoured
    seed: int = 0  # draws the chunks and the masks; the same for every checkpoint scored

    def __post_init__(self) -> None:
        for name in ("n_chunks", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r}: expected a positive integer")
        if not isinstance(self.max_len, int) or self.max_len < 8:
            raise ValueError(f"max_len={self.max_len!r}: expected at least 8 tokens ([CLS], [SEP] and a span)")


def fixed_batches(corpus: genome.Corpus, spec: Yardstick = Yardstick()) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(masked ids, attention, labels) batches of the yardstick task for one corpus: the same
    tensors whichever checkpoint is scored on them."""
    valid = corpus.valid
    if len(valid) == 0:
        raise ValueError(f"corpus {corpus.directory}: empty validation split, nothing to score")
    chosen = np.sort(np.random.default_rng([spec.seed, 7]).permutation(len(valid))[: spec.n_chunks])
    collator = masking.make_collator(spec.strategy, tokenizer.build_tokenizer(corpus.params.get("k", 6)), seed=spec.seed)
    batches = []
    for start in range(0, len(chosen), spec.batch_size):
        ids, attention = pretrain.pad_batch(valid, chosen[start : start + spec.batch_size], spec.max_len)
        masked, labels, _ = collator.mask_batch(ids, attention)
        batches.append((masked, attention, labels))
    return batches


def score(model, batches) -> dict:
    """Mean masked-token cross-entropy (nats), its perplexity, and the masked-token count."""
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for masked, attention, labels in batches:
            loss, n = pretrain.masked_lm_loss(model, masked.to(device), attention.to(device), labels.to(device))
            total += float(loss)
            count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("the yardstick masked no token: more or longer validation chunks are needed")
    loss = total / count
    return {"yardstick_loss": loss, "yardstick_perplexity": math.exp(min(loss, 700.0)), "yardstick_tokens": count}


def score_checkpoint(checkpoint: str | Path, batches) -> dict:
    """:func:`score` of a saved Hugging Face masked-LM checkpoint folder."""
    from transformers import AutoModelForMaskedLM

    folder = Path(checkpoint)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"checkpoint={str(folder)!r}: no config.json (expected a Hugging Face checkpoint folder)")
    model = AutoModelForMaskedLM.from_pretrained(folder)
    return score(model, batches)


def describe(spec: Yardstick = Yardstick()) -> dict:
    """The yardstick's parameters, for result files beside its scores."""
    return asdict(spec)
