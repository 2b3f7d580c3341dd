"""Stored notebook outputs are machine-stable: nbval passes with one and two threads and without the
CPU's vector instructions (``ATEN_CPU_CAPABILITY=default``, which moves float32 training noise the
way another CPU does), each time from a fresh cache, so every number is computed again.

Every CI run checks ``03_pretrain``, the notebook whose stored outputs come from training (about
1.5 CPU minutes per configuration). ``GENEMASK_STABILITY_NOTEBOOKS=all`` checks every stage
notebook the same way (01-06; about 10 CPU minutes per configuration, for a change of rounding).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from genemask import genome, paths

#: The third configuration, one thread with the CPU's vector instructions, is the suite's own nbval
#: run of the notebooks: ``test_pretrain_demo.py`` trains notebook 03's run in the default cache (one
#: thread, as ``PretrainConfig.threads`` sets) and nbval compares the notebook against it, from a
#: fresh cache on a fresh clone (CI). Running it here as well cost ~45 CPU-seconds and checked nothing more.
CONFIGURATIONS = {
    "2-threads": {"OMP_NUM_THREADS": "2"},
    "no-simd": {"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "default"},
}
DEFAULT_NOTEBOOKS = ["03_pretrain.ipynb"]


def notebooks() -> list:
    if os.environ.get("GENEMASK_STABILITY_NOTEBOOKS") == "all":
        return sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    return [paths.NOTEBOOKS / name for name in DEFAULT_NOTEBOOKS]


def fresh_cache(root):
    """A new cache that shares only the generated demo data and tokenized corpora (integer, and
    the same on every machine); rankings, runs and checkpoints are all recomputed in it."""
    genome.ensure_demo_genome()
    shared = paths.cache_dir()
    root.mkdir()
    for name in ("demo", "corpus"):
        (shared / name).mkdir(exist_ok=True)
        (root / name).symlink_to(shared / name)
    return root


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_notebooks_pass_nbval_across_cpus_and_threads(configuration, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")}
    env.update(CONFIGURATIONS[configuration], GENEMASK_CACHE=str(fresh_cache(tmp_path / "cache")),
               PYTHONPATH=os.pathsep.join(filter(None, [str(paths.ROOT / "lib"), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, notebooks())]
    proc = subprocess.run(cmd, cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, f"nbval under {CONFIGURATIONS[configuration]}:\n{proc.stdout[-6000:]}"
