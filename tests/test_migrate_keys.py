"""One key formula (issue 25): a cell's key is its stage and parameters (``store.cell_key``), never
its notebook's text or the package version; ``genemask grid --migrate-keys`` re-keys committed results
to it by their parameters.

A small results tree is written as an older grid left it (keys of some other formula, upstream
references by those keys in cells.csv, records, run tables and checkpoint files); nothing is run.
After the migration every key is ``store.cell_key`` of its stage and parameters, no old key is left
(but in the records' ``rekeyed`` notes), every file is byte for byte the old one with the keys
renamed, a second run changes nothing, and cells an older checkout collects later under old keys
are re-keyed by the next run.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil

import pytest
import yaml

from genemask import gpu, store
from genemask.grid import migrate_keys, plan_grid
from genemask.grid.plan import portable_params
from genemask.grid.state import grid_state
from helpers import write_notebook

HEX = re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])")


def _quiet(*_):
    return None


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GENEMASK_NOTEBOOK_DIRS", str(tmp_path))
    write_notebook(tmp_path / "make.ipynb", "x = 1\nout_dir = None", "y = x * 10")
    write_notebook(tmp_path / "use.ipynb", "source = ''\nout_dir = None", "z = 2")
    # "use" and "again" run one notebook with the same parameters: only the stage's name tells them apart
    stages = [{"name": "make", "notebook": str(tmp_path / "make.ipynb"), "grid": {"x": [1, 2]}},
              {"name": "use", "notebook": str(tmp_path / "use.ipynb"), "params": {"source": "@make/value.txt"}},
              {"name": "again", "notebook": str(tmp_path / "use.ipynb"), "params": {"source": "@make/value.txt"}}]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"profile": "t", "stages": stages}))
    (tmp_path / "other.yaml").write_text("profile: u\n# a committed input: @t/make/{make1}/value.txt\n")
    return tmp_path


def _old_key(cell_id: str) -> str:
    return hashlib.sha256(f"an older formula: {cell_id}".encode()).hexdigest()[:16]


def _write_old(ws, plan, only=None) -> dict[tuple[str, str], str]:
    """Collect the plan's cells (``only``: those cell ids) as an older grid did, under old keys; return
    ``(stage, old key) -> planned key``. Files name the cell and its upstream cells by old keys."""
    root = ws / "results" / "t"
    old = {c.id: _old_key(c.id) for c in plan.cells}
    for stage in ("make", "use", "again"):
        rows = store.rows("t", stage)
        for cell in plan.stage_cells(stage):
            if only is not None and cell.id not in only:
                continue
            key = old[cell.id]
            params = {k: store.rekey_text(v, {d: old["/".join(d)] for d in cell.deps}) if isinstance(v, str) else v
                      for k, v in portable_params(cell.params).items()}
            folder = root / stage / key
            folder.mkdir(parents=True)
            if stage == "make":
                (folder / "value.txt").write_text(f"{cell.params['x'] * 10}\n")
                (folder / "summary.json").write_text(json.dumps({"out": f"runs/t/make/{key}/value.txt", "loss": 0.1234567}))
            else:
                up = params["source"]
                (folder / "fewshot_runs.csv").write_text(f"checkpoint,mcc\n{up},0.4375\n")
                (folder / "checkpoint.json").write_text(json.dumps({"checkpoint": up, "step": 6000}, indent=2))
            store.write_record(folder / store.RECORD, {
                "stage": stage, "key": key, "run_id": f"migrated:{stage}/{key}", "params": params, "code_hash": "c0de" * 4,
                "inputs": {f"{s}/{old[f'{s}/{k}']}": f"migrated:{s}/{old[f'{s}/{k}']}" for s, k in cell.deps},
                "reproduced": [{"key": key, "code_hash": "c0de" * 4, "equal": True}]})
            rows.append(store.cells_row(key, params))
        store.write_cells(store.cells_path("t", stage), rows)
    text = (ws / "other.yaml").read_text()
    (ws / "other.yaml").write_text(text.replace("{make1}", old[plan.stage_cells("make")[0].id]))
    return {(c.stage, old[c.id]): c.key for c in plan.cells}


def _tree(ws) -> dict[str, bytes]:
    return {str(p.relative_to(ws)): p.read_bytes() for p in sorted(ws.rglob("*")) if p.is_file() and "runs" not in p.parts}


def _renamed(text: str, keys: dict[tuple[str, str], str]) -> str:
    bare = {old: new for (_, old), new in keys.items()}
    return HEX.sub(lambda m: bare.get(m.group(), m.group()), text)


def _without_notes(text: str) -> str:
    record = json.loads(text)
    record.pop("rekeyed", None)
    record.pop("notebook_hash", None)  # what the old key told of the notebook (here: no notebook of now)
    for entry in record.get("reproduced") or []:
        entry.pop("notebook_hash", None)
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def test_the_key_is_the_stage_and_parameters_and_the_grid_and_gpu_runner_share_it(ws, monkeypatch):
    plan = plan_grid(ws / "p.yaml")
    use, again = plan.stage_cells("use")[0], plan.stage_cells("again")[0]
    assert use.key != again.key  # one notebook, the same parameters, two stages: two cells
    for cell in plan.cells:
        assert cell.key == store.cell_key(cell.stage, portable_params(cell.params))
    assert gpu.cell_key is store.cell_key
    # the notebook's text and the package version are freshness, not identity
    write_notebook(ws / "make.ipynb", "x = 1\nout_dir = None", "y = x * 100  # an edit")
    monkeypatch.setattr("genemask.__version__", "99.0")
    assert [c.key for c in plan_grid(ws / "p.yaml").cells] == [c.key for c in plan.cells]


def test_migration_renames_every_key_changes_no_number_and_again_nothing(ws):
    plan = plan_grid(ws / "p.yaml")
    keys = _write_old(ws, plan)
    before = _tree(ws)
    counts = migrate_keys(ws / "p.yaml", echo=_quiet)
    assert counts["cells"] == counts["re-keyed"] == 6 and counts["not in plan"] == 0 and counts["params files rewritten"] == 1
    after = _tree(ws)
    olds = {old for _, old in keys}
    for stage in ("make", "use", "again"):  # every key is store.cell_key of its stage and parameters
        rows = store.rows("t", stage)
        assert {r["key"] for r in rows} == {c.key for c in plan.stage_cells(stage)}
        for row in rows:
            record = store.cell_record("t", stage, row["key"])
            assert row["key"] == store.cell_key(stage, record["params"]) == record["key"]
            assert record["reproduced"][0]["key"] == row["key"]
            (note,) = record["rekeyed"]
            assert note["to"] == row["key"] and keys[(stage, note["from"])] == row["key"]
    # every file is the old one with the keys renamed; no old key is left (but in the notes)
    assert sorted(after) == sorted(_renamed(name, keys) for name in before)
    for name, data in before.items():
        new = after[_renamed(name, keys)].decode()
        if name.endswith(store.RECORD):
            new = _without_notes(new)
        assert new == _renamed(data.decode(), keys), name
        assert not olds & set(HEX.findall(new)), name
    assert f"@t/make/{plan.stage_cells('make')[0].key}/value.txt" in (ws / "other.yaml").read_text()
    # the grid finds every cell by its key now (no "recorded as <old key>")
    gs = grid_state(plan, use_runs=False)
    assert all(gs.of(c).where == "results" and gs.of(c).record_key == c.key for c in plan.cells) and not gs.orphans
    # these old keys were no key an older grid gives now: made by another notebook, stale as before
    assert all(store.cell_record("t", c.stage, c.key)["notebook_hash"] is None for c in plan.cells)
    assert all("made by other notebook code" in gs.of(c).reason for c in plan.cells)
    # a second run changes nothing
    counts = migrate_keys(ws / "p.yaml", echo=_quiet)
    assert counts["re-keyed"] == counts["files rewritten"] == counts["params files rewritten"] == 0
    assert _tree(ws) == after


def test_cells_collected_later_under_old_keys_are_re_keyed_by_the_next_run(ws):
    """An older checkout keeps collecting: new cells naming migrated upstream cells by their old keys,
    and a cell it collected before collected again; the next run maps them all."""
    plan = plan_grid(ws / "p.yaml")
    make1, make2 = plan.stage_cells("make")
    first = {c.id for c in plan.cells if c.stage == "make" or c.deps == [("make", make1.key)]}
    _write_old(ws, plan, only=first)
    migrate_keys(ws / "p.yaml", echo=_quiet)
    migrated = _tree(ws)
    use1 = next(c for c in plan.stage_cells("use") if c.id in first)
    _write_old(ws, plan, only={c.id for c in plan.cells if c.id not in first} | {use1.id})  # old keys, old upstream keys
    counts = migrate_keys(ws / "p.yaml", echo=_quiet)
    assert counts["duplicates dropped"] == 1 and counts["not in plan"] == 0
    for stage in ("make", "use", "again"):
        assert {r["key"] for r in store.rows("t", stage)} == {c.key for c in plan.stage_cells(stage)}
        assert sorted(p.name for p in (ws / "results" / "t" / stage).iterdir() if p.is_dir()) == sorted(
            c.key for c in plan.stage_cells(stage))
    for name, data in migrated.items():  # what the first run migrated is as it was (numbers and all)
        if not name.endswith(store.RECORD) and not name.endswith(store.CELLS):
            assert _tree(ws)[name] == data, name
    assert not any(set(HEX.findall(t.decode())) & {_old_key(c.id) for c in plan.cells}
                   for name, t in _tree(ws).items() if not name.endswith(store.RECORD) and name.startswith("results"))
    after = _tree(ws)
    assert migrate_keys(ws / "p.yaml", echo=_quiet)["re-keyed"] == 0 and _tree(ws) == after


def test_a_cell_outside_the_plan_is_keyed_by_its_recorded_parameters(ws):
    plan = plan_grid(ws / "p.yaml")
    _write_old(ws, plan)
    key = _old_key("gone")
    (ws / "results" / "t" / "make" / key).mkdir()
    store.write_record(ws / "results" / "t" / "make" / key / store.RECORD, {"stage": "make", "key": key, "params": {"x": 7}})
    store.write_cells(store.cells_path("t", "make"), [*store.rows("t", "make"), store.cells_row(key, {"x": 7})])
    lines = []
    assert migrate_keys(ws / "p.yaml", echo=lines.append)["not in plan"] == 1
    new = store.cell_key("make", {"x": 7})
    assert new in {r["key"] for r in store.rows("t", "make")} and (ws / "results" / "t" / "make" / new).is_dir()
    assert any(f"make/{new}: not in" in line for line in lines)


def test_a_reference_to_no_listed_cell_is_an_error_naming_the_line(ws):
    plan = plan_grid(ws / "p.yaml")
    _write_old(ws, plan)
    rows = store.rows("t", "use")
    rows[1]["source"] = "@make/00000000000000ff/value.txt"
    store.write_cells(store.cells_path("t", "use"), rows)
    before = _tree(ws)
    with pytest.raises(store.StoreError, match=r"t/use/cells\.csv, line 3: source='@make/00000000000000ff/value\.txt' "
                                               r"names no cell listed in .*t/make/cells\.csv"):
        migrate_keys(ws / "p.yaml", echo=_quiet)
    assert _tree(ws) == before  # checked before anything is renamed


def test_two_copies_of_one_cell_with_different_results_are_an_error(ws):
    plan = plan_grid(ws / "p.yaml")
    keys = _write_old(ws, plan)
    migrate_keys(ws / "p.yaml", echo=_quiet)
    make1 = plan.stage_cells("make")[0]
    copy = ws / "results" / "t" / "make" / _old_key(make1.id)
    shutil.copytree(ws / "results" / "t" / "make" / make1.key, copy)
    (copy / "value.txt").write_text("11\n")
    store.write_cells(store.cells_path("t", "make"), [*store.rows("t", "make"), store.cells_row(copy.name, {"x": 1})])
    with pytest.raises(store.StoreError, match="are one cell of make .* with different results"):
        migrate_keys(ws / "p.yaml", echo=_quiet)
    assert keys
