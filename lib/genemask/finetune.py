"""Sequence-classification fine-tuning from a checkpoint, with the papers' two protocols and metrics.

Few-shot (GeneMask, DESIGN §3.4): two hyperparameter regimes by shots, 10 % warmup, dropout 0.1,
weight decay 0.01, no dev set, the test set scored once after the last epoch. GUE (CM-GEMS runs
DNABERT-2's script, papers.md §2.4): per-task budgets, evaluation on dev every ``eval_steps``, the
best checkpoint by dev loss, then test.

A lean loop rather than ``transformers.Trainer``: at tiny/logo size on a CPU the Trainer's per-step
overhead and its checkpoint files (needed for best-by-dev-loss) cost more than the model, and a
plain loop with one seeded generator gives the same metrics for the same seed. The schedule,
AdamW grouping (no decay on biases and LayerNorm) and gradient clipping follow the Trainer's.

A checkpoint is a Hugging Face folder from ``genemask.pretrain`` (safetensors, a ``BertConfig`` with
``kmer``, the tokenizer), or ``random:<size>`` (``random:tiny``, ``random:logo``, ``random:dnabert``)
for the no-pretraining baseline, a randomly initialized ``models.sequence_classifier``.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import models, tokenizer
from .genome import check_integer, require_regular_file
from .identity import RunIdentity, legacy_params
from .integrity import WEIGHT_FILES, verify_checksums

RANDOM_PREFIX = "random:"
METRICS = ("accuracy", "f1", "mcc", "auc")


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run's budget. ``max_steps`` overrides ``epochs`` when set (HF semantics)."""

    learning_rate: float
    batch_size: int
    epochs: float = 1.0
    max_steps: int | None = None
    warmup_ratio: float = 0.0  # share of the steps (DNABERT's warmup_percent)
    warmup_steps: int = 0  # absolute (DNABERT-2's); the larger of the two applies
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    hidden_dropout: float | None = None  # overrides the checkpoint's hidden dropout when set
    max_length: int = 512  # tokens, [CLS]/[SEP] included; longer sequences are cut at the right
    eval_steps: int | None = None  # dev evaluation interval (with a dev set); best by dev loss
    eval_batch_size: int = 128
    seed: int = 0
    #: torch threads during the run. One by default: at tiny/logo size a second thread gains little,
    #: grid cells run side by side, and an oversubscribed CPU makes multithreaded torch 10-30x slower.
    threads: int = 1
    device: str = "auto"  # auto: the first CUDA device when there is one, else the CPU

    def __post_init__(self) -> None:
        """Refuse a budget that would crash mid-run or train on nothing, naming the parameter."""
        _check_number("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_integer("batch_size", self.batch_size)
        _check_number("epochs", self.epochs, low=0.0, low_open=True)
        check_integer("max_steps", self.max_steps, optional=True)
        _check_number("warmup_ratio", self.warmup_ratio, low=0.0, high=1.0)
        check_integer("warmup_steps", self.warmup_steps, minimum=0)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_number("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        _check_number("hidden_dropout", self.hidden_dropout, low=0.0, high=1.0, high_open=True, optional=True)
        check_integer("max_length", self.max_length, minimum=MIN_MAX_LENGTH,
                       why=" ([CLS], at least one k-mer, [SEP])")
        check_integer("eval_steps", self.eval_steps, optional=True)
        check_integer("eval_batch_size", self.eval_batch_size)
        check_integer("seed", self.seed, minimum=0)
        check_integer("threads", self.threads)
        _device(self.device)


#: Fewest tokens a classifier input can have and still hold sequence: [CLS], one k-mer, [SEP].
MIN_MAX_LENGTH = 3


def _check_number(name: str, value, low: float | None = None, high: float | None = None, low_open: bool = False,
                  high_open: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        span = f"in {lo}, {hi}" if low is not None and high is not None else (f"> {low:g}" if low_open else f">= {low:g}")
        raise ValueError(f"{name}={value!r}: expected a finite number {span}" + (" or None" if optional else ""))


def _device(device: str):
    """``auto`` (the first CUDA device, else the CPU) or a torch device string, checked."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r}: expected auto, cpu, cuda or cuda:<n>") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: no CUDA device on this machine (use auto or cpu)")
    return resolved


#: The two few-shot regimes of GeneMask's Script-B (papers.md §1.7): k <= 100 and k >= 500.
FEWSHOT_SMALL = {"batch_size": 5, "learning_rate": 1e-4, "epochs": 20}
FEWSHOT_LARGE = {"batch_size": 15, "learning_rate": 5e-5, "epochs": 5}


def fewshot_config(shots: int, seed: int, small: dict | None = None, large: dict | None = None,
                   max_length: int = 512) -> FinetuneConfig:
    """The few-shot regime for ``shots`` per class: ``small`` up to 100 shots, ``large`` above."""
    regime = dict(FEWSHOT_SMALL if shots <= 100 else FEWSHOT_LARGE)
    regime.update((small if shots <= 100 else large) or {})
    unknown = set(regime) - {"batch_size", "learning_rate", "epochs", "max_steps"}
    if unknown:
        raise ValueError(f"few-shot regime: unknown key(s) {sorted(unknown)}; allowed batch_size, learning_rate, epochs, max_steps")
    return FinetuneConfig(warmup_ratio=0.1, weight_decay=0.01, hidden_dropout=0.1, max_length=max_length,
                          seed=seed, **regime)


def gue_config(task, seed: int, epochs: float | None = None, max_steps: int | None = None,
               batch_size: int | None = None, max_length: int | None = None) -> FinetuneConfig:
    """DNABERT-2's per-task budget for a :class:`genemask.tasks.GueTask`, with optional overrides.

    An ``epochs`` override also drops the task's own ``max_steps`` (mouse: 1000) unless given.
    A ``max_steps`` override caps warmup at a tenth of it (the task's 30-50 warmup steps would
    otherwise swallow a reduced budget); ``max_length`` caps the task's sequence length.
    """
    check_integer("max_steps", max_steps, optional=True)
    if max_length is not None:  # checked here too: min() below would hide a bad cap behind the task's
        check_integer("max_length", max_length, minimum=MIN_MAX_LENGTH, why=" ([CLS], at least one k-mer, [SEP])")
    task_max_steps = task.max_steps if epochs is None else None
    warmup = task.warmup_steps if max_steps is None else min(task.warmup_steps, max(1, max_steps // 10))
    return FinetuneConfig(learning_rate=task.learning_rate, batch_size=task.batch_size if batch_size is None else batch_size,
                          epochs=epochs if epochs is not None else task.epochs,
                          max_steps=max_steps if max_steps is not None else task_max_steps,
                          warmup_steps=warmup, weight_decay=0.01,
                          max_length=min(task.max_length, max_length) if max_length is not None else task.max_length,
                          eval_steps=task.eval_steps, seed=seed)


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    """A checkpoint's JSON file as a dict; a damaged one fails naming the file."""
    require_regular_file(path, "checkpoint JSON file")
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _checkpoint_k(folder: Path) -> int:
    """The tokenizer k of a checkpoint folder: config ``kmer`` checked against the saved tokenizer."""
    config_file = folder / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"checkpoint={str(folder)!r}: no config.json (expected a Hugging Face checkpoint folder "
                                f"or {RANDOM_PREFIX}<size>)")
    config = _read_json(config_file)
    k = config.get("kmer")
    vocab_size = config.get("vocab_size")
    if k is None:
        matches = [c for c in tokenizer.SUPPORTED_K if tokenizer.vocab_size(c) == vocab_size]
        if not matches:
            raise ValueError(f"{config_file}: no 'kmer' and vocab_size {vocab_size} fits no k-mer vocabulary")
        k = matches[0]
    if vocab_size != tokenizer.vocab_size(k):
        raise ValueError(f"{config_file}: kmer={k} needs vocab_size {tokenizer.vocab_size(k)}, config has {vocab_size}")
    tok_config = folder / "tokenizer_config.json"
    if tok_config.exists():
        tok_k = _read_json(tok_config).get("kmer")
        if tok_k is not None and int(tok_k) != int(k):
            raise ValueError(f"checkpoint {folder}: model was trained with k={k} but its tokenizer is k={tok_k}")
    return int(k)


def run_name(config: dict) -> str | None:
    """A pretraining run's display label from its config (``pretrain.json`` or a ``cells.csv`` row),
    e.g. ``genemask[Data-A]@1000:logo``; None without a strategy. Tables group on the identity's
    columns (:mod:`genemask.identity`), never on this label."""
    try:
        return RunIdentity.from_config(config).label()
    except ValueError:
        return None


def checkpoint_info(checkpoint: str | Path) -> dict:
    """What a checkpoint is: ``kind`` (random/pretrained), ``k``, ``size`` or ``path``, and a ``name``
    for result tables (``pretrain.json``'s strategy and steps when present, else the folder name)."""
    if not isinstance(checkpoint, (str, os.PathLike)) or not str(checkpoint).strip():
        raise ValueError(f"checkpoint={checkpoint!r}: expected a Hugging Face checkpoint folder or {RANDOM_PREFIX}<size>")
    text = str(checkpoint)
    if text.startswith(RANDOM_PREFIX):
        size = text[len(RANDOM_PREFIX):]
        if size not in models.MODEL_SIZES:
            raise ValueError(f"checkpoint={text!r}: unknown model size {size!r}; "
                             f"use {', '.join(RANDOM_PREFIX + s for s in models.MODEL_SIZES)} or a checkpoint folder")
        identity = RunIdentity.untrained(size)
        return {"kind": "random", "size": size, "k": 6, "name": identity.label(), "identity": identity}
    folder = Path(checkpoint).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint={text!r}: no such folder (expected a Hugging Face checkpoint folder "
                                f"or {RANDOM_PREFIX}<size>)")
    info = {"kind": "pretrained", "path": str(folder.resolve()), "k": _checkpoint_k(folder), "name": folder.name,
            "identity": None}
    meta = folder / "pretrain.json"
    if meta.exists():
        data = _read_json(meta)
        # The run's config names the variant (genemask-position-v1); the summary only its base strategy.
        flat = {**data, **data["config"]} if isinstance(data.get("config"), dict) else data
        if "calibration" not in data:  # made before issue 22's rename: its mlm_probability was a centre probability
            flat = legacy_params("pretrain", flat)
        try:
            info["identity"] = RunIdentity.from_config(flat)
            info["name"] = info["identity"].label()
        except ValueError:
            pass
    elif folder.name in ("checkpoint", "final", "model") and folder.parent.name:
        info["name"] = f"{folder.parent.name}/{folder.name}"
    return info


def load_classifier(checkpoint: str | Path, num_labels: int, seed: int = 0, k: int | None = None,
                    hidden_dropout: float | None = None):
    """A sequence classifier from a checkpoint (new head, seeded) or ``random:<size>``; returns (model, k).

    ``k``, when given, must match the checkpoint's tokenizer k. The checkpoint loads only if every
    encoder weight is in it with the model's shape: the new classification head (and BERT's
    pooler, which masked-LM pretraining never trains or saves) are the only weights left to their
    seeded initialisation. Anything else — renamed keys, a missing or resized tensor, an unreadable
    weights file — fails naming the checkpoint and the weights, rather than handing back a
    randomly initialised model under the pretrained name.
    """
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    check_integer("num_labels", num_labels, minimum=2, why=" (classes)")
    check_integer("seed", seed, minimum=0)
    _check_number("hidden_dropout", hidden_dropout, low=0.0, high=1.0, high_open=True, optional=True)
    info = checkpoint_info(checkpoint)
    if k is not None and k != info["k"]:
        raise ValueError(f"checkpoint={str(checkpoint)!r} uses {info['k']}-mers, but k={k} was asked for")
    overrides = {} if hidden_dropout is None else {"hidden_dropout_prob": hidden_dropout}
    if info["kind"] == "random":
        return models.sequence_classifier(info["size"], num_labels, k=info["k"], seed=seed, **overrides), info["k"]
    verify_checksums(info["path"], WEIGHT_FILES)  # bit rot inside a tensor would load without a word
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the load report lists the dropped MLM head and the new classifier
    hf_logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                info["path"], num_labels=num_labels, output_loading_info=True, ignore_mismatched_sizes=True, **overrides)
    except Exception as err:  # safetensors, torch and OS errors alike: say which checkpoint and file
        detail = " ".join(str(err).split())[:300]
        weights = next((f.name for f in map(Path(info["path"]).joinpath, WEIGHT_FILES) if f.exists()), "its weights")
        raise ValueError(f"checkpoint={str(checkpoint)!r}: cannot load {weights} ({type(err).__name__}: {detail})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    _check_loaded_weights(checkpoint, model, loading)
    return model, info["k"]


#: Weights of a sequence classifier that a masked-LM checkpoint does not hold: the new head, and the
#: pooler (``BertForMaskedLM`` has none). Every other weight must come from the checkpoint.
NEW_WEIGHT_PREFIXES = ("classifier.", "bert.pooler.")


def _check_loaded_weights(checkpoint, model, loading: dict) -> None:
    """Refuse a load that left encoder weights at their random initialisation (missing from the
    checkpoint, under another name, or of another shape)."""
    missing = [key for key in loading.get("missing_keys", ()) if not key.startswith(NEW_WEIGHT_PREFIXES)]
    mismatched = [entry[0] if isinstance(entry, (tuple, list)) else str(entry) for entry in loading.get("mismatched_keys", ())]
    if not missing and not mismatched:
        return
    n_encoder = sum(1 for key in model.state_dict() if not key.startswith(NEW_WEIGHT_PREFIXES))
    problems = []
    if missing:
        problems.append(f"{len(missing)} of its {n_encoder} encoder weights are missing (e.g. {', '.join(sorted(missing)[:3])})")
    if mismatched:
        problems.append(f"{len(mismatched)} have another shape (e.g. {', '.join(mismatched[:3])})")
    unexpected = [key for key in loading.get("unexpected_keys", ()) if not key.startswith("cls.")]  # cls.: the MLM head
    found = f"; the file holds other keys such as {', '.join(unexpected[:2])}" if unexpected else ""
    raise ValueError(f"checkpoint={str(checkpoint)!r}: not this model's weights: {' and '.join(problems)}{found}")


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------

def classification_metrics(labels, probs) -> dict[str, float]:
    """Accuracy, macro-F1, MCC and ROC AUC (binary: positive-class score; multiclass: one-vs-one macro,
    as DNABERT's ``glue_compute_metrics``), from scikit-learn. AUC is NaN when the test has one class.
    ``predicted_classes`` counts the distinct classes predicted: 1 is a degenerate run (constant
    predictions, MCC 0), which the run tables flag rather than average away silently."""
    from sklearn import metrics

    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    preds = probs.argmax(axis=1)
    out = {"accuracy": metrics.accuracy_score(labels, preds),
           "f1": metrics.f1_score(labels, preds, average="macro", zero_division=0),
           "mcc": metrics.matthews_corrcoef(labels, preds), "predicted_classes": len(np.unique(preds))}
    present = np.unique(labels)
    if len(present) < 2:
        out["auc"] = float("nan")
    elif probs.shape[1] == 2:
        out["auc"] = metrics.roc_auc_score(labels, probs[:, 1])
    else:
        probs = probs / probs.sum(axis=1, keepdims=True)
        out["auc"] = metrics.roc_auc_score(labels, probs, multi_class="ovo", average="macro",
                                           labels=np.arange(probs.shape[1])) if len(present) == probs.shape[1] else float("nan")
    return {name: float(value) for name, value in out.items()}


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------

@dataclass
class Encoded:
    """Token ids padded to the longest sequence, with lengths (batches are trimmed to their own longest)."""

    ids: "object"  # torch.LongTensor [n, L]
    lengths: "object"  # torch.LongTensor [n]
    labels: "object"  # torch.LongTensor [n]

    def batch(self, index):
        width = int(self.lengths[index].max())
        ids = self.ids[index, :width]
        return ids, (ids != tokenizer.PAD_ID).long(), self.labels[index]


def encode(frame: pd.DataFrame, k: int, max_length: int, n_classes: int | None = None, name: str = "data") -> Encoded:
    """Tokenize a (sequence, label) frame once, vectorised, with [CLS]/[SEP] and right truncation."""
    import torch

    check_integer("max_length", max_length, minimum=MIN_MAX_LENGTH, why=" ([CLS], at least one k-mer, [SEP])")

    labels = frame["label"].to_numpy()
    if n_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        bad = int(labels[(labels < 0) | (labels >= n_classes)][0])
        raise ValueError(f"{name}: label {bad} out of range 0..{n_classes - 1}")
    rows = tokenizer.encode_batch(list(frame["sequence"]), k, max_length=max_length)
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    ids = np.full((len(rows), int(lengths.max()) if len(rows) else 0), tokenizer.PAD_ID, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return Encoded(torch.from_numpy(ids), torch.from_numpy(lengths), torch.tensor(np.array(labels), dtype=torch.long))


def _check_positions(model, data: Encoded | None, max_length: int, checkpoint) -> None:
    """Inputs longer than the model's position table would fail inside BERT with a shape error."""
    positions = model.config.max_position_embeddings
    if data is not None and data.ids.shape[1] > positions:
        raise ValueError(f"max_length={max_length}: inputs reach {data.ids.shape[1]} tokens, but checkpoint="
                         f"{str(checkpoint)!r} has {positions} positions; use max_length <= {positions}")


@dataclass
class FinetuneResult:
    """Test metrics of the selected model, plus what the run did (steps, best step, dev curve, time)."""

    metrics: dict[str, float]
    steps: int
    best_step: int | None
    seconds: float
    dev_curve: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def predict(model, data: Encoded, batch_size: int = 128):
    """(class probabilities, mean cross-entropy) of a model over encoded data."""
    import torch

    check_integer("batch_size", batch_size)

    model.eval()
    device = next(model.parameters()).device
    probs, loss, n = [], 0.0, len(data.labels)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            index = torch.arange(start, min(start + batch_size, n))
            ids, attention, labels = (t.to(device) for t in data.batch(index))
            logits = model(input_ids=ids, attention_mask=attention).logits.float()
            loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
            probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
    return np.concatenate(probs), loss / max(n, 1)


def finetune(checkpoint: str | Path, train: pd.DataFrame, test: pd.DataFrame, config: FinetuneConfig,
             n_classes: int, dev: pd.DataFrame | None = None, k: int | None = None) -> FinetuneResult:
    """Fine-tune a classifier from ``checkpoint`` on ``train`` and score ``test`` once.

    With ``dev`` and ``config.eval_steps``: evaluate dev loss every ``eval_steps`` steps and at the
    end, and score test with the weights of the lowest dev loss (DNABERT-2's load_best_model_at_end).
    Without: test is scored after the last step (GeneMask's few-shot protocol).
    Same checkpoint, data, config and seed → same metrics on the same CPU.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    start = time.perf_counter()
    labels = train["label"].to_numpy()
    if len(labels) == 0:
        raise ValueError("train: no examples")
    model, k = load_classifier(checkpoint, n_classes, seed=config.seed, k=k, hidden_dropout=config.hidden_dropout)
    device = _device(config.device)
    model.to(device)
    train_data = encode(train, k, config.max_length, n_classes, "train")
    test_data = encode(test, k, config.max_length, n_classes, "test")
    if dev is not None and not len(dev) and config.eval_steps:
        raise ValueError("dev: no rows, so the best-by-dev-loss selection (eval_steps) cannot run; "
                         "give dev rows, or dev=None to score the last step")
    dev_data = encode(dev, k, config.max_length, n_classes, "dev") if dev is not None and len(dev) else None
    for data in (train_data, test_data, dev_data):
        _check_positions(model, data, config.max_length, checkpoint)

    n = len(train_data.labels)
    per_epoch = math.ceil(n / config.batch_size)
    total = config.max_steps if config.max_steps is not None else math.ceil(config.epochs * per_epoch)
    if total < 1:
        raise ValueError(f"budget gives {total} training steps (epochs={config.epochs}, max_steps={config.max_steps})")
    warmup = max(config.warmup_steps, int(config.warmup_ratio * total))
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for name, p in model.named_parameters() if not any(nd in name for nd in no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for name, p in model.named_parameters() if any(nd in name for nd in no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, eps=1e-8)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    generator = torch.Generator().manual_seed(config.seed)

    curve: list[dict] = []
    best_loss, best_state, best_step = math.inf, None, None

    def evaluate_dev(step: int) -> None:
        nonlocal best_loss, best_state, best_step
        probs, loss = predict(model, dev_data, config.eval_batch_size)
        curve.append({"step": step, "dev_loss": loss, **classification_metrics(dev_data.labels.numpy(), probs)})
        if loss < best_loss:
            best_loss, best_step = loss, step
            best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}  # same device
        model.train()

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # dropout
            model.train()
            step = 0
            while step < total:
                order = torch.randperm(n, generator=generator)
                for begin in range(0, n, config.batch_size):
                    ids, attention, batch_labels = (t.to(device) for t in train_data.batch(order[begin : begin + config.batch_size]))
                    loss = model(input_ids=ids, attention_mask=attention, labels=batch_labels).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    if dev_data is not None and config.eval_steps and step % config.eval_steps == 0 and step < total:
                        evaluate_dev(step)
                    if step >= total:
                        break
            if dev_data is not None and config.eval_steps:
                evaluate_dev(step)
                model.load_state_dict(best_state)
            probs, _ = predict(model, test_data, config.eval_batch_size)
    finally:
        torch.set_num_threads(threads)
    metrics = classification_metrics(test_data.labels.numpy(), probs)
    return FinetuneResult(metrics, total, best_step, round(time.perf_counter() - start, 3), curve, asdict(config))


def embed(checkpoint: str | Path, sequences: list[str], k: int | None = None, max_length: int = 512,
          batch_size: int = 128, threads: int = 1) -> np.ndarray:
    """Mean-pooled last hidden states (non-pad tokens, [CLS]/[SEP] included) of a frozen encoder:
    one row of features per sequence, for the linear-probe protocol."""
    import torch

    check_integer("batch_size", batch_size)
    check_integer("threads", threads)
    check_integer("max_length", max_length, minimum=MIN_MAX_LENGTH, why=" ([CLS], at least one k-mer, [SEP])")
    model, k = load_classifier(checkpoint, 2, seed=0, k=k)
    encoder = model.base_model.eval()
    data = encode(pd.DataFrame({"sequence": list(sequences), "label": 0}), k, max_length)
    _check_positions(model, data, max_length, checkpoint)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(sequences), batch_size):
                ids, attention, _ = data.batch(torch.arange(start, min(start + batch_size, len(sequences))))
                hidden = encoder(input_ids=ids, attention_mask=attention).last_hidden_state
                weights = attention.unsqueeze(-1).to(hidden.dtype)
                out.append(((hidden * weights).sum(1) / weights.sum(1)).numpy())
    finally:
        torch.set_num_threads(previous)
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), dtype=np.float32)


def probe(train_features: np.ndarray, train_labels, test_features: np.ndarray, test_labels,
          n_classes: int) -> dict[str, float]:
    """The linear probe: standardized features, L2 logistic regression (scikit-learn, C = 1),
    scored on test with :func:`classification_metrics`. Deterministic for given features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_labels = np.asarray(train_labels)
    if len(np.unique(train_labels)) < 2:
        raise ValueError("probe: the training set has a single class")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    model.fit(train_features, train_labels)
    probs = np.zeros((len(test_features), n_classes))
    probs[:, model.classes_] = model.predict_proba(test_features)
    return classification_metrics(test_labels, probs)


class _FeatureCache:
    """Each distinct sequence embedded once per checkpoint, however many splits use it."""

    def __init__(self, checkpoint, k: int, max_length: int):
        self.checkpoint, self.k, self.max_length = checkpoint, k, max_length
        self.rows: dict[str, np.ndarray] = {}

    def add(self, sequences) -> None:
        new = list(dict.fromkeys(s for s in sequences if s not in self.rows))
        if new:
            for sequence, row in zip(new, embed(self.checkpoint, new, self.k, self.max_length)):
                self.rows[sequence] = row

    def __call__(self, sequences) -> np.ndarray:
        return np.stack([self.rows[s] for s in sequences])

    def probe_split(self, train: pd.DataFrame, test: pd.DataFrame, n_classes: int) -> FinetuneResult:
        """One probe run: embed what is new, fit on ``train``, score ``test`` (seconds include embedding)."""
        start = time.perf_counter()
        self.add([*train["sequence"], *test["sequence"]])
        metrics = probe(self(train["sequence"]), train["label"], self(test["sequence"]), test["label"], n_classes)
        return FinetuneResult(metrics, 0, None, round(time.perf_counter() - start, 3))


PROTOCOLS = ("finetune", "probe")
#: What a probe run's row states as its training budget: nothing is fine-tuned.
PROBE_BUDGET = {"batch_size": 0, "learning_rate": 0.0, "epochs": 0.0, "max_steps": 0}


def _run_budget(config: FinetuneConfig, protocol: str) -> dict:
    """The budget a run's row reports: the config's, or zeros for the probe (which trains no model)."""
    budget = {key: getattr(config, key) for key in PROBE_BUDGET}
    return {**budget, **PROBE_BUDGET} if protocol == "probe" else budget


def _name_list(parameter: str, names) -> list[str]:
    """One name or a non-empty list of names, as a list; anything else is refused naming ``parameter``."""
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{parameter}={names!r}: expected a dataset name or a non-empty list of names")
    _refuse_repeats(parameter, names)
    return list(names)


def _refuse_repeats(parameter: str, values) -> None:
    """A repeated entry would run twice and count as independent runs (narrower intervals)."""
    repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if repeated is not None:
        raise ValueError(f"{parameter}={list(values)!r}: {repeated!r} is listed more than once")


def _check_optional_types(**parameters: tuple) -> None:
    """``name=(value, type)`` for parameters whose notebook default is None or a mapping: checked on
    entry, so a wrong type is one line naming the parameter, not a failure deep in a run."""
    for name, (value, kind) in parameters.items():
        if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
            raise ValueError(f"{name}={value!r:.60}: expected {'true or false' if kind is bool else kind.__name__}"
                             + ("" if kind is bool else " or None"))


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r}: expected finetune (the papers: the whole model is trained) "
                         "or probe (frozen encoder, logistic regression on mean-pooled features)")


def seed_list(seeds) -> list[int]:
    """``seeds`` as given by a notebook: a count n (seeds 0..n-1) or an explicit list of integers."""
    if isinstance(seeds, bool):
        raise ValueError(f"seeds={seeds!r}: expected a count or a list of integers")
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ValueError(f"seeds={seeds}: expected a positive count or a list of integers")
        return list(range(int(seeds)))
    if isinstance(seeds, (list, tuple)) and seeds and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                                          for s in seeds):
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds={list(seeds)}: repeated seeds")
        return [int(s) for s in seeds]
    raise ValueError(f"seeds={seeds!r}: expected a count or a non-empty list of integers")


