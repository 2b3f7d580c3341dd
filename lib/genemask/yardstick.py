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

from . import genome, masking, models, tokenizer


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
        ids, attention = models.pad_batch(valid, chosen[start : start + spec.batch_size], spec.max_len)
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
            loss, n = models.masked_lm_loss(model, masked.to(device), attention.to(device), labels.to(device))
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
    from .integrity import WEIGHT_FILES, verify_checksums

    verify_checksums(folder, WEIGHT_FILES)
    model = AutoModelForMaskedLM.from_pretrained(folder)
    return score(model, batches)


def describe(spec: Yardstick = Yardstick()) -> dict:
    """The yardstick's parameters, for result files beside its scores."""
    return asdict(spec)



def context_free_loss(corpus: genome.Corpus, spec: Yardstick = Yardstick()) -> dict:
    """The yardstick loss of the best predictor that reads no context: it knows the k-mer
    frequencies of the corpus's *training* split (add-one smoothed over the 4^k k-mers) and the
    80/10/10 corruption rule, and sees only the token at the masked position itself. Where that is
    [MASK] it predicts the frequencies (the unigram loss); where it is a k-mer x, the target is x
    kept unchanged or anything replaced at random, so it predicts the posterior
    ``(p(x)·[y = x] + p(y)/V) / (p(x) + 1/V)`` over the V replacement tokens.

    Computed from the data and the yardstick's own masks, not from any run's curve, this is the
    level of the perplexity plateau (a model that knows frequencies and copies what it sees, nothing
    of the neighbours) and the reference of the transition's absolute threshold
    (``genemask/published/verdict_plan.yaml``). Returns that loss, the plain unigram loss over all
    targets, the share of [MASK] inputs, and the token counts."""
    tok = tokenizer.build_tokenizer(corpus.params.get("config", {}).get("k", 6))
    collator = masking.make_collator(spec.strategy, tok, seed=spec.seed)
    kmers = np.array(sorted(i for t, i in tok.get_vocab().items() if t not in tok.all_special_tokens))
    counts = np.zeros(len(tok))
    counts[kmers] = np.bincount(np.asarray(corpus.train.ids, dtype=np.int64), minlength=len(tok))[kmers] + 1.0
    p = counts / counts.sum()
    low = 0 if collator.random_replacement == "vocab" else int(kmers.min())
    replacements = collator.vocab_size - low
    inputs, labels = [], []
    for masked, _, lab in fixed_batches(corpus, spec):
        chosen = lab != -100
        inputs.append(masked[chosen].numpy())
        labels.append(lab[chosen].numpy())
    x, y = np.concatenate(inputs), np.concatenate(labels)
    if y.size == 0:
        raise ValueError("the yardstick masked no token: more or longer validation chunks are needed")
    shown = x != collator.mask_token_id
    px = p[x]
    posterior = np.where(shown, (px * (x == y) + p[y] / replacements) / (px + 1.0 / replacements), p[y])
    return {"context_free_loss": float(-np.log(posterior).mean()), "unigram_loss": float(-np.log(p[y]).mean()),
            "mask_share": float(1 - shown.mean()), "yardstick_tokens": int(y.size),
            "train_tokens": int(corpus.train.ids.size)}
