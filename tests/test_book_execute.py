"""The book's pages executed in parallel before the build: the build must find each in the cache
(the same reader, the same notebook), and a failing page is left for the build to report."""
from __future__ import annotations

from pathlib import Path

import yaml

from genemask import paths
from genemask.report.book_execute import MYST_READER, book_pages, execute_pages

PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {title}

```{{code-cell}}
:tags: [remove-input]

print({code})
```
"""


def _book(root: Path, pages: dict[str, str]) -> Path:
    book = root / "book"
    book.mkdir()
    (book / "_config.yml").write_text(yaml.safe_dump({"execute": {"execute_notebooks": "cache", "timeout": 60}}))
    names = list(pages)
    (book / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": names[0],
                                                   "parts": [{"caption": "x", "chapters": [{"file": n} for n in names[1:]]}]}))
    for name, code in pages.items():
        (book / f"{name}.md").write_text(PAGE.format(title=name, code=code) if code else f"# {name}\n\nNo code.\n")
    return book


def test_the_real_books_pages_are_its_toc():
    pages = book_pages(paths.BOOK)
    assert pages[0].name == "index.md" and all(p.exists() for p in pages)
    assert {p.name for p in pages} == {p.name for p in paths.BOOK.glob("*.md")}


def test_pages_executed_here_are_the_ones_the_build_finds_in_the_cache(tmp_path):
    from jupyter_cache import get_cache
    from myst_nb.core.read import myst_nb_reader_plugin

    book = _book(tmp_path, {"index": "1 + 1", "a": "'a' * 3", "b": None, "bad": "1 / 0"})
    done, failed = execute_pages(book, tmp_path / "cache", timeout=60, jobs=2)
    assert sorted(done) == ["a.md", "index.md"] and failed == ["bad.md"]  # "b" has no code: nothing to run
    cache = get_cache(str(tmp_path / "cache"))
    for name, shown in (("index", "2"), ("a", "aaa")):
        notebook = myst_nb_reader_plugin(str(book / f"{name}.md"))  # what the build reads
        _, merged = cache.merge_match_into_notebook(notebook)
        assert merged.cells[-1].outputs[0]["text"].strip() == shown
    assert execute_pages(book, tmp_path / "cache", timeout=60, jobs=2) == ([], ["bad.md"])  # cached: only the failure reruns
    assert MYST_READER["name"] == "myst_nb_md"
