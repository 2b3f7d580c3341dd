"""The perplexity-transition chapter: the curves and transition steps of the 10K and 16K schedules,
the probe and fine-tuning by step and at the end points, the learning-rate pilot and the LOGO pilot."""
from __future__ import annotations

import pandas as pd

from .. import downstream, findings, runs, transition
from ..results import book_profile
from .. import pretrain as pretrain_report
from ... import store


def _contrasts_and_degenerate(contrast_table: pd.DataFrame | None, tuned_runs: pd.DataFrame, what: str) -> list:
    """The end points' contrasts under both protocols (when there are any), then the degenerate
    fine-tuning runs per checkpoint, counted, not dropped."""
    counts = downstream.constant_predictions(tuned_runs)
    out = [] if contrast_table is None else [
        f"The contrasts, `a − b`, under both protocols ({transition.INTERVAL_LEGEND}):", contrast_table]
    return out + [f"Degenerate fine-tuning runs ({what}), counted, not dropped: "
                  + "; ".join(f"`{r.method}` {r.constant} of {r.runs}" for r in counts.itertuples()) + "."]


def _curves_figure(curves: pd.DataFrame, steps: pd.DataFrame, title: str, size=(8.5, 4.8)):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    transition.plot_curves(curves, steps, ax)
    ax.set_title(title)
    plt.tight_layout()
    return fig, ax


def _by_step_figure(by_step: pd.DataFrame, steps: int):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    transition.plot_by_step(by_step, steps, ax)
    ax.set_ylabel("few-shot MCC, probe (95 % two-level)")
    plt.tight_layout()
    return fig


