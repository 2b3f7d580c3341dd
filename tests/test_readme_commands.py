"""Every command line of README.md works: each is run here at toy scale, checked by a dry run (the
lines that need a cluster, GPUs or the papers' data), or named with the test that runs it. A README
line this file does not know fails, as does an entry for a line the README no longer has."""
from __future__ import annotations

import ast
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from genemask import genome, paths

README = paths.ROOT / "README.md"
#: Toy-scale options for a pretraining line (the README's budgets take minutes to hours).
TOY_PRETRAIN = "--batch_size 4 --max_len 40 --eval_steps 3 --eval_size 8 --pmi_max_n 6 --pmi_min_count 10"


def readme_command_lines() -> list[str]:
    """Each line of README.md's ```bash blocks, without its trailing comment (comment-only lines dropped)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            command = re.split(r"\s+#\s", line)[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


#: A block another test runs whole (it needs inputs and trains): test_trainer_dropin.py runs the drop-in.
RUN_ELSEWHERE = {"MaskingCurriculumCallback": "tests/test_trainer_dropin.py"}


def readme_python_blocks() -> list[str]:
    """The README's ```python blocks this file runs line by line (not those run whole elsewhere)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [b for b in blocks if not any(mark in b for mark in RUN_ELSEWHERE)]


@dataclass(frozen=True)
class Check:
    """How a README line is checked: ``run`` (here, at toy scale), ``dry run`` (needs a cluster, GPUs
    or the papers' data: the same command checked without running), ``elsewhere`` (another test
    runs it: ``where`` names it), ``setting`` or ``synopsis``."""

    how: str
    needs: str = ""
    where: str = ""


CHECKS: dict[str, Check] = {
    "make reproduce": Check("elsewhere", where="tests/test_reproduce.py::test_demo_grid_then_its_book_builds"),
    "make test": Check("elsewhere", where="the suite this file belongs to (CI runs make test)"),
    "pip install .": Check("elsewhere", needs="a fresh venv (minutes)",
                           where="tests/test_install.py::test_core_wheel_installs_into_an_empty_venv"),
    "pip install '.[workflow]'": Check("dry run", needs="a package index (minutes)"),
    "pip install '.[workflow,book,test]'": Check("dry run", needs="a package index (minutes)"),
    "genemask --version": Check("run"),
    "genemask pretrain --fasta my.fa --strategy cmgems --steps 1000": Check("run"),
    "genemask pretrain --help": Check("run"),
    "export GENEMASK_DATA=/path/to/shared/data": Check("setting"),
    "papermill notebooks/03_pretrain.ipynb out.ipynb -p steps 1000": Check("run"),
    "genemask grid params/demo.yaml --jobs 2": Check("elsewhere", where="tests/test_reproduce.py::test_demo_grid_then_its_book_builds"),
    "genemask grid params/cpu.yaml --status": Check("run"),
    "GENEMASK_PROFILE=cpu jupyter-book build book/": Check("elsewhere", where="tests/test_book.py::test_book_builds_with_warnings_as_errors"),
    "pytest --nbval": Check("elsewhere", where="the suite this file belongs to (make test runs it)"),
    "genemask grid PARAMS.yaml [--jobs N] [--dry-run] [--status] [--verify [--sample N]] [--rerun-stale] [--stage S] [-- SNAKEMAKE ARGS]": Check("synopsis"),
    "pip install snakemake-executor-plugin-slurm": Check("dry run", needs="a Slurm cluster"),
    "genemask grid params/cpu.yaml --verify [--stage S] [--sample N]":
        Check("elsewhere", needs="hours: it reruns the stale cells",
              where="tests/test_verify.py::test_deterministic_cells_verified_when_equal_and_stale_with_the_difference_when_not"),
    "genemask grid params/paper.yaml --dry-run": Check("run"),
    "genemask grid params/paper.yaml --jobs 100 -- --profile profiles/slurm": Check("dry run", needs="a Slurm cluster"),
    "snakemake -s lib/genemask/grid/Snakefile --config params=params/paper.yaml --directory runs/paper --profile profiles/slurm":
        Check("dry run", needs="a Slurm cluster"),
    "GENEMASK_DATA=/path/to/the/data/they/were/made/from genemask grid params/cpu.yaml --migrate":
        Check("elsewhere", needs="the data the results were made from; it rewrites results/",
              where="tests/test_grid.py::test_results_without_runs_are_the_record_and_migration_is_idempotent"),
    "genemask grid params/cpu.yaml --migrate-keys":
        Check("elsewhere", needs="it rewrites results/",
              where="tests/test_migrate_keys.py::test_migration_renames_every_key_changes_no_number_and_again_nothing"),
    "torchrun --nproc_per_node 5 -m genemask.pretrain --paper --grad_accum 5 --strategy cmgems --fasta $GENEMASK_DATA/paper/GRCh38.fa.gz --out_dir runs/cmgems":
        Check("dry run", needs="5 GPUs and GRCh38"),
    "torchrun --nproc_per_node 2 -m genemask.pretrain --strategy cmgems --fasta my.fa --steps 20 --out_dir runs/ddp-toy": Check("run"),
    "GENEMASK_DATA=/path/to/shared/data PYTHONPATH=lib python3 -m genemask.gpu stage-data":
        Check("elsewhere", needs="the shared data", where="tests/test_gpu.py::test_staged_data_holds_every_split_the_queue_reads"),
    "PYTHONPATH=lib python3 -m genemask.gpu plan": Check("run"),
    "export GENEMASK_DATA=.gpu-data; PYTHONPATH=lib python3 -m genemask.gpu --out $OUT":
        Check("elsewhere", needs="an H200", where="tests/test_gpu.py::test_smoke_run_pretrains_fine_tunes_and_packs_one_archive"),
    "PYTHONPATH=lib python3 -m genemask.gpu unpack <unit>.tar.gz":
        Check("elsewhere", where="tests/test_gpu.py::test_a_unit_is_held_once_its_archive_is_unpacked"),
    "PYTHONPATH=lib python3 -m genemask.gpu --smoke --out /tmp/x":
        Check("elsewhere", where="tests/test_gpu.py::test_smoke_run_pretrains_fine_tunes_and_packs_one_archive"),
}


