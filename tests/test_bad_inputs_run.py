r"""Issue 21, the compute side: each numbered item given as its input or fault, and the bad inputs
designed here beyond the issue, for the FASTA reader, PMI, the masking collator, the pretraining
CLI and the few-shot / GUE entry points.

The issue's items and their tests (all now clear, one line naming the file or parameter):
6 ``mlm_probability: 0`` (``centre_probability: 0`` since issue 22's rename; and a 0 probability of any phase a strategy uses, or no [MASK]/random
  replacement) is refused before any step; a batch stream that masks no token in its first 8
  batches stops the run: ``test_a_masking_that_masks_nothing_*``, ``test_the_cli_refuses_*``,
  ``test_a_batch_stream_that_masks_nothing_*``; valid maskings keep their losses (``test_a_working_*``).
7 checkpoints and resume states record ``checksums.json`` (sha256 of the weights) and every loader
  verifies it (pretraining reuse and resume, ``finetune.load_classifier``, ``yardstick``):
  ``test_a_bit_rotted_*``, ``test_a_checkpoint_saved_before_checksums_loads_noted_once``.
8 a test or dev split emptied (or left without a class) by de-duplication against training says its
  rows were duplicates of training rows; repeated ``shots``/``datasets``/``task_names`` are refused:
  ``test_a_test_set_equal_*``, ``test_a_gue_dev_equal_*``, ``test_finetune_refuses_an_empty_dev_*``,
  ``test_repeated_*``.
9 a FIFO, device, socket or folder is refused before it is opened, wherever a user file is read:
  ``test_a_fifo_*``, ``test_devices_sockets_and_folders_*``.
10 ENOSPC from safetensors (``SafetensorError``, no path), numpy's short write and a real EFBIG name
  the file, and leave no half-written state or corpus: ``test_a_full_disk_*``, ``test_a_full_cache_*``,
  ``test_a_real_short_write_*``.
Smaller: ``test_a_broken_pretrain_json_*``, ``test_fewshot_parameters_with_a_none_default_*``,
``test_an_empty_path_*``, ``test_the_collator_*``, ``test_pmi_public_functions_*``.

Bad inputs and faults designed here, beyond the issue's, each run by hand and the unclear ones
fixed (the message before a fix is given where one was made):

============================================  ================================================================  =======
input                                         message now (before the fix, where one was made)                  verdict
============================================  ================================================================  =======
**FASTA reader (genome.read_fasta and every reader built on it)**
a socket as the FASTA                         s.sock: is a socket; the FASTA file must be a regular file        clear
/dev/zero as the FASTA (never ends)           /dev/zero: is a character device, which may block or never end;   clear
                                              ...
/dev/null as the FASTA                        /dev/null: is a character device, ...                             clear
a folder as the FASTA                         <dir>: is a directory; the FASTA file must be a regular file      clear
fasta=None, fasta=5                           fasta=None: expected a path, got NoneType [was unclear: expected  clear
                                              str, bytes or os.PathLike object]
a symbolic-link loop                          loop: cannot be read as a FASTA file (Too many levels of          clear
                                              symbolic links)
a dangling symbolic link                      dang: no such FASTA file                                          clear
gzip inside gzip                              x.fa.gz: gzip inside gzip (compressed twice); decompress it once  clear
                                              [was unclear: no FASTA header line]
NUL bytes in a sequence line                  nul.fa:2: not nucleotide FASTA (unexpected '\x00' in 'AC\x00GT';  clear
                                              ...)
a header that is only '>'                     read: a record named ''                                           OK
a Latin-1 byte in a header                    read: the name with U+FFFD in its place                           OK
iter_acgt_segments(fa, max_segment=0)         max_segment=0: expected an integer >= 1                           clear
sample_windows(fa, 2, 10_000), short runs     g.fa: no A/C/G/T run of 10000 nt or more                          clear
**PMI (genemask.pmi)**
count_ngrams(fa, max_n=13)                    max_n=13: expected 1..12 (4**max_n cells per table)               clear
count_ngrams(fa, 3, workers=1.5)              workers=1.5: expected an integer >= 0 or None                     clear
count_ngrams([], 3)                           fasta=[]: no FASTA file given [was silent: all-zero counts]       clear
count_ngrams_in_sequences([5], 3)             seqs[0]: expected a DNA string or bytes, got int [was silent:     clear
                                              bytes(5), five NUL bytes]
count_ngrams_in_sequences('ACGT', 3)          seqs: ... got a single sequence (wrap it in a list)               clear
counts.of('3')                                n='3': expected an integer >= 1                                   clear
pmi_table(counts, {'max_n': 6})               cfg: expected PMIConfig, got dict {'max_n': 6}                    clear
kmer_ranking(table, 7, 1)                     k=7: expected one of the tokenizer's k-mer sizes (3, 4, 5, 6)     clear
load_rank_table('')                           rank_table='': an empty path; give a file [was unclear: .: is a   clear
                                              directory]
NgramCounts.load(<a folder>)                  <dir>: is a directory; the n-gram counts file must be a regular   clear
                                              file
pmi.run(cfg, <a file>)                        out_dir='g.fa': is a file, not a folder [was unclear: [Errno 17]  clear
                                              g.fa/ngrams.parquet: could not write (File exists)]
pmi.run(cfg, None)                            out_dir: expected str or PathLike, got NoneType None              clear
**Collator (masking.make_collator, DataCollatorForSpanMasking)**
ids as strings [['5', 'x']]                   input_ids: expected integer token ids (could not convert string   clear
                                              to float: 'x')
a NaN id                                      input_ids: expected integer token ids, got nan                    clear
a boolean tensor as ids                       input_ids: expected integer token ids, got bool                   clear
a dict example beside a bare list             examples[1]: expected a mapping with 'input_ids' like             clear
                                              examples[0]
an empty example, None as an example          examples[1]: expected a non-empty sequence of token ids, got []   clear
a batch mapping without input_ids             examples: a batch mapping needs 'input_ids' (keys: ['ids'])       clear
a string as the batch                         examples: expected a list of examples, a batch mapping or a       clear
                                              tensor, got str
load_state_dict({'strategy': 'genemask'})     state_dict: missing 'step', ... (not a collator's state_dict)     clear
                                              [was crash: KeyError: 'step']
observe_validation_perplexity(nan)            perplexity=nan: expected a finite number (a diverged loss gives   clear
                                              nan or inf) [was silent: kept; cmgems could then never switch]
observe_validation_perplexity('x')            perplexity='x': expected a finite number ... [was unclear: could  clear
                                              not convert string to float]
set_step('x'), set_step(-1)                   step='x': expected an optimizer step, an integer >= 0 [was        clear
                                              unclear: invalid literal for int()]
ids 9999 or -1; 3-D ids; centres of another   input_ids: ids must lie in [0, 4101) ...; ... shape (2, 3)        clear
shape                                         differs ...
**Pretraining CLI (python -m genemask.pretrain)**
--out_dir ''                                  out_dir='' is an empty path (None: the default folder) [was       clear
                                              silent: trained into the default folder, exit 0]
--device cuda:0 without a GPU                 device='cuda:0': no CUDA device on this machine (use auto or      clear
                                              cpu) [was crash: AttributeError ... _cuda_setDevice]
--rank_table <a FIFO>, <a folder>             f: is a FIFO (named pipe), which would block reading forever;     clear
                                              the rank table file must be a regular file [was unclear: no such
                                              file]
--masking_options '{"random_probability":     masking: the first 8 batches masked no token (masked fraction     clear
1e-12}'                                       0), ...
--masking_options null, '[1]'                 masking_options=None must be a mapping                            clear
--masking_options '{"centre_probability":     centre_probability='0.1' must be a probability in [0, 1]          clear
"0.1"}'
--masking_options '{"selection": 5}'          selection=5 is not one of 'v1', 'v2', 'v3' (out_dir not created)  clear
                                              [was late: after out_dir was claimed and the corpus built]
--out_dir <a file>                            out_dir='g.fa' is not writable (File exists)                      OK
--batch_size 100000 on a small FASTA          fasta: the corpus has 23 training chunks, fewer than one batch    clear
                                              ...
--keep_steps 5 5; --lr nan; --warmup -1       keep_steps=[5, 5] must be distinct increasing steps ...; lr=nan   clear
                                              must be a finite number; ...
**Few-shot / GUE (finetune.run_fewshot, run_gue, checkpoint_info, load_classifier)**
a checkpoint whose config.json is a FIFO      config.json: is a FIFO (named pipe), ...; the checkpoint JSON     clear
                                              file must be a regular file [was silent: blocked forever]
checkpoint='', checkpoint=None                checkpoint='': expected a Hugging Face checkpoint folder or       clear
                                              random:<size> [was unclear: checkpoint='.': no config.json / raw
                                              TypeError]
config.json holding a JSON list               config.json: expected a JSON object, got list                     clear
shots=[10.0]; shots='10'                      shots=10.0: expected a positive integer (examples per class)      clear
small={'lr': 1}                               few-shot regime: unknown key(s) ['lr']; allowed batch_size,       clear
                                              learning_rate, epochs, max_steps
validation=10**6                              no few-shot run is possible: ... fewer than validation=1000000    clear
                                              spare rows per class ...
run_gue(..., max_eval='10')                   max_eval='10': expected an integer >= 1 or None                   clear
run_gue(..., missing_train=5)                 missing_train=5: expected str or None                             clear
run_gue(..., protocol='probe', max_train=1)   max_train=1: expected a number of training rows (at least 2)      clear
**Faults**
bit rot in a resume state's optimizer file    warning: step-00000004/optimizer.safetensors: damaged resume      clear
                                              state (checksum mismatch ...); resumes from step 2 [was silent:
                                              loaded]
EROFS while the PMI tables are written        out/ngrams.parquet: could not write (Read-only file system); no   clear
                                              temporary file left
a damaged checksums.json                      checksums.json: damaged checksum record (JSONDecodeError: ...)    clear
RLIMIT_FSIZE while a corpus is cached         <cache>/corpus/<key>/train_ids.npy: could not write (...); no     clear
(EFBIG)                                       partial corpus left [was unclear: N requested and M written]
safetensors' full disk at the final           .checkpoint.tmp/model.safetensors: could not write (No space      clear
checkpoint                                    left on device); nothing left [was crash: uncaught
                                              SafetensorError]
============================================  ================================================================  =======

61 rows; now: clear 58, OK 3; fixed here: 9 were unclear, 6 were silent, 3 were crash, 1 was late (a hang counted silent).

What a user-given path or string can reach (the compute side):
* FASTA reader: a path is stat-ed, then opened read-only only when it is a regular file (a link to
  one is followed); it is never written, executed or passed to a shell. Its bytes are only decoded
  as text (gzip at most once); a record name is only echoed in messages.
* PMI: FASTA paths as above; ``out_dir`` receives three files written atomically (temporary file +
  ``os.replace``) and nothing else; rank-table and counts paths are read only (``allow_pickle=False``).
* Collator: takes tensors and id lists only; a rank-table path goes to the PMI reader above.
* Pretraining CLI: ``--fasta`` and ``--rank_table`` are read as above; ``--out_dir`` is the only place
  written (claimed and locked first, see ``pretrain``); the cache gets corpora in new folders that
  appear by one rename. JSON options are parsed with ``json.loads`` and checked field by field.
* Few-shot / GUE: a checkpoint path is read (JSON files, weights verified against their checksums
  and loaded with safetensors); dataset names resolve only through the registry to files under
  ``$GENEMASK_DATA`` or the demo cache; nothing is written by these library entry points.
"""
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
from helpers import random_pretraining_inputs

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
    made = random_pretraining_inputs(root)
    previous = os.environ.get("GENEMASK_CACHE")
    os.environ["GENEMASK_CACHE"] = str(root / "cache")
    yield made
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
    ("random", {"centre_probability": 0}, "centre_probability=0"),
    ("genemask", {"centre_probability": 0.0}, "centre_probability=0"),
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


