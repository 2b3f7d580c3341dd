"""Pretraining (03_pretrain): a k-mer BERT trained with any masking strategy, resumable and DDP-ready.

``run(PretrainConfig(...))`` builds (or reuses) the corpus of a FASTA (``genome.build_corpus``,
the released chunking rule), trains ``models.masked_lm`` with the masking collator, evaluates
validation perplexity with the *current phase's* masking (which drives the CM-GEMS switch), and
writes a Hugging Face checkpoint plus a tidy metrics log. ``python -m genemask.pretrain --steps …``
is the same run from the command line, and under ``torchrun --nproc_per_node N`` it trains with
DistributedDataParallel (gloo on CPU, nccl on GPUs).

**Why a lean loop rather than ``transformers.Trainer``.** Measured with
``benchmarks/bench_pretrain.py`` (``logo`` size, batch 8, 256 tokens, one CPU thread, best of 2):
this loop 2,877 tokens/s, the plain Trainer + ``BertForMaskedLM`` + ``DataCollatorForLanguageModeling``
2,052 tokens/s (1.40x), and the Trainer with our collator and masked-only head 2,808 tokens/s.
So the speed comes from running the MLM head only at masked positions (about 15 % of tokens;
the 4101-way projection is about a fifth of a ``logo`` model's FLOPs), not from the loop, and
collation + masking take 0.3 % of a step either way. The loop wins on what the Trainer makes
hard: exact resume. Here the loop owns every piece of state: the data order is a pure function
of (seed, batches consumed), the learning rate a pure function of the step, and the optimizer
moments, RNG states and the collator's curriculum are saved together, atomically, in one folder
per save. Under the Trainer, ``masking.MaskingCurriculumCallback`` has to save the curriculum in
its checkpoints and replay the batch accelerate's loader collated ahead (the curriculum sees
steps one batch late), and evaluation's masking draws on the training generator. The checkpoint
is still a plain ``BertForMaskedLM``.

Output layout under ``out_dir``::

    .genemask-pretrain.json  the run this folder belongs to (written first); a run with other
                      parameters, or a folder holding anything else, is refused and left untouched
    checkpoint/       final HF checkpoint: model.safetensors, config.json (with ``kmer``),
                      tokenizer files, rank_table.csv (when used), pretrain.json
    metrics.csv       one row per optimizer step, appended as the run goes: step, loss, lr,
                      masked_fraction, val_perplexity (at evaluations), phase, tokens, seconds
    resume/step-N/    the latest two resume states (model, optimizer, per-rank RNG and curriculum),
                      each written to a temporary folder, fsynced and renamed into place; a damaged
                      latest state falls back to the previous one; removed at the end

**Memory.** A run's anonymous memory stays flat (LOGO, batch 16 x 128, one thread: ~380 MB from
step 50 on; before :func:`steady_heap` it grew ~15 MB a step, glibc heap fragmentation; measured
with ``benchmarks/bench_memory.py``).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from . import __version__, genome, io, masking, models, paths, tokenizer
from .identity import KEPT_CHECKPOINT, kept_step  # noqa: F401 - kept_step: the name callers use
from .integrity import ChecksumError, verify_checksums, write_checksums
from .io import fsync_path, is_storage_error, write_error, write_json, write_text, write_with
from .models import MaskedLMLoss, masked_lm_loss, pad_batch  # noqa: F401 - masked_lm_loss: the name callers use

#: The papers' optimizer and budget (Script-A, ``reference/papers.md`` §1.6): DNABERT size,
#: effective batch 250 (10 per device x 25 accumulation), 10K steps, AdamW 8e-4, warmup 500.
PAPER_BUDGET: dict[str, Any] = dict(
    model="dnabert", steps=10_000, batch_size=10, grad_accum=25, lr=8e-4, warmup=500, switch_threshold=1.0,
    adam_beta1=0.9, adam_beta2=0.98, adam_eps=1e-6, weight_decay=0.01, max_grad_norm=1.0,
    max_len=512, eval_steps=500, save_steps=1000, seed=42,
)
METRIC_COLUMNS = ("step", "loss", "lr", "masked_fraction", "val_perplexity", "phase", "tokens", "seconds", "data_seconds",
                  "yardstick_loss")
DEMO_CHECKPOINT_STEPS = 300


def _help(text: str) -> dict:
    """Field metadata: the ``--help`` text of the field's command-line option."""
    return {"help": text}


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_config(cfg: "PretrainConfig") -> None:
    """Every field's type and range, checked before anything runs; each error is one line naming the field."""
    def fail(name: str, rule: str):
        raise ValueError(f"{name}={getattr(cfg, name)!r} {rule}")

    for name, low in (("steps", 1), ("batch_size", 1), ("grad_accum", 1), ("eval_size", 1), ("eval_steps", 0),
                      ("save_steps", 0), ("threads", 0), ("seed", 0), ("max_len", 3), ("k", 3)):
        value = getattr(cfg, name)
        if not _is_int(value):
            fail(name, "must be an integer")
        if value < low:
            fail(name, f"must be >= {low}" + (" (0: never)" if low == 0 and name.endswith("steps") else ""))
    for name in ("lr", "warmup", "weight_decay", "adam_beta1", "adam_beta2", "adam_eps", "max_grad_norm", "switch_threshold"):
        value = getattr(cfg, name)
        if not _is_number(value) or not math.isfinite(value):
            fail(name, "must be a finite number")
    for name in ("lr", "adam_eps", "max_grad_norm"):
        if not getattr(cfg, name) > 0:
            fail(name, "must be > 0")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(cfg, name) < 1:
            fail(name, "must lie in [0, 1)")
    if cfg.weight_decay < 0:
        fail("weight_decay", "must be >= 0")
    if cfg.switch_threshold < 0:
        fail("switch_threshold", "must be a number >= 0")
    if cfg.warmup < 0:
        fail("warmup", "must be >= 0 (steps, or a fraction of steps below 1)")
    for name in ("join_gaps", "bf16", "resume"):
        if not isinstance(getattr(cfg, name), (bool, np.bool_)):
            fail(name, "must be true or false")
    for name in ("model", "strategy", "device"):
        if not isinstance(getattr(cfg, name), str):
            fail(name, "must be a string")
    for name in ("rank_table", "out_dir"):
        if getattr(cfg, name) is not None and not isinstance(getattr(cfg, name), (str, os.PathLike)):
            fail(name, "must be a path or None")
    if isinstance(cfg.out_dir, str) and not cfg.out_dir.strip():
        fail("out_dir", "is an empty path (None: the default folder)")
    keep = cfg.keep_steps
    if not isinstance(keep, (list, tuple)) or not all(_is_int(s) for s in keep):
        fail("keep_steps", "must be a list of integer steps")
    if list(keep) != sorted(set(keep)) or any(not 0 < s < cfg.steps for s in keep):
        fail("keep_steps", f"must be distinct increasing steps in [1, steps={cfg.steps}) (the final checkpoint is kept anyway)")
    if not isinstance(cfg.yardstick, (bool, np.bool_)):
        fail("yardstick", "must be true or false")
    if cfg.yardstick and cfg.eval_steps == 0:
        fail("yardstick", "is scored at every evaluation: set eval_steps > 0")
    fasta = cfg.fasta
    if not (fasta is None or isinstance(fasta, (str, os.PathLike))
            or (isinstance(fasta, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in fasta))):
        fail("fasta", "must be a path, a list of paths, or None")
    if any(isinstance(p, str) and not p.strip() for p in (fasta if isinstance(fasta, (list, tuple)) else [fasta])):
        fail("fasta", "holds an empty path (None: the demo genome)")
    if cfg.k not in tokenizer.SUPPORTED_K:
        fail("k", f"must be one of {tuple(tokenizer.SUPPORTED_K)}")
    if cfg.model not in models.MODEL_SIZES:
        fail("model", f"is unknown; choose one of {sorted(models.MODEL_SIZES)}")
    if cfg.strategy not in masking.STRATEGIES and cfg.strategy not in masking.MASKING_VARIANTS:
        fail("strategy", f"is unknown; choose a strategy {masking.STRATEGIES} or a variant {tuple(masking.MASKING_VARIANTS)}")
    if not isinstance(cfg.masking_options, dict):
        fail("masking_options", "must be a mapping")
    known = set(masking.DataCollatorForSpanMasking.__dataclass_fields__) - {"tokenizer", "strategy", "rank_table", "seed", "last_stats"}
    amounts = (masking.CENTRE_PROBABILITY, masking.MLM_PROBABILITY)
    unknown = set(cfg.masking_options) - known - set(amounts)
    if unknown:
        raise ValueError(f"masking_options: unknown option(s) {sorted(unknown)}; known: {', '.join(amounts)}, "
                         f"{', '.join(sorted(known))}")
    max_positions = models.MODEL_SIZES[cfg.model].max_position_embeddings
    if not cfg.max_len <= max_positions:
        fail("max_len", f"must lie in [3, {max_positions}] for model {cfg.model!r}")
    if cfg.device not in ("auto", "cpu") and not cfg.device.startswith("cuda"):
        fail("device", "must be 'auto', 'cpu' or 'cuda[:N]'")
    strategy, options = cfg.masking()
    if strategy in masking.PLATEAU_CURRICULA and cfg.eval_steps == 0 and options.get("switch_step") is None:
        raise ValueError(f"strategy {strategy!r} switches on validation perplexity: set eval_steps > 0 (or masking_options switch_step)")
    _check_masks_something(strategy, options)


