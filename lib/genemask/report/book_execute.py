"""Execute the book's pages in parallel into the jupyter-cache that ``jupyter-book build`` reads.

Jupyter Book 1.x executes a book's pages one after another, and each page's time is mostly its
kernel's: its imports and its report functions, one core busy. This runs them first over all cores
with jupyter-cache's own parallel executor, reading each page with MyST-NB's reader (the one the
build uses, so the cached notebook is the one the build asks for); the build then takes every
output from the cache. A page that fails here is left to the build, which executes it again and
reports the error as before.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

#: MyST-NB's jupyter-cache reader of MyST Markdown pages (an entry point of myst-nb).
MYST_READER = {"name": "myst_nb_md", "type": "plugin"}


def book_pages(book: Path) -> list[Path]:
    """The pages of ``_toc.yml`` (root, then each part's chapters), as ``.md`` files."""
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    names = [toc["root"]]
    for part in toc.get("parts", []) + [{"chapters": toc.get("chapters", [])}]:
        names += [chapter["file"] for chapter in part.get("chapters", [])]
    return [book / f"{name}.md" for name in names]


def execute_pages(book: Path, cache_dir: Path, timeout: int, jobs: int | None = None) -> tuple[list[str], list[str]]:
    """Execute the pages not yet in the cache, ``jobs`` at a time (default: the cores);
    (pages executed, pages that failed)."""
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    cache = get_cache(str(cache_dir))
    pages = [page for page in book_pages(book) if "```{code-cell}" in page.read_text()]
    pks = [cache.add_nb_to_project(str(page), read_data=MYST_READER).pk for page in pages]
    if not cache.list_unexecuted(filter_pks=pks):
        return [], []
    executor = load_executor("local-parallel", cache=cache)
    previous = os.sched_getaffinity(0) if jobs and hasattr(os, "sched_getaffinity") else None
    if previous is not None:  # the executor's pool has a process per core: restrict what it sees
        os.sched_setaffinity(0, sorted(previous)[:jobs])
    try:
        result = executor.run_and_cache(filter_pks=pks, timeout=timeout, allow_errors=False)
    finally:
        if previous is not None:
            os.sched_setaffinity(0, previous)
    failed = [Path(uri).name for uri in result.excepted + result.errored]
    return [Path(uri).name for uri in result.succeeded], failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genemask.report.book_execute", description=__doc__.splitlines()[0])
    parser.add_argument("book", type=Path, help="the book folder (with _toc.yml and _config.yml)")
    parser.add_argument("--cache", type=Path, required=True, help="the jupyter-cache folder the build reads")
    parser.add_argument("--jobs", type=int, default=None, help="pages at a time (default: every core)")
    args = parser.parse_args(argv)
    config = yaml.safe_load((args.book / "_config.yml").read_text())
    timeout = int((config.get("execute") or {}).get("timeout", 300))
    start = time.time()
    done, failed = execute_pages(args.book, args.cache, timeout, args.jobs)
    print(f"book pages executed in parallel: {len(done)} in {time.time() - start:.0f} s"
          + (f"; failed (the build reruns and reports them): {', '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
