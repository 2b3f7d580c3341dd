"""A notebook run's hold on its ``out_dir`` (notebooks 04 and 05): the claim of
:func:`genemask.io.claim_out_dir` kept for the kernel's life, since a notebook writes its results
cell after cell. Its own module, not :mod:`genemask.io`: every notebook runs ``io``, and a cell's
freshness is the code of the modules it runs (:mod:`genemask.grid.code`), so adding this there
would stale every committed cell for code none of them ran."""
from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .io import claim_out_dir, read_claim

#: What the grid's cell runner claims a cell's ``out_dir`` as (:mod:`genemask.grid.cell`); a notebook
#: run inside that folder adopts it (the runner already refused foreign files and other runs).
GRID_CLAIM = "grid cell"
#: The ``out_dir`` claims this process holds until it exits: {folder: (identity, its claim's stack)}.
_HELD: dict[Path, tuple[dict, ExitStack]] = {}


def identity_digest(identity: dict[str, Any]) -> str:
    """A short name for a run's identity (its parameters): the default ``out_dir`` of a notebook run."""
    import hashlib

    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]


def hold_out_dir(out_dir: str | Path | None, what: str, identity: dict[str, Any], default_root: str | Path) -> Path:
    """Claim a notebook run's ``out_dir`` (:func:`claim_out_dir`) for the rest of this process: a
    notebook's cells write there one after another, so the claim cannot be one ``with`` block; the
    kernel's exit releases the lock. ``None`` means a folder of its own under ``default_root``, named
    by the run's parameters, so two runs with other parameters never share one. Inside a grid cell's
    folder (claimed by its runner) the folder is adopted. Running the notebook again in the same
    kernel with the same parameters keeps the claim; with others, an explicit ``out_dir`` is refused."""
    import atexit

    folder = Path(out_dir).expanduser() if out_dir is not None else Path(default_root) / identity_digest(identity)
    held = _HELD.get(folder.resolve())
    if held is not None:
        if held[0] == identity:
            return folder
        held[1].close()  # this kernel's earlier run: claim_out_dir below refuses or re-claims like any other
        del _HELD[folder.resolve()]
    adopt = folder.is_dir() and read_claim(folder, GRID_CLAIM) is not None
    stack = ExitStack()
    stack.enter_context(claim_out_dir(folder, what, identity, adopt=adopt))
    if not _HELD:
        atexit.register(lambda: [stack.close() for _, stack in list(_HELD.values())])
    _HELD[folder.resolve()] = (identity, stack)
    return folder
