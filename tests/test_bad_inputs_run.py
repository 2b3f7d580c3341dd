"""TABLE_PLACEHOLDER"""
from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from genemask import finetune, genome, integrity, io, masking, pmi, pretrain, tasks, tokenizer, yardstick

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_line_naming(err: pytest.ExceptionInfo, *names) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for name in names:
        assert str(name) in message, f"{name!r} not in {message!r}"


def finishes(fn, seconds: float = 20.0):
    """Run ``fn`` in a thread: a reader that blocks (a FIFO) fails the test instead of hanging it."""
    outcome: dict = {}

    def go():
        try:
            outcome["value"] = fn()
        except BaseException as err:  # handed to the test
            outcome["error"] = err

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A small random genome and a seeded rank table (as tests/test_pretrain.py), its own cache."""
    root = tmp_path_factory.mktemp("run_inputs")
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    fasta = genome.write_fasta({f"r{i}": letters[rng.integers(0, 4, 40_000)].tobytes() for i in range(2)}, root / "g.fa")
    ranks = pd.DataFrame({"kmer": tokenizer.vocab_kmers(6), "rank": rng.permutation(4096) + 1})
    ranks.to_csv(root / "ranks.csv", index=False)
    previous = os.environ.get("GENEMASK_CACHE")
    os.environ["GENEMASK_CACHE"] = str(root / "cache")
    yield {"fasta": str(fasta), "rank_table": str(root / "ranks.csv")}
    if previous is None:
        os.environ.pop("GENEMASK_CACHE", None)
    else:
        os.environ["GENEMASK_CACHE"] = previous


def config(inputs, out_dir, **overrides) -> pretrain.PretrainConfig:
    base = dict(steps=6, model="tiny", strategy="random", batch_size=4, max_len=40, eval_steps=3, eval_size=16,
                save_steps=2, lr=2e-3, warmup=2, seed=3, out_dir=str(out_dir), threads=1, **inputs)
    return pretrain.PretrainConfig(**{**base, **overrides})


def flip_tensor_bytes(weights, size: int = 4096) -> None:
    """Bit rot inside the tensor data (past the header), as issue 21 did: the file still parses."""
    data = bytearray(weights.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    start = header + (len(data) - header) // 2
    stop = min(len(data), start + size)
    data[start:stop] = bytes(b ^ 0xFF for b in data[start:stop])
    weights.write_bytes(bytes(data))


# --------------------------------------------------------------------------------------------------
# 6. A masking that masks nothing


@pytest.mark.parametrize("strategy, options, named", [
    ("random", {"mlm_probability": 0}, "mlm_probability=0"),
    ("genemask", {"mlm_probability": 0.0}, "mlm_probability=0"),
    ("cmgems", {"global_probability": 0}, "global_probability=0"),  # the phase after the switch
    ("cmstep", {"random_probability": 0}, "random_probability=0"),
    ("random", {"mask_replace_prob": 0, "random_replace_prob": 0}, "mask_replace_prob=0 and random_replace_prob=0"),
])
def test_a_masking_that_masks_nothing_is_refused_before_any_step(inputs, tmp_path, strategy, options, named):
    with pytest.raises(ValueError, match="masking_options") as err:
        config(inputs, tmp_path / "run", strategy=strategy, masking_options=options)
    one_line_naming(err, named)
    assert not (tmp_path / "run").exists()


def test_the_cli_refuses_mlm_probability_0_with_one_line(tmp_path, capsys):
    """The issue's command: it trained with loss 0.0 and reported perplexity 1.0, exit 0."""
    rc = pretrain.main(["--masking_options", '{"mlm_probability": 0}', "--strategy", "random", "--out_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "mlm_probability=0 masks no token" in err
    assert not (tmp_path / "o").exists()


def test_a_batch_stream_that_masks_nothing_stops_the_run(inputs, tmp_path):
    """A probability above 0 that masks nothing here: the first batches are watched."""
    with pytest.raises(ValueError, match=r"masking: the first 8 batches masked no token") as err:
        pretrain.run(config(inputs, tmp_path / "run", steps=20, masking_options={"random_probability": 1e-12}))
    one_line_naming(err)
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_a_working_masking_is_watched_without_changing_its_losses(inputs, tmp_path):
    """The watch reads counts only: the same run with and without it gives the same losses."""
    watched = pretrain.run(config(inputs, tmp_path / "a", steps=4, eval_steps=2)).metrics
    original = pretrain._UnmaskedStream.observe
    try:
        pretrain._UnmaskedStream.observe = lambda self, *args: None  # never watch
        unwatched = pretrain.run(config(inputs, tmp_path / "b", steps=4, eval_steps=2)).metrics
    finally:
        pretrain._UnmaskedStream.observe = original
    assert watched["loss"].tolist() == unwatched["loss"].tolist() and (watched["masked_fraction"] > 0).all()


# --------------------------------------------------------------------------------------------------
# 7. Checksummed checkpoints


def test_a_bit_rotted_checkpoint_is_refused_by_every_loader(inputs, tmp_path):
    out = tmp_path / "run"
    result = pretrain.run(config(inputs, out))
    record = json.loads((result.checkpoint / integrity.CHECKSUM_FILE).read_text())
    assert set(record["sha256"]) == {"model.safetensors"}
    finetune.load_classifier(result.checkpoint, 2)  # intact: loads, verified
    flip_tensor_bytes(result.checkpoint / "model.safetensors")
    weights = result.checkpoint / "model.safetensors"
    with pytest.raises(integrity.ChecksumError, match="checksum mismatch") as err:  # the finished run is not reused
        pretrain.run(config(inputs, out))
    one_line_naming(err, weights, "resume=False")
    with pytest.raises(integrity.ChecksumError, match="checksum mismatch") as err:  # few-shot / GUE
        finetune.load_classifier(result.checkpoint, 2)
    one_line_naming(err, weights)
    with pytest.raises(integrity.ChecksumError, match="checksum mismatch") as err:
        yardstick.score_checkpoint(result.checkpoint, [])
    one_line_naming(err, weights)


def test_a_bit_rotted_resume_state_falls_back_to_the_previous_one(inputs, tmp_path):
    out = tmp_path / "run"
    pretrain.run(config(inputs, out), stop_after=5)  # states at steps 2 and 4
    latest = out / "resume" / "step-00000004"
    assert json.loads((latest / integrity.CHECKSUM_FILE).read_text())["sha256"].keys() == {
        "model.safetensors", "optimizer.safetensors"}
    flip_tensor_bytes(latest / "optimizer.safetensors")
    with pytest.warns(UserWarning, match=r"step-00000004/optimizer\.safetensors: damaged resume state \(checksum mismatch"):
        resumed = pretrain.run(config(inputs, out))
    assert resumed.resumed_from == 2 and resumed.finished


def test_a_checkpoint_saved_before_checksums_loads_noted_once(inputs, tmp_path):
    result = pretrain.run(config(inputs, tmp_path / "run"))
    (result.checkpoint / integrity.CHECKSUM_FILE).unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        finetune.load_classifier(result.checkpoint, 2)
        finetune.load_classifier(result.checkpoint, 2)
    notes = [w for w in caught if integrity.CHECKSUM_FILE in str(w.message)]
    assert len(notes) == 1 and "not verified" in str(notes[0].message)
    assert pretrain.run(config(inputs, tmp_path / "run")).finished  # the finished run is still reused


def test_a_damaged_checksum_record_is_an_error_naming_it(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / integrity.CHECKSUM_FILE).write_text('{"sha256": ')
    with pytest.raises(integrity.ChecksumError, match="damaged checksum record") as err:
        integrity.verify_checksums(tmp_path, ["model.safetensors"])
    one_line_naming(err, tmp_path / integrity.CHECKSUM_FILE)
    integrity.write_checksums(tmp_path, ["model.safetensors"])
    assert integrity.verify_checksums(tmp_path, ["model.safetensors", "pytorch_model.bin"])


# --------------------------------------------------------------------------------------------------
# 8. Leakage


@pytest.fixture
def own_tasks(tmp_path, monkeypatch):
    """A data folder with one few-shot dataset and one GUE task of our own, registered for the test."""
    root = tmp_path / "data"
    rng = np.random.default_rng(1)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    seqs = [letters[rng.integers(0, 4, 40)].tobytes().decode() for _ in range(40)]
    frame = pd.DataFrame({"sequence": seqs, "label": [i % 2 for i in range(40)]})

    def write(relative, part):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            part.to_csv(path, index=False)
        else:
            part.to_csv(path, sep="\t", index=False)

    write("fs/10/train.tsv", frame.iloc[:20])
    write("fs/test.tsv", frame.iloc[:20])  # the test set is the training set
    write("fs/partial_test.tsv", frame.iloc[10:30])  # half of it is
    write("gue/own/task/train.csv", frame.iloc[:20])
    write("gue/own/task/dev.csv", frame.iloc[:20])  # dev.csv equal to train.csv
    write("gue/own/task/test.csv", frame.iloc[20:])
    monkeypatch.setenv("GENEMASK_DATA", str(root))
    monkeypatch.setitem(tasks.FEWSHOT, "own-fs", tasks.FewShotDataset("own-fs", "40 bp", 2, "test", {10: "fs/10/train.tsv"},
                                                                      "fs/test.tsv"))
    monkeypatch.setitem(tasks.FEWSHOT, "own-fs-partial", tasks.FewShotDataset(
        "own-fs-partial", "40 bp", 2, "test", {10: "fs/10/train.tsv"}, "fs/partial_test.tsv"))
    monkeypatch.setitem(tasks.GUE, "own/task", tasks.GueTask("own/task", "40 bp", 2, "test", 1, 20, 5, 1))
    return root


def test_a_test_set_equal_to_training_says_its_rows_were_duplicates(own_tasks):
    with pytest.raises(tasks.TaskDataError, match="20 of its 20 rows were removed as duplicates of training rows") as err:
        tasks.fewshot_split("own-fs", 10)
    one_line_naming(err, "fs/test.tsv", "leaving no row")
    partial = tasks.fewshot_split("own-fs-partial", 10)  # a smaller removal is reported, as before
    assert partial.info["test_overlap_removed"] == 10 and partial.info["n_test"] == 10


def test_a_gue_dev_equal_to_train_does_not_switch_off_best_by_dev(own_tasks):
    with pytest.raises(tasks.TaskDataError, match="dev split .* 20 of its 20 rows were removed as duplicates") as err:
        tasks.gue_split("own/task")
    one_line_naming(err, own_tasks / "gue" / "own" / "task")


def test_finetune_refuses_an_empty_dev_with_eval_steps():
    frame = pd.DataFrame({"sequence": ["ACGTACGTAC", "TTGACCATGA"], "label": [0, 1]})
    config = finetune.FinetuneConfig(learning_rate=1e-3, batch_size=2, max_steps=1, eval_steps=1)
    with pytest.raises(ValueError, match="dev: no rows, so the best-by-dev-loss selection") as err:
        finetune.finetune("random:tiny", frame, frame, config, 2, dev=frame.iloc[:0])
    one_line_naming(err)


@pytest.mark.parametrize("argument, value, named", [
    ("datasets", ["demo-prom", "demo-prom"], "'demo-prom' is listed more than once"),
    ("shots", [10, 50, 10], "10 is listed more than once"),
])
def test_repeated_fewshot_entries_are_refused(argument, value, named):
    kwargs = {"datasets": ["demo-prom"], "shots": [10], argument: value}
    with pytest.raises(ValueError, match=argument) as err:
        finetune.run_fewshot("random:tiny", kwargs["datasets"], kwargs["shots"], [0], echo=lambda *a: None)
    one_line_naming(err, named)


def test_repeated_gue_tasks_are_refused():
    with pytest.raises(ValueError, match="'demo/prom' is listed more than once") as err:
        finetune.run_gue("random:tiny", ["demo/prom", "demo/motif", "demo/prom"], [0], echo=lambda *a: None)
    one_line_naming(err, "task_names")


@pytest.mark.parametrize("kwargs, named", [
    ({"model_name": 5}, "model_name=5"), ({"small": [1]}, "small=[1]"), ({"large": "fast"}, "large='fast'"),
    ({"resample": "yes"}, "resample='yes'"),
])
def test_fewshot_parameters_with_a_none_default_are_type_checked_on_entry(kwargs, named):
    with pytest.raises(ValueError) as err:
        finetune.run_fewshot("random:tiny", ["demo-prom"], [10], [0], echo=lambda *a: None, **kwargs)
    one_line_naming(err, named)


# --------------------------------------------------------------------------------------------------
# 9. Inputs that block: FIFOs and other files that are not regular


def test_a_fifo_as_the_fasta_is_refused_at_once(tmp_path):
    fifo = tmp_path / "genome.fa"
    os.mkfifo(fifo)
    for read in (lambda: list(genome.read_fasta(fifo)), lambda: pmi.count_ngrams(fifo, 3),
                 lambda: genome.build_corpus(fifo, cache_root=tmp_path / "cache")):
        with pytest.raises(genome.FastaError, match="is a FIFO") as err:
            finishes(read)
        one_line_naming(err, fifo, "FASTA file must be a regular file")


def test_a_fifo_anywhere_a_user_file_is_read_is_refused(inputs, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    os.mkfifo(checkpoint / "config.json")
    cases = [(lambda: pmi.load_rank_table(fifo), "rank table file"), (lambda: pmi.NgramCounts.load(fifo), "n-gram counts"),
             (lambda: tasks.read_split(tmp_path / "pipe.csv"), "split file"),
             (lambda: finetune.checkpoint_info(checkpoint), "checkpoint JSON file"),
             (lambda: pretrain.run(config({**inputs, "rank_table": str(fifo)}, tmp_path / "run", strategy="genemask")),
              "rank table file")]
    os.mkfifo(tmp_path / "pipe.csv")
    for read, what in cases:
        with pytest.raises(ValueError, match="is a FIFO") as err:
            finishes(read)
        one_line_naming(err, what)


def test_devices_sockets_and_folders_as_the_fasta_say_what_they_are(tmp_path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "s.sock"))
    try:
        for path, kind in (("/dev/zero", "character device"), ("/dev/null", "character device"),
                           (tmp_path / "s.sock", "socket"), (tmp_path, "directory")):
            with pytest.raises(genome.FastaError, match=kind) as err:
                finishes(lambda: list(genome.read_fasta(path)))
            one_line_naming(err, path)
    finally:
        server.close()


# --------------------------------------------------------------------------------------------------
# 10. Storage faults: the path named, nothing half-written


def safetensors_full_disk(*args, **kwargs):
    """What safetensors raises on a full disk: its own error, which names no path."""
    from safetensors import SafetensorError

    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def test_a_full_disk_during_a_resume_save_names_the_file(inputs, tmp_path, monkeypatch):
    import safetensors.torch

    out = tmp_path / "run"
    pretrain.run(config(inputs, out), stop_after=3)
    monkeypatch.setattr(safetensors.torch, "save_model", safetensors_full_disk)
    with pytest.raises(io.WriteError, match=r"step-00000004\.tmp/model\.safetensors: could not write "
                                            r"\(No space left on device\)") as err:
        pretrain.run(config(inputs, out))
    one_line_naming(err)
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in (out / "resume").iterdir()) == ["step-00000002"]  # no half-written state


def test_a_full_disk_during_the_final_checkpoint_names_the_file(inputs, tmp_path, monkeypatch):
    import transformers.modeling_utils

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", safetensors_full_disk)  # save_pretrained's writer
    out = tmp_path / "run"
    with pytest.raises(io.WriteError, match=r"checkpoint\.tmp/model\.safetensors: could not write \(No space left") as err:
        pretrain.run(config(inputs, out, save_steps=0))
    one_line_naming(err)
    assert not (out / "checkpoint").exists() and not (out / ".checkpoint.tmp").exists()


def test_a_full_cache_names_the_corpus_file_and_leaves_no_partial_corpus(inputs, tmp_path, monkeypatch):
    """numpy's own message was only '878316 requested and 524224 written'."""
    def short_write(path, array, *args, **kwargs):
        raise OSError("878316 requested and 524224 written")

    monkeypatch.setattr(np, "save", short_write)
    with pytest.raises(io.WriteError, match=r"train_ids\.npy: could not write \(short write, 878316 requested and "
                                            r"524224 written: is the disk full\?\)") as err:
        genome.build_corpus(inputs["fasta"], cache_root=tmp_path / "cache")
    one_line_naming(err, tmp_path / "cache" / "corpus")
    assert list((tmp_path / "cache" / "corpus").iterdir()) == []


def test_a_real_short_write_names_the_corpus_file(inputs, tmp_path):
    """The fault itself, not a stand-in: a file-size limit makes the kernel refuse the write (EFBIG)."""
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); from genemask import genome; "
              f"genome.build_corpus({inputs['fasta']!r}, cache_root=__import__('pathlib').Path({str(tmp_path / 'cache')!r}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "lib")})
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0 and last.startswith("genemask.io.WriteError"), done.stderr[-2000:]
    assert "_ids.npy: could not write (" in last and str(tmp_path / "cache" / "corpus") in last, last
    assert list((tmp_path / "cache" / "corpus").iterdir()) == []


