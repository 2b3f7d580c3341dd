"""The grid on tiny generated notebooks: Snakemake runs, caching, failures, references, parameter
checks, provenance and staleness, and each defect of issue 16 with the input that showed it."""
import json
import signal
import time

import nbformat
import pytest
import yaml

from genemask import grid, paths
from genemask.grid import code, provenance, state
from genemask.grid.workflow import profile_lock
from helpers import grid_until_kernel, process_tree
from helpers import write_notebook as _notebook




@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GENEMASK_NOTEBOOK_DIRS", str(tmp_path))  # the allow-list for these test notebooks
    _notebook(tmp_path / "make.ipynb", "x = 1\nout_dir = None",
              "import pathlib\nassert x != 3, 'x must not be 3'\n"
              "pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
              "pathlib.Path(out_dir, 'value.txt').write_text(str(x * 10))\n"
              f"pathlib.Path(out_dir, 'where.json').write_text('{{\"path\": \"' + out_dir + '\"}}')")
    _notebook(tmp_path / "use.ipynb", "source = ''\nout_dir = None",
              "import pathlib\npathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
              "pathlib.Path(out_dir, 'got.txt').write_text(pathlib.Path(source).read_text())")
    return tmp_path


def _params(tmp_path, stages, name="p.yaml", profile="t"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"profile": profile, "stages": stages}))
    return path


def _quiet(*_):
    return None


def test_runs_caches_reports_failures_and_chains_stages(workspace):
    """Also: an upstream failure blocks its downstream cells by name (none silently dropped);
    provenance is recorded and results carry no machine paths."""
    spec = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2, 3]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make/value.txt"}},
    ])
    cells = grid.run_grid(spec, jobs=2, echo=_quiet)
    make = [c for c in cells if c.stage == "make"]
    assert sorted(c.status for c in make) == ["done", "done", "failed"]
    failed = next(c for c in make if c.status == "failed")
    assert "x must not be 3" in failed.error and not failed.output.exists()
    assert failed.output.with_name(f"{failed.key}.failed.ipynb").exists()
    use = [c for c in cells if c.stage == "use"]
    assert sorted(c.status for c in use) == ["blocked", "done", "done"]
    assert next(c for c in use if c.status == "blocked").error == f"not run: upstream make/{failed.key} failed"
    assert sorted((c.out_dir / "got.txt").read_text() for c in use if c.status == "done") == ["10", "20"]
    report = json.loads((workspace / "runs" / "t" / "grid_report.json").read_text())
    assert len(report) == 6
    collected = {p.name for p in (workspace / "results" / "t" / "make").iterdir()}
    assert collected == {"cells.csv"} | {c.key for c in make if c.status == "done"}

    done = next(c for c in make if c.status == "done")
    record = json.loads((workspace / "results" / "t" / "make" / done.key / "provenance.json").read_text())
    assert record["library_hash"] == provenance.library_hash() and len(record["library_hash"]) == 16
    assert set(record) >= {"commit", "dirty", "versions", "params", "wall_seconds", "cpu_seconds", "run_id", "finished"}
    assert record["versions"]["papermill"] and record["wall_seconds"] > 0 and record["cpu_seconds"] > 0
    assert record["params"] == {"x": done.params["x"]}
    use_record = json.loads(next((workspace / "results" / "t" / "use").glob("*/provenance.json")).read_text())
    assert use_record["params"]["source"].startswith("@make/") and list(use_record["inputs"])[0].startswith("make/")
    for file in (workspace / "results").rglob("*.*"):
        assert str(workspace) not in file.read_text(), file  # e.g. where.json's out_dir is @make/<key>
    assert json.loads((workspace / "results" / "t" / "make" / done.key / "where.json").read_text())["path"] == f"@make/{done.key}"

    again = grid.run_grid(spec, jobs=2, echo=_quiet)
    assert sorted(c.status for c in again) == ["blocked", "cached", "cached", "cached", "cached", "failed"]


