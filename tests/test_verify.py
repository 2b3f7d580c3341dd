"""``genemask grid --verify``: stale cells rerun in scratch folders and compared with their committed
results: equal ones read verified, different ones stay stale with their differences shown, a sample
says it was one, and a training cell from another CPU is judged against its method's seed spread."""
from __future__ import annotations

import json

import pytest
import yaml

from genemask import paths, store
from genemask.grid import grid_state, plan_grid, provenance
from genemask.grid.collect import row_of, write_rows
from genemask.grid.state import FRESH, STALE, VERIFIED
from genemask.grid.verify import choose, compare_csv, judge_in_distribution, verify
from helpers import write_notebook as _notebook




@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEMASK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENEMASK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("GENEMASK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENEMASK_NOTEBOOK_DIRS", str(tmp_path))  # the allow-list for these test notebooks
    _notebook(tmp_path / "make.ipynb", "x = 1\nout_dir = None",
              "import json, pathlib, time\nout = pathlib.Path(out_dir)\nout.mkdir(parents=True, exist_ok=True)\n"
              "(out / 'value.csv').write_text(f'x,y,seconds\\n{x},{x / 3!r},{time.time()}\\n')\n"
              "(out / 'summary.json').write_text(json.dumps({'v': x * 10, 'seconds': time.time()}))")
    _notebook(tmp_path / "use.ipynb", "source = ''\nout_dir = None",
              "import pathlib\npathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
              "pathlib.Path(out_dir, 'got.csv').write_text(pathlib.Path(source).read_text().upper())")
    # A training cell to the code rule: it imports the pretraining module (never run here).
    _notebook(tmp_path / "train.ipynb", "seed = 0\nout_dir = None",
              "import json, pathlib\nif False:\n    from genemask import pretrain\n"
              "pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
              "pathlib.Path(out_dir, 'summary.json').write_text(json.dumps({'final_val_perplexity': 100.0 + 10 * seed}))")
    return tmp_path


def _commit(plan, stage: str, files_of, record_of=lambda cell: {}) -> None:
    """Collected results of a stage as an older library made them: the files ``files_of(cell)``."""
    cells = plan.stage_cells(stage)
    for cell in cells:
        folder = paths.results_dir(plan.spec.profile) / stage / cell.key
        folder.mkdir(parents=True)
        for name, text in files_of(cell).items():
            (folder / name).write_text(text)
        provenance.write_record(folder / provenance.RECORD, {
            "stage": stage, "key": cell.key, "run_id": f"old-{cell.key}", "code_hash": "0" * 16,
            "inputs": {f"{s}/{k}": f"old-{k}" for s, k in cell.deps}, **record_of(cell)})
    write_rows(plan.spec.profile, stage, [row_of(c) for c in cells])


def _states(plan):
    gs = grid_state(plan, use_runs=False)
    return {c.id: gs.of(c) for c in plan.cells}


