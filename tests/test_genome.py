import gzip
import hashlib

import numpy as np
import pytest

from genemask import genome
from helpers import real_data


def _write(path, text: bytes, gz: bool = False):
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(text)
    else:
        path.write_bytes(text)
    return path


def test_segments_split_at_non_acgt_and_records(tmp_path):
    fa = _write(tmp_path / "x.fa", b">r1 desc\r\nACGTnnACgt\r\nTTRAC\r\n>r2\nGGGG\n\nCC\n")
    got = [(name, s.seq, s.continues) for name, s in genome.iter_record_segments(fa)]
    assert got == [("r1", b"ACGT", False), ("r1", b"ACGTTT", False), ("r1", b"AC", False), ("r2", b"GGGGCC", False)]
    assert [(r.name, r.seq) for r in genome.read_fasta(fa)] == [("r1", "ACGTNNACGTTTRAC"), ("r2", "GGGGCC")]


def test_long_runs_come_in_contiguous_pieces(tmp_path):
    rng = np.random.default_rng(0)
    seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, 50_000)].tobytes()
    fa = _write(tmp_path / "x.fa.gz", b">r\n" + b"\n".join(seq[i : i + 70] for i in range(0, len(seq), 70)) + b"\n", gz=True)
    pieces = list(genome.iter_acgt_segments(fa, max_segment=7_000))
    assert b"".join(p.seq for p in pieces) == seq
    assert [p.continues for p in pieces] == [True] * (len(pieces) - 1) + [False]
    assert max(len(p.seq) for p in pieces) <= 7_000


def test_encode_2bit():
    assert genome.encode_2bit(b"ACGT").tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        genome.encode_2bit(b"ACGN")


@pytest.mark.parametrize(
    "content, gz, message",
    [
        (b"ACGTACGT\nACGT\n", False, "no FASTA header line"),
        (b">p\nMKVLAAGIVALLLAAGCSSEQ\n", False, "not nucleotide FASTA"),
        (b"", False, "empty file"),
        (b"Hello, world!\nThis is text.\n", False, "no FASTA header line"),
    ],
)
def test_bad_fasta_gives_one_line_error_naming_the_file(tmp_path, content, gz, message):
    fa = _write(tmp_path / "bad.fa", content, gz)
    with pytest.raises(genome.FastaError, match=message) as err:
        list(genome.iter_acgt_segments(fa))
    assert str(fa) in str(err.value) and "\n" not in str(err.value)


def test_truncated_gzip(tmp_path):
    full = gzip.compress(b">r\n" + b"ACGT" * 50_000 + b"\n")
    fa = _write(tmp_path / "cut.fa.gz", full[: len(full) // 2])
    with pytest.raises(genome.FastaError, match="truncated or corrupt gzip"):
        list(genome.iter_acgt_segments(fa))


def test_headerless_shared_file_is_rejected():
    path = real_data("genome/chr17_brca1_ext.txt")
    with pytest.raises(genome.FastaError, match=r"chr17_brca1_ext.txt:1: no FASTA header"):
        list(genome.iter_acgt_segments(path))


# ACGT bases per file, from MANIFEST.md (non-N lengths).
SHARED_GENOME = {
    "genome/chr2_1-2333275.fa.gz": 2_323_275,
    "genome/chr22_part.fa.gz": 5_699_979,
    "genome/ucsc.hg19.chr20.unittest.fasta.gz": 1_100_000,
    "genome/z.fa": 1_000_000,
    "genome/hg38_chr21_22000000_23000000.fasta": 1_000_001,
    "genome/chr20.250k.fa.gz": 191_930,
    "genome/human_g1k_v37_chr1_59kb.fasta": 49_940,
}


@pytest.mark.parametrize("relative, bases", SHARED_GENOME.items())
def test_every_shared_genome_file(relative, bases):
    path = real_data(relative)
    total = sum(len(s.seq) for s in genome.iter_acgt_segments(path))
    # chr22_part and the chr20 unittest file contain a few IUPAC letters besides N; allow for them.
    assert bases - 100 <= total <= bases


def test_demo_genome_is_deterministic_and_structured():
    records, features = genome.make_demo_genome(genome.DemoGenomeConfig(record_length=200_000, n_records=2))
    again, _ = genome.make_demo_genome(genome.DemoGenomeConfig(record_length=200_000, n_records=2))
    assert hashlib.sha256(b"".join(records.values())).digest() == hashlib.sha256(b"".join(again.values())).digest()
    kinds = {f["kind"] for f in features}
    assert {"cpg_island", "microsatellite", "tandem_repeat", "repeat", "motif", "tss", "gap"} <= kinds
    seq = records["demo1"]
    assert any(c in seq for c in b"acgt") and b"N" in seq  # soft-masked repeats and gaps
    assert seq.upper().count(b"CACACACACACA") > 0  # (CA)n microsatellites


def test_demo_genome_file(tmp_path):
    path = genome.ensure_demo_genome()
    total = sum(len(s.seq) for s in genome.iter_acgt_segments(path))
    assert 2_000_000 <= total <= 5_000_000
