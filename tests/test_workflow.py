"""The generated Snakemake workflow itself: a dry run of the paper profile plans every cell as a
job of its stage's rule, with upstream cells as inputs (what a cluster run would schedule)."""
import os
import re
import subprocess
import sys

from genemask import grid, paths
from genemask.grid.workflow import SNAKEFILE


def test_snakemake_dry_run_of_the_paper_profile(tmp_path):
    env = {**os.environ, "GENEMASK_DATA": os.environ.get("GENEMASK_DATA", str(tmp_path)),
           "GENEMASK_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(paths.ROOT / "lib")}
    (tmp_path / "runs" / "paper").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(SNAKEFILE),
                           "--config", "params=params/paper.yaml", "--directory", str(tmp_path / "runs" / "paper"),
                           "--cores", "1", "--quiet", "rules"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    os.environ.setdefault("GENEMASK_DATA", str(tmp_path))
    plan = grid.plan_grid(paths.PARAMS / "paper.yaml")
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(stage_\w+)\s+(\d+)$", proc.stdout, re.M)}
    expected = {}
    for cell in plan.cells:
        name = "stage_" + cell.stage.replace("-", "_")
        expected[name] = expected.get(name, 0) + 1
    assert counts == expected and counts["stage_pretrain"] == 21