def _check_masks_something(strategy: str, options: dict) -> None:
    """Refuse a masking that masks no token (a centre probability of 0 in a phase the strategy
    uses), or never hides a masked one (no [MASK] or random replacement): the loss is 0 or a copy
    task, and the run reports perfect perplexity having learned nothing."""
    named = {f"{phase}_probability" for phase in masking.STRATEGY_PHASES.get(strategy, ())}
    for name in (masking.CENTRE_PROBABILITY, masking.MLM_PROBABILITY, *sorted(named)):
        if name in options and _is_number(options[name]) and options[name] == 0:
            raise ValueError(f"masking_options: {name}=0 masks no token, so training would learn nothing "
                             "(loss 0, perplexity 1); give a probability above 0")
    if masking.MLM_PROBABILITY in options:
        try:
            masking.check_mlm_options(strategy, options)
        except ValueError as err:
            raise ValueError(f"masking_options: {err}") from None
    hidden = [options.get(name, default) for name, default in (("mask_replace_prob", 0.8), ("random_replace_prob", 0.1))]
    if all(_is_number(value) for value in hidden) and sum(hidden) == 0:
        raise ValueError("masking_options: mask_replace_prob=0 and random_replace_prob=0 leave every masked token in "
                         "the input, so training would only learn to copy it (perplexity 1); give either above 0")


@dataclass
class PretrainConfig:
    """One pretraining run; the fields are the 03_pretrain notebook's parameters.

    Defaults are the demo: tiny model, demo genome and demo rank table, CM-GEMS masking, short
    sequences, a higher learning rate, and a CM-GEMS threshold at the scale of the demo's
    perplexities (thousands: the tiny model does not get far below the k-mer frequencies in a
    few hundred steps), so that the switch happens within the run. :data:`PAPER_BUDGET` holds the papers' values (``PretrainConfig(**PAPER_BUDGET)``).
    ``strategy`` is a masking strategy or a named variant of ``masking.MASKING_VARIANTS`` (e.g.
    ``genemask-position-v1``); ``masking_options`` go to ``masking.make_collator``.
    ``warmup`` below 1 is a fraction of ``steps``.
    """

    steps: int = field(default=500, metadata=_help("optimizer steps"))
    model: str = field(default="tiny", metadata=_help(f"model size: {', '.join(models.MODEL_SIZES)}"))
    strategy: str = field(default="cmgems", metadata=_help(
        f"masking strategy or named variant: {', '.join(dict.fromkeys([*masking.STRATEGIES, *masking.MASKING_VARIANTS]))}"))
    switch_threshold: float = field(default=50.0, metadata=_help(
        "cmgems: switch to Global masking once |change of validation perplexity| < this (released: 1.0); "
        "cmgems-reverse: switch from Global to GeneMask by the same rule"))
    masking_options: dict = field(default_factory=dict, metadata=_help(
        'further masking.make_collator options as a JSON object, e.g. \'{"rank_lookup": "position", "selection": "v1"}\'; '
        '"centre_probability" sets the span-centre probability, "mlm_probability" the masked fraction (Hugging Face\'s '
        'meaning), converted to centre probabilities on a fixed sample of the training chunks and recorded in pretrain.json'))
    rank_table: str | None = field(default=None, metadata=_help(
        "k-mer rank table CSV (01_pmi's kmer_ranking.csv or the authors' Data-A); None: the demo ranking"))
    fasta: str | list | None = field(default=None, metadata=_help("FASTA file(s) to pretrain on; None: the demo genome"))
    k: int = field(default=6, metadata=_help("k-mer size of the tokenizer (3 to 6)"))
    batch_size: int = field(default=16, metadata=_help("sequences per device and micro-batch"))
    grad_accum: int = field(default=1, metadata=_help("micro-batches per optimizer step"))
    lr: float = field(default=4e-3, metadata=_help("peak learning rate (the tiny demo model; the papers: 8e-4)"))
    warmup: float = field(default=0.05, metadata=_help("linear warmup: steps, or a fraction of steps when below 1"))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay (not on biases and LayerNorm)"))
    adam_beta1: float = field(default=0.9, metadata=_help("AdamW beta1"))
    adam_beta2: float = field(default=0.98, metadata=_help("AdamW beta2"))
    adam_eps: float = field(default=1e-6, metadata=_help("AdamW epsilon"))
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient clipping norm"))
    eval_steps: int = field(default=25, metadata=_help("steps between validation perplexities (0: none)"))
    eval_size: int = field(default=256, metadata=_help("validation chunks per evaluation"))
    save_steps: int = field(default=200, metadata=_help("steps between resume states (0: only at the end)"))
    keep_steps: list = field(default_factory=list, metadata=_help(
        "steps at which a checkpoint is kept besides the final one, in checkpoints/step-<8 digits> (the transition grid)"))
    yardstick: bool = field(default=False, metadata=_help(
        "also score every evaluation on the common yardstick (genemask.yardstick: one fixed random masking of fixed "
        "validation chunks, comparable across strategies) as metrics.csv's yardstick_loss"))
    max_len: int = field(default=128, metadata=_help("tokens per sequence, [CLS] and [SEP] included (the papers: 512)"))
    join_gaps: bool = field(default=False, metadata=_help("corpus: join sequence across N gaps as the released script did"))
    seed: int = field(default=0, metadata=_help("seed of the model's initialisation, data order, masking and dropout"))
    bf16: bool = field(default=False, metadata=_help("bfloat16 autocast (GPU only)"))
    # 1 thread gives the same numbers everywhere and no oversubscription when grid cells share cores
    # (two threads beside a busy core ran 25x slower).
    threads: int = field(default=1, metadata=_help("torch CPU threads (0: torch's default)"))
    device: str = field(default="auto", metadata=_help("auto, cpu or cuda[:N]"))
    out_dir: str | None = field(default=None, metadata=_help(
        "folder of this run (None: one per run under .cache/notebooks/03_pretrain/); a folder holding another run or "
        "other files is refused"))
    resume: bool = field(default=True, metadata=_help(
        "continue from out_dir's latest resume state (--no-resume: start this run over)"))

    def __post_init__(self) -> None:
        _check_config(self)

    def masking(self) -> tuple[str, dict]:
        """(strategy, make_collator options): the named variant's options, then ``masking_options``;
        CM-STEP's schedule spans this run (``total_steps = steps``)."""
        if self.strategy in masking.MASKING_VARIANTS:
            options = masking.variant_options(self.strategy)
            strategy = options.pop("strategy")
        else:
            strategy, options = self.strategy, {}
        if strategy in masking.PLATEAU_CURRICULA:
            options["switch_threshold"] = self.switch_threshold
        options.update(self.masking_options)
        if strategy == "cmstep":
            options["total_steps"] = self.steps
        return strategy, options

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup * self.steps)) if self.warmup < 1 else int(self.warmup)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PretrainResult:
    out_dir: Path
    checkpoint: Path
    metrics_path: Path
    steps: int
    switch_step: int | None
    final_val_perplexity: float | None
    seconds: float
    resumed_from: int | None = None
    finished: bool = True  # False when stopped early by ``stop_after``

    @property
    def metrics(self):
        import pandas as pd

        return pd.read_csv(self.metrics_path)


# ----------------------------------------------------------------------------------------------
# Inputs


def _demo_rank_table() -> Path:
    """01_pmi's ranking of the demo genome (the same table as notebook 01 writes), made once and
    cached by :func:`genemask.pmi.ranking_of_fasta`, which needs no parquet writer (a core install)."""
    from . import pmi

    return pmi.ranking_of_fasta(pmi.PMIConfig(fasta=str(genome.ensure_demo_genome())))


def _resolve_inputs(cfg: PretrainConfig) -> tuple[Any, Path | None]:
    fasta = cfg.fasta if cfg.fasta not in (None, "", []) else str(genome.ensure_demo_genome())
    rank_table = None
    if cfg.rank_table not in (None, ""):
        rank_table = Path(cfg.rank_table)
        genome.require_regular_file(rank_table, "rank table file")
        if not rank_table.is_file():
            raise FileNotFoundError(f"rank_table={cfg.rank_table!r}: no such file")
    elif needs_ranking(cfg):
        if cfg.fasta not in (None, "", []):
            raise ValueError(f"rank_table is required for strategy {cfg.strategy!r} with a non-demo fasta "
                             "(genemask.pmi.ranking_of_fasta makes the fasta's NPMI ranking, as `genemask pretrain "
                             "--fasta` does; or 01_pmi's kmer_ranking.csv, or the authors' Data-A CSV)")
        rank_table = _demo_rank_table()
    return fasta, rank_table


