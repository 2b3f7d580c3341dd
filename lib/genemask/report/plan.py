"""The frozen verdict plan (``genemask/published/verdict_plan.yaml``) as typed, checked data.

Issue 24 asks that what each page tests — its families of contrasts, their metrics, strata,
evidence and equivalence margins, the transition threshold and the exclusion rules — be fixed and
committed before the new pretraining seeds are collected, so that no choice is made after seeing
them. This module reads that file and refuses one that is incomplete or inconsistent, naming the
entry; :mod:`genemask.report.verdict` applies it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from .. import published

PLAN_FILE = "verdict_plan.yaml"
METRICS = ("mcc", "accuracy", "transition_step")
#: Identity fields a contrast side may name (genemask.identity.RunIdentity, prefixed pretrain_ in tables).
SELECTOR_KEYS = ("strategy", "ranking", "masking_options", "switch_threshold")
STATUSES = ("planned", "not yet run")


class PlanError(ValueError):
    """The plan file is malformed; the message names the entry."""


@dataclass(frozen=True)
class Selector:
    """One side of a contrast: a method named by its identity fields (at the evidence's steps)."""

    strategy: str
    ranking: str | None = None  # "Data-A", or None: our ranking (or none for random masking)
    masking_options: str = "{}"  # canonical JSON, as in the pretrain_masking_options column
    switch_threshold: float | None = None  # None: no threshold or the released 1.0

    def text(self) -> str:
        tags = [t for t in (self.ranking, None if self.masking_options == "{}" else self.masking_options,
                            None if self.switch_threshold is None else f"switch={self.switch_threshold:g}") if t]
        return self.strategy + (f"[{', '.join(tags)}]" if tags else "")


@dataclass(frozen=True)
class Margin:
    value: float
    source: str


@dataclass(frozen=True)
class PlannedContrast:
    id: str
    question: str
    a: Selector
    b: Selector
    margin: Margin
    datasets: tuple[str, ...] | None = None  # None: the evidence's datasets
    shots: tuple[int, ...] | None = None
    status: str = "planned"
    note: str = ""
    paper_gap: dict | None = None  # where the margin is a paper's gap: how to recompute it from values.csv


@dataclass(frozen=True)
class Evidence:
    name: str
    role: str
    stages: tuple[str, ...]
    steps: int
    model: str = ""
    #: The stages whose rows are this schedule's (the others add the untrained model); empty: all.
    #: Controls on the same schedule (e.g. the reverse curriculum) live in stages of their own.
    schedule_stages: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    shots: tuple[int, ...] = ()
    pretraining_seeds: int = 0
    what: str = ""


@dataclass(frozen=True)
class Family:
    id: str
    page: str
    what: str
    metric: str
    evidence: tuple[str, ...]
    contrasts: tuple[PlannedContrast, ...]
    also: str | None = None  # a second metric shown beside (MCC beside an accuracy claim)


@dataclass(frozen=True)
class Plan:
    alpha: float
    power: float
    min_pairs: int
    min_runs: int
    accuracy_to_mcc: float
    evidence: dict[str, Evidence]
    families: dict[str, Family]
    pages: dict[str, str]  # page id -> title
    transition: dict[str, Any]
    exclusions: tuple[dict, ...]
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def absolute_threshold(self) -> float:
        """The frozen yardstick loss (nats) a run must reach to have left the plateau."""
        return float(self.transition["absolute_threshold"])

    def page_families(self, page: str) -> list[Family]:
        if page not in self.pages:
            raise KeyError(f"{PLAN_FILE}: no page {page!r}; pages are {sorted(self.pages)}")
        return [f for f in self.families.values() if f.page == page]


def _need(mapping: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise PlanError(f"{PLAN_FILE}: {where}: missing {key!r}")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise PlanError(f"{PLAN_FILE}: {where}.{key}: expected {kind}, got {value!r}")
    return value


def _fraction(mapping: dict, key: str, where: str) -> float:
    value = float(_need(mapping, key, where, (int, float)))
    if not 0 < value < 1:
        raise PlanError(f"{PLAN_FILE}: {where}.{key}={value}: must lie in (0, 1)")
    return value


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise PlanError(f"{PLAN_FILE}: {where}={value!r}: must be a positive number")
    return float(value)


def _selector(raw: Any, where: str) -> Selector:
    if not isinstance(raw, dict):
        raise PlanError(f"{PLAN_FILE}: {where}: expected a mapping of identity fields, got {raw!r}")
    unknown = set(raw) - set(SELECTOR_KEYS)
    if unknown:
        raise PlanError(f"{PLAN_FILE}: {where}: unknown identity field(s) {sorted(unknown)}; allowed {SELECTOR_KEYS}")
    strategy = _need(raw, "strategy", where, str)
    threshold = raw.get("switch_threshold")
    if threshold is not None:
        threshold = _positive(threshold, f"{where}.switch_threshold")
    options = raw.get("masking_options", "{}")
    if not isinstance(options, str):
        raise PlanError(f"{PLAN_FILE}: {where}.masking_options: expected canonical JSON text, got {options!r}")
    import json

    try:
        canonical = json.dumps(json.loads(options), sort_keys=True)
    except json.JSONDecodeError as error:
        raise PlanError(f"{PLAN_FILE}: {where}.masking_options={options!r}: not JSON ({error})") from None
    return Selector(strategy=strategy, ranking=raw.get("ranking"), masking_options=canonical, switch_threshold=threshold)


def _margin(raw: Any, margins: dict, metric: str, where: str) -> Margin:
    if isinstance(raw, str):
        fits = {"mcc": "default_mcc", "transition_step": "default_steps"}.get(metric)
        if raw != fits:
            raise PlanError(f"{PLAN_FILE}: {where}: {raw!r} is not the default margin of metric {metric!r} "
                            f"({fits or 'none: an accuracy claim states its own'})")
        return Margin(float(margins[raw]["value"]), margins[raw]["reason"])
    if not isinstance(raw, dict):
        raise PlanError(f"{PLAN_FILE}: {where}: expected a default's name or {{value, source}}, got {raw!r}")
    return Margin(_positive(raw.get("value"), f"{where}.value"), _need(raw, "source", where, str))


def _tuple(raw: Any, where: str, kind: type) -> tuple | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(v, kind) and not isinstance(v, bool) for v in raw):
        raise PlanError(f"{PLAN_FILE}: {where}: expected a non-empty list of {kind.__name__}, got {raw!r}")
    return tuple(raw)


def _stage_list(raw: Any, where: str) -> tuple[str, ...]:
    """A stage name or a list of them (a schedule's own stage and its controls' stages)."""
    return (raw,) if isinstance(raw, str) else (_tuple(raw, where, str) or ())


def parse(data: dict) -> Plan:
    """The plan from its YAML mapping, every entry checked (a :class:`PlanError` names the first bad one)."""
    if not isinstance(data, dict):
        raise PlanError(f"{PLAN_FILE}: expected a mapping at the top level")
    test = _need(data, "test", "top level", dict)
    alpha, power = _fraction(test, "alpha", "test"), _fraction(test, "power", "test")
    min_pairs, min_runs = _need(test, "min_pairs", "test", int), _need(test, "min_runs", "test", int)
    if min_pairs < 3 or min_runs < 2:
        raise PlanError(f"{PLAN_FILE}: test: min_pairs={min_pairs} (>= 3, a t test needs 2 df) and min_runs={min_runs} (>= 2)")
    margins = _need(data, "margins", "top level", dict)
    factor = _positive(margins.get("accuracy_to_mcc"), "margins.accuracy_to_mcc")
    for name in ("default_mcc", "default_steps"):
        entry = _need(margins, name, "margins", dict)
        _positive(entry.get("value"), f"margins.{name}.value")
        _need(entry, "reason", f"margins.{name}", str)

    evidence = {}
    for name, raw in _need(data, "evidence", "top level", dict).items():
        where = f"evidence.{name}"
        stages = _tuple(_need(raw, "stages", where, list), f"{where}.stages", str)
        evidence[name] = Evidence(
            name=name, role=_need(raw, "role", where, str), stages=stages, steps=_need(raw, "steps", where, int),
            model=raw.get("model", ""), schedule_stages=_stage_list(raw.get("schedule_stage"), f"{where}.schedule_stage"),
            datasets=_tuple(raw.get("datasets"), f"{where}.datasets", str) or (),
            shots=_tuple(raw.get("shots"), f"{where}.shots", int) or (),
            pretraining_seeds=_need(raw, "pretraining_seeds", where, int), what=raw.get("what", ""))
        outside = [s for s in evidence[name].schedule_stages if s not in stages]
        if outside:
            raise PlanError(f"{PLAN_FILE}: {where}.schedule_stage {outside[0]!r} is not among its stages")

    transition = _need(data, "transition", "top level", dict)
    for key in ("context_free_loss", "margin", "absolute_threshold"):
        _positive(transition.get(key), f"transition.{key}")
    if abs(transition["context_free_loss"] - transition["margin"] - transition["absolute_threshold"]) > 1e-9:
        raise PlanError(f"{PLAN_FILE}: transition.absolute_threshold={transition['absolute_threshold']} is not "
                        f"context_free_loss - margin = {transition['context_free_loss'] - transition['margin']}")

    exclusions = tuple(_need(data, "exclusions", "top level", list))
    for i, rule in enumerate(exclusions):
        _need(rule, "rule", f"exclusions[{i}]", str)
        _need(rule, "reason", f"exclusions[{i}]", str)

    families: dict[str, Family] = {}
    pages: dict[str, str] = {}
    for page, raw_page in _need(data, "pages", "top level", dict).items():
        pages[page] = _need(raw_page, "title", f"pages.{page}", str)
        for i, raw in enumerate(_need(raw_page, "families", f"pages.{page}", list)):
            where = f"pages.{page}.families[{i}]"
            family_id = _need(raw, "id", where, str)
            if family_id in families:
                raise PlanError(f"{PLAN_FILE}: {where}: family id {family_id!r} is used twice")
            metric = _need(raw, "metric", where, str)
            if metric not in METRICS:
                raise PlanError(f"{PLAN_FILE}: {where}.metric={metric!r}: one of {METRICS}")
            also = raw.get("also")
            if also is not None and also not in METRICS:
                raise PlanError(f"{PLAN_FILE}: {where}.also={also!r}: one of {METRICS}")
            names = _tuple(_need(raw, "evidence", where, list), f"{where}.evidence", str)
            for name in names:
                if name not in evidence:
                    raise PlanError(f"{PLAN_FILE}: {where}.evidence: {name!r} is not declared under evidence")
            contrasts, seen = [], set()
            for j, c in enumerate(_need(raw, "contrasts", where, list)):
                cw = f"{where}.contrasts[{j}]"
                cid = _need(c, "id", cw, str)
                if cid in seen:
                    raise PlanError(f"{PLAN_FILE}: {cw}: contrast id {cid!r} is used twice in family {family_id!r}")
                seen.add(cid)
                status = c.get("status", "planned")
                if status not in STATUSES:
                    raise PlanError(f"{PLAN_FILE}: {cw}.status={status!r}: one of {STATUSES}")
                contrasts.append(PlannedContrast(
                    id=cid, question=_need(c, "question", cw, str), a=_selector(c.get("a"), f"{cw}.a"),
                    b=_selector(c.get("b"), f"{cw}.b"), margin=_margin(c.get("margin"), margins, metric, f"{cw}.margin"),
                    datasets=_tuple(c.get("datasets"), f"{cw}.datasets", str), shots=_tuple(c.get("shots"), f"{cw}.shots", int),
                    status=status, note=c.get("note", ""), paper_gap=(c.get("margin") or {}).get("paper_gap")
                    if isinstance(c.get("margin"), dict) else None))
            families[family_id] = Family(id=family_id, page=page, what=_need(raw, "what", where, str), metric=metric,
                                         evidence=names, contrasts=tuple(contrasts), also=also)
    return Plan(alpha=alpha, power=power, min_pairs=min_pairs, min_runs=min_runs, accuracy_to_mcc=factor,
                evidence=evidence, families=families, pages=pages, transition=transition, exclusions=exclusions, raw=data)


@lru_cache(maxsize=1)
def load_plan() -> Plan:
    """The committed plan (``genemask/published/verdict_plan.yaml``), parsed and checked."""
    import yaml

    with resources.as_file(resources.files(published) / PLAN_FILE) as path:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise PlanError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    return parse(data)


def paper_gap(spec: dict) -> float:
    """A published gap ``a − b`` recomputed from ``values.csv``: the mean over the table's
    (dataset, shots) cells of ``spec`` (``paper``, ``table``, optional ``block``, ``metric``
    (accuracy), ``shots``, ``datasets``; summary rows named ``mean`` left out), times ``scale``."""
    values = published.values(spec["paper"], spec["table"], **({"block": spec["block"]} if "block" in spec else {}),
                              metric=spec.get("metric", "accuracy"))
    values = values[values["dataset"] != "mean"] if values["dataset"].nunique() > 1 else values
    if "shots" in spec:
        values = values[values["shots"].isin(spec["shots"])]
    if "datasets" in spec:
        values = values[values["dataset"].isin(spec["datasets"])]
    wide = values.pivot_table(index=["dataset", "shots"], columns="model", values="value", dropna=False) \
        if values["shots"].notna().any() else values.pivot_table(index="dataset", columns="model", values="value")
    for side in ("a", "b"):
        if spec[side] not in wide:
            raise PlanError(f"{PLAN_FILE}: paper_gap {spec}: no model {spec[side]!r} in {spec['paper']} {spec['table']}")
    return float((wide[spec["a"]] - wide[spec["b"]]).mean() * spec.get("scale", 1.0))
