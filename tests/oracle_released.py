"""Per-position Python transcription of the released masking code: the equivalence reference.

Sources (``reference/papers.md`` §1.4, §2.2): GeneMask ``Code-B_run_pretrain_pmi.py`` at its three
versions (v1 fa0604f, v2 5120456, v3 c761446) and curriculum-GeneMask's
``src/pretraining-adaptive/{Global-pretraining-code, CM-STEP_pretraining_code,
CM-GEMS_pretraining_code}.py`` (60fea76). The loops, the Python ``set``s, the strict ``<`` of the
anchor search, the slice-before-sort of v1/v2 and the stale ``center`` of v1 are kept as released;
only the I/O changes: ranks come from a dict instead of a pickle, the tokenizer's ``decode`` is a
vocabulary lookup, and random draws take an optional ``torch.Generator`` (the released code uses
the global one). ``centres`` may be injected in place of the Bernoulli draw — that is how the
tests compare it with the vectorised collator, whose random stream differs — and the CM-STEP
coin (a numpy draw in the released code) is passed in as ``use_global``.

This file is test-only on purpose: the library has one implementation of each strategy.
"""
from __future__ import annotations

import math
from collections import defaultdict
from copy import deepcopy

import torch

MASK_LIST = {3: [-1, 1], 4: [-1, 1, 2], 5: [-2, -1, 1, 2], 6: [-2, -1, 1, 2, 3]}
MASK_LIST_11_CODE_B = [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]
MASK_LIST_11_CM = [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5]


class ReleasedRanks:
    """``kmer_id_to_pmi_rank`` of the released scripts.

    ``decode(id, skip_special_tokens=True)`` gives the k-mer string of a k-mer id and "" for a
    special id. ``era="code-b"``: the pickled ``defaultdict(int)`` answers 0 for "" (Bug 1b:
    specials rank best). ``era="cm"``: missing keys and rank 0 become 4096 (worst).
    ``lookup="position"`` is the released call (Bug 1: the argument is a position);
    ``"token"`` passes the token id at that position instead.
    """

    def __init__(self, vocab: list[str], rank_of_kmer: dict[str, int], era: str, lookup: str, n_special: int = 5):
        self.vocab = vocab
        self.n_special = n_special
        self.era = era
        self.lookup = lookup
        self.table = defaultdict(int, rank_of_kmer) if era == "code-b" else dict(rank_of_kmer)
        self.worst = len(vocab) - n_special

    def decode(self, token_id: int) -> str:
        if token_id < self.n_special or token_id >= len(self.vocab):
            return ""
        return self.vocab[token_id]

    def kmer_id_to_pmi_rank(self, token_id: int) -> int:
        kmer_sequence = self.decode(token_id)
        if self.era == "code-b":
            try:
                return self.table[kmer_sequence]
            except KeyError:  # dead branch: the dict is a defaultdict
                return 4000
        try:
            pmi_rank = self.table[kmer_sequence]
        except KeyError:
            pmi_rank = self.worst
        if pmi_rank == 0:
            pmi_rank = self.worst
        return pmi_rank

    def at(self, row: list[int], index: int) -> int:
        """Rank used for sequence position ``index`` of ``row``."""
        return self.kmer_id_to_pmi_rank(index if self.lookup == "position" else int(row[index]))


def special_tokens_mask(inputs: torch.Tensor, cls_id: int = 2, sep_id: int = 3, pad_id: int = 0) -> torch.Tensor:
    """DNABERT's ``get_special_tokens_mask(already_has_special_tokens=True)`` ([CLS], [SEP]) plus
    padding, per position."""
    rows = [[1 if x in (sep_id, cls_id) else 0 for x in val] for val in inputs.tolist()]
    mask = torch.tensor(rows, dtype=torch.bool)
    return mask | inputs.eq(pad_id)


def draw_centres(inputs, mlm_probability, generator, centres=None):
    """``probability_matrix`` and the Bernoulli centres, as every released ``mask_tokens`` starts."""
    probability_matrix = torch.full(inputs.shape, mlm_probability)
    probability_matrix.masked_fill_(special_tokens_mask(inputs), value=0.0)
    if centres is None:
        masked_indices = torch.bernoulli(probability_matrix, generator=generator).bool()
    else:
        masked_indices = centres.clone().bool()
    return probability_matrix, masked_indices


