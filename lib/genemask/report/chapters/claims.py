"""The claims ledger chapter: each claim, the paper's evidence, ours, and the verdict; on generated demo
data every computed verdict reads *not testable here*, since synthetic data cannot test a claim."""
from __future__ import annotations

import pandas as pd

from .. import bugs, lenses, ledger, papers, transition, verdict
from ..plan import load_plan
from . import profile_note, synthetic

DEMO_REASON = ("generated demo data: the check ran (its evidence is above), but synthetic data cannot test a claim "
               "about DNA")


def without_verdicts(claims: pd.DataFrame) -> pd.DataFrame:
    """The ledger for a synthetic profile: every verdict computed from our results becomes *not testable
    here* with :data:`DEMO_REASON`; verdicts stated in claims.yaml (read in the papers) stay."""
    computed = claims["our evidence"] != "—"
    return claims.assign(verdict=claims["verdict"].where(~computed, "not testable here"),
                         reason=claims["reason"].where(~computed, DEMO_REASON))


class Chapter:
    """The ledger for one profile, computed once."""

    def __init__(self, profile: str | None = None):
        data = papers.collect_results(profile)
        self.profile = data.profile
        fewshot = (pd.concat([f for f in (data.fewshot, data.rate) if f is not None], ignore_index=True)
                   if data.fewshot is not None else None)
        enrichment = data.enrichment[data.enrichment.ranking.str.startswith("ours")] if data.enrichment is not None else None
        authors = bugs.resolve_rank_table("${GENEMASK_DATA}/genemask/Data-A_norm-pmi-score-ranking.csv", data.profile)
        self.plan = verdict.apply_plan("claims", data.profile)
        scales = {name: lenses.evidence_scale(name, data.profile) for name in self.plan["evidence"].unique()} if len(self.plan) else {}
        curves = transition.curves(data.profile, transition.LONG_STAGE)
        by_rule = transition.steps_by_rule(curves, load_plan().absolute_threshold) if len(curves) else None
        self.ctx = ledger.Context(fewshot=fewshot, gue=data.gue, metrics=data.metrics, enrichment=enrichment,
                                  rankings=papers.rankings(data, authors), plan=self.plan, scales=scales,
                                  steps_by_rule=by_rule)
        claims = ledger.ledger(self.ctx)
        self.claims = without_verdicts(claims) if synthetic(self.profile) else claims

    def header(self) -> list[str]:
        counts = ledger.verdict_counts(self.claims)
        return [profile_note(self.profile),
                f"**Profile `{self.profile}`: {len(self.claims)} claims.** " + "; ".join(f"{v}: {n}" for v, n in counts.items()) + "."]

    def entries(self) -> list[str]:
        out = []
        for paper, part in self.claims.groupby("paper", sort=False):
            out.append(f"**{paper}**")
            for _, row in part.iterrows():
                evidence = row["paper's evidence"]
                out.append(f"**{row['id']}** ({row['where']}) — *{row['claim']}*\n\n"
                           f"- *Paper's evidence:* {evidence}\n"
                           f"- *Our evidence:* {row['our evidence']}\n"
                           f"- *Verdict:* **{row['verdict']}** — {row['reason']}")
        return out

    def glance(self):
        return papers.compact(self.claims.set_index("id")[["paper", "verdict"]], wrap=True)

    def contrasts(self) -> list:
        """The directional claims' contrasts on every evidence, old rule beside new (issue 24's table)."""
        if self.plan is None or self.plan.empty or synthetic(self.profile):
            return []
        return lenses.contrast_tables(self.plan, self.ctx.scales)

    def findings(self) -> list[str]:
        out = []
        for row in ledger.findings(self.ctx).itertuples():
            evidence = f"\n- *Evidence:* {row.evidence}" if row.evidence != "—" else ""
            out.append(f"**{row.id}** ({row.paper}) — {row.finding}{evidence}\n- *Status:* {row.status} — {row.reason}")
        return out
