"""Pretraining: checkpoint layout, the masked-only MLM head, determinism, exact resume, bad input."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from genemask import genome, models, paths, pretrain, tokenizer
from helpers import random_pretraining_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A small random genome and a seeded rank table, so these tests need no demo data or PMI run."""
    root = tmp_path_factory.mktemp("pretrain_inputs")
    made = random_pretraining_inputs(root)
    os.environ["GENEMASK_CACHE"] = str(root / "cache")  # corpus cache away from the repository's
    yield made
    os.environ.pop("GENEMASK_CACHE", None)


def config(inputs, out_dir, **overrides) -> pretrain.PretrainConfig:
    base = dict(steps=12, model="tiny", strategy="cmgems", batch_size=4, max_len=40, eval_steps=3, eval_size=16,
                save_steps=4, lr=2e-3, warmup=2, seed=3, out_dir=str(out_dir), threads=1,
                masking_options={"switch_threshold": 1e9}, **inputs)
    return pretrain.PretrainConfig(**{**base, **overrides})


def weights(checkpoint) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(checkpoint / "model.safetensors"))


def test_checkpoint_loads_as_mlm_and_classifier(inputs, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    result = pretrain.run(config(inputs, tmp_path / "run"))
    ckpt = result.checkpoint
    assert ckpt == tmp_path / "run" / "checkpoint" and result.metrics_path == tmp_path / "run" / "metrics.csv"
    assert {"model.safetensors", "config.json", "tokenizer.json", "rank_table.csv", "pretrain.json"} <= {p.name for p in ckpt.iterdir()}
    mlm = AutoModelForMaskedLM.from_pretrained(ckpt)
    assert mlm.config.kmer == 6 and mlm.config.vocab_size == 4101
    classifier = AutoModelForSequenceClassification.from_pretrained(ckpt, num_labels=2)
    tok = AutoTokenizer.from_pretrained(ckpt)
    batch = tok([tokenizer.kmerize("ACGTACGTTAGCATCG")], return_tensors="pt")
    assert classifier(**batch).logits.shape == (1, 2)
    metrics = result.metrics
    assert list(metrics.columns[:6]) == ["step", "loss", "lr", "masked_fraction", "val_perplexity", "phase"]
    assert metrics["step"].tolist() == list(range(1, 13))
    assert metrics["val_perplexity"].notna().sum() == 4  # steps 3, 6, 9, 12
    assert result.switch_step == 6  # threshold 1e9: the first change (steps 3 -> 6) switches
    assert set(metrics["phase"]) == {"genemask", "global"}
    saved = json.loads((ckpt / "pretrain.json").read_text())
    assert saved["config"]["steps"] == 12 and saved["switch_step"] == 6
    assert not (tmp_path / "run" / "resume").exists()  # resume state is dropped once the checkpoint is final
    # A finished run is not retrained.
    stamp = (ckpt / "model.safetensors").stat().st_mtime_ns
    again = pretrain.run(config(inputs, tmp_path / "run"))
    assert again.checkpoint == ckpt and (ckpt / "model.safetensors").stat().st_mtime_ns == stamp


def test_masked_only_head_matches_hugging_face_loss():
    model = models.masked_lm("tiny", 6, seed=0)
    ids = torch.randint(5, 4101, (3, 20), generator=torch.Generator().manual_seed(0))
    attention = torch.ones_like(ids)
    attention[2, 15:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 4:10] = ids[:, 4:10]
    total, n = pretrain.MaskedLMLoss(model)(ids, attention, labels)
    reference = model(input_ids=ids, attention_mask=attention, labels=labels).loss
    assert n == 18 and torch.allclose(total / n, reference, atol=1e-6)


def test_same_seed_same_loss_curve(inputs, tmp_path):
    a = pretrain.run(config(inputs, tmp_path / "a", strategy="genemask", steps=6, eval_steps=2)).metrics
    b = pretrain.run(config(inputs, tmp_path / "b", strategy="genemask", steps=6, eval_steps=2)).metrics
    columns = ["step", "loss", "lr", "masked_fraction", "val_perplexity", "phase", "tokens"]
    pd.testing.assert_frame_equal(a[columns], b[columns], check_exact=True)
    c = pretrain.run(config(inputs, tmp_path / "c", strategy="genemask", steps=6, eval_steps=2, seed=4)).metrics
    assert not np.array_equal(a["loss"], c["loss"])


@pytest.mark.parametrize("strategy", ["cmgems", "cmstep"])
def test_killed_run_resumes_to_the_same_weights_and_metrics(inputs, tmp_path, strategy):
    full = pretrain.run(config(inputs, tmp_path / "full", strategy=strategy))
    # Killed after step 6: the last resume state is step 4, so steps 5-6 are redone on resume.
    part = pretrain.run(config(inputs, tmp_path / "part", strategy=strategy), stop_after=6)
    assert not part.finished and not part.checkpoint.exists()
    assert [p.name for p in (tmp_path / "part" / "resume").iterdir()] == ["step-00000004"]
    resumed = pretrain.run(config(inputs, tmp_path / "part", strategy=strategy))
    assert resumed.resumed_from == 4 and resumed.finished
    a, b = weights(full.checkpoint), weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    columns = ["step", "loss", "lr", "masked_fraction", "val_perplexity", "phase", "tokens"]
    pd.testing.assert_frame_equal(full.metrics[columns], resumed.metrics[columns], check_exact=True)
    assert full.switch_step == resumed.switch_step


def test_a_failed_save_is_never_resumed(inputs, tmp_path):
    out = tmp_path / "run"
    pretrain.run(config(inputs, out, steps=8), stop_after=5)
    # A save that died midway leaves only a temporary folder, and a half-built checkpoint.
    (out / "resume" / ".step-00000008.tmp").mkdir()
    (out / "resume" / ".step-00000008.tmp" / "model.safetensors").write_bytes(b"garbage")
    (out / ".checkpoint.tmp").mkdir()
    result = pretrain.run(config(inputs, out, steps=8))
    assert result.resumed_from == 4 and result.finished


def test_resume_refuses_other_parameters(inputs, tmp_path):
    pretrain.run(config(inputs, tmp_path / "run"), stop_after=5)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "run").rglob("*"))
    for resume in (True, False):  # another run is never resumed nor started over in its folder
        with pytest.raises(ValueError, match=r"holds another pretraining run \(different lr; see \.genemask-pretrain\.json\)"):
            pretrain.run(config(inputs, tmp_path / "run", lr=1e-3, resume=resume))
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "run").rglob("*")) == before
    fresh = pretrain.run(config(inputs, tmp_path / "run", resume=False))  # the same run starts over
    assert fresh.resumed_from is None and fresh.finished


