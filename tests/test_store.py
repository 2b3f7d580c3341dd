"""The results store (``genemask.store``): the one owner of what a result is on disk.

A small grid collected through the store gives the bytes the layout promised before the store
existed (cells.csv's columns, order and quoting; the record's fields and JSON form; portable paths;
only result files); every committed cells.csv and record reads and writes back byte for byte; bad
input (a key that is no key, a record that is no mapping, a reference that leaves its folder) is an
error naming its file.
"""
from __future__ import annotations

import json

import pytest
import yaml

from genemask import paths, store
from genemask.grid import collect_results, plan_grid
from helpers import write_notebook

KEY_A, KEY_B = "0123456789abcdef", "fedcba9876543210"


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GENEMASK_NOTEBOOK_DIRS", str(tmp_path))
    return tmp_path


def _finish(cell, files: dict[str, str]) -> dict:
    """What a finished run leaves in runs/: its files in out_dir and its run record (nothing is run)."""
    cell.out_dir.mkdir(parents=True)
    for name, text in files.items():
        (cell.out_dir / name).write_text(text)
    record = {"stage": cell.stage, "key": cell.key, "run_id": f"run-{cell.key}", "code_hash": "0" * 16,
              "params": {"x": cell.params.get("x")}, "inputs": {f"{s}/{k}": f"run-{k}" for s, k in cell.deps}}
    store.write_record(cell.marker, record)
    return record


def test_a_small_grid_collects_through_the_store_to_the_promised_bytes(ws):
    write_notebook(ws / "make.ipynb", "x = 1\nopts = []\nnote = ''\nout_dir = None", "pass")
    write_notebook(ws / "use.ipynb", "source = ''\nout_dir = None", "pass")
    spec = ws / "p.yaml"
    spec.write_text(yaml.safe_dump({"profile": "t", "stages": [
        {"name": "make", "notebook": str(ws / "make.ipynb"), "grid": {"x": [1, 2]},
         "params": {"opts": [1, 2], "note": 'say "hi", twice'}},
        {"name": "use", "notebook": str(ws / "use.ipynb"), "params": {"source": "@make[x=2]/value.txt"}}]}))
    plan = plan_grid(spec)
    (a, b), (u,) = plan.stage_cells("make"), plan.stage_cells("use")
    records = {c.key: _finish(c, {"value.txt": str(c.params.get("x")), "where.json": json.dumps({"path": str(c.out_dir)}),
                                  ".hidden.json": "{}", "model.bin": "x"}) for c in (a, b, u)}
    collect_results(plan, echo=lambda *_: None)

    root = ws / "results" / "t"
    assert (root / "make" / "cells.csv").read_bytes() == (
        f'key,note,opts,x\n{a.key},"say ""hi"", twice","[1, 2]",1\n{b.key},"say ""hi"", twice","[1, 2]",2\n').encode()
    assert (root / "use" / "cells.csv").read_bytes() == f"key,source\n{u.key},@make/{b.key}/value.txt\n".encode()
    for cell in (a, b, u):
        folder = root / cell.stage / cell.key
        assert sorted(p.name for p in folder.iterdir()) == ["provenance.json", "value.txt", "where.json"]
        assert (folder / "where.json").read_text() == json.dumps({"path": f"@{cell.stage}/{cell.key}"})
        expected = {**records[cell.key], "not_collected": []}
        assert (folder / "provenance.json").read_text() == json.dumps(expected, indent=2, sort_keys=True) + "\n"
        assert store.cell_record("t", cell.stage, cell.key) == expected
    assert store.held_keys("t", "make") == {a.key, b.key} and store.stages("t") == ["make", "use"]


@pytest.mark.skipif(not paths.RESULTS.is_dir(), reason="no committed results")
def test_every_committed_cells_csv_and_record_writes_back_byte_for_byte():
    """Migrating the readers and writers to the store changes no committed byte: what it reads, it
    writes back the same."""
    indexes = sorted(paths.RESULTS.glob("*/*/" + store.CELLS))
    assert indexes
    for index in indexes:
        rows = store.read_cells(index)
        assert store.cells_text(rows) == index.read_text(), index
        for row in rows:
            record = index.parent / row["key"] / store.RECORD
            if record.exists():
                assert json.dumps(store.read_record(record), indent=2, sort_keys=True) + "\n" == record.read_text(), record


def test_merge_replaces_in_place_appends_and_drops(tmp_path):
    index = tmp_path / "s" / store.CELLS
    store.write_cells(index, [{"key": KEY_A, "x": "1"}, {"key": KEY_B, "x": "2"}])
    other = "00000000000000aa"
    rows = store.merge_cells(index, [{"key": KEY_A, "x": "3", "y": "[1, 2]"}, {"key": other, "x": "4"}], drop=[KEY_B])
    assert [r["key"] for r in rows] == [KEY_A, other]
    assert index.read_text() == f'key,x,y\n{KEY_A},3,"[1, 2]"\n{other},4,\n'
    assert store.cells_row(KEY_A, {"a": [1], "b": None, "c": 0.5, "d": True, "out_dir": "/x"}) == {
        "key": KEY_A, "a": "[1]", "b": "", "c": "0.5", "d": "True"}


@pytest.mark.parametrize("name, text, message", [
    (store.CELLS, "key,x\n../x,1\n", r"cells\.csv, line 2: key '\.\./x' is not a cell key \(16 hex digits\)"),
    (store.CELLS, "seed\n0\n", r"cells\.csv has no 'key' column"),
    (store.CELLS, f"key\n{KEY_A}\n{KEY_A}\n", rf"cells\.csv lists key {KEY_A} twice \(line 3\)"),
    (store.RECORD, "{", "damaged run record, not JSON"),
    (store.RECORD, "[1]", r"a JSON list, not a mapping"),
])
def test_a_malformed_cells_csv_or_record_is_an_error_naming_it(tmp_path, name, text, message):
    """Never read as "no cells" or "not run" (which would rerun finished cells silently)."""
    path = tmp_path / name
    path.write_text(text)
    read = store.read_cells if name == store.CELLS else store.read_record
    with pytest.raises(store.StoreError, match=message) as err:
        read(path)
    assert str(path) in str(err.value)
    assert read(tmp_path / "none" / name) in ([], None)


def test_references_have_one_parser_and_never_leave_their_folder(ws):
    ref = store.parse_reference(f"@pretrain/{KEY_A}/checkpoint-step-100")
    assert (ref.stage, ref.key, ref.file) == ("pretrain", KEY_A, "checkpoint-step-100")
    assert str(ref) == f"@pretrain/{KEY_A}/checkpoint-step-100"
    assert ref.path("cpu") == ws / "results" / "cpu" / "pretrain" / KEY_A / "checkpoint-step-100"
    assert store.parse_reference(f"@pmi/{KEY_A}") == store.Reference("pmi", KEY_A)
    for plain in ("random:tiny", "@pmi/kmer_ranking.csv", 3, None):
        assert store.parse_reference(plain) is None
    with pytest.raises(store.StoreError, match=r"leaves the cell's folder"):
        store.parse_reference(f"@pretrain/{KEY_A}/../../../etc/passwd")
    selection = store.SELECTION.fullmatch("@pmi[k=6]/kmer_ranking.csv")
    assert (selection["stage"], selection["selector"], selection["file"]) == ("pmi", "k=6", "kmer_ranking.csv")
    with pytest.raises(store.StoreError, match=r"key '\.\./x' is not a cell key"):
        store.cell_dir("cpu", "pretrain", "../x")
    with pytest.raises(store.StoreError, match=r"'\.\.' is not a safe folder name"):
        store.stage_dir("cpu", "..")