def _make_collator(cfg: PretrainConfig, rank_table: Path | None, seed: int | None,
                   options: dict | None = None) -> masking.DataCollatorForSpanMasking:
    """The run's masking collator with ``options`` (calibrated: :func:`_calibrated_masking`). Without
    them, the config's, built once before anything is claimed or read so that a bad
    ``masking_options`` value (the notebook's ``{}``) is refused before the corpus is built; an
    ``mlm_probability`` is checked then, and converted once the training chunks are read."""
    strategy, configured = cfg.masking()
    if options is None:
        options = {name: value for name, value in configured.items() if name != masking.MLM_PROBABILITY}
    tok = tokenizer.build_tokenizer(cfg.k, model_max_length=cfg.max_len)
    return masking.make_collator(strategy, tok, rank_table=str(rank_table) if rank_table else None, seed=seed, **options)


#: Training chunks an ``mlm_probability`` is calibrated on: a fixed sample (the same for every seed of
#: a run, so seeds of one method share its centre probability), enough that the masked share pooled
#: over them moves smoothly with the centre probability.
CALIBRATION_CHUNKS = 4096


def _calibrated_masking(cfg: PretrainConfig, train: genome.TokenChunks, rank_table: Path | None) -> tuple[str, dict, dict | None]:
    """(strategy, collator options, calibration record): ``masking_options``' ``mlm_probability``, a
    masked fraction, converted to the centre probabilities that mask it on a fixed sample of this
    run's training chunks, padded as training pads them (:func:`genemask.masking.calibrated_options`);
    the record says what was asked and what it became (None when nothing was converted)."""
    strategy, options = cfg.masking()
    if masking.MLM_PROBABILITY not in options:
        return strategy, options, None
    order = np.random.default_rng([masking.CALIBRATION_SEED, 2]).permutation(len(train))
    indices = np.sort(order[:CALIBRATION_CHUNKS])
    examples = dict(zip(("input_ids", "attention_mask"), pad_batch(train, indices, cfg.max_len)))
    tok = tokenizer.build_tokenizer(cfg.k, model_max_length=cfg.max_len)
    calibrated = masking.calibrated_options(strategy, tok, options, examples, str(rank_table) if rank_table else None)
    centres = {name: value for name, value in calibrated.items() if name not in options}
    record = {masking.MLM_PROBABILITY: options[masking.MLM_PROBABILITY], "options": centres, "chunks": len(indices),
              "seed": masking.CALIBRATION_SEED}
    return strategy, calibrated, record


def default_out_dir(cfg: PretrainConfig) -> Path:
    """The folder a run without ``out_dir`` trains into: one per run identity (every field but where
    and how it executes), ``.cache/notebooks/03_pretrain/<model>-<strategy>-<steps>-<hash>``, so a run
    with other parameters never finds its folder taken, and the same run finds its finished result."""
    import hashlib

    digest = hashlib.sha256(json.dumps(_identity(cfg.to_dict()), sort_keys=True).encode()).hexdigest()[:12]
    return paths.cache_dir() / "notebooks" / "03_pretrain" / f"{cfg.model}-{cfg.strategy}-{cfg.steps}-{digest}"


def _prepare_out_dir(out_dir: Path) -> None:
    io.prepare_out_dir(out_dir)


def _exclusive(out_dir: Path, wait: bool) -> contextlib.AbstractContextManager:
    """An advisory lock on ``out_dir`` (its ``.lock``): two runs never train into the same folder at once."""
    return io.exclusive(out_dir, "pretraining", wait=wait)


# ----------------------------------------------------------------------------------------------
# Distributed context


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def all_reduce(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()


def _init_distributed(cfg: PretrainConfig) -> tuple[_Dist, bool]:
    """Join the process group torchrun / accelerate launch describe in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={cfg.device!r}: no CUDA device on this machine (use auto or cpu)")
    use_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    if use_cuda:
        device = torch.device(f"cuda:{local_rank}" if world > 1 or cfg.device in ("auto", "cuda") else cfg.device)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    created = False
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
        created = True
    rank = torch.distributed.get_rank() if world > 1 else 0
    return _Dist(rank, world, local_rank, device), created


# ----------------------------------------------------------------------------------------------
# Data


class _Batches:
    """The training stream: epochs of seeded permutations, cut into global micro-batches of
    ``batch_size * world`` chunks; rank r takes every world-th of them. Batch g is a pure function
    of (seed, g), so resuming needs only the number of micro-batches consumed."""

    def __init__(self, chunks: genome.TokenChunks, batch_size: int, max_len: int, seed: int, dist: _Dist) -> None:
        self.chunks, self.batch_size, self.max_len, self.seed, self.dist = chunks, batch_size, max_len, seed, dist
        self._epoch, self._order = -1, None

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.chunks))
            self._epoch = epoch
        return self._order

    def indices(self, micro_batch: int) -> np.ndarray:
        size = self.batch_size * self.dist.world
        n = len(self.chunks)
        positions = np.arange(micro_batch * size, (micro_batch + 1) * size)[self.dist.rank :: self.dist.world]
        out = np.empty(len(positions), dtype=np.int64)
        for epoch in np.unique(positions // n):  # a batch may straddle two epochs
            here = positions // n == epoch
            out[here] = self._permutation(int(epoch))[positions[here] % n]
        return out

    def batch(self, micro_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_batch(self.chunks, self.indices(micro_batch), self.max_len)


# ----------------------------------------------------------------------------------------------
# Model pieces


def _optimizer(model, cfg: PretrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and LayerNorm weights (DNABERT's and the Trainer's rule)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps,
                             fused=device.type == "cuda")


def learning_rate(step: int, cfg: PretrainConfig) -> float:
    """Linear warmup to ``lr`` then linear decay to 0 at ``steps`` (``get_linear_schedule_with_warmup``),
    for the optimizer step that follows ``step`` completed steps."""
    warm = cfg.warmup_steps
    if step < warm:
        return cfg.lr * step / max(1, warm)
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))


# ----------------------------------------------------------------------------------------------
# Run identity and out_dir ownership

#: Written first into an ``out_dir`` a run claims: the identity of the run the folder belongs to.
RUN_MARKER = ".genemask-pretrain.json"
#: Fields that say where or how a run executes, not which run it is.
_RUN_LOCAL = ("out_dir", "resume", "device", "threads")
#: Resume states kept: the latest, and the previous one to fall back on when the latest is damaged.
STATES_KEPT = 2


def _identity(config: dict) -> dict:
    """The fields that make a run this run, as JSON values; a field a saved config predates counts as
    its default, so runs saved before a field was added keep matching."""
    defaults = json.loads(json.dumps(PretrainConfig().to_dict(), default=str))
    config = json.loads(json.dumps(config, default=str))
    known = {k: config.get(k, defaults[k]) for k in defaults}
    extra = {k: v for k, v in config.items() if k not in defaults}  # a field since removed: never equal
    return {k: v for k, v in {**known, **extra}.items() if k not in _RUN_LOCAL}


def _changed(saved: dict, cfg: PretrainConfig) -> list[str]:
    """The parameters on which a saved run's config differs from ``cfg``."""
    a, b = _identity(saved), _identity(cfg.to_dict())
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _read_json(path: Path) -> Any:
    """A JSON file that should be whole; a damaged one is an error naming it."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: damaged JSON ({err})") from None


def _owner_config(out_dir: Path) -> tuple[dict | None, Path | None]:
    """(config, file it came from) of the run ``out_dir`` belongs to: the marker, else (folders
    written before the marker existed) the final checkpoint's or the newest resume state's config."""
    candidates = [out_dir / RUN_MARKER, out_dir / "checkpoint" / "pretrain.json",
                  *(state / "state.json" for state in _states(out_dir))]
    for path in candidates:
        if path.is_file():
            return _read_json(path)["config"], path
    return None, None


def _foreign_entries(out_dir: Path) -> list[str]:
    """What an unclaimed ``out_dir`` holds besides genemask's claim files (even a ``resume`` or
    ``checkpoint`` folder there may be someone else's: ``--out_dir ~`` must not touch ``~/resume``)."""
    return io.foreign_entries(out_dir)


def _claim_out_dir(out_dir: Path, cfg: PretrainConfig, write: bool) -> None:
    """Refuse an ``out_dir`` that holds another run, or files no pretraining run wrote (nothing in it
    is ever wiped then); else mark it as this run's (``write``: the main process)."""
    saved, source = _owner_config(out_dir)
    if saved is None:
        foreign = _foreign_entries(out_dir)
        if foreign:
            raise ValueError(f"out_dir={str(out_dir)!r} holds files no pretraining run wrote ({io.shown_names(foreign)}); "
                             "choose an empty or new folder")
    else:
        changed = _changed(saved, cfg)
        if changed:
            raise ValueError(f"out_dir={str(out_dir)!r} holds another pretraining run (different {', '.join(changed)}; "
                             f"see {source.relative_to(out_dir)}): use another out_dir")
    if write and source != out_dir / RUN_MARKER:
        write_json(out_dir / RUN_MARKER, {"config": cfg.to_dict(), "genemask_version": __version__})


# ----------------------------------------------------------------------------------------------
# Resume state


def _b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


def _resume_root(out_dir: Path) -> Path:
    return out_dir / "resume"


def _states(out_dir: Path) -> list[Path]:
    """Complete resume folders, newest first (temporary ``.step-*`` folders are never complete)."""
    root = _resume_root(out_dir)
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("step-*") if p.is_dir() and (p / "state.json").exists()), reverse=True)


