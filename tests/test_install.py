"""The lean install: the core (collator, tokenizer, PMI/NPMI ranking, pretraining, fine-tuning, the
CLI) imports and runs without the workflow and book stacks, and the core wheel installs into an
empty environment and works outside a checkout."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

from genemask import paths

#: Import names of what the [workflow] and [book] extras bring and the core never needs.
NOT_CORE = ("snakemake", "papermill", "nbformat", "nbclient", "ipykernel", "IPython", "matplotlib", "seaborn",
            "jupyter_book", "jupytext", "pyarrow")

CORE_SCRIPT = """
import importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {not_core!r}:
            raise ImportError(f"{{name}} is not part of the core install")

sys.meta_path.insert(0, Refuse())
import numpy as np, torch
from genemask import cli, finetune, genome, masking, models, pmi, pretrain, tasks, tokenizer

rng = np.random.default_rng(0)
letters = np.frombuffer(b"ACGT", dtype=np.uint8)
fasta = genome.write_fasta({{f"r{{i}}": letters[rng.integers(0, 4, 40_000)].tobytes() for i in range(2)}}, "my.fa")
ranking = pmi.ranking_of_fasta(pmi.PMIConfig(fasta=str(fasta), max_n=6, min_count=5))
tok = tokenizer.build_tokenizer(6)
collator = masking.make_collator("genemask", tok, rank_table=str(ranking), seed=0)
batch = collator([tok(tokenizer.kmerize(letters[rng.integers(0, 4, 500)].tobytes().decode())) for _ in range(8)])
assert (batch["labels"] != -100).any()
cfg = pretrain.PretrainConfig(steps=2, batch_size=4, max_len=40, eval_steps=1, eval_size=4, fasta=str(fasta),
                              rank_table=str(ranking), out_dir="run")
pretrain.write_model_card(pretrain.run(cfg, verbose=False).checkpoint)
print("core ok", sorted(m for m in sys.modules if m.split(".")[0] in {not_core!r}))
"""


def _core_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(paths.ROOT / "lib"), "GENEMASK_CACHE": str(tmp_path / "cache"),
            "GENEMASK_QUIET": "1"}


def test_core_runs_without_the_workflow_and_book_stacks(tmp_path):
    """A ranking, a collator, two pretraining steps and a model card with every NOT_CORE module refused."""
    result = subprocess.run([sys.executable, "-c", CORE_SCRIPT.format(not_core=NOT_CORE)], cwd=tmp_path,
                            env=_core_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "core ok []" in result.stdout
    assert (tmp_path / "run" / "checkpoint" / "README.md").is_file()


def test_core_dependencies_leave_the_stacks_to_the_extras():
    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split("==")[0].split(">")[0].split("<")[0].split("[")[0].strip().lower() for dep in project["dependencies"]}
    assert names == {"torch", "transformers", "accelerate", "safetensors", "tokenizers", "numpy", "pandas", "scikit-learn"}
    extras = project["optional-dependencies"]
    assert {"snakemake==9.27.1", "papermill"} <= set(extras["workflow"]) and "jupyter-book>=1.0.4,<2" in extras["book"]
    assert "genemask[workflow,book]" in extras["test"] and "tensorboard" in extras["tensorboard"]


@pytest.mark.skipif(os.environ.get("GENEMASK_SLOW") != "1",
                    reason="installs the core wheel into an empty venv (5-6 minutes on the 2-core machine): GENEMASK_SLOW=1")
def test_core_wheel_installs_into_an_empty_venv(tmp_path):
    started = time.perf_counter()
    dist, venv, home = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    home.mkdir()
    source = tmp_path / "source"  # pip builds in the tree it is given: a copy keeps build/ out of the checkout
    shutil.copytree(paths.ROOT / "lib", source / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(paths.ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(dist)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(dist.glob("genemask-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    # Nothing of this checkout on the path: pip would take lib/genemask.egg-info for an installed genemask.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GENEMASK_CACHE", "VIRTUAL_ENV")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], cwd=home, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert pip.returncode == 0, pip.stderr[-2000:]
    installed = time.perf_counter() - started

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(command), cwd=home, env=env, capture_output=True, text=True, timeout=600)

    probe = run("python", "-c", textwrap.dedent("""
        import importlib.util, genemask
        from genemask import masking, paths, tokenizer
        collator = masking.make_collator("random", tokenizer.build_tokenizer(6), seed=0)
        print(genemask.__file__, paths.cache_dir(), paths.in_checkout(),
              [m for m in %r if importlib.util.find_spec(m)])
        """ % (NOT_CORE,)))
    assert probe.returncode == 0, probe.stderr[-2000:]
    location, cache, in_checkout, present = probe.stdout.split(" ", 3)
    assert location.startswith(str(venv)) and cache == str(tmp_path / "xdg" / "genemask") and in_checkout == "False"
    assert present.strip() == "[]"
    assert run("genemask", "--version").stdout.startswith("genemask ")
    assert run("genemask", "pretrain", "--help").stdout.startswith("usage: genemask pretrain")
    demo = run("genemask", "demo-data")
    assert demo.returncode == 0 and demo.stdout.startswith(str(tmp_path / "xdg" / "genemask" / "demo"))
    assert not list(venv.rglob(".cache"))  # nothing cached inside the environment
    grid = run("genemask", "grid", "params/demo.yaml")
    assert grid.returncode == 2 and grid.stderr.count("\n") == 1 and "genemask checkout" in grid.stderr
    print(f"core wheel built and installed into an empty venv in {installed:.0f} s")