# --------------------------------------------------------------------------------------------------
# The smaller items


def test_a_broken_pretrain_json_is_one_line_naming_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"kmer": 6, "vocab_size": 4101, "model_type": "bert"}))
    (tmp_path / "pretrain.json").write_text('{"config": {')
    with pytest.raises(ValueError, match="not valid JSON") as err:
        finetune.checkpoint_info(tmp_path)
    one_line_naming(err, tmp_path / "pretrain.json")


@pytest.mark.parametrize("call", [
    lambda: list(genome.read_fasta("")), lambda: pmi.count_ngrams("", 3), lambda: pmi.PMIConfig(fasta=""),
    lambda: pmi.load_rank_table(""), lambda: pretrain.PretrainConfig(fasta=""), lambda: pretrain.PretrainConfig(fasta=["a.fa", " "]),
    lambda: pretrain.PretrainConfig(out_dir=""), lambda: finetune.checkpoint_info(""),
])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(call):
    with pytest.raises(ValueError, match="empty path|checkpoint=''") as err:
        call()
    one_line_naming(err)
    assert "'.'" not in str(err.value)


@pytest.fixture(scope="module")
def collator():
    ranks = torch.arange(4101)
    ranks[5:] = torch.randperm(4096, generator=torch.Generator().manual_seed(0)) + 1
    return masking.make_collator("genemask", tokenizer.build_tokenizer(6), rank_table=ranks, seed=0)