def tidy(model_name: str, rows: list[dict], id_columns: tuple[str, ...],
         identity: RunIdentity | None = None) -> pd.DataFrame:
    """Long format ``model, <id columns>, metric, value`` from one dict of metrics per run, followed
    by the pretraining run's identity columns (``pretrain_strategy``, ``pretrain_seed``, ...) when
    the checkpoint records them."""
    frame = pd.DataFrame(rows)
    frame.insert(0, "model", model_name)
    long = frame.melt(id_vars=["model", *id_columns], value_vars=[m for m in METRICS if m in frame],
                      var_name="metric", value_name="value")
    long = long.sort_values(["model", *id_columns, "metric"], kind="stable").reset_index(drop=True)
    return long.assign(**identity.columns()) if identity is not None else long


# --------------------------------------------------------------------------------------------------
# Protocols: the loops the 04_fewshot and 05_gue notebooks run
# --------------------------------------------------------------------------------------------------

@dataclass
class ProtocolResult:
    """Tidy metrics (``model, <ids>, metric, value``), one row per run with its provenance and timing,
    and the (dataset, shots) or tasks that were skipped with the reason."""

    results: pd.DataFrame
    runs: pd.DataFrame
    skipped: pd.DataFrame


def _degenerate(metrics: dict) -> dict:
    """A run table's columns on constant predictions (``classification_metrics``' predicted_classes)."""
    classes = metrics.get("predicted_classes")
    return {"predicted_classes": classes, "constant_predictions": classes == 1 if classes is not None else None}