def test_learning_rate_schedule():
    cfg = pretrain.PretrainConfig(steps=100, warmup=10, lr=1.0)
    assert [pretrain.learning_rate(s, cfg) for s in (0, 5, 10, 55, 100)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert pretrain.PretrainConfig(steps=1000, warmup=0.05).warmup_steps == 50
    assert pretrain.PretrainConfig(**pretrain.PAPER_BUDGET).warmup_steps == 500


@pytest.mark.parametrize("overrides, message", [
    ({"model": "huge"}, r"model='huge' is unknown"),
    ({"strategy": "spanbert"}, r"strategy='spanbert' is unknown"),
    ({"steps": 0}, r"steps=0 must be >= 1"),
    ({"steps": -5}, r"steps=-5 must be >= 1"),
    ({"batch_size": 0}, r"batch_size=0 must be >= 1"),
    ({"max_len": 1024}, r"max_len=1024 must lie in \[3, 512\]"),
    ({"masking_options": {"centre_prob": 0.1}}, r"masking_options: unknown option\(s\) \['centre_prob'\]"),
    ({"strategy": "cmgems", "eval_steps": 0}, r"set eval_steps > 0"),
    ({"steps": 1.5}, r"steps=1.5 must be an integer"),
    ({"batch_size": True}, r"batch_size=True must be an integer"),
    ({"seed": -1}, r"seed=-1 must be >= 0"),
    ({"max_len": 2}, r"max_len=2 must be >= 3"),
    ({"k": 7}, r"k=7 must be one of \(3, 4, 5, 6\)"),
    ({"lr": "a"}, r"lr='a' must be a finite number"),
    ({"lr": float("nan")}, r"lr=nan must be a finite number"),
    ({"lr": 0}, r"lr=0 must be > 0"),
    ({"warmup": "x"}, r"warmup='x' must be a finite number"),
    ({"warmup": -1}, r"warmup=-1 must be >= 0"),
    ({"adam_beta1": 1.0}, r"adam_beta1=1.0 must lie in \[0, 1\)"),
    ({"weight_decay": -0.1}, r"weight_decay=-0.1 must be >= 0"),
    ({"max_grad_norm": 0}, r"max_grad_norm=0 must be > 0"),
    ({"bf16": "yes"}, r"bf16='yes' must be true or false"),
    ({"resume": 1}, r"resume=1 must be true or false"),
    ({"device": 5}, r"device=5 must be a string"),
    ({"device": "tpu"}, r"device='tpu' must be 'auto', 'cpu' or 'cuda\[:N\]'"),
    ({"fasta": 5}, r"fasta=5 must be a path, a list of paths, or None"),
    ({"out_dir": 3}, r"out_dir=3 must be a path or None"),
    ({"masking_options": [1]}, r"masking_options=\[1\] must be a mapping"),
])
def test_bad_parameters(overrides, message):
    with pytest.raises(ValueError, match=message):
        pretrain.PretrainConfig(**overrides)


def test_bad_inputs(inputs, tmp_path):
    tiny = genome.write_fasta({"x": b"ACGTTGCA" * 100}, tmp_path / "tiny.fa")
    with pytest.raises(ValueError, match=r"fasta: the corpus has \d+ training chunks, fewer than one batch"):
        pretrain.run(config(inputs, tmp_path / "a", fasta=str(tiny)))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match=r"out_dir=.* is not writable"):
        pretrain.run(config(inputs, blocker / "sub"))
    with pytest.raises(FileNotFoundError, match=r"rank_table='.*nope.csv': no such file"):
        pretrain.run(config(inputs, tmp_path / "b", rank_table=str(tmp_path / "nope.csv")))
    with pytest.raises(ValueError, match="rank_table is required"):
        pretrain.run(config(inputs, tmp_path / "c", rank_table=None))
    with pytest.raises(genome.FastaError, match="no such FASTA"):
        pretrain.run(config(inputs, tmp_path / "d", fasta=str(tmp_path / "missing.fa")))


