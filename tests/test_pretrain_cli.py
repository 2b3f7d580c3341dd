"""`genemask pretrain`: from a FASTA to a shareable checkpoint (ranking made once, model card), a
default out_dir per run, a failed start that gives its folder back, watchable progress, TensorBoard."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from genemask import cli, genome, masking, paths, pmi, pretrain, tokenizer

TOY = ["--steps", "6", "--batch_size", "4", "--max_len", "40", "--eval_steps", "3", "--eval_size", "8"]


@pytest.fixture()
def toy_fasta(tmp_path, monkeypatch):
    """Two random 60 kbp records; the cache (rankings, corpora, default out_dirs) under tmp_path."""
    rng = np.random.default_rng(7)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    fasta = genome.write_fasta({f"r{i}": letters[rng.integers(0, 4, 60_000)].tobytes() for i in range(2)},
                               tmp_path / "my.fa")
    monkeypatch.setenv("GENEMASK_CACHE", str(tmp_path / "cache"))
    return fasta


def _ranking(fasta) -> pmi.PMIConfig:
    return pmi.PMIConfig(fasta=str(fasta), max_n=6, min_count=10)


def test_fasta_to_checkpoint_with_model_card(toy_fasta, tmp_path, capsys, monkeypatch):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    monkeypatch.delenv("GENEMASK_QUIET", raising=False)
    argv = ["pretrain", "--fasta", str(toy_fasta), "--strategy", "cmgems", *TOY, "--pmi_max_n", "6",
            "--pmi_min_count", "10", "--masking_options", '{"switch_threshold": 1e9}']
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("ranking the 6-mers of my.fa by NPMI")
    ranking = pmi.ranking_of_fasta(_ranking(toy_fasta))
    checkpoint = pretrain.default_out_dir(pretrain.PretrainConfig(
        fasta=str(toy_fasta), strategy="cmgems", steps=6, batch_size=4, max_len=40, eval_steps=3, eval_size=8,
        masking_options={"switch_threshold": 1e9}, rank_table=str(ranking))) / "checkpoint"
    assert f"checkpoint: {checkpoint} (model card README.md)" in out
    model = AutoModelForMaskedLM.from_pretrained(checkpoint)
    batch = AutoTokenizer.from_pretrained(checkpoint)([tokenizer.kmerize("ACGTAGCTAGCTAGCATCGA")], return_tensors="pt")
    assert model(**batch).logits.shape == (1, 17, 4101)
    card = (checkpoint / "README.md").read_text()
    saved = json.loads((checkpoint / "pretrain.json").read_text())
    tokens = sum(int(line.split(",")[6]) for line in (checkpoint.parent / "metrics.csv").read_text().splitlines()[1:])
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: fill-mask\n")
    for row in (f"| masking strategy | `cmgems`", "| curriculum switch (genemask to global masking) | step 6 |",
                f"min_count 10) of my.fa (sha256 {pmi.file_sha256(toy_fasta)[:16]})", f"| tokens seen | {tokens:,} |",
                "| seed | 0 |", f"| final validation perplexity | {saved['final_val_perplexity']:.4g} |",
                "| steps | 6 x 4 sequences of <= 40 tokens", f"| genemask | {pretrain.__version__}, commit "):
        assert row in card, row
    # The second run of the same command reuses the ranking and the finished run.
    assert cli.main(argv) == 0
    again = capsys.readouterr().out
    assert "ranking the" not in again and "finished already" in again


def test_ranking_is_keyed_by_content_and_parameters_and_equals_01_pmi(toy_fasta, tmp_path):
    first = pmi.ranking_of_fasta(_ranking(toy_fasta))
    moved = shutil.copy(toy_fasta, tmp_path / "renamed.fa")
    assert pmi.ranking_of_fasta(_ranking(moved)) == first  # a renamed copy: the same ranking, reused
    assert pmi.ranking_of_fasta(pmi.PMIConfig(fasta=str(moved), max_n=7, min_count=10)) != first
    with open(moved, "a") as handle:
        handle.write(">more\nACGTTGCA\n")
    assert pmi.ranking_of_fasta(_ranking(moved)) != first
    out = pmi.run(_ranking(toy_fasta), tmp_path / "pmi") if _has("pyarrow") else None
    if out is not None:  # notebook 01's table, byte for byte
        assert first.read_bytes() == open(out["kmer_ranking"], "rb").read()
    with pytest.raises(ValueError, match=r"my.fa: no 6-mer occurs min_count=100000 times"):
        pmi.ranking_of_fasta(pmi.PMIConfig(fasta=str(toy_fasta), max_n=6, min_count=100_000))


def _has(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def test_default_out_dir_is_one_per_run(toy_fasta, tmp_path):
    base = dict(steps=6, batch_size=4, max_len=40, eval_steps=3, eval_size=8, strategy="random", fasta=str(toy_fasta))
    a = pretrain.PretrainConfig(**base)
    assert pretrain.default_out_dir(a) == pretrain.default_out_dir(pretrain.PretrainConfig(**base, threads=2, resume=False))
    assert pretrain.default_out_dir(a).parent == paths.cache_dir() / "notebooks" / "03_pretrain"
    assert pretrain.default_out_dir(a).name.startswith("tiny-random-6-")
    first = pretrain.run(a)
    second = pretrain.run(pretrain.PretrainConfig(**{**base, "lr": 0.01}))  # was refused: "holds another pretraining run"
    assert first.out_dir != second.out_dir and first.finished and second.finished


def test_a_start_that_fails_before_training_gives_its_folder_back(toy_fasta, tmp_path):
    """A bad masking option is refused before out_dir is touched; a failure after the claim but
    before the first step (a corpus smaller than one batch) gives the folder back; a run that logged
    a step keeps it."""
    ranks = pmi.ranking_of_fasta(_ranking(toy_fasta))
    base = dict(steps=6, max_len=40, eval_steps=3, eval_size=8, fasta=str(toy_fasta), rank_table=str(ranks))
    with pytest.raises(ValueError, match="rank_lookup"):
        pretrain.run(pretrain.PretrainConfig(**base, batch_size=4, out_dir=str(tmp_path / "bad"),
                                             masking_options={"rank_lookup": "centre"}))
    assert not (tmp_path / "bad").exists()
    for out_dir, existed in ((tmp_path / "new", False), (tmp_path / "old", True)):
        if existed:
            out_dir.mkdir()
        with pytest.raises(ValueError, match="fewer than one batch"):
            pretrain.run(pretrain.PretrainConfig(**base, batch_size=100_000, out_dir=str(out_dir)))
        assert out_dir.exists() == existed and (not existed or {p.name for p in out_dir.iterdir()} <= {".lock"})
        assert pretrain.run(pretrain.PretrainConfig(**base, batch_size=4, out_dir=str(out_dir))).finished
    pretrain.run(pretrain.PretrainConfig(**base, batch_size=4, out_dir=str(tmp_path / "part"), save_steps=0), stop_after=2)
    with pytest.raises(ValueError, match=r"holds another pretraining run \(different lr"):
        pretrain.run(pretrain.PretrainConfig(**base, batch_size=4, out_dir=str(tmp_path / "part"), lr=0.01))


def test_help_example_of_masking_options_is_valid():
    help_text = next(a.help for a in pretrain.build_parser()._actions if a.dest == "masking_options")
    example = json.loads(re.search(r"e\.g\. '(\{.*\})'", help_text)[1])
    cfg = pretrain.PretrainConfig(strategy="genemask", masking_options=example)
    strategy, options = cfg.masking()
    ranks = pd.DataFrame({"kmer": tokenizer.vocab_kmers(6), "rank": np.arange(1, 4097)})
    masking.make_collator(strategy, tokenizer.build_tokenizer(6), rank_table=ranks, **options)


def test_report_to_tensorboard(toy_fasta, tmp_path):
    ranks = str(pmi.ranking_of_fasta(_ranking(toy_fasta)))
    cfg = pretrain.PretrainConfig(steps=6, batch_size=4, max_len=40, eval_steps=3, eval_size=8, fasta=str(toy_fasta),
                                  rank_table=ranks, out_dir=str(tmp_path / "board"))
    with pytest.raises(ValueError, match="report_to='wandb' is unknown"):
        pretrain.run(cfg, report_to="wandb")
    if not _has("tensorboard"):
        with pytest.raises(RuntimeError, match=r"^report_to='tensorboard' needs the tensorboard package: pip install"):
            pretrain.run(cfg, report_to="tensorboard")
        assert not (tmp_path / "board").exists()  # refused before anything was written
        return
    pretrain.run(cfg, report_to="tensorboard")
    assert list((tmp_path / "board" / "tensorboard").glob("events.out.tfevents.*"))


class _KernelStderr:
    """ipykernel's OutStream as the progress code sees it: fileno() is its copy of the kernel's stderr."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def write(self, text: str) -> None:  # what the kernel would forward into the notebook
        raise AssertionError(f"progress went into the notebook's output: {text!r}")


