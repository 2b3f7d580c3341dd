"""`make reproduce` on the demo profile, in temporary runs and results folders: the whole demo grid,
then the book built from its results with warnings as errors.

The other book test builds the committed `cpu` results; the demo's generated datasets are not the
papers', and a fresh clone's `make reproduce` once failed on exactly that (three pages read the
papers' datasets) while every other test passed. A few minutes on two cores.
"""
import os
import re
import subprocess
import sys

import pytest

from helpers import build_book, overflowing, truncated_cells

from genemask import paths


@pytest.fixture(scope="module")
def demo_book(tmp_path_factory):
    """The demo grid run in temporary folders, then its book built: (book, environment, grid, build)."""
    tmp_path = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "GENEMASK_RUNS": str(tmp_path / "runs"), "GENEMASK_RESULTS": str(tmp_path / "results"),
           "GENEMASK_PROFILE": "demo", "HF_HUB_OFFLINE": "1"}
    grid = subprocess.run([sys.executable, "-m", "genemask.cli", "grid", str(paths.PARAMS / "demo.yaml"), "--jobs", "2"],
                          cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert grid.returncode == 0, grid.stdout[-3000:] + grid.stderr[-3000:]
    assert (tmp_path / "results" / "demo" / "fewshot" / "cells.csv").exists()
    book, build = build_book(tmp_path, env)
    return book, build


def test_demo_grid_then_its_book_builds(demo_book):
    book, build = demo_book
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert not truncated_cells(book)
    html = book / "_build" / "html"
    # the demo's datasets are not the papers': the chapter says so and shows the paper's values
    chapter = (html / "paper_genemask.html").read_text()
    assert "no few-shot results on the papers" in chapter and "demo" in chapter
    # the front page says the data are generated, and the ledger gives synthetic data no verdict word
    assert "This book shows generated demo data" in (html / "index.html").read_text()
    verdicts = set(re.findall(r"Verdict:</em> <strong>([^<]*)", (html / "claims.html").read_text()))
    assert verdicts == {"not testable here"}, verdicts


def test_demo_book_tables_fit_the_content_column(demo_book):
    book, build = demo_book
    assert build.returncode == 0, "the demo book did not build (see the test above)"
    assert not overflowing(book)
