"""Genome input: a streaming FASTA reader, 2-bit encoding, and the synthetic demo genome.

The reader is the single gate through which sequence enters the package, so it owns the errors a
user can hit with real files (no header, protein text, empty or truncated gzip, another compressor,
UTF-16, no A/C/G/T base at all) and says which file and line. It accepts what a researcher's files
really look like: LF, CRLF or classic-Mac CR line ends, a UTF-8 byte-order mark, and RNA, whose U
reads as T (the same base in DNA's alphabet, so RNA and DNA files count alike). It reads in large blocks and does its per-base work with ``bytes.translate`` and numpy,
because counting and corpus building stream whole chromosomes through it.
"""
from __future__ import annotations

import gzip
import io
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from .io import require_regular_file  # noqa: F401 - the one home is io; readers here and callers use it

#: Letters a nucleotide FASTA may contain: IUPAC codes (both cases), U, gaps and stop-like '*'.
IUPAC = b"ACGTURYKMSWBDHVNacgturykmswbdhvn-*."
_ACGT_LUT = np.zeros(256, dtype=bool)
for _b in b"ACGTacgt":
    _ACGT_LUT[_b] = True
_2BIT = np.full(256, 255, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _2BIT[_b] = _i
    _2BIT[ord(chr(_b).lower())] = _i

#: Uppercase, and RNA's U as T.
_UPPER = bytes.maketrans(b"acgturykmswbdhvnU", b"ACGTTRYKMSWBDHVNT")
_UTF8_BOM = b"\xef\xbb\xbf"
#: Magic bytes of formats that are not (gzip-compressed) text, for a clear refusal.
_OTHER_FORMATS = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"PK\x03\x04": "zip",
                  b"\xff\xfe": "UTF-16 text", b"\xfe\xff": "UTF-16 text"}
BLOCK_BYTES = 1 << 22  # 4 MiB of file text per read
MAX_SEGMENT = 8_000_000  # longest bytes object yielded at once


class FastaError(ValueError):
    """A file that is not usable nucleotide FASTA; the message names the file (and line)."""


def check_integer(name: str, value, minimum: int = 1, optional: bool = False, why: str = "") -> None:
    """A whole-number parameter of a public function, refused naming it: a float, a bool or a 0
    would otherwise fail deep in numpy or torch, or quietly do nothing. The package's one home
    for this check (genome is the module every other one builds on)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an integer >= {minimum}{why}" + (" or None" if optional else ""))


def as_user_path(value: str | os.PathLike, name: str, error: type[Exception] = ValueError) -> Path:
    """A path parameter as a Path; an empty string is refused (``Path('')`` would read as ``.``)."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name}={value!r:.60}: expected a path, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise error(f"{name}={value!r}: an empty path; give a file")
    return Path(value)


class Segment(NamedTuple):
    """A piece of a maximal A/C/G/T run, uppercase. ``continues`` is True when the next segment
    yielded continues the same run (long runs come in pieces of at most ``MAX_SEGMENT`` bases)."""

    seq: bytes
    continues: bool


@dataclass(frozen=True)
class FastaRecord:
    name: str
    seq: str


def _open_binary(path: Path) -> BinaryIO:
    """Plain, gzip or bgzip (bgzip is multi-member gzip, which ``gzip`` reads), decided by magic bytes."""
    with open(path, "rb") as probe:
        magic = probe.read(6)
    for prefix, kind in _OTHER_FORMATS.items():
        if magic.startswith(prefix):
            raise FastaError(f"{path}: {kind}, not FASTA text; give plain, gzip or bgzip FASTA "
                             + ("(save it as ASCII/UTF-8)" if "UTF" in kind else "(decompress it first)"))
    if magic[:2] == b"\x1f\x8b":
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=BLOCK_BYTES)  # type: ignore[arg-type]
    return open(path, "rb", buffering=BLOCK_BYTES)


