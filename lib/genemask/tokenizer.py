"""Overlapping k-mer tokenizer with DNABERT's vocabulary, as a Hugging Face fast tokenizer.

The vocabulary is ``[PAD] [UNK] [CLS] [SEP] [MASK]`` followed by ``itertools.product('ATCG', repeat=k)``:
DNABERT's order (not ACGT), so token ids match DNABERT checkpoints and the released GeneMask code,
whose position-lookup bug depends on exactly this order.

``tokenizers`` has no serializable pre-tokenizer that emits *overlapping* k-mers, so the k-mers are
made here (:func:`kmerize`) and the saved tokenizer is a plain WordLevel + WhitespaceSplit model
that any ``AutoTokenizer`` loads. The k-mer step is vectorised with numpy so that batch encoding
stays above 10 Mbases/s.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
N_SPECIAL = len(SPECIAL_TOKENS)
VOCAB_ORDER = "ATCG"  # DNABERT's itertools.product order
SUPPORTED_K = (3, 4, 5, 6)

_KMER_TEXT = re.compile(r"^\s*\S+(\s+\S+)+\s*$")


def _check_k(k: int) -> None:
    if k not in SUPPORTED_K:
        raise ValueError(f"k={k!r}: the k-mer tokenizer supports k in {SUPPORTED_K}")


@lru_cache(maxsize=None)
def vocab_kmers(k: int = 6) -> list[str]:
    """The 4**k k-mers in DNABERT vocabulary order; token id = index + 5."""
    _check_k(k)
    return ["".join(p) for p in itertools.product(VOCAB_ORDER, repeat=k)]


@lru_cache(maxsize=None)
def vocab(k: int = 6) -> dict[str, int]:
    """Token → id for the whole vocabulary (specials first)."""
    return {t: i for i, t in enumerate(list(SPECIAL_TOKENS) + vocab_kmers(k))}


def vocab_size(k: int = 6) -> int:
    return N_SPECIAL + 4**k


# Byte → digit in DNABERT order (A=0, T=1, C=2, G=3); 4 marks anything that is not ACGT.
_DIGIT = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(VOCAB_ORDER):
    _DIGIT[ord(_b)] = _i
    _DIGIT[ord(_b.lower())] = _i


def _as_dna(seq: str, k: int) -> str:
    """Accept raw DNA or space-separated overlapping k-mer text; return raw uppercase DNA."""
    if not isinstance(seq, str):
        raise TypeError(f"expected a DNA string, got {type(seq).__name__}")
    if " " in seq.strip() and _KMER_TEXT.match(seq):
        seq = kmers_to_seq(seq)
    seq = seq.strip().upper()
    if len(seq) < k:
        shown = seq if len(seq) <= 20 else seq[:20] + "…"
        raise ValueError(f"sequence {shown!r} has {len(seq)} nt, shorter than k={k}: no k-mer to tokenize")
    return seq


def kmerize(seq: str, k: int = 6) -> str:
    """Space-separated overlapping k-mers of ``seq`` (``len(seq) - k + 1`` of them, like DNABERT-2 and
    GeneMask's ``seq2kmer``; DNABERT's pretraining script drops the last one, which we do not copy)."""
    seq = _as_dna(seq, k)
    return " ".join(seq[i : i + k] for i in range(len(seq) - k + 1))


def kmers_to_seq(text: str) -> str:
    """Raw DNA from space-separated overlapping k-mers: the first k-mer plus the last letter of each
    following one (GeneMask's ``kmer2seq``). Checks that neighbours really overlap."""
    kmers = text.split()
    if not kmers:
        raise ValueError("empty k-mer text")
    k = len(kmers[0])
    for i, (a, b) in enumerate(itertools.pairwise(kmers)):
        if len(b) != k or a[1:] != b[:-1]:
            raise ValueError(f"k-mer text is not overlapping {k}-mers at token {i + 1}: {a!r} then {b!r}")
    return kmers[0] + "".join(m[-1] for m in kmers[1:])


def encode_ids(seq: str, k: int = 6, add_special_tokens: bool = True) -> np.ndarray:
    """Token ids of one sequence (no truncation). A k-mer with any non-ACGT letter becomes [UNK],
    exactly as the WordLevel tokenizer maps it."""
    ids = encode_batch([seq], k, max_length=None)[0]
    return ids if add_special_tokens else ids[1:-1]


def encode_batch(seqs: Sequence[str], k: int = 6, max_length: int | None = 512) -> list[np.ndarray]:
    """Token ids (with [CLS]/[SEP]) for many sequences in one vectorised pass over their
    concatenation; sequences longer than ``max_length`` tokens are truncated at the right, keeping
    [SEP], as ``tokenizer(..., truncation=True)`` would."""
    dna = [_as_dna(s, k) for s in seqs]
    if not dna:
        return []
    lengths = np.fromiter((len(s) for s in dna), dtype=np.int64, count=len(dna))
    digits = _DIGIT[np.frombuffer("".join(dna).encode("ascii", "replace"), dtype=np.uint8)].astype(np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(digits, k)
    codes = windows @ (4 ** np.arange(k - 1, -1, -1, dtype=np.int64)) + N_SPECIAL
    codes[(windows == 4).any(axis=1)] = UNK_ID
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    n_tokens = lengths - k + 1
    if max_length is not None:
        n_tokens = np.minimum(n_tokens, max_length - 2)
    out = []
    for start, n in zip(starts.tolist(), n_tokens.tolist()):
        ids = np.empty(n + 2, dtype=np.int64)
        ids[0], ids[-1] = CLS_ID, SEP_ID
        ids[1:-1] = codes[start : start + n]
        out.append(ids)
    return out


@lru_cache(maxsize=None)
def _portable_tokenizer_class() -> type:
    """transformers' fast tokenizer under the name ``PreTrainedTokenizerFast``.

    ``save_pretrained`` writes the class's name as ``tokenizer_class``; transformers 5 names its
    fast tokenizer ``TokenizersBackend``, which 4.x (DNABERT-2's scripts pin 4.29) cannot load,
    while both load ``PreTrainedTokenizerFast`` (an alias of ``TokenizersBackend`` in 5.x)."""
    from transformers import PreTrainedTokenizerFast as fast_base

    return type("PreTrainedTokenizerFast", (fast_base,), {"__module__": __name__, "__doc__": _portable_tokenizer_class.__doc__})


def __getattr__(name: str):
    # Pickling (e.g. into DataLoader workers) finds the class here without importing transformers
    # whenever this module is imported.
    if name == "PreTrainedTokenizerFast":
        return _portable_tokenizer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_tokenizer(k: int = 6, model_max_length: int = 512):
    """A ``PreTrainedTokenizerFast`` over space-separated k-mer text (use :func:`kmerize` on raw DNA).

    Saves and loads with ``AutoTokenizer`` of transformers 4.x and 5.x (the saved
    ``tokenizer_class`` is ``PreTrainedTokenizerFast``); ``tokenizer.init_kwargs['kmer']`` records k.
    Raw DNA given to it is one word, one ``[UNK]``: the masking collator refuses such batches.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    PreTrainedTokenizerFast = _portable_tokenizer_class()  # noqa: N806 (a class)
    _check_k(k)
    tok = Tokenizer(models.WordLevel(vocab=vocab(k), unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
        kmer=k,
    )
    return fast


def tokenizer_k(tokenizer) -> int:
    """k of a k-mer tokenizer (from its vocabulary size, DNABERT's rule 4**k + 5)."""
    size = len(tokenizer)
    for k in SUPPORTED_K:
        if size == vocab_size(k):
            return k
    raise ValueError(f"tokenizer has {size} tokens, not 4**k + 5 for any k in {SUPPORTED_K}")