def test_deterministic_cells_verified_when_equal_and_stale_with_the_difference_when_not(workspace):
    spec = workspace / "p.yaml"
    spec.write_text(yaml.safe_dump({"profile": "t", "stages": [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1, 2]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make[x=1]/value.csv"}}]}))
    plan = plan_grid(spec)
    one, two = plan.stage_cells("make")
    (use,) = plan.stage_cells("use")
    # x=1: committed with y one step in the 16th digit off and another wall time; x=2: y wrong.
    _commit(plan, "make", lambda c: {
        "value.csv": f"x,y,seconds\n{c.params['x']},{0.33333333333333337 if c is one else 0.7},12.5\n",
        "summary.json": json.dumps({"v": c.params["x"] * 10, "seconds": 3.0})},
        lambda c: {"cpu_seconds": 1.0 if c is one else 5.0})
    _commit(plan, "use", lambda c: {"got.csv": f"X,Y,SECONDS\n1,{1 / 3!r},12.5\n".upper()})
    assert {s.state for s in _states(plan).values()} == {STALE}

    lines = []
    outcomes = verify(spec, stages=["make"], sample=1, echo=lines.append)
    assert [(o.cell.key, o.equal) for o in outcomes] == [(one.key, True)]
    assert "[make] verified: 1 of 2 cells rerun, equal (a sample of 1 per stage)" in "\n".join(lines)
    states = _states(plan)
    assert states[one.id].state == VERIFIED and states[two.id].state == STALE
    from genemask.grid import run_grid  # --status and --dry-run show a verified cell as reusable (they raised KeyError)
    assert {c.key: c.status for c in run_grid(spec, status=True, echo=lines.append)}[one.key] == "cached"
    entry = states[one.id].reproduced
    assert entry["code_hash"] == grid_state(plan, use_runs=False).code.now_hash["make"] and entry["key"] == one.key
    assert entry["kind"].startswith("equal (deterministic") and "cpu_model" in entry

    lines = []
    outcomes = verify(spec, echo=lines.append)  # the rest: make x=2 and use (its upstream copied from results/)
    assert {o.cell.id: o.equal for o in outcomes} == {two.id: False, use.id: True}
    text = "\n".join(lines)
    assert "value.csv [row 1] y: 0.7 -> 0.6666666666666666" in text
    assert "[make] 1 of 2 cells rerun: 0 equal (verified), 1 different or not rerun (still stale)" in text
    states = _states(plan)
    assert (states[two.id].state, states[use.id].state) == (STALE, VERIFIED)
    assert not (workspace / "runs" / "t" / "make" / one.key).exists()  # the real runs/ untouched
    assert json.loads((workspace / "runs" / "t" / "verify_report.json").read_text())[0]["equal"] is False


def test_a_training_cell_from_another_cpu_is_judged_by_its_methods_seed_spread(workspace):
    spec = workspace / "p.yaml"
    spec.write_text(yaml.safe_dump({"profile": "t", "stages": [
        {"name": "train", "notebook": str(workspace / "train.ipynb"), "grid": {"seed": [0, 1, 2, 3]}}]}))
    plan = plan_grid(spec)
    here = provenance.cpu_description()
    # the reruns give 100, 110, 120, 130; the committed seeds' 95 % prediction interval is 88.5-128.0
    committed = {0: 100.0, 1: 110.0, 2: 111.0, 3: 112.0}
    _commit(plan, "train", lambda c: {"summary.json": json.dumps({"final_val_perplexity": committed[c.params["seed"]]})},
            lambda c: {"cpu": here if c.params["seed"] == 0 else {"model": "another CPU", "flags_hash": "x"}})
    lines = []
    outcomes = {o.cell.params["seed"]: o for o in verify(spec, echo=lines.append)}
    assert outcomes[0].equal and outcomes[0].kind == "bit for bit on the same CPU"
    assert outcomes[1].equal and outcomes[1].kind == "bit for bit (the record names another CPU)"
    assert outcomes[2].equal and outcomes[2].kind.startswith("in distribution")
    assert outcomes[2].note == "final_val_perplexity 120 within 4 seeds' 95% prediction interval 88.47-128"
    assert not outcomes[3].equal and "summary.json final_val_perplexity: \"4 seeds' 95% prediction interval 88.47-128\" -> 130.0" in "\n".join(lines)
    states = {c.params["seed"]: s.state for c in plan.cells for s in [_states(plan)[c.id]]}
    assert states == {0: VERIFIED, 1: VERIFIED, 2: VERIFIED, 3: STALE}


def test_comparisons_are_exact_except_float_noise_and_timings():
    old = "a,b,seconds\nx,0.1,1\ny,2.0000000000000004,5\n"
    assert compare_csv("f.csv", old, "a,b,seconds\nx,0.1,9\ny,2.0,7\n", 1e-9) == []
    (diff,) = compare_csv("f.csv", old, "a,b,seconds\nx,0.1,1\nz,2.0,5\n", 1e-9)
    assert (diff.column, diff.old, diff.new, diff.row) == ("a", "y", "z", "row 2")
    assert compare_csv("f.csv", old, "a,b,seconds\nx,0.1000001,1\ny,2.0,5\n", 0.0)[0].column == "b"
    # an empty text cell on both sides is equal (it read "nan -> nan" as a difference: a few-shot run's
    # test_substitute, empty where no substitute was needed)
    runs = "model,test_substitute,seconds\nm,,1\nm,prom-300 dev,2\n"
    assert compare_csv("r.csv", runs, runs.replace(",1\n", ",9\n"), 0.0) == []
    assert [d.column for d in compare_csv("r.csv", runs, runs.replace("m,,1", "m,x,1"), 0.0)] == ["test_substitute"]
    seeds = [{"summary.json": json.dumps({"final_val_perplexity": v})} for v in (170.0, 177.6, 182.0)]
    # the committed 10K random seeds: the rerun at 191.0 on another CPU lies outside their range, but
    # inside the 95 % prediction interval (176.5 ± 30.2) that a fourth faithful seed falls in
    assert judge_in_distribution({"summary.json": json.dumps({"final_val_perplexity": 191.0})}, seeds)[0]
    assert not judge_in_distribution({"summary.json": json.dumps({"final_val_perplexity": 210.0})}, seeds)[0]
    assert "too few" in judge_in_distribution({"summary.json": "{\"final_val_perplexity\": 1}"}, seeds[:2])[2]


def test_a_faithful_rerun_reads_in_distribution_95_percent_of_the_time_and_a_shifted_one_rarely():
    """Simulated: seeds and a rerun drawn alike (normal), 3 seeds, a summary's one metric or a few-shot
    table's ten MCC rows (judged as their mean, one number: Bonferroni over every row of a table
    would make the interval wider than the metric's range): at most 5 % of faithful reruns read
    different (the min-max range of 3 seeds would fail half); a rerun shifted by 6 seed sd reads
    different most of the time even at 3 seeds."""
    import numpy as np

    rng = np.random.default_rng(7)

    def files(values):
        if len(values) == 1:
            return {"summary.json": json.dumps({"final_val_perplexity": float(values[0])})}
        rows = "".join(f"d{i},10,mcc,{v!r}\n" for i, v in enumerate(values.tolist()))
        return {"fewshot_summary.csv": "dataset,shot,metric,mean\n" + rows}

    def failed(trials: int, metrics: int, shift: float) -> float:
        bad = 0
        for _ in range(trials):
            draws = rng.normal(size=(4, metrics))
            draws[3] += shift
            bad += not judge_in_distribution(files(draws[3]), [files(d) for d in draws[:3]])[0]
        return bad / trials

    one = failed(2000, 1, 0.0)
    assert 0.035 <= one <= 0.065, one  # a 95 % interval: 5 % ± 1.5 (2000 trials: sd 0.5 %)
    assert failed(300, 10, 0.0) <= 0.07
    draws = rng.normal(size=(4, 10))
    assert "Bonferroni" not in judge_in_distribution(files(draws[3]), [files(d) for d in draws[:3]])[2]
    assert failed(300, 1, 6.0) >= 0.6


def test_a_cell_stale_only_through_its_upstream_is_not_rerun(workspace):
    """Its own code is the code of now: a rerun would cost CPU and could not make its upstream fresh."""
    spec = workspace / "p.yaml"
    spec.write_text(yaml.safe_dump({"profile": "t", "stages": [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make/value.csv"}}]}))
    plan = plan_grid(spec)
    _commit(plan, "make", lambda c: {"value.csv": "x\n1\n"})
    now = grid_state(plan, use_runs=False).code.now_hash["use"]
    _commit(plan, "use", lambda c: {"got.csv": "X\n1\n"}, lambda c: {"code_hash": now})
    gs = grid_state(plan, use_runs=False)
    assert {gs.of(c).state for c in plan.cells} == {STALE}
    assert [c.stage for c in choose(plan, gs, None, None)] == ["make"]


def _made_by_the_code_of_now(workspace):
    """A one-cell "make" stage committed by the code of now, and the one "use" cell reading its file."""
    spec = workspace / "p.yaml"
    spec.write_text(yaml.safe_dump({"profile": "t", "stages": [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "params": {"source": "@make/value.csv"}}]}))
    plan = plan_grid(spec)
    (make,), (use,) = plan.stage_cells("make"), plan.stage_cells("use")
    codes = grid_state(plan, use_runs=False).code.now_hash
    _commit(plan, "make", lambda c: {"value.csv": "x\n1\n"}, lambda c: {"code_hash": codes["make"]})
    return spec, plan, make, use, codes


def test_a_cell_that_consumed_an_older_run_of_its_upstream_is_rerun_on_the_upstream_of_now(workspace):
    """Its upstream is done but was remade since (another run id, e.g. a migrated record): a rerun on
    the upstream of now can verify it, and its reproduction names the inputs it ran on."""
    spec, plan, make, use, codes = _made_by_the_code_of_now(workspace)
    _commit(plan, "use", lambda c: {"got.csv": "X\n1\n"},
            lambda c: {"code_hash": codes["use"], "inputs": {make.id: "migrated:" + make.id}})
    before = _states(plan)
    assert before[make.id].state != STALE and before[use.id].state == STALE
    assert before[use.id].reason == f"upstream {make.id} was remade since"
    assert [c.id for c in choose(plan, grid_state(plan, use_runs=False), None, None)] == [use.id]

    (outcome,) = verify(spec, echo=lambda _: None)
    assert outcome.equal
    after = _states(plan)
    assert after[use.id].state == VERIFIED and after[use.id].reproduced["inputs"] == {make.id: f"old-{make.key}"}
    # The rerun recorded the bytes it read: the upstream remade once more with the same file leaves
    # it verified (content decides, not run id); with another file it reads remade since.
    value = paths.results_dir("t") / "make" / make.key / "value.csv"
    assert after[use.id].reproduced["input_files"] == {f"@make/{make.key}/value.csv": store.content_digest(value, "t")}
    record_file = value.with_name(provenance.RECORD)
    provenance.write_record(record_file, {**provenance.read_record(record_file), "run_id": "newer"})
    assert _states(plan)[use.id].state == VERIFIED
    value.write_text("x\n2\n")
    assert (_states(plan)[use.id].state, _states(plan)[use.id].reason) == (STALE, f"upstream {make.id} was remade since")


def test_a_downstream_cell_that_read_the_same_bytes_from_another_upstream_run_is_fresh(workspace):
    """A cell made from a checkout that reran its deterministic upstream itself consumed another run
    id than the committed upstream's, but recorded the digest of the file it read: same bytes, fresh."""
    spec, plan, make, use, codes = _made_by_the_code_of_now(workspace)
    value = paths.results_dir("t") / "make" / make.key / "value.csv"
    read = {f"@make/{make.key}/value.csv": store.content_digest(value, "t")}
    _commit(plan, "use", lambda c: {"got.csv": "X\n1\n"},
            lambda c: {"code_hash": codes["use"], "inputs": {make.id: "the-checkouts-own-run"}, "input_files": read})
    assert _states(plan)[use.id].state == FRESH
    value.write_text("x\n1.0\n")  # the same number, other bytes: not the input it read
    assert _states(plan)[use.id].reason == f"upstream {make.id} was remade since"


def test_an_upstream_verified_in_the_same_run_leaves_its_downstream_verified(workspace):
    """One --verify over both stages: the downstream rerun consumes its upstream as the committed run
    that upstream's rerun reproduced (not as the scratch run), so it does not read "remade since"."""
    _notebook(workspace / "head.ipynb", "source = ''\nout_dir = None",  # its upstream's header: no wall time in it
              "import pathlib\npathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
              "pathlib.Path(out_dir, 'got.csv').write_text(pathlib.Path(source).read_text().splitlines()[0] + '\\n')")
    spec = workspace / "p.yaml"
    spec.write_text(yaml.safe_dump({"profile": "t", "stages": [
        {"name": "make", "notebook": str(workspace / "make.ipynb"), "grid": {"x": [1]}},
        {"name": "use", "notebook": str(workspace / "head.ipynb"), "params": {"source": "@make/value.csv"}}]}))
    plan = plan_grid(spec)
    (make,), (use,) = plan.stage_cells("make"), plan.stage_cells("use")
    _commit(plan, "make", lambda c: {"value.csv": f"x,y,seconds\n1,{1 / 3!r},12.5\n",
                                     "summary.json": json.dumps({"v": 10, "seconds": 3.0})})
    _commit(plan, "use", lambda c: {"got.csv": "x,y,seconds\n"},
            lambda c: {"inputs": {make.id: "migrated:" + make.id}})  # made on an upstream run of its day
    assert {s.state for s in _states(plan).values()} == {STALE}
    # a sample of "use" alone needs no rerun upstream: results/ keeps the file it reads
    assert [c.id for c in choose(plan, grid_state(plan, use_runs=False), ["use"], 1)] == [use.id]
    lines = []
    outcomes = verify(spec, echo=lines.append)
    assert {o.cell.id: o.equal for o in outcomes} == {make.id: True, use.id: True}, lines
    states = _states(plan)
    assert (states[make.id].state, states[use.id].state) == (VERIFIED, VERIFIED), states[use.id].reason


def test_a_sample_takes_the_cells_downstream_of_its_reruns_then_those_made_on_this_cpu(workspace):
    """Only a cell whose record names this CPU can be compared bit for bit: a sample of one reruns it
    even where another CPU's cell of the stage was cheaper; without a sample, the cheapest go first."""
    spec = workspace / "p.yaml"
    spec.write_text(yaml.safe_dump({"profile": "t", "stages": [
        {"name": "train", "notebook": str(workspace / "train.ipynb"), "grid": {"seed": [0, 1, 2]}},
        {"name": "use", "notebook": str(workspace / "use.ipynb"), "grid": {"source": ["@train/checkpoint"]}}]}))
    plan = plan_grid(spec)  # it reads a checkpoint: results/ keeps none, so only a rerun or runs/ has it
    here = provenance.cpu_description()
    elsewhere = {**here, "flags_hash": "not-this-one"}
    cpu_of = {0: elsewhere, 1: here, 2: {}}
    seconds_of = {0: 10.0, 1: 30.0, 2: 20.0}
    _commit(plan, "train", lambda c: {"summary.json": "{}"},
            lambda c: {"cpu": cpu_of[c.params["seed"]], "cpu_seconds": seconds_of[c.params["seed"]]})
    seed_of = {c.key: c.params["seed"] for c in plan.stage_cells("train")}
    # the downstream cell of seed 0 is the cheapest, but a sample takes the one whose upstream it reruns
    _commit(plan, "use", lambda c: {"got.csv": "X\n"}, lambda c: {"cpu_seconds": 1.0 + seed_of[c.deps[0][1]]})
    gs = grid_state(plan, use_runs=False)

    def seeds(cells):
        return [(c.stage, seed_of[c.key] if c.stage == "train" else seed_of[c.deps[0][1]]) for c in cells]

    assert seeds(choose(plan, gs, ["train"], 1)) == [("train", 1)]
    assert seeds(choose(plan, gs, None, 1)) == [("train", 1), ("use", 1)]
    assert seeds(choose(plan, gs, ["train"], 2)) == [("train", 1), ("train", 0)]
    assert seeds(choose(plan, gs, ["train"], None)) == [("train", 0), ("train", 2), ("train", 1)]
    # a sample of the downstream stage alone brings the upstream run it reads (results/ keeps no
    # checkpoint), the pair cheapest in all: seed 0's (10 + 1 s) before seed 2's (20 + 3 s)
    assert seeds(choose(plan, gs, ["use"], 1)) == [("train", 0), ("use", 0)]
    # a dry run lists the sample with its cost and CPU, and reruns nothing
    lines = []
    assert verify(spec, stages=["train"], sample=1, echo=lines.append, dry_run=True) == []
    assert lines[0].endswith("1 stale cell(s) would rerun") and "0.5 CPU min recorded; made on this CPU" in lines[1]
    assert {s.state for s in _states(plan).values()} == {STALE} and not (paths.cache_dir() / "verify").exists()


def test_a_committed_path_in_an_older_form_names_the_same_run(tmp_path):
    """A run collected from a checkout's relative ``runs/`` kept ``runs/<profile>/<stage>/<key>/checkpoint``
    in its summary; its rerun in a scratch folder stores ``@<stage>/<key>/checkpoint``: the same run
    (this alone made a bit-for-bit rerun of transition-16k random seed 5 read "different")."""
    from genemask.grid.verify import compare_files

    key = "aeb552028c53a204"
    (tmp_path / "summary.json").write_text(json.dumps({"checkpoint": f"runs/t/train/{key}/checkpoint", "loss": 1.5}))
    rerun = {"summary.json": json.dumps({"checkpoint": f"@train/{key}/checkpoint", "loss": 1.5})}
    assert compare_files(tmp_path, rerun, 0.0, profile="t") == []
    (diff,) = compare_files(tmp_path, rerun, 0.0)
    assert diff.column == "checkpoint"
    rerun = {"summary.json": json.dumps({"checkpoint": f"@train/{key}/checkpoint", "loss": 1.5000001})}
    assert [d.column for d in compare_files(tmp_path, rerun, 0.0, profile="t")] == ["loss"]


def test_a_sample_skips_training_cells_no_rerun_here_could_judge(workspace):
    """One pretraining seed made on another CPU: a rerun drifts, and one committed seed gives no
    prediction interval to judge it against, so a sample spends no CPU on it and says why."""
    spec = workspace / "p.yaml"
    spec.write_text(yaml.safe_dump({"profile": "t", "stages": [
        {"name": "train", "notebook": str(workspace / "train.ipynb"), "grid": {"seed": [0]}}]}))
    plan = plan_grid(spec)
    _commit(plan, "train", lambda c: {"summary.json": "{}"}, lambda c: {"cpu": {"model": "another CPU", "flags_hash": "x"}})
    assert choose(plan, grid_state(plan, use_runs=False), None, 1) == []
    lines = []
    verify(spec, sample=1, echo=lines.append, dry_run=True)
    assert lines[0].startswith("[train] none of its 1 stale cell(s) can be verified by a rerun here")