def _latest_state(out_dir: Path) -> Path | None:
    states = _states(out_dir)
    return states[0] if states else None


def _save_state(out_dir: Path, step: int, micro_batches: int, model, optimizer, collator, rows: list[dict],
                cfg: PretrainConfig, dist: _Dist) -> None:
    """Write the resume state of ``step`` into a temporary folder, fsync it, rename it into place, and
    keep the previous state beside it. A failed write (a full disk) raises an error naming the file
    and leaves the earlier states as they were."""
    from safetensors.torch import save_file, save_model

    root = _resume_root(out_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp"
    if dist.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    rank_state = {
        "collator": collator.state_dict(),
        "torch_rng": _b64(torch.get_rng_state()),
        "cuda_rng": _b64(torch.cuda.get_rng_state(dist.device)) if dist.device.type == "cuda" else None,
    }
    try:
        write_text(tmp / f"rank{dist.rank}.json", json.dumps(rank_state))
        if dist.main:
            opt = optimizer.state_dict()
            tensors = {f"{i}.{name}": value.detach().cpu().contiguous() for i, state in opt["state"].items()
                       for name, value in state.items() if torch.is_tensor(value)}
            for name, save in (("model.safetensors", lambda path: save_model(model, str(path))),
                               ("optimizer.safetensors", lambda path: save_file(tensors, str(path)))):
                try:
                    save(tmp / name)
                    fsync_path(tmp / name)
                except Exception as err:  # safetensors' SafetensorError names no path: say which file
                    if not is_storage_error(err):
                        raise
                    raise write_error(tmp / name, err) from err
            write_checksums(tmp, _STATE_WEIGHTS)
            write_text(tmp / "metrics.json", json.dumps(rows))
            write_text(tmp / "state.json", json.dumps({
                "step": step, "micro_batches": micro_batches, "world_size": dist.world,
                "param_groups": opt["param_groups"], "config": cfg.to_dict(), "version": __version__}, default=str))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    dist.barrier()
    if dist.main:
        fsync_path(tmp)
        if final.exists():  # a damaged state of this step, which the run fell back from
            stale = root / f".step-{step:08d}.stale"
            shutil.rmtree(stale, ignore_errors=True)
            os.rename(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.rename(tmp, final)
        fsync_path(root)
        for old in _states(out_dir)[STATES_KEPT:]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


class DamagedState(ValueError):
    """A resume state that cannot be read whole (truncated, corrupt); ``str()`` names the file."""


#: The weights files of a resume state, whose checksums it records (``integrity``).
_STATE_WEIGHTS = ("model.safetensors", "optimizer.safetensors")


def _read_state(state_dir: Path, rank: int) -> dict:
    """Every file of a resume state, read and checked before anything is applied, so a damaged
    state leaves the model, optimizer and collator untouched for the previous one."""
    from safetensors.torch import load_file

    def read(name: str, loader):
        path = state_dir / name
        try:
            return loader(path)
        except Exception as err:  # truncated JSON, safetensors header or data, a missing file
            raise DamagedState(f"{path}: damaged resume state ({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''})") from None

    def json_file(path: Path):
        return json.loads(path.read_text())

    try:
        verify_checksums(state_dir, _STATE_WEIGHTS)
    except ChecksumError as err:
        raise DamagedState(f"{err.path}: damaged resume state ({err.reason})") from None
    state = {"meta": read("state.json", json_file), "rows": read("metrics.json", json_file),
             "rank": read(f"rank{rank}.json", json_file),
             "model": read("model.safetensors", lambda p: load_file(str(p))),
             "optimizer": read("optimizer.safetensors", lambda p: load_file(str(p)))}
    for name, key in (("state.json", "step"), ("state.json", "micro_batches"), (f"rank{rank}.json", "collator")):
        if key not in (state["meta"] if name == "state.json" else state["rank"]):
            raise DamagedState(f"{state_dir / name}: damaged resume state (no {key!r})")
    return state


def _load_state(state_dir: Path, model, optimizer, collator, cfg: PretrainConfig, dist: _Dist) -> tuple[int, int, list[dict]]:
    from safetensors.torch import load_model

    state = _read_state(state_dir, dist.rank)
    meta = state["meta"]
    changed = _changed(meta.get("config", {}), cfg)
    if changed:
        raise ValueError(f"{state_dir}: a resume state of a run with different parameters ({', '.join(changed)}): "
                         "use another out_dir")
    if meta["world_size"] != dist.world:
        raise ValueError(f"{state_dir}: resume state was written by {meta['world_size']} process(es), this run has {dist.world}")
    load_model(model, str(state_dir / "model.safetensors"), device=str(dist.device))
    per_param: dict[int, dict] = {}
    for key, value in state["optimizer"].items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value if name == "step" else value.to(dist.device)
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})
    rank_state = state["rank"]
    collator.load_state_dict(rank_state["collator"])
    torch.set_rng_state(_unb64(rank_state["torch_rng"]))
    if rank_state["cuda_rng"] is not None and dist.device.type == "cuda":
        torch.cuda.set_rng_state(_unb64(rank_state["cuda_rng"]), dist.device)
    return meta["step"], meta["micro_batches"], state["rows"]


def _resume(out_dir: Path, model, optimizer, collator, cfg: PretrainConfig, dist: _Dist) -> tuple[int, int, list[dict], int | None]:
    """Load the newest readable resume state: a damaged one is skipped with a warning naming its file
    (the previous state is kept for this); none at all starts at step 0."""
    damaged = []
    for state_dir in _states(out_dir):
        try:
            step, micro_batches, rows = _load_state(state_dir, model, optimizer, collator, cfg, dist)
        except DamagedState as err:
            damaged.append(str(err))
            warnings.warn(f"{err}; trying the previous resume state", stacklevel=2)
            continue
        return step, micro_batches, rows, step
    if damaged:
        raise DamagedState(f"no readable resume state in {_resume_root(out_dir)} ({'; '.join(damaged)}): "
                           "resume=False starts this run over")
    return 0, 0, [], None


# ----------------------------------------------------------------------------------------------
# Evaluation and outputs


def _evaluate(loss_module, chunks: genome.TokenChunks, indices: np.ndarray, collator, eval_collator, cfg: PretrainConfig,
              dist: _Dist, autocast) -> float:
    """Validation perplexity, exp(mean cross-entropy over masked tokens), with the current phase's
    masking. The evaluation masks come from their own generator, reseeded each time, so successive
    perplexities differ by what the model learned, not by which tokens happened to be masked."""
    state = collator.state_dict()
    state["generator_state"] = None
    eval_collator.load_state_dict(state)
    eval_collator.generator = torch.Generator().manual_seed(cfg.seed + 1_000_003 + dist.rank)
    mine = indices[dist.rank :: dist.world]
    total, count = 0.0, 0
    loss_module.eval()
    with torch.no_grad():
        for start in range(0, len(mine), cfg.batch_size):
            ids, attention = pad_batch(chunks, mine[start : start + cfg.batch_size], cfg.max_len)
            masked, labels, _ = eval_collator.mask_batch(ids, attention)
            with autocast():
                loss, n = loss_module(masked.to(dist.device), attention.to(dist.device), labels.to(dist.device))
            total += float(loss)
            count += n
    loss_module.train()
    total, count = dist.all_reduce([total, float(count)])
    return math.exp(min(total / max(count, 1.0), 700.0))


def _metric_row(row: dict) -> dict:
    """A metrics row as metrics.csv stores it: rounded so a 10K-step log stays small enough for
    results/ (the exact values are in the resume state)."""
    out = {"yardstick_loss": float("nan"), **row}  # rows of a resume state saved before the yardstick existed
    for name, digits in _METRIC_DIGITS.items():
        out[name] = round(out[name], digits)
    out["lr"] = float(f"{out['lr']:.6g}")
    return out


_METRIC_DIGITS = {"loss": 6, "masked_fraction": 5, "val_perplexity": 4, "yardstick_loss": 6, "seconds": 2,
                  "data_seconds": 3}