def test_cli_parses_every_field():
    parser = pretrain.build_parser()
    args = vars(parser.parse_args(["--steps", "7", "--model", "logo", "--masking_options", '{"switch_step": 3}',
                                   "--fasta", "a.fa", "b.fa", "--bf16", "--no-resume"]))
    for name in pretrain.CLI_OPTIONS:
        args.pop(name)
    cfg = pretrain.PretrainConfig(**args)
    assert (cfg.steps, cfg.model, cfg.masking_options, cfg.fasta, cfg.bf16, cfg.resume) == (7, "logo", {"switch_step": 3}, ["a.fa", "b.fa"], True, False)
    assert {f.name for f in __import__("dataclasses").fields(pretrain.PretrainConfig)} <= set(args)


def test_ddp_two_cpu_processes(inputs, tmp_path):
    """``torchrun --nproc_per_node 2 -m genemask.pretrain`` trains one model with gloo."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(paths.ROOT / "lib")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "genemask.pretrain", "--steps", "6", "--batch_size", "2", "--max_len", "40", "--eval_steps", "3",
           "--eval_size", "8", "--save_steps", "3", "--strategy", "cmgems", "--masking_options", '{"switch_threshold": 1e9}',
           "--fasta", inputs["fasta"], "--rank_table", inputs["rank_table"], "--out_dir", str(out), "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((out / "checkpoint" / "pretrain.json").read_text())
    assert saved["world_size"] == 2 and saved["switch_step"] == 6
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 6 and metrics["val_perplexity"].notna().sum() == 2
    assert math.isfinite(metrics["loss"].iloc[-1])


# ----------------------------------------------------------------------------------------------
# out_dir safety, resume states, faults (issue 12)


def tree(folder) -> list:
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


def test_out_dir_with_files_no_run_wrote_is_refused_untouched(inputs, tmp_path):
    home = tmp_path / "home"
    (home / "resume").mkdir(parents=True)  # `--out_dir ~` must never delete ~/resume
    (home / "resume" / "letter.txt").write_text("keep me")
    (home / "notes.txt").write_text("keep me too")
    before = tree(home)
    for resume in (True, False):
        with pytest.raises(ValueError, match=r"out_dir='.*home' holds files no pretraining run wrote \(notes\.txt, resume\); "
                                             r"choose an empty or new folder"):
            pretrain.run(config(inputs, home, resume=resume))
    assert tree(home) == before


def test_marker_being_written_by_the_main_process_is_not_a_stranger(tmp_path):
    """Under DDP every rank checks the folder while rank 0 writes the marker atomically (through a
    temporary file beside it): a rank that looks at that moment must not refuse the folder."""
    out = tmp_path / "ddp"
    out.mkdir()
    (out / f".{pretrain.RUN_MARKER}.x1y2z3.tmp").write_text("{")
    assert pretrain._foreign_entries(out) == []
    (out / "notes.txt").write_text("someone else's")
    assert pretrain._foreign_entries(out) == ["notes.txt"]


def test_finished_run_of_other_parameters_is_refused_and_kept(inputs, tmp_path):
    out = tmp_path / "run"
    first = pretrain.run(config(inputs, out, steps=6))
    before = tree(out)
    with pytest.raises(ValueError, match=r"holds another pretraining run \(different seed, steps; see "):
        pretrain.run(config(inputs, out, steps=8, seed=5))
    assert tree(out) == before and first.metrics["step"].max() == 6


def test_run_saved_before_a_field_existed_still_matches(inputs, tmp_path):
    """A checkpoint whose config predates a field (e.g. one a later version adds) is the same run
    when this run leaves that field at its default; the marker-less layout of older versions too."""
    out = tmp_path / "run"
    pretrain.run(config(inputs, out, steps=4))
    saved_path = out / "checkpoint" / "pretrain.json"
    saved = json.loads(saved_path.read_text())
    del saved["config"]["join_gaps"]
    saved_path.write_text(json.dumps(saved))
    (out / pretrain.RUN_MARKER).unlink()
    stamp = (out / "checkpoint" / "model.safetensors").stat().st_mtime_ns
    again = pretrain.run(config(inputs, out, steps=4))
    assert again.finished and (out / "checkpoint" / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match=r"different join_gaps; see checkpoint/pretrain\.json"):
        (out / pretrain.RUN_MARKER).unlink()
        pretrain.run(config(inputs, out, steps=4, join_gaps=True))


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.safetensors", "state.json", "metrics.json", "rank0.json"])
def test_truncated_latest_state_falls_back_to_the_previous(inputs, tmp_path, damaged):
    out = tmp_path / "run"
    pretrain.run(config(inputs, out, save_steps=2), stop_after=5)
    assert [p.name for p in sorted((out / "resume").iterdir())] == ["step-00000002", "step-00000004"]  # two kept
    victim = out / "resume" / "step-00000004" / damaged
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.warns(UserWarning, match=rf"step-00000004/{damaged}: damaged resume state .*trying the previous"):
        resumed = pretrain.run(config(inputs, out, save_steps=2))
    assert resumed.resumed_from == 2 and resumed.finished
    if damaged == "model.safetensors":  # the fallback resumes exactly
        full = pretrain.run(config(inputs, tmp_path / "full", save_steps=2))
        a, b = weights(full.checkpoint), weights(resumed.checkpoint)
        assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
        columns = ["step", "loss", "val_perplexity", "phase", "tokens"]
        pd.testing.assert_frame_equal(full.metrics[columns], resumed.metrics[columns], check_exact=True)


def test_no_readable_state_is_an_error_naming_the_files(inputs, tmp_path):
    out = tmp_path / "run"
    pretrain.run(config(inputs, out, save_steps=2), stop_after=5)
    for step in (2, 4):
        (out / "resume" / f"step-{step:08d}" / "state.json").write_text('{"step": ')
    with pytest.warns(UserWarning), pytest.raises(pretrain.DamagedState,
                                                  match=r"no readable resume state .*step-00000004/state\.json.*step-00000002/state\.json.*resume=False"):
        pretrain.run(config(inputs, out, save_steps=2))
    assert pretrain.run(config(inputs, out, save_steps=2, resume=False)).finished


def test_corrupt_checkpoint_is_named_not_reused(inputs, tmp_path):
    out = tmp_path / "run"
    pretrain.run(config(inputs, out, steps=4))
    (out / "checkpoint" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=r"checkpoint/model\.safetensors: damaged checkpoint .*resume=False trains this run again"):
        pretrain.run(config(inputs, out, steps=4))
    (out / "checkpoint" / "pretrain.json").write_text('{"config": {')
    with pytest.raises(ValueError, match=r"pretrain\.json: damaged JSON"):
        pretrain.run(config(inputs, out, steps=4))


def test_full_disk_names_the_file_and_keeps_the_previous_state(inputs, tmp_path, monkeypatch):
    import errno

    import safetensors.torch

    from genemask import io

    out = tmp_path / "run"
    pretrain.run(config(inputs, out, save_steps=2), stop_after=3)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:  # a write through genemask.io, once the run has started
        # (a disk already full at the start is refused earlier, by the out_dir's write probe)
        patch.setattr(io, "write_probe", lambda path: None)
        patch.setattr(io, "_write_all", full)
        with pytest.raises(io.WriteError, match=r"\.step-00000004\.tmp/rank0\.json: could not write \(No space left on device\)"):
            pretrain.run(config(inputs, out, save_steps=2))
    with monkeypatch.context() as patch:  # safetensors' own write
        patch.setattr(safetensors.torch, "save_model", full)
        with pytest.raises(io.WriteError, match=r"\.step-00000004\.tmp/model\.safetensors: could not write \(No space left on device\)"):
            pretrain.run(config(inputs, out, save_steps=2))
    assert sorted(p.name for p in (out / "resume").iterdir()) == ["step-00000002"]  # nothing half-written kept
    resumed = pretrain.run(config(inputs, out, save_steps=2))
    assert resumed.resumed_from == 2 and resumed.finished


def test_metrics_are_written_as_the_run_goes(inputs, tmp_path, monkeypatch):
    full = pretrain.run(config(inputs, tmp_path / "full", save_steps=0))
    calls = []

    def crash(*args, **kwargs):  # the second evaluation (step 6) dies, as a kill would
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = pretrain._evaluate
    monkeypatch.setattr(pretrain, "_evaluate", crash)
    with pytest.raises(KeyboardInterrupt):
        pretrain.run(config(inputs, tmp_path / "crash", save_steps=0))
    streamed = (tmp_path / "crash" / "metrics.csv").read_text().splitlines()
    final = (tmp_path / "full" / "metrics.csv").read_text().splitlines()
    assert len(streamed) == 1 + 5
    columns = [METRIC_COLUMNS.index(c) for c in ("step", "loss", "lr", "masked_fraction", "val_perplexity", "phase", "tokens")]
    assert [[line.split(",")[i] for i in columns] for line in streamed] == [[line.split(",")[i] for i in columns] for line in final[:6]]
    assert len(full.metrics) == 12


METRIC_COLUMNS = list(pretrain.METRIC_COLUMNS)


def test_cli_help_and_progress(inputs, tmp_path, capsys, monkeypatch):
    parser = pretrain.build_parser()
    helps = {a.dest: a.help for a in parser._actions if a.dest != "help"}
    assert set(helps) == {f.name for f in __import__("dataclasses").fields(pretrain.PretrainConfig)} | set(pretrain.CLI_OPTIONS)
    assert all(text and len(text) > 8 for text in helps.values()), [k for k, v in helps.items() if not v]
    argv = ["--steps", "6", "--batch_size", "4", "--max_len", "40", "--eval_steps", "3", "--eval_size", "16",
            "--fasta", inputs["fasta"], "--rank_table", inputs["rank_table"], "--out_dir", str(tmp_path / "cli")]
    monkeypatch.delenv("GENEMASK_QUIET", raising=False)
    assert pretrain.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("pretraining tiny (") and "6 steps x 4 sequences of <= 40 tokens" in out[0]
    progress = [line for line in out if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == ["3/6", "6/6"]
    assert all(("val_ppl" in line and "tokens/s" in line and "ETA" in line) for line in progress)
    monkeypatch.setenv("GENEMASK_QUIET", "1")
    assert pretrain.main([*argv[:-1], str(tmp_path / "quiet")]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith(("step ", "pretraining"))]
    assert pretrain.main([*argv[:-1], str(tmp_path / "cli"), "--lr", "0.01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds another pretraining run (different lr" in err[0]


def test_kept_checkpoints_and_yardstick_leave_the_run_unchanged(inputs, tmp_path):
    """keep_steps and the yardstick only observe: the same losses and final weights as a plain run,
    kept checkpoints survive a resume, and the logged yardstick loss is the kept checkpoint's score."""
    from genemask import yardstick

    plain = pretrain.run(config(inputs, tmp_path / "plain", eval_steps=4))
    part = pretrain.run(config(inputs, tmp_path / "kept", eval_steps=4, keep_steps=[4, 8], yardstick=True), stop_after=6)
    assert [p.name for p in (tmp_path / "kept" / "checkpoints").iterdir()] == ["step-00000004"]
    kept = pretrain.run(config(inputs, tmp_path / "kept", eval_steps=4, keep_steps=[4, 8], yardstick=True))
    assert part.finished is False and kept.resumed_from == 4
    columns = ["step", "loss", "lr", "masked_fraction", "val_perplexity", "phase", "tokens"]
    pd.testing.assert_frame_equal(plain.metrics[columns], kept.metrics[columns], check_exact=True)
    a, b = weights(plain.checkpoint), weights(kept.checkpoint)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0
    assert plain.metrics["yardstick_loss"].isna().all()
    logged = kept.metrics.set_index("step")["yardstick_loss"].dropna()
    assert logged.index.tolist() == [4, 8, 12]
    folders = sorted((tmp_path / "kept" / "checkpoints").iterdir())
    assert [pretrain.kept_step(p) for p in folders] == [4, 8] and pretrain.kept_step(kept.checkpoint) is None
    assert json.loads((folders[0] / "pretrain.json").read_text())["steps"] == 4
    corpus = genome.build_corpus(inputs["fasta"], genome.CorpusConfig(k=6))
    batches = yardstick.fixed_batches(corpus)
    for step, folder in zip((4, 8), folders):
        assert yardstick.score_checkpoint(folder, batches)["yardstick_loss"] == pytest.approx(logged[step], abs=1e-5)
    assert yardstick.score_checkpoint(kept.checkpoint, batches)["yardstick_loss"] == pytest.approx(logged[12], abs=1e-5)


@pytest.mark.parametrize("overrides, message", [
    ({"keep_steps": [500]}, r"keep_steps=\[500\] must be distinct increasing steps in \[1, steps=500\)"),
    ({"keep_steps": [200, 100]}, r"keep_steps=\[200, 100\] must be distinct increasing"),
    ({"keep_steps": "100"}, r"keep_steps='100' must be a list of integer steps"),
    ({"yardstick": 1}, r"yardstick=1 must be true or false"),
    ({"yardstick": True, "eval_steps": 0}, r"yardstick=True is scored at every evaluation: set eval_steps > 0"),
])
def test_bad_keep_steps_and_yardstick(overrides, message):
    with pytest.raises(ValueError, match=message):
        pretrain.PretrainConfig(**overrides)
