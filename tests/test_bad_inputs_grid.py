"""Issue 21, the grid, GPU-runner and params side: every input and fault below given as itself, at
``genemask grid`` (params files, --status/--dry-run, the Snakefile), ``python -m genemask.gpu``
(queue, unpack) and collection into results/. Each must give the right result or one line naming the
file, line, key or parameter, run nothing the user did not ask for, and leave nothing half-done.

Verdicts: clear (one line naming what is wrong, at once), OK (handled correctly, nothing to say),
late, unclear, crash (a traceback), silent (a wrong result without a word). "was" is what the same
input got before issue 21's fixes, where it differed.

| # | input or fault | message now (abridged) | verdict | was |
|---|---|---|---|---|
| 1 | params path ``y'||touch PWNED;'.yaml`` (quotes, ``;``, ``$()``, backticks, newline, braces) | runs the cell, nothing else | OK | ran ``touch`` |
| 2 | runs root (``$GENEMASK_RUNS``) with the same characters | runs the cell | OK | not tried (a brace breaks the output pattern) |
| 3 | Python path with the same characters (a wrapper script so named) | runs the cell | OK | shell injection (``'{PYTHON}'``) |
| 4 | params path ``a: b.yaml`` / ``x #y.yaml`` (Snakemake's ``--config`` reads values as YAML) | runs the cell (JSON config file) | OK | silent: read as ``{'/x/a': 'b.yaml'}`` / ``/x/y`` |
| 5 | archive cells.csv key ``../../victim`` | ``key '../../victim' is not a cell key (16 hex digits); nothing was unpacked`` | clear | deleted victim |
| 6 | archive cells.csv key ``/abs/victim`` | same | clear | deleted victim |
| 7 | archive cells.csv key listed without its folder | ``line 2: no folder <key>/ for key <key>; nothing was unpacked`` | clear | crash (FileNotFoundError) |
| 8 | archive cells.csv without a key column | ``cells.csv has no 'key' column`` | clear | crash (KeyError) |
| 9 | archive units/<unit>.json not JSON | ``units/u.json is not JSON (...)`` | clear | crash (JSONDecodeError) |
| 10 | unpack of a file that is not an archive | ``not a readable archive (ReadError: ...)`` | clear | crash (ReadError) |
| 11 | unpack of a missing archive | ``no such archive`` | clear | clear (errno text) |
| 12 | archive with a symlink member pointing outside | ``not a readable archive (...LinkOutsideDestinationError...)`` | clear | crash |
| 13 | archive stage folder ``-x`` | ``stage folder '-x' is not a safe folder name`` | clear | OK |
| 14 | ``notebook: /elsewhere/evil.ipynb`` | ``stage 1 (s): notebook ... is not one of the package's notebooks`` | clear | ran it |
| 15 | ``notebook: notebooks/../README.md`` | same | clear | crash (NotJSONError) |
| 16 | allowed-folder link ``x.ipynb`` → a notebook outside | same (a link is judged by its target) | clear | ran it |
| 17 | allowed notebook that is not JSON | ``stage 's': x.ipynb: not a readable notebook (NotJSONError...)`` | clear | crash |
| 18 | params path is a folder | ``...: is a directory; the YAML params file must be a regular file`` | clear | crash (IsADirectoryError) |
| 19 | params path is a FIFO | ``is a FIFO (named pipe), which would block reading forever`` | clear | blocked forever |
| 20 | params file of 2 MB | ``over the 1,048,576-byte limit`` | clear | parsed, no cap |
| 21 | params file not UTF-8 | ``not UTF-8 text (invalid start byte at byte 0)`` | clear | crash |
| 22 | ``{steps: 3, steps: 5000}`` in a stage's params | ``not valid YAML at line 6, column 24: duplicate key 'steps' (first on line 6, again on line 6)`` | clear | silent (5000) |
| 23 | ``profile`` given twice | ``duplicate key 'profile' (first on line 1, again on line 2)`` | clear | silent |
| 24 | merge key ``<<: *defaults`` then an override | the override wins (YAML's merge rule) | OK | OK |
| 25 | YAML alias bomb (9 levels of 9) | ``its aliases expand to over 200,000 values (an alias bomb?)`` in ms | clear | minutes |
| 26 | 5000-deep nested list | ``nested too deeply to be a params file`` | clear | crash (RecursionError) |
| 27 | a 1000 x 1000 grid (10^6 cells) | ``would plan 1,000,000 cells, over the limit of 20,000`` in ms | clear | minutes |
| 28 | a reference fanning 200 x 200 upstream cells | ``would plan 40,000 cells`` | clear | minutes |
| 29 | explicit out_dir holding ``credentials.txt`` | ``out_dir=... holds files no grid cell wrote (credentials.txt); they would be collected into results/`` | clear | leaked into results/ |
| 30 | two cells with one explicit out_dir | ``cells s/<k1> and s/<k2> both write out_dir=...`` | clear | silent overwrite |
| 31 | explicit out_dir claimed by another grid's cell | ``out_dir=... belongs to another grid cell (p/s/<key>)`` | clear | silent overwrite |
| 32 | damaged claim marker in an out_dir | ``.genemask-grid-cell.json: damaged claim marker (...)`` | clear | - |
| 33 | two runs claiming one out_dir at once (04/05 via the grid, or any claimant) | ``out_dir=... is in use by another grid cell run`` | clear | silent overwrite |
| 34 | a file dropped into a cell's explicit out_dir between two runs of it | not collected | OK | collected |
| 35 | results folder is a file (unwritable) | ``the grid's folder=... is not writable (...); nothing was run`` | clear | late (after every cell) |
| 36 | ENOSPC writing a collected file | ``collecting into results/t failed: .../value.txt: could not write (No space left on device)`` ; cells.csv and folders agree | clear | late, half-collected |
| 37 | EROFS writing cells.csv | names cells.csv; the cell's previous folder put back | clear | half-collected |
| 38 | a collection killed between its two renames | the next collection puts the previous folder back | OK | - |
| 39 | rerun while a stopped grid's cell still runs | ``cell s/<key> is still running (pid N; 1 busy cell(s))``; ``--status`` shows ``RUNNING <key> (pid N)`` | clear | "failed", then "0 failed" |
| 40 | ``kill -9`` of ``genemask grid``'s process group | Snakemake, runner and kernel all end | OK | all kept running |
| 41 | ``kill -9`` of the ``genemask grid`` process alone | Snakemake gets SIGTERM, the tree ends | OK | all kept running |
| 42 | damaged run record ``<key>.provenance.json`` | ``damaged run record, not JSON (...); remove it to run the cell again`` | clear | silent rerun |
| 43 | results cells.csv with key ``../x`` (or no key column) | ``cells.csv, line 2: key '../x' is not a cell key`` | clear | path outside (no column: KeyError) |
| 44 | damaged ``pretrain.json`` in a checkpoint | ``.../pretrain.json: not valid JSON (...)`` | clear | crash (JSONDecodeError) |
| 45 | gpu.yaml unit name ``../../x`` | ``a unit name names files ...: letters, digits, _ . - only`` | clear | wrote outside |
| 46 | gpu.yaml duplicate key | ``duplicate key 'units'`` with its lines | clear | silent |
| 47 | ``--stage`` naming no stage | ``no stage(s) ['nosuch']`` | clear | clear |
| 48 | params path that does not exist, with shell characters | ``no such params file`` | clear | clear |
| 49 | ``python -m genemask.gpu --work ~`` (a folder holding ``stage/``) | ``out_dir=... holds files no gpu unit run wrote (stage)`` | clear | wiped ``~/stage`` |

Counts now: clear 40, OK 9, late 0, unclear 0, crash 0, silent 0 (49 in all; 45 designed here
beyond the issue's numbered list). Before the fixes: 9 ran, deleted, leaked or wrote
what was not asked; 11 crash; 10 silent; 10 late, blocking or left running; 6 clear or OK; 3 not tried.
"""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from genemask import cli, gpu, io, paths, store
from genemask.grid import GridError, cell as cell_runner, collect, plan_grid, provenance, run_grid, state
from genemask.grid.plan import MAX_CELLS
from helpers import grid_until_kernel, process_tree
from helpers import write_notebook as _notebook

