"""Nucleotide n-gram counts, PMI variants, the NPMI discount and the k-mer rank table (01_pmi).

GeneMask ranks the tokenizer's 6-mers by a discounted ("normalized") PMI computed from genome
n-gram counts, and its masking collator masks around the best-ranked k-mer. This module owns that
whole chain, one function per step:

* :func:`count_ngrams` — every n-gram, n = 1..max_n, over windows of A/C/G/T only, as dense
  numpy arrays of 4**n counts. It streams: memory depends on ``max_n``, not on the genome.
* :func:`log_probabilities` — ``ln p(w)`` with the proper per-length normaliser ``Z_n`` or the
  released code's common ``2·N1`` (``reference/papers.md`` §1.3).
* :func:`pmi_naive`, :func:`pmi_segmentation`, :func:`pmi_released_true`,
  :func:`pmi_released_dp` — the four PMI definitions, each vectorised over all 4**n n-grams.
* :func:`discount` — the NPMI factor ``ln c / (ln c + ln m)``.
* :func:`pmi_table`, :func:`kmer_ranking`, :func:`run` — the tables notebook 01 writes;
  :func:`load_rank_table` — the rank-per-token-id array the masking collator reads.
* :func:`load_authors_ranking`, :func:`implied_counts_from_authors` — GeneMask's released ranking
  (Data-A) and the counts it implies, for the compatibility check.

n-gram codes use 2 bits per base in **ACGT** order (A=0, C=1, G=2, T=3), first base most
significant, so ``counts[n-1][code]`` is the count of the n-gram with that code. The tokenizer's
vocabulary uses DNABERT's **ATCG** order; the conversion happens in exactly one place,
:func:`_vocab_codes`. All logarithms are natural.
"""
from __future__ import annotations

import itertools
import math
import multiprocessing as mp
import os
import queue
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .genome import Segment, as_user_path, check_integer, encode_2bit, iter_acgt_segments, require_regular_file
from .io import write_json, write_with
from .paths import data_dir
from .tokenizer import N_SPECIAL, SUPPORTED_K, vocab_kmers

PMI_VARIANTS = ("segmentation", "naive", "released_true", "released_dp")
NORMALIZERS = ("per_length", "released")
MAX_N_LIMIT = 12  # 4**12 cells x 8 bytes = 128 MiB per table; codes still fit in uint32
AUTHORS_RANKING = "genemask/Data-A_norm-pmi-score-ranking.csv"
ALPHABET = "ACGT"  # counting order; the tokenizer's vocabulary order is "ATCG"

FastaPaths = str | os.PathLike | Sequence[str | os.PathLike]


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass
class PMIConfig:
    """Parameters of one PMI run (notebook 01_pmi); validated on construction.

    ``pmi`` picks the definition used for the ``pmi``/``npmi`` columns and the rank table
    (all four are always computed as extra columns); ``normalizer`` picks ``Z_n`` per length
    (the correct one) or the released code's common ``2·N1``.
    """

    fasta: FastaPaths | None = None
    max_n: int = 10
    min_count: int = 101
    k: int = 6
    pmi: str = "segmentation"
    normalizer: str = "per_length"

    def __post_init__(self) -> None:
        for name in ("max_n", "min_count", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"PMIConfig: {name} must be an integer, got {value!r}")
        if self.min_count < 1:
            raise ValueError(f"PMIConfig: min_count must be >= 1, got {self.min_count}")
        if not 1 <= self.max_n <= MAX_N_LIMIT:
            raise ValueError(f"PMIConfig: max_n must be in 1..{MAX_N_LIMIT}, got {self.max_n}")
        if self.k not in SUPPORTED_K:
            raise ValueError(f"PMIConfig: k must be one of the tokenizer's k-mer sizes {SUPPORTED_K}, got {self.k}")
        if self.k > self.max_n:
            raise ValueError(f"PMIConfig: k ({self.k}) must not exceed max_n ({self.max_n})")
        if self.pmi not in PMI_VARIANTS:
            raise ValueError(f"PMIConfig: pmi must be one of {PMI_VARIANTS}, got {self.pmi!r}")
        if self.normalizer not in NORMALIZERS:
            raise ValueError(f"PMIConfig: normalizer must be one of {NORMALIZERS}, got {self.normalizer!r}")
        if self.fasta is not None:
            _as_path_list(self.fasta)  # a path or a non-empty list of paths, else an error naming fasta

    @property
    def fasta_paths(self) -> list[Path]:
        return [] if self.fasta is None else _as_path_list(self.fasta)

    def to_dict(self) -> dict:
        """JSON-ready parameters (paths as strings)."""
        params = asdict(self)
        params["fasta"] = [str(p) for p in self.fasta_paths]
        return params


def _check_types(**arguments: tuple) -> None:
    """``name=(value, type or types)`` for each argument of a public function; a wrong type is one
    line naming the argument, instead of an AttributeError deep inside pandas or numpy."""
    for name, (value, types) in arguments.items():
        if not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r:.60}")


def _as_path_list(fasta: FastaPaths) -> list[Path]:
    """One path or a sequence of paths, as Paths; anything else (or an empty path) is refused naming ``fasta``."""
    items = [fasta] if isinstance(fasta, (str, os.PathLike)) else fasta
    if not isinstance(items, (list, tuple)) or not all(isinstance(p, (str, os.PathLike)) for p in items):
        raise TypeError(f"fasta={fasta!r}: expected a FASTA path or a list of paths")
    if not items:
        raise ValueError("fasta=[]: no FASTA file given")
    return [as_user_path(p, "fasta") for p in items]


# --------------------------------------------------------------------------------------------
# Counts