def _line_blocks(path: Path) -> Iterator[bytes]:
    """Blocks of whole lines (each ends with a newline, except perhaps the file's last), with CRLF
    and lone CR line ends turned into LF and a leading UTF-8 byte-order mark dropped."""
    require_regular_file(path, "FASTA file", FastaError)
    try:
        fh = _open_binary(path)
    except FileNotFoundError:
        raise FastaError(f"{path}: no such FASTA file") from None
    except IsADirectoryError:
        raise FastaError(f"{path}: is a directory, not a FASTA file") from None
    except PermissionError:
        raise FastaError(f"{path}: not readable (permission denied)") from None
    with fh:
        tail = b""
        first = True
        while True:
            try:
                block = fh.read(BLOCK_BYTES)
            except (EOFError, zlib.error, gzip.BadGzipFile) as err:
                raise FastaError(f"{path}: truncated or corrupt gzip ({err})") from None
            if first:
                first = False
                if block.startswith(_UTF8_BOM):
                    block = block[len(_UTF8_BOM):]
                if block.startswith(b"\x1f\x8b"):
                    raise FastaError(f"{path}: gzip inside gzip (compressed twice); decompress it once")
            if not block:
                if tail:
                    yield tail.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                return
            block = tail + block
            if b"\r" in block:  # a memchr scan: LF-only files pay nothing more
                if block.endswith(b"\r"):  # perhaps half of a CRLF: decide with the next block
                    tail = block
                    continue
                block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                tail = block
                continue
            tail = block[cut:]
            yield block[:cut]


def _bad_line(path: Path, block: bytes, first_line: int) -> FastaError:
    """Locate the first line of a sequence block with a letter that is not nucleotide IUPAC."""
    for offset, line in enumerate(block.split(b"\n")):
        junk = line.rstrip(b"\r").translate(None, IUPAC + b" \t")
        if junk:
            shown = line[:40].decode("ascii", "replace")
            return FastaError(
                f"{path}:{first_line + offset}: not nucleotide FASTA (unexpected {chr(junk[0])!r} in {shown!r};"
                " protein or other text?)"
            )
    return FastaError(f"{path}: not nucleotide FASTA")


def iter_records_raw(path: str | Path) -> Iterator[tuple[str, Iterator[bytes]]]:
    """(record name, iterator over uppercase sequence blocks) for each record, streaming.

    Blocks carry every letter (N and IUPAC codes included, U as T), line breaks removed. Each
    block iterator must be consumed before advancing to the next record. A file of headers without
    any sequence is an error (raised once its records are read): it would count as an empty genome.
    """
    path = as_user_path(path, "fasta", FastaError)
    blocks = _line_blocks(path)
    state = {"line": 1, "pending": None, "seen_header": False, "seen_any": False, "seen_sequence": False}

    def sequence_text(text: bytes) -> bytes:
        if text.strip() and not state["seen_header"]:
            raise FastaError(f"{path}:{state['line']}: no FASTA header line ('>name') before the sequence")
        if text.translate(None, IUPAC + b"\r\n \t"):
            raise _bad_line(path, text, state["line"])
        state["line"] += text.count(b"\n")
        sequence = text.translate(_UPPER, b"\r\n \t")
        if sequence:
            state["seen_sequence"] = True
        return sequence

    def pieces() -> Iterator[bytes | tuple[str]]:
        # Flattens the file into sequence blocks and ("header",) markers; headers are rare, so a
        # block is cut only at header lines and everything between them is handled in bulk.
        for block in blocks:
            if block.strip():
                state["seen_any"] = True
            pos = 0
            if b">" not in block:
                yield sequence_text(block)
                continue
            while (start := block.find(b">", pos)) >= 0:  # memchr-fast; a regex scan costs ~5 ms/MB
                if start > 0 and block[start - 1] != 0x0A:  # '>' inside a line: not FASTA
                    raise _bad_line(path, block[pos:], state["line"])
                if start > pos:
                    yield sequence_text(block[pos:start])
                stop = block.find(b"\n", start)
                stop = len(block) if stop < 0 else stop + 1
                state["seen_header"] = True
                state["line"] += 1
                yield ((block[start + 1 : stop].split() or [b""])[0].decode("utf-8", "replace"),)
                pos = stop
            if pos < len(block):
                yield sequence_text(block[pos:])

    stream = pieces()
    current: list = []

    def record_blocks() -> Iterator[bytes]:
        for item in stream:
            if isinstance(item, tuple):
                current.append(item[0])
                return
            yield item

    # Find the first header.
    for item in stream:
        if isinstance(item, tuple):
            current.append(item[0])
            break
    while current:
        name = current.pop()
        yield name, record_blocks()
    if not state["seen_any"]:
        raise FastaError(f"{path}: empty file, no FASTA records")
    if not state["seen_sequence"]:
        raise FastaError(f"{path}: FASTA header(s) but no sequence lines")


