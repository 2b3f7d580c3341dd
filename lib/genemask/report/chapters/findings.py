"""The Findings chapter: scale, the headline, the noise floor, the verdicts (on the plateau and on
both sides of the transition), and the answers on position lookup, the CM-GEMS switch and the NPMI
ranking."""
from __future__ import annotations

import json

import pandas as pd

from ...identity import RELEASED_SWITCH_THRESHOLD
from .. import results
from ..results import book_profile, stage_results
from . import FEWSHOT_STAGES
from .. import findings, papers, runs, transition
from ..intervals import compact
from .. import pretrain as pretrain_report
from ... import store



def fmt_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``+0.012 [-0.003, +0.027]``."""
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _floor_view(floor: pd.DataFrame) -> pd.DataFrame:
    return floor.assign(scores=floor.scores.map(lambda v: ", ".join(f"{x:.3f}" for x in v)), sd=floor.sd.round(4),
                        range=floor.range.round(4))


class Chapter:
    """Findings for one profile, its results read once."""

    def __init__(self, profile: str | None = None):
        self.profile = profile = profile or book_profile()
        self.pmi_cells = stage_results("pmi", profile)[1]
        self.masking_cells = stage_results("masking", profile)[1]
        # The LOGO runs the verdicts compare; the tiny transition grid and the LOGO learning-rate pilot
        # have their own page (and the grid its own section here).
        pretraining = runs.pretraining_runs(profile)
        self.pretraining = pretraining[~pretraining.stage.isin(transition.PRETRAIN_STAGES)]
        self.results = runs.downstream(FEWSHOT_STAGES, store.FEWSHOT_RESULTS, profile)
        rate_results = runs.downstream("fewshot-rate", store.FEWSHOT_RESULTS, profile)
        # Every few-shot result, the masking-rate stage's included: the contrasts pick their two methods from it.
        self.pool = (pd.concat([f for f in (self.results, rate_results) if f is not None], ignore_index=True)
                     if self.results is not None else None)
        self.fewshot_runs = runs.downstream(FEWSHOT_STAGES, store.FEWSHOT_RUNS, profile)
        frames = [stage_results(stage, profile)[1] for stage in self.pretraining.stage.unique()]
        pretrain_cells = pd.concat(frames, ignore_index=True) if frames else None
        self.metrics, self.summaries = (pretrain_report.load_cells(pretrain_cells) if pretrain_cells is not None
                                        else (None, None))
        self.transition_probe = runs.downstream(transition.PROBE_STAGE, store.FEWSHOT_RESULTS, profile)
        self.tuned_steps = runs.downstream(transition.FINETUNE_STAGES, store.FEWSHOT_RESULTS, profile)

    def answers(self) -> list:
        """The first screen: one line per question on its best evidence (:func:`lenses.answers`)."""
        from .. import lenses, verdict
        from ..plan import load_plan

        from . import synthetic

        if synthetic(self.profile):
            return [f"Profile `{self.profile}` is generated demo data: the questions get no answer from it (the `cpu` book answers them)."]
        table = verdict.apply_plan("findings", self.profile)
        if table.empty:
            return [f"Profile `{self.profile}` has no results the verdict plan can test yet."]
        scales = {name: lenses.evidence_scale(name, self.profile) for name in table["evidence"].unique()}
        curves = transition.curves(self.profile, transition.LONG_STAGE)
        by_rule = transition.steps_by_rule(curves, load_plan().absolute_threshold) if len(curves) else None
        return lenses.answers(table, scales, transition.ordering(by_rule) if by_rule is not None else None, by_rule)

    def method_of(self, strategy: str, **where) -> str | None:
        """The method label of a strategy in every few-shot result (runs.method_of), None without results."""
        return runs.method_of(self.pool, strategy, **where) if self.pool is not None else None

    def scale(self) -> list:
        from ... import paths

        pretraining, metrics, fewshot_runs = self.pretraining, self.metrics, self.fewshot_runs
        lines = [f"Profile `{self.profile}`."]
        if len(pretraining):
            # Batch and length as each run recorded them (the identity columns hold 0 where a grid left the
            # notebook's default), tokens as every page counts them: non-padding tokens seen.
            parameters = [pretrain_report.read_summary(d).get("parameters", {}) for d in pretraining.dir]
            recorded = pd.DataFrame(parameters)
            seeds = pretraining.groupby("method").pretrain_seed.nunique()
            tokens = metrics.groupby("run").tokens.sum() if metrics is not None else pd.Series(dtype=float)
            several = seeds[seeds >= 2]
            seed_text = (f"{len(several)} methods with {seeds.max()} pretraining seeds, the others with one" if len(several)
                         else "one pretraining seed per method")
            longest = int(pretraining.pretrain_steps.max())
            lines.append(
                f"Pretraining: {len(pretraining)} runs of {pretraining.method.nunique()} methods, "
                f"{', '.join(sorted(set(pretraining.pretrain_model)))} size, {', '.join(f'{s:,}' for s in sorted(pretraining.pretrain_steps.unique()))} "
                f"steps of {', '.join(map(str, sorted(recorded['batch_size'].dropna().astype(int).unique())))} sequences of at most "
                f"{', '.join(map(str, sorted(recorded['max_len'].dropna().astype(int).unique())))} tokens (lr {parameters[0].get('lr')}); "
                f"{seed_text}. A {longest:,}-step run saw {tokens.max() / 1e6:.1f} M tokens (non-padding).")
        if fewshot_runs is not None:
            probe = "protocol" in fewshot_runs and (fewshot_runs.protocol == "probe").all()
            how = ("a linear probe on the frozen encoder (logistic regression on mean-pooled features)" if probe else
                   f"fine-tuning, at most {int(fewshot_runs.steps.max())} steps a run")
            lines.append(f"Few-shot: {fewshot_runs.dataset.nunique()} datasets, {', '.join(map(str, sorted(fewshot_runs.shot.unique())))} "
                         f"shots per class, {fewshot_runs.seed.nunique()} downstream seeds; {how}; sequences cut at "
                         f"{int(fewshot_runs.max_length.max())} tokens, at most {int(fewshot_runs.n_test.max())} test rows.")
        out = [" ".join(lines)]
        seconds = findings.compute_seconds(paths.results_dir(self.profile))
        if len(seconds):
            time = seconds.groupby("stage")["seconds"].agg(["count", "sum"]).rename(columns={"count": "cells", "sum": "seconds"})
            time["measured as"] = seconds.groupby("stage")["source"].agg(lambda s: ", ".join(sorted(set(s))))
            time.loc["total", ["cells", "seconds"]] = time[["cells", "seconds"]].sum()
            time["CPU hours"] = (time["seconds"] / 3600).round(2)
            out += ["Compute, in hours of one CPU core: each cell's CPU time as the grid recorded it, or, for cells collected "
                    "before it did, the run's own clock (wall time, an overstatement where cells shared cores; the cpu profile ran "
                    "two or three single-thread cells side by side on 2 cores):",
                    time.assign(cells=time["cells"].astype(int))[["cells", "CPU hours", "measured as"]].fillna("")]
        return out

    def headline(self) -> list:
        results, fewshot_runs = self.results, self.fewshot_runs
        if results is None:
            return [f"**Profile `{self.profile}` has no few-shot results yet.** Run its grid (`make grid PROFILE={self.profile}`) "
                    "and rebuild the book."]
        out = []
        headline = findings.headline_table(results, "mcc", digits=2)  # two decimals: eight interval columns fit the page
        sizes, steps = set(results.pretrain_model), set(results.pretrain_steps) - {0}
        if len(sizes) == 1 and len(steps) == 1:  # one budget: say it once, keep the rows short
            size, step = sizes.pop(), steps.pop()
            out.append(f"All `{size}` size; every pretrained model ran {step:,} steps.")
            headline = headline.rename(index=lambda m: m.replace(f"@{step}:{size}", "").replace(f":{size}", ""))
        out.append(papers.compact(headline, font="76%", wrap_headers=True))
        fixed = sorted(fewshot_runs[fewshot_runs.train_sampling.str.startswith("the released set")].dataset.unique())
        if fixed and (fewshot_runs.protocol == "probe").all():
            out.append(f"An interval of zero width for a method with one pretraining run ({', '.join(fixed)}) means every seed "
                       "trained on the same released set and the probe is deterministic: there the downstream seeds measure nothing.")
        return out

    def noise_floor(self) -> list:
        results = self.results
        if results is None:
            return []
        papers_shots = results[results.shot.isin([10, 50])]
        floors = pd.concat([findings.noise_floor(papers_shots, "accuracy"), findings.noise_floor(results, "mcc")])
        if floors.empty:
            return ["No method has more than one pretraining seed yet: the noise floor cannot be measured."]
        floors["metric"] = floors.metric.map({"accuracy": "accuracy (10 and 50 shots)", "mcc": "MCC (all shots)"})
        out = [_floor_view(floors).rename(columns={"pretrain_seeds": "pretraining seeds"}).set_index(["metric", "method"])]
        try:
            from ... import published

            t4 = published.values("CM-GEMS", "T4", dataset="mean", metric="accuracy")
            t4 = t4[t4.steps == 10000].set_index("model")["value"]
            base = next(m for m in t4.index if m.lower().startswith("dnabert"))
            gaps = (t4.drop(base) - t4[base]).rename("claimed gap in accuracy over " + base)
            acc = floors[floors.metric.str.startswith("accuracy")]
            out += [gaps.to_frame().round(3),
                    f"**Reading:** the papers' gaps range over {gaps.abs().min():.3f}–{gaps.abs().max():.3f} accuracy; our "
                    f"methods' scores move by up to {acc.range.max():.3f} accuracy (sd up to {acc.sd.max():.3f}) with the "
                    "pretraining seed alone, at our scale and protocol (stated above). A gap of one pretraining run per model "
                    "smaller than the seed-to-seed range is not evidence for either method."]
        except (ImportError, KeyError, StopIteration):
            out.append("The papers' published values are not available in this build.")
        return out

    def questions(self) -> list[tuple[str, str | None, str | None]]:
        """Each question of the verdicts as (question, method a, method b)."""
        m = self.method_of
        return [
            ("GeneMask (token lookup) vs random", m("genemask"), m("random")),
            ("NPMI content: token vs position lookup, same spans", m("genemask"), m("genemask-position-v3")),
            ("curriculum: CM-GEMS (switch fires) vs GeneMask", m("cmgems", switch=20.0), m("genemask")),
            ("Global vs random", m("global"), m("random")),
            ("authors' ranking vs ours (GeneMask)", m("genemask", ranking="Data-A"), m("genemask")),
            ("masking more: doubled centre probability", m("genemask", options=json.dumps({"centre_probability": 0.05})),
             m("genemask")),
            ("pretraining at all: random vs untrained", m("random"), m("none")),
        ]

    def verdicts(self) -> list:
        results, metrics = self.results, self.metrics
        if results is None:
            return []
        rows = []
        for question, a, b in self.questions():
            if a is None or b is None:
                continue
            c = findings.contrast(self.pool, a, b)
            rows.append({"question": question, "a − b": f"{a} − {b}",
                         "MCC a − b": compact(c["mean_difference"], c["ci95_low"], c["ci95_high"]),
                         "runs": f"{c['pretrain_seeds_a']} / {c['pretrain_seeds_b']}"})
        verdicts = pd.DataFrame(rows).set_index("question")
        out = []
        budgets = {(s, m) for s, m in zip(results.pretrain_steps, results.pretrain_model) if s}
        if len(budgets) == 1:  # one budget: say it once, keep the rows short
            step, size = budgets.pop()
            verdicts["a − b"] = verdicts["a − b"].str.replace(f"@{step}:{size}", "").str.replace(f":{size}", "")
            out.append(f"All at {step:,} steps of the `{size}` model; *runs*: pretraining runs of a / of b; "
                       f"{transition.INTERVAL_LEGEND}.")
        out.append(verdicts)
        if metrics is not None:
            evals = pretrain_report.eval_rows(metrics)
            last = evals.sort_values("step").groupby("run").tail(1)
            out.append(f"**Where these answers hold:** at {', '.join(f'{s:,}' for s in sorted(results.pretrain_steps.unique()) if s)} "
                       f"steps of the `{', '.join(sorted(set(results.pretrain_model) - {''}))}` model, every run still on the perplexity "
                       f"plateau (final validation perplexity {last.val_perplexity.min():,.0f}–{last.val_perplexity.max():,.0f}, each "
                       "under its own masking): before the transition GeneMask's Fig. 2 shows. The next section asks the same "
                       "questions on both sides of it.")
        return out

    def transition_sides(self) -> list:
        probe, tuned_steps = self.transition_probe, self.tuned_steps
        curves = transition.curves(self.profile)
        if probe is None or curves.empty:
            return [f"Profile `{self.profile}` has no transition grid results yet: the answers above hold on the plateau only."]
        out = []
        crossing = transition.transition_summary(transition.transition_steps(curves)).set_index("strategy")
        table = transition.contrasts_by_step_table(probe, transition.QUESTIONS, "mcc")
        if len(table):
            out += ["**Linear probe** (checkpoints kept on the plateau, during and after the transition; "
                    + transition.INTERVAL_LEGEND + "):", table]
        if tuned_steps is not None:
            tuned_table = transition.contrasts_by_step_table(tuned_steps, transition.QUESTIONS, "mcc")
            if len(tuned_table):
                out += ["**Fine-tuning** (the papers' regime, at the learning rate the pilot chose):", tuned_table]
        left = [f"{s} {crossing.loc[s, 'step_mean']:,.0f} ({crossing.loc[s, 'crossed']} of {crossing.loc[s, 'runs']} runs)"
                if pd.notna(crossing.loc[s, "step_mean"]) else f"{s} not by {crossing.loc[s, 'last_step']:,} (0 of {crossing.loc[s, 'runs']} runs)"
                for s in crossing.index]
        if left:
            out.append(f"Mean step at which each strategy left the plateau on the common yardstick: {'; '.join(left)}. "
                       f"*runs*: the fewer pretraining runs of the two sides; a {int(curves.run_steps.max()):,}-step "
                       "schedule, so the 2K checkpoint had a higher learning rate than a 2K-step run's end.")
        return out

    def end_points(self) -> list:
        tuned = transition.end_points(self.tuned_steps)
        if tuned is None:
            return [f"Profile `{self.profile}` has not fine-tuned the transition runs (stage `{transition.FINETUNE_STAGE}`): every "
                    "verdict on this page rests on the probe alone."]
        tuned_runs = runs.downstream(transition.FINETUNE_STAGE, store.FEWSHOT_RUNS, self.profile)
        questions = transition.QUESTIONS
        scores, contrasts = transition.end_point_protocols(tuned, self.transition_probe, list(questions), "mcc")
        score_table, question_table = transition.protocol_tables(scores, contrasts, questions)
        out = [f"`{tuned.pretrain_model.iloc[0]}` model at {int(tuned.pretrain_steps.max()):,} steps; fine-tuning: "
               f"{tuned_runs.dataset.nunique()} datasets, {', '.join(map(str, sorted(tuned_runs.shot.unique())))} shots per class, "
               f"{tuned_runs.seed.nunique()} downstream seeds, lr {', '.join(f'{lr:g}' for lr in sorted(tuned_runs.learning_rate.unique()))}, "
               f"at most {int(tuned_runs.n_test.max()):,} test rows; {int(tuned_runs.constant_predictions.sum())} of {len(tuned_runs)} "
               "runs predicted a single class (kept: they score MCC 0). Scores: mean ± half its interval (pretraining runs); "
               + transition.INTERVAL_LEGEND + ".",
               score_table, question_table]
        tuned_floor = findings.noise_floor(tuned, "accuracy")
        if len(tuned_floor):
            out += ["The noise floor under fine-tuning, in the papers' metric and shots (mean accuracy over the datasets at 10 "
                    "and 50 shots, as CM-GEMS Table 4): each pretraining run's score, and their spread, beside the papers' gaps "
                    "in the section on the noise floor above.",
                    _floor_view(tuned_floor).drop(columns="metric").rename(columns={"pretrain_seeds": "pretraining seeds"}).set_index("method")]
        return out

    def long_schedule(self) -> list:
        profile = self.profile
        curves = transition.curves(profile, stage=transition.LONG_STAGE)
        if curves.empty:
            return [f"Profile `{profile}` has no 16K-step runs (stage `{transition.LONG_STAGE}`)."]
        probe = transition.schedule_results(transition.LONG_PROBE_STAGE, transition.PROBE_STAGE, profile=profile)
        tuned = transition.schedule_results(transition.LONG_FINETUNE_STAGE, transition.FINETUNE_STAGE, profile=profile)
        crossing = transition.transition_summary(transition.transition_steps(curves)).set_index("strategy")
        out = ["Mean step at which each strategy left the plateau on the 16K schedule: "
               + "; ".join(f"{s} {r.step_mean:,.0f} ({r.crossed} of {r.runs} runs)" if pd.notna(r.step_mean)
                           else f"{s} not by {r.last_step:,} (0 of {r.runs} runs)" for s, r in crossing.iterrows()) + "."]
        if probe is not None:
            out += [f"**Linear probe** at the checkpoints of the 16K schedule ({transition.INTERVAL_LEGEND}):",
                    transition.contrasts_by_step_table(probe, transition.QUESTIONS, "mcc")]
        if tuned is not None:
            scores, contrasts = transition.end_point_protocols(tuned, probe, list(transition.QUESTIONS), "mcc")
            score_table, question_table = transition.protocol_tables(scores, contrasts, transition.QUESTIONS)
            out += [f"**The 16K end points under both protocols** (the fine-tuning of the 10K end points, same rate, shots and "
                    f"test rows; {int(tuned.loc[tuned.stage == transition.LONG_FINETUNE_STAGE, 'cell'].nunique())} "
                    f"fine-tuned checkpoints and the untrained model; {transition.INTERVAL_LEGEND}):", score_table, question_table]
        return out

    def position_lookup(self) -> list:
        cells, profile = self.masking_cells, self.profile
        if cells is None:
            return []
        cells = cells.assign(ranking=[results.rank_table_label(v, profile) for v in cells["rank_table"]])
        first = cells.iloc[0]
        summary = pd.read_csv(first.dir / "masking_summary.csv").set_index("variant")
        invariance = pd.read_csv(first.dir / "position_invariance.csv").set_index("variant")
        keep = [v for v in ("random", "genemask", "genemask-position-v1", "genemask-position-v3") if v in summary.index]
        view = pd.DataFrame({
            "masked %": (100 * summary.loc[keep, "masked_fraction_mean"]).round(1),
            "mean NPMI rank, masked": summary.loc[keep, "mean_rank_masked"].round(0),
            "mean NPMI rank, unmasked": summary.loc[keep, "mean_rank_unmasked"].round(0),
            "span (tokens)": summary.loc[keep, "mean_span_length"].round(2),
            "same anchors in other windows": invariance["sequences_with_identical_anchors"].reindex(keep).map(
                lambda v: "" if pd.isna(v) else f"{100 * v:.1f} %"),
        })
        out = [f"{int(first.n_sequences)} windows of {int(first.seq_len)} nt, {first.ranking} ranking:", view]
        parts, rank_note = [], ""
        if "genemask-position-v1" in summary.index and "random" in summary.index:
            v1, rnd, tok = (summary.loc[n] for n in ("genemask-position-v1", "random", "genemask"))

            def gap(row):
                return row.mean_rank_unmasked - row.mean_rank_masked

            rank_note = (f"; note that even the token lookup moves the masked tokens' mean rank by only "
                         f"{100 * abs(gap(tok)) / 4 ** 6:.1f} % of the ranking")
            parts.append(f"the position lookup picks the same anchors whatever the sequence "
                         f"({100 * invariance.loc['genemask-position-v1', 'sequences_with_identical_anchors']:.0f} % of windows, "
                         f"token lookup {100 * invariance.loc['genemask', 'sequences_with_identical_anchors']:.1f} %); its masked "
                         f"tokens rank {gap(v1):.0f} places better than the unmasked ones on average, against {gap(tok):.0f} for "
                         f"the token lookup and {gap(rnd):.0f} for random masking (of 4,096 ranks); it masks "
                         f"{100 * v1.masked_fraction_mean:.1f} % of tokens against random's {100 * rnd.masked_fraction_mean:.1f} %")
        if self.results is not None and self.method_of("random"):
            for name in ("genemask-position-v1", "genemask-position-v3"):
                if self.method_of(name):
                    c = findings.contrast(self.pool, self.method_of(name), self.method_of("random"))
                    if min(c["pretrain_seeds_a"], c["pretrain_seeds_b"]) < 2:  # no interval, no verdict from one run
                        parts.append(f"{name} minus random: {c['mean_difference']:+.3f} MCC ({c['pretrain_seeds_a']} / "
                                     f"{c['pretrain_seeds_b']} pretraining runs: no verdict from one run)")
                    else:
                        parts.append(f"{name} minus random: {fmt_ci(c['mean_difference'], c['ci95_low'], c['ci95_high'])} MCC "
                                     f"({c['pretrain_seeds_a']} / {c['pretrain_seeds_b']} pretraining runs; two-level bootstrap, "
                                     "descriptive: the verdict is the answers' t test)")
        if parts:
            out.append("**Answer:** " + "; ".join(parts) + ". In what it masks it is content-blind span masking with its own span "
                       f"mix and rate{rank_note}.")
        return out

    def switch(self) -> list:
        summaries, metrics = self.summaries, self.metrics
        if summaries is None or not (summaries.pretrain_strategy == "cmgems").any():
            return [f"Profile `{self.profile}` has no CM-GEMS pretraining run yet."]
        out = []
        for _, row in summaries[summaries.pretrain_strategy == "cmgems"].iterrows():
            evals = pretrain_report.eval_rows(metrics[metrics.run == row.run])
            deltas = evals["val_perplexity"].diff().abs().dropna()
            threshold = row.pretrain_switch_threshold
            if pd.isna(threshold):  # the run kept the released default
                threshold = f"{RELEASED_SWITCH_THRESHOLD:g}, the released default"
            eval_every = int(evals.step.diff().dropna().min()) if len(evals) > 1 else None
            if pd.notna(row.switch_step):
                out.append(f"**Answer:** `{row.run}` switched to Global after step **{int(row.switch_step)}** of {int(row.steps)} "
                           f"(threshold {threshold}, evaluations every {eval_every} steps; perplexity change that triggered it "
                           f"{deltas[evals.step.iloc[1:].values <= row.switch_step].min():.2f}).")
            else:
                out.append(f"**Answer:** `{row.run}` never switched in {int(row.steps)} steps: the smallest change of validation "
                           f"perplexity between evaluations (every {eval_every} steps) was {deltas.min():.2f}, above the threshold "
                           f"{threshold}; it masked with GeneMask throughout.")
        return out

    def ranking(self) -> list:
        profile, cells = self.profile, self.pmi_cells
        if cells is None:
            return [f"Profile `{profile}` has no PMI results."]
        rows = []
        for cell in cells.itertuples():
            path = cell.dir / "authors_agreement.csv"
            if path.exists():
                agreement = pd.read_csv(path).iloc[0]
                rows.append({"PMI definition": f"{cell.pmi} ({cell.normalizer})", "6-mers": int(agreement.n_kmers),
                             "Spearman ρ": round(agreement.spearman_rho, 3), "Kendall τ": round(agreement.kendall_tau, 3),
                             "top-100 overlap": int(agreement.top100_overlap)})
        if not rows:
            return [f"Profile `{profile}` ran no comparison with the authors' ranking."]
        agreement = pd.DataFrame(rows).set_index("PMI definition")
        best = agreement["Spearman ρ"].idxmax()
        return [agreement,
                f"**Answer:** closest with {best}: Spearman ρ {agreement.loc[best, 'Spearman ρ']}, "
                f"{agreement.loc[best, 'top-100 overlap']} of the top 100 shared — from {int(agreement['6-mers'].iloc[0])} 6-mers "
                f"counted on {papers.corpus_bases(cells) / 1e6:.1f} Mbp rather than the authors' 669 Mbp (GRCh38 chr1–3)."]
