"""The two papers side by side: each published table or figure (``genemask.published``) beside ours at
the scale we ran, in the papers' own metric and layout, with the gap where the two are comparable.

The papers' metrics: GeneMask reports few-shot accuracy and AUC, mean ± sd over 10 runs; CM-GEMS
few-shot reports accuracy at 10 and 50 shots; GUE is MCC × 100. Our few-shot results carry accuracy,
AUC, macro-F1 and MCC per seed, so every table shows the paper's metric first and MCC beside it.
A % improvement is computed as the papers did (reference/paper_numbers.md §1.2): the ratio of the
4-dataset (or 5-dataset) mean accuracies, minus one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import published
from .downstream import mean_interval
from .. import store

#: The papers' row for each of our pretraining strategies (our runs are LOGO-size).
PAPER_ROW = {"random": "ORI 10K", "genemask": "GeneMask 10K", "global": "Global 10K", "cmstep": "CM-Step 10K",
             "cmgems": "CM-GEMS 10K"}
#: CM-GEMS Table 4 names the random-masking row differently from GeneMask Table 1.
CMGEMS_FEWSHOT_ROW = {**PAPER_ROW, "random": "DNABERT 10K"}
FOUR = ("prom-core", "prom-300", "cohn-enh", "splice-40")
FIVE = (*FOUR, "silencer")
HUMAN_GUE_PREFIXES = ("prom/", "tf/", "splice/")


def identity(model: str, profile: str | None = None) -> dict:
    """Strategy, steps and whether it is the strategy's default configuration (``main``: default
    options, our ranking, the released switch threshold) of one of our methods, looked up by its
    label among the profile's pretraining runs (:func:`genemask.report.runs.identity_of`): the typed
    identity decides, the label is never parsed."""
    from .runs import identity_of

    run = identity_of(model, profile)
    main = (run.steps > 0 and run.masking_options == "{}" and run.ranking != "Data-A"
            and run.switch_threshold in (None, 1.0))
    return {"strategy": run.strategy, "steps": run.steps or None, "size": run.model, "main": main}


def main_runs(models, steps: int | None = None) -> dict[str, str]:
    """strategy → our run name, for the untagged runs (the default configuration of each strategy) at
    ``steps`` (default: the largest budget any untagged run has)."""
    ids = {m: identity(m) for m in dict.fromkeys(models)}
    main = {m: i for m, i in ids.items() if i["main"]}
    if not main:
        return {}
    steps = steps if steps is not None else max(i["steps"] for i in main.values())
    return {i["strategy"]: m for m, i in main.items() if i["steps"] == steps}


def pct_improvement(new, old) -> float:
    """The papers' % improvement: ratio of the mean scores minus one, × 100 (paper_numbers.md §1.2)."""
    return float((np.mean(new) / np.mean(old) - 1) * 100)


def cell(mean: float, sd: float | None = None, digits: int = 3, sig: str = "") -> str:
    """``0.606 ± 0.045`` (the papers' cell), or the mean alone when there is no sd; NaN as an empty cell."""
    if mean is None or not np.isfinite(mean):
        return ""
    text = f"{mean:.{digits}f}"
    if sd is not None and np.isfinite(sd):
        text += f"\u2009±\u2009{sd:.{digits}f}"  # thin spaces: the papers' wide tables fit the page
    return text + sig


def gap_cell(value: float, digits: int = 3) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:+.{digits}f}"


# --------------------------------------------------------------------------------------------- scale

@dataclass(frozen=True)
class Scale:
    """What our runs were, for a caption: model size and parameters, pretraining budget, tokens seen,
    and the downstream protocol."""

    size: str
    parameters_m: float
    steps: tuple[int, ...]
    batch_size: int
    max_len: int
    tokens_seen: int
    protocol: str
    seeds: int
    max_test: int

    def caption(self) -> str:
        steps = "/".join(f"{s:,}" for s in self.steps)
        protocol = ("linear probe on the frozen encoder (logistic regression on mean-pooled features)"
                    if self.protocol == "probe" else self.protocol)
        return (f"Ours: `{self.size}`-size model ({self.parameters_m:.1f} M parameters), {steps} pretraining steps of "
                f"{self.batch_size} sequences × {self.max_len} tokens ({self.tokens_seen / 1e6:.1f} M tokens seen by a "
                f"{max(self.steps):,}-step run); {protocol}; {self.seeds} seed{'s' if self.seeds != 1 else ''}, "
                f"at most {self.max_test:,} test rows.")