def read_fasta(path: str | Path) -> Iterator[FastaRecord]:
    """Whole records as uppercase strings (for small files and tests; use the segment streams for genomes)."""
    for name, blocks in iter_records_raw(path):
        yield FastaRecord(name, b"".join(blocks).decode("ascii"))


def iter_record_segments(path: str | Path, max_segment: int = MAX_SEGMENT) -> Iterator[tuple[str, Segment]]:
    """(record name, segment) for every maximal A/C/G/T run, streaming; runs never cross records or
    any other letter (N, IUPAC). Lowercase soft-masked bases count as their uppercase base.

    The piece of a run that touches the end of a file block is held back one block, so that its
    ``continues`` flag is known; work stays linear in the file size. A file without a single
    A/C/G/T base (all N, say) is an error, raised at its end: every consumer would get nothing.
    """
    check_integer("max_segment", max_segment)
    found = False
    for name, blocks in iter_records_raw(path):
        pending: bytes | None = None
        for data in blocks:
            if not data:
                continue
            ok = _ACGT_LUT[np.frombuffer(data, dtype=np.uint8)]
            if pending is not None:
                yield name, Segment(pending, bool(ok[0]))
                pending = None
            edges = np.flatnonzero(np.diff(np.concatenate(([False], ok, [False])).astype(np.int8)))
            for s, e in zip(edges[0::2].tolist(), edges[1::2].tolist()):
                pieces = [data[i : min(i + max_segment, e)] for i in range(s, e, max_segment)]
                for i, piece in enumerate(pieces):
                    found = True
                    if e == len(data) and i == len(pieces) - 1:
                        pending = piece
                    else:
                        yield name, Segment(piece, i < len(pieces) - 1)
        if pending is not None:
            yield name, Segment(pending, False)
    if not found:
        raise FastaError(f"{path}: no A/C/G/T base in any record (only N or other IUPAC codes)")


def iter_acgt_segments(path: str | Path, max_segment: int = MAX_SEGMENT) -> Iterator[Segment]:
    """The A/C/G/T runs of a FASTA file as :class:`Segment` pieces (see :func:`iter_record_segments`)."""
    for _, seg in iter_record_segments(path, max_segment):
        yield seg


def encode_2bit(seq: bytes) -> np.ndarray:
    """A=0, C=1, G=2, T=3 as uint8 (ACGT order, for counting; the tokenizer uses DNABERT's ATCG order).
    Raises on any other letter, because callers pass A/C/G/T runs only."""
    codes = _2BIT[np.frombuffer(seq, dtype=np.uint8)]
    if codes.size and codes.max() == 255:
        raise ValueError("encode_2bit: sequence contains letters other than A/C/G/T")
    return codes


# ---------------------------------------------------------------------------------------------
# Synthetic demo genome
# ---------------------------------------------------------------------------------------------

#: Promoter-like motif consensus sequences planted upstream of demo "TSS" sites (TATA box, CCAAT
#: box, GC box, initiator, BRE). IUPAC letters are resolved per occurrence.
PROMOTER_MOTIFS: dict[str, str] = {
    "TATA": "TATAWAWR",
    "CCAAT": "GGCCAATCT",
    "GCbox": "GGGGCGGGGC",
    "Inr": "YYANWYY",
    "BRE": "SSRCGCC",
}
_IUPAC_CHOICES = {
    "A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "GC", "W": "AT",
    "K": "GT", "M": "AC", "N": "ACGT",
}