@dataclass
class NgramCounts:
    """Dense n-gram counts: ``counts[n-1]`` has 4**n cells indexed by the ACGT 2-bit code.

    Counts are integers when they come from a genome; :func:`implied_counts_from_authors` makes
    float counts, which every PMI function accepts too.
    """

    counts: list[np.ndarray]
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for n, table in enumerate(self.counts, start=1):
            if table.shape != (4**n,):
                raise ValueError(f"NgramCounts: counts for n={n} must have shape ({4**n},), got {table.shape}")

    @property
    def max_n(self) -> int:
        return len(self.counts)

    def of(self, n: int) -> np.ndarray:
        """The 4**n counts of n-grams (a view, do not modify)."""
        check_integer("n", n)
        if not 1 <= n <= self.max_n:
            raise ValueError(f"n must be in 1..{self.max_n}, got {n}")
        return self.counts[n - 1]

    def total(self, n: int) -> int | float:
        """Z_n: the number of valid n-windows (A/C/G/T only, inside one run)."""
        total = self.of(n).sum()
        return int(total) if np.issubdtype(total.dtype, np.integer) else float(total)

    def count(self, ngram: str) -> int | float:
        """Count of one n-gram, e.g. ``counts.count("TATA")``."""
        return self.of(len(ngram))[encode_ngram(ngram)].item()

    def save(self, path: str | Path) -> Path:
        """Atomic ``.npz`` (no pickle): counting a genome is the slow step, so notebooks cache it."""
        arrays = {f"n{n}": table for n, table in enumerate(self.counts, start=1)}
        arrays["sources"] = np.array(self.sources, dtype=str)

        def writer(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        return write_with(path, writer)

    @classmethod
    def load(cls, path: str | Path) -> NgramCounts:
        """Counts written by :meth:`save`; any other or damaged file fails naming it."""
        import zipfile

        path = Path(path)
        require_regular_file(path, "n-gram counts file")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such n-gram counts file")
        try:
            with np.load(path, allow_pickle=False) as data:
                n_max = sum(1 for key in data.files if key.startswith("n"))
                counts = [data[f"n{n}"] for n in range(1, n_max + 1)]
                sources = tuple(str(s) for s in data["sources"])
            return cls(counts, sources)
        except (ValueError, KeyError, AttributeError, OSError, EOFError, zipfile.BadZipFile) as err:
            detail = " ".join(str(err).split())
            raise ValueError(f"{path}: not an n-gram counts file written by NgramCounts.save ({detail})") from None


def encode_ngram(ngram: str) -> int:
    """ACGT 2-bit code of an n-gram (first base most significant)."""
    code = 0
    for base in ngram.upper():
        digit = ALPHABET.find(base)
        if digit < 0:
            raise ValueError(f"encode_ngram: {ngram!r} has a letter other than A/C/G/T")
        code = code * 4 + digit
    return code


def decode_ngrams(codes: np.ndarray, n: int) -> np.ndarray:
    """Strings of the n-grams with the given ACGT codes (vectorised)."""
    codes = np.asarray(codes, dtype=np.int64)
    shifts = 2 * np.arange(n - 1, -1, -1, dtype=np.int64)
    digits = (codes[:, None] >> shifts) & 3
    letters = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)[digits]
    return np.ascontiguousarray(letters).view(f"S{n}").ravel().astype(str)


# Bases per batch handed to one counting step; windows are counted in blocks of _COUNT_BLOCK
# (one bincount each) whose codes are built in cache-sized sub-chunks.
BATCH_BASES = 1 << 22
_COUNT_BLOCK = 1 << 22
_SUB_CHUNK = 1 << 20


def _code_dtype(width: int) -> type[np.unsignedinteger]:
    """Smallest unsigned dtype holding the 2-bit codes of ``width`` bases."""
    return np.uint8 if width <= 4 else np.uint16 if width <= 8 else np.uint32 if width <= 16 else np.uint64


def _window_codes(x: np.ndarray, n: int, out: np.ndarray) -> None:
    """Write the codes of the first ``len(out)`` n-windows of 2-bit digits ``x`` into ``out``.

    Built by doubling: codes of 2-, 4-, 8-windows, each the previous one shifted and OR-ed with
    itself, then combined by n's binary digits. That is about log2(n) array passes instead of n,
    and the intermediate codes live in the smallest dtype (uint8 up to 4 bases), which is what
    makes it fast: memory traffic, not arithmetic, is the cost.
    """
    by_width = {1: x}
    width = 1
    while 2 * width <= n:
        prev = by_width[width]
        nxt = prev[: len(prev) - width].astype(_code_dtype(2 * width))
        nxt <<= 2 * width
        nxt |= prev[width:]
        by_width[2 * width] = nxt
        width *= 2
    m, have = len(out), 0
    for width in sorted(by_width, reverse=True):
        if have + width > n:
            continue
        if have == 0:
            out[:] = by_width[width][:m]
        else:
            out <<= 2 * width
            out |= by_width[width][have : have + m]
        have += width


