"""Shared test utilities: where the real data is, a skip when it is absent, a book build and what
its pages must not show, and the small notebooks and grid processes the grid tests drive."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from html import unescape as html_unescape
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


#: Measures, in the rendered page, every table and figure against the article's content column.
_MEASURE = """<script>
window.addEventListener("load", () => {
  const column = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const limit = column.clientWidth + 1;
  const wide = [];
  for (const table of column.querySelectorAll("table")) {
    if (table.scrollWidth > limit) {
      const head = (table.querySelector("th") || table).textContent.trim().slice(0, 40);
      wide.push(`table ${table.scrollWidth}px > ${column.clientWidth}px (first cell: ${head})`);
    }
  }
  for (const image of column.querySelectorAll("img")) {
    if (image.getBoundingClientRect().right > column.getBoundingClientRect().right + 1) {
      wide.push(`image ${Math.round(image.getBoundingClientRect().width)}px past the column (${image.src.split("/").pop()})`);
    }
  }
  // issue 23: an interval cell ("0.235 ±0.042", "5,750 [5,333, 6,292]") reads on one line
  const interval = /^[−\-+]?[\d.,]+(?: \(\d+ runs?\))? ?(?:±|\[)/;
  for (const cell of column.querySelectorAll("td")) {
    const text = cell.textContent.trim();
    if (text.length > 40 || !interval.test(text)) continue;
    const range = document.createRange();
    range.selectNodeContents(cell);
    const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
    if (lines.size > 1) wide.push(`interval on ${lines.size} lines: ${text}`);
  }
  const out = document.createElement("pre");
  out.id = "genemask-widths";
  out.textContent = JSON.stringify(wide);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    """The headless browser the width check drives, or skip the test with the reason."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("chromium not found (make tools installs it): rendered table widths cannot be measured")


def overflowing(book: Path, window: str = "1280,1600") -> list[str]:
    """Tables and images of the built book wider than their page's content column in a ``window``-px
    headless chromium (a table pandas renders wider than the column is cut at its edge), and interval
    cells wrapped onto more than one line, as ``page: what``. Each page is measured in a copy with a script that reports the widths."""
    browser = chromium()
    html = book / "_build" / "html"
    found = []
    for page in sorted(html.glob("*.html")):
        text = page.read_text()
        if "<article" not in text:  # index.html is a redirect
            continue
        probe = page.with_name(f".width-{page.name}")
        probe.write_text(text.replace("</body>", _MEASURE + "</body>"))
        try:
            dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                  "--hide-scrollbars", "--virtual-time-budget=3000", f"--window-size={window}", "--dump-dom",
                                  probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
        finally:
            probe.unlink()
        measured = re.search(r'<pre id="genemask-widths"[^>]*>(.*?)</pre>', dom, re.S)
        if measured is None:
            found.append(f"{page.name}: not measured (chromium returned no DOM)")
            continue
        found += [f"{page.name}: {what}" for what in json.loads(html_unescape(measured.group(1)))]
    return found


def committed_ranking() -> Path:
    """The cpu profile's committed k-mer ranking (segmentation PMI), found by its parameters in
    ``results/cpu/pmi/cells.csv``, not by its key (keys change when the key formula does)."""
    from genemask import paths, store

    (row,) = [r for r in store.rows("cpu", "pmi", root=paths.RESULTS) if r.get("pmi") == "segmentation"]
    return store.cell_dir("cpu", "pmi", row["key"], root=paths.RESULTS) / "kmer_ranking.csv"


def write_notebook(path: Path, params_src: str, body: str | list[str]) -> Path:
    """A notebook with a ``parameters`` cell and one code cell per ``body`` entry (what a grid stage runs)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params_src)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(b) for b in ([body] if isinstance(body, str) else body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def process_tree(pid: int) -> list:
    """Every live descendant of ``pid`` (psutil processes); none when it is gone."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def grid_until_kernel(spec: Path, timeout: float, **popen) -> tuple[subprocess.Popen, dict]:
    """Start ``genemask grid spec`` and wait until a notebook kernel runs under it: (the grid's
    process, every process seen in its tree by pid). Fails the test when no kernel starts in time."""
    import psutil

    env = {**os.environ, "PYTHONPATH": str(paths.ROOT / "lib")}
    proc = subprocess.Popen([sys.executable, "-m", "genemask.cli", "grid", str(spec)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    seen: dict[int, psutil.Process] = {}
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in process_tree(proc.pid):
            seen[p.pid] = p
        try:
            if any("ipykernel" in " ".join(p.cmdline()) for p in seen.values() if p.is_running()):
                return proc, seen
        except psutil.Error:
            pass
        time.sleep(0.5)
    proc.kill()
    pytest.fail("the kernel never started")


def random_pretraining_inputs(root: Path) -> dict[str, str]:
    """A small random genome (two 40 kbp records) and a seeded rank table in ``root``, so pretraining
    tests need no demo data or PMI run: ``fasta`` and ``rank_table`` for a PretrainConfig."""
    import numpy as np
    import pandas as pd

    from genemask import genome, tokenizer

    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    fasta = genome.write_fasta({f"r{i}": letters[rng.integers(0, 4, 40_000)].tobytes() for i in range(2)}, root / "g.fa")
    ranks = pd.DataFrame({"kmer": tokenizer.vocab_kmers(6), "rank": rng.permutation(4096) + 1})
    ranks.to_csv(root / "ranks.csv", index=False)
    return {"fasta": str(fasta), "rank_table": str(root / "ranks.csv")}
