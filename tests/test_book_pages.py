"""Book pages are thin: each calls report functions and displays what they return, so that the analysis
is tested as functions (tests/test_report_*.py) and not only by "the page executes"."""
from __future__ import annotations

import re

import pytest

from genemask import paths

MAX_CODE_LINES = 60
PAGES = sorted(paths.BOOK.glob("*.md"))


def code_lines(text: str) -> list[str]:
    """The code lines of a MyST notebook's ``{code-cell}`` blocks, without blanks, comments and cell options."""
    lines, inside = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```{code-cell}"):
            inside = True
        elif inside and stripped.startswith("```"):
            inside = False
        elif inside and stripped and not stripped.startswith(("#", ":")) and stripped != "---":
            lines.append(stripped)
    return lines


def test_code_lines_counts_only_code():
    text = "# Title\n\n```{code-cell}\n:tags: [remove-input]\n\n# a comment\nx = 1\nshow(x)\n```\n\nprose = 2\n"
    assert code_lines(text) == ["x = 1", "show(x)"]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_is_thin(page):
    lines = code_lines(page.read_text())
    assert len(lines) <= MAX_CODE_LINES, f"{page.name}: {len(lines)} code lines (at most {MAX_CODE_LINES}): move the analysis into genemask.report"
    defined = [line for line in lines if re.match(r"(async\s+)?(def|class)\s", line) or re.search(r"\blambda\b", line)]
    assert not defined, f"{page.name} defines functions ({defined}): they belong in genemask.report, with tests"
