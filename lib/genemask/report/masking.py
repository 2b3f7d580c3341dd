"""02_masking: what each masking strategy hides."""
from __future__ import annotations


def masking_statistics(name: str, ids, attention, labels, info, token_ranks, k: int = 6):
    """Per-sequence and per-span statistics of one masked batch (tidy frames):
    masked fraction, span lengths, NPMI rank of masked vs unmasked k-mers, and the share of
    masked k-mers that no unmasked overlapping k-mer reveals (all tokens within k-1 masked)."""
    import numpy as np
    import pandas as pd
    import torch

    masked = labels != -100
    real = attention.bool() & (ids > 4)
    fraction = (masked & real).sum(1).double() / real.sum(1).double()
    padded = torch.nn.functional.pad(masked.int(), (k - 1, k - 1))
    window = padded.unfold(1, 2 * k - 1, 1).sum(-1)  # masked tokens within +-(k-1)
    # A token is revealed by an unmasked real neighbour; count only real neighbours.
    real_pad = torch.nn.functional.pad(real.int(), (k - 1, k - 1)).unfold(1, 2 * k - 1, 1).sum(-1)
    hidden = masked & (window == real_pad)
    ranks = token_ranks[ids]
    spans = []
    m = masked.numpy()
    for row in m:  # analysis only (not the collator): run lengths per sequence
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
        spans.extend((edges[1::2] - edges[0::2]).tolist())
    per_sequence = pd.DataFrame({"variant": name, "masked_fraction": fraction.numpy()})
    summary = {
        "variant": name,
        "masked_fraction_mean": float(fraction.mean()),
        "masked_fraction_sd": float(fraction.std()),
        "mean_rank_masked": float(ranks[masked & real].double().mean()),
        "mean_rank_unmasked": float(ranks[~masked & real].double().mean()),
        "fully_hidden_share": float(hidden.sum() / max(int(masked.sum()), 1)),
        "mean_span_length": float(np.mean(spans)) if spans else 0.0,
        "anchors_per_sequence": float(info["anchors"].sum(1).double().mean()),
    }
    span_frame = pd.DataFrame({"variant": name, "span_length": spans})
    return summary, per_sequence, span_frame


def plot_method_figure(method, ax=None):
    """GeneMask's Figure 1 as a strip per strategy: kept, masked and anchor tokens along one
    sequence, over a track of the tokens' NPMI rank (darker = better ranked)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    variants = list(dict.fromkeys(method["variant"]))
    grid = np.stack([method.loc[method["variant"] == v, "state"].to_numpy() for v in variants])
    ranks = method.loc[method["variant"] == variants[0], "npmi_rank"].to_numpy(dtype=float)
    if ax is None:
        _, (top, ax) = plt.subplots(2, 1, figsize=(12, 0.45 * len(variants) + 1.2), sharex=True,
                                    gridspec_kw={"height_ratios": [1, len(variants)]})
        top.imshow(-np.log(ranks)[None, :], aspect="auto", cmap="Greys", interpolation="nearest")
        top.set_yticks([0], ["NPMI rank"])
        top.grid(False)
    ax.imshow(grid, aspect="auto", interpolation="nearest", vmin=0, vmax=2,
              cmap=ListedColormap(["#f2f2f2", "#f4a259", "#bc4b51"]))
    ax.set_yticks(range(len(variants)), variants)
    ax.set_xlabel("token position (6-mers)")
    ax.grid(False)
    return ax