def tokens_seen(metrics: pd.DataFrame) -> int:
    """Tokens a pretraining run consumed (the ``tokens`` column of its metrics.csv, summed)."""
    return int(metrics["tokens"].sum())


def scale(pretrain_cells: pd.DataFrame, runs: pd.DataFrame | None, models=None) -> Scale:
    """The scale of the pretraining cells behind ``models`` (default: all) and of the downstream
    ``runs`` (a ``*_runs.csv`` frame, few-shot or GUE)."""
    from ..models import size_table
    from .pretrain import read_summary

    summaries = [read_summary(d) for d in pretrain_cells["dir"]]
    if models is not None:
        from ..finetune import run_name

        wanted = set(models)
        keep = [run_name(row._asdict()) in wanted for row in pretrain_cells.itertuples()]
        summaries = [s for s, k in zip(summaries, keep) if k] or summaries
        cells = pretrain_cells[keep] if any(keep) else pretrain_cells
    else:
        cells = pretrain_cells
    params = summaries[0]["parameters"]
    longest = max(range(len(cells)), key=lambda i: summaries[i]["steps"])
    metrics = pd.read_csv(Path(cells["dir"].iloc[longest]) / store.METRICS, usecols=["tokens"])
    count = float(size_table((params["model"],)).iloc[0]["parameters (M)"])
    protocol = str(runs["protocol"].iloc[0]) if runs is not None and "protocol" in runs else "finetune"
    seeds = int(runs["seed"].nunique()) if runs is not None else 0
    max_test = int(runs["n_test"].max()) if runs is not None and "n_test" in runs else 0
    return Scale(size=params["model"], parameters_m=count, steps=tuple(sorted({int(s["steps"]) for s in summaries})),
                 batch_size=int(params["batch_size"] * params.get("grad_accum", 1)), max_len=int(params["max_len"]),
                 tokens_seen=tokens_seen(metrics), protocol=protocol, seeds=seeds, max_test=max_test)


# ------------------------------------------------------------------------------------------ few-shot

def fewshot_stats(results: pd.DataFrame, metrics=("accuracy", "auc", "mcc")) -> pd.DataFrame:
    """Our few-shot results as the papers report them: mean and sd over seeds per model, dataset,
    shots and metric (the papers' sd is over their 10 runs; ours over our seeds)."""
    part = results[results.metric.isin(metrics)]
    grouped = part.groupby(["model", "dataset", "shot", "metric"])["value"]
    return pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1), "n": grouped.size()}).reset_index()


def fewshot_side_by_side(paper: pd.DataFrame, ours: pd.DataFrame, rows: dict[str, str], metric: str,
                         datasets=FOUR, our_metric: str | None = None) -> pd.DataFrame:
    """Rows (dataset, shots); for each published model in ``rows`` (paper name → our run name):
    the paper's ``mean ± sd``, ours, and ours − paper (in the paper's metric). ``our_metric`` adds
    our runs in a second metric (MCC) beside them. Only shots we ran appear."""
    stats = ours.set_index(["model", "dataset", "shot", "metric"])
    shots = sorted(ours["shot"].unique())
    out = []
    for dataset in datasets:
        for n in shots:
            line = {"dataset": published.DATASET_LABELS.get(dataset, dataset), "shots": int(n)}
            for name, model in rows.items():
                pub = paper[(paper.model == name) & (paper.dataset == dataset) & (paper.shots == n) & (paper.metric == metric)]
                p_mean = float(pub["value"].iloc[0]) if len(pub) else float("nan")
                p_sd = float(pub["sd"].iloc[0]) if len(pub) else float("nan")
                key = (model, dataset, n, metric)
                o_mean, o_sd = (stats.loc[key, "mean"], stats.loc[key, "sd"]) if key in stats.index else (np.nan, np.nan)
                line[(name, "paper")] = cell(p_mean, p_sd, sig=pub["sig"].iloc[0] if len(pub) else "")
                line[(name, "ours")] = cell(o_mean, o_sd)
                line[(name, "gap")] = gap_cell(o_mean - p_mean)
                if our_metric:
                    key = (model, dataset, n, our_metric)
                    line[(name, f"ours {our_metric.upper()}")] = cell(stats.loc[key, "mean"], stats.loc[key, "sd"]) if key in stats.index else ""
            out.append(line)
    frame = pd.DataFrame(out).set_index(["dataset", "shots"])
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def largest_gap(paper: pd.DataFrame, ours: pd.DataFrame, rows: dict[str, str], metric: str,
                datasets=FOUR) -> dict | None:
    """The (model, dataset, shots) cell where |ours − paper| is largest, with both values."""
    best = None
    stats = ours.set_index(["model", "dataset", "shot", "metric"])["mean"]
    for name, model in rows.items():
        for row in paper[(paper.model == name) & (paper.metric == metric) & paper.dataset.isin(datasets)].itertuples():
            key = (model, row.dataset, row.shots, metric)
            if key not in stats.index:
                continue
            gap = float(stats[key] - row.value)
            if best is None or abs(gap) > abs(best["gap"]):
                best = {"model": name, "dataset": row.dataset, "shots": int(row.shots), "paper": float(row.value),
                        "ours": float(stats[key]), "gap": gap}
    return best