def test_a_long_step_log_is_collected_compacted(workspace):
    """A pretraining step log longer than report.pretrain.RESULT_LOG_ROWS reaches results/ as one
    row per block of steps, even when its per-step text is over the size limit; runs/ keeps it whole."""
    import pandas as pd

    from genemask.report import pretrain as pretrain_report

    _notebook(workspace / "log.ipynb", "n = 1\nout_dir = None",
              "import pathlib\npathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
              "rows = ''.join(f'{i},{i % 7 / 8},' + (f'{9000 - i / 10}' if i % 250 == 0 else '') + ',random,2000\\n'"
              " for i in range(1, n + 1))\n"
              "pathlib.Path(out_dir, 'metrics.csv').write_text('step,loss,val_perplexity,phase,tokens\\n' + rows)")
    spec = _params(workspace, [{"name": "log", "notebook": str(workspace / "log.ipynb"), "grid": {"n": [80_000]}}])
    (cell,) = grid.run_grid(spec, echo=_quiet)
    full = pd.read_csv(cell.out_dir / "metrics.csv")
    assert cell.status == "done" and (cell.out_dir / "metrics.csv").stat().st_size > grid.RESULT_MAX_BYTES
    stored = pd.read_csv(workspace / "results" / "t" / "log" / cell.key / "metrics.csv")
    assert len(stored) == 1_600 and stored["step"].iloc[-1] == 80_000  # 50 steps a row: 50 divides 250
    assert stored["tokens"].sum() == full["tokens"].sum()
    assert len(stored) <= pretrain_report.RESULT_LOG_ROWS
    pd.testing.assert_frame_equal(pretrain_report.eval_rows(stored).reset_index(drop=True)[["step", "val_perplexity"]],
                                  pretrain_report.eval_rows(full).reset_index(drop=True)[["step", "val_perplexity"]])


def test_unknown_parameter_is_rejected_before_running(workspace):
    spec = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"sorce": "x"}},
    ])
    with pytest.raises(grid.GridError, match=r"unknown parameter\(s\) \['sorce'\] for use.ipynb; it declares \['out_dir', 'source'\]"):
        grid.run_grid(spec, echo=_quiet)
    assert not (workspace / "runs").exists()


def test_mistyped_value_is_rejected(workspace):
    spec = _params(workspace, [{"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": ["one"]}}])
    with pytest.raises(grid.GridError, match=r"p.yaml: stage 'make': parameter 'x' of make.ipynb expects int"):
        grid.run_grid(spec, echo=_quiet)


@pytest.mark.parametrize("text, message", [
    ("stages: [{name: a, notebook: nope.ipynb}]", r"p.yaml: stage 1 \(a\): notebook nope.ipynb does not exist"),
    ("stages: [{name: a}]", r"p.yaml: stage 1: missing 'notebook'"),
    ("stages: [{name: a, notebook: NB, gird: {}}]", r"p.yaml: stage 1: unknown key\(s\) \['gird'\]"),
    # issue 12: these three gave TypeError tracebacks
    ("stages: 5", r"p.yaml: 'stages' must be a non-empty list of stage mappings, got int 5"),
    ("stages: [{name: 123, notebook: NB}]", r"p.yaml: stage 1: 'name' must be a string, got int 123"),
    ("stages: [{name: a, notebook: NB, params: [1, 2]}]", r"p.yaml: stage 1 \(a\): 'params' must be a mapping .*got list \[1, 2\]"),
    # issue 16
    ("profle: x\nstages: [{name: a, notebook: NB}]", r"p.yaml: unknown top-level key\(s\) \['profle'\]; allowed: profile, stages"),
    ("stages: [{name: a, notebook: NB, grid: {x: []}}]", r"p.yaml: stage 1 \(a\): 'grid' parameter 'x' has no values"),
    ("profile: ../../x\nstages: [{name: a, notebook: NB}]", r"p.yaml: 'profile' '../../x' is not a safe folder name"),
    ("stages: [{name: ../a, notebook: NB}]", r"p.yaml: stage 1: 'name' '../a' is not a safe folder name"),
    ("stages: [{name: a, notebook: NB, cells: []}]", r"'cells' must be a non-empty list"),
    ("stages: [{name: a, notebook: NB, timeout: -5}]", r"'timeout' must be a positive number of seconds"),
    ("stages: [{name: a, notebook: NB}, {name: a, notebook: NB}]", r"duplicate stage name\(s\) \['a'\]"),
])
def test_bad_params_file(workspace, text, message):
    path = workspace / "p.yaml"
    path.write_text(text.replace("NB", str(workspace / "make.ipynb")))
    with pytest.raises(grid.GridError, match=message):
        grid.load_spec(path)


