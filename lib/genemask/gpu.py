"""The papers' budgets on one lent GPU: a queue of work units (``params/gpu.yaml``), each one
command that pretrains, fine-tunes and packs its results within one GPU window.

An H200 is lent now and then, for minutes (one command at most 10, a session's device time 15,
its start-up included), and only the checkout travels there; checkpoints never come back. So a
unit pretrains its runs and fine-tunes their checkpoints in the same command, measures its
throughput in its first seconds and trims what would not fit (saying so in its output and in its
results), and packs tidy result files into one archive for ``$OUT``::

    PYTHONPATH=lib python3 -m genemask.gpu --out DIR            # the next unit results/gpu/ lacks
    PYTHONPATH=lib python3 -m genemask.gpu --unit NAME --out DIR
    PYTHONPATH=lib python3 -m genemask.gpu --smoke --out DIR    # the same command at toy scale, on CPU
    python -m genemask.gpu plan                                 # the queue: estimates, held or not
    python -m genemask.gpu stage-data                           # the data units read, packed: .gpu-data.tar.gz
    python -m genemask.gpu unpack DIR/NAME.tar.gz               # merge an archive into results/gpu/

Results land as ``results/gpu/<stage>/<key>/`` plus ``<stage>/cells.csv`` (key + parameters), the
layout the grid writes for ``results/cpu/`` (both through :mod:`genemask.store`) and the book reads
(:func:`genemask.report.results.stage_results` with ``profile="gpu"``): ``pretrain`` cells hold ``metrics.csv``
(compacted when long, as the grid collects it) and ``summary.json`` as notebook 03 writes them,
``fewshot`` cells the five files of notebook 04; ``units/<unit>.json`` records the command's wall
time, throughput, model FLOP utilisation, the device and versions, and what was trimmed. Keys hash
a cell's portable parameters (not the package version: a GPU window is too scarce to redo a unit
for a version bump; the version and the hash of the library's source the grid records,
``library_hash``, are recorded in every cell instead).

Speed: the masking collator runs on the GPU (``pretrain.run(mask_on_device=True)``), so a step's
host work is assembling the padded batch and launching kernels; fine-tuning jobs, which are small
and launch-bound, run in a pool of worker processes that share the GPU with pretraining, each
checkpoint's jobs submitted as soon as it is written.

Runs with the GPU machine's own software (Python 3.12, torch, transformers, pandas, scikit-learn,
scipy, safetensors; no papermill): this path imports no notebook or plotting package.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import __version__, paths, store
from .io import claim_out_dir, read_yaml, write_json, write_text, write_with
from .source import library_hash
from .store import cell_key  # the one key formula (stage + portable parameters), the grid's too

PARAMS_FILE = paths.PARAMS / "gpu.yaml"
PROFILE = "gpu"
#: The one folder of data a unit reads, inside the checkout (git-ignored).
DATA_FOLDER = ".gpu-data"
#: That folder packed (gzip: DNA text shrinks about 3.5x), the one path named in ``carry``: the
#: checkout's committed results grow with every campaign, and the plain folder no longer fits beside them.
DATA_ARCHIVE = DATA_FOLDER + ".tar.gz"
#: What may travel to the GPU machine: the checkout plus carried paths (device README).
TRAVEL_LIMIT_BYTES = 64 * 1024 * 1024
#: A unit's seconds left for packing and returning its archive.
PACK_MARGIN_SECONDS = 15.0
#: Pretraining steps timed before a unit plans (the first few are left out: cuBLAS warm-up).
PILOT_SKIP_STEPS = 5


# ----------------------------------------------------------------------------------------------
# The queue


class QueueError(ValueError):
    """A gpu.yaml that cannot describe a queue of units; raised before anything runs."""


@dataclass(frozen=True)
class Regime:
    """One few-shot protocol run on every checkpoint of a unit. ``required`` regimes decide
    whether a unit is held; the others run when time is left and are trimmed first."""

    name: str
    params: dict
    required: bool = True


@dataclass
class Unit:
    """One GPU window's work: pretraining runs (PretrainConfig fields, portable strings), the
    baselines fine-tuned without pretraining, the few-shot regimes, timed benchmark sizes."""

    name: str
    pretrain: list[dict]
    fewshot: list[Regime]
    baselines: list[str] = field(default_factory=list)
    bench: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Queue:
    window_seconds: float
    peak_tflops: float
    workers: int
    pilot_steps: dict[str, int]
    bench_steps: int
    planning: dict
    units: list[Unit]
    smoke: dict
    source: Path


_SAFE_UNIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FEWSHOT_KEYS = {"datasets", "shots", "seeds", "small_shots", "large_shots", "max_test", "max_length", "resample"}


def load_queue(path: str | Path = PARAMS_FILE) -> Queue:
    """Read ``params/gpu.yaml`` and check every unit's parameters (PretrainConfig, few-shot) now,
    naming the unit and key, so a GPU window never starts on a typo."""
    from . import pretrain

    path = Path(path)
    raw = read_yaml(path, QueueError)
    if not isinstance(raw, dict) or not isinstance(raw.get("units"), list):
        raise QueueError(f"{path}: expected a mapping with 'units' (a list)")
    known_top = {"profile", "window_seconds", "peak_tflops", "workers", "pilot_steps", "bench_steps", "planning",
                 "units", "smoke", "defaults"}
    unknown = set(raw) - known_top
    if unknown:
        raise QueueError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(known_top))}")
    fields = set(pretrain.PretrainConfig.__dataclass_fields__)
    units, names = [], set()
    for i, entry in enumerate(raw["units"]):
        where = f"{path}: unit {i + 1}"
        if not isinstance(entry, dict) or "name" not in entry:
            raise QueueError(f"{where}: expected a mapping with a 'name'")
        where = f"{path}: unit {entry['name']!r}"
        if not isinstance(entry["name"], str) or not _SAFE_UNIT.fullmatch(entry["name"]):
            raise QueueError(f"{where}: a unit name names files (runs/gpu/<unit>, <unit>.tar.gz): letters, digits, _ . - only")
        extra = set(entry) - {"name", "pretrain", "fewshot", "baselines", "bench", "note"}
        if extra:
            raise QueueError(f"{where}: unknown key(s) {sorted(extra)}; allowed: name, pretrain, fewshot, baselines, bench, note")
        if entry["name"] in names:
            raise QueueError(f"{where}: duplicate unit name")
        names.add(entry["name"])
        runs = []
        for run in entry.get("pretrain") or []:
            bad = set(run) - fields
            if bad:
                raise QueueError(f"{where}: pretrain: unknown PretrainConfig field(s) {sorted(bad)}")
            try:
                pretrain.PretrainConfig(**{**_expanded(run), "fasta": None, "rank_table": None})
            except ValueError as err:
                if "rank_table is required" not in str(err):
                    raise QueueError(f"{where}: pretrain {run.get('strategy')!r}: {err}") from None
            runs.append(dict(run))
        regimes = []
        for j, reg in enumerate(entry.get("fewshot") or []):
            if not isinstance(reg, dict) or "name" not in reg:
                raise QueueError(f"{where}: fewshot {j + 1}: expected a mapping with a 'name'")
            params = {k: v for k, v in reg.items() if k not in ("name", "required")}
            bad = set(params) - _FEWSHOT_KEYS
            if bad:
                raise QueueError(f"{where}: fewshot {reg['name']!r}: unknown key(s) {sorted(bad)}; allowed: {', '.join(sorted(_FEWSHOT_KEYS))}")
            regimes.append(Regime(str(reg["name"]), params, bool(reg.get("required", True))))
        if not runs and not entry.get("baselines"):
            raise QueueError(f"{where}: nothing to do (no pretrain runs and no baselines)")
        units.append(Unit(str(entry["name"]), runs, regimes, list(entry.get("baselines") or []),
                          list(entry.get("bench") or []), str(entry.get("note") or "")))
    return Queue(float(raw.get("window_seconds", 510)), float(raw.get("peak_tflops", 790)), int(raw.get("workers", 12)),
                 dict(raw.get("pilot_steps") or {}), int(raw.get("bench_steps", 12)), dict(raw.get("planning") or {}),
                 units, dict(raw.get("smoke") or {}), path)


def _expanded(value: Any) -> Any:
    """``${GENEMASK_DATA}`` and ``@cpu/...`` made concrete for this machine."""
    if isinstance(value, dict):
        return {k: _expanded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expanded(v) for v in value]
    if isinstance(value, str):
        if value.startswith("@cpu/"):  # a committed input (@cpu/<stage>/<key>/<file>), wherever outputs go
            ref = store.parse_reference("@" + value[len("@cpu/"):])
            if ref is None:
                raise QueueError(f"{value!r}: not a committed cell's file (@cpu/<stage>/<key>/<file>)")
            return str(ref.path("cpu", root=paths.RESULTS))
        return value.replace("${GENEMASK_DATA}", str(paths.data_dir()))
    return value


def _fewshot_params(regime: Regime, checkpoint_ref: str) -> dict:
    return {"checkpoint": checkpoint_ref, "protocol": "finetune", "regime": regime.name, **regime.params}


def unit_cells(unit: Unit) -> dict[str, list[tuple[str, dict, bool]]]:
    """Every cell a unit writes, by stage: (key, portable parameters, required)."""
    pre = [(cell_key("pretrain", run), run, True) for run in unit.pretrain]
    refs = [f"@pretrain/{key}/checkpoint" for key, _, _ in pre] + list(unit.baselines)
    few = []
    for regime in unit.fewshot:
        for ref in refs:
            params = _fewshot_params(regime, ref)
            few.append((cell_key("fewshot", params), params, regime.required))
    return {"pretrain": pre, "fewshot": few}


def held_keys(stage: str) -> set[str]:
    """Keys of a stage that ``results/gpu/`` holds (listed in cells.csv and present as a folder)."""
    return store.held_keys(PROFILE, stage)


def is_held(unit: Unit) -> bool:
    """A unit is held when results/gpu/ has every pretraining cell and every required few-shot cell."""
    cells = unit_cells(unit)
    held = {stage: held_keys(stage) for stage in cells}
    return all(key in held[stage] for stage, rows in cells.items() for key, _, required in rows if required)


def next_unit(queue: Queue) -> Unit | None:
    return next((u for u in queue.units if not is_held(u)), None)


def smoke_unit(unit: Unit, smoke: dict) -> Unit:
    """The same unit at toy scale: tiny model, a few steps, one small FASTA, one dataset, one shot,
    one seed, small test sets; every strategy and regime kept, so each code path runs."""
    pre_over = dict(smoke.get("pretrain") or {})
    few_over = dict(smoke.get("fewshot") or {})
    size = pre_over.get("model", "tiny")
    runs = [{**run, **pre_over} for run in unit.pretrain]
    regimes = [replace(r, params={**r.params, **{k: {**(r.params.get(k) or {}), **v} if isinstance(v, dict) else v
                                                 for k, v in few_over.items()}}) for r in unit.fewshot]
    baselines = [f"random:{size}" if b.startswith("random:") else b for b in unit.baselines]
    return Unit(unit.name, runs, regimes, baselines, [size for _ in unit.bench], unit.note)


# ----------------------------------------------------------------------------------------------
# FLOPs and estimates


def train_flops_per_token(size: str, seq_len: int = 512, masked_fraction: float = 0.15, k: int = 6) -> float:
    """Model FLOPs of one training token (forward + backward = 3 x forward): the matmuls of every
    layer (QKV and output projections 4 d^2, feed-forward 2 d f; 2 FLOPs a multiply-add), the
    attention scores and weighted sum (4 S d for S positions), and the MLM head, which runs only
    at the masked ~15 % of tokens (d^2 transform + d V decoder). Embedding lookups and
    element-wise work are left out, as in MFU conventions."""
    from . import models, tokenizer

    s = models.MODEL_SIZES[size]
    d, f, n = s.hidden_size, s.intermediate_size, s.num_hidden_layers
    per_layer = 2 * (4 * d * d + 2 * d * f) + 4 * seq_len * d
    head = masked_fraction * 2 * (d * d + d * tokenizer.vocab_size(k))
    return 3.0 * (n * per_layer + head)


def mfu(tokens_per_second: float, size: str, seq_len: int, peak_tflops: float) -> float:
    """Model FLOP utilisation: useful FLOPs per second over the chip's bf16 peak."""
    return tokens_per_second * train_flops_per_token(size, seq_len) / (peak_tflops * 1e12)


