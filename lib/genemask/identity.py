"""What a pretraining run is, as typed fields: the parameters that make it.

Result tables carry these fields as columns (``pretrain_strategy``, ``pretrain_seed``, ...) and the
book groups and joins on them. A run's display label (``genemask[Data-A]@1000:logo``) is computed
from the fields for tables and legends and is never parsed back: adding a field (the seed was the
first) needs a column, not a new string format.
"""
from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

#: CM-GEMS's ``--threshold_perplexity_drop`` default in the released code; other values show in labels.
RELEASED_SWITCH_THRESHOLD = 1.0
#: Strategies whose ``switch_threshold`` decides the run: the plateau curricula (CM-GEMS and its
#: reverse control; ``masking.PLATEAU_CURRICULA``, kept apart so that this module needs no torch).
SWITCHING_STRATEGIES = ("cmgems", "cmgems-reverse")
#: The strategy of a model that was never pretrained (``random:<size>`` checkpoints).
UNTRAINED = "none"
#: Prefix of the identity columns in downstream result tables.
PREFIX = "pretrain_"
#: Where a checkpoint kept at ``step`` of a longer run lies inside its ``out_dir`` (``keep_steps``).
KEPT_CHECKPOINT = "checkpoints/step-{step:08d}"
_KEPT_PATTERN = re.compile(r"checkpoints/step-(?P<step>\d{8})/?")


def kept_step(path: str | Path) -> int | None:
    """The step of a checkpoint kept by ``keep_steps`` (a path ending in :data:`KEPT_CHECKPOINT`);
    None for a run's final ``checkpoint``."""
    match = _KEPT_PATTERN.search(Path(path).as_posix() + "/")
    return int(match["step"]) if match else None


#: Collator options renamed since results were first committed: the old spelling -> today's. Until
#: issue 22, ``mlm_probability`` was a single strategy's span-centre probability (``centre_probability``
#: now); it means Hugging Face's masked fraction since. Committed ``cells.csv`` rows and records keep
#: the old spelling (results/ is never edited by hand): :func:`legacy_params` reads them as today's.
RENAMED_OPTIONS = {"mlm_probability": "centre_probability"}
#: The masking options of a run that asked for a masked fraction: replaced by what it was calibrated
#: to (``pretrain.json``'s ``calibration``), so the run is identified by its centre probability.
MLM_PROBABILITY = "mlm_probability"