class _Tally:
    """Accumulates max_n-window counts and run-end n-grams; lower orders are derived at the end.

    Every n-window (n < max_n) inside a run either extends to an (n+1)-window or ends the run, so
    ``c_n(u) = sum_x c_{n+1}(u x) + #runs ending in u``: counting the max_n-windows plus the last
    max_n - 1 bases of each run is enough for all orders.
    """

    def __init__(self, max_n: int) -> None:
        self.max_n = max_n
        # Last cell collects the windows that leave their piece (voided below).
        self.windows = np.zeros(4**max_n + 1, dtype=np.int64)
        self.run_ends = [np.zeros(4**n, dtype=np.int64) for n in range(1, max_n)]
        # One bincount per block; for large max_n make blocks at least as long as the table.
        self._block = max(_COUNT_BLOCK, 4**max_n)
        self._codes: np.ndarray | None = None  # allocated on first use (not in a feeding parent)

    def add(self, buf: bytes, ends: np.ndarray, ends_run: np.ndarray) -> None:
        """Count one batch: ``buf`` holds pieces of A/C/G/T runs back to back, piece i ending at
        ``ends[i]``; ``ends_run[i]`` says whether the run really ends there (else the next batch
        carries on with its last max_n - 1 bases)."""
        n, keep = self.max_n, self.max_n - 1
        if not buf:
            return
        digits = encode_2bit(buf)
        size = len(digits)
        ends = np.asarray(ends, dtype=np.int64)
        tails = np.minimum(np.diff(ends, prepend=0), keep)

        # Windows starting in the last `tails` positions of a piece leave it: they go to the void
        # cell. Windows running past the buffer's end leave the last piece, so they are not built.
        voided = np.repeat(ends - tails, tails) + (
            np.arange(tails.sum(), dtype=np.int64) - np.repeat(np.cumsum(tails) - tails, tails)
        )
        n_windows = size - n + 1
        if self._codes is None:
            self._codes = np.empty(self._block, dtype=np.intp)
        for block_start in range(0, max(n_windows, 0), self._block):
            block_stop = min(block_start + self._block, n_windows)
            # bincount wants intp: filling a reused intp buffer beats letting it cast a fresh copy.
            codes = self._codes[: block_stop - block_start]
            for start in range(block_start, block_stop, _SUB_CHUNK):
                stop = min(start + _SUB_CHUNK, block_stop)
                _window_codes(digits[start : stop + keep], n, codes[start - block_start : stop - block_start])
            lo, hi = np.searchsorted(voided, [block_start, block_stop])
            codes[voided[lo:hi] - block_start] = 4**n
            self.windows += np.bincount(codes, minlength=4**n + 1)

        # Run ends: the last min(length, max_n - 1) bases of each finished run.
        finished = np.asarray(ends_run, dtype=bool) & (tails > 0)
        if keep and finished.any():
            t = tails[finished]
            first = ends[finished] - t
            # Positions past the buffer are clipped; their digits are shifted out below.
            window = digits[np.minimum(first[:, None] + np.arange(keep), size - 1)].astype(np.int64)
            tail_codes = (window << (2 * np.arange(keep - 1, -1, -1))).sum(axis=1) >> (2 * (keep - t))
            for m in range(1, keep + 1):
                has_m = t >= m
                self.run_ends[m - 1] += np.bincount(tail_codes[has_m] & (4**m - 1), minlength=4**m)

    def merge(self, windows: np.ndarray, run_ends: list[np.ndarray]) -> None:
        self.windows += windows
        for mine, theirs in zip(self.run_ends, run_ends):
            mine += theirs

    def to_counts(self, sources: tuple[str, ...] = ()) -> NgramCounts:
        n = self.max_n
        counts: list[np.ndarray] = [np.empty(0)] * n
        counts[n - 1] = self.windows[:-1].copy()
        for m in range(n - 1, 0, -1):
            counts[m - 1] = counts[m].reshape(-1, 4).sum(axis=1) + self.run_ends[m - 1]
        return NgramCounts(counts, sources)


_Batch = tuple[bytes, np.ndarray, np.ndarray]


def _batches(segments: Iterable[Segment | tuple[bytes, bool]], max_n: int, batch_bases: int) -> Iterator[_Batch]:
    """Group segments into batches of about ``batch_bases``; a run cut by a batch border is carried
    on with its last max_n - 1 bases so that no window is lost or counted twice."""
    keep = max_n - 1
    parts: list[bytes] = []
    size = piece_start = 0
    ends: list[int] = []
    ends_run: list[bool] = []
    open_piece = False
    for seq, continues in segments:
        if seq:
            parts.append(seq)
            size += len(seq)
            open_piece = True
        if not continues and open_piece:
            ends.append(size)
            ends_run.append(True)
            open_piece, piece_start = False, size
        if size >= batch_bases:
            buf = b"".join(parts)
            carry = b""
            if open_piece:
                ends.append(size)
                ends_run.append(False)
                carry = buf[max(piece_start, size - keep) :]
            if ends:
                yield buf, np.array(ends, dtype=np.int64), np.array(ends_run, dtype=bool)
            parts = [carry] if carry else []
            size, piece_start = len(carry), 0
            ends, ends_run = [], []
    if open_piece:  # a stream that stops inside a run: the run ends there
        ends.append(size)
        ends_run.append(True)
    if ends:
        yield b"".join(parts), np.array(ends, dtype=np.int64), np.array(ends_run, dtype=bool)


