"""A notebook run (04 few-shot, 05 GUE) holds its ``out_dir`` for the kernel's life (issue 21, item 4):
two runs never write into one folder, the default folder is the run's own, and a grid cell's folder is
adopted. The second "run" is another process, as a second papermill run is."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from genemask import io, outdir

A = {"checkpoint": "random:tiny", "shots": [10]}
B = {"checkpoint": "random:tiny", "shots": [50]}


def hold_in_another_process(out_dir, identity, root) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        from genemask import outdir
        print(outdir.hold_out_dir({None if out_dir is None else str(out_dir)!r}, "few-shot", {identity!r}, {str(root)!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_a_second_run_with_other_parameters_is_refused_from_an_explicit_out_dir(tmp_path):
    first = hold_in_another_process(tmp_path / "out", A, tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "out" / "fewshot_results.csv").write_text("model\n")
    second = hold_in_another_process(tmp_path / "out", B, tmp_path)
    assert second.returncode != 0 and "holds another few-shot run (different shots" in second.stderr
    assert (tmp_path / "out" / "fewshot_results.csv").read_text() == "model\n"  # nothing lost
    again = hold_in_another_process(tmp_path / "out", A, tmp_path)  # the same run again: its own folder
    assert again.returncode == 0, again.stderr


def test_two_runs_at_once_are_refused(tmp_path):
    held = outdir.hold_out_dir(tmp_path / "busy", "few-shot", A, tmp_path)
    other = hold_in_another_process(tmp_path / "busy", A, tmp_path)
    assert other.returncode != 0 and "is in use by another few-shot run" in other.stderr
    assert outdir.hold_out_dir(tmp_path / "busy", "few-shot", A, tmp_path) == held  # the same kernel, the same run


def test_the_default_folder_is_the_runs_own(tmp_path):
    first = hold_in_another_process(None, A, tmp_path / "cache")
    second = hold_in_another_process(None, B, tmp_path / "cache")
    assert first.returncode == second.returncode == 0
    assert first.stdout != second.stdout and first.stdout.startswith(str(tmp_path / "cache"))


def test_foreign_files_are_refused_unless_a_grid_cell_holds_the_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "credentials.txt").write_text("secret")
    refused = hold_in_another_process(tmp_path / "mine", A, tmp_path)
    assert refused.returncode != 0 and "holds files no few-shot run wrote (credentials.txt)" in refused.stderr
    cell = tmp_path / "runs" / "cpu" / "fewshot" / "0123456789abcdef"
    cell.mkdir(parents=True)
    (cell / "fewshot_results.csv").write_text("partial\n")  # an earlier attempt of this cell
    io.write_json(io.claim_marker(cell, outdir.GRID_CLAIM), {"identity": {"stage": "fewshot"}, "files_before": []})
    assert hold_in_another_process(cell, A, tmp_path).returncode == 0
