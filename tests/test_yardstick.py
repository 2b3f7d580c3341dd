"""The common yardstick: identical masked batches for every checkpoint, so scores compare models on
one task; a model trained briefly on the corpus beats its own initialisation on it."""
import math

import pytest
import torch

from genemask import genome, models, pretrain, yardstick


@pytest.fixture(scope="module")
def corpus():
    return genome.build_corpus(str(genome.ensure_demo_genome()))


def test_batches_are_fixed_and_strategy_blind(corpus):
    spec = yardstick.Yardstick(n_chunks=40, batch_size=16)
    a, b = yardstick.fixed_batches(corpus, spec), yardstick.fixed_batches(corpus, spec)
    assert len(a) == 3 and all(torch.equal(x, y) for ba, bb in zip(a, b) for x, y in zip(ba, bb))
    other = yardstick.fixed_batches(corpus, yardstick.Yardstick(n_chunks=40, batch_size=16, seed=1))
    assert not torch.equal(a[0][2], other[0][2])  # another seed masks other tokens
    masked_share = sum(int((labels != -100).sum()) for _, _, labels in a) / sum(int(att.sum()) for _, att, _ in a)
    assert 0.05 < masked_share < 0.3  # DNABERT's rate, about 15 % of tokens


def test_scores_rank_a_trained_model_above_its_initialisation(corpus, tmp_path):
    spec = yardstick.Yardstick(n_chunks=64, batch_size=32)
    batches = yardstick.fixed_batches(corpus, spec)
    untrained = yardstick.score(models.masked_lm("tiny", seed=0), batches)
    assert untrained == yardstick.score(models.masked_lm("tiny", seed=0), batches)  # deterministic
    assert untrained["yardstick_perplexity"] == pytest.approx(math.exp(untrained["yardstick_loss"]))
    cfg = pretrain.PretrainConfig(steps=120, model="tiny", strategy="random", lr=4e-3, eval_steps=0, save_steps=0,
                                  out_dir=str(tmp_path / "run"), threads=1)
    result = pretrain.run(cfg)
    trained = yardstick.score_checkpoint(result.checkpoint, batches)
    assert trained["yardstick_tokens"] == untrained["yardstick_tokens"]
    # 8.3 nats is the uniform 4,101-way guess; 120 steps learn the 6-mer frequencies (about 0.2 nats lower)
    assert trained["yardstick_loss"] < untrained["yardstick_loss"] - 0.1


def test_bad_yardstick_parameters_name_the_parameter(tmp_path):
    for bad in ({"n_chunks": 0}, {"batch_size": -1}, {"max_len": 4}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            yardstick.Yardstick(**bad)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        yardstick.score_checkpoint(tmp_path, [])