def fewshot_steps(params: dict) -> int:
    """Optimizer steps of one checkpoint's few-shot regime, from the datasets' class counts (the
    papers' budget: ceil(shots x classes / batch) steps an epoch)."""
    from . import finetune, tasks

    seeds = finetune.seed_list(params.get("seeds", 3))
    total = 0
    for dataset in params["datasets"]:
        n_classes = tasks.get_dataset(dataset).n_classes
        for shots in params["shots"]:
            cfg = finetune.fewshot_config(shots, 0, params.get("small_shots"), params.get("large_shots"))
            per_epoch = math.ceil(shots * n_classes / cfg.batch_size)
            total += (cfg.max_steps or math.ceil(cfg.epochs * per_epoch)) * len(seeds)
    return total


def estimate(unit: Unit, queue: Queue) -> dict:
    """Planned seconds of a unit on the GPU from FLOPs and the planning rates of gpu.yaml (an
    assumed MFU per model size; seconds per fine-tuning step and the workers' speed-up)."""
    plan = queue.planning
    pre = 0.0
    for run in unit.pretrain:
        tokens = run["steps"] * run["batch_size"] * run.get("grad_accum", 1) * run["max_len"]
        pre += tokens * train_flops_per_token(run["model"], run["max_len"]) / (
            plan["mfu"][run["model"]] * queue.peak_tflops * 1e12) + plan["run_overhead_seconds"]
    few = 0.0
    sizes = [run["model"] for run in unit.pretrain] + [b.split(":", 1)[1] for b in unit.baselines]
    for regime in unit.fewshot:
        steps = fewshot_steps(regime.params)
        few += sum(steps * plan["finetune_step_seconds"][size] for size in sizes) / plan["finetune_speedup"]
    bench = len(unit.bench) * plan["bench_seconds"]
    total = plan["startup_seconds"] + pre + few + bench
    return {"pretrain": pre, "fewshot": few, "bench": bench, "startup": plan["startup_seconds"], "total": total}