def _csv_line(row: dict) -> str:
    """One metrics.csv line, formatted as pandas' ``to_csv`` writes it (NaN empty, floats by repr)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if value != value else repr(value)
        return "" if value is None else str(value)

    return ",".join(cell(row[c]) for c in METRIC_COLUMNS) + "\n"


def _write_metrics(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    frame = pd.DataFrame([_metric_row(r) for r in rows], columns=list(METRIC_COLUMNS))
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


class _MetricsLog:
    """metrics.csv as the run goes: rewritten whole at the start (a resumed run's rows up to its
    state), then one line appended and flushed per step, fsynced at every resume state, so a crash
    loses at most the steps since the last line reached the disk and never leaves a broken header."""

    def __init__(self, path: Path, rows: list[dict]) -> None:
        self.path = path
        _write_metrics(path, rows)
        self._handle = open(path, "a")

    def append(self, row: dict) -> None:
        try:
            self._handle.write(_csv_line(_metric_row(row)))
            self._handle.flush()
        except OSError as err:
            raise write_error(self.path, err) from err

    def sync(self) -> None:
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Writing model shards" progress bar from ``save_pretrained`` (library chatter in notebooks)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


#: The weights file of a checkpoint (``save_pretrained`` with safetensors), whose checksum it records.
CHECKPOINT_WEIGHTS = "model.safetensors"


def _save_checkpoint(out_dir: Path, model, cfg: PretrainConfig, rank_table: Path | None, summary: dict,
                     name: str = "checkpoint") -> Path:
    """A Hugging Face checkpoint (the final one, or ``name`` = a kept step's), assembled in a
    temporary folder, fsynced and swapped in whole."""
    target = out_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{name.replace('/', '-')}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        try:
            with _quiet_transformers():
                model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.build_tokenizer(cfg.k, model_max_length=cfg.max_len).save_pretrained(tmp)
            if rank_table is not None:
                shutil.copyfile(rank_table, tmp / "rank_table.csv")
        except Exception as err:  # safetensors' SafetensorError names no path: its file is the weights
            if not is_storage_error(err):
                raise
            raise write_error(Path(err.filename) if getattr(err, "filename", None) else tmp / CHECKPOINT_WEIGHTS, err) from err
        write_checksums(tmp, [CHECKPOINT_WEIGHTS])
        write_json(tmp / "pretrain.json", {"config": cfg.to_dict(), **summary})
        for file in tmp.iterdir():
            os.chmod(file, 0o644)  # safetensors writes 0600
            fsync_path(file)
        fsync_path(tmp)
        old = out_dir / f".{name.replace('/', '-')}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
        fsync_path(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _finished(out_dir: Path, cfg: PretrainConfig) -> dict | None:
    """The summary of a finished identical run in ``out_dir`` (re-running is then a no-op); a
    damaged checkpoint is an error naming its file, never silently reused or retrained over."""
    path = out_dir / "checkpoint" / "pretrain.json"
    if not path.exists() or not (out_dir / "metrics.csv").exists():
        return None
    saved = _read_json(path)
    if _changed(saved["config"], cfg):
        return None
    weights = out_dir / "checkpoint" / CHECKPOINT_WEIGHTS
    try:
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as handle:
            handle.keys()
        verify_checksums(weights.parent, [CHECKPOINT_WEIGHTS])
    except ChecksumError as err:
        raise ChecksumError(err.path, f"{err.reason}; resume=False trains this run again") from None
    except Exception as err:
        raise ValueError(f"{weights}: damaged checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}); "
                         "resume=False trains this run again") from None
    return saved


# ----------------------------------------------------------------------------------------------
# The run


#: Allocations from this size up get their own mmap, returned to the OS when freed (see steady_heap).
MMAP_THRESHOLD = 128 * 1024


def steady_heap() -> None:
    """Keep the process's memory flat over a long run (glibc only; elsewhere nothing to do).

    glibc starts by serving allocations of 128 KiB and more with their own mmap, but raises that
    threshold to the size of every such block freed (up to 32 MiB). A training step frees
    activations and gradients of a few hundred KiB to a few MiB whose sizes change with every batch
    (the masked-token count sets the MLM head's rows, the longest chunk the width), so after the first
    steps they all land on the heap, where freed blocks of one step's sizes rarely fit the next
    step's and the heap only grows: measured with ``benchmarks/bench_memory.py`` (LOGO, batch 16 x
    128, one thread), anonymous RSS rose ~15 MB a step. Fixing the threshold (``mallopt``
    ``M_MMAP_THRESHOLD``, which also turns the adjustment off) keeps those blocks out of the heap.
    ``MALLOC_MMAP_THRESHOLD_`` in the environment, glibc's own setting, wins."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(ctypes.c_int(-3), ctypes.c_int(MMAP_THRESHOLD))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def run(cfg: PretrainConfig, *, stop_after: int | None = None, verbose: bool | None = None,
        mask_on_device: bool = False, report_to: str = "none") -> PretrainResult:
    """Pretrain as ``cfg`` says; resume from ``out_dir``'s latest state when there is one.

    ``stop_after`` ends the run after that many optimizer steps without a final checkpoint, as a
    kill would (tests use it for resume). Re-running a finished run returns its result at once.
    An ``out_dir`` holding another run, or files no run wrote, is refused before anything is written;
    a run that fails before its first step (a corpus smaller than one batch, a damaged FASTA) gives
    its claim on ``out_dir`` back, so that the corrected run may use the folder.
    ``verbose`` prints a start line and one progress line per evaluation to stdout (the command
    line); ``None`` (the default) writes them beneath a notebook kernel's capture (:func:`_console`),
    so papermill's terminal shows them and no notebook output holds them; ``False`` prints nothing.
    ``report_to="tensorboard"`` also logs every step's scalars to ``out_dir/tensorboard``.
    ``mask_on_device`` runs the collator's tensor work on the training device (``genemask.gpu``):
    the same masks, since the collator draws its random numbers on the CPU either way.
    """
    started = time.perf_counter()
    _make_collator(cfg, _resolve_inputs(cfg)[1], seed=None)  # masking options checked before anything is written
    out_dir = Path(cfg.out_dir).expanduser() if cfg.out_dir else default_out_dir(cfg)
    board_class = _tensorboard_writer(report_to)  # a missing tensorboard fails before anything is written
    _claim_out_dir(out_dir, cfg, write=False)  # refuse before creating anything
    dist, created_group = _init_distributed(cfg)
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    steady_heap()
    out = (sys.stdout if verbose else None) if verbose is not None else _console()
    existed = out_dir.exists()
    try:
        if dist.main:
            _prepare_out_dir(out_dir)
        dist.barrier()
        lock = _exclusive(out_dir, wait=False) if dist.main else contextlib.nullcontext()
        with lock:
            claimed_here = dist.main and not (out_dir / RUN_MARKER).exists()
            _claim_out_dir(out_dir, cfg, write=dist.main)
            dist.barrier()
            try:
                return _run(cfg, out_dir, dist, started, stop_after, out, mask_on_device,
                            board_class if dist.main else None)
            except BaseException:
                if claimed_here:
                    _release_unstarted(out_dir, remove_folder=not existed)
                raise
    finally:
        torch.set_num_threads(threads)
        if out not in (None, sys.stdout):
            out.close()
        if created_group:
            torch.distributed.destroy_process_group()


def _release_unstarted(out_dir: Path, remove_folder: bool) -> None:
    """Give back the claim on ``out_dir`` of a run that failed before its first step: its marker and
    header-only metrics.csv go (and the folder, when the run made it), so a corrected run is not
    refused as "another pretraining run". A run that logged a step, saved a state or a checkpoint
    keeps its claim: it is resumable, or its log tells what happened."""
    metrics = out_dir / "metrics.csv"
    if _states(out_dir) or (out_dir / "checkpoint").exists() or (out_dir / "checkpoints").exists():
        return
    if metrics.exists():
        with open(metrics) as handle:
            if len([line for _, line in zip(range(2), handle)]) > 1:
                return
    for name in (RUN_MARKER, "metrics.csv", *([".lock"] if remove_folder else [])):
        (out_dir / name).unlink(missing_ok=True)
    if remove_folder:
        with contextlib.suppress(OSError):  # not empty: something else appeared there; keep it
            out_dir.rmdir()


def _quiet() -> bool:
    return os.environ.get("GENEMASK_QUIET", "") not in ("", "0")


def _in_kernel() -> bool:
    """Whether this process is a running Jupyter kernel (not merely one that imported ipykernel,
    as a test session or a script that used nbclient may have)."""
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    return kernelapp is not None and kernelapp.IPKernelApp.initialized()


def _console() -> TextIO | None:
    """Where progress goes when ``verbose`` is not given: inside a notebook kernel, the kernel
    process's own stderr beneath ipykernel's capture (``sys.stderr.fileno()`` is ipykernel's copy of
    it), which is the terminal papermill runs in, so a run is watchable there while no notebook
    output (which nbval compares) holds its timings; nothing elsewhere, or under GENEMASK_QUIET=1
    (tests, the grid's cells)."""
    if _quiet() or not _in_kernel():
        return None
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # ipykernel without its fd capture: no terminal to reach
        return None
    if fd in (1, 2):  # not ipykernel's copy: the kernel would forward it into the notebook
        return None
    return os.fdopen(os.dup(fd), "w", buffering=1)


def _tensorboard_writer(report_to: str):
    """``torch.utils.tensorboard.SummaryWriter`` for ``report_to="tensorboard"`` (None for "none"),
    or a one-line error saying what to install."""
    if report_to in (None, "none"):
        return None
    if report_to != "tensorboard":
        raise ValueError(f"report_to={report_to!r} is unknown; choose 'none' or 'tensorboard'")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RuntimeError("report_to='tensorboard' needs the tensorboard package: "
                           "pip install tensorboard (or genemask[tensorboard])") from None
    return SummaryWriter