WEIRD = "a'b\"c $(touch PWNED1) `touch PWNED2`; touch PWNED3 {x}\nz"




WRITE = ("import pathlib\npathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
         "pathlib.Path(out_dir, 'value.txt').write_text(str(x * 10))")


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GENEMASK_NOTEBOOK_DIRS", str(tmp_path / "nb"))
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "make.ipynb", "x = 1\nout_dir = None", WRITE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _spec(ws: Path, stages: list[dict], name: str = "p.yaml", profile: str = "t") -> Path:
    path = ws / name
    path.write_text(yaml.safe_dump({"profile": profile, "stages": stages}))
    return path


def _make(ws: Path, **extra) -> dict:
    return {"name": "s", "notebook": str(ws / "nb" / "make.ipynb"), **extra}


def _grid_error(capsys, *argv: str) -> str:
    """``genemask grid ARGV``'s one-line error (exit 2)."""
    assert cli.main(["grid", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genemask grid: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _quiet(*_):
    return None


# --------------------------------------------------------------------------------------------------
# 1. No user string reaches a shell


def test_quotes_dollars_semicolons_backticks_and_newlines_in_every_path_run_nothing_else(ws, monkeypatch):
    weird = ws / WEIRD
    weird.mkdir()
    monkeypatch.setenv("GENEMASK_RUNS", str(weird / "runs"))
    monkeypatch.setenv("GENEMASK_NOTEBOOK_DIRS", str(weird))
    _notebook(weird / "make.ipynb", "x = 1\nout_dir = None", WRITE)
    params = weird / "y'||touch PWNED4;'$(touch PWNED5) a: b #c.yaml"
    params.write_text(yaml.safe_dump({"profile": "t", "stages": [{"name": "s", "notebook": str(weird / "make.ipynb"),
                                                                  "params": {"x": 4}}]}))
    python = weird / "python'$(touch PWNED6);`touch PWNED7`"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    (cell,) = run_grid(params, echo=_quiet)
    assert cell.status == "done", cell.error
    assert (cell.out_dir / "value.txt").read_text() == "40"
    config = json.loads((weird / "runs" / "t" / ".grid-config.json").read_text())
    assert config == {"params": str(params.resolve()), "python": str(python)}
    pwned = [p for root in (ws, weird, Path.cwd(), paths.ROOT) for p in root.rglob("PWNED*")]
    assert not pwned, pwned


# --------------------------------------------------------------------------------------------------
# 2. python -m genemask.gpu unpack: keys are folder names, checked before anything is touched


def _archive(tmp: Path, keys: list[str], folders: list[str] | None = None, units: str = '{"smoke": false}',
             index: str | None = None, name: str = "u.tar.gz") -> Path:
    src = tmp / "src" / "results" / "gpu"
    (src / "units").mkdir(parents=True, exist_ok=True)
    (src / "units" / "u.json").write_text(units)
    (src / "pretrain").mkdir(exist_ok=True)
    (src / "pretrain" / "cells.csv").write_text(index if index is not None else "key,seed\n" + "".join(f"{k},0\n" for k in keys))
    for folder in folders if folders is not None else [k for k in keys if not k.startswith(("/", "."))]:
        (src / "pretrain" / folder).mkdir(parents=True, exist_ok=True)
        (src / "pretrain" / folder / "summary.json").write_text("{}")
    archive = tmp / name
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp / "src" / "results", arcname="results")
    return archive


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_unpack_never_touches_a_folder_an_archive_key_names_outside(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    key = "../../../victim" if kind == "relative" else str(victim)
    held = tmp_path / "results" / "gpu" / "pretrain" / "0123456789abcdef"
    held.mkdir(parents=True)
    with pytest.raises(ValueError, match=r"key '.*victim' is not a cell key \(16 hex digits\); nothing was unpacked"):
        gpu.unpack(_archive(tmp_path, ["fedcba9876543210", key]))
    assert (victim / "keep.txt").read_text() == "mine" and held.is_dir()
    assert not (tmp_path / "results" / "gpu" / "units").exists()  # nothing merged either


@pytest.mark.parametrize("case, message", [
    ({"keys": ["0123456789abcdef"], "folders": []}, r"line 2: no folder 0123456789abcdef/ for key"),
    ({"keys": [], "index": "seed\n0\n"}, r"cells.csv has no 'key' column"),
    ({"keys": ["0123456789abcdef"], "units": "{not json"}, r"units/u.json is not JSON"),
    ({"keys": ["0123456789abcdef", "0123456789abcdef"]}, r"lists key 0123456789abcdef twice"),
])
def test_a_malformed_archive_is_one_line_and_merges_nothing(tmp_path, monkeypatch, case, message):
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    with pytest.raises(ValueError, match=message) as err:
        gpu.unpack(_archive(tmp_path, **case))
    assert "\n" not in str(err.value) and not (tmp_path / "results" / "gpu").exists()


def test_unpack_of_no_archive_a_non_archive_or_a_linking_archive(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    assert gpu.main(["unpack", str(tmp_path / "none.tar.gz")]) == 2
    assert "none.tar.gz: no such archive" in capsys.readouterr().err
    (tmp_path / "text.tar.gz").write_text("not an archive")
    assert gpu.main(["unpack", str(tmp_path / "text.tar.gz")]) == 2
    assert "text.tar.gz: not a readable archive (ReadError" in capsys.readouterr().err
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        member = tarfile.TarInfo("results/gpu/pretrain/0123456789abcdef")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(member)
    assert gpu.main(["unpack", str(link)]) == 2
    assert "link.tar.gz: not a readable archive" in capsys.readouterr().err
    weird = _archive(tmp_path, ["0123456789abcdef"], name="w.tar.gz")
    with tarfile.open(weird) as tar:  # re-packed with its stage folder named -x
        tar.extractall(tmp_path / "w", filter="data")
    os.rename(tmp_path / "w" / "results" / "gpu" / "pretrain", tmp_path / "w" / "results" / "gpu" / "-x")
    with tarfile.open(weird, "w:gz") as tar:
        tar.add(tmp_path / "w" / "results", arcname="results")
    with pytest.raises(GridError, match=r"stage folder '-x' is not a safe folder name"):
        gpu.unpack(weird)


def test_a_good_archive_still_merges(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    assert gpu.unpack(_archive(tmp_path, ["0123456789abcdef"]), echo=_quiet) == ["pretrain/0123456789abcdef"]
    assert (tmp_path / "results" / "gpu" / "pretrain" / "0123456789abcdef" / "summary.json").exists()
    assert not list((tmp_path / "results" / "gpu" / "pretrain").glob(".*"))


def test_a_work_folder_holding_someone_elses_files_is_refused_before_anything_is_wiped(tmp_path, capsys):
    home = tmp_path / "home"
    (home / "stage").mkdir(parents=True)
    (home / "stage" / "thesis.tex").write_text("mine")
    assert gpu.main(["--smoke", "--out", str(tmp_path / "out"), "--work", str(home)]) == 2
    err = capsys.readouterr().err
    assert f"out_dir={str(home)!r} holds files no gpu unit run wrote (stage)" in err
    assert (home / "stage" / "thesis.tex").read_text() == "mine"


def test_a_queue_unit_name_that_would_name_a_path_outside(tmp_path):
    queue = yaml.safe_load(gpu.PARAMS_FILE.read_text())
    queue["units"][0]["name"] = "../../x"
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump(queue))
    with pytest.raises(gpu.QueueError, match=r"unit '../../x': a unit name names files"):
        gpu.load_queue(path)
    path.write_text("units: []\nunits: []\n")
    with pytest.raises(gpu.QueueError, match=r"duplicate key 'units' \(first on line 1, again on line 2\)"):
        gpu.load_queue(path)


# --------------------------------------------------------------------------------------------------
# 3. A params file runs only the package's notebooks


def test_a_notebook_outside_the_allow_list_is_refused_naming_file_and_stage(ws, capsys, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    evil = _notebook(elsewhere / "evil.ipynb", "out_dir = None", "open('PWNED', 'w')")
    err = _grid_error(capsys, str(_spec(ws, [{"name": "s", "notebook": str(evil)}])), "--dry-run")
    assert "p.yaml: stage 1 (s): notebook" in err and "evil.ipynb is not one of the package's notebooks" in err
    err = _grid_error(capsys, str(_spec(ws, [{"name": "s", "notebook": "notebooks/../README.md"}])), "--dry-run")
    assert "README.md is not one of the package's notebooks" in err
    (ws / "nb" / "link.ipynb").symlink_to(evil)
    err = _grid_error(capsys, str(_spec(ws, [{"name": "s", "notebook": str(ws / "nb" / "link.ipynb")}])), "--dry-run")
    assert "link.ipynb is not one of the package's notebooks" in err
    assert not list(ws.rglob("PWNED"))
    # the package's own notebooks stay allowed, however the path is spelled
    plan = plan_grid(_spec(ws, [{"name": "pmi", "notebook": "notebooks/../notebooks/01_pmi.ipynb"}]), check_env=False)
    assert plan.cells[0].notebook == paths.NOTEBOOKS / "01_pmi.ipynb"


def test_a_non_notebook_and_a_folder_as_params_path_are_one_line(ws, capsys):
    (ws / "nb" / "bad.ipynb").write_text("hello")
    err = _grid_error(capsys, str(_spec(ws, [{"name": "s", "notebook": str(ws / "nb" / "bad.ipynb")}])), "--dry-run")
    assert "stage 's'" in err and "bad.ipynb: not a readable notebook (NotJSONError" in err
    assert "nb: is a directory; the YAML params file must be a regular file" in _grid_error(capsys, str(ws / "nb"))


# --------------------------------------------------------------------------------------------------
# 4 and 5. Every out_dir is one run's; collection takes only what the cell wrote


def test_claims_refuse_another_run_a_concurrent_run_and_strangers_files(tmp_path):
    folder = tmp_path / "out"
    with io.claim_out_dir(folder, "few-shot", {"checkpoint": "a"}):
        with pytest.raises(RuntimeError, match=r"out_dir='.*out' is in use by another few-shot run"):
            with io.claim_out_dir(folder, "few-shot", {"checkpoint": "a"}):
                pass
        (folder / "fewshot_results.csv").write_text("x")
    with pytest.raises(ValueError, match=r"holds another few-shot run \(different checkpoint; see .genemask-few-shot.json\)"):
        with io.claim_out_dir(folder, "few-shot", {"checkpoint": "b"}):
            pass
    with io.claim_out_dir(folder, "few-shot", {"checkpoint": "a"}):  # the same run again: allowed
        pass
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "credentials.txt").write_text("secret")
    with pytest.raises(ValueError, match=r"holds files no few-shot run wrote \(credentials.txt\)"):
        with io.claim_out_dir(stranger, "few-shot", {"checkpoint": "a"}):
            pass
    (folder / io.claim_marker(folder, "few-shot").name).write_text("{oops")
    with pytest.raises(ValueError, match=r"\.genemask-few-shot\.json: damaged claim marker"):
        with io.claim_out_dir(folder, "few-shot", {"checkpoint": "a"}):
            pass


def test_a_pretraining_folder_claimed_by_a_grid_cell_is_not_foreign(tmp_path):
    """Notebook 03 in a grid cell: the runner's claim files must not read as a stranger's."""
    from genemask import pretrain

    with io.claim_out_dir(tmp_path / "o", cell_runner.CLAIM, {"key": "k"}):
        assert pretrain._foreign_entries(tmp_path / "o") == []


def test_explicit_out_dirs_with_strangers_files_or_shared_are_refused_before_running(ws, capsys):
    folder = ws / "explicit"
    folder.mkdir()
    (folder / "credentials.txt").write_text("secret")
    spec = _spec(ws, [_make(ws, params={"out_dir": str(folder)})])
    err = _grid_error(capsys, str(spec))
    assert f"out_dir={str(folder)!r} holds files no grid cell wrote (credentials.txt)" in err
    assert not (ws / "results").exists() and not (ws / "runs" / "t" / "s").exists()
    shared = _spec(ws, [_make(ws, grid={"x": [1, 2]}, params={"out_dir": str(ws / "one")})])
    assert "both write out_dir=" in _grid_error(capsys, str(shared), "--dry-run")
    other = ws / "other"
    with io.claim_out_dir(other, cell_runner.CLAIM, {"profile": "p", "stage": "s", "key": "0123456789abcdef"}):
        pass
    spec = _spec(ws, [_make(ws, params={"out_dir": str(other)})])
    assert "belongs to another grid cell (p/s/0123456789abcdef)" in _grid_error(capsys, str(spec), "--dry-run")


def _finished(plan, ws: Path, files: dict[str, str]) -> None:
    """Cells of ``plan`` as a finished run leaves them: files in the claimed out_dir, a run record."""
    for cell in plan.cells:
        default = cell.out_dir == paths.runs_dir("t", cell.stage) / cell.key
        with io.claim_out_dir(cell.out_dir, cell_runner.CLAIM, cell_runner.claim_identity(cell, "t"), adopt=default):
            for name, text in files.items():
                (cell.out_dir / name).write_text(text)
        provenance.write_record(cell.marker, {"stage": cell.stage, "key": cell.key, "run_id": str(time.time_ns()),
                                              "library_hash": provenance.library_hash(), "params": {}})


def test_only_files_the_cell_wrote_are_collected(ws):
    """A file dropped into a cell's explicit out_dir between two runs of it is not the cell's."""
    plan = plan_grid(_spec(ws, [_make(ws, params={"out_dir": str(ws / "explicit")})]))
    (cell,) = plan.cells
    _finished(plan, ws, {"value.txt": "10"})
    (cell.out_dir / "credentials.txt").write_text("secret")
    os.utime(cell.out_dir / "credentials.txt", (1, 1))
    _finished(plan, ws, {"value.txt": "10"})  # the rerun
    collect.collect_results(plan, echo=_quiet)
    stored = ws / "results" / "t" / "s" / cell.key
    assert sorted(p.name for p in stored.iterdir()) == ["provenance.json", "value.txt"]


# --------------------------------------------------------------------------------------------------
# 9. Inputs that would block or explode are refused at once


def _bomb(levels: int = 9) -> str:
    text, previous = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n", "a"
    for name in "bcdefghij"[:levels - 1]:
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text + f"profile: t\nstages: [{{name: s, notebook: x.ipynb, params: {{x: *{previous}}}}}]\n"


@pytest.mark.parametrize("text, message", [
    (_bomb(), r"its aliases expand to over 200,000 values \(an alias bomb\?\); refused before expanding"),
    ("profile: t\nprofile: u\nstages: []\n", r"duplicate key 'profile' \(first on line 1, again on line 2\)"),
    ("profile: t\nstages:\n  - name: s\n    notebook: x.ipynb\n    params: {steps: 3, steps: 5000}\n",
     r"line 5, column 24: .*duplicate key 'steps'"),
    ("[" * 5000 + "]" * 5000, r"nested too deeply to be a params file"),
    ("profile: t\nstages:\n\t- name: s\n", r"not valid YAML at line 3, column 1: .*cannot start any token"),
    ("", r"expected a mapping with 'profile' and 'stages', got NoneType None"),
])
def test_yaml_that_would_explode_or_quietly_resolve_is_one_line_at_once(ws, capsys, text, message):
    path = ws / "bad.yaml"
    path.write_text(text)
    started = time.perf_counter()
    err = _grid_error(capsys, str(path), "--dry-run")
    assert time.perf_counter() - started < 20
    assert str(path) in err and re.search(message, err), err


def test_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 3\n")
    assert io.read_yaml(path)["use"] == {"x": 3, "y": 2}


def test_huge_big_non_utf8_and_fifo_params_files(ws, capsys):
    big = ws / "big.yaml"
    big.write_text("# " + "x" * (io.MAX_YAML_BYTES + 10) + "\n")
    assert "over the 1,048,576-byte limit" in _grid_error(capsys, str(big), "--status")
    binary = ws / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00profile")
    assert "not UTF-8 text" in _grid_error(capsys, str(binary), "--status")
    fifo = ws / "fifo.yaml"
    os.mkfifo(fifo)
    result: dict = {}
    reader = threading.Thread(target=lambda: result.setdefault("err", _grid_error(capsys, str(fifo), "--dry-run")),
                              daemon=True)
    reader.start()
    reader.join(20)
    if reader.is_alive():  # unblock the reader so the test ends, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("a FIFO as params file blocked")
    assert "fifo.yaml: is a FIFO (named pipe), which would block reading forever" in result["err"]


def test_a_million_cell_grid_and_a_fanned_out_reference_are_refused_at_once(ws, capsys):
    started = time.perf_counter()
    huge = _spec(ws, [_make(ws, grid={"x": list(range(1000)), "y": list(range(1000))})])
    assert f"would plan 1,000,000 cells, over the limit of {MAX_CELLS:,}" in _grid_error(capsys, str(huge), "--dry-run")
    _notebook(ws / "nb" / "use.ipynb", "source = ''\ny = 0\nout_dir = None", "pass")
    fan = _spec(ws, [_make(ws, grid={"x": list(range(200))}),
                     {"name": "u", "notebook": str(ws / "nb" / "use.ipynb"), "grid": {"y": list(range(200))},
                      "params": {"source": "@s"}}])
    assert f"stages up to 'u': would plan at least {MAX_CELLS + 200:,} cells" in _grid_error(capsys, str(fan), "--dry-run")
    assert time.perf_counter() - started < 60


# --------------------------------------------------------------------------------------------------
# 10. Storage faults, clear and early; stopping a grid ends its tree; busy is not failed


def test_an_unwritable_results_folder_stops_the_grid_before_any_cell_runs(ws, monkeypatch, capsys):
    blocker = ws / "results-file"
    blocker.write_text("a file where results/ should be")
    monkeypatch.setenv("GENEMASK_RESULTS", str(blocker))
    err = _grid_error(capsys, str(_spec(ws, [_make(ws)])))
    assert "is not writable" in err and "nothing was run" in err and "results-file" in err
    assert not list((ws / "runs").rglob("*.ipynb"))


@pytest.mark.parametrize("fault, target", [(errno.ENOSPC, "value.txt"), (errno.EROFS, "cells.csv")])
def test_a_full_or_read_only_disk_during_collection_names_the_file_and_half_collects_nothing(ws, monkeypatch, fault, target):
    plan = plan_grid(_spec(ws, [_make(ws, grid={"x": [1, 2]})]))
    _finished(plan, ws, {"value.txt": "10", "other.json": "{}"})
    first, second = plan.cells
    collect.collect_results(type(plan)(plan.spec, [first]), echo=_quiet)  # the first cell is collected already
    stage = ws / "results" / "t" / "s"
    before = (stage / "cells.csv").read_text()
    provenance.write_record(first.marker, {**provenance.read_record(first.marker), "run_id": "rerun"})  # rerun: recollect

    real = collect.write_text

    def failing(path, text):
        if Path(path).name == target:
            raise io.write_error(path, OSError(fault, os.strerror(fault)))
        return real(path, text)

    for writer in (collect, store):  # a result file's text, cells.csv (the store writes it)
        monkeypatch.setattr(writer, "write_text", failing)
    with pytest.raises(OSError) as err:
        collect.collect_results(plan, echo=_quiet)
    assert target in str(err.value) and os.strerror(fault) in str(err.value) and "\n" not in str(err.value)
    assert (stage / "cells.csv").read_text() == before
    listed = {r["key"] for r in state.results_rows("t", "s")}
    on_disk = {p.name for p in stage.iterdir() if p.is_dir()}
    assert listed == on_disk == {first.key}, (listed, on_disk)
    assert json.loads((stage / first.key / "provenance.json").read_text())["run_id"] != "rerun"
    for writer in (collect, store):
        monkeypatch.setattr(writer, "write_text", real)
    collect.collect_results(plan, echo=_quiet)
    assert {r["key"] for r in state.results_rows("t", "s")} == {p.name for p in stage.iterdir()} - {"cells.csv"} == {
        first.key, second.key}


def test_run_grid_turns_a_collection_fault_into_one_line(ws, monkeypatch, capsys):
    plan_path = _spec(ws, [_make(ws)])
    _finished(plan_grid(plan_path), ws, {"value.txt": "10"})

    def full(path, text):
        raise io.write_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    monkeypatch.setattr(collect, "write_text", full)
    err = _grid_error(capsys, str(plan_path))
    assert "collecting into" in err and "value.txt: could not write (No space left on device)" in err


def test_a_collection_killed_between_its_renames_is_mended_by_the_next(ws):
    plan = plan_grid(_spec(ws, [_make(ws)]))
    _finished(plan, ws, {"value.txt": "10"})
    collect.collect_results(plan, echo=_quiet)
    (cell,) = plan.cells
    stage = ws / "results" / "t" / "s"
    os.replace(stage / cell.key, stage / f".{cell.key}.replaced")  # killed after the first rename
    (stage / f".{cell.key}.collecting").mkdir()
    collect.collect_results(plan, echo=_quiet)
    assert (stage / cell.key / "value.txt").read_text() == "10" and not list(stage.glob(".*"))


def test_a_rerun_tells_a_busy_cell_from_a_failed_one(ws, capsys):
    import fcntl

    spec = _spec(ws, [_make(ws)])
    (cell,) = plan_grid(spec).cells
    running = cell_runner.running_file(cell)
    running.parent.mkdir(parents=True)
    with open(running, "w") as handle:  # a runner left by a stopped grid, still alive
        handle.write("4242")
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert cell_runner.busy_pid(cell) == 4242
        assert cli.main(["grid", str(spec), "--status"]) == 0
        shown = capsys.readouterr().out
        assert re.search(rf"RUNNING +{cell.key} +\(pid 4242\)", shown), shown
        err = _grid_error(capsys, str(spec))
    assert f"cell s/{cell.key} is still running (pid 4242; 1 busy cell(s))" in err
    assert cell_runner.busy_pid(cell) is None  # the lock went with its holder


def test_damaged_records_and_indexes_name_their_file(ws, capsys):
    spec = _spec(ws, [_make(ws)])
    (cell,) = plan_grid(spec).cells
    cell.marker.parent.mkdir(parents=True)
    cell.marker.write_text("{half")
    err = _grid_error(capsys, str(spec), "--status")
    assert f"{cell.key}.provenance.json: damaged run record, not JSON" in err
    cell.marker.unlink()
    index = ws / "results" / "t" / "s" / "cells.csv"
    index.parent.mkdir(parents=True)
    index.write_text("key,x\n../x,1\n")
    assert "cells.csv, line 2: key '../x' is not a cell key (16 hex digits)" in _grid_error(capsys, str(spec), "--status")


def test_a_damaged_pretrain_json_names_the_file(tmp_path):
    from genemask import finetune, pretrain

    checkpoint = pretrain.demo_checkpoint()
    copy = tmp_path / "ckpt"
    import shutil

    shutil.copytree(checkpoint, copy)
    (copy / "pretrain.json").write_text('{"config": ')
    with pytest.raises(ValueError, match=r"pretrain.json: not valid JSON") as err:
        finetune.checkpoint_info(str(copy))
    assert "\n" not in str(err.value)


def test_small_cli_cases_stay_clear(ws, capsys):
    spec = _spec(ws, [_make(ws)])
    assert "no stage(s) ['nosuch']" in _grid_error(capsys, str(spec), "--stage", "nosuch", "--dry-run")
    assert "no such params file" in _grid_error(capsys, str(ws / "x';touch PWNED;'.yaml"))
    assert not list(ws.rglob("PWNED"))




@pytest.mark.parametrize("target", ["group", "process"])
def test_kill_9_of_the_grid_ends_snakemake_the_runner_and_the_kernel(ws, target):
    import psutil

    _notebook(ws / "nb" / "sleep.ipynb", "out_dir = None", "import time; time.sleep(300)")
    spec = _spec(ws, [{"name": "sleep", "notebook": str(ws / "nb" / "sleep.ipynb")}])
    proc, seen = grid_until_kernel(spec, 180, start_new_session=True)
    for p in process_tree(proc.pid):
        seen[p.pid] = p
    if target == "group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.wait(timeout=30)
    deadline = time.time() + 30  # the kernel polls its parent every second or so
    while time.time() < deadline:
        alive = [p for p in seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.5)
    assert not alive, [" ".join(p.cmdline())[:200] for p in alive]
    (cell,) = plan_grid(spec).cells
    assert cell_runner.busy_pid(cell) is None  # the rerun sees no busy cell: it may run it again


def test_a_grid_cell_names_its_centre_probability_not_a_masked_fraction():
    """Issue 22: a cell's ``mlm_probability`` would be a masked fraction calibrated per run, while the
    committed rows spell the centre probability that way; a params file names ``centre_probability``,
    so a row's options mean one thing (identity.legacy_params reads the committed ones)."""
    from pathlib import Path
    from types import SimpleNamespace

    from genemask.grid import GridError
    from genemask.grid.spec import check_params

    spec, stage = SimpleNamespace(source="params/x.yaml"), SimpleNamespace(name="pretrain", notebook=Path("03_pretrain.ipynb"))
    declared = {"masking_options": {"default": "{}"}, "steps": {"default": "500"}}
    check_params(spec, stage, {"masking_options": {"centre_probability": 0.05}, "steps": 250}, declared)
    with pytest.raises(GridError, match=r"^params/x.yaml: stage 'pretrain': masking_options sets mlm_probability") as err:
        check_params(spec, stage, {"masking_options": {"mlm_probability": 0.15}}, declared)
    assert "\n" not in str(err.value) and "centre_probability" in str(err.value)
