"""`make reproduce` on the demo profile, in temporary runs and results folders: the whole demo grid,
then the book built from its results with warnings as errors.

The other book test builds the committed `cpu` results; the demo's generated datasets are not the
papers', and a fresh clone's `make reproduce` once failed on exactly that (three pages read the
papers' datasets) while every other test passed. A few minutes on two cores.
"""
import os
import subprocess
import sys

from helpers import build_book, truncated_cells

from genemask import paths


def test_demo_grid_then_its_book_builds(tmp_path):
    env = {**os.environ, "GENEMASK_RUNS": str(tmp_path / "runs"), "GENEMASK_RESULTS": str(tmp_path / "results"),
           "GENEMASK_PROFILE": "demo", "HF_HUB_OFFLINE": "1"}
    grid = subprocess.run([sys.executable, "-m", "genemask.cli", "grid", str(paths.PARAMS / "demo.yaml"), "--jobs", "2"],
                          cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert grid.returncode == 0, grid.stdout[-3000:] + grid.stderr[-3000:]
    assert (tmp_path / "results" / "demo" / "fewshot" / "cells.csv").exists()
    book, build = build_book(tmp_path, env)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert not truncated_cells(book)
    # the demo's datasets are not the papers': the chapter says so and shows the paper's values
    chapter = (book / "_build" / "html" / "paper_genemask.html").read_text()
    assert "no few-shot results on the papers" in chapter and "demo" in chapter