class _Board:
    """A run's scalars in TensorBoard (``out_dir/tensorboard``): every step's loss, learning rate,
    masked fraction and tokens/s, and each evaluation's validation perplexity and yardstick loss."""

    def __init__(self, writer_class, log_dir: Path) -> None:
        self.writer = writer_class(log_dir=str(log_dir))
        self.last_seconds: float | None = None

    def log(self, row: dict) -> None:
        step = row["step"]
        for name in ("loss", "lr", "masked_fraction", "val_perplexity", "yardstick_loss"):
            value = row.get(name, math.nan)
            if value == value:
                self.writer.add_scalar(f"train/{name}" if name in ("loss", "lr", "masked_fraction") else f"eval/{name}",
                                       value, step)
        if self.last_seconds is not None and row["seconds"] > self.last_seconds:
            self.writer.add_scalar("train/tokens_per_second", row["tokens"] / (row["seconds"] - self.last_seconds), step)
        self.last_seconds = row["seconds"]

    def close(self) -> None:
        self.writer.close()


class _Progress:
    """One line per evaluation (or per 5 % of the run without evaluations) to ``out``: step, loss,
    validation perplexity, tokens/s since the last line, elapsed time and ETA."""

    def __init__(self, out: TextIO | None, first_step: int, target: int, every: int) -> None:
        self.out, self.first_step, self.target, self.every = out, first_step, target, max(1, every)
        self.enabled = out is not None
        self.start = self.last = time.perf_counter()
        self.tokens = 0

    def step(self, row: dict) -> None:
        self.tokens += row["tokens"]
        step = row["step"]
        if not self.enabled or (step % self.every and step != self.target):
            return
        now = time.perf_counter()
        per_step = (now - self.start) / max(1, step - self.first_step)
        ppl = row["val_perplexity"]
        print(f"step {step:>{len(str(self.target))}}/{self.target}  loss {row['loss']:.4f}  "
              + (f"val_ppl {ppl:.1f}  " if ppl == ppl else "")
              + (f"yardstick {row['yardstick_loss']:.3f}  " if row.get("yardstick_loss", math.nan) == row.get("yardstick_loss") else "")
              + f"lr {row['lr']:.2e}  {self.tokens / max(now - self.last, 1e-9):,.0f} tokens/s  "
              f"elapsed {_duration(now - self.start)}  ETA {_duration(per_step * (self.target - step))}", file=self.out, flush=True)
        self.last, self.tokens = now, 0


@dataclass
class _UnmaskedStream:
    """Watches the first micro-batches of a run: if :data:`UNMASKED_BATCHES_REFUSED` of them (over
    all processes) mask no token at all, the masking masks nothing here (e.g. chunks too short for
    its spans) and the run stops before it reports a perplexity of 1 for a model that learned
    nothing. Only reads the collator's counts: the masks and losses are those of any run."""

    batches: int = 0

    def observe(self, masked_tokens: int, micro_batches: int, dist: _Dist) -> "_UnmaskedStream | None":
        """None (stop watching) once a token was masked; raises once enough batches masked none."""
        (masked,) = dist.all_reduce([float(masked_tokens)])
        if masked > 0:
            return None
        self.batches += micro_batches * dist.world
        if self.batches >= UNMASKED_BATCHES_REFUSED:
            raise ValueError(f"masking: the first {self.batches} batches masked no token (masked fraction 0), so "
                             "training would learn nothing; check masking_options, rank_table and max_len")
        return self


