"""The book builds offline with warnings as errors (the same flags as `make book`)."""
from helpers import build_book, truncated_cells


def test_book_builds_with_warnings_as_errors(tmp_path):
    book, proc = build_book(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    index = book / "_build" / "html" / "index.html"
    assert index.exists() and "GeneMask" in index.read_text()
    assert "cdn.jsdelivr.net/npm/mathjax" not in index.read_text()
    assert not truncated_cells(book)
