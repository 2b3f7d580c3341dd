"""The book's provenance report: fresh, stale and orphaned results, read from results/ alone."""
import json

import nbformat
import yaml

from genemask.grid import code, plan_grid, provenance
from genemask.grid.plan import notebook_code
from genemask.report.provenance import (provenance_note, provenance_summary, provenance_table, short_reason, stale_reasons,
                                        verifications)


def _results(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENEMASK_NOTEBOOK_DIRS", str(tmp_path))  # the allow-list for this test notebook
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1\nout_dir = None")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "make.ipynb")
    params = tmp_path / "t.yaml"
    params.write_text(yaml.safe_dump({"profile": "t", "stages": [
        {"name": "make", "notebook": str(tmp_path / "make.ipynb"), "grid": {"x": [1, 2]}}]}))
    one, two = plan_grid(params).cells
    stage = tmp_path / "results" / "t" / "make"
    now = code.Library.now().code_hash(notebook_code(tmp_path / "make.ipynb"))
    for cell, made_by in ((one, now), (two, "0000000000000000")):
        (stage / cell.key).mkdir(parents=True)
        (stage / cell.key / "provenance.json").write_text(json.dumps(
            {"library_hash": "1111111111111111", "code_hash": made_by, "commit": "abcdef1234567890",
             "dirty": made_by != now, "wall_seconds": 120, "cpu_seconds": 60, "run_id": cell.key}))
    (stage / "cells.csv").write_text(f"key,x\n{one.key},1\n{two.key},2\n")
    (tmp_path / "results" / "t" / "gone").mkdir()
    (tmp_path / "results" / "t" / "gone" / "cells.csv").write_text("key,y\nabcdefabcdefabcd,3\n")
    return params, one, two


def test_table_flags_stale_and_orphaned_cells(tmp_path, monkeypatch):
    params, one, two = _results(tmp_path, monkeypatch)
    table = provenance_table("t", params).set_index("key")
    assert table.loc[one.key, "state"] == "fresh" and table.loc[one.key, "commit"] == "abcdef1234"
    assert table.loc[two.key, "state"] == "stale" and table.loc[two.key, "commit"] == "abcdef1234 (dirty)"
    assert table.loc[two.key, "why"] == "other code" and table.loc[two.key, "library"] == "1111111111111111"
    assert table.loc["abcdefabcdefabcd", "state"] == "orphaned" and table.loc["abcdefabcdefabcd", "library"] == "unknown"
    reasons = stale_reasons(table.reset_index())
    assert reasons["cells"].to_dict() == {("make", "other code"): 1, ("gone", f"{params} does not ask for it"): 1}
    summary = provenance_summary(table.reset_index())
    assert summary.loc["make", ["cells", "fresh", "verified", "stale", "orphaned"]].tolist() == [2, 1, 0, 1, 0]
    assert summary.loc["make", "wall h"] == 0.07
    assert summary.loc["gone", "wall h"] == "not recorded"  # no record with times: said, not NaN
    note = provenance_note(table.reset_index(), "t")
    assert "**1 are stale**" in note and "**1 are orphaned**" in note and f"library `{provenance.library_hash()}`" in note
    assert verifications(table.reset_index()).empty


def test_a_verified_cell_says_how_its_rerun_compared(tmp_path, monkeypatch):
    """Bit for bit on the same CPU and within the seeds on another are not the same evidence."""
    params, one, two = _results(tmp_path, monkeypatch)
    record_file = tmp_path / "results" / "t" / "make" / two.key / "provenance.json"
    now = code.Library.now().code_hash(notebook_code(tmp_path / "make.ipynb"))
    record = json.loads(record_file.read_text())
    record["reproduced"] = [{"code_hash": now, "key": two.key, "equal": True, "commit": "1234567890abcdef",
                             "cpu_model": "AMD EPYC", "kind": "bit for bit on the same CPU"}]
    record_file.write_text(json.dumps(record))
    table = provenance_table("t", params)
    assert verifications(table).to_dict()["how the rerun compared"] == {
        ("make", two.key): "bit for bit on the same CPU; rerun at commit 1234567890 on AMD EPYC"}


def test_all_fresh_says_so(tmp_path, monkeypatch):
    params, one, two = _results(tmp_path, monkeypatch)
    record = tmp_path / "results" / "t" / "make" / two.key / "provenance.json"
    fresh = json.loads((record.parent.parent / one.key / "provenance.json").read_text())["code_hash"]
    record.write_text(json.dumps({**json.loads(record.read_text()), "code_hash": fresh}))
    table = provenance_table("t", params)
    table = table[table.state != "orphaned"]
    assert provenance_note(table, "t").endswith("Every one was made by the code in this repository now.")


def test_dirty_means_code_or_parameters_not_results(tmp_path, monkeypatch):
    """Results the grid collects do not make the next cell's provenance dirty; an edited library does."""
    import subprocess

    from genemask import paths
    from genemask.grid import provenance as grid_provenance

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    for name in ("lib/genemask/x.py", "results/cpu/a.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    (tmp_path / "results/cpu/a.csv").write_text("2\n")
    assert grid_provenance.git_state()["dirty"] is False
    (tmp_path / "lib/genemask/x.py").write_text("2\n")
    assert grid_provenance.git_state()["dirty"] is True


def test_short_reason_names_what_differs_and_counts_upstream_cells():
    reason = ("made by other notebook code (recorded as abc); made by code 1111, now 2222 (masking.py changed); "
              "upstream pmi/k1 is stale; upstream pretrain/k2 was remade since")
    assert short_reason(reason) == "other notebook code; other code; 2 upstream cells not fresh or remade since"
    assert short_reason("upstream pmi/k1 is stale") == "1 upstream cell not fresh or remade since"
    assert short_reason("") == ""


def test_freshness_line_counts_the_cells_behind_a_page_and_links_provenance():
    import pandas as pd

    from genemask.report.provenance import freshness_line

    table = pd.DataFrame({"stage": ["pmi", "pmi", "masking", "gue", "gue", "gue"],
                          "state": ["verified", "fresh", "stale", "stale", "orphaned", "stale"]})
    line = freshness_line(["pmi", "masking"], "cpu", table)
    assert line.startswith("*Freshness:* this page's numbers come from 3 result cells (stages `pmi`, `masking`): "
                           "1 fresh, 1 verified, 1 stale.") and "[Provenance](provenance.html)" in line
    assert "6 result cells: 1 fresh, 1 verified, 3 stale, 1 orphaned." in freshness_line(None, "cpu", table)
    assert "(4 stages)" in freshness_line(["pmi", "masking", "gue", "x"], "cpu", table)
    assert "no collected results of stage `rate`" in freshness_line(["rate"], "cpu", table)
    assert "\n" not in line
    # the stale masking cell's stage has no verified rerun; pmi's has, so a stale pmi cell is said to be of a sampled stage
    assert "Of the stale" not in line
    sampled = freshness_line(["pmi"], "cpu", pd.concat([table, pd.DataFrame({"stage": ["pmi"], "state": ["stale"]})]))
    assert "1 fresh, 1 verified, 1 stale. Of the stale, 1 is of stages where a rerun of a sample came out equal." in sampled


def test_every_page_names_stages_its_profile_runs():
    from genemask import paths
    from genemask.report.chapters import page_stages

    stages = {s["name"] for s in yaml.safe_load((paths.PARAMS / "cpu.yaml").read_text())["stages"]}
    for page, named in page_stages().items():
        assert set(named) <= stages, (page, set(named) - stages)
        assert (paths.ROOT / "book" / f"{page}.md").read_text().count(f"show(freshness({page!r}))") == 1, page
