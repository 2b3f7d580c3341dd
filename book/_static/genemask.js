// Issue 23: an interval cell ("0.263 ±0.018", "15.3 ± 0.2", "0.156 [0.111, 0.181]") reads on one
// line. Pandas' plain tables squeeze their columns and wrap such a cell at a space; long text cells
// keep wrapping. tests/helpers.py measures the result: no table wider than the content column, no
// interval cell on two lines.
document.addEventListener("DOMContentLoaded", () => {
  const interval = /^[−\-+]?[\d.,]+(?: \(\d+ runs?\))?\s?(?:±|\[)/;
  for (const cell of document.querySelectorAll("article table td")) {
    const text = cell.textContent.trim();
    if (text.length <= 40 && interval.test(text)) cell.style.whiteSpace = "nowrap";
  }
});
