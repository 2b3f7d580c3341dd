"""The GPU queue (params/gpu.yaml, genemask.gpu): the queue's budgets and estimates, masking on a
device, the CPU rehearsal of a unit (--smoke), and results/gpu/ read by the report like results/cpu/."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from genemask import gpu, masking, models, paths, pretrain, source, tasks, tokenizer

REAL_DATA = (paths.data_dir() / paths.HUMAN_FASTA[0]).exists()
needs_data = pytest.mark.skipif(not REAL_DATA, reason="real data ($GENEMASK_DATA) is absent")


@pytest.fixture(scope="module")
def queue():
    return gpu.load_queue()


# ----------------------------------------------------------------------------------------------
# The queue


def test_queue_holds_the_papers_budgets_in_order_of_value(queue):
    names = [u.name for u in queue.units]
    assert names[:3] == ["logo-1k-s0", "logo-1k-s1", "logo-1k-s2"]
    assert names[3:7] == ["logo-10k-random-s0", "logo-10k-genemask-s0", "logo-10k-cmgems-s0", "logo-10k-global-s0"]
    assert names[-2:] == ["dnabert-1k-random-s0", "dnabert-1k-cmgems-s0"]
    strategies = {"random", "genemask", "genemask-position-v3", "global", "cmgems"}
    for seed, unit in enumerate(queue.units[:3]):
        assert {r["strategy"] for r in unit.pretrain} == strategies and {r["seed"] for r in unit.pretrain} == {seed}
    assert queue.units[0].baselines == ["random:logo"] and queue.units[0].bench == ["dnabert"]
    for unit in queue.units:
        for run in unit.pretrain:  # the papers' optimizer and batch
            assert (run["batch_size"] * run["grad_accum"], run["max_len"], run["lr"], run["adam_beta1"], run["adam_beta2"],
                    run["adam_eps"], run["weight_decay"], run["warmup"], run["bf16"]) == (250, 512, 8e-4, 0.9, 0.98, 1e-6, 0.01, 0.05, True)
            assert run["steps"] in (1000, 10_000)
        regimes = {r.name: r for r in unit.fewshot}
        b2 = regimes["cmgems-b2-lr4e-4"]
        assert b2.required and b2.params["small_shots"] == {"batch_size": 5, "learning_rate": 4e-4, "epochs": 20}
        assert b2.params["datasets"] == ["prom-core", "prom-300", "cohn-enh", "splice-40", "silencer"]
        assert b2.params["shots"] == [10, 50] and b2.params["seeds"] == 3
        assert not regimes["genemask-script-lr1e-4"].required
        assert regimes["genemask-script-lr1e-4"].params["small_shots"]["learning_rate"] == 1e-4


def test_every_unit_is_planned_inside_one_window(queue):
    table = gpu.plan_table(queue)
    assert len(table) == len(queue.units)
    assert (table["est. total s"] < queue.window_seconds).all(), table
    assert queue.window_seconds + gpu.PACK_MARGIN_SECONDS < 9 * 60  # one command, under nine minutes
    # The yaml's stated estimates are the code's: 1K LOGO ~28 s of FLOPs at 15 %, 10K ~283 s, DNABERT 1K ~264 s.
    unit = queue.units[3]
    est = gpu.estimate(unit, queue)
    assert 280 < est["pretrain"] < 295


def test_flops_per_token_match_the_models_matmuls():
    """6 x (encoder matmul weights) + attention + head, cross-checked against the built models."""
    for size, expected in (("logo", 26.2e6), ("dnabert", 570e6)):
        with torch.device("meta"):
            model = models.masked_lm(size)
        encoder = sum(m.weight.numel() for m in model.bert.encoder.modules() if isinstance(m, torch.nn.Linear))
        s = models.MODEL_SIZES[size]
        attention = 3 * 4 * 512 * s.hidden_size * s.num_hidden_layers
        head = 3 * 0.15 * 2 * (model.cls.predictions.transform.dense.weight.numel() + s.hidden_size * tokenizer.vocab_size(6))
        assert gpu.train_flops_per_token(size) == pytest.approx(6 * encoder + attention + head)
        assert gpu.train_flops_per_token(size) == pytest.approx(expected, rel=0.01)
    assert round(models.size_table().loc["logo", "parameters (M)"], 2) == 4.93
    assert gpu.mfu(1e6, "logo", 512, 790) == pytest.approx(26.17e12 / 790e12, rel=0.01)


@pytest.mark.parametrize("edit, message", [
    (lambda q: q["units"][0].update(colour="red"), "unknown key(s) ['colour']"),
    (lambda q: q["units"][0]["pretrain"][0].update(stpes=5), "unknown PretrainConfig field(s) ['stpes']"),
    (lambda q: q["units"][0]["pretrain"][0].update(model="huge"), "model='huge' is unknown"),
    (lambda q: q["units"][0]["fewshot"][0].update(shot=[1]), "unknown key(s) ['shot']"),
    (lambda q: q["units"].append(dict(q["units"][0])), "duplicate unit name"),
])
def test_a_bad_queue_fails_naming_the_unit(tmp_path, edit, message):
    import yaml

    raw = yaml.safe_load(gpu.PARAMS_FILE.read_text())
    raw["units"] = [json.loads(json.dumps(u)) for u in raw["units"]]
    edit(raw)
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(gpu.QueueError, match="logo-1k-s0") as err:
        gpu.load_queue(path)
    assert message in str(err.value)


def test_trimming_keeps_the_runs_that_fit_and_says_which_went(queue, tmp_path):
    unit = queue.units[0]
    run = gpu.UnitRun(unit, queue, tmp_path / "out", tmp_path / "work", smoke=False, echo=lambda *_: None)
    run.deadline = time.perf_counter() + 200  # 200 s left, 40 s per run at 0.04 s/step, ~11 s few-shot after each
    kept = run._plan({"logo": 0.04})
    assert [r["strategy"] for r, _ in kept] == ["random", "genemask", "genemask-position-v3"]
    trimmed = [t["what"] for t in run.record["trimmed"]]
    assert len(trimmed) == 2 and "global" in trimmed[0] and "cmgems" in trimmed[1]


# ----------------------------------------------------------------------------------------------
# Masking on a device


def _batch(rows: int = 48, length: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 4101, (rows, length), generator=g)
    ids[:, 0], ids[:, -1] = tokenizer.CLS_ID, tokenizer.SEP_ID
    attention = torch.ones_like(ids)
    attention[::4, 300:] = 0
    ids[attention == 0] = tokenizer.PAD_ID
    return ids, attention


@pytest.mark.parametrize("variant", ["random", "genemask", "genemask-position-v1", "genemask-position-v3", "global",
                                     "global-position", "cmstep", "v2"])
def test_masking_creates_every_tensor_on_the_batch_device(variant):
    """With torch's default device set to 'meta', a tensor the collator creates without naming the
    batch's device lands on 'meta' and mixing it with the (CPU) batch fails: so this passes only if
    every tensor follows the batch's device, which is what lets the collator run on a GPU."""
    tok = tokenizer.build_tokenizer(6)
    ranks = torch.randint(1, 30, (4101,), generator=torch.Generator().manual_seed(1))  # many ties: the tie paths run
    if variant == "v2":
        strategy, options = "genemask", {"selection": "v2", "rank_lookup": "position"}
    else:
        options = masking.variant_options(variant)
        strategy = options.pop("strategy")
    if strategy == "cmstep":
        options["total_steps"] = 10
    options[f"{strategy}_probability" if strategy not in ("cmstep",) else "global_probability"] = 0.05  # >= 9 centres a row
    ids, attention = _batch()
    outputs = []
    for meta in (False, True):
        collator = masking.make_collator(strategy, tok, rank_table=ranks if strategy != "random" else None, seed=4, **options)
        collator.set_step(6)
        with torch.device("meta") if meta else torch.device("cpu"):
            masked, labels, info = collator.mask_batch(ids, attention)
        outputs.append((masked, labels))
        assert masked.device.type == "cpu" and labels.device.type == "cpu"
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert (outputs[0][1] != -100).any()