@pytest.mark.parametrize("options, named", [
    ({"mlm_probability": 1}, "mlm_probability=1 must lie strictly between 0 and 1"),
    ({"mlm_probability": "0.15"}, "mlm_probability='0.15' must lie strictly between 0 and 1"),
    ({"mlm_probability": 0.15, "centre_probability": 0.02}, "mlm_probability and centre_probability both set"),
])
def test_a_bad_masked_fraction_is_refused_before_anything_is_written(inputs, tmp_path, options, named):
    with pytest.raises(ValueError, match="^masking_options: ") as err:
        config(inputs, tmp_path / "run", masking_options=options)
    one_line_naming(err, named)
    assert not (tmp_path / "run").exists()


def test_a_masked_fraction_is_calibrated_on_the_training_chunks_and_recorded(inputs, tmp_path):
    """Issue 22: ``mlm_probability`` is Hugging Face's masked fraction. The run converts it on a fixed
    sample of its own training chunks, masks as the same run given that centre probability does
    (bit for bit), and records the centre probability: pretrain.json, the model card and the run's
    identity are by it."""
    from genemask.identity import RunIdentity

    asked = pretrain.run(config(inputs, tmp_path / "asked", masking_options={"mlm_probability": 0.2}))
    saved = json.loads((asked.checkpoint / "pretrain.json").read_text())
    centre = saved["masking_options"]["centre_probability"]
    assert "mlm_probability" not in saved["masking_options"] and saved["config"]["masking_options"] == {"mlm_probability": 0.2}
    assert saved["calibration"]["mlm_probability"] == 0.2 and saved["calibration"]["options"] == {"centre_probability": centre}
    assert 0.025 < centre < 0.2  # a centre probability: 6-token spans
    assert abs(asked.metrics["masked_fraction"].mean() - 0.2) < 0.03
    given = pretrain.run(config(inputs, tmp_path / "given", masking_options={"centre_probability": centre}))
    assert asked.metrics[["loss", "masked_fraction"]].equals(given.metrics[["loss", "masked_fraction"]])
    identity = finetune.checkpoint_info(asked.checkpoint)["identity"]
    assert identity == RunIdentity.from_config(json.loads((given.checkpoint / "pretrain.json").read_text())["config"])
    assert identity.label() == f"random[p={centre}]@6:tiny"
    assert "calibrated to centre_probability" in pretrain.model_card(asked.checkpoint)


