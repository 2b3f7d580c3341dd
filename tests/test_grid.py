"""The grid runner on tiny generated notebooks: caching, failures, references, parameter checks."""
import json

import nbformat
import pytest
import yaml

from genemask import grid


def _notebook(path, params_src: str, body: str):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params_src)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    _notebook(tmp_path / "make.ipynb", "x = 1\nout_dir = None",
              "import pathlib\nassert x != 3, 'x must not be 3'\n"
              "pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
              "pathlib.Path(out_dir, 'value.txt').write_text(str(x * 10))")
    _notebook(tmp_path / "use.ipynb", "source = ''\nout_dir = None",
              "import pathlib\npathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
              "pathlib.Path(out_dir, 'got.txt').write_text(pathlib.Path(source).read_text())")
    return tmp_path


def _params(tmp_path, stages, name="p.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"profile": "t", "stages": stages}))
    return path


def test_runs_caches_reports_failures_and_chains_stages(workspace):
    spec = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2, 3]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make/value.txt"}},
    ])
    cells = grid.run_grid(spec, jobs=2, echo=lambda *_: None)
    make = [c for c in cells if c.stage == "make"]
    assert sorted(c.status for c in make) == ["done", "done", "failed"]
    failed = next(c for c in make if c.status == "failed")
    assert "x must not be 3" in failed.error and not failed.output.exists()
    assert failed.output.with_name(f"{failed.key}.failed.ipynb").exists()
    use = [c for c in cells if c.stage == "use"]
    assert sorted((c.out_dir / "got.txt").read_text() for c in use) == ["10", "20"]
    report = json.loads((workspace / "runs" / "t" / "grid_report.json").read_text())
    assert len(report) == 5
    collected = {p.name for p in (workspace / "results" / "t" / "make").iterdir()}
    assert collected == {"cells.csv"} | {c.key for c in make if c.status == "done"}

    again = grid.run_grid(spec, jobs=2, echo=lambda *_: None)
    assert sorted(c.status for c in again) == ["cached"] * 4 + ["failed"]  # a failure is never cached


def test_unknown_parameter_is_rejected_before_running(workspace):
    spec = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"sorce": "x"}},
    ])
    with pytest.raises(grid.GridError, match=r"unknown parameter\(s\) \['sorce'\] for use.ipynb; it declares \['out_dir', 'source'\]"):
        grid.run_grid(spec, echo=lambda *_: None)
    assert not (workspace / "runs").exists()


def test_mistyped_value_is_rejected(workspace):
    spec = _params(workspace, [{"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": ["one"]}}])
    with pytest.raises(grid.GridError, match=r"parameter 'x' of make.ipynb expects int"):
        grid.run_grid(spec, echo=lambda *_: None)


@pytest.mark.parametrize("stages, message", [
    ([{"name": "a", "notebook": "nope.ipynb"}], "does not exist"),
    ([{"name": "a"}], "missing 'notebook'"),
    ([{"name": "a", "notebook": "x", "gird": {}}], "unknown key"),
])
def test_bad_params_file(workspace, stages, message):
    with pytest.raises(grid.GridError, match=message):
        grid.load_spec(_params(workspace, stages))


def test_dry_run_lists_cells(workspace):
    spec = _params(workspace, [{"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2]}}])
    lines = []
    cells = grid.run_grid(spec, dry_run=True, echo=lines.append)
    assert [c.status for c in cells] == ["planned", "planned"] and not (workspace / "runs").exists()


def test_reference_selects_upstream_cells_by_parameter(workspace):
    spec = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make[x=2]/value.txt"}},
    ])
    cells = grid.run_grid(spec, jobs=1, echo=lambda *_: None)
    assert [(c.out_dir / "got.txt").read_text() for c in cells if c.stage == "use"] == ["20"]
    bad = _params(workspace, [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make[x=7]/value.txt"}},
    ], name="bad.yaml")
    with pytest.raises(grid.GridError, match=r"no cell of stage 'make' has x=7"):
        grid.run_grid(bad, jobs=1, echo=lambda *_: None)


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