def test_dry_run_lists_every_cell_including_downstream(workspace):
    """On a fresh checkout the dry run lists downstream cells too (it listed 4 of demo's 32)."""
    spec = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make/value.txt"}},
    ])
    lines = []
    cells = grid.run_grid(spec, dry_run=True, echo=lines.append)
    assert [c.status for c in cells] == ["planned"] * 4 and not (workspace / "runs").exists()
    assert sum(line.startswith("  to run ") for line in lines) == 4 and lines[-1].endswith("0 done and fresh, 0 verified, 0 stale, 4 to run")


def test_demo_dry_run_lists_all_its_cells(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    spec = grid.load_spec(paths.PARAMS / "demo.yaml")
    cells = grid.run_grid(paths.PARAMS / "demo.yaml", dry_run=True, echo=_quiet)
    assert {c.stage for c in cells} == {s.name for s in spec.stages} and all(c.status == "planned" for c in cells)
    pretrain = [c for c in cells if c.stage == "pretrain"]
    assert len({c.params["strategy"] for c in pretrain}) == len(pretrain) == 8  # every strategy, once


def test_reference_selects_upstream_cells_by_parameter(workspace):
    spec = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make[x=2]/value.txt"}},
    ])
    cells = grid.run_grid(spec, jobs=1, stages=["use"], echo=_quiet)  # runs make[x=2] for it, not make[x=1]
    assert [(c.out_dir / "got.txt").read_text() for c in cells if c.stage == "use"] == ["20"]
    assert sorted(c.status for c in cells if c.stage == "make") == ["done", "planned"]


@pytest.mark.parametrize("source, message", [
    ("@make[x=7]/value.txt", r"no cell of stage 'make' has x=7 \(its cells have \{'x': \['1', '2'\]\}\)"),
    ("@mkae/value.txt", r"refers to no stage 'mkae'"),
    ("@use/got.txt", r"refers to a later stage 'use'|refers to no stage 'use'"),
    ("@make[x]/value.txt", r"selector item 'x' is not name=value"),
])
def test_bad_reference_fails_before_anything_runs(workspace, source, message):
    bad = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": source}},
    ])
    with pytest.raises(grid.GridError, match=message):
        grid.run_grid(bad, jobs=1, echo=_quiet)
    assert not (workspace / "runs").exists()  # the upstream stage did not run first


def test_upstream_stage_with_no_successful_cell_is_an_error(workspace, capsys):
    spec = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [3]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make/value.txt"}},
    ])
    from genemask.cli import main

    assert main(["grid", str(spec)]) == 1
    out = capsys.readouterr().out
    assert "blocked" in out and "stage 'make' has no successful cell" in out and "stage 'use' has no successful cell" in out


def test_timeout_bounds_the_whole_cell_and_big_results_are_reported(workspace):
    """Two notebook cells of 2 s each pass a per-notebook-cell timeout of 3 s; the cell's is 3 s.
    A result file over 1 MiB is not collected, and the run says so and records it."""
    _notebook(workspace / "slow.ipynb", "out_dir = None", ["import time; time.sleep(2)", "import time; time.sleep(2)"])
    _notebook(workspace / "big.ipynb", "out_dir = None",
              "import pathlib\npathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"  # the runner made it (its claim)
              "pathlib.Path(out_dir, 'big.csv').write_text('a,b\\n' + '1,2\\n' * 400_000)\n"
              "pathlib.Path(out_dir, 'small.csv').write_text('a\\n1\\n')")
    spec = _params(workspace, [
        {"name": "slow", "notebook": str(workspace / "slow.ipynb"), "timeout": 3},
        {"name": "big", "notebook": str(workspace / "big.ipynb")},
    ])
    lines = []
    cells = grid.run_grid(spec, jobs=2, echo=lines.append)
    slow, big = cells
    assert slow.status == "failed" and slow.error.startswith("timed out after 3 s")
    assert big.status == "done"
    collected = workspace / "results" / "t" / "big" / big.key
    assert sorted(p.name for p in collected.iterdir()) == ["provenance.json", "small.csv"]
    assert json.loads((collected / "provenance.json").read_text())["not_collected"] == ["big.csv"]
    assert any("big.csv is 1.5 MiB, over the 1 MiB limit for results/: not collected" in line for line in lines)