def run_fewshot(checkpoint: str | Path, datasets: list[str], shots: list[int], seeds, small: dict | None = None,
                large: dict | None = None, max_test: int | None = None, model_name: str | None = None,
                echo=print, max_length: int = 512, protocol: str = "finetune", resample: bool = False,
                validation: int | None = None) -> ProtocolResult:
    """Every (dataset, shots, seed) few-shot run of one checkpoint (GeneMask's protocol, DESIGN §3.4).

    Bad input (unknown dataset, more shots than a class has, a checkpoint of another k) fails before
    any training; shots the shared data lacks (documented gaps) are skipped and listed.
    ``protocol="probe"`` scores a frozen encoder with a logistic-regression probe instead of
    fine-tuning (a CPU can afford it for every checkpoint); ``resample`` draws each seed's training
    set from all released training files (see :func:`genemask.tasks.fewshot_split`).
    ``validation``: score ``validation`` held-out training-pool rows per class instead of the test
    set (a pilot that chooses a budget without test scores; rows say ``scored_on``).
    """
    from . import tasks

    _check_protocol(protocol)
    _check_optional_types(model_name=(model_name, str), small=(small, dict), large=(large, dict),
                          resample=(resample, bool))

    info = checkpoint_info(checkpoint)
    name = model_name or info["name"]
    seeds = seed_list(seeds)
    datasets = _name_list("datasets", datasets)
    shots = [shots] if isinstance(shots, (int, np.integer)) and not isinstance(shots, bool) else shots
    if not isinstance(shots, (list, tuple)) or not shots:
        raise ValueError(f"shots={shots!r}: expected a number of examples per class or a non-empty list of them")
    _refuse_repeats("shots", shots)
    check_integer("max_length", max_length, minimum=MIN_MAX_LENGTH, why=" ([CLS], at least one k-mer, [SEP])")
    plan, skipped = [], []
    for dataset in datasets:
        entry = tasks.get_dataset(dataset)
        if not isinstance(entry, tasks.FewShotDataset):
            raise ValueError(f"datasets: {dataset!r} is a GUE task; few-shot datasets: {', '.join(sorted(tasks.FEWSHOT))}")
        for k in shots:
            try:
                for seed in seeds:  # resolve every split and budget first: bad input fails before training
                    plan.append(tasks.fewshot_split(dataset, k, seed, max_test=max_test, resample=resample,
                                                    validation=validation))
                    fewshot_config(k, seed, small, large, max_length)
            except tasks.DataUnavailable as err:
                skipped.append({"dataset": dataset, "shot": k, "reason": str(err)})
                echo(f"skipped {dataset} {k}-shot: {err}")
    if not plan:
        raise tasks.DataUnavailable(f"no few-shot run is possible: every (dataset, shots) was skipped, e.g. {skipped[0]['reason']}")
    rows, runs = [], []
    features = _FeatureCache(checkpoint, info["k"], max_length) if protocol == "probe" else None
    for split in plan:
        k, seed = split.info["shots"], split.info["seed"]
        config = fewshot_config(k, seed, small, large, max_length)
        scored = split.test if validation is None else split.dev
        if features is not None:
            result = features.probe_split(split.train, scored, split.n_classes)
        else:
            result = finetune(checkpoint, split.train, scored, config, split.n_classes, k=info["k"])
        budget = _run_budget(config, protocol)
        rows.append({"dataset": split.dataset, "shot": k, "seed": seed, **result.metrics})
        runs.append({"model": name, "dataset": split.dataset, "shot": k, "seed": seed, "protocol": protocol, "steps": result.steps,
                     "batch_size": budget["batch_size"], "learning_rate": budget["learning_rate"], "epochs": budget["epochs"],
                     "max_length": config.max_length, "seconds": result.seconds, **_degenerate(result.metrics),
                     "scored_on": "test" if validation is None else "validation",
                     **{key: v for key, v in split.info.items() if key not in ("dataset", "shots", "seed")}})
    results = tidy(name, rows, ("dataset", "shot", "seed"), info["identity"]) if rows else pd.DataFrame(
        columns=["model", "dataset", "shot", "seed", "metric", "value"])
    return ProtocolResult(results, pd.DataFrame(runs), pd.DataFrame(skipped, columns=["dataset", "shot", "reason"]))


