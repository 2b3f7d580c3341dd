import itertools
import json
import os
import pickle
import random
import subprocess
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from genemask import tokenizer as tk
from helpers import real_data


def test_vocabulary_is_dnabert_order():
    vocab = tk.vocab(6)
    assert len(vocab) == 4101
    assert list(vocab)[:7] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "AAAAAA", "AAAAAT"]
    assert tk.vocab_kmers(3) == ["".join(p) for p in itertools.product("ATCG", repeat=3)]


def test_vocabulary_equals_dnabert_vocab_txt():
    path = real_data("dnabert/src/transformers/dnabert-config/bert-config-6/vocab.txt")
    assert path.read_text().split("\n")[:4101] == list(tk.vocab(6))


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_fast_tokenizer_round_trip(tmp_path, k):
    tok = tk.build_tokenizer(k)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == 4**k + 5 and tk.tokenizer_k(loaded) == k
    seq = "ACGTTGCAACGTAGGCTAA"
    ids = loaded(tk.kmerize(seq, k))["input_ids"]
    assert ids == tk.encode_ids(seq, k).tolist()
    assert ids[0] == tk.CLS_ID and ids[-1] == tk.SEP_ID and len(ids) == len(seq) - k + 3
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_tokenizer_pickles_for_dataloader_workers():
    tok = tk.build_tokenizer(6)
    again = pickle.loads(pickle.dumps(tok))
    text = tk.kmerize("ACGTTGCAACGTAGGCTAA")
    assert type(again).__name__ == "PreTrainedTokenizerFast" and again(text)["input_ids"] == tok(text)["input_ids"]


#: A Python with transformers 4.x and tokenizers (no torch needed), e.g. made by
#: ``python3 -m venv /tmp/tf4 && /tmp/tf4/bin/pip install "transformers==4.46.*" tokenizers``.
TRANSFORMERS_4_PYTHON = Path(os.environ.get("GENEMASK_TRANSFORMERS4_PYTHON", "/tmp/tf4/bin/python"))


@pytest.mark.skipif(not TRANSFORMERS_4_PYTHON.exists(), reason=f"no transformers 4.x Python at {TRANSFORMERS_4_PYTHON}")
def test_saved_tokenizer_loads_in_transformers_4(tmp_path):
    """DNABERT-2's scripts pin transformers 4.29: a tokenizer saved here (5.x) loads there and
    tokenizes identically, [UNK] k-mers and truncation included."""
    tok = tk.build_tokenizer(6)
    tok.save_pretrained(tmp_path / "tokenizer")
    rng = random.Random(0)
    texts = [tk.kmerize("".join(rng.choice("ACGTN") for _ in range(rng.randint(20, 700)))) for _ in range(40)]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = (
        "import json, sys, transformers\n"
        "from transformers import AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "texts = json.load(open(sys.argv[2]))\n"
        "print(json.dumps({'version': transformers.__version__, 'class': type(tok).__name__,"
        " 'ids': tok(texts, truncation=True)['input_ids']}))\n"
    )
    run = subprocess.run([str(TRANSFORMERS_4_PYTHON), "-c", script, str(tmp_path / "tokenizer"), str(tmp_path / "texts.json")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    there = json.loads(run.stdout.strip().splitlines()[-1])
    assert there["version"].startswith("4.")
    assert there["class"] == "PreTrainedTokenizerFast"
    assert there["ids"] == tok(texts, truncation=True)["input_ids"]


def test_kmerize_and_back():
    assert tk.kmerize("acgtacgt", 6) == "ACGTAC CGTACG GTACGT"
    assert tk.kmers_to_seq("ACGTAC CGTACG GTACGT") == "ACGTACGT"
    # k-mer text (the few-shot files' format) is accepted as input too
    assert tk.kmerize("ACGTAC CGTACG GTACGT", 6) == "ACGTAC CGTACG GTACGT"


def test_non_acgt_kmer_is_unk_and_lowercase_is_upper():
    ids = tk.encode_ids("ACGTNACGTAC", 6, add_special_tokens=False)
    assert (ids[:5] == tk.UNK_ID).all() and ids[5] == tk.vocab(6)["ACGTAC"]
    tok = tk.build_tokenizer()
    assert tok(tk.kmerize("acgtnacgtac"))["input_ids"][1:-1] == ids.tolist()


def test_short_sequence_is_a_clear_error():
    with pytest.raises(ValueError, match="shorter than k=6"):
        tk.kmerize("ACGT")
    with pytest.raises(ValueError, match="not overlapping"):
        tk.kmers_to_seq("ACGTAC TTTTTT")


def test_batch_truncation_keeps_sep():
    ids = tk.encode_batch(["A" * 600], max_length=512)[0]
    assert len(ids) == 512 and ids[-1] == tk.SEP_ID and ids[0] == tk.CLS_ID