def default_workers() -> int:
    """Counting processes beside the reading one: cores - 1 (at most 4), none on 1 core.

    The reader (this process) is the slower half, so on 2 cores one counter keeps up with it;
    a second counter only competes with the reader for the cores (measured on 50 Mbp)."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def count_segments(
    segments: Iterable[Segment | tuple[bytes, bool]],
    max_n: int = 10,
    *,
    workers: int | None = None,
    sources: tuple[str, ...] = (),
    batch_bases: int | None = None,
) -> NgramCounts:
    """Count n-grams, n = 1..max_n, in a stream of A/C/G/T runs (``(seq, continues)`` pieces as
    yielded by :func:`genemask.genome.iter_acgt_segments`).

    ``workers=0`` counts in this process; ``workers >= 1`` counts in that many child processes
    while this one reads, with a bounded queue so memory stays flat. Input that fits in one batch
    is always counted here (starting processes would cost more than it saves).
    """
    _check_max_n(max_n)
    check_integer("workers", workers, minimum=0, optional=True)
    check_integer("batch_bases", batch_bases, optional=True)
    workers = default_workers() if workers is None else workers
    batch_bases = batch_bases or BATCH_BASES
    batches = _batches(segments, max_n, batch_bases)
    tally = _Tally(max_n)
    head = list(itertools.islice(batches, 2))
    if workers <= 0 or len(head) < 2:
        for batch in itertools.chain(head, batches):
            tally.add(*batch)
    else:
        _count_in_workers(itertools.chain(head, batches), tally, workers)
    return tally.to_counts(sources)


def _check_max_n(max_n) -> None:
    """``max_n`` of the public counting functions: an integer in 1..MAX_N_LIMIT, named when not."""
    check_integer("max_n", max_n)
    if max_n > MAX_N_LIMIT:
        raise ValueError(f"max_n={max_n}: expected 1..{MAX_N_LIMIT} (4**max_n cells per table)")


def count_ngrams(fasta_paths: FastaPaths, max_n: int = 10, *, workers: int | None = None) -> NgramCounts:
    """Count every n-gram, n = 1..max_n, in one or more FASTA files (plain, gzip or bgzip).

    Windows contain only A/C/G/T (lowercase counts as uppercase); any other letter, a record
    boundary or a file boundary breaks them. Counts are strand-specific (no reverse complement).
    """
    paths = _as_path_list(fasta_paths)
    _check_max_n(max_n)
    check_integer("workers", workers, minimum=0, optional=True)

    def segments() -> Iterator[Segment]:
        for path in paths:
            yield from iter_acgt_segments(path)

    return count_segments(segments(), max_n, workers=workers, sources=tuple(str(p) for p in paths))


_RUN_SPLIT = re.compile(rb"[^ACGT]+")


def count_ngrams_in_sequences(seqs: Iterable[str | bytes], max_n: int = 10) -> NgramCounts:
    """Count n-grams in in-memory sequences (small inputs, examples, tests); same rules as files."""
    _check_max_n(max_n)
    if isinstance(seqs, (str, bytes)):
        raise TypeError("seqs: expected an iterable of sequences, got a single sequence (wrap it in a list)")

    def segments() -> Iterator[tuple[bytes, bool]]:
        for i, seq in enumerate(seqs):
            if not isinstance(seq, (str, bytes, bytearray)):  # bytes(5) would be five NUL bytes
                raise TypeError(f"seqs[{i}]: expected a DNA string or bytes, got {type(seq).__name__}")
            raw = seq.encode("ascii") if isinstance(seq, str) else bytes(seq)
            for run in _RUN_SPLIT.split(raw.upper()):
                if run:
                    yield run, False

    return count_segments(segments(), max_n, workers=0)


def _mp_context() -> mp.context.BaseContext:
    # fork starts a worker in milliseconds and the worker only runs numpy; elsewhere use spawn.
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def _count_worker(max_n: int, inbox: mp.Queue, outbox: mp.Queue) -> None:
    try:
        tally = _Tally(max_n)
        while (batch := inbox.get()) is not None:
            tally.add(*batch)
        outbox.put(("ok", tally.windows, tally.run_ends))
    except BaseException as err:  # reported to the parent, which raises
        outbox.put(("error", f"{type(err).__name__}: {err}", None))


def _count_in_workers(batches: Iterator[_Batch], tally: _Tally, workers: int) -> None:
    ctx = _mp_context()
    inbox = ctx.Queue(maxsize=2 * workers)
    outbox = ctx.Queue()
    procs = [ctx.Process(target=_count_worker, args=(tally.max_n, inbox, outbox), daemon=True) for _ in range(workers)]
    for proc in procs:
        proc.start()

    def check_alive() -> None:
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"n-gram counting worker died (exit code {dead[0].exitcode})")

    def put(item: _Batch | None) -> None:
        while True:
            try:
                inbox.put(item, timeout=1.0)
                return
            except queue.Full:
                check_alive()

    finished = False
    try:
        for batch in batches:
            put(batch)
        for _ in procs:
            put(None)
        for _ in procs:
            while True:
                try:
                    status, windows, run_ends = outbox.get(timeout=1.0)
                    break
                except queue.Empty:
                    check_alive()
            if status != "ok":
                raise RuntimeError(f"n-gram counting worker failed: {windows}")
            tally.merge(windows, run_ends)
        finished = True
    finally:
        if not finished:  # do not let queued batches block interpreter exit
            inbox.cancel_join_thread()
        for proc in procs:
            if not finished:
                proc.terminate()
            proc.join()
        inbox.close()
        outbox.close()


# --------------------------------------------------------------------------------------------
# Probabilities and PMI


def log_probabilities(counts: NgramCounts, normalizer: str = "per_length") -> list[np.ndarray]:
    """``ln p(w)`` for every n-gram, as ``logp[n-1][code]``; ``-inf`` where the count is 0.

    ``per_length``: p = c / Z_n with Z_n the number of valid n-windows (a proper distribution per
    length). ``released``: p = c / (2·N1) for every length, the normaliser implied by GeneMask's
    released numbers (papers.md §1.3); as Z_n ≈ N1, it adds about ``(pieces - 1)·ln 2`` to a PMI.
    """
    if normalizer not in NORMALIZERS:
        raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
    released_total = 2.0 * float(counts.total(1))
    logp = []
    with np.errstate(divide="ignore"):
        for n in range(1, counts.max_n + 1):
            total = float(counts.total(n)) if normalizer == "per_length" else released_total
            logp.append(np.log(counts.of(n).astype(np.float64)) - math.log(total) if total > 0 else np.full(4**n, -np.inf))
    return logp


def _outer_sum(prefix: np.ndarray, suffix: np.ndarray) -> np.ndarray:
    """Value for every concatenation prefix+suffix, indexed by the concatenation's code."""
    return (prefix[:, None] + suffix[None, :]).ravel()


def _undefined_unigrams() -> list[np.ndarray]:
    """Entry 0 of every PMI list: a single base has no PMI."""
    return [np.full(4, np.nan)]


def pmi_naive(logp: list[np.ndarray]) -> list[np.ndarray]:
    """``ln p(w) - sum_i ln p(w_i)``: every base its own piece. Entry n-1 covers all n-grams
    (NaN for n = 1, where PMI is undefined)."""
    out = _undefined_unigrams()
    independent = logp[0]
    with np.errstate(invalid="ignore"):
        for n in range(2, len(logp) + 1):
            independent = _outer_sum(independent, logp[0])
            out.append(logp[n - 1] - independent)
    return out