def genemask_code_b(inputs, masked_indices, probability_matrix, ranks: ReleasedRanks, version: str, k: int = 6,
                    mask_list_11=MASK_LIST_11_CODE_B):
    """Code-B's per-sequence loop, versions v1 / v2 / v3 (the CM-GEMS GeneMask branch is v2 with
    ``MASK_LIST_11_CM`` and ``era="cm"`` ranks)."""
    mask_list = MASK_LIST[k]
    masks = deepcopy(masked_indices)
    for i, masked_index in enumerate(masks):
        end = torch.where(probability_matrix[i] != 0)[0].tolist()[-1]
        mask_centers = set(torch.where(masked_index == 1)[0].tolist())
        new_centers = deepcopy(mask_centers)
        row = inputs[i].tolist()  # only read by the token-lookup variant

        highest_pmi_id_per_mask_center = []

        for center in mask_centers:
            min_pmi_rank = ranks.at(row, center)
            min_pmi_index = center

            for mask_number in mask_list:
                current_index = center + mask_number
                if current_index <= end and current_index >= 1:
                    new_centers.add(current_index)

                    current_pmi_rank = ranks.at(row, current_index)
                    if current_pmi_rank < min_pmi_rank:
                        min_pmi_rank = current_pmi_rank
                        min_pmi_index = current_index
            highest_pmi_id_per_mask_center.append((min_pmi_rank, min_pmi_index))

        if highest_pmi_id_per_mask_center:
            segment_cnt = math.ceil(len(highest_pmi_id_per_mask_center) / 2)

            if version == "v3":
                if segment_cnt < 5:
                    top_segments_only = highest_pmi_id_per_mask_center
                else:
                    highest_pmi_id_per_mask_center.sort(key=lambda a: a[0])
                    top_segments_only = highest_pmi_id_per_mask_center[0:segment_cnt]
            else:  # v1, v2: sliced before the sort
                if segment_cnt < 5:
                    top_segments_only = highest_pmi_id_per_mask_center
                else:
                    top_segments_only = highest_pmi_id_per_mask_center[0:segment_cnt]
                highest_pmi_id_per_mask_center.sort(key=lambda a: a[0])

            for (pmi_rank, pmi_index) in top_segments_only:
                for mask_number in mask_list_11:
                    if version == "v1":
                        current_index = center + mask_number  # the stale loop variable
                    else:
                        current_index = pmi_index + mask_number
                    if current_index <= end and current_index >= 1:
                        new_centers.add(current_index)

        new_centers = list(new_centers)
        masked_indices[i][new_centers] = True
    return masked_indices


def global_pmi(inputs, masked_indices, probability_matrix, ranks: ReleasedRanks):
    """Global-pretraining-code.py: top-k positions by (rank, index), k = number of centres,
    11-spans; the random centres themselves are un-masked."""
    mask_list_11 = MASK_LIST_11_CM
    masks = deepcopy(masked_indices)
    for i, masked_index in enumerate(masks):
        end = torch.where(probability_matrix[i] != 0)[0].tolist()[-1]
        mask_centers = set(torch.where(masked_index == 1)[0].tolist())
        old_centers = mask_centers
        count_of_mask_centers = len(mask_centers)
        new_centers = set()

        row = inputs[i].tolist()  # only read by the token-lookup variant
        tok_index_pmi_dict = defaultdict(int)
        for token_index in range(1, end + 1):
            tok_index_pmi_dict[token_index] = ranks.at(row, token_index)
        sorted_tok_index_pmi_list = sorted(tok_index_pmi_dict.items(), key=lambda kv: (kv[1], kv[0]))
        top_mask_centers_tuples = sorted_tok_index_pmi_list[0:count_of_mask_centers]

        for (pmi_index, pmi_rank) in top_mask_centers_tuples:
            center = pmi_index
            for mask_number in mask_list_11:
                current_index = center + mask_number
                if current_index <= end and current_index >= 1:
                    new_centers.add(current_index)

        new_centers = list(new_centers)
        old_centers = list(old_centers)
        masked_indices[i][old_centers] = False
        masked_indices[i][new_centers] = True
    return masked_indices