@pytest.mark.parametrize("batch, error, named", [
    (torch.full((2, 8), 7.7), ValueError, "input_ids: expected integer token ids, got float32"),
    ([[5, 6.7, 8]], ValueError, "input_ids: expected integer token ids, got"),
    ([[5, float("nan"), 8]], ValueError, "input_ids: expected integer token ids, got"),
    ([np.array([5.0, 6.0])], ValueError, "input_ids: expected integer token ids, got float64"),
    (torch.ones(2, 8, dtype=torch.bool), ValueError, "got bool"),
    ({"input_ids": torch.full((2, 8), 9), "attention_mask": torch.ones(2, 5)}, ValueError, "attention_mask: shape (2, 5)"),
    ([{"input_ids": [5, 6, 7], "attention_mask": [1, 1]}, {"input_ids": [5, 6], "attention_mask": [1, 1]}], ValueError,
     "examples[0]: attention_mask has 2 entries, input_ids 3"),
    ([{"input_ids": [5, 6]}, [5, 6]], ValueError, "examples[1]: expected a mapping with 'input_ids'"),
    ([[5, 6], []], ValueError, "examples[1]: expected a non-empty sequence"),
    ({"ids": torch.full((2, 8), 9)}, ValueError, "needs 'input_ids'"),
    ("ACGTAC", TypeError, "examples: expected a list of examples"),
])
def test_the_collator_refuses_bad_batches_naming_the_field(collator, batch, error, named):
    with pytest.raises(error) as err:
        collator(batch)
    one_line_naming(err, named)