def pmi_segmentation(logp: list[np.ndarray]) -> list[np.ndarray]:
    """PMI-Masking's definition (Levine et al. 2021): ``min over segmentations of w into >= 2
    contiguous pieces of ln p(w) - sum ln p(piece)``.

    Dynamic programme over split points: ``best[j]`` = max over segmentations of a j-prefix (one
    piece allowed) of the summed log-probabilities, and an n-gram's best >= 2-piece split is
    ``max over i of best[i](prefix) + ln p(last n - i bases)``. Each step is an outer sum over all
    prefixes x suffixes, so no Python loop runs per n-gram. Pieces
    never have zero count when the n-gram itself occurs (a piece occurs wherever the n-gram does);
    zero-count n-grams come out NaN or -inf and are dropped by the ``min_count`` filter.
    """
    out = _undefined_unigrams()
    best = [logp[0]]  # best[j-1]: over all segmentations of j-grams, single piece included
    with np.errstate(invalid="ignore"):
        for n in range(2, len(logp) + 1):
            split = np.full(4**n, -np.inf)
            for i in range(1, n):
                np.maximum(split, _outer_sum(best[i - 1], logp[n - i - 1]), out=split)
            out.append(logp[n - 1] - split)
            best.append(np.maximum(logp[n - 1], split))
    return out


def pmi_released_true(logp: list[np.ndarray]) -> list[np.ndarray]:
    """GeneMask's released ``true.pmi``: min over *binary* splits after characters 1..n-2 (the
    split after n-1 is never tried: an off-by-one in the released code). For n = 2 the only
    split (after character 1) is used."""
    out = _undefined_unigrams()
    with np.errstate(invalid="ignore"):
        for n in range(2, len(logp) + 1):
            split = np.full(4**n, -np.inf)
            for i in range(1, max(1, n - 2) + 1):
                np.maximum(split, _outer_sum(logp[i - 1], logp[n - i - 1]), out=split)
            out.append(logp[n - 1] - split)
    return out


def pmi_released_dp(logp: list[np.ndarray]) -> list[np.ndarray]:
    """GeneMask's released ``dp.true.pmi``: min over segmentations into >= 2 pieces of length
    <= 2 (every composition of n into 1s and 2s), by a DP over prefixes."""
    out = _undefined_unigrams()
    if len(logp) < 2:
        return out
    best = [logp[0]]  # best[j-1]: over compositions of j-grams into 1s and 2s
    with np.errstate(invalid="ignore"):
        for n in range(2, len(logp) + 1):
            split = _outer_sum(best[n - 2], logp[0])
            if n >= 3:
                np.maximum(split, _outer_sum(best[n - 3], logp[1]), out=split)
            out.append(logp[n - 1] - split)
            best.append(np.maximum(logp[1], split) if n == 2 else split)
    return out


PMI_FUNCTIONS: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]] = {
    "segmentation": pmi_segmentation,
    "naive": pmi_naive,
    "released_true": pmi_released_true,
    "released_dp": pmi_released_dp,
}


def discount(count: np.ndarray | float, min_count: int) -> np.ndarray:
    """NPMI factor ``ln c / (ln c + ln m)`` (GeneMask's Code-C): damps PMI of rare n-grams.
    With m = 1 there is no discount (factor 1, also at c = 1 where the formula is 0/0)."""
    check_integer("min_count", min_count)
    log_c = np.log(np.asarray(count, dtype=np.float64))
    if min_count == 1:
        return np.ones_like(log_c)
    return log_c / (log_c + math.log(min_count))


def pmi_table(counts: NgramCounts, cfg: PMIConfig) -> pd.DataFrame:
    """All n-grams, n = 2..max_n, with count >= ``cfg.min_count``, and their PMI.

    Columns: ``ngram, n, count, pmi, npmi`` (``pmi`` is ``cfg.pmi``'s variant, ``npmi`` its
    discounted value) plus ``pmi_<variant>`` for all four variants. Rows in (n, ACGT code) order.
    """
    _check_types(counts=(counts, NgramCounts), cfg=(cfg, PMIConfig))
    if counts.max_n < cfg.max_n:
        raise ValueError(f"counts go up to n={counts.max_n} but cfg.max_n={cfg.max_n}")
    logp = log_probabilities(counts, cfg.normalizer)[: cfg.max_n]
    variants = {name: fn(logp) for name, fn in PMI_FUNCTIONS.items()}
    frames = []
    for n in range(2, cfg.max_n + 1):
        table = counts.of(n)
        kept = np.flatnonzero(table >= cfg.min_count)
        kept_counts = table[kept]
        frame = {"ngram": decode_ngrams(kept, n), "n": np.full(len(kept), n, dtype=np.int8), "count": kept_counts}
        chosen = variants[cfg.pmi][n - 1][kept]
        frame["pmi"] = chosen
        frame["npmi"] = chosen * discount(kept_counts, cfg.min_count)
        for name, values in variants.items():
            frame[f"pmi_{name}"] = values[n - 1][kept]
        frames.append(pd.DataFrame(frame))
    if not frames:
        return pd.DataFrame(columns=["ngram", "n", "count", "pmi", "npmi"] + [f"pmi_{v}" for v in PMI_VARIANTS])
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# k-mer rank table


def _vocab_codes(k: int) -> np.ndarray:
    """ACGT counting code of each tokenizer k-mer, in vocabulary (ATCG) order."""
    kmers = np.array(vocab_kmers(k)).astype(f"S{k}")
    letters = np.frombuffer(kmers.tobytes(), dtype=np.uint8).reshape(-1, k)
    digit = np.full(256, 0, dtype=np.int64)
    for i, base in enumerate(ALPHABET.encode()):
        digit[base] = i
    return (digit[letters] << (2 * np.arange(k - 1, -1, -1))).sum(axis=1)