@dataclass(frozen=True)
class DemoGenomeConfig:
    """Parameters of the synthetic genome. Defaults give 3 Mbp in three records, generated in ~1 s."""

    n_records: int = 3
    record_length: int = 1_000_000
    gc: float = 0.41  # human-like composition
    cpg_depletion: float = 0.75  # share of background CpGs mutated away (human CpG suppression)
    n_cpg_islands: int = 150
    n_microsatellites: int = 900
    n_tandem_repeats: int = 300
    n_repeat_families: int = 6
    n_repeat_copies: int = 1200
    n_motif_families: int = 32
    motif_copies: int = 150
    n_promoters: int = 1500
    n_gaps: int = 4
    seed: int = 20230729


def _random_dna(rng: np.random.Generator, n: int, gc: float) -> np.ndarray:
    p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
    return np.frombuffer(b"ACGT", dtype=np.uint8)[rng.choice(4, size=n, p=p)]


def _resolve(rng: np.random.Generator, consensus: str) -> bytes:
    return "".join(rng.choice(list(_IUPAC_CHOICES[c])) for c in consensus).encode()


def _mutate(rng: np.random.Generator, seq: np.ndarray, rate: float) -> np.ndarray:
    out = seq.copy()
    hit = rng.random(len(out)) < rate
    out[hit] = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, hit.sum())]
    return out


