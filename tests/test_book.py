"""The book builds offline with warnings as errors (the same flags as `make book`), shows every cell whole,
and every rendered table and figure fits its page's content column in a 1280-px window."""
import pytest

from helpers import build_book, overflowing, truncated_cells


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(the book's copy, the build's process): one build for the tests below."""
    return build_book(tmp_path_factory.mktemp("book"))


def test_book_builds_with_warnings_as_errors(built):
    book, proc = built
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    index = book / "_build" / "html" / "index.html"
    assert index.exists() and "GeneMask" in index.read_text()
    assert "cdn.jsdelivr.net/npm/mathjax" not in index.read_text()
    assert not truncated_cells(book)


def test_every_table_fits_the_content_column(built):
    book, proc = built
    assert proc.returncode == 0, "the book did not build (see the test above)"
    assert not overflowing(book)