def kmer_ranking(
    table: pd.DataFrame, k: int, min_count: int, counts: NgramCounts | None = None
) -> pd.DataFrame:
    """Rank the tokenizer's k-mers by NPMI: rank 1 = highest.

    k-mers with count < ``min_count`` (absent from ``table``) get the worst ranks. Ties break by
    count (higher first), then by the k-mer string, so the ranking is deterministic. ``counts``
    supplies the real counts of the rare k-mers (else they count as 0). Returns
    ``kmer, token_id, count, pmi, npmi, rank`` sorted by rank; ``token_id`` is the DNABERT id.
    """
    _check_types(table=(table, pd.DataFrame), counts=(counts, (NgramCounts, type(None))))
    if k not in SUPPORTED_K:
        raise ValueError(f"k={k!r}: expected one of the tokenizer's k-mer sizes {SUPPORTED_K}")
    check_integer("min_count", min_count)
    kmers = vocab_kmers(k)
    rows = table[table["n"] == k].set_index("ngram")
    frame = pd.DataFrame({"kmer": kmers, "token_id": np.arange(N_SPECIAL, N_SPECIAL + 4**k)})
    npmi = rows["npmi"].reindex(kmers).to_numpy(dtype=np.float64)
    pmi = rows["pmi"].reindex(kmers).to_numpy(dtype=np.float64)
    if counts is not None:
        kmer_counts = counts.of(k)[_vocab_codes(k)]
    else:
        kmer_counts = rows["count"].reindex(kmers).fillna(0).to_numpy()
        if pd.api.types.is_integer_dtype(table["count"].dtype):
            kmer_counts = kmer_counts.astype(np.int64)
    ranked = np.isfinite(npmi) & (kmer_counts >= min_count)
    npmi = np.where(ranked, npmi, np.nan)
    frame["count"] = kmer_counts
    frame["pmi"] = np.where(ranked, pmi, np.nan)
    frame["npmi"] = npmi
    # lexsort: last key is primary. Ranked first, then NPMI desc, count desc, k-mer string asc.
    order = np.lexsort((np.array(kmers), -kmer_counts.astype(np.float64), -np.nan_to_num(npmi, nan=-np.inf), ~ranked))
    rank = np.empty(4**k, dtype=np.int64)
    rank[order] = np.arange(1, 4**k + 1)
    frame["rank"] = rank
    return frame.sort_values("rank", ignore_index=True)


def load_rank_table(source: str | Path | pd.DataFrame, k: int = 6, special_rank: int | None = None) -> np.ndarray:
    """NPMI rank per token id (length 5 + 4**k), for the masking collator's ``rank[input_ids]``.

    ``source`` is a rank table (CSV path or DataFrame with ``kmer`` and ``rank`` columns, as
    written by :func:`run` or returned by :func:`load_authors_ranking`). Special tokens get
    ``special_rank``: by default 4**k + 1, worse than every k-mer, so they are never chosen as
    anchors; the released code effectively used 0 (best), its ``defaultdict`` quirk. Use
    ``torch.from_numpy`` for a tensor.
    """
    if k not in SUPPORTED_K:
        raise ValueError(f"k={k!r}: expected one of the tokenizer's k-mer sizes {SUPPORTED_K}")
    check_integer("special_rank", special_rank, minimum=0, optional=True)
    _check_types(source=(source, (str, os.PathLike, pd.DataFrame)))
    name = str(source) if not isinstance(source, pd.DataFrame) else "rank table"
    frame = _read_rank_csv(as_user_path(source, "rank_table")) if not isinstance(source, pd.DataFrame) else source
    if "ngram" in frame.columns and "norm_pmi_rank_rel" in frame.columns:  # the authors' raw CSV
        frame = frame.rename(columns={"ngram": "kmer", "norm_pmi_rank_rel": "rank"})
    missing_cols = {"kmer", "rank"} - set(frame.columns)
    if missing_cols:
        raise ValueError(f"{name}: rank table needs columns 'kmer' and 'rank'; missing {sorted(missing_cols)}")
    if frame.empty:
        raise ValueError(f"{name}: rank table has a header but no rows")
    kmers = frame["kmer"].astype(str).str.upper()
    lengths = kmers.str.len().unique()
    if len(lengths) != 1 or lengths[0] != k:
        raise ValueError(f"{name}: rank table holds k-mers of length {sorted(lengths.tolist())}, expected k={k}")
    if kmers.duplicated().any():
        raise ValueError(f"{name}: rank table lists k-mer {kmers[kmers.duplicated()].iloc[0]!r} more than once")
    ranks = pd.to_numeric(frame["rank"], errors="coerce")
    if ranks.isna().any() or (ranks < 1).any() or (ranks != np.floor(ranks)).any():
        raise ValueError(f"{name}: column 'rank' must hold integers >= 1")
    by_kmer = pd.Series(ranks.to_numpy(dtype=np.int64), index=kmers.to_numpy())
    vocab = vocab_kmers(k)
    missing = [kmer for kmer in vocab if kmer not in by_kmer.index]
    if missing:
        raise ValueError(f"{name}: rank table lacks {len(missing)} of the {4**k} {k}-mers (e.g. {missing[0]!r})")
    extra = len(by_kmer) - 4**k
    if extra:
        raise ValueError(f"{name}: rank table has {extra} rows that are not A/C/G/T {k}-mers")
    table = np.empty(N_SPECIAL + 4**k, dtype=np.int64)
    table[:N_SPECIAL] = 4**k + 1 if special_rank is None else special_rank
    table[N_SPECIAL:] = by_kmer.reindex(vocab).to_numpy()
    check_kmer_ranks(table[N_SPECIAL:], k, name)
    return table


def check_kmer_ranks(ranks: np.ndarray, k: int, name: str = "rank_table") -> None:
    """Refuse k-mer ranks that would move masking anchors without meaning: ranks outside
    1..4**k (the masking collator packs a rank and a position into one integer key, and a rank
    that large would pass its "cannot be an anchor" mark, so special tokens could become anchors),
    or one rank for every k-mer (a table that ranks nothing: anchors would fall by position)."""
    ranks = np.asarray(ranks)
    low, high = int(ranks.min()), int(ranks.max())
    if low < 1 or high > 4**k:
        bad = low if low < 1 else high
        raise ValueError(f"{name}: rank {bad} is outside 1..{4**k} (one rank per {k}-mer, 1 = highest NPMI)")
    if low == high:
        raise ValueError(f"{name}: every {k}-mer has rank {low}, so the table ranks nothing (ties everywhere)")