def improvement_by_shot(frame: pd.DataFrame, new: str, old: str, datasets=FOUR,
                        value: str = "value", model: str = "model", shots: str = "shots") -> pd.Series:
    """% improvement of ``new`` over ``old`` in the mean accuracy over ``datasets``, per shot (the
    papers' Table 2/3 formula), from a frame with one accuracy per (model, dataset, shots)."""
    part = frame[frame["dataset"].isin(datasets)]
    out = {}
    for n, group in part.groupby(shots):
        a = group[group[model] == new].set_index("dataset")[value]
        b = group[group[model] == old].set_index("dataset")[value]
        common = a.index.intersection(b.index)
        if len(common) == len(datasets):
            out[int(n)] = pct_improvement(a[common], b[common])
    return pd.Series(out, name=f"{new} vs {old}", dtype=float)


def our_improvement(results: pd.DataFrame, new: str, old: str, datasets=FOUR) -> pd.DataFrame:
    """Our % improvement of ``new`` over ``old`` (paper formula, accuracy) per shot, with a 95 %
    t-interval over seeds (each seed's ratio of 4-dataset means)."""
    part = results[(results.metric == "accuracy") & results.dataset.isin(datasets) & results.model.isin([new, old])]
    means = part.groupby(["model", "shot", "seed"])["value"].mean().unstack("model").dropna()
    rows = []
    for n, group in means.groupby(level="shot"):
        per_seed = (group[new] / group[old] - 1) * 100
        stats = mean_interval(per_seed)
        rows.append({"shots": int(n), "pct": pct_improvement(group[new], group[old]), "ci95_low": stats["ci95_low"],
                     "ci95_high": stats["ci95_high"], "seeds": stats["n"]})
    return pd.DataFrame(rows)


def genemask_best_check() -> pd.DataFrame:
    """GeneMask Table 1's GeneMaskBest accuracy beside the per-cell maximum of Table 4's three
    variants, and which variant is that maximum: GeneMaskBest is an oracle choice among three
    pretrained models per cell."""
    best = published.values("GeneMask", "T1", block="DNABERT", model="GeneMaskBest", metric="accuracy")
    variants = published.values("GeneMask", "T4")
    wide = variants.pivot_table(index=["dataset", "shots"], columns="model", values="value")
    rows = []
    for row in best.itertuples():
        cells = wide.loc[(row.dataset, row.shots)]
        rows.append({"dataset": published.DATASET_LABELS[row.dataset], "shots": int(row.shots),
                     "GeneMaskBest (T1)": row.value, "max of T4": float(cells.max()),
                     "chosen variant": " / ".join(cells.index[cells == cells.max()])})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- GUE

def species(task: str) -> str:
    return "human" if task.startswith(HUMAN_GUE_PREFIXES) else "non-human"