# ----------------------------------------------------------------------------------------------
# Data for the GPU machine


def needed_files(queue: Queue) -> list[str]:
    """Data files (relative to the data folder) that the queue's units read: the FASTA files and,
    per few-shot dataset, every released training file (seeds resample from their union) and
    the test set or its substitute."""
    from . import tasks

    files: dict[str, None] = {}
    datasets: dict[str, None] = {}
    for unit in queue.units:
        for run in unit.pretrain:
            fasta = run.get("fasta") or []
            for f in [fasta] if isinstance(fasta, str) else fasta:
                if f.startswith("${GENEMASK_DATA}/"):
                    files[f[len("${GENEMASK_DATA}/"):]] = None
        for regime in unit.fewshot:
            datasets.update(dict.fromkeys(regime.params.get("datasets", [])))
    for name in datasets:
        d = tasks.get_dataset(name)
        files.update(dict.fromkeys(d.train_files.values()))
        if d.test_file:
            files[d.test_file] = None
        elif d.test_substitute and d.test_substitute != "other-shot-files":
            files[d.test_substitute] = None
    return list(files)


def _travelling_bytes() -> int:
    """Bytes of the checkout that travel: tracked files and untracked ones git does not ignore."""
    import subprocess

    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=paths.ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sum((paths.ROOT / f).stat().st_size for f in out.split("\0") if f and (paths.ROOT / f).is_file())


def data_archive(folder: Path) -> Path:
    """The packed form of a staged data folder, ``<folder>.tar.gz``: what travels in ``carry``."""
    return folder.with_name(folder.name + ".tar.gz")


def stage_data(queue: Queue, target: Path | None = None, source: Path | None = None, echo=print) -> dict:
    """Copy the data the queue reads from ``$GENEMASK_DATA`` into ``target`` (default
    ``.gpu-data/`` in the checkout, git-ignored), pack it into ``<target>.tar.gz`` (what travels;
    :func:`unpack_data` opens it on the GPU machine) and check that the checkout plus the archive
    stay within what travels (64 MiB)."""
    source = Path(source) if source else paths.data_dir()
    target = Path(target) if target else paths.ROOT / DATA_FOLDER
    files = needed_files(queue)
    missing = [f for f in files if not (source / f).is_file()]
    if missing:
        raise FileNotFoundError(f"GENEMASK_DATA={source}: {len(missing)} file(s) the GPU units read are missing, e.g. {missing[0]}")
    size = 0
    for rel in files:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists() or dest.stat().st_size != (source / rel).stat().st_size:
            shutil.copyfile(source / rel, dest)
        size += dest.stat().st_size
    archive = data_archive(target)
    with tarfile.open(archive, "w:gz") as tar:  # names relative to the folder, in the queue's order
        for rel in files:
            tar.add(target / rel, arcname=rel)
    packed = archive.stat().st_size
    checkout = _travelling_bytes() if target.resolve().is_relative_to(paths.ROOT) else 0
    total = packed + checkout
    echo(f"staged {len(files)} files ({size / 2**20:.1f} MiB) in {target}, packed into {archive.name} "
         f"({packed / 2**20:.1f} MiB); with the checkout ({checkout / 2**20:.1f} MiB) {total / 2**20:.1f} MiB travel "
         f"(limit {TRAVEL_LIMIT_BYTES / 2**20:.0f} MiB; carry [\"{archive.name}\"])")
    if total > TRAVEL_LIMIT_BYTES:
        raise ValueError(f"{total / 2**20:.1f} MiB would travel, over the {TRAVEL_LIMIT_BYTES / 2**20:.0f} MiB limit")
    return {"files": len(files), "data_bytes": size, "archive": archive, "archive_bytes": packed,
            "checkout_bytes": checkout, "total_bytes": total}