def test_pretraining_with_masking_on_the_device_is_the_same_run(tmp_path):
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    from genemask import genome

    fasta = genome.write_fasta({f"r{i}": letters[rng.integers(0, 4, 30_000)].tobytes() for i in range(2)}, tmp_path / "g.fa")
    ranks = pd.DataFrame({"kmer": tokenizer.vocab_kmers(6), "rank": rng.permutation(4096) + 1})
    ranks.to_csv(tmp_path / "ranks.csv", index=False)
    os.environ["GENEMASK_CACHE"] = str(tmp_path / "cache")
    try:
        metrics = []
        for on_device in (False, True):
            cfg = pretrain.PretrainConfig(steps=4, model="tiny", strategy="genemask", batch_size=4, max_len=40, eval_steps=2,
                                          eval_size=8, save_steps=0, seed=1, fasta=str(fasta), rank_table=str(tmp_path / "ranks.csv"),
                                          out_dir=str(tmp_path / f"run{on_device}"))
            metrics.append(pretrain.run(cfg, mask_on_device=on_device).metrics)
    finally:
        os.environ.pop("GENEMASK_CACHE", None)
    columns = ["step", "loss", "masked_fraction", "val_perplexity", "tokens"]
    pd.testing.assert_frame_equal(metrics[0][columns], metrics[1][columns])


