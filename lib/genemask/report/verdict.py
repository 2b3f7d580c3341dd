"""The book's one verdict rule (DESIGN.md §9, issue 24): a paired t test over pretraining runs,
Holm across a page's family, a minimum detectable effect and an equivalence test against a margin.

**Why not the bootstrap.** A verdict is about a method, so its replicate is the pretraining run.
With 3 pretraining seeds a percentile two-level bootstrap (:func:`genemask.report.findings.contrast`)
has 10 distinct resamples of the seeds and calls noise "better/worse" about a quarter of the time;
a t test on the per-seed means holds its 5 % (``tests/test_verdict.py`` simulates both). The
bootstrap interval stays beside as a description, never as the verdict.

**The rule.** Within each pretraining seed, the downstream seeds and the declared strata (dataset ×
shots; GUE: task) are averaged, each stratum weighted equally. Methods are paired by pretraining
seed where they share at least :attr:`Plan.min_pairs` seeds (seed s shares init and data order
across strategies); else, when each has that many runs, a Welch t compares the per-seed means.
The t statistic gives the p value and the 95 % interval; p values are Holm-adjusted across the
family; the MDE is the true difference a two-sided t test at alpha over the same seeds detects with
80 % power given the observed sd (noncentral t); TOST (two one-sided t tests at alpha) tests
equivalence within ±margin. Words: *better* / *worse* (Holm p < alpha), *equivalent within ±m*
(TOST p < alpha), *inconclusive*, and no verdict where a side has one pretraining run or the pairs
are fewer than three.

The plan (:mod:`genemask.report.plan`) says which contrasts each page tests; :func:`apply_plan`
runs a page's families on a profile's results with the old bootstrap verdict beside.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .plan import Evidence, Family, Plan, PlannedContrast, Selector, load_plan
from .. import store

STRATA_COLUMNS = ("dataset", "shot", "task")
ONE_RUN = "no verdict (one pretraining run)"
TOO_FEW = "no verdict (too few pretraining seeds)"
NOT_RUN = "not yet run"  # the plan's status of a declared control that has no runs yet
ABSENT = "not run on this evidence"  # a method the evidence's stages do not hold
WORDS = ("better", "worse", "equivalent", "inconclusive", ONE_RUN, TOO_FEW, NOT_RUN, ABSENT)


@dataclass(frozen=True)
class TestResult:
    """The t test of one contrast, before the family's Holm adjustment."""

    effect: float  # mean of a − b over pretraining seeds (paired) or difference of means (Welch)
    ci_low: float
    ci_high: float
    p: float
    mde: float  # at alpha (two-sided) and the plan's power, from the observed sd
    tost_p: float
    df: float
    n_pairs: int  # pairs (paired) or the smaller side's runs (Welch)
    runs_a: int
    runs_b: int
    paired: bool
    # Runs that entered at a lower bound (transition steps: never crossed). Their gap is understated,
    # so *better/worse* stay conservative, but equivalence cannot be concluded.
    censored: int = 0


@dataclass(frozen=True)
class Verdict:
    """One contrast's row: the test, its Holm-adjusted p, the word and the one-line text."""

    id: str
    question: str
    a: str
    b: str
    metric: str
    effect: float
    ci_low: float
    ci_high: float
    p: float
    p_holm: float
    mde: float
    margin: float
    margin_source: str
    tost_p: float
    n_seeds: int
    runs_a: int
    runs_b: int
    paired: bool
    word: str
    text: str


# --- the statistics, vectorised over leading axes (the tests simulate thousands of families at once)


def _t_quantile(alpha: float, df):
    return stats.t.ppf(1 - alpha / 2, df)


@lru_cache(maxsize=256)
def noncentrality_for_power(df: float, alpha: float = 0.05, power: float = 0.80) -> float:
    """The noncentrality at which a two-sided t test with ``df`` degrees of freedom rejects with
    probability ``power`` (both tails counted)."""
    crit = _t_quantile(alpha, df)

    def shortfall(nc: float) -> float:
        # the far tail is below 1e-9 wherever the power is near the target; scipy returns NaN for it at small df
        return stats.nct.sf(crit, df, nc) + np.nan_to_num(stats.nct.cdf(-crit, df, nc)) - power

    high = crit + 5.0  # widened until the power is reached
    while shortfall(high) < 0:
        high *= 1.5
    return float(optimize.brentq(shortfall, 0.0, high))