#: Micro-batches in a row, from a run's start, that may mask nothing before the run is refused
#: (a working masking leaves a batch unmasked only by rare chance: tiny batches of short chunks).
UNMASKED_BATCHES_REFUSED = 8


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _run(cfg: PretrainConfig, out_dir: Path, dist: _Dist, started: float, stop_after: int | None,
         out: TextIO | None, mask_on_device: bool = False, board_class=None) -> PretrainResult:
    metrics_path = out_dir / "metrics.csv"
    done = _finished(out_dir, cfg) if cfg.resume else None
    talk = out if dist.main else None
    if done is not None:
        if talk:
            print(f"finished already: {out_dir / 'checkpoint'}", file=talk, flush=True)
        return PretrainResult(out_dir, out_dir / "checkpoint", metrics_path, cfg.steps, done.get("switch_step"),
                              done.get("final_val_perplexity"), time.perf_counter() - started)

    fasta, rank_table = _resolve_inputs(cfg)
    corpus = genome.build_corpus(fasta, genome.CorpusConfig(k=cfg.k, join_gaps=cfg.join_gaps)) if dist.main else None
    dist.barrier()
    if corpus is None:
        corpus = genome.build_corpus(fasta, genome.CorpusConfig(k=cfg.k, join_gaps=cfg.join_gaps))
    global_batch = cfg.batch_size * dist.world
    if len(corpus.train) < global_batch:
        raise ValueError(f"fasta: the corpus has {len(corpus.train)} training chunks, fewer than one batch "
                         f"(batch_size {cfg.batch_size} x {dist.world} process(es)); use a larger FASTA or a smaller batch_size")
    if cfg.eval_steps and len(corpus.valid) == 0:
        raise ValueError("fasta: the corpus has no validation chunks to measure perplexity on; use a larger FASTA")

    strategy, options, calibration = _calibrated_masking(cfg, corpus.train, rank_table)
    collator = _make_collator(cfg, rank_table, seed=cfg.seed + dist.rank, options=options)
    eval_collator = masking.make_collator(strategy, collator.tokenizer, rank_table=collator.rank_table, seed=None, **options)
    recorded = {"masking_options": options, **({"calibration": calibration} if calibration else {})}
    torch.manual_seed(cfg.seed + dist.rank)  # dropout; the model's init is seeded by models.masked_lm
    model = models.masked_lm(cfg.model, cfg.k, seed=cfg.seed).to(dist.device)
    model.train()
    optimizer = _optimizer(model, cfg, dist.device)
    loss_module = MaskedLMLoss(model)
    if dist.world > 1:
        ids = [dist.device.index] if dist.device.type == "cuda" else None
        loss_module = torch.nn.parallel.DistributedDataParallel(loss_module, device_ids=ids)

    step, micro_batches, rows, resumed_from = 0, 0, [], None
    if cfg.resume:
        step, micro_batches, rows, resumed_from = _resume(out_dir, model, optimizer, collator, cfg, dist)
    elif dist.main and _resume_root(out_dir).exists():
        shutil.rmtree(_resume_root(out_dir))  # resume=False: this run (never another, _claim_out_dir) starts over
    dist.barrier()

    batches = _Batches(corpus.train, cfg.batch_size, cfg.max_len, cfg.seed, dist)
    yardstick_batches = None
    if cfg.yardstick:
        from . import yardstick  # loaded only when a run asks for the yardstick

        yardstick_batches = yardstick.fixed_batches(corpus)
    eval_indices = np.sort(np.random.default_rng([cfg.seed, 1]).permutation(len(corpus.valid))[: cfg.eval_size])
    use_bf16 = cfg.bf16 and dist.device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    def sync_context(last: bool):
        return loss_module.no_sync() if dist.world > 1 and not last else contextlib.nullcontext()

    target = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    if talk:
        print(f"pretraining {cfg.model} ({models.parameter_count(model) / 1e6:.2f} M parameters), {cfg.strategy} masking: "
              f"{cfg.steps:,} steps x {global_batch * cfg.grad_accum} sequences of <= {cfg.max_len} tokens on "
              f"{dist.world} {dist.device.type} process(es); corpus {len(corpus.train):,} train / {len(corpus.valid):,} "
              f"validation chunks", file=talk, flush=True)
        print(f"out_dir {out_dir}: metrics.csv grows by a row per step"
              + (f"; resumed from step {resumed_from}" if resumed_from is not None else ""), file=talk, flush=True)
    log = _MetricsLog(metrics_path, rows) if dist.main else None
    board = _Board(board_class, out_dir / "tensorboard") if board_class is not None else None
    progress = _Progress(talk, step, target, cfg.eval_steps or max(1, cfg.steps // 20))
    elapsed_before = rows[-1]["seconds"] if rows else 0.0
    data_seconds = rows[-1]["data_seconds"] if rows else 0.0  # batch assembly + masking, for the benchmark
    loop_start = time.perf_counter()
    unmasked: _UnmaskedStream | None = _UnmaskedStream()
    try:
        while step < target:
            collator.set_step(step)
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            losses, fractions, tokens, phase, masked_tokens = [], [], 0, None, 0
            for accum in range(cfg.grad_accum):
                data_start = time.perf_counter()
                ids, attention = batches.batch(micro_batches)
                micro_batches += 1
                tokens += int(attention.sum())
                if mask_on_device:
                    ids, attention = ids.to(dist.device), attention.to(dist.device)
                masked, labels, _ = collator.mask_batch(ids, attention)
                data_seconds += time.perf_counter() - data_start
                phase = collator.last_stats["phase"]
                fractions.append(collator.last_stats["masked_fraction"])
                masked_tokens += collator.last_stats["masked_tokens"]
                with sync_context(accum == cfg.grad_accum - 1), autocast():
                    loss_sum, n = loss_module(masked.to(dist.device), attention.to(dist.device), labels.to(dist.device))
                    loss = loss_sum / max(n, 1)
                    (loss / cfg.grad_accum).backward()
                losses.append(float(loss.detach()))
            if unmasked is not None:
                unmasked = unmasked.observe(masked_tokens, cfg.grad_accum, dist)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            collator.set_step(step)
            mean_loss, mean_fraction, all_tokens = dist.all_reduce(
                [sum(losses) / len(losses), sum(fractions) / len(fractions), float(tokens)])
            row = {"step": step, "loss": mean_loss / dist.world, "lr": lr, "masked_fraction": mean_fraction / dist.world,
                   "val_perplexity": float("nan"), "yardstick_loss": float("nan"), "phase": phase, "tokens": int(all_tokens),
                   "seconds": round(elapsed_before + time.perf_counter() - loop_start, 3), "data_seconds": round(data_seconds, 4)}
            if cfg.eval_steps and (step % cfg.eval_steps == 0 or step == cfg.steps):
                row["val_perplexity"] = _evaluate(loss_module, corpus.valid, eval_indices, collator, eval_collator, cfg, dist, autocast)
                collator.observe_validation_perplexity(row["val_perplexity"])
                if yardstick_batches is not None:
                    with autocast():
                        row["yardstick_loss"] = yardstick.score(model, yardstick_batches)["yardstick_loss"]
            rows.append(row)
            if log is not None:
                log.append(row)
            progress.step(row)
            if board is not None:
                board.log(row)
            if step in cfg.keep_steps and dist.main:
                kept = {"steps": step, "kept_of_steps": cfg.steps, "strategy": strategy, **recorded,
                        "phase": phase, "genemask_version": __version__, "torch_version": torch.__version__}
                _save_checkpoint(out_dir, model, cfg, rank_table, kept, KEPT_CHECKPOINT.format(step=step))
            if cfg.save_steps and step % cfg.save_steps == 0 and step < cfg.steps:
                _save_state(out_dir, step, micro_batches, model, optimizer, collator, rows, cfg, dist)
                if log is not None:
                    log.sync()
    finally:
        if log is not None:
            log.close()
        if board is not None:
            board.close()

    switch = collator.switched_at_step if strategy in masking.PLATEAU_CURRICULA else None
    perplexities = [r["val_perplexity"] for r in rows if r["val_perplexity"] == r["val_perplexity"]]
    final_ppl = perplexities[-1] if perplexities else None
    finished = step >= cfg.steps
    checkpoint = out_dir / "checkpoint"
    if dist.main:
        _write_metrics(metrics_path, rows)
        if finished:
            summary = {
                "steps": step, "switch_step": switch, "final_val_perplexity": final_ppl, "world_size": dist.world,
                "strategy": strategy, **recorded, "rank_table": str(rank_table) if rank_table else None,
                "corpus": {"directory": paths.display(corpus.directory), **corpus.params},
                "parameters": models.parameter_count(model), "seconds": round(time.perf_counter() - loop_start, 2),
                "resumed_from": resumed_from, "genemask_version": __version__, "torch_version": torch.__version__,
            }
            _save_checkpoint(out_dir, model, cfg, rank_table, summary)
            shutil.rmtree(_resume_root(out_dir), ignore_errors=True)
    dist.barrier()
    return PretrainResult(out_dir, checkpoint, metrics_path, step, switch, final_ppl, time.perf_counter() - started,
                          resumed_from, finished)


def demo_checkpoint() -> Path:
    """The demo run's checkpoint (tiny model, demo genome and ranking, CM-GEMS, a few hundred
    steps), trained into ``.cache/pretrain/demo`` on first use and reused afterwards; concurrent
    callers wait for the one that trains."""
    cfg = PretrainConfig(steps=DEMO_CHECKPOINT_STEPS, out_dir=str(paths.cache_dir() / "pretrain" / "demo"))
    out_dir = Path(cfg.out_dir)
    checkpoint = out_dir / "checkpoint"
    if (checkpoint / "model.safetensors").exists() and _finished(out_dir, cfg) is not None:
        return checkpoint
    _prepare_out_dir(out_dir)
    with _exclusive(out_dir, wait=True):
        _claim_out_dir(out_dir, cfg, write=True)
        if _finished(out_dir, cfg) is None:
            steady_heap()
            threads = torch.get_num_threads()
            torch.set_num_threads(cfg.threads)
            try:
                _run(cfg, out_dir, _Dist(), time.perf_counter(), None, None)
            finally:
                torch.set_num_threads(threads)
    return checkpoint


# ----------------------------------------------------------------------------------------------
# Command line (the torchrun entry point)


#: Options of the command line that are not PretrainConfig fields: they say how a run is watched or
#: how its missing ranking is made, never which run it is (the ranking enters as ``rank_table``).
CLI_OPTIONS = ("paper", "report_to", "pmi_max_n", "pmi_min_count", "dry_run")


def build_parser(prog: str = "python -m genemask.pretrain") -> argparse.ArgumentParser:
    """``--field value`` for every PretrainConfig field, its help from the field's metadata (dicts as
    JSON, booleans as --x / --no-x, ``--fasta`` one or more files), and :data:`CLI_OPTIONS`. Plain
    argparse rather than ``HfArgumentParser``: that one refuses ``fasta``'s ``str | list | None`` and
    JSON dicts."""
    from . import pmi

    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=__doc__.splitlines()[0] + " Prints one progress line per evaluation (GENEMASK_QUIET=1: none), "
        "appends a row per step to OUT_DIR/metrics.csv and writes OUT_DIR/checkpoint, a Hugging Face folder with "
        "a model card (README.md), ready for push_to_hub.",
        epilog=f"From a FASTA to a checkpoint: {prog} --fasta my.fa --strategy cmgems --steps 1000 (the NPMI "
        "ranking of my.fa is made once and cached). Multi-process: torchrun --nproc_per_node N -m "
        "genemask.pretrain ... (gloo on CPU, nccl on GPUs).")
    defaults = PretrainConfig()
    for f in dataclasses.fields(PretrainConfig):
        default, text = getattr(defaults, f.name), f.metadata.get("help", "")
        if isinstance(default, bool):
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=default, help=text)
        elif isinstance(default, dict):
            parser.add_argument(f"--{f.name}", type=json.loads, default=default, metavar="JSON", help=text)
        elif f.name == "fasta":
            parser.add_argument("--fasta", nargs="+", default=None, metavar="FASTA", help=text)
        elif isinstance(default, list):
            parser.add_argument(f"--{f.name}", nargs="*", type=int, default=default, metavar="STEP", help=text)
        elif default is None:
            parser.add_argument(f"--{f.name}", default=None, metavar="PATH", help=text + (
                "; with --fasta: the NPMI ranking of those files, made once (genemask.pmi) and cached under "
                "the cache folder's rankings/" if f.name == "rank_table" else ""))
        else:
            parser.add_argument(f"--{f.name}", type=type(default), default=default, help=text)
    parser.add_argument("--paper", action="store_true",
                        help="start from the papers' budget (PAPER_BUDGET); options given explicitly still win")
    parser.add_argument("--report_to", choices=("none", "tensorboard"), default="none",
                        help="also log every step's scalars to OUT_DIR/tensorboard (needs the tensorboard package)")
    ranking = pmi.PMIConfig()
    parser.add_argument("--pmi_max_n", type=int, default=ranking.max_n,
                        help="longest n-gram counted for the ranking made from --fasta")
    parser.add_argument("--pmi_min_count", type=int, default=ranking.min_count,
                        help="occurrences below which a k-mer's NPMI is undefined, in the ranking made from --fasta")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="check the options and files, say what the run would use and where it would go, run nothing")
    return parser


def needs_ranking(cfg: PretrainConfig) -> bool:
    """Whether ``cfg``'s masking reads a k-mer ranking (every strategy but plain random masking)."""
    strategy, _ = cfg.masking()
    return strategy != "random" or cfg.masking_options.get("rank_lookup") is not None


def _ranking_config(cfg: PretrainConfig, max_n: int, min_count: int):
    from . import pmi

    return pmi.PMIConfig(fasta=cfg.fasta, k=cfg.k, max_n=max_n, min_count=min_count)


def _git_commit() -> str:
    """The checkout's commit (``+dirty`` when its code differs), or why there is none."""
    if not paths.in_checkout():
        return "none (installed package, not a git checkout)"
    from .source import git_state

    state = git_state()
    if state["commit"] is None:
        return "none (not a git clone)"
    return state["commit"] + ("+dirty" if state["dirty"] else "")