def test_a_checkpoint_made_before_the_rename_keeps_its_name(inputs, tmp_path):
    """A pretrain.json written before issue 22 spells the centre probability mlm_probability and has
    no calibration record: fine-tuning names the checkpoint as it did (p=0.05)."""
    run = pretrain.run(config(inputs, tmp_path / "old", steps=2, eval_steps=0, masking_options={"centre_probability": 0.05}))
    meta = run.checkpoint / "pretrain.json"
    saved = json.loads(meta.read_text())
    for part in (saved, saved["config"]):
        part["masking_options"] = {"mlm_probability": 0.05}
    meta.write_text(json.dumps(saved))
    assert finetune.checkpoint_info(run.checkpoint)["name"] == "random[p=0.05]@2:tiny"


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


def test_a_bad_masking_option_is_refused_before_the_out_dir_is_claimed(inputs, tmp_path):
    """The notebook's ``masking_options = {}``: its values were checked only after the corpus was built."""
    with pytest.raises(ValueError) as err:
        pretrain.run(config(inputs, tmp_path / "run", masking_options={"selection": 5}))
    one_line_naming(err, "selection=5")
    assert not (tmp_path / "run").exists()


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
        one_line_naming(err, fifo, "the FASTA file must be a regular file")


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


def test_a_read_only_folder_names_the_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    """EROFS while the PMI tables are written: the target is named, its temporary file removed."""
    def read_only(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    counts = pmi.count_ngrams_in_sequences(["ACGTACGGTACCA" * 40], 4)
    monkeypatch.setattr(io, "fsync_path", read_only)
    with pytest.raises(io.WriteError, match=r"ngrams\.parquet: could not write \(Read-only file system\)") as err:
        pmi.run(pmi.PMIConfig(max_n=4, k=4, min_count=1), tmp_path / "out", counts=counts)
    one_line_naming(err, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


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