def mde(se, df, alpha: float = 0.05, power: float = 0.80):
    """Minimum detectable effect: the true difference detected with ``power`` by a two-sided t test
    at ``alpha`` whose standard error is ``se`` (from the between-seed sd) and df ``df``."""
    se, df = np.asarray(se, dtype=float), np.asarray(df, dtype=float)
    out = np.full(np.broadcast(se, df).shape, np.nan)
    flat_df = np.broadcast_to(df, out.shape)
    flat_se = np.broadcast_to(se, out.shape)
    for value in np.unique(flat_df[np.isfinite(flat_df) & (flat_df > 0)]):
        where = flat_df == value
        out[where] = noncentrality_for_power(float(value), alpha, power) * flat_se[where]
    return out if out.shape else float(out)


def t_test(diff_mean, se, df, margin, alpha: float = 0.05, power: float = 0.80) -> dict[str, np.ndarray]:
    """Two-sided t test of zero, its (1 − alpha) interval, the MDE and the TOST p against ±margin,
    from a mean difference, its standard error and df (arrays broadcast). A zero se (every seed's
    difference identical) gives p 0 or 1 and a zero-width interval."""
    diff_mean, se, df = (np.asarray(v, dtype=float) for v in (diff_mean, se, df))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, diff_mean / se, np.where(diff_mean == 0, 0.0, np.sign(diff_mean) * np.inf))
        lower = np.where(se > 0, (diff_mean + margin) / se, np.where(diff_mean + margin > 0, np.inf, -np.inf))
        upper = np.where(se > 0, (diff_mean - margin) / se, np.where(diff_mean - margin < 0, -np.inf, np.inf))
    p = 2 * stats.t.sf(np.abs(t), df)
    half = _t_quantile(alpha, df) * se
    tost = np.maximum(stats.t.sf(lower, df), stats.t.cdf(upper, df))
    return {"effect": diff_mean, "ci_low": diff_mean - half, "ci_high": diff_mean + half, "p": p,
            "mde": mde(se, df, alpha, power), "tost_p": tost, "df": df}


def paired_t(differences: np.ndarray, margin: float, alpha: float = 0.05, power: float = 0.80) -> dict[str, np.ndarray]:
    """:func:`t_test` of per-seed paired differences along the last axis (leading axes: replicates)."""
    d = np.asarray(differences, dtype=float)
    n = d.shape[-1]
    if n < 2:
        raise ValueError(f"paired t: {n} pair(s); at least 2 are needed for an sd")
    return t_test(d.mean(axis=-1), d.std(axis=-1, ddof=1) / np.sqrt(n), n - 1, margin, alpha, power)


def welch_t(a: np.ndarray, b: np.ndarray, margin: float, alpha: float = 0.05, power: float = 0.80) -> dict[str, np.ndarray]:
    """:func:`t_test` of two independent samples of per-seed means (Welch–Satterthwaite df)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(axis=-1, ddof=1) / a.shape[-1], b.var(axis=-1, ddof=1) / b.shape[-1]
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(se > 0, (va + vb) ** 2 / (va ** 2 / (a.shape[-1] - 1) + vb ** 2 / (b.shape[-1] - 1)),
                      a.shape[-1] + b.shape[-1] - 2)
    return t_test(a.mean(axis=-1) - b.mean(axis=-1), se, df, margin, alpha, power)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family's p values (NaN entries are left out of the family
    and stay NaN); adjusted p values are monotone in the raw ones and capped at 1."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    if present.size == 0:
        return out
    order = present[np.argsort(p[present], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


#: The words for a difference's sign where "better" would mislead: a later transition step.
DIRECTIONS = {"transition_step": ("later", "earlier")}


def word(p_holm: float, effect: float, tost_p: float, alpha: float = 0.05, metric: str = "mcc",
         censored: int = 0) -> str:
    """The verdict word of a tested contrast (no-verdict cases are decided before testing)."""
    if p_holm < alpha:
        up, down = DIRECTIONS.get(metric, ("better", "worse"))
        return up if effect > 0 else down
    if tost_p < alpha and not censored:
        return "equivalent"
    return "inconclusive"


# --- from per-seed values to a family of verdicts


def compare(a: pd.Series, b: pd.Series, margin: float, plan: Plan | None = None) -> TestResult | str:
    """The t test of ``a − b`` from per-pretraining-seed values (Series indexed by seed), or the
    no-verdict word when the plan's minimum runs or pairs are not there."""
    plan = plan or load_plan()
    a, b = a.dropna(), b.dropna()
    if min(len(a), len(b)) < plan.min_runs:
        return ONE_RUN
    shared = a.index.intersection(b.index)
    if len(shared) >= plan.min_pairs:
        r = paired_t((a[shared] - b[shared]).to_numpy(), margin, plan.alpha, plan.power)
        n, paired = len(shared), True
    elif min(len(a), len(b)) >= plan.min_pairs:
        r = welch_t(a.to_numpy(), b.to_numpy(), margin, plan.alpha, plan.power)
        n, paired = min(len(a), len(b)), False
    else:
        return TOO_FEW
    return TestResult(**{k: float(r[k]) for k in ("effect", "ci_low", "ci_high", "p", "mde", "tost_p", "df")},
                      n_pairs=n, runs_a=len(a), runs_b=len(b), paired=paired)


