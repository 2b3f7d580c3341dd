"""The named sizes match the papers' configurations and refuse unknown names."""
import pytest

from genemask import models


def test_logo_and_dnabert_match_the_papers():
    logo = models.model_config("logo")
    assert (logo.num_hidden_layers, logo.hidden_size, logo.num_attention_heads, logo.intermediate_size) == (2, 256, 8, 3072)
    assert logo.hidden_dropout_prob == 0.0 and logo.vocab_size == 4101 and logo.max_position_embeddings == 512
    assert 4.8e6 < models.parameter_count(models.masked_lm("logo")) < 5.1e6  # "~5.0M parameters"
    bert = models.model_config("dnabert")
    assert (bert.num_hidden_layers, bert.hidden_size, bert.num_attention_heads, bert.hidden_dropout_prob) == (12, 768, 12, 0.1)


def test_seeded_initialization_is_reproducible():
    a, b = models.masked_lm("tiny", seed=3), models.masked_lm("tiny", seed=3)
    assert all((p == q).all() for p, q in zip(a.parameters(), b.parameters()))
    assert models.sequence_classifier("tiny", num_labels=3, seed=0).config.num_labels == 3


def test_unknown_model_and_override_are_named():
    with pytest.raises(ValueError, match="model='huge'.*dnabert"):
        models.model_config("huge")
    with pytest.raises(ValueError, match="hiden_size"):
        models.model_config("tiny", hiden_size=3)


def test_size_table_matches_built_models():
    table = models.size_table(("logo", "tiny"))
    assert table.loc["logo", ["layers", "hidden", "heads", "feed-forward"]].tolist() == [2, 256, 8, 3072]
    assert table.loc["tiny", "parameters (M)"] == round(models.parameter_count(models.masked_lm("tiny", seed=0)) / 1e6, 2)
    with pytest.raises(ValueError, match="unknown model"):
        models.size_table(("huge",))