# ----------------------------------------------------------------------------------------------
# Data for the GPU machine, the CPU rehearsal, results/gpu/ in the report


@pytest.fixture(scope="module")
def staged(queue, tmp_path_factory):
    if not REAL_DATA:
        pytest.skip("real data ($GENEMASK_DATA) is absent")
    target = tmp_path_factory.mktemp("gpu-data")
    info = gpu.stage_data(queue, target, echo=lambda *_: None)
    return target, info


@needs_data
def test_staged_data_holds_every_split_the_queue_reads(queue, staged, monkeypatch):
    target, info = staged
    assert info["files"] == len(gpu.needed_files(queue)) and info["data_bytes"] < gpu.TRAVEL_LIMIT_BYTES
    assert all((target / f).is_file() for f in paths.HUMAN_FASTA)
    monkeypatch.setenv("GENEMASK_DATA", str(target))
    monkeypatch.setattr(tasks, "_CACHE", {})
    regime = queue.units[0].fewshot[0].params
    for dataset in regime["datasets"]:
        for shots in regime["shots"]:
            split = tasks.fewshot_split(dataset, shots, 2, resample=regime["resample"])
            assert split.info["n_train"] == shots * split.n_classes and split.info["n_test"] > 100


@needs_data
def test_the_checkout_and_its_data_fit_what_travels(queue, staged):
    """What a device run sends: the checkout (tracked and untracked-not-ignored files) and the packed
    data, the one carried path. The unpacked folder alone no longer fits beside the committed results."""
    ignored = (paths.ROOT / ".gitignore").read_text().split()
    assert ".gpu-data/" in ignored and gpu.DATA_ARCHIVE in ignored
    _, info = staged
    assert gpu._travelling_bytes() + info["archive_bytes"] < gpu.TRAVEL_LIMIT_BYTES
    assert info["archive_bytes"] < info["data_bytes"] / 2