def unpack_data(folder: Path) -> bool:
    """On the GPU machine: open ``<folder>.tar.gz`` into ``folder`` when the folder is absent (only
    the archive travels). True when it unpacked. Members that are not plain files or folders inside
    it (absolute paths, ``..``, links) are refused, so the archive cannot write elsewhere."""
    archive = data_archive(folder)
    if folder.exists() or not archive.is_file():
        return False
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:  # checked here too: Pythons before 3.11.4 lack tarfile's filters
                if not (m.isfile() or m.isdir()) or Path(m.name).is_absolute() or ".." in Path(m.name).parts:
                    raise ValueError(f"{archive}: member {m.name!r} is not a plain file inside the folder")
            tar.extractall(partial, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        os.replace(partial, folder)  # whole or not at all: a failed or killed unpack leaves no half folder
    except (tarfile.TarError, OSError) as err:
        raise ValueError(f"{archive}: cannot unpack the staged data ({err})") from err
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return True


# ----------------------------------------------------------------------------------------------
# Provenance


def environment() -> dict:
    import platform

    import torch
    import transformers

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    return {"device": device, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "genemask": __version__,
            "library_hash": library_hash()}  # the grid's hash of the library source: records of both compare


# ----------------------------------------------------------------------------------------------
# Worker processes: fine-tuning jobs


def _quiet() -> None:
    """No progress bars or load reports in a unit's log (it is read from the end)."""
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error"),
                        ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(name, value)
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _worker_init() -> None:
    _quiet()


def _warm_worker(_: int) -> float:
    """Import the fine-tuning stack and open the CUDA context before any job needs it."""
    start = time.perf_counter()
    import torch

    from . import finetune  # noqa: F401

    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")
    return time.perf_counter() - start


def _fewshot_job(job: dict) -> dict:
    """One (checkpoint, dataset, shots, seed) fine-tuning run through ``finetune.run_fewshot``."""
    from . import finetune, tasks

    start = time.perf_counter()
    try:
        run = finetune.run_fewshot(job["checkpoint"], [job["dataset"]], [job["shot"]], [job["seed"]],
                                   job.get("small_shots"), job.get("large_shots"), job.get("max_test"), job["model_name"],
                                   echo=lambda *_: None, max_length=job.get("max_length", 512), protocol="finetune",
                                   resample=job.get("resample", False))
        out = {"results": run.results, "runs": run.runs, "skipped": run.skipped}
    except tasks.DataUnavailable as err:
        import pandas as pd

        out = {"results": None, "runs": None,
               "skipped": pd.DataFrame([{"dataset": job["dataset"], "shot": job["shot"], "reason": str(err)}])}
    out["seconds"] = time.perf_counter() - start
    out["plotting"] = _plotting_modules()
    return out


def _plotting_modules() -> list[str]:
    """Notebook and plotting packages imported in this process: none may be, since the GPU
    machine has no papermill or Jupyter (and plotting has no business in a unit)."""
    return [m for m in ("matplotlib", "seaborn", "papermill", "nbformat", "nbclient", "IPython") if m in sys.modules]


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the pool now, running jobs included (ProcessPoolExecutor has no public way in 3.12)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()


# ----------------------------------------------------------------------------------------------
# Running a unit


@dataclass
class _Cell:
    stage: str
    key: str
    params: dict
    required: bool
    ref: str  # the checkpoint as cells.csv names it: @pretrain/<key>/checkpoint or random:<size>
    checkpoint: str  # the checkpoint on this machine
    model_name: str
    regime: Regime
    jobs: list[Future] = field(default_factory=list)
    done: bool = False


class UnitRun:
    """One unit's command: plan from measured throughput, pretrain, fine-tune concurrently, pack."""

    def __init__(self, unit: Unit, queue: Queue, out: Path, work: Path, smoke: bool, echo=print) -> None:
        self.unit, self.queue, self.out, self.work, self.smoke, self.echo = unit, queue, out, work, smoke, echo
        self.t0 = time.perf_counter()
        self.window = float(queue.smoke.get("window_seconds", 300)) if smoke else queue.window_seconds
        self.deadline = self.t0 + self.window - PACK_MARGIN_SECONDS
        self.staged = work / "stage" / "results"  # laid out as results/ (the store's layout), packed whole
        self.record: dict[str, Any] = {"unit": unit.name, "smoke": smoke, "note": unit.note,
                                       "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                       "window_seconds": self.window, "peak_tflops": queue.peak_tflops,
                                       "pilot": [], "bench": [], "pretrain": [], "fewshot": [], "trimmed": []}
        self.cells = unit_cells(unit)
        self.pending: list[_Cell] = []  # few-shot cells whose jobs are in the pool
        self.worker_modules: set[str] = set()  # notebook/plotting modules seen imported in workers
        self.mask_on_device = False
        self.rows: dict[str, list[dict[str, str]]] = {}  # cells.csv rows of the cells written, by stage

    # -- helpers ------------------------------------------------------------------------------

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def say(self, text: str) -> None:
        self.echo(f"[{time.perf_counter() - self.t0:6.1f}s] {text}")

    def trim(self, what: str, why: str) -> None:
        self.record["trimmed"].append({"what": what, "why": why})
        self.say(f"TRIMMED {what}: {why}")

    def _config(self, run: dict, **overrides):
        from . import pretrain

        return pretrain.PretrainConfig(**{**_expanded(run), **overrides})

    def _time_pretrain(self, run: dict, steps: int, label: str, **overrides) -> dict:
        """A short run of ``steps`` steps: seconds per step and tokens/s after the warm-up steps."""
        from . import pretrain

        cfg = self._config(run, steps=steps, eval_steps=steps, save_steps=0, resume=False,
                           out_dir=str(self.work / "pilot" / label), **overrides)
        result = pretrain.run(cfg, mask_on_device=self.mask_on_device)
        m = result.metrics
        skip = min(PILOT_SKIP_STEPS, max(1, steps // 3))
        span = float(m["seconds"].iloc[-1] - m["seconds"].iloc[skip - 1])
        tokens = float(m["tokens"].iloc[skip:].sum())
        per_step = span / max(1, steps - skip)
        tps = tokens / span if span > 0 else float("nan")
        real_share = tokens / ((steps - skip) * cfg.batch_size * cfg.grad_accum * cfg.max_len)
        row = {"label": label, "model": cfg.model, "strategy": cfg.strategy, "batch": cfg.batch_size * cfg.grad_accum,
               "max_len": cfg.max_len, "bf16": cfg.bf16, "steps_timed": steps - skip, "seconds_per_step": round(per_step, 5),
               "tokens_per_second": round(tps), "real_token_share": round(real_share, 4),
               "mfu": round(mfu(tps, cfg.model, cfg.max_len, self.queue.peak_tflops), 4),
               "mfu_padded": round(mfu(tps / real_share, cfg.model, cfg.max_len, self.queue.peak_tflops), 4),
               "wall_seconds": round(result.seconds, 2)}
        shutil.rmtree(cfg.out_dir, ignore_errors=True)
        self.say(f"timed {label}: {row['seconds_per_step']:.4f} s/step, {row['tokens_per_second']:,} tokens/s, "
                 f"MFU {100 * row['mfu']:.1f} % of {self.queue.peak_tflops:g} TFLOP/s "
                 f"({100 * row['mfu_padded']:.1f} % counting padding)")
        return row

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> Path:
        import multiprocessing

        import torch

        self.record["environment"] = environment()
        self.say(f"unit {self.unit.name}{' (smoke)' if self.smoke else ''} on {self.record['environment']['device']}; "
                 f"window {self.window:.0f} s")
        self.mask_on_device = torch.cuda.is_available() and self._check_device_masking()
        self.record["mask_on_device"] = self.mask_on_device
        workers = int(self.queue.smoke.get("workers", 2)) if self.smoke else self.queue.workers
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init)
        self.record["workers"] = workers
        try:
            warm = [pool.submit(_warm_worker, i) for i in range(workers)]
            per_step = self._pilot()
            for size in self.unit.bench:
                try:
                    self.record["bench"].append(self._bench(size))
                except Exception as err:  # noqa: BLE001 - a failed timing (memory, say) must not cost the unit
                    self.record["bench"].append({"label": f"bench-{size}", "error": repr(err)[:500]})
                    self.say(f"WARNING bench {size} failed: {err!r}"[:600])
            wait(warm)
            runs = self._plan(per_step)
            for ref in self.unit.baselines:
                self._submit_fewshot(pool, ref, ref)
            for run, key in runs:
                if self.left() < per_step.get(run["model"], 0) * run["steps"] * 1.1:
                    self.trim(f"pretrain {key} ({run['strategy']}, seed {run.get('seed', 0)})",
                              f"{self.left():.0f} s left, it needs ~{per_step[run['model']] * run['steps']:.0f} s")
                    continue
                checkpoint = self._pretrain(run, key)
                self._submit_fewshot(pool, f"@pretrain/{key}/checkpoint", str(checkpoint))
            self._collect_fewshot(pool)
        except BaseException:
            _terminate(pool)
            raise
        if any(not cell.done for cell in self.pending):
            _terminate(pool)  # the deadline came: running jobs are cut
        else:
            pool.shutdown(wait=True)
        return self._pack()

    def _check_device_masking(self) -> bool:
        """On a GPU: does every strategy mask a batch on the device exactly as on the CPU? If not,
        the unit masks on the CPU (slower, never wrong) and says so."""
        try:
            self._compare_device_masking()
        except Exception as err:  # noqa: BLE001 - any failure means: mask on the CPU
            self.record["device_masking_problem"] = repr(err)[:500]
            self.say(f"WARNING device masking disabled, masking on the CPU instead: {err!r}"[:600])
            return False
        return True

    def _compare_device_masking(self) -> None:
        import torch

        from . import masking, tokenizer

        tok = tokenizer.build_tokenizer(6)
        ranks = torch.randint(1, 4097, (4101,), generator=torch.Generator().manual_seed(0))
        ids = torch.randint(5, 4101, (64, 512), generator=torch.Generator().manual_seed(1))
        attention = torch.ones_like(ids)
        attention[::3, 300:] = 0
        ids[attention == 0] = tokenizer.PAD_ID
        for variant in ("random", "genemask", "genemask-position-v3", "global"):
            options = masking.variant_options(variant)
            strategy = options.pop("strategy")
            table = ranks if strategy != "random" else None
            cpu = masking.make_collator(strategy, tok, rank_table=table, seed=5, **options).mask_batch(ids, attention)
            gpu = masking.make_collator(strategy, tok, rank_table=table, seed=5, **options).mask_batch(ids.cuda(), attention.cuda())
            if not (torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())):
                raise RuntimeError(f"masking {variant!r} on {torch.cuda.get_device_name(0)} differs from the CPU's")
        self.say("device masking: the GPU masks batches exactly as the CPU does (4 strategies)")

    def _pilot(self) -> dict[str, float]:
        """Seconds per step of every model size the unit pretrains, from a short timed run."""
        per_step: dict[str, float] = {}
        for run in self.unit.pretrain:
            size = run["model"]
            if size in per_step:
                continue
            steps = int(self.queue.smoke.get("pilot_steps", 8)) if self.smoke else int(self.queue.pilot_steps.get(size, 30))
            row = self._time_pretrain(run, steps, f"pilot-{size}")
            self.record["pilot"].append(row)
            per_step[size] = row["seconds_per_step"]
        return per_step

    def _bench(self, size: str) -> dict:
        """A short timed pretraining run at another model size (bf16, the unit's batch), for MFU."""
        base = self.unit.pretrain[0] if self.unit.pretrain else {}
        steps = int(self.queue.smoke.get("pilot_steps", 8)) if self.smoke else self.queue.bench_steps
        return self._time_pretrain({**base, "model": size}, steps, f"bench-{size}")

    def _plan(self, per_step: dict[str, float]) -> list[tuple[dict, str]]:
        """The pretraining runs that fit, in queue order; the rest are trimmed (with their few-shot
        cells), so the next window runs them."""
        plan = self.queue.planning
        runs, needed = [], 0.0
        required_steps = sum(fewshot_steps(r.params) for r in self.unit.fewshot if r.required)
        for key, run, _ in self.cells["pretrain"]:
            fewshot_per_run = required_steps * plan["finetune_step_seconds"].get(run["model"], 0.01) / plan["finetune_speedup"]
            cost = per_step[run["model"]] * run["steps"] * 1.05 + plan["run_overhead_seconds"] * (0.2 if self.smoke else 1)
            if not runs and cost < self.left() <= cost + fewshot_per_run:
                # The first run fits only without its few-shot time: its curve is worth the window;
                # fine-tuning gets what is left and is trimmed (and redone with the run) if cut.
                self.say(f"NOTE pretrain {key} fits only with ~{self.left() - cost:.0f} s left for few-shot")
            elif needed + cost + fewshot_per_run > self.left():
                self.trim(f"pretrain {key} ({run['strategy']}, seed {run.get('seed', 0)})",
                          f"planned {needed + cost:.0f} s of pretraining and ~{fewshot_per_run:.0f} s of few-shot after it "
                          f"exceed the {self.left():.0f} s left (measured {per_step[run['model']]:.4f} s/step)")
                continue
            needed += cost
            runs.append((run, key))
        self.say(f"plan: {len(runs)} of {len(self.unit.pretrain)} pretraining runs (~{needed:.0f} s), "
                 f"{len(self.unit.baselines)} baseline(s), {len(self.unit.fewshot)} few-shot regime(s); {self.left():.0f} s left")
        return runs

    def _pretrain(self, run: dict, key: str) -> Path:
        from . import pretrain
        from .report import pretrain as pretrain_report

        out_dir = self.work / "pretrain" / key
        cfg = self._config(run, out_dir=str(out_dir), resume=False)
        start = time.perf_counter()
        result = pretrain.run(cfg, mask_on_device=self.mask_on_device)
        seconds = time.perf_counter() - start
        metrics = result.metrics
        cell = store.cell_dir(PROFILE, "pretrain", key, root=self.staged)
        write_text(cell / store.METRICS, store.stored_text(store.METRICS, result.metrics_path.read_text(), PROFILE))
        tokens = int(metrics["tokens"].sum())
        train_seconds = float(metrics["seconds"].iloc[-1])
        from . import genome

        corpus = genome.build_corpus(cfg.fasta, genome.CorpusConfig(k=cfg.k, join_gaps=cfg.join_gaps))
        corpus_tokens = int(corpus.params["splits"]["train"]["tokens"])
        tps = tokens / train_seconds if train_seconds > 0 else float("nan")
        summary = pretrain_report.summary(metrics, cfg.strategy)
        summary.update(
            model=cfg.model, checkpoint=f"runs/{PROFILE}/pretrain/{key}/checkpoint (not kept: it stays on the GPU machine)",
            parameters={**cfg.to_dict(), **run, "out_dir": f"runs/{PROFILE}/pretrain/{key}"},
            tokens=tokens, tokens_per_second=round(tps), mfu=round(mfu(tps, cfg.model, cfg.max_len, self.queue.peak_tflops), 4),
            passes_over_corpus=round(tokens / corpus_tokens, 2), corpus_train_tokens=corpus_tokens,
            data="all valid human sequence of the shared data (paths.HUMAN_FASTA, 11.37 Mbp of A/C/G/T)",
            wall_seconds=round(seconds, 2), unit=self.unit.name, **self.record["environment"])
        write_json(cell / store.SUMMARY, summary)
        row = {"key": key, "strategy": cfg.strategy, "seed": cfg.seed, "model": cfg.model, "steps": result.steps,
               "seconds": round(seconds, 2), "tokens": tokens, "tokens_per_second": round(tps),
               "mfu": summary["mfu"], "passes_over_corpus": summary["passes_over_corpus"],
               "final_val_perplexity": result.final_val_perplexity, "switch_step": result.switch_step}
        self.record["pretrain"].append(row)
        self._cells_row("pretrain", key, run)
        self.say(f"pretrained {cfg.strategy} seed {cfg.seed} ({key}): {result.steps} steps in {seconds:.1f} s, "
                 f"{tps:,.0f} tokens/s, MFU {100 * summary['mfu']:.1f} %, {summary['passes_over_corpus']} passes over the "
                 f"corpus, validation perplexity {result.final_val_perplexity}")
        return result.checkpoint

    def _submit_fewshot(self, pool: ProcessPoolExecutor, ref: str, checkpoint: str) -> None:
        """Queue every few-shot job of one checkpoint: required regimes first, then the others
        (the pool runs them in submission order, so optional work is what a deadline cuts)."""
        from . import finetune

        name = finetune.checkpoint_info(checkpoint)["name"]
        for regime in sorted(self.unit.fewshot, key=lambda r: not r.required):
            params = _fewshot_params(regime, ref)
            cell = _Cell("fewshot", cell_key("fewshot", params), params, regime.required, ref, checkpoint, name, regime)
            for dataset in regime.params["datasets"]:
                for shot in sorted(regime.params["shots"], reverse=True):  # longest first
                    for seed in finetune.seed_list(regime.params.get("seeds", 3)):
                        job = {**regime.params, "checkpoint": checkpoint, "dataset": dataset, "shot": shot, "seed": seed,
                               "model_name": name}
                        cell.jobs.append(pool.submit(_fewshot_job, job))
            self.pending.append(cell)

    def _collect_fewshot(self, pool: ProcessPoolExecutor) -> None:
        """Wait for the fine-tuning jobs until the deadline; write each finished cell; trim the rest."""
        pending = self.pending
        jobs = [f for cell in pending for f in cell.jobs]
        start = time.perf_counter()
        while jobs and self.left() > 0:
            wait(jobs, timeout=max(0.1, min(self.left(), 5.0)), return_when=FIRST_COMPLETED)
            jobs = [f for f in jobs if not f.done()]
            for cell in pending:
                if not cell.done and all(f.done() for f in cell.jobs):
                    self._write_fewshot(cell)
        for cell in pending:
            if not cell.done:
                finished = sum(f.done() and not f.cancelled() for f in cell.jobs)
                self.trim(f"fewshot {cell.key} ({cell.model_name}, {cell.regime.name})",
                          f"the window's deadline came with {finished} of {len(cell.jobs)} fine-tuning runs finished")
        self.record["fewshot_wall_seconds"] = round(time.perf_counter() - start, 2)

    def _write_fewshot(self, cell: _Cell) -> None:
        import pandas as pd

        from . import finetune
        from .report import downstream

        outs = []
        for f in cell.jobs:
            try:
                outs.append(f.result())
                self.worker_modules.update(outs[-1].get("plotting", []))
            except Exception as err:  # a failed job fails its cell, not the unit
                cell.done = True
                self.trim(f"fewshot {cell.key} ({cell.model_name}, {cell.regime.name})", f"a fine-tuning run failed: {err!r}"[:400])
                return
        results = pd.concat([o["results"] for o in outs if o["results"] is not None], ignore_index=True)
        runs = pd.concat([o["runs"] for o in outs if o["runs"] is not None], ignore_index=True)
        skipped = pd.concat([o["skipped"] for o in outs], ignore_index=True)
        results = results.sort_values(["model", "dataset", "shot", "seed", "metric"], kind="stable").reset_index(drop=True)
        runs = runs.sort_values(["dataset", "shot", "seed"], kind="stable").reset_index(drop=True)
        summary = downstream.summarize(results, ["model", "dataset", "shot"])
        folder = store.cell_dir(PROFILE, "fewshot", cell.key, root=self.staged)
        for name, frame in {store.FEWSHOT_RESULTS: results, store.FEWSHOT_RUNS: runs,
                            store.FEWSHOT_SUMMARY: summary, store.FEWSHOT_SKIPPED: skipped}.items():
            write_with(folder / name, lambda tmp, frame=frame: frame.to_csv(tmp, index=False))
        info = finetune.checkpoint_info(cell.checkpoint)
        if "path" in info:
            info["path"] = cell.ref
        write_json(folder / store.CHECKPOINT_INFO, {**info, "model": cell.model_name})
        self._cells_row("fewshot", cell.key, cell.params)
        job_seconds = float(sum(o["seconds"] for o in outs))
        self.record["fewshot"].append({"key": cell.key, "checkpoint": cell.ref, "model": cell.model_name,
                                       "regime": cell.regime.name, "runs": len(runs), "job_seconds": round(job_seconds, 1),
                                       "steps": int(runs["steps"].sum()) if len(runs) else 0})
        cell.done = True
        self.say(f"few-shot {cell.model_name} [{cell.regime.name}]: {len(runs)} runs ({job_seconds:.0f} s in workers)")

    def _cells_row(self, stage: str, key: str, params: dict) -> None:
        self.rows.setdefault(stage, []).append(store.cells_row(key, params))

    def _pack(self) -> Path:
        """cells.csv per stage (this unit's rows), units/<unit>.json, all in one archive in ``out``."""
        for stage, rows in self.rows.items():
            store.write_cells(store.cells_path(PROFILE, stage, root=self.staged), rows)
        self.record["wall_seconds"] = round(time.perf_counter() - self.t0, 2)
        self.record["imported_notebook_or_plotting"] = sorted(set(_plotting_modules()) | self.worker_modules)
        write_json(store.profile_dir(PROFILE, root=self.staged) / store.UNITS / f"{self.unit.name}.json", self.record)
        self.out.mkdir(parents=True, exist_ok=True)
        archive = self.out / f"{self.unit.name}{'-smoke' if self.smoke else ''}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(self.staged, arcname="results")
        n_trim = len(self.record["trimmed"])
        self.say(f"packed {archive} ({archive.stat().st_size / 1024:.0f} KiB); wall {self.record['wall_seconds']:.0f} s; "
                 f"{len(self.record['pretrain'])} pretraining runs, {len(self.record['fewshot'])} few-shot cells, "
                 f"{n_trim} trimmed")
        return archive


def run_unit(unit: Unit, queue: Queue, out: Path, smoke: bool = False, work: Path | None = None, echo=print) -> Path:
    """Run one unit (``smoke``: at the queue's toy scale) and return its archive in ``out``."""
    if smoke:
        unit = smoke_unit(unit, queue.smoke)
    default = paths.runs_root() / PROFILE / (unit.name + ("-smoke" if smoke else ""))
    work = Path(work) if work else default
    # --work is the unit's: its stage/ is wiped below, so a folder holding anything else is refused
    with claim_out_dir(work, "gpu unit", {"unit": unit.name, "smoke": smoke}, adopt=work == default):
        shutil.rmtree(work / "stage", ignore_errors=True)
        return UnitRun(unit, queue, Path(out), work, smoke, echo).run()


# ----------------------------------------------------------------------------------------------
# Archives back into results/gpu/


def _archive_rows(results: Path, stage: str, archive: Path) -> list[dict[str, str]]:
    """An archive's ``<stage>/cells.csv``, checked (keys, no key twice; :func:`genemask.store.read_cells`),
    each key naming a folder beside it. A key is a folder name here: ``../../x`` or ``/x`` would
    name a folder outside results/."""
    try:
        rows = store.read_cells(store.cells_path(PROFILE, stage, root=results), shown=f"{archive}: {stage}/cells.csv")
    except store.StoreError as err:
        raise ValueError(f"{err}; nothing was unpacked") from None
    for line, row in enumerate(rows, start=2):
        folder = store.cell_dir(PROFILE, stage, row["key"], root=results)
        if not folder.is_dir() or folder.is_symlink():
            raise ValueError(f"{archive}: {stage}/cells.csv, line {line}: no folder {row['key']}/ for key {row['key']}; "
                             "nothing was unpacked")
    return rows


def unpack(archive: str | Path, smoke_ok: bool = False, echo=print) -> list[str]:
    """Merge a unit's archive into ``results/gpu/``: its cell folders replace those of the same
    key, its cells.csv rows replace rows of the same key (where they stand; new keys are appended,
    :func:`genemask.store.merge_cells`). Smoke archives only with ``smoke_ok``.

    Everything the archive names is checked before anything in ``results/gpu/`` changes: members
    under ``results/gpu/``, stage names safe folder names, keys 16 hex digits with a folder each,
    unit records JSON; every path written is inside ``results/gpu/``."""
    from .grid.spec import check_name

    archive = Path(archive)
    if not archive.is_file():
        raise ValueError(f"{archive}: no such archive (expected a unit's .tar.gz)")
    root = paths.results_dir(PROFILE)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    name = Path(member.name)
                    if name.is_absolute() or ".." in name.parts or name.parts[:2] != ("results", PROFILE) and name.parts != ("results",):
                        raise ValueError(f"{archive}: unexpected member {member.name!r} (expected results/{PROFILE}/...)")
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ValueError(f"{archive}: not a readable archive ({type(err).__name__}: {err})") from None
        results = Path(tmp) / "results"  # the archive's results/, unpacked here first
        staged = store.profile_dir(PROFILE, root=results)
        units = sorted((staged / store.UNITS).glob("*.json"))
        if not units:
            raise ValueError(f"{archive}: no units/<unit>.json inside: not a genemask.gpu archive")
        for unit_file in units:
            try:
                record = json.loads(unit_file.read_text())
            except (ValueError, UnicodeDecodeError) as err:
                raise ValueError(f"{archive}: units/{unit_file.name} is not JSON ({err})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{archive}: units/{unit_file.name} is not a unit record (a JSON mapping)")
            if record.get("smoke") and not smoke_ok:
                raise ValueError(f"{archive}: a smoke run's archive (toy scale); it does not belong in results/{PROFILE}/")
        incoming: dict[str, list[dict[str, str]]] = {}
        for stage_dir in sorted(p for p in staged.iterdir() if p.is_dir() and p.name != store.UNITS):
            check_name(stage_dir.name, f"{archive}: stage folder")
            incoming[stage_dir.name] = _archive_rows(results, stage_dir.name, archive)
        resolved_root = root.resolve()
        for stage, rows in incoming.items():
            try:
                store.rows(PROFILE, stage)  # the cells.csv it merges into must be readable before anything changes
            except store.StoreError as err:
                raise ValueError(f"{err}; nothing was unpacked") from None
            for row in rows:
                if not store.cell_dir(PROFILE, stage, row["key"]).resolve().is_relative_to(resolved_root):  # a symlinked folder
                    raise ValueError(f"{archive}: {stage}/{row['key']} would land outside {paths.display(root)}; "
                                     "nothing was unpacked")
        merged = []
        for stage, rows in incoming.items():
            for row in rows:
                target = store.cell_dir(PROFILE, stage, row["key"])
                landing = target.with_name(f".{row['key']}.unpacking")
                shutil.rmtree(landing, ignore_errors=True)
                shutil.copytree(store.cell_dir(PROFILE, stage, row["key"], root=results), landing)
                shutil.rmtree(target, ignore_errors=True)
                os.replace(landing, target)
                merged.append(f"{stage}/{row['key']}")
            if rows:
                store.merge_cells(store.cells_path(PROFILE, stage), rows)
        for unit_file in units:
            write_text(root / store.UNITS / unit_file.name, unit_file.read_text())
    echo(f"unpacked {archive.name}: {len(merged)} cell(s) into {paths.display(root)}")
    return merged


# ----------------------------------------------------------------------------------------------
# Command line


def plan_table(queue: Queue):
    import pandas as pd

    rows = []
    for unit in queue.units:
        est = estimate(unit, queue)
        cells = unit_cells(unit)
        rows.append({"unit": unit.name, "pretrain runs": len(unit.pretrain), "few-shot cells": len(cells["fewshot"]),
                     "est. pretrain s": round(est["pretrain"]), "est. few-shot s": round(est["fewshot"]),
                     "est. total s": round(est["total"]), "held": is_held(unit)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ("run", "plan", "stage-data", "unpack")
    if not argv or argv[0] not in commands and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]
    parser = argparse.ArgumentParser(prog="python -m genemask.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(PARAMS_FILE), help="the queue (default params/gpu.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the next unit results/gpu/ lacks (or --unit NAME)")
    run_p.add_argument("--unit", default=None)
    run_p.add_argument("--smoke", action="store_true", help="the same command at toy scale (CPU, seconds)")
    run_p.add_argument("--out", required=True, help="folder for the unit's archive (on the GPU machine: $OUT)")
    run_p.add_argument("--work", default=None, help="working folder (default runs/gpu/<unit>)")
    sub.add_parser("plan", help="the queue with each unit's estimate and whether results/gpu/ holds it")
    stage_p = sub.add_parser("stage-data", help="copy the data the units read into .gpu-data/ and pack it (.gpu-data.tar.gz travels)")
    stage_p.add_argument("--to", default=None)
    unpack_p = sub.add_parser("unpack", help="merge a unit's archive into results/gpu/")
    unpack_p.add_argument("archive")
    unpack_p.add_argument("--smoke-ok", action="store_true", help="accept a smoke run's archive (tests)")
    args = parser.parse_args(argv)
    try:
        queue = load_queue(args.params)
        if args.command == "plan":
            print(plan_table(queue).to_string(index=False))
        elif args.command == "stage-data":
            stage_data(queue, Path(args.to) if args.to else None)
        elif args.command == "unpack":
            unpack(args.archive, smoke_ok=args.smoke_ok)
        else:
            if args.unit is not None:
                unit = next((u for u in queue.units if u.name == args.unit), None)
                if unit is None:
                    raise QueueError(f"--unit {args.unit!r}: no such unit; units: {', '.join(u.name for u in queue.units)}")
            else:
                unit = queue.units[0] if args.smoke else next_unit(queue)
                if unit is None:
                    print(f"every unit of {args.params} is held in results/{PROFILE}/: nothing to run")
                    return 0
            if unpack_data(paths.data_dir()):
                print(f"unpacked {data_archive(paths.data_dir()).name} into {paths.data_dir().name}/", flush=True)
            _quiet()
            run_unit(unit, queue, Path(args.out), smoke=args.smoke, work=Path(args.work) if args.work else None)
    except (QueueError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"genemask.gpu: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