def test_every_readme_command_is_checked():
    lines = readme_command_lines()
    assert len(lines) == len(set(lines)), "a README command appears twice"
    unknown = [line for line in lines if line not in CHECKS]
    gone = [line for line in CHECKS if line not in lines]
    assert not unknown, f"README lines with no check here (add them to CHECKS): {unknown}"
    assert not gone, f"CHECKS entries the README no longer has: {gone}"


@pytest.mark.parametrize("line", [line for line, check in CHECKS.items() if check.where.startswith("tests/")])
def test_the_test_named_for_a_line_exists(line):
    file, name = CHECKS[line].where.split("::")
    tree = ast.parse((paths.ROOT / file).read_text())
    assert name in {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}, CHECKS[line].where


# ----------------------------------------------------------------------------------------------
# Running a line


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder outside the checkout with a toy ``my.fa`` (2 x 60 kbp) and a cache of its own."""
    root = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(11)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    genome.write_fasta({f"r{i}": letters[rng.integers(0, 4, 60_000)].tobytes() for i in range(2)}, root / "my.fa")
    return root


def shell(command: str, cwd: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """``command`` under bash with this interpreter's scripts first on PATH and this checkout's library."""
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   "PYTHONPATH": str(paths.ROOT / "lib"), "GENEMASK_CACHE": str(cwd / ".cache"), **env}
    # PYTEST_CURRENT_TEST turns ipykernel's capture of the kernel's stderr off: a user's papermill has it on.
    environment = {k: v for k, v in environment.items() if v != "" and k != "PYTEST_CURRENT_TEST"}
    result = subprocess.run(["bash", "-c", command], cwd=cwd, env=environment, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command!r} failed ({result.returncode}): {(result.stderr or result.stdout)[-2000:]}"
    return result


def toy(line: str, old: str, new: str) -> str:
    assert old in line, f"the README line changed: {line!r} has no {old!r}"
    return line.replace(old, new)


def _version(line: str, cwd: Path) -> None:
    from genemask import __version__

    assert shell(line, cwd).stdout.strip() == f"genemask {__version__}"


def _pretrain(line: str, cwd: Path) -> None:
    out = shell(toy(line, "--steps 1000", f"--steps 6 {TOY_PRETRAIN}"), cwd, GENEMASK_QUIET="").stdout
    assert out.startswith("ranking the 6-mers of my.fa by NPMI") and "(model card README.md)" in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("step ")] == ["3/6", "6/6"]


def _pretrain_help(line: str, cwd: Path) -> None:
    out = shell(line, cwd).stdout
    assert out.startswith("usage: genemask pretrain") and "--report_to" in out and "--fasta" in out


def _papermill(line: str, cwd: Path) -> None:
    """Twice with other steps: a second run is no longer refused for the folder of the first; its
    progress reaches this terminal and none of it the notebook."""
    notebook = toy(line, "notebooks/03_pretrain.ipynb", str(paths.ROOT / "notebooks" / "03_pretrain.ipynb"))
    for steps in (8, 6):
        run = shell(toy(notebook, "-p steps 1000", f"-p steps {steps} -p eval_steps 4 -p eval_size 32 -p batch_size 8"),
                    cwd, GENEMASK_QUIET="")
        progress = [line for line in run.stderr.splitlines() if line.startswith("step ")]
        assert [p.split()[1] for p in progress] == [f"4/{steps}", f"{steps}/{steps}"], run.stderr[-1500:]
        outputs = json.dumps(json.loads((cwd / "out.ipynb").read_text())["cells"])
        assert "tokens/s" not in outputs


def _grid_status(line: str, cwd: Path) -> None:
    out = shell(line, paths.ROOT, GENEMASK_RUNS=str(cwd / "runs")).stdout
    assert re.search(r"grid cpu: \d+ cells: \d+ done and fresh, (\d+ verified, )?\d+ stale, \d+ to run", out)


def _paper_dry_run(line: str, cwd: Path) -> None:
    out = shell(line, paths.ROOT, GENEMASK_DATA=str(cwd), GENEMASK_RUNS=str(cwd / "runs")).stdout
    assert re.search(r"grid paper: \d+ cells", out)


def _slurm_plugin(line: str, cwd: Path) -> None:
    """Needs a Slurm cluster; the profile the README names asks for that executor."""
    assert line.split()[-1] == "snakemake-executor-plugin-slurm"
    assert "executor: slurm" in (paths.ROOT / "profiles" / "slurm" / "config.yaml").read_text()


def _grid_on_slurm(line: str, cwd: Path) -> None:
    """Needs a Slurm cluster: the same line as a dry run (the grid checks every cell, runs nothing)."""
    command = toy(line, "--jobs 100", "--dry-run")
    assert re.search(r"grid paper: \d+ cells", shell(command, paths.ROOT, GENEMASK_DATA=str(cwd),
                                                      GENEMASK_RUNS=str(cwd / "runs")).stdout)


def _snakemake_on_slurm(line: str, cwd: Path) -> None:
    """Needs a Slurm cluster: Snakemake's own dry run of the same workflow, without the Slurm profile
    (its executor plugin is what the cluster adds), into a scratch folder."""
    command = toy(toy(line, " --profile profiles/slurm", " --dry-run"), "--directory runs/paper",
                  f"--directory {cwd / 'runs' / 'paper'}")
    out = shell(command, paths.ROOT, GENEMASK_DATA=str(cwd))
    assert "stage_pretrain" in out.stdout + out.stderr


def _torchrun_paper(line: str, cwd: Path) -> None:
    """Needs 5 GPUs and GRCh38: the same options as a dry run with a toy GRCh38, as 5 processes would see them."""
    (cwd / "paper").mkdir(exist_ok=True)
    with gzip.open(cwd / "paper" / "GRCh38.fa.gz", "wb") as handle:
        handle.write((cwd / "my.fa").read_bytes())
    command = toy(line, "torchrun --nproc_per_node 5 -m genemask.pretrain", "python -m genemask.pretrain") + " --dry-run"
    out = shell(command, cwd, GENEMASK_DATA=str(cwd), WORLD_SIZE="5").stdout
    assert "dnabert model, cmgems masking, 10,000 steps x 250 sequences of <= 512 tokens on 5 process(es)" in out
    assert "ranking: the NPMI ranking of the FASTA" in out


def _torchrun_toy(line: str, cwd: Path) -> None:
    shell(toy(line, "--steps 20", f"--steps 4 {TOY_PRETRAIN}"), cwd)
    card = (cwd / "runs" / "ddp-toy" / "checkpoint" / "README.md").read_text()
    assert "| steps | 4 x 8 sequences of <= 40 tokens (2 process(es))" in card


def _gpu_plan(line: str, cwd: Path) -> None:
    assert "dnabert-1k-cmgems-s0" in shell(line, paths.ROOT).stdout


def _extra_declared(line: str, cwd: Path) -> None:
    """The extras exist; the full install is what make's venv target installs."""
    import tomllib

    extras = re.search(r"\.\[([\w,]+)\]", line)[1].split(",")
    declared = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras) <= set(declared)
    if len(extras) > 1:
        assert f"pip install -q -e '.[{','.join(extras)}]'" in (paths.ROOT / "Makefile").read_text()