def test_progress_goes_beneath_a_notebook_kernel_and_nowhere_else(toy_fasta, tmp_path, monkeypatch, capfd):
    ranks = str(pmi.ranking_of_fasta(_ranking(toy_fasta)))
    base = dict(steps=6, batch_size=4, max_len=40, eval_steps=3, eval_size=8, fasta=str(toy_fasta), rank_table=ranks)
    monkeypatch.delenv("GENEMASK_QUIET", raising=False)
    pretrain.run(pretrain.PretrainConfig(**base, out_dir=str(tmp_path / "plain")))  # a script: silent by default
    assert capfd.readouterr() == ("", "")
    read_end, write_end = os.pipe()
    monkeypatch.setattr(pretrain, "_in_kernel", lambda: True)
    monkeypatch.setattr(sys, "stderr", _KernelStderr(write_end))
    pretrain.run(pretrain.PretrainConfig(**base, out_dir=str(tmp_path / "kernel")))
    os.close(write_end)
    with os.fdopen(read_end) as terminal:
        lines = terminal.read().splitlines()
    progress = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == ["3/6", "6/6"]
    assert all("loss" in line and "val_ppl" in line and "tokens/s" in line and "ETA" in line for line in progress)
    monkeypatch.setenv("GENEMASK_QUIET", "1")  # nbval (tests/conftest.py) and the grid's cells
    assert pretrain._console() is None