def gue_side_by_side(paper: pd.DataFrame, ours: pd.DataFrame, rows: dict[str, str]) -> pd.DataFrame:
    """Rows: the GUE tasks we ran (GUE layout) then the species means over exactly those tasks;
    for each published model (paper name → our run name) the paper's MCC × 100, ours and the gap.
    ``ours`` is a :func:`downstream.gue_scores` frame (model, task, score)."""
    from .downstream import GUE_LAYOUT

    ours_wide = ours.pivot(index="task", columns="model", values="score")
    tasks = [t for t in GUE_LAYOUT if t in ours_wide.index and t in set(paper.dataset)]
    table = pd.DataFrame(index=tasks)
    for name, model in rows.items():
        pub = paper[paper.model == name].set_index("dataset")["value"]
        table[(name, "paper")] = pub.reindex(tasks)
        table[(name, "ours")] = ours_wide[model].reindex(tasks) if model in ours_wide else np.nan
        table[(name, "gap")] = table[(name, "ours")] - table[(name, "paper")]
    means = []
    for group in ("human", "non-human"):
        members = [t for t in tasks if species(t) == group]
        if members:
            means.append(table.loc[members].mean().rename(f"mean ({group}, {len(members)} tasks)"))
    table = pd.concat([table, pd.DataFrame(means)])
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = "task"
    return table


def printed_means(paper: pd.DataFrame, side: pd.DataFrame, models) -> pd.DataFrame:
    """The paper's printed species means [Q] (over all its tasks, at the paper's own precision: the
    ``printed`` text of :func:`genemask.published.values`) beside ours over the tasks we ran (the mean rows
    of :func:`gue_side_by_side`), one row per published model; a model we did not run has no ours."""
    rows = []
    for model in models:
        row = {}
        for group in ("human", "non-human"):
            printed = paper[(paper.model == model) & (paper.dataset == f"mean ({group})")]["printed"]
            ours = [label for label in side.index if label.startswith(f"mean ({group},")]
            row[(group, "paper, all its tasks [Q]")] = printed.iloc[0] if len(printed) else ""
            row[(group, f"ours, our {ours[0].split(', ')[1][:-1]}" if ours else "ours")] = (
                f"{side.loc[ours[0], (model, 'ours')]:.1f}" if ours and (model, "ours") in side.columns else "")
        rows.append(pd.Series(row, name=model))
    frame = pd.DataFrame(rows)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index.name = "model"
    return frame


def paired_t(scores: pd.DataFrame, model: str, baselines, tasks=None) -> pd.DataFrame:
    """CM-GEMS Table 3's test: per baseline, mean ± population sd over the tasks and the two-sided
    paired t-test against ``model`` over the same tasks. ``scores``: tasks × models (MCC × 100)."""
    from scipy import stats

    frame = scores if tasks is None else scores.loc[list(tasks)]
    rows = []
    for name in [*baselines, model]:
        pair = frame[[model, name]].dropna()
        values = frame[name].dropna()
        p = float(stats.ttest_rel(pair[model], pair[name]).pvalue) if name != model and len(pair) > 1 else float("nan")
        rows.append({"model": name, "tasks": len(values), "mean": float(values.mean()), "sd": float(values.std(ddof=0)),
                     "p_value": p, "difference": float((pair[model] - pair[name]).mean()) if name != model else float("nan")})
    return pd.DataFrame(rows)


def published_gue_wide(table: str, block: str | None = None) -> pd.DataFrame:
    """Tasks × models (MCC × 100) of CM-GEMS Table 2 or 6, without the printed means; with ``block``
    one block's models, else every column keyed ``block: model``."""
    frame = published.values("CM-GEMS", table)
    frame = frame[~frame.dataset.str.startswith("mean")]
    if block is not None:
        frame = frame[frame.block == block]
        return frame.pivot(index="dataset", columns="model", values="value")
    frame = frame.assign(column=frame.block + ": " + frame.model)
    return frame.pivot(index="dataset", columns="column", values="value")


# ---------------------------------------------------------------------------------- Fig. 2, Table 5

def perplexity_profile(metrics: pd.DataFrame, factor: float = 100.0) -> dict:
    """What GeneMask Fig. 2 shows of a curve: the first and final validation perplexity, the largest
    value, and the first step where it fell ``factor``-fold below that largest value (Fig. 2's collapse:
    from a plateau of over a thousand to single digits; None when it never did)."""
    from .pretrain import eval_rows

    evals = eval_rows(metrics)
    peak = float(evals["val_perplexity"].max())
    below = evals[evals["val_perplexity"] < peak / factor]
    return {"first_eval_step": int(evals["step"].iloc[0]), "first": float(evals["val_perplexity"].iloc[0]),
            "peak": peak, "final": float(evals["val_perplexity"].iloc[-1]), "last_step": int(evals["step"].iloc[-1]),
            "collapse_step": int(below["step"].iloc[0]) if len(below) else None}