def run_gue(checkpoint: str | Path, task_names, seeds, epochs: float | None = None, max_steps: int | None = None,
            batch_size: int | None = None, missing_train: str = "skip", model_name: str | None = None,
            echo=print, max_length: int | None = None, max_eval: int | None = None, protocol: str = "finetune",
            max_train: int | None = None) -> ProtocolResult:
    """Every (task, seed) GUE run of one checkpoint with DNABERT-2's per-task budgets (or overrides):
    best checkpoint by dev loss, then test. ``task_names='available'``: every task the data holds.
    ``max_length`` caps tokens per sequence; ``max_eval`` caps dev and test rows (a fixed subset).
    ``protocol="probe"``: a logistic-regression probe on the frozen encoder, trained on at most
    ``max_train`` training rows (a class-stratified sample drawn with the seed); dev is not used."""
    from . import tasks

    _check_protocol(protocol)
    _check_optional_types(model_name=(model_name, str), missing_train=(missing_train, str))
    if max_train is not None and (not isinstance(max_train, (int, np.integer)) or isinstance(max_train, bool) or max_train < 2):
        raise ValueError(f"max_train={max_train!r}: expected a number of training rows (at least 2)")

    info = checkpoint_info(checkpoint)
    name = model_name or info["name"]
    seeds = seed_list(seeds)
    if task_names == "available":
        task_names = tasks.available_gue_tasks(missing_train)
        if not task_names:
            raise ValueError(f"tasks='available': no GUE task with its splits under {tasks.paths.data_dir()}")
    else:
        task_names = _name_list("task_names", task_names)
    plan, skipped = [], []
    for task in task_names:
        entry = tasks.get_dataset(task)
        if not isinstance(entry, tasks.GueTask):
            raise ValueError(f"tasks: {task!r} is a few-shot dataset; GUE tasks: {', '.join(tasks.GUE)}")
        for seed in seeds:  # every budget first: bad input fails before any split is read or model trained
            gue_config(entry, seed, epochs, max_steps, batch_size, max_length)
        try:
            plan += [(entry, seed, tasks.gue_split(task, missing_train, seed, max_eval)) for seed in seeds]
        except tasks.DataUnavailable as err:
            skipped.append({"task": task, "reason": str(err)})
            echo(f"skipped {task}: {err}")
    if not plan:
        raise tasks.DataUnavailable(f"no GUE run is possible: every task was skipped, e.g. {skipped[0]['reason']}")
    rows, runs = [], []
    caches: dict[str, _FeatureCache] = {}  # per task: its test rows are embedded once for all seeds
    for entry, seed, split in plan:
        config = gue_config(entry, seed, epochs, max_steps, batch_size, max_length)
        budget = _run_budget(config, protocol)
        if protocol == "probe":
            train = split.train
            if max_train is not None and len(train) > max_train:
                from sklearn.model_selection import train_test_split

                train = train_test_split(train, train_size=max_train, stratify=train["label"], random_state=seed)[0]
            features = caches.setdefault(entry.name, _FeatureCache(checkpoint, info["k"], config.max_length))
            result = features.probe_split(train, split.test, split.n_classes)
            split.info["n_train"] = len(train)
        else:
            result = finetune(checkpoint, split.train, split.test, config, split.n_classes, dev=split.dev, k=info["k"])
        rows.append({"task": entry.name, "seed": seed, **result.metrics})
        runs.append({"model": name, "task": entry.name, "seed": seed, "metric_reported": entry.metric,
                     "protocol": protocol, "steps": result.steps, "best_step": result.best_step, "epochs": budget["epochs"],
                     "max_steps": budget["max_steps"], "batch_size": budget["batch_size"], "max_length": config.max_length,
                     "learning_rate": budget["learning_rate"], "seconds": result.seconds, **_degenerate(result.metrics),
                     "best_dev_loss": min((c["dev_loss"] for c in result.dev_curve), default=float("nan")),
                     **{key: v for key, v in split.info.items() if key != "task"}})
    results = tidy(name, rows, ("task", "seed"), info["identity"]) if rows else pd.DataFrame(
        columns=["model", "task", "seed", "metric", "value"])
    return ProtocolResult(results, pd.DataFrame(runs), pd.DataFrame(skipped, columns=["task", "reason"]))