def make_demo_genome(cfg: DemoGenomeConfig = DemoGenomeConfig()) -> tuple[dict[str, bytes], list[dict]]:
    """Records (name → sequence with soft-masked repeats and N gaps) and the planted features.

    Planted structure, so that n-gram statistics and masking have something to find: CpG-depleted
    background, CpG islands, microsatellites such as (CA)n, tandem repeats, interspersed repeat
    families (lowercase, as RepeatMasker soft-masks them), motif families with point mutations, and
    promoters (TSS with TATA/CCAAT/GC-box/Inr/BRE motifs at their usual offsets).
    """
    rng = np.random.default_rng(cfg.seed)
    records: dict[str, np.ndarray] = {}
    features: list[dict] = []
    motif_consensus = [_random_dna(rng, int(rng.integers(8, 13)), 0.5) for _ in range(cfg.n_motif_families)]
    repeat_consensus = [_random_dna(rng, int(rng.integers(150, 320)), 0.52) for _ in range(cfg.n_repeat_families)]
    micro_units = [b"CA", b"A", b"AT", b"GGAA", b"TTTC", b"AAAT", b"CAG", b"GT"]

    per_record = lambda total: np.bincount(rng.integers(0, cfg.n_records, total), minlength=cfg.n_records)
    for r in range(cfg.n_records):
        name = f"demo{r + 1}"
        n = cfg.record_length
        seq = _random_dna(rng, n, cfg.gc)
        cg = np.flatnonzero((seq[:-1] == ord("C")) & (seq[1:] == ord("G")))
        drop = cg[rng.random(len(cg)) < cfg.cpg_depletion]
        flip = rng.random(len(drop)) < 0.5  # CG → TG or CA, the deamination products
        seq[drop[flip]] = ord("T")
        seq[drop[~flip] + 1] = ord("A")
        lower = np.zeros(n, dtype=bool)

        def place(length: int) -> int:
            return int(rng.integers(0, n - length))

        counts = {k: per_record(v)[r] for k, v in {
            "cpg": cfg.n_cpg_islands, "micro": cfg.n_microsatellites, "tandem": cfg.n_tandem_repeats,
            "repeat": cfg.n_repeat_copies, "prom": cfg.n_promoters}.items()}
        for _ in range(counts["cpg"]):
            length = int(rng.integers(500, 2000))
            s = place(length)
            seq[s : s + length] = _random_dna(rng, length, 0.66)
            features.append(dict(record=name, start=s, end=s + length, kind="cpg_island", family=""))
        for _ in range(counts["repeat"]):
            fam = int(rng.integers(cfg.n_repeat_families))
            copy = _mutate(rng, repeat_consensus[fam], 0.12)
            s = place(len(copy))
            seq[s : s + len(copy)] = copy
            lower[s : s + len(copy)] = True
            features.append(dict(record=name, start=s, end=s + len(copy), kind="repeat", family=f"R{fam}"))
        for _ in range(counts["tandem"]):
            unit = _random_dna(rng, int(rng.integers(12, 60)), 0.45)
            copies = int(rng.integers(3, 15))
            block = _mutate(rng, np.tile(unit, copies), 0.03)
            s = place(len(block))
            seq[s : s + len(block)] = block
            features.append(dict(record=name, start=s, end=s + len(block), kind="tandem_repeat", family=""))
        for _ in range(counts["micro"]):
            unit = micro_units[int(rng.integers(len(micro_units)))]
            length = int(rng.integers(16, 60))
            block = np.frombuffer((unit * (length // len(unit) + 1))[:length], dtype=np.uint8)
            s = place(length)
            seq[s : s + length] = block
            lower[s : s + length] = True
            features.append(dict(record=name, start=s, end=s + length, kind="microsatellite", family=unit.decode()))
        for fam, consensus in enumerate(motif_consensus):
            for _ in range(cfg.motif_copies // cfg.n_records):
                s = place(len(consensus))
                seq[s : s + len(consensus)] = _mutate(rng, consensus, 0.08)
                features.append(dict(record=name, start=s, end=s + len(consensus), kind="motif", family=f"M{fam:02d}"))
        for _ in range(counts["prom"]):
            tss = int(rng.integers(300, n - 300))
            strand_motifs = {"GCbox": -70, "CCAAT": -60, "BRE": -37, "TATA": -31, "Inr": -2}
            for motif, offset in strand_motifs.items():
                if motif in ("GCbox", "CCAAT") and rng.random() < 0.5:
                    continue
                site = np.frombuffer(_resolve(rng, PROMOTER_MOTIFS[motif]), dtype=np.uint8)
                seq[tss + offset : tss + offset + len(site)] = site
            lower[tss - 100 : tss + 50] = False
            features.append(dict(record=name, start=tss, end=tss + 1, kind="tss", family="promoter"))
        for _ in range(cfg.n_gaps // cfg.n_records + (r < cfg.n_gaps % cfg.n_records)):
            length = int(rng.integers(200, 3000))
            s = place(length)
            seq[s : s + length] = ord("N")
            features.append(dict(record=name, start=s, end=s + length, kind="gap", family=""))
        seq = seq.copy()
        seq[lower] |= 0x20  # soft-mask: lowercase (N stays 'n' only inside repeats, as in UCSC files)
        records[name] = seq
    return {k: v.tobytes() for k, v in records.items()}, features


def write_fasta(records: dict[str, bytes], path: str | Path, width: int = 60) -> Path:
    """Write records as FASTA (gzip if the name ends in .gz, with mtime 0 so bytes are reproducible),
    atomically: a reader never sees a half-written file."""
    from .io import atomic_path

    path = Path(path)
    lines = []
    for name, seq in records.items():
        lines.append(b">" + name.encode() + b"\n")
        lines.extend(seq[i : i + width] + b"\n" for i in range(0, len(seq), width))
    payload = b"".join(lines)
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
                gz.write(payload)
        else:
            tmp.write_bytes(payload)
    return path


def ensure_demo_genome() -> Path:
    """The demo genome FASTA (``paths.demo_genome_path()``), generated once and reused; a features
    table (``demo_genome_features.tsv``) records every planted element for the demo tasks."""
    import pandas as pd

    from . import paths

    fasta = paths.demo_genome_path()
    features_path = fasta.with_name("demo_genome_features.tsv")
    if fasta.exists() and features_path.exists():
        return fasta
    from .io import write_with

    records, features = make_demo_genome(DemoGenomeConfig())
    write_with(features_path, lambda tmp: pd.DataFrame(features).to_csv(tmp, sep="\t", index=False))
    write_fasta(records, fasta)
    return fasta


def sample_windows(fasta, n: int, length: int, seed: int = 0) -> list[str]:
    """``n`` random A/C/G/T windows of ``length`` nt from a FASTA (uniform over runs long enough)."""
    check_integer("n", n, minimum=0)
    check_integer("length", length)
    runs, buffer = [], b""
    for _, seg in iter_record_segments(fasta):
        buffer += seg.seq
        if not seg.continues:
            if len(buffer) >= length:
                runs.append(buffer)
            buffer = b""
    if not runs:
        raise ValueError(f"{fasta}: no A/C/G/T run of {length} nt or more")
    rng = np.random.default_rng(seed)
    weights = np.array([len(r) - length + 1 for r in runs], dtype=float)
    picks = rng.choice(len(runs), size=n, p=weights / weights.sum())
    return [runs[i][s : s + length].decode() for i, s in
            ((i, int(rng.integers(0, len(runs[i]) - length + 1))) for i in picks)]


# ---------------------------------------------------------------------------------------------
# Pretraining corpus
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusConfig:
    """The released chunking rule (GeneMask Code-A, ``reference/papers.md`` §1.5), made deterministic.

    Per unit (an A/C/G/T run, or a whole record with other letters deleted when ``join_gaps``):
    start at a random offset in [0, min(max_start, len)], then walk non-overlapping chunks, each
    ``full_length`` nt with probability ``full_probability``, else uniform in
    [min_length, full_length - 1] nt (the released 511 or 6..510 nt). Exact duplicates are dropped
    (first occurrence kept); a chunk goes to validation when a keyed hash of its sequence falls
    below ``valid_fraction``, so the split does not depend on order or ``PYTHONHASHSEED``.
    """

    k: int = 6
    max_start: int = 1000
    full_length: int = 511
    full_probability: float = 0.5
    min_length: int = 6
    valid_fraction: float = 0.1
    join_gaps: bool = False  # the released script deletes N and joins sequence across gaps
    seed: int = 12345  # the released script's seed

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.min_length <= self.full_length:
            raise ValueError(f"CorpusConfig: need 1 <= k <= min_length <= full_length, got k={self.k}, "
                             f"min_length={self.min_length}, full_length={self.full_length}")
        for name in ("full_probability", "valid_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"CorpusConfig: {name}={getattr(self, name)!r} must lie in [0, 1]")
        for name in ("max_start", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"CorpusConfig: {name}={value!r} must be an integer >= 0")


def _corpus_units(fasta_paths: list[Path], join_gaps: bool) -> Iterator[bytes]:
    """Units the chunker walks: maximal A/C/G/T runs, or whole records with other letters removed."""
    for path in fasta_paths:
        if join_gaps:
            found = False
            for _, blocks in iter_records_raw(path):
                seq = b"".join(blocks)
                kept = seq.translate(None, bytes(b for b in range(256) if not _ACGT_LUT[b]))
                if kept:
                    found = True
                    yield kept
            if not found:
                raise FastaError(f"{path}: no A/C/G/T base in any record (only N or other IUPAC codes)")
            continue
        parts: list[bytes] = []
        for _, seg in iter_record_segments(path):
            parts.append(seg.seq)
            if not seg.continues:
                yield b"".join(parts)
                parts = []


def iter_corpus_chunks(fasta: str | Path | list, cfg: CorpusConfig = CorpusConfig()) -> Iterator[bytes]:
    """Every chunk of the released rule, in genome order, duplicates included (a deterministic
    function of the files and ``cfg``). Chunks shorter than ``min_length`` (run ends) are dropped."""
    rng = np.random.default_rng(cfg.seed)
    for unit in _corpus_units(_fasta_list(fasta), cfg.join_gaps):
        n = len(unit)
        if n < cfg.min_length:
            continue
        start = int(rng.integers(0, min(cfg.max_start, n) + 1))
        while start < n:
            if rng.random() < cfg.full_probability:
                length = cfg.full_length
            else:
                length = int(rng.integers(cfg.min_length, cfg.full_length))
            chunk = unit[start : start + length]
            start += length
            if len(chunk) >= cfg.min_length:
                yield chunk


def _fasta_list(fasta: str | Path | list) -> list[Path]:
    items = fasta if isinstance(fasta, (list, tuple)) else [fasta]
    if not items:
        raise ValueError("fasta: no FASTA file given")
    return [as_user_path(p, "fasta", FastaError) for p in items]


def _is_validation(chunk: bytes, cfg: CorpusConfig) -> bool:
    import hashlib

    digest = hashlib.blake2b(chunk, digest_size=8, key=str(cfg.seed).encode()).digest()
    return int.from_bytes(digest, "little") < cfg.valid_fraction * 2**64


@dataclass
class TokenChunks:
    """Token ids of many chunks (no [CLS]/[SEP]) as one flat uint16 array plus offsets, so a
    genome-sized split memory-maps instead of living as millions of Python objects."""

    ids: np.ndarray
    offsets: np.ndarray  # len(self) + 1 entries

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class Corpus:
    """A tokenized pretraining corpus: ``train`` and ``valid`` splits and where it is cached."""

    train: TokenChunks
    valid: TokenChunks
    directory: Path
    params: dict


def corpus_key(fasta: str | Path | list, cfg: CorpusConfig) -> str:
    """Cache key: the files (resolved path, size, modification time), every parameter, and the
    source of the code that builds a corpus (this module and the tokenizer), so an edit to either
    builds a new corpus instead of reusing one the old code made."""
    import hashlib
    import json
    from dataclasses import asdict

    from . import __version__

    files = []
    for path in _fasta_list(fasta):
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise FastaError(f"{path}: no such FASTA file") from None
        files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    from .source import library_hash

    code = library_hash(("genome.py", "tokenizer.py"))
    payload = json.dumps({"files": files, "config": asdict(cfg), "version": __version__, "code": code}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_corpus(fasta: str | Path | list, cfg: CorpusConfig = CorpusConfig(), cache_root: Path | None = None) -> Corpus:
    """The tokenized corpus of ``fasta`` under ``cfg``, built once into ``<cache>/corpus/<key>/``
    and memory-mapped afterwards. The folder appears by one rename, so a crash or a concurrent
    builder never leaves a partial corpus that a later run would trust."""
    import hashlib
    import json
    import os
    import shutil
    import tempfile
    from dataclasses import asdict

    from . import paths
    from .io import write_error
    from .tokenizer import encode_batch

    root = (cache_root or paths.cache_dir()) / "corpus"
    directory = root / corpus_key(fasta, cfg)
    if not (directory / "params.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=root))
        try:
            seen: set[bytes] = set()
            splits: dict[str, tuple[list[np.ndarray], list[int]]] = {"train": ([], [0]), "valid": ([], [0])}
            n_chunks = n_duplicates = 0
            batch: list[bytes] = []

            def flush() -> None:
                ids = encode_batch([c.decode("ascii") for c in batch], cfg.k, max_length=None)
                for chunk, row in zip(batch, ids):
                    parts, offsets = splits["valid" if _is_validation(chunk, cfg) else "train"]
                    parts.append(row[1:-1].astype(np.uint16))
                    offsets.append(offsets[-1] + len(row) - 2)
                batch.clear()

            for chunk in iter_corpus_chunks(fasta, cfg):
                n_chunks += 1
                digest = hashlib.blake2b(chunk, digest_size=16).digest()
                if digest in seen:
                    n_duplicates += 1
                    continue
                seen.add(digest)
                batch.append(chunk)
                if len(batch) >= 20_000:
                    flush()
            if batch:
                flush()
            def save(name: str, write) -> None:
                try:  # a full cache: numpy says only "878316 requested and 524224 written"
                    write(tmp / name)
                except OSError as err:
                    raise write_error(directory / name, err) from err

            sizes = {}
            for split, (parts, offsets) in splits.items():
                flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)
                save(f"{split}_ids.npy", lambda path: np.save(path, flat))
                save(f"{split}_offsets.npy", lambda path: np.save(path, np.asarray(offsets, dtype=np.int64)))
                sizes[split] = {"chunks": len(offsets) - 1, "tokens": int(flat.size)}
            params = {"fasta": [str(p) for p in _fasta_list(fasta)], "config": asdict(cfg),
                      "chunks": n_chunks, "duplicates_removed": n_duplicates, "splits": sizes}
            save("params.json", lambda path: path.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n"))
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, directory)
            except OSError:  # another process finished the same corpus first: use theirs
                if not (directory / "params.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        params = json.loads((directory / "params.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{directory / 'params.json'}: damaged corpus cache ({err}); delete {directory} to rebuild it") from None

    def load(split: str) -> TokenChunks:
        return TokenChunks(np.load(directory / f"{split}_ids.npy", mmap_mode="r"),
                           np.load(directory / f"{split}_offsets.npy"))

    return Corpus(load("train"), load("valid"), directory, params)
