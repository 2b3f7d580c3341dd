"""Every masking strategy of GeneMask and CM-GEMS as one Hugging Face data collator (02_masking).

The strategies (``DESIGN.md`` §3.2) differ only in *where* they put masked spans; everything
else — padding, the 80/10/10 corruption, labels of -100, a seeded ``torch.Generator`` — is shared:

==========  ================================================================================
random      DNABERT: centres ~ Bernoulli(0.025); mask the 1-nucleotide span (-2..+3 for k=6)
genemask    centres ~ Bernoulli(0.0176); 1-nt span around each; anchor = best-ranked token in
            the centre's span; with >= 9 centres the better half (by anchor rank) is "high",
            else all are; mask the whole-k-mer span (-5..+5) around each high anchor
global      k = number of Bernoulli(0.0136) centres; mask -5..+5 around the k best-ranked
            tokens of the sequence (ties by position)
cmgems      genemask until validation perplexity plateaus, then global, one way
cmstep      per batch: global with probability floor(t / floor(T/100)) / 100, else random
==========  ================================================================================

All of it is whole-batch tensor work (gathers, shifted ORs for span dilation, topk, sorts);
there is no Python loop over tokens, centres or sequences.

Compatibility options reproduce the released code (``reference/papers.md`` §1.4, §2.2) exactly;
``tests/oracle_released.py`` is a per-position Python transcription of it and the tests check
that both give identical outputs for the same random stream:

* ``rank_lookup="position"`` — Bug 1: the rank used at position p is ``rank_table[p]``, the rank
  of the vocabulary entry whose id equals the position, so masking ignores sequence content.
* ``selection="v1" | "v2" | "v3"`` — the three released versions of the "top half" rule: v1
  slices the half *before* sorting and re-adds the 11-span around the stale loop variable (the
  last centre iterated) once per high entry, i.e. one 11-span per sequence; v2 slices before
  sorting but anchors at the anchor; v3 sorts by rank first (the paper's intent, default).
* ``special_rank_zero=True`` — Bug 1b: ids 1-4 ([UNK] [CLS] [SEP] [MASK]) rank 0, the best
  (Code-B's pickled ``defaultdict(int)``); otherwise they rank 4**k, as the CM-GEMS-era code
  maps them. Only matters with position lookup (positions 1-4).
* ``random_replacement="vocab"`` — the 10 % random tokens are drawn from the whole vocabulary,
  specials included, as the released code (and Hugging Face) does; default ``"kmers"``.

**Python set order.** The released code iterates ``set(torch.where(centres)[0].tolist())``; v1 and
v2 depend on that order, and v3 on it for ties in anchor rank. A CPython set of ints (hash(i) ==
i) iterates in slot order of its hash table, and the slot of an element is *not* simply
``value mod table_size``: colliding values move on by linear probing (up to 9 slots) and then by
CPython's perturbed jumps ``i = 5 i + 1 + (hash >> 5 r)``, and each resize re-inserts the old
table in its slot order. For the centres (inserted in increasing order) the table has 8 slots for
up to 4 elements, 32 for 5-18, 128 for 19-76, 512 for 77-306, 2048 beyond; "sort by value mod
table size" is wrong for about 40 % of 9-centre sets. :func:`python_set_iteration_rank` emulates
CPython exactly, vectorised: per table size, every element takes the first free slot of its probe
sequence given the elements inserted before it, found by a fixed-point iteration over the whole
batch (converges in the depth of the collision chains, typically 2-4 rounds).

**80/10/10** is decided per masked position, exactly as Hugging Face's
``DataCollatorForLanguageModeling`` and the released code do (Bernoulli(0.8) → [MASK]; of the
rest Bernoulli(0.5) → random token; else unchanged), with the same draw order, so a span can mix
[MASK], random and original tokens.

**Curricula** keep their state on the collator (``set_step``, ``observe_validation_perplexity``,
``phase``, ``state_dict``); :class:`MaskingCurriculumCallback` advances it from a ``Trainer``.
The state lives in the process that calls the collator, so use ``dataloader_num_workers=0`` for
``cmgems``/``cmstep`` (or call :meth:`~DataCollatorForSpanMasking.mask_batch` in the training
loop), or the workers' copies never see the step or the perplexities.
"""
from __future__ import annotations

import base64
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

STRATEGIES = ("random", "genemask", "global", "cmgems", "cmstep")
RANK_LOOKUPS = ("token", "position")
SELECTIONS = ("v1", "v2", "v3")
RANDOM_REPLACEMENTS = ("kmers", "vocab")
#: The papers' centre probabilities: 0.15/6, 0.15/8.5, 0.15/11 (each masks about 15 % of tokens).
DEFAULT_CENTRE_PROBABILITY = {"random": 0.025, "genemask": 0.0176, "global": 0.0136}
#: With fewer than this many "top half" centres (seg = ceil(n/2) < 5, i.e. n <= 8) all are high.
MIN_SEGMENTS_FOR_HALF = 5
_NO_RANK = 1 << 40  # worse than any rank; marks positions that cannot be an anchor