def _setting(line: str, cwd: Path) -> None:
    name = re.match(r"export (\w+)=", line)[1]
    assert f'os.environ.get("{name}")' in (paths.ROOT / "lib" / "genemask" / "paths.py").read_text()


def _synopsis(line: str, cwd: Path) -> None:
    out = shell("genemask grid --help", cwd).stdout
    for option in re.findall(r"--[\w-]+", line):
        assert option in out, option


RUNNERS: dict[str, Callable[[str, Path], None]] = {
    "genemask --version": _version,
    "genemask pretrain --fasta my.fa --strategy cmgems --steps 1000": _pretrain,
    "genemask pretrain --help": _pretrain_help,
    "papermill notebooks/03_pretrain.ipynb out.ipynb -p steps 1000": _papermill,
    "genemask grid params/cpu.yaml --status": _grid_status,
    "genemask grid params/paper.yaml --dry-run": _paper_dry_run,
    "pip install snakemake-executor-plugin-slurm": _slurm_plugin,
    "genemask grid params/paper.yaml --jobs 100 -- --profile profiles/slurm": _grid_on_slurm,
    "snakemake -s lib/genemask/grid/Snakefile --config params=params/paper.yaml --directory runs/paper --profile profiles/slurm":
        _snakemake_on_slurm,
    "torchrun --nproc_per_node 5 -m genemask.pretrain --paper --grad_accum 5 --strategy cmgems --fasta $GENEMASK_DATA/paper/GRCh38.fa.gz --out_dir runs/cmgems":
        _torchrun_paper,
    "torchrun --nproc_per_node 2 -m genemask.pretrain --strategy cmgems --fasta my.fa --steps 20 --out_dir runs/ddp-toy": _torchrun_toy,
    "PYTHONPATH=lib python3 -m genemask.gpu plan": _gpu_plan,
    "pip install '.[workflow]'": _extra_declared,
    "pip install '.[workflow,book,test]'": _extra_declared,
    "export GENEMASK_DATA=/path/to/shared/data": _setting,
    "genemask grid PARAMS.yaml [--jobs N] [--dry-run] [--status] [--verify [--sample N]] [--rerun-stale] [--stage S] [-- SNAKEMAKE ARGS]": _synopsis,
}


def test_every_line_run_here_has_a_runner():
    here = {line for line, check in CHECKS.items() if check.how in ("run", "dry run", "setting", "synopsis")}
    assert here == set(RUNNERS)


@pytest.mark.parametrize("line", list(RUNNERS))
def test_readme_line(line, workdir):
    RUNNERS[line](line, workdir)


def test_readme_python_blocks_run_and_print_what_they_say():
    """Each ```python block runs; a line ``expression  # value`` must give that value."""
    for block in readme_python_blocks():
        scope: dict = {}
        for line in block.splitlines():
            code, _, comment = line.partition("  # ")
            try:
                expected = ast.literal_eval(comment.strip()) if comment else None
            except (ValueError, SyntaxError):
                expected = None
            if expected is not None:
                assert eval(code, scope) == expected, line  # noqa: S307 - the README's own lines
            else:
                exec(code, scope)  # noqa: S102


if __name__ == "__main__":  # the list of README lines and how each is checked
    for command in readme_command_lines():
        check = CHECKS[command]
        print(f"{check.how:9} {command}" + (f"  [needs {check.needs}]" if check.needs else "")
              + (f"  -> {check.where}" if check.where else ""))