class Chapter:
    """The transition chapter for one profile, its results read once."""

    def __init__(self, profile: str | None = None):
        self.profile = profile = profile or book_profile()
        self.rule = transition.TransitionRule()
        self.curves = transition.curves(profile)
        self.pretraining = runs.pretraining_runs(profile)
        self.grid_runs = self.pretraining[self.pretraining.stage == transition.STAGE]
        self.probe = runs.downstream(transition.PROBE_STAGE, store.FEWSHOT_RESULTS, profile)
        self.probe_runs = runs.downstream(transition.PROBE_STAGE, store.FEWSHOT_RUNS, profile)
        self.tuned_steps = runs.downstream(transition.FINETUNE_STAGES, store.FEWSHOT_RESULTS, profile)
        self.tuned = transition.end_points(self.tuned_steps)
        self.tuned_runs = runs.downstream(transition.FINETUNE_STAGE, store.FEWSHOT_RUNS, profile)
        self.steps = transition.transition_steps(self.curves, self.rule) if not self.curves.empty else None
        self.long_curves = transition.curves(profile, stage=transition.LONG_STAGE)
        self.long_steps = (transition.transition_steps(self.long_curves, self.rule) if not self.long_curves.empty else None)
        self.long_probe = transition.schedule_results(transition.LONG_PROBE_STAGE, transition.PROBE_STAGE, profile=profile)

    def missing(self) -> str | None:
        if self.curves.empty:
            return (f"**Profile `{self.profile}` has no transition grid results.** It is the `transition` stage of "
                    "`params/cpu.yaml` (`genemask grid params/cpu.yaml --stage fewshot-transition`).")
        return None

    def scale(self) -> list:
        from ... import paths

        if self.curves.empty:
            return []
        out = [transition.scale_text(self.grid_runs)]
        seconds = findings.compute_seconds(paths.results_dir(self.profile))
        part = seconds[seconds.stage.isin([transition.STAGE, transition.PROBE_STAGE])]
        if len(part):
            hours = part.groupby("stage").seconds.agg(["count", "sum"])
            out.append("CPU time as the grid recorded it (one thread a cell): "
                       + "; ".join(f"`{s}` {int(r['count'])} cells, {r['sum'] / 3600:.2f} core-hours" for s, r in hours.iterrows()) + ".")
        return out

    def curves_figure(self) -> list:
        if self.curves.empty:
            return []
        return [_curves_figure(self.curves, self.steps, f"tiny model, {int(self.curves.run_steps.max()):,}-step schedule "
                               "(linear decay to zero at the end)")[0]]

    def crossings(self) -> list:
        if self.curves.empty:
            return []
        steps, rule = self.steps, self.rule
        out = [f"Rule: plateau from step {rule.plateau_from:,} to {rule.plateau_to:,}; margin {rule.margin} nats.",
               transition.crossing_table(steps), "Each run's transition step (by pretraining seed; blank: not crossed):",
               transition.seed_table(steps)]
        out += [line for line in [transition.unusual_text(transition.unusual_runs(self.curves))] if line]
        switches = steps[steps.strategy == "cmgems"].switch_step.dropna()
        if len(switches):
            out.append(f"CM-GEMS switched to Global masking at step {', '.join(f'{int(s):,}' for s in sorted(switches))} "
                       f"({len(switches)} of {int((steps.strategy == 'cmgems').sum())} runs).")
        elif (steps.strategy == "cmgems").any():
            out.append("CM-GEMS never switched to Global masking in these runs: it masked as GeneMask throughout.")
        return out

    def verdicts(self) -> list:
        """The frozen plan's two families for this page (transition steps on the absolute threshold, the
        end points' downstream contrasts), Holm across each, one table per evidence under its scale;
        the order each rule gives on the longest schedule beside it, descriptive."""
        from ..plan import load_plan
        from . import plan_verdicts

        if self.curves.empty and self.long_curves.empty:
            return []
        plan = load_plan()
        lead = (f"A run has left the plateau at its first evaluation at or under **{plan.absolute_threshold:.3f} nats** of "
                f"yardstick loss: the context-free loss {plan.transition['context_free_loss']:.3f} (the best predictor that reads "
                f"no neighbour) less {plan.transition['margin']} nats, fixed in the plan before the curves were read. A run "
                "that never gets there enters at its last step, a lower bound (*censored*); a seed where neither run of a "
                "pair crossed is left out of that contrast.")
        curves = self.long_curves if not self.long_curves.empty else self.curves
        by_rule = transition.steps_by_rule(curves, plan.absolute_threshold, self.rule)
        orders = transition.ordering(by_rule)
        return [*plan_verdicts("transition", self.profile, lead=lead),
                f"Order of leaving the plateau on the {int(curves.run_steps.max()):,}-step schedule, by mean step (descriptive; "
                f"`(≥)`: a mean with censored runs): absolute threshold {orders.get('absolute', '')}; each run's own plateau "
                f"{orders.get('own plateau', '')}."]

    def step_contrasts(self) -> list:
        if self.curves.empty:
            return []
        return [transition.step_contrast_table(self.steps, transition.STEP_PAIRS)]

    def probe_by_step(self) -> list:
        probe, probe_runs = self.probe, self.probe_runs
        if probe is None:
            return [] if self.curves.empty else ["No probe results on the transition checkpoints yet (stage `fewshot-transition`)."]
        by_step = transition.downstream_by_step(probe, "random", "mcc")
        out = [f"Probe: {probe_runs.dataset.nunique()} datasets, {', '.join(map(str, sorted(probe_runs.shot.unique())))} shots "
               f"per class, {probe_runs.seed.nunique()} downstream seeds, at most {int(probe_runs.n_test.max())} test rows, "
               f"sequences cut at {int(probe_runs.max_length.max())} tokens."]
        untrained = probe[probe.pretrain_strategy == "none"]
        if len(untrained):
            base = findings.method_score(untrained, untrained.method.iloc[0], "mcc")
            out.append(f"Untrained `{untrained.method.iloc[0]}`: MCC "
                       f"{transition.interval(base['mean'], base['ci95_low'], base['ci95_high'], 3)}.")
        scores, diffs = transition.by_step_tables(by_step)
        out.append(scores)
        if diffs is not None:
            out += [f"Minus random masking at the same step ({transition.INTERVAL_LEGEND}):", diffs]
        out.append(_by_step_figure(by_step, int(self.grid_runs.pretrain_steps.max())))
        return out

    def pilot(self) -> list:
        pilot = runs.downstream(transition.PILOT_STAGE, store.FEWSHOT_RESULTS, self.profile)
        pilot_runs = runs.downstream(transition.PILOT_STAGE, store.FEWSHOT_RUNS, self.profile)
        if pilot is None:
            return [] if self.curves.empty else [f"No learning-rate pilot yet (stage `{transition.PILOT_STAGE}`)."]
        table, chosen = downstream.learning_rate_pilot(pilot, pilot_runs, "mcc")
        used = sorted(self.tuned_runs.learning_rate.unique()) if self.tuned_runs is not None else []
        return [f"Pilot: {pilot_runs.dataset.nunique()} datasets ({', '.join(sorted(pilot_runs.dataset.unique()))}; a dataset whose "
                f"pool has no spare rows is skipped), {', '.join(map(str, sorted(pilot_runs.shot.unique())))} shots per class, "
                f"{pilot_runs.seed.nunique()} seeds, {int(pilot_runs.n_validation.max())} validation rows at most per run, "
                f"sequences cut at {int(pilot_runs.max_length.max())} tokens. Mean validation MCC (runs with constant predictions "
                "of all runs):",
                table.assign(cell=[f"{m:.3f} ({c} of {n} constant)" for m, c, n in zip(table["mean"], table.constant, table.runs)])
                .pivot(index="method", columns="learning_rate", values="cell").rename(columns=lambda lr: f"lr {lr:g}"),
                f"The pilot's choice: **lr {chosen:g}** (the higher mean over all its runs)."
                + (f" The fine-tuning below ran at lr {', '.join(f'{lr:g}' for lr in used)}"
                   + ("." if used == [chosen] else ": **not the pilot's choice**.") if used else "")]

    def fine_tuning(self) -> list:
        tuned, tuned_runs = self.tuned, self.tuned_runs
        if tuned is None:
            return [] if self.curves.empty else [f"No fine-tuning of the transition runs yet (stage `{transition.FINETUNE_STAGE}`)."]
        scores, contrasts = transition.end_point_protocols(tuned, self.probe, transition.END_POINT_PAIRS, "mcc")
        score_table, contrast_table = transition.protocol_tables(scores, contrasts)
        out = [f"Fine-tuning: the {int(self.grid_runs.pretrain_steps.max()):,}-step end points and the untrained model, "
               f"{tuned_runs.dataset.nunique()} datasets, {', '.join(map(str, sorted(tuned_runs.shot.unique())))} shots per class, "
               f"{tuned_runs.seed.nunique()} downstream seeds, {', '.join(f'{s:,}' for s in sorted(tuned_runs.steps.unique()))} "
               f"steps a run, at most {int(tuned_runs.n_test.max()):,} test rows (a fixed subset of larger test sets), sequences "
               f"cut at {int(tuned_runs.max_length.max())} tokens.",
               "Few-shot MCC of each end point with its two-level 95 % interval, under both protocols"
               + (f" (the probe's runs: {self.probe_runs.seed.nunique()} downstream seeds, at most {int(self.probe_runs.n_test.max()):,} "
                  "test rows; see above):" if self.probe_runs is not None else ":"), score_table]
        return out + _contrasts_and_degenerate(contrast_table, tuned_runs, "one class predicted for every test row: MCC 0")

    def fine_tuning_by_step(self) -> list:
        tuned_steps = self.tuned_steps
        if tuned_steps is not None and tuned_steps.pretrain_steps.nunique() > 1:
            return [transition.by_step_tables(transition.downstream_by_step(tuned_steps, "random", "mcc"))[0],
                    transition.contrasts_by_step_table(tuned_steps, transition.QUESTIONS, "mcc"),
                    transition.INTERVAL_LEGEND.capitalize() + "."]
        return ["Fine-tuning ran on the end points only."] if self.tuned is not None else []

    def long_schedule(self) -> list:
        long_curves, long_steps = self.long_curves, self.long_steps
        if long_curves.empty:
            return [f"No 16K-step runs in profile `{self.profile}` (stage `{transition.LONG_STAGE}`)."]
        out = [transition.scale_text(self.pretraining[self.pretraining.stage == transition.LONG_STAGE]) + " Same plateau window and "
               "margin as above.",
               _curves_figure(long_curves, long_steps, f"tiny model, {int(long_curves.run_steps.max()):,}-step schedule "
                              "(linear decay to zero at the end)")[0],
               transition.crossing_table(long_steps), "Each run's transition step (by pretraining seed; blank: not crossed):",
               transition.seed_table(long_steps)]
        out += [line for line in [transition.unusual_text(transition.unusual_runs(long_curves))] if line]
        table = transition.step_contrast_table(long_steps, transition.STEP_PAIRS)
        if table is not None:
            out += ["Paired by pretraining seed, as above, within this schedule (descriptive):", table]
        if not self.curves.empty:
            out += ["Each strategy under both schedules (mean transition step ± half its 95 % interval, runs crossed):",
                    transition.crossing_by_schedule({f"{int(self.curves.run_steps.max()):,}-step schedule": self.steps,
                                                     f"{int(long_curves.run_steps.max()):,}-step schedule": long_steps})]
        return out

    def long_probe_by_step(self) -> list:
        long_probe = self.long_probe
        if long_probe is None:
            return [] if self.long_curves.empty else [
                f"No probe results on the 16K-step checkpoints yet (stage `{transition.LONG_PROBE_STAGE}`)."]
        by_step = transition.downstream_by_step(long_probe, "random", "mcc")
        scores, diffs = transition.by_step_tables(by_step)
        out = [scores]
        if diffs is not None:
            out += [f"Minus random masking at the same step ({transition.INTERVAL_LEGEND}):", diffs]
        return out + [_by_step_figure(by_step, int(self.long_curves.run_steps.max())),
                      "The same questions as the end points' verdicts, at each checkpoint (descriptive):",
                      transition.contrasts_by_step_table(long_probe, transition.QUESTIONS, "mcc"),
                      transition.INTERVAL_LEGEND.capitalize() + "."]

    def long_fine_tuning(self) -> list:
        long_tuned = transition.schedule_results(transition.LONG_FINETUNE_STAGE, transition.FINETUNE_STAGE, profile=self.profile)
        if long_tuned is None:
            return [] if self.long_curves.empty else [
                f"No fine-tuning of the 16K-step end points yet (stage `{transition.LONG_FINETUNE_STAGE}`)."]
        tuned_runs = runs.downstream(transition.LONG_FINETUNE_STAGE, store.FEWSHOT_RUNS, self.profile)
        scores, contrasts = transition.end_point_protocols(long_tuned, self.long_probe, transition.END_POINT_PAIRS, "mcc")
        score_table, contrast_table = transition.protocol_tables(scores, contrasts)
        out = [f"Fine-tuning: {tuned_runs.dataset.nunique()} datasets, "
               f"{', '.join(map(str, sorted(tuned_runs.shot.unique())))} shots per class, {tuned_runs.seed.nunique()} "
               f"downstream seeds, lr {', '.join(f'{lr:g}' for lr in sorted(tuned_runs.learning_rate.unique()))}, at most "
               f"{int(tuned_runs.n_test.max()):,} test rows, sequences cut at {int(tuned_runs.max_length.max())} tokens.",
               score_table]
        return out + _contrasts_and_degenerate(contrast_table, tuned_runs, "one class predicted for every test row")

    def logo_pilot(self) -> list:
        logo = transition.curves(self.profile, stage=transition.LOGO_PILOT_STAGE)
        if logo.empty:
            return [f"No LOGO learning-rate pilot in profile `{self.profile}` (stage `{transition.LOGO_PILOT_STAGE}`)."]
        logo_runs = self.pretraining[self.pretraining.stage == transition.LOGO_PILOT_STAGE]
        setting = pretrain_report.read_summary(logo_runs.dir.iloc[0]).get("parameters", {})
        logo_steps = transition.transition_steps(logo, self.rule)
        last = logo.sort_values("step").groupby("method").tail(1).set_index("method")
        fig, ax = _curves_figure(logo, logo_steps, f"LOGO size, lr {setting.get('lr')}, {int(logo.run_steps.max()):,}-step schedule",
                                 size=(8.5, 4.2))
        if not self.curves.empty:
            import matplotlib.pyplot as plt

            tiny = self.curves[self.curves.strategy == "random"].groupby("step").yardstick_loss.mean()
            ax.plot(tiny.index, tiny.values, color="grey", linestyle="--", label="tiny random (mean over seeds)")
            ax.legend(fontsize=8)
            plt.tight_layout()
        out = [fig]
        for r in logo_steps.itertuples():
            end = last.loc[r.method]
            out.append(f"`{r.method}` (lr {setting.get('lr')}, {100 * setting.get('warmup'):g} % warmup, {setting.get('batch_size')} × "
                       f"{setting.get('max_len')} tokens): plateau loss {r.plateau_loss:.3f}; "
                       + (f"**crossed at step {r.transition_step:,.0f}**" if r.crossed else f"**not crossed by step {r.last_step:,}**")
                       + f"; last yardstick loss {end.yardstick_loss:.3f}, validation perplexity {end.val_perplexity:,.0f} (own masking).")
        return out
