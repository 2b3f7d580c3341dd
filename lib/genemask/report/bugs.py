"""The released code's bugs and what each changes (book chapter ``bugs``).

Two kinds of analysis, both cheap and deterministic:

* what a bug does, derived from a rank table alone: which 6-mer rank the released position lookup
  (Bug 1) reads at each sequence position, which anchor every possible centre gets, which positions
  Global prefers, what the ``defaultdict`` rank 0 (Bug 1b) changes, how many random replacements
  are special tokens;
* what it changes, read from collected results: masked fraction, span mix and NPMI rank of the
  masked tokens (02_masking), loss and validation perplexity (03_pretrain) and few-shot MCC
  (04_fewshot) of the paper's-intent variants against the released-code ones.

The anchor and preference tables call the package's own collator (``genemask.masking``), so they
show what the compatibility options do, not a second transcription of the rule.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import store

#: Masking variants that reproduce released code (``masking.MASKING_VARIANTS``), each with the
#: paper's-intent variant it should be compared with.
RELEASED_VS_INTENT = {
    "genemask-position-v1": "genemask",
    "genemask-position-v3": "genemask",
    "global-position": "global",
}


# ------------------------------------------------------------------------------------------------
# Rank tables


def resolve_rank_table(value: str, profile: str) -> Path:
    """The file a collected cell's ``rank_table`` names: ``@pmi/<key>/<file>`` (an upstream 01_pmi
    cell of the same profile) or a path with ``${GENEMASK_DATA}``."""
    from .. import paths

    text = str(value)
    reference = store.parse_reference(text)
    if reference is not None:
        return reference.path(profile)
    return Path(text.replace("${GENEMASK_DATA}", str(paths.data_dir())))


def _collator(rank_table, strategy: str, **options):
    import torch

    from .. import masking, pmi, tokenizer

    tok = tokenizer.build_tokenizer(6)
    if not isinstance(rank_table, torch.Tensor):
        rank_table = torch.from_numpy(pmi.load_rank_table(rank_table, 6))
    return tok, masking.make_collator(strategy, tok, rank_table=rank_table, seed=0, rank_lookup="position", **options)


def _vocab() -> list[str]:
    from .. import tokenizer

    return list(tokenizer.SPECIAL_TOKENS) + tokenizer.vocab_kmers(6)


def position_anchor_map(rank_table, n_tokens: int = 506, special_rank_zero: bool = True) -> pd.DataFrame:
    """Bug 1 as a table: for a centre at each token position 1..``n_tokens`` (a sequence of
    ``n_tokens`` 6-mers between [CLS] and [SEP]), the anchor the released position lookup picks, the
    vocabulary entry whose rank it read there and that rank. The same for every sequence: the
    tokens themselves are never read (all rows hold one arbitrary 6-mer here)."""
    import torch

    tok, collator = _collator(rank_table, "genemask", selection="v3", special_rank_zero=special_rank_zero)
    length = n_tokens + 2
    ids = torch.full((n_tokens, length), 5)
    ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
    centres = torch.zeros((n_tokens, length), dtype=torch.bool)
    centres[torch.arange(n_tokens), torch.arange(1, n_tokens + 1)] = True
    _, _, info = collator.mask_batch(ids, torch.ones_like(ids), centres=centres)
    anchors = info["anchor_position"].numpy()
    vocab = _vocab()
    return pd.DataFrame({"centre": np.arange(1, n_tokens + 1), "anchor": anchors,
                         "token_read": [vocab[a] for a in anchors], "rank_read": info["anchor_rank"].numpy()})


def position_preference(rank_table, n_tokens: int = 506, top: int | None = 20) -> pd.DataFrame:
    """Global under Bug 1: the order in which it picks positions of a sequence of ``n_tokens``
    6-mers (best position rank first, ties by position), with the vocabulary entry whose rank
    decides it. The released Global code maps unknown keys to rank 4096 (no rank-0 quirk), as
    ``global-position`` does. Every sequence of that length gets its k best positions."""
    tok, collator = _collator(rank_table, "global")
    ranks = collator.rank_table.numpy()[: n_tokens + 2].astype(np.int64)
    positions = np.arange(1, n_tokens + 1)
    order = positions[np.lexsort((positions, ranks[positions]))]
    vocab = _vocab()
    frame = pd.DataFrame({"order": np.arange(1, len(order) + 1), "position": order,
                          "token_read": [vocab[p] for p in order], "rank_read": ranks[order]})
    return frame if top is None else frame.head(top)


def fixed_span_share(preference: pd.DataFrame, n_tokens: int, k: int, half_width: int = 5) -> float:
    """Share of a sequence's ``n_tokens`` 6-mer tokens that Global under Bug 1 masks when it takes the
    first ``k`` positions of ``preference`` (from :func:`position_preference`): the union of their
    11-token spans (``-half_width..+half_width``), clipped to the sequence. Neighbouring favourite
    positions overlap, so the share depends on the ranking's order, not only on k."""
    covered = np.zeros(n_tokens + 1, dtype=bool)  # index 0 is [CLS]
    for position in preference["position"].head(k):
        covered[max(1, position - half_width) : min(n_tokens, position + half_width) + 1] = True
    return float(covered[1:].mean())


