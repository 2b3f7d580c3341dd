"""Genome input: a streaming FASTA reader, 2-bit encoding, and the synthetic demo genome.

The reader is the single gate through which sequence enters the package, so it owns the errors a
user can hit with real files (no header, protein text, empty or truncated gzip) and says which file
and line. It reads in large blocks and does its per-base work with ``bytes.translate`` and numpy,
because counting and corpus building stream whole chromosomes through it.
"""
from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

#: Letters a nucleotide FASTA may contain: IUPAC codes (both cases), U, gaps and stop-like '*'.
IUPAC = b"ACGTURYKMSWBDHVNacgturykmswbdhvn-*."
_ACGT_LUT = np.zeros(256, dtype=bool)
for _b in b"ACGTacgt":
    _ACGT_LUT[_b] = True
_2BIT = np.full(256, 255, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _2BIT[_b] = _i
    _2BIT[ord(chr(_b).lower())] = _i

_HEADER = re.compile(rb"^>([^\n]*)(?:\n|$)", re.MULTILINE)
BLOCK_BYTES = 1 << 22  # 4 MiB of file text per read
MAX_SEGMENT = 8_000_000  # longest bytes object yielded at once


class FastaError(ValueError):
    """A file that is not usable nucleotide FASTA; the message names the file (and line)."""


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
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=BLOCK_BYTES)  # type: ignore[arg-type]
    return open(path, "rb", buffering=BLOCK_BYTES)


def _line_blocks(path: Path) -> Iterator[bytes]:
    """Blocks of whole lines (each ends with a newline, except perhaps the file's last)."""
    try:
        fh = _open_binary(path)
    except FileNotFoundError:
        raise FastaError(f"{path}: no such FASTA file") from None
    except IsADirectoryError:
        raise FastaError(f"{path}: is a directory, not a FASTA file") from None
    with fh:
        tail = b""
        while True:
            try:
                block = fh.read(BLOCK_BYTES)
            except (EOFError, zlib.error, gzip.BadGzipFile) as err:
                raise FastaError(f"{path}: truncated or corrupt gzip ({err})") from None
            if not block:
                if tail:
                    yield tail
                return
            block = tail + block
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

    Blocks carry every letter (N and IUPAC codes included), line breaks removed. Each block
    iterator must be consumed before advancing to the next record.
    """
    path = Path(path)
    blocks = _line_blocks(path)
    state = {"line": 1, "pending": None, "seen_header": False, "seen_any": False}

    def sequence_text(text: bytes) -> bytes:
        if text.strip() and not state["seen_header"]:
            raise FastaError(f"{path}:{state['line']}: no FASTA header line ('>name') before the sequence")
        if text.translate(None, IUPAC + b"\r\n \t"):
            raise _bad_line(path, text, state["line"])
        state["line"] += text.count(b"\n")
        return text.translate(None, b"\r\n \t").upper()

    def pieces() -> Iterator[bytes | tuple[str]]:
        # Flattens the file into sequence blocks and ("header",) markers; headers are rare, so a
        # block is cut only at header lines and everything between them is handled in bulk.
        for block in blocks:
            if block.strip():
                state["seen_any"] = True
            pos = 0
            for header in _HEADER.finditer(block):
                if header.start() > pos:
                    yield sequence_text(block[pos : header.start()])
                state["seen_header"] = True
                state["line"] += 1
                yield ((header.group(1).split() or [b""])[0].decode("utf-8", "replace"),)
                pos = header.end()
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


def read_fasta(path: str | Path) -> Iterator[FastaRecord]:
    """Whole records as uppercase strings (for small files and tests; use the segment streams for genomes)."""
    for name, blocks in iter_records_raw(path):
        yield FastaRecord(name, b"".join(blocks).decode("ascii"))


def iter_record_segments(path: str | Path, max_segment: int = MAX_SEGMENT) -> Iterator[tuple[str, Segment]]:
    """(record name, segment) for every maximal A/C/G/T run, streaming; runs never cross records or
    any other letter (N, IUPAC). Lowercase soft-masked bases count as their uppercase base.

    The piece of a run that touches the end of a file block is held back one block, so that its
    ``continues`` flag is known; work stays linear in the file size.
    """
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
                    if e == len(data) and i == len(pieces) - 1:
                        pending = piece
                    else:
                        yield name, Segment(piece, i < len(pieces) - 1)
        if pending is not None:
            yield name, Segment(pending, False)


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