@needs_data
def test_the_packed_data_unpacks_to_what_was_staged(staged, tmp_path):
    target, info = staged
    folder = tmp_path / ".gpu-data"
    shutil.copyfile(info["archive"], tmp_path / gpu.DATA_ARCHIVE)
    assert gpu.unpack_data(folder) and not gpu.unpack_data(folder)  # once: an unpacked folder stays
    staged_files = sorted(str(f.relative_to(target)) for f in target.rglob("*") if f.is_file())
    assert sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()) == staged_files
    assert all((folder / f).read_bytes() == (target / f).read_bytes() for f in staged_files[:5])


def test_unpack_data_refuses_a_member_outside_its_folder(tmp_path):
    outside = tmp_path / "evil.txt"
    outside.write_text("x")
    with tarfile.open(tmp_path / gpu.DATA_ARCHIVE, "w:gz") as tar:
        tar.add(outside, arcname="../evil.txt")
    outside.unlink()
    with pytest.raises(ValueError, match=r"member '\.\./evil\.txt' is not a plain file inside the folder"):
        gpu.unpack_data(tmp_path / ".gpu-data")
    assert not outside.exists() and not (tmp_path / ".gpu-data").exists()


def test_unpack_data_leaves_no_half_folder_from_a_damaged_archive(tmp_path):
    (tmp_path / gpu.DATA_ARCHIVE).write_bytes(b"not a tar")
    with pytest.raises(ValueError, match="cannot unpack the staged data"):
        gpu.unpack_data(tmp_path / ".gpu-data")
    assert not (tmp_path / ".gpu-data").exists()


@pytest.fixture(scope="module")
def smoke(staged, tmp_path_factory):
    """The CPU rehearsal: the first unit's command with --smoke, in a subprocess as on the GPU machine."""
    data, _ = staged
    root = tmp_path_factory.mktemp("gpu-smoke")
    env = {**os.environ, "GENEMASK_DATA": str(data), "GENEMASK_CACHE": str(root / "cache"),
           "GENEMASK_RESULTS": str(root / "results"), "PYTHONPATH": str(paths.ROOT / "lib"), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "genemask.gpu", "--smoke", "--out", str(root / "out"),
                           "--work", str(root / "work")], env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"smoke run: {seconds:.1f} s wall")
    return {"root": root, "env": env, "stdout": proc.stdout, "archive": root / "out" / "logo-1k-s0-smoke.tar.gz",
            "seconds": seconds}


@needs_data
def test_smoke_run_pretrains_fine_tunes_and_packs_one_archive(smoke, queue):
    out = smoke["stdout"]
    assert "timed pilot-tiny" in out and "timed bench-tiny" in out and "packed" in out and "TRIMMED" not in out
    with tarfile.open(smoke["archive"]) as tar:
        names = tar.getnames()
    assert all(n == "results" or n.startswith("results/gpu") for n in names)
    assert not any("checkpoint/" in n or n.endswith(".safetensors") for n in names)  # checkpoints stay behind
    unit = gpu.smoke_unit(queue.units[0], queue.smoke)
    cells = gpu.unit_cells(unit)
    for stage, rows in cells.items():
        for key, _, _ in rows:
            assert f"results/gpu/{stage}/{key}" in names
    assert len(cells["fewshot"]) == 12  # (5 checkpoints + the random-init baseline) x 2 regimes
    assert len(list((smoke["root"] / "out").iterdir())) == 1  # one file comes back