def random_dnabert(inputs, masked_indices, probability_matrix, k: int = 6):
    """DNABERT's span masking (CM-STEP's random branch): the centre plus MASK_LIST, clipped."""
    mask_list = MASK_LIST[k]
    masks = deepcopy(masked_indices)
    for i, masked_index in enumerate(masks):
        end = torch.where(probability_matrix[i] != 0)[0].tolist()[-1]
        mask_centers = set(torch.where(masked_index == 1)[0].tolist())
        new_centers = deepcopy(mask_centers)
        for center in mask_centers:
            for mask_number in mask_list:
                current_index = center + mask_number
                if current_index <= end and current_index >= 1:
                    new_centers.add(current_index)
        new_centers = list(new_centers)
        masked_indices[i][new_centers] = True
    return masked_indices


def corrupt(inputs, masked_indices, generator, vocab_size: int, mask_id: int = 4, low: int = 0):
    """The 80/10/10 tail shared by all released scripts (``low=5`` = our k-mer-only variant)."""
    inputs = inputs.clone()
    labels = inputs.clone()
    labels[~masked_indices] = -100
    indices_replaced = torch.bernoulli(torch.full(labels.shape, 0.8), generator=generator).bool() & masked_indices
    inputs[indices_replaced] = mask_id
    indices_random = torch.bernoulli(torch.full(labels.shape, 0.5), generator=generator).bool() & masked_indices & ~indices_replaced
    random_words = torch.randint(low, vocab_size, labels.shape, dtype=torch.long, generator=generator)
    inputs[indices_random] = random_words[indices_random]
    return inputs, labels


def mask_tokens(inputs, strategy: str, ranks: ReleasedRanks | None, generator, *, mlm_probability: float,
                version: str = "v3", k: int = 6, vocab_size: int = 4101, low: int = 0, centres=None,
                mask_list_11=MASK_LIST_11_CODE_B):
    """One released ``mask_tokens`` call: ``strategy`` is "random", "genemask" or "global"."""
    inputs = inputs.clone()
    probability_matrix, masked_indices = draw_centres(inputs, mlm_probability, generator, centres)
    if strategy == "random":
        masked_indices = random_dnabert(inputs, masked_indices, probability_matrix, k)
    elif strategy == "genemask":
        masked_indices = genemask_code_b(inputs, masked_indices, probability_matrix, ranks, version, k, mask_list_11)
    elif strategy == "global":
        masked_indices = global_pmi(inputs, masked_indices, probability_matrix, ranks)
    else:
        raise ValueError(strategy)
    return corrupt(inputs, masked_indices, generator, vocab_size, low=low)


def cmstep_global_percentage(global_step: int, max_steps: int) -> float:
    increment_block_size = math.floor(max_steps / 100.0)
    return math.floor(global_step / increment_block_size) / 100.0


def cmstep_mask_tokens(inputs, ranks, generator, use_global: bool, **kwargs):
    """CM-STEP: the coin decides Global (p = 0.0136) or DNABERT random (p = 0.025)."""
    if use_global:
        return mask_tokens(inputs, "global", ranks, generator, mlm_probability=0.0136, **kwargs)
    return mask_tokens(inputs, "random", None, generator, mlm_probability=0.025, **kwargs)


def read_file_compute_diff(perplexities: list[float]):
    """CM-GEMS's plateau statistic over the whole eval history (None with < 2 values)."""
    if len(perplexities) < 2:
        return None
    min_diff_val = 10000.0
    for elem_id in range(1, len(perplexities)):
        diff_value = abs(float(perplexities[elem_id]) - float(perplexities[elem_id - 1]))
        if diff_value < min_diff_val:
            min_diff_val = diff_value
    return min_diff_val


def cmgems_mask_tokens(inputs, ranks, generator, perplexities, threshold=1.0, mlm_probability=0.0136, **kwargs):
    """CM-GEMS: GeneMask (v2 selection, p = 0.0176) until the perplexity plateaus, then Global."""
    perplexity_diff = read_file_compute_diff(perplexities)
    if perplexity_diff is not None and perplexity_diff < threshold:
        return mask_tokens(inputs, "global", ranks, generator, mlm_probability=mlm_probability, **kwargs)
    kwargs.setdefault("version", "v2")
    return mask_tokens(inputs, "genemask", ranks, generator, mlm_probability=0.0176, mask_list_11=MASK_LIST_11_CM, **kwargs)