def _ranking_source(rank_table: str | None) -> str:
    """A reader's line on where a run's k-mer ranking came from."""
    if not rank_table:
        return "none (random masking reads no ranking)"
    path = Path(rank_table)
    params_file = path.with_name("params.json")
    params = json.loads(params_file.read_text()) if params_file.is_file() else {}
    config = params.get("config", {})
    made = (f"NPMI ranking by genemask.pmi ({config.get('pmi')} PMI, {config.get('normalizer')} normaliser, "
            f"n-grams up to {config.get('max_n')}, min_count {config.get('min_count')})") if config else None
    if params.get("files"):
        sources = ", ".join(f"{f['name']} (sha256 {f['sha256'][:16]})" for f in params["files"])
        return f"{made} of {sources}"
    if made:
        return f"{made} of {', '.join(Path(f).name for f in config.get('fasta', [])) or 'given counts'} ({path.name})"
    from .pmi import file_sha256

    return f"the rank table {path.name} (sha256 {file_sha256(path)[:16]})"


def _calibration_line(calibration: dict) -> str:
    """How a run's ``mlm_probability`` became centre probabilities, for its model card."""
    centres = ", ".join(f"{name} {value:.6g}" for name, value in sorted(calibration["options"].items()))
    return (f"`mlm_probability` {calibration[masking.MLM_PROBABILITY]}, calibrated to {centres} on "
            f"{calibration['chunks']:,} training chunks")


def model_card(checkpoint: str | Path) -> str:
    """The model card (README.md) of a finished run's checkpoint: what made it (strategy, ranking
    source, data, steps, tokens seen, seed), its final metrics, the package version and commit, and
    how to load it; with the Hugging Face metadata header, so ``push_to_hub`` shows it as is."""
    from huggingface_hub import ModelCardData

    checkpoint = Path(checkpoint)
    saved = _read_json(checkpoint / "pretrain.json")
    cfg = saved["config"]
    rows = []
    metrics_path = checkpoint.parent / "metrics.csv"
    if metrics_path.is_file():
        import csv

        with open(metrics_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    tokens = sum(int(r["tokens"]) for r in rows) if rows else None
    final_loss = float(rows[-1]["loss"]) if rows else None
    strategy = saved.get("strategy", cfg["strategy"])
    switch = saved.get("switch_step")
    fasta = cfg.get("fasta")
    data = ", ".join(Path(f).name for f in ([fasta] if isinstance(fasta, str) else fasta)) if fasta else "the demo genome"
    corpus = saved.get("corpus", {})
    world = saved.get("world_size", 1)
    ppl = saved.get("final_val_perplexity")
    lines = [
        ("masking strategy", f"`{cfg['strategy']}`" + (f" (masking options `{json.dumps(saved.get('masking_options', {}), sort_keys=True)}`)")),
        *([("masked fraction asked", _calibration_line(saved["calibration"]))] if saved.get("calibration") else []),
        *([(f"curriculum switch ({' to '.join(masking.PLATEAU_CURRICULA[strategy])} masking)",
             f"step {switch}" if switch is not None else "never within the run")]
          if strategy in masking.PLATEAU_CURRICULA else []),
        ("k-mer ranking", _ranking_source(saved.get("rank_table"))),
        ("pretraining data", f"{data}" + (f" ({corpus['splits']['train']['chunks']:,} training / "
                                          f"{corpus['splits']['valid']['chunks']:,} validation chunks)"
                                          if corpus.get("splits") else "")),
        ("model", f"`{cfg['model']}` size, {saved.get('parameters', 0) / 1e6:.2f} M parameters, k = {cfg['k']}"),
        ("steps", f"{saved['steps']:,} x {cfg['batch_size'] * cfg['grad_accum'] * world} sequences of <= {cfg['max_len']} tokens"
                  f" ({world} process(es)), AdamW lr {cfg['lr']}"),
        ("tokens seen", f"{tokens:,}" if tokens is not None else "not recorded (no metrics.csv beside the checkpoint)"),
        ("seed", str(cfg["seed"])),
        ("final training loss", f"{final_loss:.4f}" if final_loss is not None else "not recorded"),
        ("final validation perplexity", f"{ppl:.4g}" if ppl is not None else "none (no evaluation)"),
        ("genemask", f"{saved.get('genemask_version', __version__)}, commit {_git_commit()}"),
        ("torch", str(saved.get("torch_version"))),
    ]
    header = ModelCardData(library_name="transformers", pipeline_tag="fill-mask",
                           tags=["genemask", "dna", "genomics", "masked-language-modeling", strategy]).to_yaml()
    table = "\n".join(["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in lines)])
    return f"""---
{header}
---

# A {cfg['model']} DNA k-mer BERT pretrained with {strategy} masking

Pretrained by genemask (`genemask pretrain`): a `BertForMaskedLM` over
overlapping {cfg['k']}-mers, masked with the {strategy} strategy of GeneMask (ECAI 2023) / CM-GEMS (ECAI 2024).

{table}

Every parameter of the run is in `pretrain.json`; `rank_table.csv` (when present) is the k-mer ranking it masked with.

## Use

```python
from transformers import AutoModelForMaskedLM, AutoTokenizer
from genemask.tokenizer import kmerize

tokenizer = AutoTokenizer.from_pretrained("{checkpoint.name}")  # this folder, or its hub id after push_to_hub
model = AutoModelForMaskedLM.from_pretrained("{checkpoint.name}")
batch = tokenizer([kmerize("ACGTAGCTAGCTAGCATCGA", k={cfg['k']})], return_tensors="pt")
logits = model(**batch).logits
```

The tokenizer reads space-separated overlapping {cfg['k']}-mers (`kmerize`), not raw DNA.
"""


def write_model_card(checkpoint: str | Path) -> Path:
    """Write :func:`model_card` as the checkpoint's README.md (atomically)."""
    return write_text(Path(checkpoint) / "README.md", model_card(checkpoint))


def main(argv: list[str] | None = None, prog: str = "python -m genemask.pretrain") -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(prog)
    args = vars(parser.parse_args(argv))
    options = {name: args.pop(name) for name in CLI_OPTIONS}
    if args["fasta"] is not None and len(args["fasta"]) == 1:
        args["fasta"] = args["fasta"][0]
    if options["paper"]:
        explicit = {a.dest for a in parser._actions if any(s in argv for s in a.option_strings)}
        args = {**args, **{k: v for k, v in PAPER_BUDGET.items() if k not in explicit}}
    main_rank = int(os.environ.get("RANK", "0")) == 0
    say = print if main_rank and not _quiet() else (lambda *a, **k: None)
    try:
        cfg = PretrainConfig(**args)
        ranking = None
        if cfg.rank_table in (None, "") and cfg.fasta not in (None, "", []) and needs_ranking(cfg):
            ranking = _ranking_config(cfg, options["pmi_max_n"], options["pmi_min_count"])
        if options["dry_run"]:
            return _dry_run(cfg, ranking, options["report_to"])
        if ranking is not None:
            from . import pmi

            cfg = dataclasses.replace(cfg, rank_table=str(pmi.ranking_of_fasta(ranking, log=say)))
        result = run(cfg, verbose=not _quiet(), report_to=options["report_to"])
        card = write_model_card(result.checkpoint) if main_rank and result.finished else None
    except (ValueError, OSError, RuntimeError, genome.FastaError) as err:
        print(f"{prog.removeprefix('python -m ')}: {err}", file=sys.stderr)
        return 2
    if main_rank:
        print(f"checkpoint: {result.checkpoint}" + (f" (model card {card.name})" if card else "")
              + f"\nmetrics: {result.metrics_path}"
              + (f"\n{cfg.strategy} switch at step {result.switch_step}" if result.switch_step is not None else ""))
    return 0


def _dry_run(cfg: PretrainConfig, ranking, report_to: str) -> int:
    """What a run would read and where it would write, checked, without running (``--dry-run``)."""
    from . import pmi

    _tensorboard_writer(report_to)
    fasta = cfg.fasta if cfg.fasta not in (None, "", []) else None
    for path in ([fasta] if isinstance(fasta, (str, os.PathLike)) else fasta or []):
        if not Path(path).is_file():
            raise FileNotFoundError(f"fasta={str(path)!r}: no such FASTA file")
    if ranking is not None:
        key, _ = pmi.ranking_key(ranking)
        cached = (paths.cache_dir() / pmi.RANKING_CACHE / key / "kmer_ranking.csv").is_file()
        source = f"the NPMI ranking of the FASTA ({'cached' if cached else 'made first'}, key {key})"
    elif cfg.rank_table:
        if not Path(cfg.rank_table).is_file():
            raise FileNotFoundError(f"rank_table={cfg.rank_table!r}: no such file")
        source = cfg.rank_table
    else:
        _resolve_inputs(cfg)  # the demo inputs, or the one-line refusal
        source = "the demo ranking" if needs_ranking(cfg) else "none"
    out_dir = Path(cfg.out_dir).expanduser() if cfg.out_dir else default_out_dir(cfg)
    _claim_out_dir(out_dir, cfg, write=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    print(f"dry run: {cfg.model} model, {cfg.strategy} masking, {cfg.steps:,} steps x "
          f"{cfg.batch_size * cfg.grad_accum * world} sequences of <= {cfg.max_len} tokens on {world} process(es)\n"
          f"fasta: {fasta or 'the demo genome'}\nranking: {source}\nout_dir: {out_dir}"
          + (f"\nreport_to: {report_to}" if report_to != "none" else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