@needs_data
def test_a_unit_is_held_once_its_archive_is_unpacked(smoke, queue, monkeypatch):
    monkeypatch.setenv("GENEMASK_RESULTS", str(smoke["root"] / "results"))
    unit = gpu.smoke_unit(queue.units[0], queue.smoke)
    assert not gpu.is_held(unit)
    with pytest.raises(ValueError, match="smoke run's archive"):
        gpu.unpack(smoke["archive"], echo=lambda *_: None)
    merged = gpu.unpack(smoke["archive"], smoke_ok=True, echo=lambda *_: None)
    assert len(merged) == 5 + 12 and gpu.is_held(unit)
    assert gpu.next_unit(queue).name == "logo-1k-s0"  # the smoke cells are not the real unit's
    again = gpu.unpack(smoke["archive"], smoke_ok=True, echo=lambda *_: None)  # idempotent: rows replaced, not doubled
    assert len(pd.read_csv(smoke["root"] / "results" / "gpu" / "fewshot" / "cells.csv")) == 12 and len(again) == 17
    record = json.loads((smoke["root"] / "results" / "gpu" / "units" / "logo-1k-s0.json").read_text())
    assert record["smoke"] and record["imported_notebook_or_plotting"] == []
    assert record["environment"]["library_hash"] == source.library_hash()
    assert {"seconds_per_step", "tokens_per_second", "mfu", "mfu_padded"} <= set(record["pilot"][0])
    assert len(record["pretrain"]) == 5 and all(r["tokens"] > 0 for r in record["pretrain"])


@needs_data
def test_report_reads_results_gpu_as_it_reads_results_cpu(smoke, monkeypatch):
    from genemask.report import results
    from genemask.report import downstream
    from genemask.report import pretrain as pretrain_report

    cpu_index = paths.RESULTS / "cpu" / "pretrain" / "cells.csv"  # the committed CPU results, if any
    monkeypatch.setenv("GENEMASK_RESULTS", str(smoke["root"] / "results-report"))
    gpu.unpack(smoke["archive"], smoke_ok=True, echo=lambda *_: None)
    profile, cells = results.stage_results("pretrain", "gpu")
    metrics, summaries = pretrain_report.load_cells(cells)
    assert profile == "gpu" and len(summaries) == 5 and set(metrics["run"].str.split("@").str[0]) == {
        "random", "genemask", "genemask-position-v3", "global", "cmgems"}
    if cpu_index.exists():  # the same files with the same columns, the same summary keys (and more)
        cpu_cells = pd.read_csv(cpu_index)
        cpu_dir, gpu_dir = cpu_index.parent / cpu_cells["key"].iloc[0], Path(cells.dir.iloc[0])
        # new metric columns are appended, so results written by an older library read as a prefix of today's
        cpu_columns, gpu_columns = (list(pd.read_csv(d / "metrics.csv").columns) for d in (cpu_dir, gpu_dir))
        assert cpu_columns == gpu_columns[:len(cpu_columns)] and gpu_columns == list(pretrain.METRIC_COLUMNS)
        assert set(json.loads((cpu_dir / "summary.json").read_text())) <= set(json.loads((gpu_dir / "summary.json").read_text()))
        assert set(cpu_cells.columns) <= set(cells.columns)
    summary_json = json.loads((Path(cells.dir.iloc[0]) / "summary.json").read_text())
    assert "/work/" not in json.dumps(summary_json) and summary_json["parameters"]["fasta"][0].startswith("${GENEMASK_DATA}")

    _, few = results.stage_results("fewshot", "gpu")
    frame, runs = results.collect(few, "fewshot_results.csv"), results.collect(few, "fewshot_runs.csv")
    assert set(frame["metric"]) == {"accuracy", "f1", "mcc", "auc"} and set(frame["dataset"]) == {"splice-40"}
    assert runs["protocol"].eq("finetune").all() and downstream.protocol_note(runs) is None
    assert set(runs["learning_rate"]) == {4e-4, 1e-4}
    summary = downstream.summarize(frame, ["model", "dataset", "shot"])
    table = downstream.fewshot_table(summary, "mcc")
    assert len(table) == 12  # 6 models x 2 regimes, each cell its own row (model names carry the cell key)
    assert {"train_file", "train_sampling", "test_file", "n_test", "test_overlap_removed"} <= set(runs.columns)
    refs = set(few["checkpoint"])
    assert "random:tiny" in refs and all(r == "random:tiny" or r.startswith("@pretrain/") for r in refs)
    assert {r.split("/")[1] for r in refs if r.startswith("@pretrain/")} == set(cells["key"])
