"""Pretraining: checkpoint layout, the masked-only MLM head, determinism, exact resume, bad input."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from genemask import genome, models, paths, pretrain, tokenizer


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A small random genome and a seeded rank table, so these tests need no demo data or PMI run."""
    root = tmp_path_factory.mktemp("pretrain_inputs")
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    fasta = genome.write_fasta({f"r{i}": letters[rng.integers(0, 4, 40_000)].tobytes() for i in range(2)}, root / "g.fa")
    ranks = pd.DataFrame({"kmer": tokenizer.vocab_kmers(6), "rank": rng.permutation(4096) + 1})
    ranks.to_csv(root / "ranks.csv", index=False)
    os.environ["GENEMASK_CACHE"] = str(root / "cache")  # corpus cache away from the repository's
    yield {"fasta": str(fasta), "rank_table": str(root / "ranks.csv")}
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
    with pytest.raises(ValueError, match=r"different parameters \(lr\)"):
        pretrain.run(config(inputs, tmp_path / "run", lr=1e-3))
    fresh = pretrain.run(config(inputs, tmp_path / "run", lr=1e-3, resume=False))
    assert fresh.resumed_from is None and fresh.finished


def test_learning_rate_schedule():
    cfg = pretrain.PretrainConfig(steps=100, warmup=10, lr=1.0)
    assert [pretrain.learning_rate(s, cfg) for s in (0, 5, 10, 55, 100)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert pretrain.PretrainConfig(steps=1000, warmup=0.05).warmup_steps == 50
    assert pretrain.PretrainConfig(**pretrain.PAPER_BUDGET).warmup_steps == 500


@pytest.mark.parametrize("overrides, message", [
    ({"model": "huge"}, r"model='huge': unknown model"),
    ({"strategy": "spanbert"}, r"strategy='spanbert': unknown"),
    ({"steps": 0}, r"steps=0 must be >= 1"),
    ({"steps": -5}, r"steps=-5 must be >= 1"),
    ({"batch_size": 0}, r"batch_size=0 must be >= 1"),
    ({"max_len": 1024}, r"max_len=1024 must lie in \[3, 512\]"),
    ({"masking_options": {"centre_prob": 0.1}}, r"masking_options: unknown option\(s\) \['centre_prob'\]"),
    ({"strategy": "cmgems", "eval_steps": 0}, r"set eval_steps > 0"),
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
    args.pop("paper")
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