def test_the_collator_refuses_a_mask_of_another_shape_and_no_tokenizer(collator):
    ids = torch.full((2, 8), 9)
    with pytest.raises(ValueError) as err:
        collator.mask_batch(ids, torch.ones(2, 7))
    one_line_naming(err, "attention_mask: shape (2, 7) differs from input_ids (2, 8)")
    for bad in (None, "bert-base"):
        with pytest.raises(TypeError) as err:
            masking.make_collator("random", bad)
        one_line_naming(err, "tokenizer=", "genemask.tokenizer.build_tokenizer")


def test_the_collator_curriculum_refuses_bad_state(collator):
    fresh = masking.make_collator("genemask", collator.tokenizer, rank_table=collator.rank_table, seed=0)
    for call, named in ((lambda: fresh.set_step("x"), "step='x'"), (lambda: fresh.set_step(-1), "step=-1"),
                        (lambda: fresh.observe_validation_perplexity(float("nan")), "perplexity=nan"),
                        (lambda: fresh.observe_validation_perplexity("12"), "perplexity='12'"),
                        (lambda: fresh.load_state_dict({"strategy": "genemask"}), "state_dict: missing 'step'")):
        with pytest.raises(ValueError) as err:
            call()
        one_line_naming(err, named)


def test_integer_ids_in_every_form_mask_as_before(collator):
    """Lists, arrays and tensors of the same ids give the same masks (the float64 read is exact)."""
    rows = [[2, *range(100, 160), 3], [2, *range(300, 340), 3]]
    outs = []
    for batch in (rows, [np.array(r, dtype=np.int32) for r in rows], [torch.tensor(r) for r in rows]):
        collator.generator.manual_seed(5)
        outs.append(collator(batch))
    for out in outs[1:]:
        assert all(torch.equal(out[key], outs[0][key]) for key in ("input_ids", "labels", "attention_mask"))


