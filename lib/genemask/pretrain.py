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
per save. With the Trainer the collator's curriculum lives outside its checkpoint, accelerate's
loader collates one batch ahead (the curriculum sees steps late), and evaluation's masking
would draw on the training generator. The checkpoint is still a plain ``BertForMaskedLM``.

Output layout under ``out_dir``::

    checkpoint/       final HF checkpoint: model.safetensors, config.json (with ``kmer``),
                      tokenizer files, rank_table.csv (when used), pretrain.json
    metrics.csv       one row per optimizer step: step, loss, lr, masked_fraction,
                      val_perplexity (at evaluations), phase, tokens, seconds
    resume/step-N/    the latest resume state (model, optimizer, per-rank RNG and curriculum),
                      written to a temporary folder and renamed into place; removed at the end
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, genome, masking, models, paths, tokenizer
from .io import write_json, write_with

#: The papers' optimizer and budget (Script-A, ``reference/papers.md`` §1.6): DNABERT size,
#: effective batch 250 (10 per device x 25 accumulation), 10K steps, AdamW 8e-4, warmup 500.
PAPER_BUDGET: dict[str, Any] = dict(
    model="dnabert", steps=10_000, batch_size=10, grad_accum=25, lr=8e-4, warmup=500, switch_threshold=1.0,
    adam_beta1=0.9, adam_beta2=0.98, adam_eps=1e-6, weight_decay=0.01, max_grad_norm=1.0,
    max_len=512, eval_steps=500, save_steps=1000, seed=42,
)
METRIC_COLUMNS = ("step", "loss", "lr", "masked_fraction", "val_perplexity", "phase", "tokens", "seconds", "data_seconds")
DEMO_CHECKPOINT_STEPS = 300


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

    steps: int = 500
    model: str = "tiny"
    strategy: str = "cmgems"
    switch_threshold: float = 50.0  # cmgems: switch once |change of val perplexity| < this (released: 1.0)
    masking_options: dict = field(default_factory=dict)
    rank_table: str | None = None  # None: the demo ranking (01_pmi on the demo genome)
    fasta: str | list | None = None  # None: the demo genome
    k: int = 6
    batch_size: int = 16  # sequences per device and micro-batch
    grad_accum: int = 1
    lr: float = 4e-3  # the tiny demo model; the papers' 8e-4 is in PAPER_BUDGET
    warmup: float = 0.05
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_eps: float = 1e-6
    max_grad_norm: float = 1.0
    eval_steps: int = 25  # 0: no evaluation
    eval_size: int = 256  # validation chunks per evaluation
    save_steps: int = 200  # resume state every this many steps (0: only at the end)
    max_len: int = 128  # tokens per sequence, [CLS] and [SEP] included (the papers: 512)
    join_gaps: bool = False  # corpus: join sequence across N gaps as the released script did
    seed: int = 0
    bf16: bool = False  # bfloat16 autocast (GPU)
    threads: int = 1  # torch CPU threads (0: torch's default). 1 gives the same numbers everywhere and no
    # oversubscription when grid cells share cores (two threads beside a busy core ran 25x slower)
    device: str = "auto"
    out_dir: str | None = None  # None: .cache/notebooks/03_pretrain
    resume: bool = True  # continue from out_dir's latest resume state

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "eval_steps", "eval_size", "save_steps", "max_len", "k", "seed", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name}={value!r} must be an integer")
        for name, low in (("steps", 1), ("batch_size", 1), ("grad_accum", 1), ("eval_size", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= {low}")
        for name in ("eval_steps", "save_steps", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0 (0: never)")
        if self.model not in models.MODEL_SIZES:
            raise ValueError(f"model={self.model!r}: unknown model; choose one of {sorted(models.MODEL_SIZES)}")
        if self.strategy not in masking.STRATEGIES and self.strategy not in masking.MASKING_VARIANTS:
            raise ValueError(f"strategy={self.strategy!r}: unknown; choose a strategy {masking.STRATEGIES} "
                             f"or a variant {tuple(masking.MASKING_VARIANTS)}")
        if not isinstance(self.masking_options, dict):
            raise ValueError(f"masking_options={self.masking_options!r} must be a mapping")
        known = set(masking.DataCollatorForSpanMasking.__dataclass_fields__) - {"tokenizer", "strategy", "rank_table", "seed", "last_stats"}
        unknown = set(self.masking_options) - known - {"mlm_probability"}
        if unknown:
            raise ValueError(f"masking_options: unknown option(s) {sorted(unknown)}; known: mlm_probability, {', '.join(sorted(known))}")
        for name in ("lr", "adam_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0")
        if not (isinstance(self.switch_threshold, (int, float)) and self.switch_threshold >= 0):
            raise ValueError(f"switch_threshold={self.switch_threshold!r} must be a number >= 0")
        if not self.warmup >= 0:
            raise ValueError(f"warmup={self.warmup!r} must be >= 0 (steps, or a fraction of steps below 1)")
        max_positions = models.MODEL_SIZES[self.model].max_position_embeddings
        if not 3 <= self.max_len <= max_positions:
            raise ValueError(f"max_len={self.max_len} must lie in [3, {max_positions}] for model {self.model!r}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device={self.device!r}: use 'auto', 'cpu' or 'cuda[:N]'")
        strategy, options = self.masking()
        if strategy == "cmgems" and self.eval_steps == 0 and options.get("switch_step") is None:
            raise ValueError("strategy 'cmgems' switches on validation perplexity: set eval_steps > 0 (or masking_options switch_step)")

    def masking(self) -> tuple[str, dict]:
        """(strategy, make_collator options): the named variant's options, then ``masking_options``;
        CM-STEP's schedule spans this run (``total_steps = steps``)."""
        if self.strategy in masking.MASKING_VARIANTS:
            options = masking.variant_options(self.strategy)
            strategy = options.pop("strategy")
        else:
            strategy, options = self.strategy, {}
        if strategy == "cmgems":
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
    """01_pmi's ranking on the demo genome, computed once (as notebook 02 does)."""
    from . import pmi

    out = paths.cache_dir() / "notebooks" / "01_pmi"
    if not (out / "kmer_ranking.csv").exists():
        pmi.run(pmi.PMIConfig(fasta=str(genome.ensure_demo_genome())), out)
    return out / "kmer_ranking.csv"


def _resolve_inputs(cfg: PretrainConfig) -> tuple[Any, Path | None]:
    strategy, _ = cfg.masking()
    fasta = cfg.fasta if cfg.fasta not in (None, "", []) else str(genome.ensure_demo_genome())
    rank_table = None
    if cfg.rank_table not in (None, ""):
        rank_table = Path(cfg.rank_table)
        if not rank_table.is_file():
            raise FileNotFoundError(f"rank_table={cfg.rank_table!r}: no such file")
    elif strategy != "random" or cfg.masking_options.get("rank_lookup") is not None:
        if cfg.fasta not in (None, "", []):
            raise ValueError(f"rank_table is required for strategy {cfg.strategy!r} with a non-demo fasta "
                             "(01_pmi's kmer_ranking.csv, or the authors' Data-A CSV)")
        rank_table = _demo_rank_table()
    return fasta, rank_table


def _default_out_dir() -> Path:
    return paths.cache_dir() / "notebooks" / "03_pretrain"


def _prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and prove it writable now, not after an hour of training."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"out_dir={str(out_dir)!r} is not writable ({err.strerror or err})") from None


@contextlib.contextmanager
def _exclusive(out_dir: Path, wait: bool) -> Iterator[None]:
    """An advisory lock on ``out_dir``: two runs never train into the same folder at once."""
    import fcntl

    with open(out_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RuntimeError(f"out_dir={str(out_dir)!r} is in use by another pretraining run") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def pad_batch(chunks: genome.TokenChunks, indices, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] ids [SEP] per chunk (ids truncated to ``max_len - 2``), right-padded to the longest."""
    lengths = np.minimum(chunks.lengths[indices], max_len - 2)
    width = int(lengths.max()) + 2
    ids = np.full((len(indices), width), tokenizer.PAD_ID, dtype=np.int64)
    ids[:, 0] = tokenizer.CLS_ID
    for row, (i, n) in enumerate(zip(indices.tolist(), lengths.tolist())):
        ids[row, 1 : n + 1] = chunks[i][:n]
        ids[row, n + 1] = tokenizer.SEP_ID
    ids_t = torch.from_numpy(ids)
    return ids_t, ids_t.ne(tokenizer.PAD_ID).long()


# ----------------------------------------------------------------------------------------------
# Model pieces


def masked_lm_loss(model, input_ids, attention_mask, labels) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy, number of masked tokens) of a ``BertForMaskedLM``, with the MLM head
    run only at the masked positions (Hugging Face runs the 4**k-way projection at every token,
    then ignores ~85 % of it)."""
    hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    flat_labels = labels.reshape(-1)
    where = (flat_labels != -100).nonzero().squeeze(1)
    logits = model.cls(hidden.reshape(-1, hidden.shape[-1]).index_select(0, where))
    loss = torch.nn.functional.cross_entropy(logits.float(), flat_labels.index_select(0, where), reduction="sum")
    return loss, where.numel()


class MaskedLMLoss(torch.nn.Module):
    """:func:`masked_lm_loss` as a module, so DistributedDataParallel can wrap it."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        return masked_lm_loss(self.model, input_ids, attention_mask, labels)


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
# Resume state


def _b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


def _resume_root(out_dir: Path) -> Path:
    return out_dir / "resume"


def _latest_state(out_dir: Path) -> Path | None:
    """The newest complete resume folder (temporary ``.step-*`` folders are never complete)."""
    root = _resume_root(out_dir)
    states = sorted(p for p in root.glob("step-*") if p.is_dir() and (p / "state.json").exists()) if root.is_dir() else []
    return states[-1] if states else None


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("out_dir", "resume", "device", "threads")}


def _save_state(out_dir: Path, step: int, micro_batches: int, model, optimizer, collator, rows: list[dict],
                cfg: PretrainConfig, dist: _Dist) -> None:
    """Write the resume state of ``step`` into a temporary folder, then rename it into place."""
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
    (tmp / f"rank{dist.rank}.json").write_text(json.dumps(rank_state))
    if dist.main:
        save_model(model, str(tmp / "model.safetensors"))
        opt = optimizer.state_dict()
        tensors = {f"{i}.{name}": value.detach().cpu().contiguous() for i, state in opt["state"].items()
                   for name, value in state.items() if torch.is_tensor(value)}
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "metrics.json").write_text(json.dumps(rows))
        (tmp / "state.json").write_text(json.dumps({
            "step": step, "micro_batches": micro_batches, "world_size": dist.world,
            "param_groups": opt["param_groups"], "config": cfg.to_dict(), "version": __version__}, default=str))
    dist.barrier()
    if dist.main:
        os.rename(tmp, final)
        for old in root.glob("step-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def _load_state(state_dir: Path, model, optimizer, collator, cfg: PretrainConfig, dist: _Dist) -> tuple[int, int, list[dict]]:
    from safetensors.torch import load_file, load_model

    meta = json.loads((state_dir / "state.json").read_text())
    saved = _comparable(meta["config"])
    now = _comparable(json.loads(json.dumps(cfg.to_dict(), default=str)))
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        raise ValueError(f"out_dir holds a run with different parameters ({', '.join(changed)}): use another out_dir, or resume=False to start over")
    if meta["world_size"] != dist.world:
        raise ValueError(f"resume state was written by {meta['world_size']} process(es), this run has {dist.world}")
    load_model(model, str(state_dir / "model.safetensors"), device=str(dist.device))
    tensors = load_file(str(state_dir / "optimizer.safetensors"), device=str(dist.device))
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    rank_state = json.loads((state_dir / f"rank{dist.rank}.json").read_text())
    collator.load_state_dict(rank_state["collator"])
    torch.set_rng_state(_unb64(rank_state["torch_rng"]))
    if rank_state["cuda_rng"] is not None and dist.device.type == "cuda":
        torch.cuda.set_rng_state(_unb64(rank_state["cuda_rng"]), dist.device)
    rows = json.loads((state_dir / "metrics.json").read_text())
    return meta["step"], meta["micro_batches"], rows


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


def _write_metrics(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    # Rounded so a 10K-step log stays small enough for results/ (the exact values are in the resume state).
    frame = frame.round({"loss": 6, "masked_fraction": 5, "val_perplexity": 4, "seconds": 2, "data_seconds": 3})
    frame["lr"] = frame["lr"].map(lambda v: float(f"{v:.6g}"))
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def _save_checkpoint(out_dir: Path, model, cfg: PretrainConfig, rank_table: Path | None, summary: dict) -> Path:
    """The final Hugging Face checkpoint, assembled in a temporary folder and swapped in whole."""
    target = out_dir / "checkpoint"
    tmp = out_dir / ".checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.build_tokenizer(cfg.k, model_max_length=cfg.max_len).save_pretrained(tmp)
        if rank_table is not None:
            shutil.copyfile(rank_table, tmp / "rank_table.csv")
        write_json(tmp / "pretrain.json", {"config": cfg.to_dict(), **summary})
        for file in tmp.iterdir():
            os.chmod(file, 0o644)  # safetensors writes 0600
        old = out_dir / ".checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _finished(out_dir: Path, cfg: PretrainConfig) -> dict | None:
    """The summary of a finished identical run in ``out_dir`` (re-running is then a no-op)."""
    path = out_dir / "checkpoint" / "pretrain.json"
    if not path.exists() or not (out_dir / "metrics.csv").exists():
        return None
    saved = json.loads(path.read_text())
    if _comparable(saved["config"]) != _comparable(json.loads(json.dumps(cfg.to_dict(), default=str))):
        return None
    return saved


# ----------------------------------------------------------------------------------------------
# The run


def run(cfg: PretrainConfig, *, stop_after: int | None = None, verbose: bool = False,
        mask_on_device: bool = False) -> PretrainResult:
    """Pretrain as ``cfg`` says; resume from ``out_dir``'s latest state when there is one.

    ``stop_after`` ends the run after that many optimizer steps without a final checkpoint, as a
    kill would (tests use it for resume). Re-running a finished run returns its result at once.
    ``mask_on_device`` runs the collator's tensor work on the training device (``genemask.gpu``):
    the same masks, since the collator draws its random numbers on the CPU either way.
    """
    started = time.perf_counter()
    out_dir = Path(cfg.out_dir) if cfg.out_dir else _default_out_dir()
    dist, created_group = _init_distributed(cfg)
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        if dist.main:
            _prepare_out_dir(out_dir)
        dist.barrier()
        lock = _exclusive(out_dir, wait=False) if dist.main else contextlib.nullcontext()
        with lock:
            return _run(cfg, out_dir, dist, started, stop_after, verbose, mask_on_device)
    finally:
        torch.set_num_threads(threads)
        if created_group:
            torch.distributed.destroy_process_group()


def _run(cfg: PretrainConfig, out_dir: Path, dist: _Dist, started: float, stop_after: int | None,
         verbose: bool, mask_on_device: bool = False) -> PretrainResult:
    metrics_path = out_dir / "metrics.csv"
    done = _finished(out_dir, cfg) if cfg.resume else None
    if done is not None:
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

    tok = tokenizer.build_tokenizer(cfg.k, model_max_length=cfg.max_len)
    strategy, options = cfg.masking()
    collator = masking.make_collator(strategy, tok, rank_table=str(rank_table) if rank_table else None,
                                     seed=cfg.seed + dist.rank, **options)
    eval_collator = masking.make_collator(strategy, tok, rank_table=collator.rank_table, seed=None, **options)
    torch.manual_seed(cfg.seed + dist.rank)  # dropout; the model's init is seeded by models.masked_lm
    model = models.masked_lm(cfg.model, cfg.k, seed=cfg.seed).to(dist.device)
    model.train()
    optimizer = _optimizer(model, cfg, dist.device)
    loss_module = MaskedLMLoss(model)
    if dist.world > 1:
        ids = [dist.device.index] if dist.device.type == "cuda" else None
        loss_module = torch.nn.parallel.DistributedDataParallel(loss_module, device_ids=ids)

    step, micro_batches, rows, resumed_from = 0, 0, [], None
    state_dir = _latest_state(out_dir) if cfg.resume else None
    if state_dir is not None:
        step, micro_batches, rows = _load_state(state_dir, model, optimizer, collator, cfg, dist)
        resumed_from = step
    elif dist.main and _resume_root(out_dir).exists():
        shutil.rmtree(_resume_root(out_dir))  # resume=False: start over

    batches = _Batches(corpus.train, cfg.batch_size, cfg.max_len, cfg.seed, dist)
    eval_indices = np.sort(np.random.default_rng([cfg.seed, 1]).permutation(len(corpus.valid))[: cfg.eval_size])
    use_bf16 = cfg.bf16 and dist.device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    def sync_context(last: bool):
        return loss_module.no_sync() if dist.world > 1 and not last else contextlib.nullcontext()

    elapsed_before = rows[-1]["seconds"] if rows else 0.0
    data_seconds = rows[-1]["data_seconds"] if rows else 0.0  # batch assembly + masking, for the benchmark
    loop_start = time.perf_counter()
    target = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    while step < target:
        collator.set_step(step)
        lr = learning_rate(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        losses, fractions, tokens, phase = [], [], 0, None
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
            with sync_context(accum == cfg.grad_accum - 1), autocast():
                loss_sum, n = loss_module(masked.to(dist.device), attention.to(dist.device), labels.to(dist.device))
                loss = loss_sum / max(n, 1)
                (loss / cfg.grad_accum).backward()
            losses.append(float(loss.detach()))
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        collator.set_step(step)
        mean_loss, mean_fraction, all_tokens = dist.all_reduce(
            [sum(losses) / len(losses), sum(fractions) / len(fractions), float(tokens)])
        row = {"step": step, "loss": mean_loss / dist.world, "lr": lr, "masked_fraction": mean_fraction / dist.world,
               "val_perplexity": float("nan"), "phase": phase, "tokens": int(all_tokens),
               "seconds": round(elapsed_before + time.perf_counter() - loop_start, 3), "data_seconds": round(data_seconds, 4)}
        if cfg.eval_steps and (step % cfg.eval_steps == 0 or step == cfg.steps):
            row["val_perplexity"] = _evaluate(loss_module, corpus.valid, eval_indices, collator, eval_collator, cfg, dist, autocast)
            collator.observe_validation_perplexity(row["val_perplexity"])
        rows.append(row)
        if verbose and dist.main and (row["val_perplexity"] == row["val_perplexity"] or step == target):
            print(f"step {step}/{cfg.steps} loss {row['loss']:.4f} lr {lr:.2e} masked {row['masked_fraction']:.3f} "
                  f"val_ppl {row['val_perplexity']:.2f} phase {phase}", flush=True)
        if cfg.save_steps and step % cfg.save_steps == 0 and step < cfg.steps:
            _save_state(out_dir, step, micro_batches, model, optimizer, collator, rows, cfg, dist)
            if dist.main:
                _write_metrics(metrics_path, rows)

    switch = collator.switched_at_step if strategy == "cmgems" else None
    perplexities = [r["val_perplexity"] for r in rows if r["val_perplexity"] == r["val_perplexity"]]
    final_ppl = perplexities[-1] if perplexities else None
    finished = step >= cfg.steps
    checkpoint = out_dir / "checkpoint"
    if dist.main:
        _write_metrics(metrics_path, rows)
        if finished:
            summary = {
                "steps": step, "switch_step": switch, "final_val_perplexity": final_ppl, "world_size": dist.world,
                "strategy": strategy, "masking_options": options, "rank_table": str(rank_table) if rank_table else None,
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
        if _finished(out_dir, cfg) is None:
            threads = torch.get_num_threads()
            torch.set_num_threads(cfg.threads)
            try:
                _run(cfg, out_dir, _Dist(), time.perf_counter(), None, False)
            finally:
                torch.set_num_threads(threads)
    return checkpoint


# ----------------------------------------------------------------------------------------------
# Command line (the torchrun entry point)


def build_parser() -> argparse.ArgumentParser:
    """``--field value`` for every PretrainConfig field (dicts as JSON, booleans as --x / --no-x)."""
    parser = argparse.ArgumentParser(prog="python -m genemask.pretrain", description=__doc__.splitlines()[0])
    defaults = PretrainConfig()
    for f in dataclasses.fields(PretrainConfig):
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, dict):
            parser.add_argument(f"--{f.name}", type=json.loads, default=default, help="JSON object")
        elif f.name == "fasta":
            parser.add_argument("--fasta", nargs="+", default=None, help="FASTA file(s) (default: the demo genome)")
        elif default is None:
            parser.add_argument(f"--{f.name}", default=None)
        else:
            parser.add_argument(f"--{f.name}", type=type(default), default=default)
    parser.add_argument("--paper", action="store_true", help="start from the papers' budget (PAPER_BUDGET)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    paper = args.pop("paper")
    if args["fasta"] is not None and len(args["fasta"]) == 1:
        args["fasta"] = args["fasta"][0]
    if paper:
        explicit = {a.dest for a in parser._actions if any(s in (argv or sys.argv[1:]) for s in a.option_strings)}
        args = {**args, **{k: v for k, v in PAPER_BUDGET.items() if k not in explicit}}
    try:
        cfg = PretrainConfig(**args)
        result = run(cfg, verbose=True)
    except (ValueError, FileNotFoundError, PermissionError, RuntimeError, genome.FastaError) as err:
        print(f"genemask.pretrain: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {result.checkpoint}\nmetrics: {result.metrics_path}"
              + (f"\ncmgems switch at step {result.switch_step}" if result.switch_step is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