def test_cli_version_and_what_the_grid_needs(monkeypatch, capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"genemask {pretrain.__version__}"
    monkeypatch.setattr(paths, "in_checkout", lambda: False)
    assert cli.main(["grid", "params/demo.yaml", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genemask grid: runs the notebooks/ and params/ of a genemask checkout")
    monkeypatch.delenv("GENEMASK_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "genemask"  # never inside the environment
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert paths.user_cache_dir() == paths.Path.home() / ".cache" / "genemask"


def test_dry_run_checks_and_runs_nothing(toy_fasta, tmp_path, capsys):
    argv = ["--paper", "--strategy", "cmgems", "--fasta", str(toy_fasta), "--out_dir", str(tmp_path / "paper"), "--dry-run"]
    assert pretrain.main(argv) == 0
    out = capsys.readouterr().out
    assert "dnabert model, cmgems masking, 10,000 steps x 250 sequences of <= 512 tokens" in out
    assert "ranking: the NPMI ranking of the FASTA (made first" in out
    assert not (tmp_path / "paper").exists() and not (paths.cache_dir() / pmi.RANKING_CACHE).exists()
    assert pretrain.main([*argv[:4], str(tmp_path / "missing.fa"), "--dry-run"]) == 2
    assert "missing.fa" in capsys.readouterr().err