@pytest.mark.parametrize("call, named", [
    (lambda fa: pmi.count_ngrams(fa, max_n="6"), "max_n='6'"), (lambda fa: pmi.count_ngrams(fa, max_n=13), "max_n=13"),
    (lambda fa: pmi.count_ngrams(fa, 3, workers=1.5), "workers=1.5"), (lambda fa: pmi.count_ngrams([], 3), "fasta=[]"),
    (lambda fa: pmi.count_ngrams(None, 3), "fasta=None"),
    (lambda fa: pmi.count_ngrams_in_sequences([5], 3), "seqs[0]"),
    (lambda fa: pmi.count_ngrams_in_sequences("ACGT", 3), "wrap it in a list"),
    (lambda fa: pmi.discount(np.array([5.0]), 0), "min_count=0"),
    (lambda fa: pmi.pmi_table(None, pmi.PMIConfig()), "counts: expected NgramCounts"),
    (lambda fa: pmi.pmi_table(pmi.count_ngrams_in_sequences(["ACGT"], 6), {"max_n": 6}), "cfg: expected PMIConfig"),
    (lambda fa: pmi.kmer_ranking(None, 6, 1), "table: expected DataFrame"),
    (lambda fa: pmi.kmer_ranking(pd.DataFrame(), 7, 1), "k=7"),
    (lambda fa: pmi.load_rank_table(fa, k="6"), "k='6'"),
    (lambda fa: pmi.load_rank_table(None), "source: expected"),
    (lambda fa: pmi.count_ngrams_in_sequences(["ACGT"], 3).of("2"), "n='2'"),
    (lambda fa: pmi.run(pmi.PMIConfig(fasta=str(fa)), None), "out_dir: expected"),
    (lambda fa: pmi.run(pmi.PMIConfig(fasta=str(fa)), fa), "is a file, not a folder"),
])
def test_pmi_public_functions_name_a_bad_argument(inputs, call, named):
    with pytest.raises((TypeError, ValueError)) as err:
        call(inputs["fasta"])
    one_line_naming(err, named)


