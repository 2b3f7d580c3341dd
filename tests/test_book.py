"""The book builds offline with warnings as errors (the same flags as `make book`), shows every cell whole,
every rendered table and figure fits its page's content column in a 1280-px window, and each results
page's freshness line counts the stages its numbers are read from."""
import json
import os

import pytest

from genemask.report.chapters import TRACE_READS, page_stages
from helpers import build_book, overflowing, truncated_cells


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(the book's copy, the build's process): one build for the tests below, its page kernels
    tracing the results they read into ``reads/``."""
    where = tmp_path_factory.mktemp("book")
    (where / "reads").mkdir()
    return build_book(where, env={**os.environ, TRACE_READS: str(where / "reads")})


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


def test_each_results_page_counts_the_stages_it_reads(built):
    """Every page that reads result files shows a freshness line, and that line counts every stage the
    page read (its declared ``page_stages``), whichever report function did the reading."""
    book, proc = built
    assert proc.returncode == 0, "the book did not build (see the test above)"
    traces = [json.loads(p.read_text()) for p in (book.parent / "reads").glob("*.json")]
    declared = page_stages()
    assert {t["page"] for t in traces} >= {*declared, "index"}, "a page's kernel traced nothing"
    for trace in traces:
        if trace["page"] is None:
            assert not trace["stages"], f"a page read {trace['stages']} and showed no freshness line"
        elif trace["page"] != "index":  # the front page counts every stage
            assert set(trace["stages"]) <= set(declared[trace["page"]]), (trace["page"], set(trace["stages"]) - set(declared[trace["page"]]))
