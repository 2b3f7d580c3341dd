"""The corpus cache sees the code that builds corpora: an edited genome.py or tokenizer.py is a new key."""
from genemask import genome
from genemask import source


def test_corpus_key_changes_with_the_corpus_code(tmp_path, monkeypatch):
    fasta = tmp_path / "a.fa"
    fasta.write_text(">a\nACGTACGTACGT\n")
    cfg = genome.CorpusConfig()
    before = genome.corpus_key(fasta, cfg)
    assert genome.corpus_key(fasta, cfg) == before
    real = source._library_hash_cached
    monkeypatch.setattr(source, "_library_hash_cached",
                        lambda root, only: "edited" if "genome.py" in only else real(root, only))
    assert genome.corpus_key(fasta, cfg) != before
