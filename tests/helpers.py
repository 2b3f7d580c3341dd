"""Shared test utilities: where the real data is, a skip when it is absent, and a book build and
what its pages must not show."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genemask import paths


def real_data(relative: str):
    """Path under $GENEMASK_DATA, or skip the test with the reason."""
    path = paths.data_dir() / relative
    if not path.exists():
        pytest.skip(f"real data {relative} not found under GENEMASK_DATA={paths.data_dir()}")
    return path


def build_book(where: Path, env: dict | None = None) -> tuple[Path, subprocess.CompletedProcess]:
    """Copy the book (without its build) into ``where`` and build it as `make book` does (offline,
    warnings as errors); (the copy, the build's process)."""
    book = where / "book"
    shutil.copytree(paths.BOOK, book, ignore=shutil.ignore_patterns("_build"))
    exe = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(exe), "build", str(book), "-W", "-n", "--keep-going"], env=env,
                          capture_output=True, text=True, timeout=1200)
    return book, proc


def truncated_cells(book: Path) -> list[str]:
    """Table cells pandas cut at ``display.max_colwidth`` or put for rows and columns it elided (they
    end in ``...``), as ``page: cell``: a verdict cut to "one pretraining run: n..." hides the verdict."""
    cut = re.compile(r"<t[dh]>([^<]*\.\.\.)</t[dh]>")
    return [f"{page.name}: {cell}" for page in sorted((book / "_build" / "html").glob("*.html"))
            for cell in cut.findall(page.read_text())]
