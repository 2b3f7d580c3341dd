"""params/paper.yaml (the papers' budgets, GPU only) is validated without running: every parameter
must exist in its notebook with the right type, and the grid must plan the papers' cells."""
import os

from genemask import grid, paths


def test_paper_profile_plans_the_papers_budgets(monkeypatch, tmp_path):
    monkeypatch.setenv("GENEMASK_DATA", os.environ.get("GENEMASK_DATA", str(tmp_path)))
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    cells = grid.run_grid(paths.PARAMS / "paper.yaml", dry_run=True, echo=lambda *_: None)
    by_stage = {}
    for cell in cells:
        by_stage.setdefault(cell.stage, []).append(cell)
    assert len(by_stage["pretrain"]) == 7 * 3  # strategies x (10K dnabert, 1K dnabert, logo)
    ten_k = [c.params for c in by_stage["pretrain"] if c.params["steps"] == 10000 and c.params["model"] == "dnabert"]
    assert len(ten_k) == 7 and all(p["batch_size"] * p["grad_accum"] == 250 and p["lr"] == 8e-4 for p in ten_k)
    assert by_stage["fewshot"][-1].params["shots"] == [10, 50, 100, 500, 1000] and by_stage["fewshot"][-1].params["seeds"] == 10
