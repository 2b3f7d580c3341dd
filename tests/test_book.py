"""The book builds offline with warnings as errors (the same flags as `make book`)."""
import shutil
import subprocess
import sys
from pathlib import Path

from genemask import paths


def test_book_builds_with_warnings_as_errors(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(paths.BOOK, book, ignore=shutil.ignore_patterns("_build"))
    exe = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(exe), "build", str(book), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    index = book / "_build" / "html" / "index.html"
    assert index.exists() and "GeneMask" in index.read_text()
    assert "cdn.jsdelivr.net/npm/mathjax" not in index.read_text()
