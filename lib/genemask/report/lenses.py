"""Each question and claim judged on its best evidence first (issue 24, part 5).

The frozen plan (:mod:`genemask.report.plan`) lists each family's evidence best first: the 16K
tiny end points fine-tuned with the papers' protocol, then the same end points by the linear probe,
then the LOGO-size 1K-step probe (still on the perplexity plateau). :func:`verdict.apply_plan` tests
every contrast on every evidence; this module reads its table: :func:`lenses` gives a contrast's
rows in the plan's order (an evidence that does not hold both methods is skipped), :func:`primary`
the first of them — the verdict — and the others are second lenses. :func:`evidence_scale` states
each lens's scale from the results (model, steps, batch, tokens, protocol, downstream seeds), and
:func:`compact` / :func:`symbol` make the one-line cells of issue 23 (``+0.047 ±0.070 ?``).
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

from .plan import Evidence, load_plan
from .intervals import compact, signed as _signed  # noqa: F401 (compact: lenses' cells and callers)
from .verdict import ABSENT, NOT_RUN, ONE_RUN, TOO_FEW
from .. import store

#: Short names of the plan's evidence, as the book prints them.
LENS_NAMES = {"finetune-16k": "16K fine-tuning", "probe-16k": "16K probe", "logo-1k-probe": "LOGO 1K probe",
              "logo-1k-rate": "LOGO 1K probe", "logo-1k-gue": "LOGO 1K GUE probe", "curves-16k": "16K curves",
              "curves-10k": "10K curves"}

#: One symbol per verdict word, for cells that must stay on one line (legend: :func:`legend`).
SYMBOLS = (("better", "▲"), ("later", "▲"), ("worse", "▼"), ("earlier", "▼"), ("equivalent", "≈"),
           ("inconclusive", "?"), ("no verdict", "○"), (NOT_RUN, "…"), (ABSENT, "—"))


def lens_name(evidence: str) -> str:
    return LENS_NAMES.get(evidence, evidence)


def lenses(table: pd.DataFrame | None, contrast_id: str, metric: str | None = None) -> pd.DataFrame:
    """The rows of :func:`verdict.apply_plan`'s ``table`` for one contrast (and metric), best evidence
    first (the plan's order, which the table keeps); rows of an evidence that does not hold both
    methods (:data:`verdict.ABSENT`) are left out. Empty when the table has none."""
    if table is None or table.empty:
        return pd.DataFrame()
    rows = table[table["id"] == contrast_id]
    if metric is not None:
        rows = rows[rows["metric"] == metric]
    return rows[rows["word"] != ABSENT].reset_index(drop=True)


def primary(table: pd.DataFrame | None, contrast_id: str, metric: str | None = None) -> pd.Series | None:
    """The contrast's verdict row: on the best evidence that holds both methods; None without one."""
    rows = lenses(table, contrast_id, metric)
    return rows.iloc[0] if len(rows) else None


def tested(row: pd.Series | dict) -> bool:
    """Whether a lens row carries a test (an effect and an interval) rather than a no-verdict word."""
    return bool(np.isfinite(float(row.get("effect", np.nan))))


def symbol(word: str) -> str:
    """The one-character mark of a verdict word (:data:`SYMBOLS`)."""
    for start, mark in SYMBOLS:
        if str(word).startswith(start):
            return mark
    raise ValueError(f"no symbol for verdict word {word!r}")


def legend() -> str:
    return ("▲ better (later, for a transition step), ▼ worse (earlier), ≈ equivalent within the margin, ? inconclusive, "
            "○ no verdict (one pretraining run, or too few seeds), … not yet run")


def cell(row: pd.Series | dict, digits: int = 3) -> str:
    """A lens row as one short cell: ``+0.047 ±0.070 ?``, or the no-verdict word's symbol alone."""
    if not tested(row):
        return symbol(row["word"])
    return f"{compact(row['effect'], row['ci_low'], row['ci_high'], digits)} {symbol(row['word'])}"


def seeds_text(row: pd.Series | dict) -> str:
    """Pretraining seeds behind a lens row: ``4 pairs`` (paired) or ``3 / 4 runs`` (unpaired)."""
    if not tested(row):
        return ""
    if row.get("paired", True):
        return f"{int(row['n_seeds'])} seed pairs"
    return f"{int(row['runs_a'])} / {int(row['runs_b'])} runs"


def line(row: pd.Series | dict, digits: int = 3, unit: str = "") -> str:
    """``+0.047 [−0.031, +0.125], p 0.19 (Holm 0.57), MDE 0.15, 4 seed pairs: inconclusive``, or the
    no-verdict word."""
    if not tested(row):
        return str(row["word"])
    unit = f" {unit}" if unit else ""
    return (f"{_signed(row['effect'], digits)}{unit} [{_signed(row['ci_low'], digits)}, {_signed(row['ci_high'], digits)}], "
            f"p {row['p']:.2g} (Holm {row['p_holm']:.2g}), MDE {row['mde']:,.{digits}f}, {seeds_text(row)}: {row['word']}")


# --- the scale of each evidence, read from the results


def describe_scale(parts: dict) -> str:
    """A lens's scale as one phrase: ``tiny, 16,000 steps × 32 × ≤128 tokens (52.4 M tokens), fine-tuning,
    3 downstream seeds``; parts a profile lacks are left out."""
    head = f"`{parts['model']}`" if parts.get("model") else ""
    if parts.get("steps"):
        head += f", {int(parts['steps']):,} steps"
        if parts.get("batch"):
            head += f" × {int(parts['batch'])} seq."
            if parts.get("max_len"):
                head += f" ≤ {int(parts['max_len'])} tokens"
    if parts.get("tokens"):
        head += f" ({parts['tokens'] / 1e6:,.1f} M tokens)"
    tail = [t for t in (parts.get("protocol"),
                        f"{parts['downstream_seeds']} downstream seed{'s' if parts['downstream_seeds'] > 1 else ''}"
                        if parts.get("downstream_seeds") else None) if t]
    return ", ".join([head.lstrip(", "), *tail]) if head else ", ".join(tail)


PROTOCOLS = {"probe": "linear probe", "finetune": "fine-tuning (papers' protocol)"}


@lru_cache(maxsize=32)
def evidence_scale(name: str, profile: str | None = None) -> str:
    """The scale of one evidence of the plan, read from ``profile``'s results: its pretraining runs'
    model, steps, batch and length (as each run recorded them), the most non-padding tokens a run saw,
    and the downstream protocol and seeds (curves: the yardstick)."""
    from . import runs
    from .pretrain import read_summary
    from .transition import run_tokens

    evidence: Evidence = load_plan().evidence[name]
    pretraining = runs.pretraining_runs(profile)
    mine = pretraining[(pretraining["pretrain_model"] == evidence.model) & (pretraining["pretrain_steps"] == evidence.steps)]
    parts: dict = {"model": evidence.model, "steps": evidence.steps}
    if len(mine):
        recorded = read_summary(mine["dir"].iloc[0]).get("parameters", {})
        parts.update(batch=recorded.get("batch_size"), max_len=recorded.get("max_len"),
                     tokens=max(run_tokens(d) for d in mine["dir"]))
    if name.startswith("curves"):
        parts["protocol"] = "yardstick loss"
    else:
        file = store.GUE_RUNS if evidence.stages == ("gue",) else store.FEWSHOT_RUNS
        table = runs.downstream(list(evidence.stages), file, profile)
        if table is not None:
            table = table[table["pretrain_model"].isin([evidence.model]) & (table["pretrain_steps"] == evidence.steps)]
        if table is not None and len(table):
            protocol = set(table["protocol"].dropna()) if "protocol" in table else {"finetune"}
            parts["protocol"] = " and ".join(PROTOCOLS.get(p, p) for p in sorted(protocol))
            parts["downstream_seeds"] = int(table["seed"].nunique()) if "seed" in table else None
    return describe_scale(parts)


def no_verdict(word: str) -> bool:
    return str(word).startswith("no verdict") or word in (ONE_RUN, TOO_FEW, NOT_RUN)


def table_word(word: str) -> tuple[str, str]:
    """A verdict word as a narrow table prints it, with its reason apart: (verdict, reason). A
    no-verdict word becomes ``no verdict`` and its reason (``one run``, ``too few seeds``, ``neither
    crossed``) goes where the effect would be; ``equivalent within ±m`` becomes ``equivalent`` (its
    margin stands beside it, in a column or the table's caption); every other word is
    :func:`short_word`'s, reason ''."""
    word = str(word)
    if word.startswith("equivalent within"):
        return "equivalent", ""
    if word == ONE_RUN:
        return "no verdict", "one run"
    if word.startswith(TOO_FEW):
        return "no verdict", "neither crossed" if "neither crossed" in word else "too few seeds"
    return short_word(word), ""


def short_word(word: str) -> str:
    """A verdict word short enough for a narrow column: ``equivalent ±0.028``, ``no verdict: one run``."""
    word = str(word)
    if word.startswith("equivalent within"):
        return word.replace("equivalent within", "equivalent")
    if word == ONE_RUN:
        return "no verdict: one run"
    if word.startswith(TOO_FEW):
        return "no verdict: too few seeds"
    return word


def contrast_table(table: pd.DataFrame, metrics: tuple[str, ...] = ("accuracy", "transition_step"),
                   first_metric_only: bool = True, beside: str = "old rule") -> pd.DataFrame:
    """A page's contrasts on every evidence that holds both methods: effect ± half-interval, p, Holm p,
    MDE, seeds and the new word, one line each, and ``beside`` it either the old bootstrap's word
    (``"old rule"``: the Claims and Bugs pages, which set the two rules side by side) or the contrast's
    equivalence margin (``"margin"``: pages that show the verdict alone). Only each family's own metric
    (its first in ``table``) unless ``first_metric_only`` is False (then a row per metric)."""
    if beside not in ("old rule", "margin"):
        raise ValueError(f"beside={beside!r}: expected 'old rule' or 'margin'")
    rows = table[table["word"] != ABSENT]
    if first_metric_only:
        own = table.groupby("family", sort=False)["metric"].first()
        rows = rows[rows["metric"] == rows["family"].map(own)]
    out = []
    for r in rows.itertuples():
        digits = 0 if r.metric == "transition_step" else 3
        fine = tested(r._asdict())
        # margin mode (narrow tables): "seed pairs" holds a bare count; unpaired rows keep "3 / 4 runs"
        seeds_column = "seed pairs" if beside == "margin" else "seeds"
        seeds_value = seeds_text(r._asdict()).replace(" seed pairs", "" if beside == "margin" else " pairs")
        entry = {"contrast": r.id, "evidence": lens_name(r.evidence), "metric": {"transition_step": "steps"}.get(r.metric, r.metric),
                 "a − b": compact(r.effect, r.ci_low, r.ci_high, digits), "p": f"{r.p:.2g}" if fine else "",
                 "Holm p": f"{r.p_holm:.2g}" if fine else "", "MDE": f"{r.mde:,.{digits}f}" if fine else "",
                 seeds_column: seeds_value,
                 "verdict": short_word(r.word)}
        if beside == "margin":
            entry["verdict"], reason = table_word(r.word)
            if reason:  # no effect to show: the reason stands in its place
                entry["a − b"] = reason
            if r.metric == "transition_step":  # lower bounds: the plan has the row say how many runs are censored
                censored = [getattr(r, c, np.nan) for c in ("censored_a", "censored_b")]
                entry["censored"] = f"{int(np.nansum(censored))}" if fine and not np.isnan(censored).all() else ""
            if not fine and (seeds := re.search(r"in (\d+) seeds?\b", str(r.word))):  # "neither crossed in 3 seeds"
                entry[seeds_column] = seeds.group(1)
            entry["± margin"] = f"{r.margin:,.{digits}f}"
        else:
            entry["old rule"] = (OLD_WORDS.get(getattr(r, "old_verdict", ""), getattr(r, "old_verdict", ""))
                                 if isinstance(getattr(r, "old_verdict", ""), str) else "")
        out.append(entry)
    return pd.DataFrame(out).set_index(["contrast", "evidence"]) if out else pd.DataFrame()


#: The old rule's words, short (a narrow column): the two-level bootstrap's verdicts.
OLD_WORDS = {"no difference detected": "no difference", "one pretraining run: no verdict": "one run"}


def contrast_tables(table: pd.DataFrame, scales: dict[str, str], first_metric_only: bool = True,
                    beside: str = "old rule") -> list:
    """:func:`contrast_table` split by evidence, best first, each under its scale: a caption and a
    compact table per evidence (narrow enough for the content column). With the margin beside
    (``beside="margin"``) each evidence's metrics get a table each, and a column that holds one value
    (the metric, a margin shared by every row) goes into the caption instead."""
    from .papers import compact as styled

    whole = contrast_table(table, first_metric_only=first_metric_only, beside=beside)
    if whole.empty:
        return []
    out = []
    for lens in dict.fromkeys(whole.index.get_level_values("evidence")):
        names = [n for n in scales if lens_name(n) == lens]
        scale = "; ".join(dict.fromkeys(scales[n] for n in names))
        part = whole.xs(lens, level="evidence")
        if beside != "margin":
            out += [f"**{lens}**" + (f" ({scale})" if scale else "") + ":", styled(part, wrap_headers=True)]
            continue
        for i, (metric, rows) in enumerate(part.groupby("metric", sort=False)):
            caption = f"**{lens}**, {METRIC_NAMES.get(metric, metric)}"
            rows = rows.drop(columns="metric")
            if rows["± margin"].nunique() == 1:
                caption += f", equivalence margin ±{rows['± margin'].iloc[0]}"
                rows = rows.drop(columns="± margin")
            # a contrast's id on one line: the row reads at a glance
            shown = styled(rows, wrap_headers=True).set_table_styles(
                [{"selector": "th.row_heading", "props": "white-space: nowrap"}], overwrite=False)
            out += [caption + (f" ({scale})" if scale and i == 0 else "") + ":", shown]  # the scale once an evidence
    return out


#: Metric names as captions print them (the tables' metric column keeps the short names).
METRIC_NAMES = {"mcc": "MCC", "transition_step": "transition steps", "steps": "transition steps"}


def verdict_legend(alpha: float = 0.05, power: float = 0.80) -> str:
    """What the columns of :func:`contrast_table` (``beside="margin"``) mean, and the verdict words."""
    return (f"*a − b*: mean difference over pretraining seeds (each seed's mean over its downstream seeds and strata) ± half "
            f"its {100 * (1 - alpha):g} % t interval; *p*: paired t over pretraining seeds (Welch where the sides share too few "
            f"seeds); *seed pairs*: the pretraining seeds both sides ran (*a / b runs* where unpaired); *Holm p*: "
            f"adjusted across the family's contrasts within each evidence; *MDE*: the smallest true "
            f"difference these seeds detect with {100 * power:g} % power; *± margin*: the equivalence margin of the TOST (in the "
            f"caption where one margin serves a whole table). Verdicts: "
            f"*better* / *worse* (later / earlier for a transition step) where Holm p < {alpha:g}, *equivalent* (within ± the "
            f"margin) where the TOST's p < {alpha:g}, else *inconclusive*; *no verdict* where a side has one pretraining run or the "
            "seeds are too few (the reason stands where the effect would be).")


def family_caption(family, rows: pd.DataFrame | None = None) -> str:
    """One line declaring a plan family before its tables: its id, what it tests, how many contrasts
    are adjusted together, on which evidence, and the margins (stated once when they are all the
    plan's default)."""
    n = len(family.contrasts)
    metric = METRIC_NAMES.get(family.metric, family.metric)
    also = f" ({METRIC_NAMES.get(family.also, family.also)} beside, adjusted on its own)" if family.also else ""
    sources = {c.margin.source for c in family.contrasts}
    values = {c.margin.value for c in family.contrasts}
    if len(values) == 1 and len(sources) == 1:
        value = next(iter(values))
        margin = (f"equivalence margin ±{value:,.0f} steps" if family.metric == "transition_step" else
                  f"equivalence margin ±{value:,.3f} {metric}")
    else:
        margin = "each contrast's own equivalence margin (column *± margin*; a paper's gap where it claims one)"
    held = [lens_name(e) for e in family.evidence if rows is None or e in set(rows.get("evidence", ()))]
    return (f"**Family `{family.id}`** — {family.what}. {n} contrast{'s' if n != 1 else ''} in {metric}{also}, "
            f"Holm-adjusted across the family within each evidence; {margin}; evidence, best first: "
            + (", ".join(held) if held else "none with results yet") + ".")


def page_verdicts(page: str, table: pd.DataFrame, scales: dict[str, str], every_metric: bool = False) -> list:
    """A page's verdicts, up front: each family the frozen plan declares for ``page`` with its
    caption (:func:`family_caption`), then one table per evidence under its scale
    (:func:`contrast_tables`, margins beside), then the legend. ``table``: :func:`verdict.apply_plan`
    of ``page``; ``every_metric``: a row per metric (an accuracy family's MCC beside it)."""
    plan = load_plan()
    out = []
    for family in plan.page_families(page):
        rows = table[table["family"] == family.id] if len(table) else pd.DataFrame()
        out.append(family_caption(family, rows))
        tables = contrast_tables(rows, scales, first_metric_only=not every_metric, beside="margin") if len(rows) else []
        out += tables or ["No evidence of this family holds both methods of any contrast yet."]
    return out + [verdict_legend(plan.alpha, plan.power)]


# --- Findings' first screen: one line per question


#: The questions Findings opens with: (label, the plan's contrast ids, in the order shown).
QUESTIONS = (("GeneMask vs random", ("gm-vs-random",)),
             ("NPMI content vs position, same spans (GeneMask vs position-v3)", ("npmi-content",)),
             ("The curriculum vs its parts", ("curriculum-vs-genemask", "curriculum-vs-global")),
             ("The curriculum vs its reverse", ("curriculum-vs-reverse",)),
             ("Masking more (doubled centre probability)", ("masking-more",)),
             ("Who leaves the plateau first", ("step-gm-vs-random",)))

PLATEAU_LENS = "logo-1k-probe"  # the LOGO-size runs, still on the perplexity plateau


def _short(row: pd.Series, digits: int = 3, unit: str = "") -> str:
    """``+0.028 ±0.118, *inconclusive*, MDE 0.157 (4 seed pairs)`` or the no-verdict word."""
    if not tested(row):
        return f"*{row['word']}*"
    return (f"{compact(row['effect'], row['ci_low'], row['ci_high'], digits)}{unit}, **{short_word(row['word'])}**, "
            f"MDE {row['mde']:,.{digits}f}, {seeds_text(row)}")


def _who(row: pd.Series) -> str:
    return f"{row['a'].split('@')[0]} − {row['b'].split('@')[0]}"


def reconcile(pairs: list[tuple[pd.Series, pd.Series | None]]) -> str:
    """One sentence setting the LOGO 1K answers (on the plateau) beside the best evidence's (past it),
    for a question's contrasts as (best row, LOGO 1K row or None)."""
    if pairs and all(best["evidence"].startswith("logo") for best, _ in pairs):
        return "Only the LOGO runs, on the plateau, ran it: no 16K run."
    pairs = [(best, plateau) for best, plateau in pairs if tested(best) or (plateau is not None and tested(plateau))]
    if not pairs:
        return ""
    # a control the plan declares at LOGO 1K but never ran there reads "not yet run": no answer to set beside
    shown = [(best, plateau) for best, plateau in pairs if plateau is not None and plateau["word"] != NOT_RUN]
    if not shown:
        return "The LOGO 1K runs did not test it."
    several = len(shown) > 1
    cells = ", ".join(f"{_who(p) + ' ' if several else ''}{cell(p)} ({short_word(p['word'])})" for _, p in shown)
    same = all(symbol(best["word"]) == symbol(p["word"]) for best, p in shown)
    if same:
        return f"LOGO 1K, on the plateau: {cells} — the same answer{'s' if several else ''} before the transition."
    lens = lens_name(shown[0][0]["evidence"]).split()[0]
    return (f"LOGO 1K, on the plateau: {cells} — another answer, from runs that never left the plateau; the {lens} "
            "runs had left it, so their answer stands.")


def answers(table: pd.DataFrame, scales: dict[str, str], orders: dict[str, str] | None = None,
            steps_table: pd.DataFrame | None = None) -> list[str]:
    """Findings' first screen: the scale of each lens once, then one Markdown line per question of
    :data:`QUESTIONS` — its best evidence, effect ± half-interval, verdict word, MDE, seeds, and the
    sentence reconciling the LOGO 1K answer (:func:`reconcile`). ``table``: :func:`verdict.apply_plan`
    of the ``findings`` page; ``orders``: :func:`transition.ordering` of the 16K curves by rule."""
    used = [n for n in ("finetune-16k", PLATEAU_LENS, "curves-16k") if n in scales]
    caption = ("**Scale** — " + "; ".join(f"*{lens_name(n)}*: {scales[n]}" for n in used)
               + ". Effects in MCC (steps for the transition): mean ± half its 95 % t interval over pretraining seeds. " + legend() + ".")
    lines = []
    for label, ids in QUESTIONS:
        parts, pairs = [], []
        for cid in ids:
            best = primary(table, cid)
            if best is None:
                continue
            digits = 0 if best["metric"] == "transition_step" else 3
            steps = best["metric"] == "transition_step"
            who = f"{_who(best)}: " if len(ids) > 1 or steps else ""
            if best["word"] == NOT_RUN:  # computed: no evidence holds the control's results
                parts.append(f"{who}*{NOT_RUN}* (no results of {best['b'].split('@')[0]} on any evidence)")
                continue
            parts.append(f"{who}{lens_name(best['evidence'])}: {_short(best, digits, ' steps' if steps else '')}")
            if not steps:
                plateau = lenses(table, cid)
                plateau = plateau[plateau["evidence"] == PLATEAU_LENS]
                pairs.append((best, plateau.iloc[0] if len(plateau) else None))
        if not parts:
            continue
        text = f"- **{label}** — " + "; ".join(parts) + "."
        if label.startswith("Who leaves") and orders:
            text += f" Order on the absolute threshold: {orders.get('absolute', '')}; on each run's own plateau: {orders.get('own plateau', '')}."
            if steps_table is not None and len(steps_table):
                longest = steps_table[steps_table["rule"] == "absolute"]
                plateau_steps = load_plan().evidence[PLATEAU_LENS].steps
                text += (f" {int(longest['crossed'].sum())} of {int(longest['runs'].sum())} runs of the {lens_name('curves-16k')} "
                         f"left the plateau; the LOGO runs stop at {plateau_steps:,} steps, on it.")
        elif pairs:
            text += " " + reconcile(pairs)
        lines.append(text.rstrip())
    return ["\n".join(lines), caption]