def _number(value: float, digits: int) -> str:
    return f"{value:+,.{digits}f}".replace("-", "−")


def sentence(result: TestResult, p_holm: float, verdict_word: str, margin: float, margin_source: str,
             digits: int = 3) -> str:
    """One line: ``+0.047 [−0.031, +0.115], p 0.19 (Holm 0.57), MDE 0.15: inconclusive — the
    paper's ±0.03 cannot be ruled out``."""
    m = f"{margin:,.{digits}f}"
    head = (f"{_number(result.effect, digits)} [{_number(result.ci_low, digits)}, {_number(result.ci_high, digits)}], "
            f"p {result.p:.2g} (Holm {p_holm:.2g}), MDE {result.mde:,.{digits}f}"
            + ("" if result.paired else ", unpaired")
            + (f", {result.censored} run{'s' if result.censored > 1 else ''} censored (lower bounds)" if result.censored else ""))
    if verdict_word == "equivalent":
        return f"{head}: equivalent within ±{m}"
    if verdict_word == "inconclusive":
        whose = "the paper's" if is_paper_gap(margin_source) else "a gap of"
        return f"{head}: inconclusive — {whose} ±{m} cannot be ruled out"
    return f"{head}: {verdict_word}"


def is_paper_gap(margin_source: str) -> bool:
    """Whether a margin is a paper's claimed gap (its source names a paper or a claim) rather than
    one of the plan's stated defaults."""
    return any(name in margin_source for name in ("GeneMask", "CM-GEMS", "GM-", "CM-"))


def family_verdicts(tests: list[tuple[PlannedContrast | dict, str, str, TestResult | str]], metric: str,
                    plan: Plan | None = None, digits: int = 3) -> list[Verdict]:
    """Holm across one family's tested contrasts (those with a :class:`TestResult`), then each
    contrast's word and text. ``tests``: (contrast, label of a, label of b, result or no-verdict word)."""
    plan = plan or load_plan()
    p = [t.p if isinstance(t, TestResult) else np.nan for *_, t in tests]
    adjusted = holm(p)
    rows = []
    for (contrast, a, b, result), p_holm in zip(tests, adjusted):
        c = contrast if isinstance(contrast, dict) else {"id": contrast.id, "question": contrast.question,
                                                         "margin": contrast.margin.value, "source": contrast.margin.source}
        if isinstance(result, TestResult):
            w = word(p_holm, result.effect, result.tost_p, plan.alpha, metric, result.censored)
            text = sentence(result, p_holm, w, c["margin"], c["source"], digits)
            values = {k: getattr(result, k) for k in ("effect", "ci_low", "ci_high", "p", "mde", "tost_p", "runs_a", "runs_b",
                                                       "paired")}
            n = result.n_pairs
        else:
            w, text, n = result, result, 0
            values = dict(effect=np.nan, ci_low=np.nan, ci_high=np.nan, p=np.nan, mde=np.nan, tost_p=np.nan, runs_a=0,
                          runs_b=0, paired=False)
        rows.append(Verdict(id=c["id"], question=c["question"], a=a, b=b, metric=metric, p_holm=float(p_holm),
                            margin=float(c["margin"]), margin_source=c["source"], n_seeds=n,
                            word=f"equivalent within ±{c['margin']:,.{digits}f}" if w == "equivalent" else w, text=text,
                            **values))
    return rows


def seed_means(frame: pd.DataFrame, method: str, metric: str, strata: tuple[str, ...] | None = None) -> tuple[pd.Series, int]:
    """Per pretraining seed: the mean over downstream seeds within each stratum, then over strata
    (equal weights). Seeds lacking any (stratum, downstream seed) cell that another seed of the
    method has are left out (the plan's exclusion rule); returns (means by seed, seeds left out)."""
    strata = strata or tuple(c for c in STRATA_COLUMNS if c in frame)
    part = frame[(frame["method"] == method) & (frame["metric"] == metric)]
    if part.empty:
        return pd.Series(dtype=float), 0
    cells = part.pivot_table(index="pretrain_seed", columns=[*strata, "seed"], values="value", aggfunc="mean")
    complete = cells.dropna()
    by_stratum = complete.T.groupby(level=list(range(len(strata)))).mean().T if len(strata) else complete
    return by_stratum.mean(axis=1), len(cells) - len(complete)


