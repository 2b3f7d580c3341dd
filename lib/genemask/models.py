"""Named model configurations: `dnabert`, `logo` and `tiny`, all BERT encoders over the k-mer vocabulary.

GeneMask and CM-GEMS pretrain DNABERT's BERT-base and, with the same code, a 2-layer model of LOGO's
size (papers.md §1.6); `tiny` exists so that tests and the demo profile train in seconds on a CPU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from genemask import tokenizer

if TYPE_CHECKING:
    from genemask.genome import TokenChunks


@dataclass(frozen=True)
class ModelSize:
    """The architectural numbers that distinguish the named configurations."""

    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    hidden_dropout_prob: float
    attention_probs_dropout_prob: float
    max_position_embeddings: int = 512


MODEL_SIZES: dict[str, ModelSize] = {
    # DNABERT-6 (BERT-base), the model GeneMask pretrains for 10K steps.
    "dnabert": ModelSize(12, 768, 12, 3072, 0.1, 0.1),
    # LOGO's size run through DNABERT's code, as in the GeneMask README (about 5M parameters).
    "logo": ModelSize(2, 256, 8, 3072, 0.0, 0.0),
    # Tests and the demo profile only: one step takes milliseconds on a CPU.
    "tiny": ModelSize(2, 64, 4, 128, 0.0, 0.0),
}


def model_config(name: str, k: int = 6, **overrides) -> BertConfig:
    """The `BertConfig` of a named size over the k-mer vocabulary (4101 entries for k = 6)."""
    if name not in MODEL_SIZES:
        raise ValueError(f"model={name!r}: unknown model; choose one of {sorted(MODEL_SIZES)}")
    size = asdict(MODEL_SIZES[name])
    unknown = set(overrides) - set(BertConfig().to_dict()) - {"num_labels"}
    if unknown:
        raise ValueError(f"model {name!r}: unknown config override(s) {sorted(unknown)}")
    config = BertConfig(vocab_size=tokenizer.vocab_size(k), type_vocab_size=2,
                        pad_token_id=tokenizer.PAD_ID, **{**size, **overrides})
    config.kmer = k  # read back by checkpoints' users to refuse a tokenizer of another k
    return config


def masked_lm(name: str, k: int = 6, seed: int | None = None, **overrides) -> BertForMaskedLM:
    """A freshly initialized masked-language model (seeded when `seed` is given)."""
    return _seeded(BertForMaskedLM, model_config(name, k, **overrides), seed)


def sequence_classifier(name: str, num_labels: int, k: int = 6, seed: int | None = None,
                        **overrides) -> BertForSequenceClassification:
    """A randomly initialized classifier: the papers' no-pretraining baseline."""
    return _seeded(BertForSequenceClassification, model_config(name, k, num_labels=num_labels, **overrides), seed)


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _seeded(cls, config: BertConfig, seed: int | None):
    import torch

    if seed is None:
        return cls(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


def size_table(names: tuple[str, ...] = ("dnabert", "logo"), k: int = 6):
    """GeneMask's Appendix Table 4 (DNABERT vs LOGO configuration) from our configs: one row per
    named size with its architecture and the parameter count of the masked-LM model. The models are
    built on torch's meta device, so no weights are allocated."""
    import pandas as pd
    import torch

    rows = []
    for name in names:
        config = model_config(name, k)  # an unknown name fails here, with the known ones listed
        size = MODEL_SIZES[name]
        with torch.device("meta"):
            count = parameter_count(BertForMaskedLM(config))
        rows.append({"model": name, "layers": size.num_hidden_layers, "hidden": size.hidden_size,
                     "heads": size.num_attention_heads, "feed-forward": size.intermediate_size,
                     "dropout": size.hidden_dropout_prob, "max positions": size.max_position_embeddings,
                     "parameters (M)": round(count / 1e6, 2)})
    return pd.DataFrame(rows).set_index("model")


# Masked-LM batches and loss: pretraining trains on them, the yardstick scores with them.

def pad_batch(chunks: TokenChunks, indices, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] ids [SEP] per chunk (ids truncated to ``max_len - 2``), right-padded to the longest."""
    lengths = np.minimum(chunks.lengths[indices], max_len - 2)
    width = int(lengths.max()) + 2
    ids = np.full((len(indices), width), tokenizer.PAD_ID, dtype=np.int64)
    ids[:, 0] = tokenizer.CLS_ID
    for row, (i, n) in enumerate(zip(indices.tolist(), lengths.tolist())):
        ids[row, 1 : n + 1] = chunks[i][:n]
        ids[row, n + 1] = tokenizer.SEP_ID
    ids_t = torch.from_numpy(ids)
    return ids_t, ids_t.ne(tokenizer.PAD_ID).long()


def masked_lm_loss(model, input_ids, attention_mask, labels) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy, number of masked tokens) of a ``BertForMaskedLM``, with the MLM head
    run only at the masked positions (Hugging Face runs the 4**k-way projection at every token,
    then ignores ~85 % of it)."""
    hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    flat_labels = labels.reshape(-1)
    where = (flat_labels != -100).nonzero().squeeze(1)
    logits = model.cls(hidden.reshape(-1, hidden.shape[-1]).index_select(0, where))
    loss = torch.nn.functional.cross_entropy(logits.float(), flat_labels.index_select(0, where), reduction="sum")
    return loss, where.numel()


class MaskedLMLoss(torch.nn.Module):
    """:func:`masked_lm_loss` as a module, so DistributedDataParallel can wrap it."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        return masked_lm_loss(self.model, input_ids, attention_mask, labels)