def test_killing_the_grid_leaves_no_kernel_or_papermill_behind(workspace):
    import psutil

    _notebook(workspace / "sleep.ipynb", "out_dir = None", "import time; time.sleep(120)")
    spec = _params(workspace, [{"name": "sleep", "notebook": str(workspace / "sleep.ipynb")}])
    proc, seen = grid_until_kernel(spec, 120)
    time.sleep(1)
    for p in process_tree(proc.pid):
        seen[p.pid] = p
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    time.sleep(1)
    alive = [p for p in seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [" ".join(p.cmdline()) for p in alive]


def test_a_second_grid_on_the_same_profile_is_refused_and_results_merge(workspace):
    spec = _params(workspace, [{"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2]}}])
    with profile_lock("t"):
        with pytest.raises(grid.GridError, match=r"another genemask grid is running profile 't' \(pid \d+"):
            grid.run_grid(spec, echo=_quiet)
    grid.run_grid(spec, jobs=2, echo=_quiet)
    more = _params(workspace, [{"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [4]}}], name="q.yaml")
    grid.run_grid(more, echo=_quiet)
    rows = state.results_rows("t", "make")
    assert sorted(r["x"] for r in rows) == ["1", "2", "4"]  # the second grid kept the first one's cells


def test_moved_folder_is_not_cached_and_stale_library_is_never_done(workspace, monkeypatch):
    spec = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make/value.txt"}},
    ])
    make, use = grid.run_grid(spec, echo=_quiet)
    assert make.status == use.status == "done"
    # A moved out_dir: the cell is to run again (it was reported "cached" and dropped from results).
    (workspace / "moved").mkdir()
    use.out_dir.rename(workspace / "moved" / use.key)
    lines = []
    grid.run_grid(spec, status=True, echo=lines.append)
    assert any(line.startswith(f"  to run   {use.key}") and "was moved or deleted" in line for line in lines)
    make2, use2 = grid.run_grid(spec, echo=_quiet)
    assert (make2.status, use2.status) == ("cached", "done") and (use2.out_dir / "got.txt").exists()
    # Other code: every cell is stale, shown as STALE (not done), kept unless asked.
    monkeypatch.setattr(code.Library, "code_hash", lambda *_: "0123456789abcdef")
    lines = []
    cells = grid.run_grid(spec, status=True, echo=lines.append)
    assert [c.status for c in cells] == ["stale", "stale"]
    assert any(f"STALE    {make.key}" in line and "made by code" in line and "now 0123456789abcdef" in line for line in lines)
    assert [c.status for c in grid.run_grid(spec, echo=_quiet)] == ["stale", "stale"]
    assert [c.status for c in grid.run_grid(spec, rerun_stale=True, echo=_quiet)] == ["done", "done"]


def test_results_without_runs_are_the_record_and_migration_is_idempotent(workspace, monkeypatch):
    """A fresh clone has no runs/: the committed results say what was done. Results collected
    before provenance get a migrated record, machine paths become portable, and again is a no-op."""
    data = workspace / "data"
    data.mkdir()
    monkeypatch.setenv("GENEMASK_DATA", str(data))
    spec = _params(workspace, [{"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1]}}])
    (cell,) = grid.plan_grid(spec).cells
    folder = workspace / "results" / "t" / "make" / cell.key
    folder.mkdir(parents=True)
    (folder.parent / "cells.csv").write_text(f"key,x\n{cell.key},1\n")
    (folder / "summary.json").write_text(json.dumps({"fasta": f"{data}/genome/a.fa",
                                                     "ckpt": f"/elsewhere/runs/t/make/{cell.key}/checkpoint"}))
    log = "".join(f"{i},{8 - i / 1e4},{'' if i % 50 else 900.0}\n" for i in range(1, 3001))
    (folder / "metrics.csv").write_text("step,loss,val_perplexity\n" + log)  # collected before logs were compacted
    (orphan := workspace / "results" / "t" / "gone").mkdir(parents=True)
    (orphan / "cells.csv").write_text("key,y\nabcdefabcdefabcd,2\n")
    lines = []
    grid.run_grid(spec, status=True, echo=lines.append)
    assert any(line.startswith(f"  STALE    {cell.key}") and "[results]" in line and "made by unknown code" in line for line in lines)
    assert any("[gone] ORPHANED: 1 recorded cell(s)" in line for line in lines)
    counts = grid.migrate(spec, echo=_quiet)
    assert counts["recorded"] == 2 and counts["machine paths left"] == 0
    assert (folder / "metrics.csv").read_text().count("\n") == 1 + 1_500  # 2 steps a row: 2 divides the 50-step interval
    assert json.loads((folder / "summary.json").read_text()) == {"fasta": "${GENEMASK_DATA}/genome/a.fa",
                                                                 "ckpt": f"@make/{cell.key}/checkpoint"}
    record = json.loads((folder / "provenance.json").read_text())
    assert record["migrated"] and record["run_id"] == f"migrated:make/{cell.key}" and record["params"] == {"x": 1}
    assert "made before provenance was recorded" in record["note"]
    # A cell an older grid finished in runs/ (no run record) gets one, so Snakemake does not redo it.
    cell.out_dir.mkdir(parents=True)
    cell.output.write_text("{}")
    assert grid.migrate(spec, echo=_quiet)["run records"] == 1
    assert json.loads(cell.marker.read_text())["run_id"] == record["run_id"]
    assert cell.marker.stat().st_mtime == cell.output.stat().st_mtime
    before = {p: p.read_text() for p in (workspace / "results").rglob("*.*")}
    assert grid.migrate(spec, echo=_quiet)["recorded"] == 0
    assert before == {p: p.read_text() for p in (workspace / "results").rglob("*.*")}


def test_relative_data_dir_is_made_absolute(tmp_path, monkeypatch):
    """Papermill runs a notebook in its own folder, so ``GENEMASK_DATA=../shared/data`` must be
    expanded against the caller's working directory, not the notebook's."""
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENEMASK_DATA", "data")
    monkeypatch.setenv("GENEMASK_LABEL", "plain")
    expanded = grid._expand_env({"fasta": ["${GENEMASK_DATA}/x.fa"], "name": "$GENEMASK_LABEL"}, "test")
    assert expanded == {"fasta": [f"{tmp_path}/data/x.fa"], "name": "plain"}
    monkeypatch.delenv("GENEMASK_LABEL")
    with pytest.raises(grid.GridError, match="not set"):
        grid._expand_env("$GENEMASK_LABEL/x", "stage 'pmi'")


def test_portable_text_rewrites_paths_of_any_machine():
    text = '{"a": "/work/main/runs/cpu/pretrain/ed46bdd615309479/checkpoint", "b": "runs/x"}'
    assert provenance.portable_text(text, "cpu") == '{"a": "@pretrain/ed46bdd615309479/checkpoint", "b": "runs/x"}'
    # relative to where it ran (a checkout's runs/, a verify scratch folder), in JSON and in CSV
    for made in ("runs/cpu", ".cache/verify/cpu-x1/runs/cpu", "/work/campaign/runs/cpu"):
        assert (provenance.portable_text(f'{{"c": "{made}/pretrain/ed46bdd615309479/checkpoint"}}', "cpu")
                == '{"c": "@pretrain/ed46bdd615309479/checkpoint"}'), made
    assert provenance.portable_text("x,runs/cpu/fewshot/00000000000000f1/a.csv\n", "cpu") == "x,@fewshot/00000000000000f1/a.csv\n"
    assert provenance.portable_text("reruns/cpu/fewshot/00000000000000f1 and myruns/cpu/a/00000000000000f1", "cpu") == (
        "reruns/cpu/fewshot/00000000000000f1 and myruns/cpu/a/00000000000000f1")
    assert provenance.machine_paths('{"p": "/work/shared/data/x.fa", "q": "${GENEMASK_DATA}/x"}') == ["/work/shared/data/x.fa"]


def test_edited_notebook_makes_its_results_stale_then_superseded(workspace):
    """A notebook edit keeps its cells' keys (a key is the stage and parameters) and stales their
    results by the notebook hash they record (never silently shown as done); rerunning replaces them."""
    spec = _params(workspace, [{"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1]}}])
    (old,) = grid.run_grid(spec, echo=_quiet)
    nb = nbformat.read(workspace / "make.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("y = 2  # an edit"))
    nbformat.write(nb, workspace / "make.ipynb")
    lines = []
    (new,) = grid.run_grid(spec, status=True, echo=lines.append)
    assert new.key == old.key and new.status == "stale"
    assert any(f"STALE    {old.key}" in line and "made by other notebook code" in line for line in lines)
    (new,) = grid.run_grid(spec, rerun_stale=True, echo=_quiet)
    assert new.status == "done"
    assert [r["key"] for r in state.results_rows("t", "make")] == [new.key]
    assert grid.run_grid(spec, status=True, echo=_quiet)[0].status == "cached"