# ----------------------------------------------------------------------------------------------
# Rank tables


def _tokenizer_k(vocab_size: int, n_special: int) -> int:
    n_kmers = vocab_size - n_special
    k = round(math.log(max(n_kmers, 1), 4))
    if 4**k != n_kmers:
        raise ValueError(
            f"tokenizer: {vocab_size} tokens minus {n_special} specials is not 4**k; "
            "the masking collator needs an overlapping k-mer tokenizer"
        )
    return k


def as_rank_table(rank_table: Any, k: int, vocab_size: int) -> torch.Tensor:
    """A rank table as a 1-D LongTensor indexed by token id (rank 1 = highest NPMI).

    Accepts that tensor itself (or a numpy array / list), or a CSV path / DataFrame, which
    :func:`genemask.pmi.load_rank_table` reads (ours or the authors' Data-A layout). Entries of
    special ids are ignored (the collator sets them, see ``special_rank_zero``).
    """
    if isinstance(rank_table, (str, os.PathLike)) or type(rank_table).__name__ == "DataFrame":
        from .pmi import load_rank_table

        rank_table = load_rank_table(rank_table, k=k)
    table = torch.as_tensor(np.asarray(rank_table)).clone()
    if table.ndim != 1:
        raise ValueError(f"rank_table: expected a 1-D table indexed by token id, got shape {tuple(table.shape)}")
    if table.dtype.is_floating_point:
        if not torch.equal(table, table.floor()):
            raise ValueError("rank_table: ranks must be integers")
    table = table.long()
    if len(table) != vocab_size:
        n_special = vocab_size - 4**k
        other_k = round(math.log(max(len(table) - n_special, 1), 4))
        hint = f" (a table for k={other_k}?)" if 4**other_k + n_special == len(table) else ""
        raise ValueError(f"rank_table has {len(table)} entries but the k={k} tokenizer has {vocab_size} tokens{hint}")
    kmer_ranks = table[vocab_size - 4**k :]
    if (kmer_ranks < 1).any():
        missing = int((kmer_ranks < 1).sum())
        first = int(torch.nonzero(kmer_ranks < 1)[0, 0]) + vocab_size - 4**k
        raise ValueError(f"rank_table: {missing} k-mer ids have no rank (< 1), e.g. token id {first}")
    return table


# ----------------------------------------------------------------------------------------------
# Span dilation


