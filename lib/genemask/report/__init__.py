"""Tables and figures the notebooks and the book show, and the notebook environment they share.

One submodule per stage (``report.pmi``, ``report.masking``, ...) holds that stage's analyses, and
:mod:`.results` what the book reads; this module holds only what every notebook and page needs, and
imports none of them: a notebook runs exactly the report modules it imports, so that an edit to one
stage's analyses or to the book's readers leaves the other notebooks' cells fresh.

Notebooks call :func:`setup_notebook` first, so that every executed notebook has the same quiet,
deterministic output (nbval compares it), the same figure style, and no progress bars.
"""
from __future__ import annotations

import logging
import os
import warnings


def setup_notebook(seed: int = 0) -> None:
    """Quiet libraries, fix seeds and the figure style; call once at the top of a notebook."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    import matplotlib
    import numpy as np
    import seaborn as sns

    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "figure.figsize": (7, 3.6)})
    sns.set_theme(style="whitegrid", context="notebook")
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def show(*items) -> None:
    """What a book page displays, in order: text as Markdown, a matplotlib figure as its image (then
    closed, so that it is not drawn twice), anything else (a frame) as itself. None is skipped, so
    that a section with nothing to say returns None. The one way pages put out Markdown."""
    from IPython.display import Markdown, display

    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            display(Markdown(item))
        elif type(item).__name__ == "Figure" and hasattr(item, "savefig"):
            import matplotlib.pyplot as plt

            display(item)
            plt.close(item)
        else:
            display(item)
