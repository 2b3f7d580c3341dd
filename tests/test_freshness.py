"""Staleness by the code a cell runs (issue 25): an edit stales exactly the cells whose notebooks
run the edited module, and the cells downstream of them.

The real notebooks on a tiny params file, judged against a temporary copy of the library that each
test edits; the cells' records are written as collection writes them, each naming the code hash of
the copy before the edit (nothing is run).
"""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from genemask import paths, source
from genemask.grid import code, plan_grid, provenance
from genemask.grid.collect import row_of, write_rows
from genemask.grid.plan import notebook_code
from genemask.grid.state import FRESH, STALE, grid_state

NOTEBOOKS = paths.ROOT / "notebooks"
STAGES = [
    {"name": "pmi", "notebook": str(NOTEBOOKS / "01_pmi.ipynb")},
    {"name": "masking", "notebook": str(NOTEBOOKS / "02_masking.ipynb"), "params": {"rank_table": "@pmi/kmer_ranking.csv"}},
    {"name": "pretrain", "notebook": str(NOTEBOOKS / "03_pretrain.ipynb"),
     "params": {"steps": 10, "rank_table": "@pmi/kmer_ranking.csv"}},
    {"name": "fewshot", "notebook": str(NOTEBOOKS / "04_fewshot.ipynb"), "params": {"checkpoint": "@pretrain/checkpoint"}},
    {"name": "gue", "notebook": str(NOTEBOOKS / "05_gue.ipynb"), "params": {"checkpoint": "@pretrain/checkpoint"}},
]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """(plan, library copy): every cell of the tiny grid collected with a record naming the copy's code."""
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    library = tmp_path / "lib" / "genemask"
    shutil.copytree(source.library_root(), library, ignore=shutil.ignore_patterns("__pycache__"))
    params = tmp_path / "tiny.yaml"
    params.write_text(yaml.safe_dump({"profile": "tiny", "stages": STAGES}))
    plan = plan_grid(params, check_env=False)
    _collect(plan, code.Library.now(library), lambda cell, made_by: {"code_hash": made_by})
    return plan, library


def _collect(plan, library, fields) -> None:
    """Write every cell's cells.csv row and record, made by ``library`` (``fields(cell, code hash)``
    gives the record's code fields), reading its upstream cells' run ids."""
    for stage in plan.spec.stages:
        cells = plan.stage_cells(stage.name)
        for cell in cells:
            made_by = library.code_hash(notebook_code(cell.notebook))
            provenance.write_record(paths.results_dir("tiny") / cell.stage / cell.key / provenance.RECORD, {
                "stage": cell.stage, "key": cell.key, "run_id": f"run-{cell.key}", **fields(cell, made_by),
                "inputs": {f"{s}/{k}": f"run-{k}" for s, k in cell.deps}})
        write_rows("tiny", stage.name, [row_of(c) for c in cells])


def _states(plan, library) -> dict[str, str]:
    gs = grid_state(plan, use_runs=False, library_root=library)
    return {stage.name: {gs.of(c).state for c in plan.stage_cells(stage.name)}.pop() for stage in plan.spec.stages}


def _edit(library, rel: str) -> None:
    with (library / rel).open("a") as handle:
        handle.write("\n# an edit\n")


def test_every_cell_is_fresh_before_an_edit(tiny):
    plan, library = tiny
    assert _states(plan, library) == dict.fromkeys(["pmi", "masking", "pretrain", "fewshot", "gue"], FRESH)


def test_a_book_helper_edit_leaves_pretraining_and_fewshot_fresh(tiny):
    plan, library = tiny
    _edit(library, "report/findings.py")
    assert _states(plan, library) == dict.fromkeys(["pmi", "masking", "pretrain", "fewshot", "gue"], FRESH)


def test_a_runner_or_source_hash_edit_leaves_every_cell_fresh(tiny):
    plan, library = tiny
    for rel in ("grid/state.py", "gpu.py", "report/provenance.py", "source.py"):
        _edit(library, rel)
    assert set(_states(plan, library).values()) == {FRESH}


def test_a_masking_edit_stales_pretraining_and_everything_downstream(tiny):
    plan, library = tiny
    _edit(library, "masking.py")
    assert _states(plan, library) == {"pmi": FRESH, "masking": STALE, "pretrain": STALE, "fewshot": STALE, "gue": STALE}
    gs = grid_state(plan, use_runs=False, library_root=library)
    (pretrain,) = plan.stage_cells("pretrain")
    assert gs.of(pretrain).reason.startswith("made by code")


def test_a_finetune_edit_stales_fewshot_and_gue_but_not_pretraining(tiny):
    plan, library = tiny
    _edit(library, "finetune.py")
    assert _states(plan, library) == {"pmi": FRESH, "masking": FRESH, "pretrain": FRESH, "fewshot": STALE, "gue": STALE}


def test_records_without_a_code_hash_are_judged_by_the_code_of_their_commit(tiny, tmp_path, monkeypatch):
    """A record made before code hashes were recorded names a commit and the whole library's hash:
    the code its notebook ran is that commit's, unless the library it names is not the commit's."""
    plan, library = tiny

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", "lib")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "library")
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    commit, whole = git("rev-parse", "HEAD"), source.source_hash(source.library_files(library))
    _collect(plan, code.Library.now(library), lambda cell, _: {
        "commit": commit, "library_hash": "0" * 16 if cell.stage == "gue" else whole})
    assert _states(plan, library) == {"pmi": FRESH, "masking": FRESH, "pretrain": FRESH, "fewshot": FRESH, "gue": STALE}
    gs = grid_state(plan, use_runs=False, library_root=library)
    assert "uncommitted library code" in gs.of(plan.stage_cells("gue")[0]).reason
    _edit(library, "finetune.py")
    gs = grid_state(plan, use_runs=False, library_root=library)
    (fewshot,) = plan.stage_cells("fewshot")
    assert gs.of(fewshot).state == STALE and "(finetune.py changed)" in gs.of(fewshot).reason
    assert gs.of(plan.stage_cells("pretrain")[0]).state == FRESH