def _read_rank_csv(path: Path) -> pd.DataFrame:
    """A rank CSV as a frame; unreadable or empty files fail naming the file."""
    require_regular_file(path, "rank table file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such rank table file")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file, not a rank table (expected columns 'kmer' and 'rank')") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"{path}: not a readable CSV rank table ({detail})") from None


# --------------------------------------------------------------------------------------------
# The authors' released ranking (Data-A)


def load_authors_ranking(path: str | Path | None = None) -> pd.DataFrame:
    """GeneMask's released 6-mer ranking in :func:`kmer_ranking`'s layout.

    ``rank`` = ``norm_pmi_rank_rel``, ``npmi`` = ``norm_dp_true_pmi``, ``pmi`` = ``dp.true.pmi``,
    ``count`` = the count implied by the discount (see :func:`implied_counts_from_authors`); the
    released PMI columns are kept as ``pmi_naive``, ``pmi_released_true``, ``pmi_released_dp``.
    """
    path = Path(path) if path is not None else data_dir() / AUTHORS_RANKING
    if not path.is_file():
        raise FileNotFoundError(f"{path}: GeneMask's Data-A ranking not found (set $GENEMASK_DATA to the data folder)")
    raw = pd.read_csv(path)
    needed = {"ngram", "naive.pmi", "true.pmi", "dp.true.pmi", "norm_dp_true_pmi", "norm_pmi_rank_rel"}
    if needed - set(raw.columns):
        raise ValueError(f"{path}: not the Data-A layout; missing columns {sorted(needed - set(raw.columns))}")
    token_id = {kmer: i + N_SPECIAL for i, kmer in enumerate(vocab_kmers(6))}
    frame = pd.DataFrame(
        {
            "kmer": raw["ngram"].astype(str),
            "token_id": raw["ngram"].map(token_id).astype("int64"),
            "count": _implied_count(raw["norm_dp_true_pmi"].to_numpy(), raw["dp.true.pmi"].to_numpy()),
            "pmi": raw["dp.true.pmi"].to_numpy(),
            "npmi": raw["norm_dp_true_pmi"].to_numpy(),
            "rank": raw["norm_pmi_rank_rel"].astype("int64"),
            "pmi_naive": raw["naive.pmi"].to_numpy(),
            "pmi_released_true": raw["true.pmi"].to_numpy(),
            "pmi_released_dp": raw["dp.true.pmi"].to_numpy(),
        }
    )
    return frame.sort_values("rank", ignore_index=True)


AUTHORS_MIN_COUNT = 101
IMPLIED_SOURCES = ("pmi", "discount")


def _implied_count(npmi: np.ndarray, pmi: np.ndarray, min_count: int = AUTHORS_MIN_COUNT) -> np.ndarray:
    """Invert the discount: d = ln f / (ln f + ln m)  =>  f = exp(d ln m / (1 - d)).

    Data-A keeps ~16 significant digits, so f comes back within 1e-6 of an integer; rounded."""
    d = npmi / pmi
    return np.rint(np.exp(d * math.log(min_count) / (1.0 - d))).astype(np.int64)


def implied_counts_from_authors(ranking: pd.DataFrame | None = None, source: str = "pmi") -> NgramCounts:
    """The chr1-3 counts that GeneMask's Data-A implies, as float tables for n = 1..6.

    ``source="discount"``: each 6-mer's raw count f from its discount (``npmi / pmi``); these are
    exact integers and match the two counts printed in Code-C (TCGCGA = 2,947).
    ``source="pmi"`` (default): the 6-mer probabilities behind the released PMI columns, from
    ``naive.pmi = ln p(w) - sum ln p(w_i)`` with unigram probabilities from the discount counts
    and the released normaliser 2·N1; they differ from f by a median 0.02 % and up to 0.4 % for
    rare CpG 6-mers, so the released PMI and the discount were computed from slightly different
    counts. Use these to reproduce the PMI columns.

    Shorter n-grams are marginalised from the 6-mer table over their last bases (papers.md §1.3);
    that misses only the n-grams at the very end of each sequence run.
    """
    if source not in IMPLIED_SOURCES:
        raise ValueError(f"source must be one of {IMPLIED_SOURCES}, got {source!r}")
    ranking = load_authors_ranking() if ranking is None else ranking
    codes = np.array([encode_ngram(kmer) for kmer in ranking["kmer"]], dtype=np.int64)
    if len(np.unique(codes)) != 4**6 or any(len(kmer) != 6 for kmer in ranking["kmer"]):
        raise ValueError("implied_counts_from_authors: the ranking must list each of the 4096 6-mers once")
    counts6 = np.zeros(4**6, dtype=np.float64)
    counts6[codes] = ranking["count"].to_numpy(dtype=np.float64)
    if source == "pmi":
        unigrams = counts6.reshape(4, -1).sum(axis=1)
        total = 2.0 * unigrams.sum()
        digits = (codes[:, None] >> (2 * np.arange(5, -1, -1))) & 3
        log_independent = np.log(unigrams / total)[digits].sum(axis=1)
        counts6[codes] = total * np.exp(ranking["pmi_naive"].to_numpy(dtype=np.float64) + log_independent)
    counts = [counts6]
    for _ in range(5):
        counts.insert(0, counts[0].reshape(-1, 4).sum(axis=1))
    return NgramCounts(counts, sources=(f"Data-A (implied by {source})",))


# --------------------------------------------------------------------------------------------
# One run: counts -> tables on disk