def legacy_params(stage: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A committed cell's parameters with its ``masking_options`` spelled as today
    (:data:`RENAMED_OPTIONS`), the same masks meant; other parameters, and cells without a renamed
    option, unchanged. ``params``: a ``cells.csv`` row (``masking_options`` as JSON text, written back
    as ``cells.csv`` writes it) or a record's typed parameters (a dict). Only for what was committed
    before the rename (the key migration, the report's reading of ``results/``): a user's
    ``mlm_probability`` today is a masked fraction and must never pass through it."""
    params = dict(params)
    value = params.get("masking_options")
    options = masking_options_dict(value)
    if not any(old in options for old in RENAMED_OPTIONS):
        return params
    clash = [new for old, new in RENAMED_OPTIONS.items() if old in options and new in options]
    if clash:
        raise ValueError(f"{stage}: masking_options {value!r} spell {clash[0]} both ways; not a committed row")
    renamed = {RENAMED_OPTIONS.get(name, name): v for name, v in options.items()}
    params["masking_options"] = renamed if isinstance(value, dict) else json.dumps(renamed)
    return params


def _calibrated(options: dict, calibration: object) -> dict:
    """A run's masking options with its ``mlm_probability`` (a masked fraction) replaced by the centre
    probabilities its calibration found, when its ``pretrain.json`` records them; else unchanged."""
    if MLM_PROBABILITY not in options or not isinstance(calibration, Mapping):
        return options
    if calibration.get(MLM_PROBABILITY) != options[MLM_PROBABILITY] or not isinstance(calibration.get("options"), Mapping):
        return options
    return {**{k: v for k, v in options.items() if k != MLM_PROBABILITY}, **calibration["options"]}


def masking_options_dict(masking_options: object) -> dict:
    """A run's ``masking_options`` as a dict, whether given as one or as ``cells.csv`` writes it
    (JSON, or a Python literal); empty when absent, NaN or not a mapping."""
    if isinstance(masking_options, dict):
        return masking_options
    if not isinstance(masking_options, str) or not masking_options.strip():
        return {}
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(masking_options)
            return value if isinstance(value, dict) else {}
        except (ValueError, SyntaxError):
            continue
    return {}


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _ranking(rank_table: object, strategy: str) -> str:
    """Which k-mer ranking a run masked with: ``Data-A`` (the authors'), ``ours`` (a 01_pmi ranking)
    or ``""`` when the strategy uses none (random masking, untrained models)."""
    if strategy in ("random", UNTRAINED):
        return ""
    if isinstance(rank_table, str) and Path(rank_table).name.startswith("Data-A"):
        return "Data-A"
    return "ours"


@dataclass(frozen=True)
class RunIdentity:
    """The parameters that decide a pretraining run's result, minus the data (one per profile)."""

    strategy: str  # random, genemask, genemask-position-v3, global, cmgems, cmstep, ... or "none"
    model: str  # model size: tiny, logo, dnabert
    steps: int  # optimizer steps (0: never pretrained)
    seed: int  # init, data order and mask stream
    ranking: str = ""  # "ours", "Data-A", or "" when the strategy reads no ranking
    masking_options: str = "{}"  # further collator options as canonical JSON (centre_probability, ...)
    switch_threshold: float | None = None  # a plateau curriculum's threshold (None for other strategies)
    batch_size: int = 0  # sequences per micro-batch (0: unknown or untrained)
    grad_accum: int = 1
    max_len: int = 0  # tokens per sequence
    # Length of the run's learning-rate schedule when it differs from ``steps``: a checkpoint kept at
    # step 4000 of a 16K-step run had a higher learning rate there than a 4K-step run's end (0: steps).
    schedule_steps: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "RunIdentity":
        """From a pretraining config: ``pretrain.json``'s ``config``, a grid cell's parameters, or a
        ``cells.csv`` row (where lists and mappings are JSON text). A ``calibration`` entry (a finished
        run's ``pretrain.json``) replaces an ``mlm_probability`` by the centre probability it became."""
        strategy = config.get("strategy")
        if _missing(strategy):
            raise ValueError(f"not a pretraining run's config: no 'strategy' among {sorted(config)}")
        strategy = str(strategy)
        options = _calibrated(masking_options_dict(config.get("masking_options")), config.get("calibration"))
        threshold = config.get("switch_threshold")
        threshold = float(threshold) if strategy in SWITCHING_STRATEGIES and not _missing(threshold) else None

        def integer(name: str, default: int) -> int:
            value = config.get(name)
            return default if _missing(value) else int(value)

        return cls(strategy=strategy, model=str(config.get("model") or ""), steps=integer("steps", 0),
                   seed=integer("seed", 0), ranking=_ranking(config.get("rank_table"), strategy),
                   masking_options=json.dumps(options, sort_keys=True), switch_threshold=threshold,
                   batch_size=integer("batch_size", 0), grad_accum=integer("grad_accum", 1),
                   max_len=integer("max_len", 0))

    def kept_at(self, step: int) -> "RunIdentity":
        """The checkpoint this run kept at ``step`` (``pretrain.PretrainConfig.keep_steps``)."""
        if not 0 < step < self.steps:
            raise ValueError(f"step {step}: a kept checkpoint lies inside the run's {self.steps} steps")
        return RunIdentity(**{**asdict(self), "steps": step, "schedule_steps": self.steps})

    @classmethod
    def untrained(cls, model: str) -> "RunIdentity":
        """A randomly initialised model of one size (the no-pretraining baseline)."""
        return cls(strategy=UNTRAINED, model=model, steps=0, seed=0)

    @property
    def options(self) -> dict:
        return json.loads(self.masking_options)

    @property
    def tokens(self) -> int:
        """Token positions the run trained on (an upper bound: shorter chunks are padded)."""
        return self.steps * self.batch_size * self.grad_accum * self.max_len

    def method(self) -> "RunIdentity":
        """The same run with the seed dropped: what two pretraining seeds of one method share."""
        return RunIdentity(**{**asdict(self), "seed": -1})

    def label(self) -> str:
        """A short display name, ``strategy[tags]@steps:size`` (seed left out: it is a column)."""
        if self.strategy == UNTRAINED:
            return f"random-init:{self.model}"
        tags = ["Data-A"] if self.ranking == "Data-A" else []
        tags += [f"p={v}" if key == "centre_probability" else f"{key}={v}" for key, v in sorted(self.options.items())]
        if self.switch_threshold is not None and self.switch_threshold != RELEASED_SWITCH_THRESHOLD:
            tags.append(f"switch={self.switch_threshold:g}")
        schedule = f"of{self.schedule_steps}" if self.schedule_steps else ""
        return (self.strategy + (f"[{','.join(tags)}]" if tags else "") + (f"@{self.steps}{schedule}" if self.steps else "")
                + (f":{self.model}" if self.model else ""))

    def columns(self) -> dict[str, Any]:
        """The identity as result-table columns (``pretrain_<field>``)."""
        return {PREFIX + f.name: getattr(self, f.name) for f in fields(self)}


#: Result-table columns of an identity, in field order.
COLUMNS: tuple[str, ...] = tuple(PREFIX + f.name for f in fields(RunIdentity))
#: The columns that name a method (every identity column but the seed).
METHOD_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c != PREFIX + "seed")


def from_columns(row: Mapping[str, Any]) -> RunIdentity:
    """The identity stored in a result row's ``pretrain_*`` columns."""
    values = {f.name: row[PREFIX + f.name] for f in fields(RunIdentity) if PREFIX + f.name in row}
    values.setdefault("schedule_steps", 0)
    for name in ("steps", "seed", "batch_size", "grad_accum", "max_len", "schedule_steps"):
        values[name] = int(values[name])
    values["switch_threshold"] = None if _missing(values["switch_threshold"]) else float(values["switch_threshold"])
    values["ranking"] = "" if _missing(values["ranking"]) else str(values["ranking"])
    return RunIdentity(**values)