def dilate(marks: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """Spread each True of a [B, L] bool tensor to the span ``p - before .. p + after``.

    One shifted OR per offset (6 or 11 whole-batch ops on bool tensors); cheaper here than
    ``max_pool1d``, which needs a float round trip.
    """
    B, L = marks.shape
    padded = marks.new_zeros((B, L + before + after))
    padded[:, after : after + L] = marks  # padded[j] = marks[j - after]
    # out[p] = any(marks[p - after .. p + before]) = any(padded[p .. p + after + before])
    out = padded[:, :L].clone()
    for shift in range(1, before + after + 1):
        out |= padded[:, shift : shift + L]
    return out


# ----------------------------------------------------------------------------------------------
# CPython set iteration order

_LINEAR_PROBES = 9  # CPython Objects/setobject.c
_PERTURB_SHIFT = 5


@lru_cache(maxsize=None)
def _probe_ranks(table_size: int, n_values: int) -> torch.Tensor:
    """``[n_values, table_size]``: at which step the probe sequence of hash v first visits slot s.

    CPython's ``set_add_entry`` checks slot i, and when ``i + 9 <= mask`` the 9 slots after it,
    then jumps to ``(5 i + 1 + perturb) & mask`` with ``perturb >>= 5``. Vectorised over v; the
    loop runs over probe rounds until every slot has been seen (a one-time, cached table).
    """
    mask = table_size - 1
    values = np.arange(n_values, dtype=np.int64)
    slot = values & mask
    perturb = values.copy()
    first_visit = np.full((n_values, table_size), -1, dtype=np.int64)
    steps = np.zeros(n_values, dtype=np.int64)
    rows = np.arange(n_values)
    while (steps < table_size).any():
        linear = slot + _LINEAR_PROBES <= mask
        for d in range(_LINEAR_PROBES + 1):
            use = linear if d else np.ones(n_values, dtype=bool)
            r, s = rows[use], slot[use] + d
            new = first_visit[r, s] < 0
            r, s = r[new], s[new]
            first_visit[r, s] = steps[r]
            steps[r] += 1
        perturb >>= _PERTURB_SHIFT
        slot = (slot * 5 + 1 + perturb) & mask
    return torch.from_numpy(first_visit.astype(np.int32))


def _table_stages():
    """(table size, element count whose insertion triggers a resize) for a growing CPython set."""
    size = 8
    while True:
        resize_at = -(-3 * (size - 1) // 5)  # fill * 5 >= mask * 3
        yield size, resize_at
        new_size = 8
        while new_size <= 4 * resize_at:  # set_table_resize(so, used * 4)
            new_size <<= 1
        size = new_size


def _greedy_slots(values: torch.Tensor, valid: torch.Tensor, table_size: int) -> torch.Tensor:
    """Slots that sequential insertion (in column order) gives each value: the first free slot of
    its probe sequence. Found as the fixed point of "take the first probe slot not held by an
    earlier element" — exact, since element j is right once elements < j are — in a handful of
    whole-batch rounds (the depth of the collision chains)."""
    r, m = values.shape
    n_values = max(512, 1 << int(values.max()).bit_length())  # few cached tables
    probe_step = _probe_ranks(table_size, n_values)[values]  # [r, m, T] int32
    taken_penalty = torch.tensor(table_size, dtype=torch.int32)
    slots = torch.where(valid, values & (table_size - 1), table_size)
    pending = torch.arange(r)  # rows not yet at their fixed point
    for _ in range(m + 1):
        current = slots[pending]
        held = torch.zeros((len(pending), m, table_size + 1), dtype=torch.int32)
        held.scatter_(2, current.unsqueeze(2), 1)
        held_before = (held.cumsum(1, dtype=torch.int32) - held)[..., :table_size].clamp_(max=1)
        new = (probe_step[pending] + held_before * taken_penalty).argmin(2)
        new = torch.where(valid[pending], new, table_size)
        moved = (new != current).any(1)
        slots[pending] = new
        pending = pending[moved]
        if pending.numel() == 0:
            break
    return slots


def python_set_iteration_rank(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Position of each element in ``list(set(row))`` for rows of distinct non-negative ints.

    ``values`` is ``[R, M]``, ascending within a row, the first ``counts[r]`` entries valid (the
    released code builds its sets from ``torch.where`` output, i.e. in increasing order). Returns
    ``[R, M]`` ranks (-1 for padding). Emulates CPython >= 3.7 sets below 50,000 elements.
    """
    R, M = values.shape
    out = torch.full((R, M), -1, dtype=torch.long)
    if R == 0 or M == 0:
        return out
    values = values.clamp(min=0)
    priority = torch.arange(M).expand(R, M).clone()  # insertion order, as indices into values
    active = torch.arange(R)
    for size, resize_at in _table_stages():
        if active.numel() == 0:
            break
        m = min(M, resize_at)
        n = counts[active]
        order_in = priority[active, :m]
        inserted = torch.arange(m) < n.clamp(max=resize_at).unsqueeze(1)
        slots = _greedy_slots(values[active].gather(1, order_in), inserted, size)
        by_slot = slots.argsort(dim=1, stable=True)
        iteration_rank = torch.empty_like(by_slot).scatter_(1, by_slot, torch.arange(m).expand_as(by_slot))
        final = n < resize_at
        if final.any():
            ranks = torch.where(inserted, iteration_rank, -1)[final]
            rows = torch.full((int(final.sum()), M), -1, dtype=torch.long)
            out[active[final]] = rows.scatter_(1, order_in[final], ranks)
        # The resize re-inserts the table in slot order, then later elements follow in value order.
        grow = ~final
        carried = order_in[grow].gather(1, by_slot[grow])
        rest = torch.arange(m, M).expand(int(grow.sum()), M - m)
        priority[active[grow]] = torch.cat([carried, rest], 1)
        active = active[grow]
    return out


# ----------------------------------------------------------------------------------------------
# The collator


@dataclass
class DataCollatorForSpanMasking:
    """Pads k-mer token ids and masks them with one of the GeneMask / CM-GEMS strategies.

    Use as ``Trainer(data_collator=...)``: ``collator(examples)`` returns ``input_ids``,
    ``attention_mask`` and ``labels`` (-100 where not masked). ``mask_batch`` is the same masking
    on padded tensors, with an ``info`` dict (centres, anchors, masked fraction) for figures.
    Defaults are the papers' intent (token lookup, v3); see the module docstring for the
    bug-compatible options. Build it with :func:`make_collator`.
    """

    tokenizer: Any
    strategy: str = "genemask"
    rank_table: torch.Tensor | None = None
    seed: int | None = None
    random_probability: float = DEFAULT_CENTRE_PROBABILITY["random"]
    genemask_probability: float = DEFAULT_CENTRE_PROBABILITY["genemask"]
    global_probability: float = DEFAULT_CENTRE_PROBABILITY["global"]
    rank_lookup: str = "token"
    selection: str = "v3"
    special_rank_zero: bool = False
    random_replacement: str = "kmers"
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    switch_threshold: float = 1.0
    switch_step: int | None = None
    total_steps: int | None = None
    pad_to_multiple_of: int | None = None
    last_stats: dict = field(default_factory=dict, init=False, repr=False)

    # ---- construction -----------------------------------------------------------------------

    def __post_init__(self) -> None:
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("rank_lookup", self.rank_lookup, RANK_LOOKUPS)
        _check_choice("selection", self.selection, SELECTIONS)
        _check_choice("random_replacement", self.random_replacement, RANDOM_REPLACEMENTS)
        for name in ("random_probability", "genemask_probability", "global_probability",
                     "mask_replace_prob", "random_replace_prob"):
            _check_probability(name, getattr(self, name))
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError(
                f"mask_replace_prob + random_replace_prob = {self.mask_replace_prob + self.random_replace_prob} > 1"
            )
        if not (isinstance(self.switch_threshold, (int, float)) and self.switch_threshold >= 0):
            raise ValueError(f"switch_threshold must be a number >= 0, got {self.switch_threshold!r}")
        for name in ("switch_step", "total_steps", "pad_to_multiple_of"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < (0 if name == "switch_step" else 1)):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.strategy == "cmstep" and self.total_steps is None:
            raise ValueError("total_steps is required for strategy 'cmstep' (its schedule is floor(t / floor(T/100)) / 100)")

        tok = self.tokenizer
        if tok.mask_token_id is None or tok.pad_token_id is None:
            raise ValueError("tokenizer needs a [MASK] and a [PAD] token for masked language modelling")
        self.vocab_size = len(tok)
        special_ids = sorted(set(tok.all_special_ids))
        self.k = _tokenizer_k(self.vocab_size, len(special_ids))
        self.mask_token_id = int(tok.mask_token_id)
        self.pad_token_id = int(tok.pad_token_id)
        self._special_ids = torch.tensor(special_ids, dtype=torch.long)
        self._is_kmer = torch.ones(self.vocab_size, dtype=torch.bool)
        self._is_kmer[self._special_ids] = False
        self._first_kmer_id = int(torch.nonzero(self._is_kmer)[0, 0])
        # Span offsets: the k-mers covering one nucleotide (DNABERT's MASK_LIST plus the centre),
        # and the k-mers overlapping a whole k-mer.
        self.nucleotide_span = ((self.k - 1) // 2, self.k // 2)  # (before, after): -2..+3 for k=6
        self.kmer_span = (self.k - 1, self.k - 1)  # -5..+5 for k=6
        # Anchor candidates in the released code's order: the centre, then -2, -1, +1, +2, +3.
        before, after = self.nucleotide_span
        self._anchor_offsets = torch.tensor([0, *range(-before, 0), *range(1, after + 1)])

        needs_ranks = self.strategy != "random"
        if self.rank_table is None:
            if needs_ranks:
                raise ValueError(f"rank_table is required for strategy {self.strategy!r} (an NPMI rank per token id)")
            self._ranks = None
        else:
            ranks = as_rank_table(self.rank_table, self.k, self.vocab_size)
            ranks[self._special_ids] = 0 if self.special_rank_zero else 4**self.k
            self.rank_table = ranks
            self._ranks = ranks

        self.generator = torch.Generator().manual_seed(int(self.seed)) if self.seed is not None else None
        self._worker_checked = False
        self.step = 0
        self.perplexities: list[float] = []
        self.min_perplexity_change: float | None = None
        self.switched_at_step: int | None = None
        self._last_phase = "random" if self.strategy == "cmstep" else None

    # ---- curriculum state ---------------------------------------------------------------------

    @property
    def phase(self) -> str:
        """The masking the next batch uses (cmstep: the one the last batch used)."""
        if self.strategy == "cmgems":
            return "global" if self.switched_at_step is not None else "genemask"
        if self.strategy == "cmstep":
            return self._last_phase
        return self.strategy

    @property
    def mlm_probability(self) -> float:
        """Centre probability of the current phase (Hugging Face's name for it)."""
        return self._centre_probability(self.phase)

    def global_fraction(self, step: int | None = None) -> float:
        """CM-STEP's probability of a Global batch: floor(t / floor(T/100)) / 100, in 1 % steps.

        The released code divides by floor(T/100), i.e. by zero for T < 100; we use at least 1
        and cap the result at 1."""
        step = self.step if step is None else step
        block = max(1, self.total_steps // 100)
        return min(1.0, math.floor(step / block) / 100.0)

    def set_step(self, step: int) -> None:
        """Tell the collator the optimizer step (drives cmstep, and cmgems with ``switch_step``)."""
        self.step = int(step)
        if self.strategy == "cmgems" and self.switch_step is not None and self.switched_at_step is None:
            if self.step >= self.switch_step:
                self.switched_at_step = self.step

    def observe_validation_perplexity(self, perplexity: float) -> None:
        """Record a validation perplexity; cmgems switches to Global, for good, once the running
        minimum of |ppl_t - ppl_{t-1}| falls below ``switch_threshold`` (unless ``switch_step``
        fixes the switch instead)."""
        perplexity = float(perplexity)
        if self.perplexities:
            change = abs(perplexity - self.perplexities[-1])
            if self.min_perplexity_change is None or change < self.min_perplexity_change:
                self.min_perplexity_change = change
        self.perplexities.append(perplexity)
        if (
            self.strategy == "cmgems"
            and self.switch_step is None
            and self.switched_at_step is None
            and self.min_perplexity_change is not None
            and self.min_perplexity_change < self.switch_threshold
        ):
            self.switched_at_step = self.step

    def state_dict(self) -> dict:
        """JSON-serialisable curriculum and random state, for checkpoint/resume."""
        rng = None
        if self.generator is not None:
            rng = base64.b64encode(self.generator.get_state().numpy().tobytes()).decode("ascii")
        return {
            "strategy": self.strategy,
            "step": self.step,
            "perplexities": list(self.perplexities),
            "min_perplexity_change": self.min_perplexity_change,
            "switched_at_step": self.switched_at_step,
            "last_phase": self._last_phase,
            "generator_state": rng,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("strategy") != self.strategy:
            raise ValueError(f"state_dict is for strategy {state.get('strategy')!r}, this collator is {self.strategy!r}")
        self.step = int(state["step"])
        self.perplexities = [float(p) for p in state["perplexities"]]
        self.min_perplexity_change = state["min_perplexity_change"]
        self.switched_at_step = state["switched_at_step"]
        self._last_phase = state["last_phase"]
        if state.get("generator_state") is not None:
            if self.generator is None:
                self.generator = torch.Generator()
            raw = np.frombuffer(base64.b64decode(state["generator_state"]), dtype=np.uint8).copy()
            self.generator.set_state(torch.from_numpy(raw))

    # ---- collation ----------------------------------------------------------------------------

    def __call__(self, examples: Any) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = self._pad(examples)
        masked_ids, labels, _ = self.mask_batch(input_ids, attention_mask)
        return {"input_ids": masked_ids, "attention_mask": attention_mask, "labels": labels}

    def _pad(self, examples: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch tensors from a dict of batch tensors (fast path), a [B, L] tensor, or a list of
        examples (dicts with ``input_ids``, or bare id sequences) padded at the right."""
        if isinstance(examples, Mapping):
            ids = torch.as_tensor(examples["input_ids"]).long()
            attention = examples.get("attention_mask")
            attention = ids.ne(self.pad_token_id) if attention is None else torch.as_tensor(attention)
            return ids, attention.long()
        if isinstance(examples, torch.Tensor):
            return examples.long(), examples.ne(self.pad_token_id).long()
        if len(examples) == 0:
            raise ValueError("examples: empty batch")
        if isinstance(examples[0], Mapping):
            seqs = [example["input_ids"] for example in examples]
            masks = [example["attention_mask"] for example in examples] if "attention_mask" in examples[0] else None
        else:
            seqs, masks = list(examples), None
        ids, lengths = _pad_sequences(seqs, self.pad_token_id, self.pad_to_multiple_of)
        if masks is not None:
            attention, _ = _pad_sequences(masks, 0, self.pad_to_multiple_of)
        else:
            attention = torch.arange(ids.shape[1]) < lengths.unsqueeze(1)
            attention &= ids.ne(self.pad_token_id)  # examples padded already
        return ids, attention.long()

    # ---- masking ------------------------------------------------------------------------------

    def mask_batch(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        centres: torch.Tensor | None = None,
        use_global: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Mask a padded batch: returns ``(corrupted input_ids, labels, info)``.

        ``centres`` (a [B, L] bool tensor) replaces the Bernoulli centre draw and ``use_global``
        the cmstep coin, so tests and figures can fix them. ``info`` holds ``phase``,
        ``centres``, ``anchors`` (positions that got a whole-k-mer span: genemask's high anchors,
        v1's stale centre, global's top-k), ``masked``, ``masked_fraction`` and, for genemask
        v2/v3, per-centre ``anchor_position`` / ``anchor_rank`` / ``high`` ([B, L], -1/False off
        centres). The input tensor is not modified.
        """
        self._seed_worker()
        ids = torch.as_tensor(input_ids)
        if ids.ndim != 2:
            raise ValueError(f"input_ids: expected a [batch, length] tensor, got shape {tuple(ids.shape)}")
        ids = ids.long()
        if ids.numel() and (int(ids.max()) >= self.vocab_size or int(ids.min()) < 0):
            raise ValueError(f"input_ids: ids must lie in [0, {self.vocab_size}) for this tokenizer")
        maskable = self._is_kmer[ids]
        if attention_mask is not None:
            maskable &= torch.as_tensor(attention_mask).bool()

        phase = self._choose_phase(use_global)
        if centres is None:
            probability = torch.full(ids.shape, self._centre_probability(phase))
            probability.masked_fill_(~maskable, 0.0)
            centres = torch.bernoulli(probability, generator=self.generator).bool()
        else:
            centres = torch.as_tensor(centres).bool()
            if centres.shape != ids.shape:
                raise ValueError(f"centres: shape {tuple(centres.shape)} differs from input_ids {tuple(ids.shape)}")
            centres = centres & maskable

        info: dict[str, Any] = {"phase": phase, "centres": centres}
        if phase == "random":
            masked = dilate(centres, *self.nucleotide_span)
            info["anchors"] = torch.zeros_like(centres)
        elif phase == "genemask":
            masked = self._genemask(ids, maskable, centres, info)
        else:
            masked = self._global(ids, maskable, centres, info)
        masked &= maskable

        labels = ids.masked_fill(~masked, -100)
        corrupted = self._corrupt(ids, masked)
        n_masked, n_maskable = int(masked.sum()), int(maskable.sum())
        fraction = n_masked / n_maskable if n_maskable else 0.0
        info.update(masked=masked, masked_fraction=fraction)
        self.last_stats = {
            "step": self.step,
            "phase": phase,
            "masked_fraction": fraction,
            "masked_tokens": n_masked,
            "maskable_tokens": n_maskable,
            "centres_per_sequence": float(centres.sum()) / max(1, ids.shape[0]),
        }
        return corrupted, labels, info

    def _choose_phase(self, use_global: bool | None) -> str:
        if self.strategy == "cmgems":
            return self.phase
        if self.strategy != "cmstep":
            return self.strategy
        if use_global is None:
            coin = torch.rand((), generator=self.generator)
            use_global = bool(coin < self.global_fraction())
        self._last_phase = "global" if use_global else "random"
        return self._last_phase

    def _centre_probability(self, phase: str) -> float:
        return getattr(self, f"{phase}_probability")

    def _ranks_at(self, ids: torch.Tensor) -> torch.Tensor:
        """NPMI rank used at every position: of the token there, or (Bug 1) of the vocabulary
        entry whose id equals the position (positions past the vocabulary rank as specials)."""
        if self.rank_lookup == "token":
            return self._ranks[ids]
        B, L = ids.shape
        by_position = torch.full((L,), int(self._ranks[self._special_ids[0]]), dtype=torch.long)
        n = min(L, self.vocab_size)
        by_position[:n] = self._ranks[:n]
        return by_position.expand(B, L)

    def _genemask(self, ids: torch.Tensor, maskable: torch.Tensor, centres: torch.Tensor, info: dict) -> torch.Tensor:
        B, L = ids.shape
        masked = dilate(centres, *self.nucleotide_span)
        counts = centres.sum(1)
        rows, cols = centres.nonzero(as_tuple=True)  # row-major: ascending positions per row
        n_total = rows.numel()
        width = int(counts.max()) if n_total else 0
        slot = torch.arange(n_total) - (counts.cumsum(0) - counts)[rows]  # index of a centre in its row
        anchors = torch.zeros_like(centres)

        if self.selection == "v1":
            # Every "high" entry re-adds the 11-span around `center`, the loop variable left over
            # from the anchor loop: the last centre in set order. One 11-span per sequence.
            order = self._set_order(rows, cols, slot, counts, width, counts > 0)
            last = order == (counts[rows] - 1)
            anchors[rows[last], cols[last]] = True
            info["anchors"] = anchors
            return masked | dilate(anchors, *self.kmer_span)

        # Anchor of each centre: best rank among the centre's 1-nt span; ties keep the first
        # candidate in the released order (centre, -2, -1, +1, +2, +3), as its strict `<` does.
        ranks = self._ranks_at(ids)
        candidates = cols.unsqueeze(1) + self._anchor_offsets
        inside = (candidates >= 0) & (candidates < L)
        candidates_c = candidates.clamp(0, L - 1)
        row_c = rows.unsqueeze(1).expand_as(candidates_c)
        usable = inside & maskable[row_c, candidates_c]
        candidate_ranks = ranks[row_c, candidates_c]
        key = torch.where(usable, candidate_ranks * len(self._anchor_offsets) + torch.arange(len(self._anchor_offsets)), _NO_RANK)
        best = key.argmin(1, keepdim=True)
        anchor_position = candidates.gather(1, best).squeeze(1)
        anchor_rank = candidate_ranks.gather(1, best).squeeze(1)

        segments = (counts + 1) // 2  # ceil(n/2)
        all_high = segments < MIN_SEGMENTS_FOR_HALF
        if self.selection == "v2":
            # The half is sliced before the sort: the first ceil(n/2) centres in set order.
            needs_order = ~all_high
            order = self._set_order(rows, cols, slot, counts, width, needs_order)
            high = all_high[rows] | (order < segments[rows])
        else:
            # v3: stable sort by anchor rank (ties in set order), keep the first ceil(n/2).
            tie_at_cut = torch.zeros_like(all_high)
            if (~all_high).any():  # some row has >= 9 centres, so width >= 9 > segments
                padded_rank = torch.full((B, width), _NO_RANK, dtype=torch.long)
                padded_rank[rows, slot] = anchor_rank
                sorted_rank = padded_rank.sort(1).values
                cut = segments.clamp(1, width - 1).unsqueeze(1)
                equal = (sorted_rank.gather(1, cut - 1) == sorted_rank.gather(1, cut)).squeeze(1)
                tie_at_cut = ~all_high & equal
            # Only where equal ranks straddle the cut does the tie-break change the high set.
            tiebreak = slot.clone()
            if tie_at_cut.any():
                order = self._set_order(rows, cols, slot, counts, width, tie_at_cut)
                tiebreak = torch.where(tie_at_cut[rows], order, slot)
            padded_key = torch.full((B, max(width, 1)), _NO_RANK, dtype=torch.long)
            padded_key[rows, slot] = anchor_rank * (width + 1) + tiebreak
            by_key = padded_key.argsort(1)
            place = torch.empty_like(by_key).scatter_(1, by_key, torch.arange(by_key.shape[1]).expand_as(by_key))
            high = all_high[rows] | (place[rows, slot] < segments[rows])

        anchors[rows[high], anchor_position[high]] = True
        info["anchors"] = anchors
        info["anchor_position"] = torch.full((B, L), -1, dtype=torch.long).index_put_((rows, cols), anchor_position)
        info["anchor_rank"] = torch.full((B, L), -1, dtype=torch.long).index_put_((rows, cols), anchor_rank)
        info["high"] = torch.zeros_like(centres).index_put_((rows, cols), high)
        return masked | dilate(anchors, *self.kmer_span)

    @staticmethod
    def _set_order(rows, cols, slot, counts, width, need) -> torch.Tensor:
        """Per centre, its place in ``list(set(centres of its row))`` (rows where ``need``; -1 elsewhere)."""
        picked = need[rows]
        order = torch.full_like(rows, -1)
        if not picked.any():
            return order
        need_rows = torch.nonzero(need).squeeze(1)
        compact_row = torch.full((len(need),), -1, dtype=torch.long)
        compact_row[need_rows] = torch.arange(len(need_rows))
        values = torch.zeros((len(need_rows), max(width, 1)), dtype=torch.long)
        values[compact_row[rows[picked]], slot[picked]] = cols[picked]
        ranks = python_set_iteration_rank(values, counts[need_rows])
        order[picked] = ranks[compact_row[rows[picked]], slot[picked]]
        return order

    def _global(self, ids: torch.Tensor, maskable: torch.Tensor, centres: torch.Tensor, info: dict) -> torch.Tensor:
        """k = number of centres (their positions are dropped); 11-spans at the k best-ranked
        maskable positions, ties by position (the released ``sorted(key=(rank, index))``)."""
        B, L = ids.shape
        counts = centres.sum(1)
        anchors = torch.zeros_like(centres)
        k_max = int(counts.max()) if B else 0
        if k_max:
            key = self._ranks_at(ids) * L + torch.arange(L)
            key = key.masked_fill(~maskable, _NO_RANK)
            best = key.topk(k_max, dim=1, largest=False, sorted=True).indices
            take = torch.arange(k_max) < counts.unsqueeze(1)
            anchors.scatter_(1, best, take)
        info["anchors"] = anchors
        return dilate(anchors, *self.kmer_span)

    def _corrupt(self, ids: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """80/10/10 per masked position, in Hugging Face's (and the released code's) draw order."""
        g = self.generator
        replaced = torch.bernoulli(torch.full(ids.shape, self.mask_replace_prob), generator=g).bool() & masked
        out = ids.masked_fill(replaced, self.mask_token_id)
        if self.mask_replace_prob == 1 or self.random_replace_prob == 0:
            return out
        scaled = self.random_replace_prob / (1 - self.mask_replace_prob)
        randomized = torch.bernoulli(torch.full(ids.shape, scaled), generator=g).bool() & masked & ~replaced
        low = 0 if self.random_replacement == "vocab" else self._first_kmer_id
        words = torch.randint(low, self.vocab_size, ids.shape, generator=g)
        return torch.where(randomized, words, out)

    def _seed_worker(self) -> None:
        """In a DataLoader worker, reseed with seed + worker id (as Hugging Face does), once."""
        if self._worker_checked:
            return
        self._worker_checked = True
        worker = torch.utils.data.get_worker_info()
        if worker is not None and self.seed is not None:
            self.generator = torch.Generator().manual_seed(int(self.seed) + worker.id)


# ----------------------------------------------------------------------------------------------
# Helpers


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}")


def _check_probability(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} must be a probability in [0, 1]")


def _pad_sequences(seqs: Sequence[Any], pad_value: int, multiple: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences into one LongTensor: one flat copy plus a boolean scatter (no
    per-token Python; ``np.fromiter`` over the chained lists is ~5x faster than torch.tensor)."""
    first = seqs[0]
    if isinstance(first, torch.Tensor):
        lengths = torch.tensor([len(s) for s in seqs])
        flat = torch.cat([s.reshape(-1).long() for s in seqs])
    elif isinstance(first, np.ndarray):
        lengths = torch.tensor([len(s) for s in seqs])
        flat = torch.from_numpy(np.concatenate(seqs).astype(np.int64, copy=False))
    else:
        lengths_np = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        lengths = torch.from_numpy(lengths_np)
        flat = torch.from_numpy(np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64, count=int(lengths_np.sum())))
    width = int(lengths.max())
    if multiple:
        width = -(-width // multiple) * multiple
    if bool((lengths == width).all()):
        return flat.view(len(seqs), width), lengths
    out = torch.full((len(seqs), width), pad_value, dtype=torch.long)
    out[torch.arange(width) < lengths.unsqueeze(1)] = flat
    return out, lengths


def make_collator(
    strategy: str,
    tokenizer: Any,
    rank_table: Any = None,
    seed: int | None = None,
    **options: Any,
) -> DataCollatorForSpanMasking:
    """The masking collator for ``strategy`` (random, genemask, global, cmgems, cmstep).

    ``rank_table``: a LongTensor of NPMI ranks indexed by token id, or a CSV path / DataFrame
    (ours or the authors' Data-A). ``mlm_probability`` sets the centre probability of a single
    strategy; curricula take ``random_probability`` / ``genemask_probability`` /
    ``global_probability``. Other options: ``rank_lookup``, ``selection``,
    ``special_rank_zero``, ``random_replacement``, ``mask_replace_prob``,
    ``random_replace_prob``, ``switch_threshold``, ``switch_step``, ``total_steps``,
    ``pad_to_multiple_of``.
    """
    _check_choice("strategy", strategy, STRATEGIES)
    known = {f for f in DataCollatorForSpanMasking.__dataclass_fields__ if f not in ("tokenizer", "strategy", "rank_table", "seed", "last_stats")}
    unknown = set(options) - known - {"mlm_probability"}
    if unknown:
        raise TypeError(f"make_collator: unknown option {sorted(unknown)[0]!r}; known options: mlm_probability, {', '.join(sorted(known))}")
    if "mlm_probability" in options:
        probability = options.pop("mlm_probability")
        if strategy in ("cmgems", "cmstep"):
            raise ValueError(
                f"mlm_probability is ambiguous for {strategy!r}; set random_probability, genemask_probability or global_probability"
            )
        _check_probability("mlm_probability", probability)
        options[f"{strategy}_probability"] = probability
    return DataCollatorForSpanMasking(tokenizer=tokenizer, strategy=strategy, rank_table=rank_table, seed=seed, **options)


try:  # The callback needs only transformers' TrainerCallback; keep the collator usable without it.
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover
    TrainerCallback = object


class MaskingCurriculumCallback(TrainerCallback):
    """Drives a collator's curriculum from a ``transformers.Trainer``: the global step before each
    step, and exp(eval_loss) after each evaluation (which uses the current phase's masking, as
    in the released CM-GEMS code)."""

    def __init__(self, collator: DataCollatorForSpanMasking) -> None:
        self.collator = collator

    def on_step_begin(self, args, state, control, **kwargs):
        self.collator.set_step(state.global_step)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            self.collator.observe_validation_perplexity(math.exp(min(metrics["eval_loss"], 700.0)))