def _check_rankable(ranking: pd.DataFrame, counts: NgramCounts, cfg: PMIConfig, source: str) -> None:
    """Refuse a ranking in which no k-mer reached ``min_count``: it would rank by count and then
    alphabet alone."""
    if ranking["npmi"].isna().all():
        raise ValueError(f"{source}: no {cfg.k}-mer occurs min_count={cfg.min_count} times (the most frequent: "
                         f"{int(counts.of(cfg.k).max())}), so no k-mer has an NPMI to rank by; give more sequence "
                         "or a lower min_count")


def run(
    cfg: PMIConfig, out_dir: str | Path, *, counts: NgramCounts | None = None, workers: int | None = None
) -> dict:
    """Count (unless ``counts`` is given), score and rank; write ``ngrams.parquet``,
    ``kmer_ranking.csv`` and ``params.json`` atomically into ``out_dir``.

    Returns the three paths, the table sizes, Z_n per length and the seconds spent counting.
    Refuses (writing nothing) when no k-mer reaches ``min_count``: that ranking would rank nothing.
    """
    _check_types(cfg=(cfg, PMIConfig), out_dir=(out_dir, (str, os.PathLike)), counts=(counts, (NgramCounts, type(None))))
    out_dir = as_user_path(out_dir, "out_dir")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir={str(out_dir)!r}: is a file, not a folder")
    check_integer("workers", workers, minimum=0, optional=True)
    started = time.perf_counter()
    if counts is None:
        if not cfg.fasta_paths:
            raise ValueError("PMIConfig: fasta is required to count n-grams (or pass counts=)")
        counts = count_ngrams(cfg.fasta_paths, cfg.max_n, workers=workers)
    counted = time.perf_counter()
    table = pmi_table(counts, cfg)
    ranking = kmer_ranking(table, cfg.k, cfg.min_count, counts=counts)
    _check_rankable(ranking, counts, cfg, ", ".join(counts.sources) or "the given counts")
    paths = {
        "ngrams": out_dir / "ngrams.parquet",
        "kmer_ranking": out_dir / "kmer_ranking.csv",
        "params": out_dir / "params.json",
    }
    write_with(paths["ngrams"], lambda tmp: table.to_parquet(tmp, index=False))
    write_with(paths["kmer_ranking"], lambda tmp: ranking.to_csv(tmp, index=False))
    totals = {str(n): counts.total(n) for n in range(1, cfg.max_n + 1)}
    params = {
        "config": cfg.to_dict(),
        "totals": totals,
        "n_ngrams": len(table),
        "n_kmers_ranked": int(ranking["npmi"].notna().sum()),
        "genemask_version": __version__,
    }
    write_json(paths["params"], params)
    return {
        **{name: str(path) for name, path in paths.items()},
        "totals": totals,
        "n_ngrams": len(table),
        "n_kmers_ranked": params["n_kmers_ranked"],
        "count_seconds": counted - started,
        "seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------------------------
# The ranking of a user's FASTA, made once and reused

#: Folder under ``paths.cache_dir()`` holding one ``<key>/kmer_ranking.csv`` per (FASTA content, parameters).
RANKING_CACHE = "rankings"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes as stored (a FASTA gzipped or not, a rank table)."""
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def ranking_key(cfg: PMIConfig) -> tuple[str, list[dict]]:
    """(cache key, the files' names and content hashes) of ``cfg``'s ranking: the FASTA contents
    and every ranking parameter, never the files' paths, so a moved or renamed FASTA reuses its
    ranking and an edited one gets a new one."""
    import hashlib
    import json

    files = []
    for path in cfg.fasta_paths:
        if not path.is_file():
            raise FileNotFoundError(f"fasta={str(path)!r}: no such FASTA file")
        files.append({"name": path.name, "sha256": file_sha256(path)})
    params = {k: v for k, v in cfg.to_dict().items() if k != "fasta"}
    payload = json.dumps({"sha256": [f["sha256"] for f in files], "params": params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16], files


def ranking_of_fasta(cfg: PMIConfig, *, cache_root: Path | None = None, workers: int | None = None,
                     log: Callable[[str], None] | None = None) -> Path:
    """The ``kmer_ranking.csv`` of ``cfg.fasta`` under ``cfg`` (:func:`count_ngrams`,
    :func:`pmi_table`, :func:`kmer_ranking`, as :func:`run` makes it, without the n-gram table),
    made once into ``<cache>/rankings/<key>/`` with a ``params.json`` naming its sources, and reused
    after. Concurrent callers (the ranks of a ``torchrun``) wait for the one that counts; the folder
    appears by one rename, so a crash never leaves a ranking a later run would trust."""
    import fcntl
    import shutil
    import tempfile

    from . import paths

    if not cfg.fasta_paths:
        raise ValueError("PMIConfig: fasta is required to rank k-mers")
    key, files = ranking_key(cfg)
    root = (cache_root or paths.cache_dir()) / RANKING_CACHE
    directory = root / key
    ranking_csv = directory / "kmer_ranking.csv"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{key}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ranking_csv.is_file():
            return ranking_csv
        if log:
            log(f"ranking the {cfg.k}-mers of {', '.join(f['name'] for f in files)} by NPMI "
                f"(n-grams up to {cfg.max_n}, min_count {cfg.min_count}); cached in {directory}")
        started = time.perf_counter()
        counts = count_ngrams(cfg.fasta_paths, cfg.max_n, workers=workers)
        ranking = kmer_ranking(pmi_table(counts, cfg), cfg.k, cfg.min_count, counts=counts)
        _check_rankable(ranking, counts, cfg, ", ".join(str(p) for p in cfg.fasta_paths))
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            ranking.to_csv(tmp / "kmer_ranking.csv", index=False)
            write_json(tmp / "params.json", {
                "config": cfg.to_dict(), "files": files, "n_kmers_ranked": int(ranking["npmi"].notna().sum()),
                "seconds": round(time.perf_counter() - started, 2), "genemask_version": __version__})
            os.chmod(tmp, 0o755)
            os.rename(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return ranking_csv