def table(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([asdict(v) for v in verdicts])


# --- applying the plan to a profile's results


def select(frame: pd.DataFrame, selector: Selector, steps: int | None, model: str | None = None) -> list[str]:
    """The method labels of ``frame`` (identity columns) that ``selector`` names at ``steps``."""
    part = frame[frame["pretrain_strategy"] == selector.strategy]
    if selector.strategy != "none":
        if steps is not None:
            part = part[part["pretrain_steps"] == steps]
        ranking = part["pretrain_ranking"].fillna("")
        part = part[ranking == selector.ranking] if selector.ranking else part[ranking != "Data-A"]
        part = part[part["pretrain_masking_options"].fillna("{}") == selector.masking_options]
        threshold = part["pretrain_switch_threshold"]
        part = part[threshold.isna() | (threshold == 1.0)] if selector.switch_threshold is None else \
            part[threshold == selector.switch_threshold]
    if model:
        part = part[part["pretrain_model"] == model]
    return sorted(part["method"].unique())


def _evidence_frame(evidence: Evidence, profile: str | None, file: str | None = None) -> pd.DataFrame | None:
    """The downstream rows of an evidence (``file``: its results table by default, or e.g. its runs table)."""
    from . import runs

    file = file or (store.GUE_RESULTS if evidence.stages == ("gue",) else store.FEWSHOT_RESULTS)
    frame = runs.downstream(list(evidence.stages), file, profile)
    if frame is None:
        return None
    if evidence.schedule_stages:
        frame = frame[frame["stage"].isin(evidence.schedule_stages) | (frame["pretrain_strategy"] == "none")]
    return frame


def constant_runs(run_table: pd.DataFrame | None, method: str) -> int:
    """Downstream runs of ``method`` that predicted one class for every test row: kept in the
    verdict (the plan's exclusion rule), and counted so that a reader sees them."""
    if run_table is None or "constant_predictions" not in run_table:
        return 0
    flags = run_table.loc[run_table["method"] == method, "constant_predictions"]
    return int(flags.astype(str).str.lower().eq("true").sum())


def _restrict(frame: pd.DataFrame, evidence: Evidence, contrast: PlannedContrast) -> pd.DataFrame:
    datasets = contrast.datasets or evidence.datasets
    shots = contrast.shots or evidence.shots
    if datasets and "dataset" in frame:
        frame = frame[frame["dataset"].isin(datasets)]
    if shots and "shot" in frame:
        frame = frame[frame["shot"].isin(shots)]
    return frame


def _downstream_tests(family: Family, evidence: Evidence, frame: pd.DataFrame, metric: str, plan: Plan,
                      margin_scale: float, run_table: pd.DataFrame | None = None,
                      ) -> list[tuple[dict, str, str, TestResult | str, dict | None]]:
    from .findings import contrast as bootstrap_contrast

    out = []
    for c in family.contrasts:
        spec = {"id": c.id, "question": c.question, "margin": c.margin.value * margin_scale, "source": c.margin.source}
        labels = [select(frame, side, evidence.steps, evidence.model) for side in (c.a, c.b)]
        if not all(labels):  # a declared control reads "not yet run" until its results land: computed, not stated
            out.append((spec, c.a.text(), c.b.text(), NOT_RUN if c.status == NOT_RUN else ABSENT, None))
            continue
        for side, found in zip((c.a, c.b), labels):
            if len(found) > 1:
                raise ValueError(f"contrast {c.id}: {side.text()} names several methods in {evidence.name}: {found}")
        a, b = labels[0][0], labels[1][0]
        part = _restrict(frame[frame["method"].isin([a, b])], evidence, c)
        means_a, _ = seed_means(part, a, metric)
        means_b, _ = seed_means(part, b, metric)
        result = compare(means_a, means_b, spec["margin"], plan)
        old = bootstrap_contrast(part, a, b, metric) if "dataset" in part else {}
        runs_part = None if run_table is None else _restrict(run_table, evidence, c)
        out.append((spec, a, b, result, {**old, "constant": [constant_runs(runs_part, m) for m in (a, b)]}))
    return out


def _step_tests(family: Family, evidence: Evidence, profile: str | None, plan: Plan,
                ) -> list[tuple[dict, str, str, TestResult | str, dict | None]]:
    from . import transition

    from . import runs

    curves = pd.concat([transition.curves(profile, stage) for stage in evidence.stages], ignore_index=True)
    if curves.empty:
        return []
    identity = runs.pretraining_runs(profile).rename(columns={"key": "cell"}).drop(columns=["method", "dir", "stage"])
    steps = transition.absolute_steps(curves, plan.absolute_threshold).merge(identity, on="cell", how="left",
                                                                           suffixes=("", "_run"))
    own = transition.transition_steps(curves)
    out = []
    for c in family.contrasts:
        spec = {"id": c.id, "question": c.question, "margin": c.margin.value, "source": c.margin.source}
        labels = [select(steps, side, evidence.steps) for side in (c.a, c.b)]
        if not all(labels):
            out.append((spec, c.a.text(), c.b.text(), NOT_RUN if c.status == NOT_RUN else ABSENT, None))
            continue
        a, b = labels[0][0], labels[1][0]
        runs_a, runs_b = (steps[steps["method"] == m].set_index("pretrain_seed") for m in (a, b))
        # A seed where neither run crossed says nothing about which leaves first: left out.
        neither = runs_a.index.intersection(runs_b.index)[
            ~runs_a["crossed"].reindex(runs_b.index.intersection(runs_a.index)).to_numpy()
            & ~runs_b["crossed"].reindex(runs_a.index.intersection(runs_b.index)).to_numpy()]
        runs_a, runs_b = runs_a.drop(neither), runs_b.drop(neither)
        result = compare(runs_a["step_or_bound"], runs_b["step_or_bound"], c.margin.value, plan)
        censored = [int((~runs_a["crossed"]).sum()), int((~runs_b["crossed"]).sum())]
        if isinstance(result, TestResult):
            result = replace(result, censored=sum(censored))
        elif len(neither):
            result = f"{TOO_FEW}: neither crossed in {len(neither)} seed{'s' if len(neither) > 1 else ''}"
        # the old rule on the same two methods, named by method: two methods may share a strategy
        # (GeneMask with the authors' ranking and with ours), and a strategy may have several runs a seed
        pair = own[own["method"].isin([a, b])].assign(strategy=lambda f: f["method"])
        old = transition.step_contrast(pair, a, b)
        out.append((spec, a, b, result, {**old, "censored": censored, "neither_crossed": len(neither)}))
    return out


def apply_plan(page: str, profile: str | None = None, plan: Plan | None = None) -> pd.DataFrame:
    """Every family of ``page`` on every evidence it names, from ``profile``'s results: one row
    per (family, evidence, contrast) with the new verdict (effect, interval, p, Holm p, MDE, margin,
    TOST p, seeds, word, text) and, beside it, the old rule's (two-level bootstrap for downstream
    scores, agreement of seeds for transition steps). An evidence with no results is left out."""
    plan = plan or load_plan()
    rows = []
    for family in plan.page_families(page):
        metrics = [family.metric] + ([family.also] if family.also else [])
        for name in family.evidence:
            evidence = plan.evidence[name]
            for metric in metrics:
                if family.metric == "transition_step":
                    tests = _step_tests(family, evidence, profile, plan)
                    digits = 0
                else:
                    frame = _evidence_frame(evidence, profile)
                    if frame is None:
                        continue
                    run_table = None if evidence.stages == ("gue",) else _evidence_frame(evidence, profile, store.FEWSHOT_RUNS)
                    scale = plan.accuracy_to_mcc if (metric == "mcc" and family.metric == "accuracy") else 1.0
                    tests = _downstream_tests(family, evidence, frame, metric, plan, scale, run_table)
                    digits = 3
                verdicts = family_verdicts([t[:4] for t in tests], metric, plan, digits)
                for v, (*_, old) in zip(verdicts, tests):
                    row = {"page": page, "family": family.id, "evidence": name, **asdict(v)}
                    if old is not None and "mean_difference" in old:
                        row.update(old_effect=old["mean_difference"], old_ci_low=old["ci95_low"],
                                   old_ci_high=old["ci95_high"], old_verdict=old["verdict"])
                    if old is not None and "censored" in old:
                        row.update(censored_a=old["censored"][0], censored_b=old["censored"][1])
                    if old is not None and "constant" in old:
                        row.update(constant_runs_a=old["constant"][0], constant_runs_b=old["constant"][1])
                    rows.append(row)
    return pd.DataFrame(rows)