def special_rank_zero_effect(rank_table, n_tokens: int = 506, centre_probability: float = 0.0176) -> dict:
    """Bug 1b: with position lookup, the ranks read at positions 1-4 are those of [UNK] [CLS] [SEP]
    [MASK]: 0 (the best) under the released ``defaultdict(int)``, 4096 (the worst) otherwise.
    Returns the centres whose anchor changes, and the share of sequences that draw at least one
    such centre at GeneMask's centre probability."""
    with_quirk = position_anchor_map(rank_table, n_tokens, special_rank_zero=True)
    without = position_anchor_map(rank_table, n_tokens, special_rank_zero=False)
    changed = with_quirk.loc[with_quirk["anchor"] != without["anchor"], "centre"].tolist()
    return {
        "changed_centres": changed,
        "anchors_at_rank_zero": int((with_quirk["rank_read"] == 0).sum()),
        "sequence_share": 1 - (1 - centre_probability) ** len(changed),
        "distinct_anchors_with_quirk": int(with_quirk["anchor"].nunique()),
        "distinct_anchors_without": int(without["anchor"].nunique()),
    }


def special_replacement_share(k: int = 6, random_replace_prob: float = 0.1) -> float:
    """Share of masked positions that the released 80/10/10 turns into a special token: the random
    10 % are drawn from the whole vocabulary (``len(tokenizer)``), 5 of whose 5 + 4**k ids are
    [PAD] [UNK] [CLS] [SEP] [MASK]."""
    from .. import tokenizer

    return random_replace_prob * tokenizer.N_SPECIAL / (tokenizer.N_SPECIAL + 4**k)


# ------------------------------------------------------------------------------------------------
# 02_masking results


def long_span_share(span_lengths: pd.DataFrame, min_length: int = 11) -> pd.Series:
    """Per variant, the share of masked tokens that lie in a masked run of at least ``min_length``
    tokens (11 = long enough to hide a whole 6-mer), from a ``span_lengths.csv`` histogram."""
    tokens = span_lengths["span_length"] * span_lengths["count"]
    long = tokens.where(span_lengths["span_length"] >= min_length, 0)
    grouped = pd.DataFrame({"variant": span_lengths["variant"], "tokens": tokens, "long": long}).groupby("variant", sort=False)
    return (grouped["long"].sum() / grouped["tokens"].sum()).rename("long_span_share")


def masking_effects(summary: pd.DataFrame, span_lengths: pd.DataFrame | None = None,
                    invariance: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per variant of a ``masking_summary.csv``: masked %, anchors per sequence, mean span,
    share of masked tokens in runs >= 11, fully hidden share, the NPMI rank gap (mean rank of the
    unmasked minus the masked tokens: > 0 when masking prefers high-NPMI 6-mers) and, where
    measured, the share of sequences whose anchors stay the same when the content changes."""
    frame = summary.set_index("variant")
    out = pd.DataFrame({
        "masked %": 100 * frame["masked_fraction_mean"],
        "anchors / seq": frame["anchors_per_sequence"],
        "mean span": frame["mean_span_length"],
        "fully hidden %": 100 * frame["fully_hidden_share"],
        "rank masked": frame["mean_rank_masked"],
        "rank unmasked": frame["mean_rank_unmasked"],
        "rank gap": frame["mean_rank_unmasked"] - frame["mean_rank_masked"],
    })
    if span_lengths is not None:
        out.insert(3, "in runs ≥ 11 %", 100 * long_span_share(span_lengths).reindex(out.index))
    if invariance is not None:
        same = invariance.set_index("variant")["sequences_with_identical_anchors"]
        out["same anchors %"] = 100 * same.reindex(out.index)
    out.index.name = "variant"
    return out


# ------------------------------------------------------------------------------------------------
# 03_pretrain and 04_fewshot results


def _options(masking_options: object) -> dict:
    """A cell's ``masking_options`` as a dict (see :func:`genemask.identity.masking_options_dict`)."""
    from ..identity import masking_options_dict

    return masking_options_dict(masking_options)


def pretrain_comparison(cells: pd.DataFrame) -> pd.DataFrame | None:
    """One row per pretraining run at the stage's longest budget, leaving out runs with changed
    masking options: its label (``genemask@1000:logo``, as the few-shot results name it), its
    strategy and ranking (identity columns, to select rows by), steps,
    final loss (mean of the last 10 % of steps), final and best validation perplexity (each measured
    with the run's own masking) and mean masked fraction. None when no run has written its metrics."""
    from ..identity import RunIdentity
    from . import pretrain as pretrain_report

    rows = []
    for cell in cells.to_dict("records"):
        path = Path(cell["dir"]) / store.METRICS
        if not path.exists() or _options(cell.get("masking_options")):
            continue
        identity = RunIdentity.from_config(cell)
        rows.append({**pretrain_report.summary(pd.read_csv(path), identity.label()),
                     "pretrain_strategy": identity.strategy, "pretrain_ranking": identity.ranking})
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    frame = frame[frame["steps"] == frame["steps"].max()]
    return frame.drop(columns=["switch_step", "seconds_per_100_steps"]).reset_index(drop=True)


def fewshot_method(results: pd.DataFrame, strategy: str, ranking: str | None = None) -> str | None:
    """The method label of ``strategy`` with default masking options and the released switch
    threshold (:func:`genemask.report.runs.method_of`); the bugs' contrasts compare these with
    :func:`genemask.report.findings.contrast`."""
    from .runs import method_of

    return method_of(results, strategy, ranking)