def motif_rank_table(rankings: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """GeneMask Table 5 (and the ranks its text quotes) with, per named ranking (kmer, rank), the best
    ranks of the 6-mers containing each probe, as many as the paper lists."""
    motifs = published.motif_ranks()
    rows = []
    for motif in motifs.itertuples():
        dataset = "(text, Sect. 6.3)" if motif.dataset == "text" else motif.dataset.replace(";", ", ")
        row = {"dataset": dataset, "motif": motif.motif, "probe": motif.probe,
               "paper": ", ".join(map(str, motif.ranks))}
        for label, ranking in rankings.items():
            ranks = sorted(ranking.loc[ranking["kmer"].str.contains(motif.probe, regex=False), "rank"].astype(int))
            row[label] = ", ".join(map(str, ranks[:len(motif.ranks)]))
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- book loading

@dataclass
class Collected:
    """Everything the paper pages read from one profile's committed results (None where a stage has
    not run)."""

    profile: str
    fewshot: pd.DataFrame | None
    fewshot_runs: pd.DataFrame | None
    rate: pd.DataFrame | None
    gue: pd.DataFrame | None
    gue_runs: pd.DataFrame | None
    pretrain_cells: pd.DataFrame | None
    metrics: dict
    pmi_cells: pd.DataFrame | None
    enrichment: pd.DataFrame | None


def _papers_datasets(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """The rows on the papers' few-shot datasets, None when there are none: the demo profile's
    generated datasets are not the papers', so its chapters say it has no comparable results."""
    if frame is None:
        return None
    part = frame[frame["dataset"].isin(FIVE)]
    return part.reset_index(drop=True) if len(part) else None


def collect_results(profile: str | None = None) -> Collected:
    """Read the few-shot, masking-rate, GUE, pretraining, PMI and motif results of ``profile``."""
    from .results import collect, stage_results
    from .downstream import gue_scores
    from .pretrain import load_cells
    from .runs import downstream

    profile, _ = stage_results("fewshot", profile)
    _, gue_cells = stage_results("gue", profile)
    _, pretrain_cells = stage_results("pretrain", profile)
    _, pmi_cells = stage_results("pmi", profile)
    _, motif_cells = stage_results("motifs", profile)
    gue = collect(gue_cells, store.GUE_RESULTS)
    metrics = {}
    if pretrain_cells is not None:
        frame, _ = load_cells(pretrain_cells)
        metrics = {run: group.reset_index(drop=True) for run, group in frame.groupby("run", sort=False)} if frame is not None else {}
    fewshot_stages = ("fewshot", "fewshot-seeds")
    return Collected(profile=profile, fewshot=_papers_datasets(downstream(fewshot_stages, store.FEWSHOT_RESULTS, profile)),
                     fewshot_runs=_papers_datasets(downstream(fewshot_stages, store.FEWSHOT_RUNS, profile)),
                     rate=_papers_datasets(downstream("fewshot-rate", store.FEWSHOT_RESULTS, profile)),
                     gue=gue_scores(gue) if gue is not None else None, gue_runs=collect(gue_cells, store.GUE_RUNS),
                     pretrain_cells=pretrain_cells, metrics=metrics, pmi_cells=pmi_cells,
                     enrichment=collect(motif_cells, "enrichment_summary.csv"))


def rankings(collected: Collected, authors: str | Path | None) -> dict[str, pd.DataFrame]:
    """k-mer rankings by reader's label: the authors' Data-A (when its file exists) and each of ours."""
    from .motifs import load_ranking, ranking_label

    out = {}
    if authors is not None and Path(authors).is_file():
        out["Data-A"] = load_ranking(authors)
    for row in (collected.pmi_cells.itertuples() if collected.pmi_cells is not None else []):
        path = Path(row.dir) / "kmer_ranking.csv"
        if path.exists():
            out[ranking_label(path)] = load_ranking(path)
    return out


def sampling_notes(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, how our training rows were drawn and what the test set is, where either departs from
    the paper's protocol (a released set every seed shares, a substitute test set)."""
    cols = [c for c in ("train_sampling", "test_substitute") if c in runs]
    part = runs.drop_duplicates("dataset")[["dataset", *cols]].fillna("")
    part = part[part.get("test_substitute", "").astype(bool) | part.get("train_sampling", "").str.contains("not resampled")]
    return part.assign(dataset=part["dataset"].map(lambda d: published.DATASET_LABELS.get(d, d))).reset_index(drop=True)


def anomalies(paper: str, table: str) -> pd.DataFrame:
    """The published cells of one table that carry a note about an inconsistency."""
    frame = published.values(paper, table)
    frame = frame[frame.note.str.contains("probably|slip|non-monotone|copy|misprinted", regex=True)]
    return frame[["block", "model", "dataset", "shots", "metric", "value", "sd", "note"]].reset_index(drop=True)


def compact(frame: pd.DataFrame, font: str = "80%", precision: int = 3, index: bool = True, wrap: bool = False,
            formats: dict | None = None, wrap_headers: bool = False):
    """A styled table in a smaller font with padded cells, so that the papers' wide layouts fit the page
    and neighbouring ``mean ± sd`` cells stay apart; ``index=False`` hides a meaningless row index,
    ``wrap=True`` lets long text cells wrap (a long path anywhere), ``wrap_headers=True`` long column headers (so that a table
    of short numbers under long names fits the content column); ``formats`` maps columns to their own
    format strings."""
    styles = [{"selector": "th", "props": "padding: 1px 6px; white-space: " + ("normal" if wrap or wrap_headers else "nowrap")},
              {"selector": "td", "props": "padding: 1px 6px" + ("; overflow-wrap: anywhere" if wrap else "; white-space: nowrap")}]
    styled = (frame.style.set_table_attributes(f'style="font-size: {font}"').set_table_styles(styles)
              .format(precision=precision, na_rep="", thousands=","))
    if formats:
        styled = styled.format({**{c: f"{{:,.{precision}f}}" for c in frame.columns if c not in formats and
                                   pd.api.types.is_float_dtype(frame[c])}, **formats}, na_rep="")
    return styled if index else styled.hide(axis="index")


# ------------------------------------------------------------------------- numbers for page prose

def corpus_bases(pmi_cells: pd.DataFrame | None) -> int | None:
    """Bases of human sequence our PMI counts (and so our corpus) cover: the unigram total of the first
    PMI cell's params.json."""
    import json

    for row in (pmi_cells.itertuples() if pmi_cells is not None else []):
        path = Path(row.dir) / "params.json"
        if path.exists():
            return int(json.loads(path.read_text())["totals"]["1"])
    return None


def rate_budget_ratios(our_steps) -> dict:
    """How much larger CM-GEMS Fig. 4's setting is than our masking-rate runs: the paper's budgets over
    ours, budget by budget in order (min and max), and DNABERT's parameters over the LOGO size's."""
    from ..models import size_table

    theirs = sorted(published.values("CM-GEMS", "Fig4", metric="accuracy")["steps"].unique())
    ours = sorted(int(s) for s in our_steps)
    ratios = [t / o for t, o in zip(theirs, ours)]
    sizes = size_table(("dnabert", "logo"))["parameters (M)"]
    return {"steps_min": min(ratios), "steps_max": max(ratios), "theirs": theirs, "ours": ours,
            "model": float(sizes["dnabert"] / sizes["logo"])}


#: The 120K k-mer models among which CM-GEMS Fig. 3 picks SoTA-Best (the better species mean).
SOTA_MODELS = ("DNABERT 120K", "NT-500M-Human", "DNABERT-2 120K (k-mer)")


def share_of_sota(ours: pd.Series) -> pd.DataFrame:
    """CM-2's one ratio: per species, our mean MCC × 100 over the GUE tasks we ran (``ours``, by
    task) over SoTA-Best on the same tasks — the better of :data:`SOTA_MODELS`' means over those tasks
    in CM-GEMS Table 2 — so that both sides average the same tasks. Rows ``human`` / ``non-human``
    (species we ran), columns ``tasks``, ``ours``, ``sota_best``, ``share``."""
    sota = published_gue_wide("T2", "baseline")
    rows = {}
    for group in ("human", "non-human"):
        tasks = [t for t in ours.index if species(t) == group and t in sota.index]
        if tasks:
            best = float(sota.loc[tasks, list(SOTA_MODELS)].mean().max())
            rows[group] = {"tasks": len(tasks), "ours": float(ours[tasks].mean()), "sota_best": best,
                           "share": float(ours[tasks].mean()) / best}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["tasks", "ours", "sota_best", "share"])
