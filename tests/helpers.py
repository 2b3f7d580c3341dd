"""Shared test utilities: where the real data is, a skip when it is absent, and a book build and
what its pages must not show."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
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
    headless chromium (a table pandas renders wider than the column is cut at its edge), as
    ``page: what``. Each page is measured in a copy with a script that reports the widths."""
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