@pytest.mark.parametrize("path, named", [
    (b">r\nAC\x00GT\n", "unexpected '\\x00'"),
    (None, "gzip inside gzip"),
])
def test_fasta_reader_names_binary_junk(tmp_path, path, named):
    import gzip

    fa = tmp_path / "x.fa.gz"
    if path is None:
        fa.write_bytes(gzip.compress(gzip.compress(b">r\nACGT\n")))
    else:
        fa.write_bytes(path)
    with pytest.raises(genome.FastaError) as err:
        list(genome.read_fasta(fa))
    one_line_naming(err, fa, named)


def test_fasta_reader_names_a_path_of_the_wrong_type_and_a_link_loop(tmp_path):
    with pytest.raises(TypeError) as err:
        list(genome.read_fasta(None))
    one_line_naming(err, "fasta=None: expected a path")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(genome.FastaError) as err:
        list(genome.read_fasta(tmp_path / "loop"))
    one_line_naming(err, tmp_path / "loop", "symbolic links")


def test_pretrain_refuses_cuda_without_a_gpu(inputs, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError) as err:
        pretrain.run(config(inputs, tmp_path / "run", device="cuda:0"))
    one_line_naming(err, "device='cuda:0': no CUDA device")
    assert not (tmp_path / "run").exists()
