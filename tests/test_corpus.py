"""The pretraining corpus: the released chunking rule, gaps, duplicates, the stable split, the cache."""
from __future__ import annotations

import numpy as np
import pytest

from genemask import genome, tokenizer


def random_dna(rng: np.random.Generator, n: int) -> bytes:
    return np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, n)].tobytes()


@pytest.fixture
def fasta(tmp_path):
    rng = np.random.default_rng(0)
    records = {
        "chrA": random_dna(rng, 20_000) + b"N" * 50 + random_dna(rng, 15_000),
        "chrB": random_dna(rng, 9_000).lower() + b"RYN" + random_dna(rng, 3),  # soft-masked, IUPAC, a short tail
    }
    return genome.write_fasta(records, tmp_path / "g.fa")


def units(path, join_gaps=False):
    return list(genome._corpus_units([path], join_gaps))


def test_chunks_follow_the_released_rule(fasta):
    cfg = genome.CorpusConfig()
    chunks = list(genome.iter_corpus_chunks(fasta, cfg))
    lengths = np.array([len(c) for c in chunks])
    assert lengths.min() >= 6 and lengths.max() <= 511
    full = lengths == 511
    assert 0.35 < full.mean() < 0.65  # 511 nt with probability 0.5, else uniform 6..510
    # Chunks tile each A/C/G/T run without overlap, from an offset in [0, 1000].
    text = b"".join(chunks)
    for unit in units(fasta):
        if len(unit) < 6:
            continue
        found = [unit.find(c) for c in chunks if unit.find(c) >= 0][:1]
        assert found and found[0] <= 1000
    assert len(text) <= sum(len(u) for u in units(fasta))
    assert all(set(c) <= set(b"ACGT") for c in chunks)  # uppercase, no N or IUPAC letter


def test_chunks_never_cross_a_gap_unless_joined(fasta):
    assert [len(u) for u in units(fasta)] == [20_000, 15_000, 9_000, 3]  # the tail after RYN is its own run
    assert [len(u) for u in units(fasta, join_gaps=True)] == [35_000, 9_003]  # N and IUPAC deleted, as released
    assert sum(len(c) for c in genome.iter_corpus_chunks(fasta, genome.CorpusConfig(join_gaps=True))) > 34_000


def test_chunking_is_deterministic_and_seeded(fasta):
    a = list(genome.iter_corpus_chunks(fasta))
    assert a == list(genome.iter_corpus_chunks(fasta))
    assert a != list(genome.iter_corpus_chunks(fasta, genome.CorpusConfig(seed=1)))


def test_corpus_tokens_split_duplicates_and_cache(tmp_path):
    rng = np.random.default_rng(1)
    repeat = random_dna(rng, 2000)
    path = genome.write_fasta({"a": repeat, "b": repeat, "c": random_dna(rng, 30_000)}, tmp_path / "dup.fa")
    cfg = genome.CorpusConfig(max_start=0, full_probability=1.0)  # identical records give identical chunks
    corpus = genome.build_corpus(path, cfg, cache_root=tmp_path / "cache")
    chunks = list(genome.iter_corpus_chunks(path, cfg))
    unique = list(dict.fromkeys(chunks))
    assert corpus.params["duplicates_removed"] == len(chunks) - len(unique) > 0
    assert len(corpus.train) + len(corpus.valid) == len(unique)
    # Validation membership is a function of the sequence alone (stable across order and runs).
    valid = [c for c in unique if genome._is_validation(c, cfg)]
    assert len(corpus.valid) == len(valid)
    assert np.array_equal(corpus.valid[0], tokenizer.encode_ids(valid[0].decode(), 6, add_special_tokens=False))
    assert corpus.train.ids.dtype == np.uint16 and corpus.train.lengths.sum() == corpus.train.ids.size
    # Cached: the same folder, not rebuilt; another parameter gives another folder.
    stamp = (corpus.directory / "train_ids.npy").stat().st_mtime_ns
    again = genome.build_corpus(path, cfg, cache_root=tmp_path / "cache")
    assert again.directory == corpus.directory and (again.directory / "train_ids.npy").stat().st_mtime_ns == stamp
    other = genome.build_corpus(path, genome.CorpusConfig(max_start=0, full_probability=1.0, valid_fraction=0.5),
                                cache_root=tmp_path / "cache")
    assert other.directory != corpus.directory
    assert not [p for p in (tmp_path / "cache" / "corpus").iterdir() if p.name.startswith(".")]  # no leftovers


def test_split_fraction_is_about_ten_percent(fasta, tmp_path):
    corpus = genome.build_corpus(fasta, cache_root=tmp_path)
    share = len(corpus.valid) / (len(corpus.valid) + len(corpus.train))
    assert 0.03 < share < 0.2


def test_bad_corpus_inputs(tmp_path):
    with pytest.raises(genome.FastaError, match="no such FASTA"):
        genome.build_corpus(tmp_path / "missing.fa", cache_root=tmp_path)
    with pytest.raises(ValueError, match="min_length"):
        genome.CorpusConfig(min_length=3)
    with pytest.raises(ValueError, match="valid_fraction"):
        genome.CorpusConfig(valid_fraction=1.5)
