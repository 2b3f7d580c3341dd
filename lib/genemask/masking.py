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

``cmgems-reverse`` is the control the papers never ran (issue 24): global until the same plateau
rule fires at the same ``switch_threshold``, then genemask, one way.

All of it is whole-batch tensor work: centres drawn as a Bernoulli process (geometric gaps, so
~L p uniforms per row instead of L), spans written by one scatter, anchors by gathers, the top
half by a sort, Global by ``topk``; there is no Python loop over tokens, centres or sequences.

Compatibility options reproduce the released code (``reference/papers.md`` §1.4, §2.2) exactly;
``tests/oracle_released.py`` is a per-position Python transcription of it and the tests check
that both mask the same positions given the same centres (``mask_batch(..., centres=)``):

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
batch (converges in the depth of the collision chains, typically 2-6 rounds). It is the one
costly part: v1/v2 need it for every row (~1.7 ms of ~3 ms per 256 x 512 batch); v3 only for
rows where equal anchor ranks at different positions straddle the cut.

**80/10/10** is decided per masked position, as in Hugging Face's
``DataCollatorForLanguageModeling`` and the released code (so a span can mix [MASK], random and
original tokens), from one uniform per masked position: < 0.8 → [MASK], < 0.9 → a random token,
else unchanged. That is the same distribution as their Bernoulli(0.8)-then-Bernoulli(0.5) over
the whole batch, with ~7x fewer draws; the random *stream* therefore differs from theirs.

**Curricula** keep their state on the collator (``set_step``, ``observe_validation_perplexity``,
``phase``, ``state_dict``); :class:`MaskingCurriculumCallback` advances it from a ``Trainer``
and saves it in, and restores it from, the Trainer's checkpoints. The state lives in the process
that calls the collator, so ``cmgems``/``cmgems-reverse``/``cmstep`` need
``dataloader_num_workers=0`` (the callback refuses workers at start-up; or call
:meth:`~DataCollatorForSpanMasking.mask_batch` in the training loop).

**Centre probability, and Hugging Face's masked fraction.** ``centre_probability`` (a single
strategy's) and ``*_probability`` (each phase's) are the probability of a span *centre*: 0.15 as a
GeneMask centre probability masks ~73 % of the tokens of real windows. ``mlm_probability`` means
what it means in ``DataCollatorForLanguageModeling``, the expected masked fraction: given it,
:func:`make_collator` calibrates the centre probability that masks that fraction of
``calibration_examples`` (:func:`calibrated_options`, :func:`centre_probability_for`), because a
span strategy's masked share depends on the sequences (ends clip spans, ranked spans overlap).
:func:`masked_fraction` measures the fraction for a centre probability.
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

STRATEGIES = ("random", "genemask", "global", "cmgems", "cmstep", "cmgems-reverse")
#: The strategies that mask one way throughout (the phases of the curricula).
SINGLE_STRATEGIES = ("random", "genemask", "global")
#: Curricula that switch once, for good, when validation perplexity plateaus: (first, then) phase.
PLATEAU_CURRICULA = {"cmgems": ("genemask", "global"), "cmgems-reverse": ("global", "genemask")}
RANK_LOOKUPS = ("token", "position")
SELECTIONS = ("v1", "v2", "v3")
RANDOM_REPLACEMENTS = ("kmers", "vocab")
#: The papers' centre probabilities: 0.15/6, 0.15/8.5, 0.15/11 (each masks about 15 % of tokens).
DEFAULT_CENTRE_PROBABILITY = {"random": 0.025, "genemask": 0.0176, "global": 0.0136}
#: The masking phases a strategy trains with, each at its own ``<phase>_probability``.
STRATEGY_PHASES: dict[str, tuple[str, ...]] = {
    "random": ("random",), "genemask": ("genemask",), "global": ("global",), "cmstep": ("random", "global"),
    **PLATEAU_CURRICULA,
}
#: ``make_collator``'s two spellings of "how much to mask": a single strategy's centre probability, and
#: Hugging Face's expected masked fraction (converted to centre probabilities by calibration).
CENTRE_PROBABILITY, MLM_PROBABILITY = "centre_probability", "mlm_probability"
#: Seed of the calibration's own generator: the conversion of a masked fraction depends on the
#: examples only, never on (or advancing) a collator's random stream.
CALIBRATION_SEED = 0
#: With fewer than this many "top half" centres (seg = ceil(n/2) < 5, i.e. n <= 8) all are high.
MIN_SEGMENTS_FOR_HALF = 5
_NO_RANK = 1 << 40  # worse than any rank key (ranks <= 4**k, checked): marks positions that cannot be an anchor


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
    special ids are ignored (the collator sets them, see ``special_rank_zero``). k-mer ranks
    must lie in 1..4**k and not all be equal (:func:`genemask.pmi.check_kmer_ranks`).
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
    from .pmi import check_kmer_ranks

    check_kmer_ranks(kmer_ranks.numpy(), k, "rank_table")
    return table


# ----------------------------------------------------------------------------------------------
# Spans


def _spans(rows: torch.Tensor, cols: torch.Tensor, before: int, after: int, shape: tuple[int, int]) -> torch.Tensor:
    """[B, L] bool marks of the spans ``col - before .. col + after`` around each (row, col),
    clipped to the batch (callers clip them to maskable tokens): one scatter for all spans."""
    B, L = shape
    width = L + before + after
    padded = torch.zeros((B, width), dtype=torch.bool, device=rows.device)
    if rows.numel():
        flat = (rows * width + cols).unsqueeze(1) + torch.arange(before + after + 1, device=rows.device)
        padded.view(-1).index_fill_(0, flat.view(-1), True)
    return padded[:, before : before + L].contiguous()


def _marks(rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """[B, L] bool, True at the given (row, col) pairs."""
    out = torch.zeros(shape, dtype=torch.bool, device=rows.device)
    out.view(-1).index_fill_(0, rows * shape[1] + cols, True)
    return out


# ----------------------------------------------------------------------------------------------
# CPython set iteration order

_LINEAR_PROBES = 9  # CPython Objects/setobject.c
_PERTURB_SHIFT = 5


@lru_cache(maxsize=None)
def _probe_steps(table_size: int, n_values: int) -> torch.Tensor:
    """``[n_values + 1, table_size + 1]`` int32: at which step the probe sequence of hash v first
    visits slot s. Column ``table_size`` is a sentinel "no slot" (never chosen) and row
    ``n_values`` a sentinel element that only ever takes it (padding).

    CPython's ``set_add_entry`` checks slot i, and when ``i + 9 <= mask`` the 9 slots after it,
    then jumps to ``(5 i + 1 + perturb) & mask`` with ``perturb >>= 5``. Vectorised over v; the
    loop runs over probe rounds until every slot has been seen (a one-time, cached table).
    """
    mask = table_size - 1
    never = 4 * table_size
    values = np.arange(n_values, dtype=np.int64)
    slot = values & mask
    perturb = values.copy()
    first_visit = np.full((n_values + 1, table_size + 1), never, dtype=np.int64)
    first_visit[n_values, :table_size] = 1 << 30  # worse than any pile of "taken" penalties
    first_visit[n_values, table_size] = 0
    steps = np.zeros(n_values, dtype=np.int64)
    rows = np.arange(n_values)
    while (steps < table_size).any():
        linear = slot + _LINEAR_PROBES <= mask
        for d in range(_LINEAR_PROBES + 1):
            use = linear if d else np.ones(n_values, dtype=bool)
            r, s = rows[use], slot[use] + d
            new = first_visit[r, s] == never
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


def _greedy_slots(values: np.ndarray, valid: np.ndarray, table_size: int) -> np.ndarray:
    """Slots that sequential insertion (in column order) gives each value: the first free slot of
    its probe sequence. Found as the fixed point of "take the first probe slot not held by an
    earlier element" — exact, since element j is right once elements < j are — in a handful of
    whole-batch rounds (the depth of the collision chains). The working set shrinks to the rows
    still moving once they are at most half of it."""
    r, m = values.shape
    n_values = max(512, 1 << int(values.max()).bit_length())  # few cached tables
    steps = _probe_steps(table_size, n_values)[torch.from_numpy(np.where(valid, values, n_values))]
    taken = 8 * table_size  # > any probe step: a held slot is never the first free one
    slots = torch.from_numpy(np.where(valid, values & (table_size - 1), table_size))
    rows = torch.arange(r, device="cpu")  # the working set
    current = slots
    held = torch.zeros((r, m, table_size + 1), dtype=torch.int32, device="cpu")
    for _ in range(m + 1):
        held.scatter_(2, current.unsqueeze(2), taken)
        new = held.cumsum(1, dtype=torch.int32).sub_(held).add_(steps).argmin(2)
        held.scatter_(2, current.unsqueeze(2), 0)  # reset for the next round (cheaper than zeros)
        moving = (new != current).any(1)
        current = new
        n_moving = int(moving.sum())
        if n_moving == 0:
            break
        if 2 * n_moving <= len(rows):
            slots[rows] = current
            rows, current, steps = rows[moving], current[moving], steps[moving]
            held = held[: len(rows)]
    slots[rows] = current
    return slots.numpy()


def python_set_iteration_rank(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Position of each element in ``list(set(row))`` for rows of distinct non-negative ints.

    ``values`` is ``[R, M]``, ascending within a row, the first ``counts[r]`` entries valid (the
    released code builds its sets from ``torch.where`` output, i.e. in increasing order). Returns
    ``[R, M]`` ranks (-1 for padding). Emulates CPython >= 3.7 sets below 50,000 elements.
    Works on these small arrays in numpy, whose per-call overhead is a few times torch's.
    """
    values = values.cpu().numpy().clip(min=0)  # host work (see above); the caller moves the result back
    counts = counts.cpu().numpy()
    R, M = values.shape
    out = np.full((R, M), -1, dtype=np.int64)
    if R == 0 or M == 0:
        return torch.from_numpy(out)
    priority = np.broadcast_to(np.arange(M), (R, M)).copy()  # insertion order, as indices into values
    active = np.arange(R)
    for size, resize_at in _table_stages():
        if len(active) == 0:
            break
        m = min(M, resize_at)
        n = counts[active]
        order_in = priority[active, :m]
        inserted = np.arange(m) < np.minimum(n, resize_at)[:, None]
        here = np.arange(len(active))[:, None]
        slots = _greedy_slots(values[active[:, None], order_in], inserted, size)
        by_slot = slots.argsort(1, kind="stable")
        iteration_rank = np.empty_like(by_slot)
        iteration_rank[here, by_slot] = np.arange(m)
        final = n < resize_at
        if final.any():
            ranks = np.where(inserted, iteration_rank, -1)
            out[active[final][:, None], order_in[final]] = ranks[final]
        # The resize re-inserts the table in slot order, then later elements follow in value order.
        grow = ~final
        carried = order_in[here, by_slot][grow]
        rest = np.broadcast_to(np.arange(m, M), (int(grow.sum()), M - m))
        priority[active[grow]] = np.concatenate([carried, rest], 1)
        active = active[grow]
    return torch.from_numpy(out)


def _set_order(rows, cols, slot, counts, width, need) -> torch.Tensor:
    """Per centre (rows, cols; ``slot`` = its index in its row), its place in
    ``list(set(centres of its row))``, for rows where ``need`` (-1 elsewhere)."""
    device = rows.device
    if bool(need.all()):
        values = torch.zeros((len(need), max(width, 1)), dtype=torch.long, device=device)
        values[rows, slot] = cols
        return python_set_iteration_rank(values, counts).to(device)[rows, slot]
    picked = need[rows]
    order = torch.full_like(rows, -1)
    if not picked.any():
        return order
    need_rows = torch.nonzero(need).squeeze(1)
    compact_row = torch.full((len(need),), -1, dtype=torch.long, device=device)
    compact_row[need_rows] = torch.arange(len(need_rows), device=device)
    values = torch.zeros((len(need_rows), max(width, 1)), dtype=torch.long, device=device)
    values[compact_row[rows[picked]], slot[picked]] = cols[picked]
    ranks = python_set_iteration_rank(values, counts[need_rows]).to(device)
    order[picked] = ranks[compact_row[rows[picked]], slot[picked]]
    return order


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
        for name in ("switch_step", "total_steps", "pad_to_multiple_of", "seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < (0 if name in ("switch_step", "seed") else 1)):
                raise ValueError(f"{name} must be a {'non-negative' if name in ('switch_step', 'seed') else 'positive'} "
                                 f"integer or None, got {value!r}")
        if self.strategy == "cmstep" and self.total_steps is None:
            raise ValueError("total_steps is required for strategy 'cmstep' (its schedule is floor(t / floor(T/100)) / 100)")

        tok = self.tokenizer
        if not all(hasattr(tok, name) for name in ("mask_token_id", "pad_token_id", "all_special_ids", "__len__")):
            raise TypeError(f"tokenizer={type(tok).__name__}: expected a Hugging Face k-mer tokenizer "
                            "(genemask.tokenizer.build_tokenizer)")
        if tok.mask_token_id is None or tok.pad_token_id is None:
            raise ValueError("tokenizer needs a [MASK] and a [PAD] token for masked language modelling")
        self.vocab_size = len(tok)
        special_ids = sorted(set(tok.all_special_ids))
        self.k = _tokenizer_k(self.vocab_size, len(special_ids))
        self.mask_token_id = int(tok.mask_token_id)
        self.pad_token_id = int(tok.pad_token_id)
        self.unk_token_id = None if tok.unk_token_id is None else int(tok.unk_token_id)
        self._special_ids = torch.tensor(special_ids, dtype=torch.long)
        self._is_kmer = torch.ones(self.vocab_size, dtype=torch.bool)
        self._is_kmer[self._special_ids] = False
        self._first_kmer_id = int(torch.nonzero(self._is_kmer)[0, 0])
        self._specials_first = special_ids == list(range(len(special_ids)))  # then `ids >= first k-mer` suffices
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
        self._device_tables: dict[torch.device, dict[str, torch.Tensor]] = {}
        self._worker_checked = False
        self.step = 0
        self.perplexities: list[float] = []
        self.min_perplexity_change: float | None = None
        self.switched_at_step: int | None = None
        self._last_phase = "random" if self.strategy == "cmstep" else None
        # Trainer bookkeeping (MaskingCurriculumCallback): batches collated, the state before the
        # latest one, and a state to load once the next batch is collated (resume replay).
        self.calls = 0
        self.state_before_last_call: dict | None = None
        self._state_after_next_call: dict | None = None

    # ---- curriculum state ---------------------------------------------------------------------

    @property
    def phase(self) -> str:
        """The masking the next batch uses (cmstep: the one the last batch used)."""
        if self.strategy in PLATEAU_CURRICULA:
            first, then = PLATEAU_CURRICULA[self.strategy]
            return then if self.switched_at_step is not None else first
        if self.strategy == "cmstep":
            return self._last_phase
        return self.strategy

    @property
    def centre_probability(self) -> float:
        """Centre probability of the current phase. (No ``mlm_probability`` attribute: under Hugging
        Face's name it would have to be the expected masked fraction, which depends on the data;
        ``last_stats["masked_fraction"]`` is the measured one of the last batch.)"""
        return self._centre_probability(self.phase)

    def global_fraction(self, step: int | None = None) -> float:
        """CM-STEP's probability of a Global batch: floor(t / floor(T/100)) / 100, in 1 % steps.

        The released code divides by floor(T/100), i.e. by zero for T < 100; we use at least 1
        and cap the result at 1."""
        step = self.step if step is None else step
        block = max(1, self.total_steps // 100)
        return min(1.0, math.floor(step / block) / 100.0)

    def set_step(self, step: int) -> None:
        """Tell the collator the optimizer step (drives cmstep, and cmgems(-reverse) with ``switch_step``)."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step={step!r}: expected an optimizer step, an integer >= 0")
        self.step = int(step)
        if self.strategy in PLATEAU_CURRICULA and self.switch_step is not None and self.switched_at_step is None:
            if self.step >= self.switch_step:
                self.switched_at_step = self.step

    def observe_validation_perplexity(self, perplexity: float) -> None:
        """Record a validation perplexity; cmgems switches to Global (cmgems-reverse to GeneMask),
        for good, once the running minimum of |ppl_t - ppl_{t-1}| falls below ``switch_threshold``
        (unless ``switch_step`` fixes the switch instead)."""
        if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float, np.integer, np.floating)) \
                or not math.isfinite(perplexity):
            raise ValueError(f"perplexity={perplexity!r}: expected a finite number (a diverged loss gives nan or inf)")
        perplexity = float(perplexity)
        if self.perplexities:
            change = abs(perplexity - self.perplexities[-1])
            if self.min_perplexity_change is None or change < self.min_perplexity_change:
                self.min_perplexity_change = change
        self.perplexities.append(perplexity)
        if (
            self.strategy in PLATEAU_CURRICULA
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
        missing = [key for key in ("step", "perplexities", "min_perplexity_change", "switched_at_step", "last_phase")
                   if key not in state]
        if missing:
            raise ValueError(f"state_dict: missing {', '.join(map(repr, missing))} (not a collator's state_dict)")
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
        self.state_before_last_call = self.state_dict()
        self.calls += 1
        input_ids, attention_mask = self._pad(examples)
        masked_ids, labels, _ = self.mask_batch(input_ids, attention_mask)
        if self._state_after_next_call is not None:
            self.load_state_dict(self._state_after_next_call)
            self._state_after_next_call = None
        return {"input_ids": masked_ids, "attention_mask": attention_mask, "labels": labels}

    def replay_then_load(self, state_for_next_batch: Mapping[str, Any], state_after: Mapping[str, Any]) -> None:
        """Collate the next batch from ``state_for_next_batch``, then continue from ``state_after``.

        A resumed ``Trainer`` collates again the batch that its loader had collated ahead of
        the checkpoint, under the curriculum and random state of that moment; the curriculum and
        generator then continue from the checkpoint's state (evaluation drew on it in between)."""
        self.load_state_dict(state_for_next_batch)
        self._state_after_next_call = dict(state_after)

    def _pad(self, examples: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch tensors from a dict of batch tensors (fast path), a [B, L] tensor, or a list of
        examples (dicts with ``input_ids``, or bare id sequences) padded at the right."""
        if isinstance(examples, Mapping):
            if "input_ids" not in examples:
                raise ValueError(f"examples: a batch mapping needs 'input_ids' (keys: {sorted(map(str, examples))})")
            ids = _integer_ids(_tensor(examples["input_ids"]))
            attention = examples.get("attention_mask")
            attention = ids.ne(self.pad_token_id) if attention is None else _tensor(attention)
            if attention.shape != ids.shape:
                raise ValueError(f"attention_mask: shape {tuple(attention.shape)} differs from input_ids {tuple(ids.shape)}")
            return ids, attention.long()
        if isinstance(examples, torch.Tensor):
            ids = _integer_ids(examples)
            return ids, ids.ne(self.pad_token_id).long()
        if not isinstance(examples, Sequence) or isinstance(examples, (str, bytes)):
            raise TypeError(f"examples: expected a list of examples, a batch mapping or a tensor, got {type(examples).__name__}")
        if len(examples) == 0:
            raise ValueError("examples: empty batch")
        if isinstance(examples[0], Mapping):
            missing = next((i for i, example in enumerate(examples)
                            if not isinstance(example, Mapping) or "input_ids" not in example), None)
            if missing is not None:
                raise ValueError(f"examples[{missing}]: expected a mapping with 'input_ids' like examples[0]")
            seqs = [example["input_ids"] for example in examples]
            masks = [example["attention_mask"] for example in examples] if "attention_mask" in examples[0] else None
        else:
            seqs, masks = list(examples), None
        empty = next((i for i, seq in enumerate(seqs) if not hasattr(seq, "__len__") or len(seq) == 0), None)
        if empty is not None:
            raise ValueError(f"examples[{empty}]: expected a non-empty sequence of token ids, got {seqs[empty]!r:.60}")
        ids, lengths = _pad_sequences(seqs, self.pad_token_id, self.pad_to_multiple_of)
        if masks is not None:
            attention, mask_lengths = _pad_sequences(masks, 0, self.pad_to_multiple_of)
            if not torch.equal(mask_lengths, lengths):
                row = int(torch.nonzero(mask_lengths != lengths)[0, 0])
                raise ValueError(f"examples[{row}]: attention_mask has {int(mask_lengths[row])} entries, "
                                 f"input_ids {int(lengths[row])}")
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
        the cmstep coin, so tests and figures can fix them. ``info`` holds ``phase``; [B, L] bool
        maps ``centres``, ``anchors`` (positions that got a whole-k-mer span: genemask's high
        anchors, v1's stale centre, global's top-k) and ``masked``; ``masked_fraction``; the
        centres as ``centre_rows`` / ``centre_cols`` (row-major) and, for genemask v2/v3, per
        centre in that order ``anchor_position``, ``anchor_rank`` and ``high``. The input tensor
        is not modified.
        """
        self._seed_worker()
        ids = _tensor(input_ids)
        if ids.ndim != 2:
            raise ValueError(f"input_ids: expected a [batch, length] tensor, got shape {tuple(ids.shape)}")
        ids = _integer_ids(ids).contiguous()  # flat (view(-1)) indexing below
        B, L = ids.shape
        low, high = torch.aminmax(ids) if ids.numel() else (0, 0)
        if int(low) < 0 or int(high) >= self.vocab_size:
            raise ValueError(f"input_ids: ids must lie in [0, {self.vocab_size}) for this tokenizer")
        if self._specials_first:
            maskable = ids >= self._first_kmer_id
        else:
            maskable = self._table("is_kmer", ids.device).index_select(0, ids.view(-1)).view(B, L)
        if attention_mask is not None:
            attention = _tensor(attention_mask)
            if attention.shape != ids.shape:
                raise ValueError(f"attention_mask: shape {tuple(attention.shape)} differs from input_ids {tuple(ids.shape)}")
            maskable &= attention.to(ids.device).bool()
        n_maskable = self._check_kmerized(ids, maskable, attention_mask)

        phase = self._choose_phase(use_global)
        if centres is None:
            rows, cols = self._sample_centres(maskable, self._centre_probability(phase))
        else:
            centres = _tensor(centres).to(ids.device).bool()
            if centres.shape != ids.shape:
                raise ValueError(f"centres: shape {tuple(centres.shape)} differs from input_ids {tuple(ids.shape)}")
            rows, cols = (centres & maskable).nonzero(as_tuple=True)
        counts = torch.bincount(rows, minlength=B)
        centre_marks = _marks(rows, cols, (B, L))

        info: dict[str, Any] = {"phase": phase, "centres": centre_marks, "centre_rows": rows, "centre_cols": cols}
        if phase == "random":
            masked = _spans(rows, cols, *self.nucleotide_span, (B, L))
            info["anchors"] = torch.zeros_like(centre_marks)
        elif phase == "genemask":
            masked = self._genemask(ids, maskable, rows, cols, counts, info)
        else:
            masked = self._global(ids, maskable, counts, info)
        masked &= maskable

        where = masked.view(-1).nonzero().squeeze(1)
        original = ids.view(-1).index_select(0, where)
        labels = torch.full_like(ids, -100)
        labels.view(-1).index_copy_(0, where, original)
        corrupted = ids.clone()
        corrupted.view(-1).index_copy_(0, where, self._corrupt(original))
        n_masked = where.numel()
        fraction = n_masked / n_maskable if n_maskable else 0.0
        info.update(masked=masked, masked_fraction=fraction)
        self.last_stats = {
            "step": self.step,
            "phase": phase,
            "masked_fraction": fraction,
            "masked_tokens": n_masked,
            "maskable_tokens": n_maskable,
            "centres_per_sequence": rows.numel() / max(1, B),
        }
        return corrupted, labels, info

    def _check_kmerized(self, ids: torch.Tensor, maskable: torch.Tensor, attention_mask: Any) -> int:
        """The number of maskable tokens, after refusing a batch with more [UNK] than k-mer tokens:
        text that was not k-merized (raw DNA is one word, one [UNK]) would otherwise be masked not
        at all, silently. Corpus windows are A/C/G/T runs, so no pretraining batch comes near this.
        Both counts come back in one transfer (no extra device sync for a batch on a GPU)."""
        if self.unk_token_id is None:
            return int(maskable.sum())
        unknown = ids == self.unk_token_id
        if attention_mask is not None:
            unknown &= _tensor(attention_mask).to(ids.device).bool().reshape(ids.shape)
        n_maskable, n_unknown = torch.stack([maskable.sum(), unknown.sum()]).tolist()
        if n_unknown > n_maskable:
            raise ValueError(
                f"input_ids: {n_unknown} [UNK] tokens outnumber the {n_maskable} k-mer tokens of this batch: "
                f"the text was not k-merized (call genemask.tokenizer.kmerize first) or is mostly N"
            )
        return n_maskable

    def _table(self, name: str, device: torch.device) -> torch.Tensor:
        """``is_kmer``, ``ranks`` or ``anchor_offsets`` on ``device`` (copied there once), so that
        a batch on a GPU is masked there. Random numbers are still drawn on the CPU generator and
        moved: a batch is masked identically on any device, and resume states stay portable."""
        if device.type == "cpu":
            return {"is_kmer": self._is_kmer, "ranks": self._ranks, "anchor_offsets": self._anchor_offsets}[name]
        tables = self._device_tables.get(device)
        if tables is None:
            tables = {"is_kmer": self._is_kmer.to(device), "anchor_offsets": self._anchor_offsets.to(device),
                      "ranks": self._ranks.to(device) if self._ranks is not None else None}
            self._device_tables[device] = tables
        return tables[name]

    def _sample_centres(self, maskable: torch.Tensor, probability: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Bernoulli(p) centres on the maskable positions, as (rows, cols) in row-major order.

        Drawn as a Bernoulli process over each row: gaps between successes are Geometric(p),
        ``floor(ln U / ln(1-p)) + 1``, so only ~(L p + 6 sd) uniforms per row are needed instead
        of L; successes on non-maskable positions are dropped, which leaves exactly i.i.d.
        Bernoulli(p) on the maskable ones. Rows not yet past their end after the first block
        (a < 1e-9 event per row) get further blocks.
        """
        B, L = maskable.shape
        device = maskable.device
        empty = torch.empty(0, dtype=torch.long, device=device)
        if probability == 0 or B == 0 or L == 0:
            return empty, empty
        if probability == 1:
            return maskable.nonzero(as_tuple=True)
        expected = L * probability
        block = min(L, int(expected + 6 * math.sqrt(expected * (1 - probability)) + 8))
        scale = 1.0 / math.log1p(-probability)
        ends = torch.zeros((B, 1), dtype=torch.float64, device="cpu")  # 1-based position of the last success
        blocks = []
        while True:
            uniforms = torch.rand((B, block), dtype=torch.float64, generator=self.generator, device="cpu")
            steps = torch.log1p(-uniforms).mul_(scale).floor_().add_(1)  # Geometric(p) on 1, 2, ...
            blocks.append(steps.cumsum_(1).add_(ends))
            ends = blocks[-1][:, -1:]
            if bool((ends > L).all()):
                break
        positions = (blocks[0] if len(blocks) == 1 else torch.cat(blocks, 1)).clamp_(max=L + 1).long().to(device)
        first = torch.arange(B, device=device).unsqueeze(1) * L - 1  # flat index of position 1-based p is row * L + p - 1
        keep = (positions <= L) & maskable.view(-1).take(first + positions.clamp(max=L))
        rows, column = keep.nonzero(as_tuple=True)
        return rows, positions[rows, column] - 1

    def _choose_phase(self, use_global: bool | None) -> str:
        if self.strategy in PLATEAU_CURRICULA:
            return self.phase
        if self.strategy != "cmstep":
            return self.strategy
        if use_global is None:
            coin = torch.rand((), generator=self.generator, device="cpu")
            use_global = bool(coin < self.global_fraction())
        self._last_phase = "global" if use_global else "random"
        return self._last_phase

    def _centre_probability(self, phase: str) -> float:
        return getattr(self, f"{phase}_probability")

    def _ranks_by_position(self, length: int, device: torch.device) -> torch.Tensor:
        """Bug 1: the rank at position p is that of vocabulary id p (past the vocabulary: as a
        special token)."""
        ranks = self._table("ranks", device)
        by_position = torch.full((length,), int(self._ranks[self._special_ids[0]]), dtype=torch.long, device=device)
        n = min(length, self.vocab_size)
        by_position[:n] = ranks[:n]
        return by_position

    def _genemask(self, ids, maskable, rows, cols, counts, info) -> torch.Tensor:
        B, L = ids.shape
        device = ids.device
        masked = _spans(rows, cols, *self.nucleotide_span, (B, L))
        n_total = rows.numel()
        width = int(counts.max()) if n_total else 0
        slot = torch.arange(n_total, device=device) - (counts.cumsum(0) - counts)[rows]  # index of a centre in its row

        if self.selection == "v1":
            # Every "high" entry re-adds the 11-span around `center`, the loop variable left over
            # from the anchor loop: the last centre in set order. One 11-span per sequence.
            order = _set_order(rows, cols, slot, counts, width, counts > 0)
            last = order == (counts[rows] - 1)
            info["anchors"] = _marks(rows[last], cols[last], (B, L))
            return masked | _spans(rows[last], cols[last], *self.kmer_span, (B, L))

        # Anchor of each centre: best rank among the centre's 1-nt span; ties keep the first
        # candidate in the released order (centre, -2, -1, +1, +2, +3), as its strict `<` does.
        n_candidates = len(self._anchor_offsets)
        candidates = cols.unsqueeze(1) + self._table("anchor_offsets", device)
        inside = (candidates >= 0) & (candidates < L)
        candidates_c = candidates.clamp(0, L - 1)
        flat = rows.unsqueeze(1) * L + candidates_c
        usable = inside & maskable.view(-1)[flat]
        if self.rank_lookup == "token":
            candidate_ranks = self._table("ranks", device)[ids.view(-1)[flat]]
        else:
            candidate_ranks = self._ranks_by_position(L, device)[candidates_c]
        key = torch.where(usable, candidate_ranks * n_candidates + torch.arange(n_candidates, device=device), _NO_RANK)
        best = key.argmin(1, keepdim=True)
        anchor_position = candidates.gather(1, best).squeeze(1)
        anchor_rank = candidate_ranks.gather(1, best).squeeze(1)

        segments = (counts + 1) // 2  # ceil(n/2)
        all_high = segments < MIN_SEGMENTS_FOR_HALF
        if self.selection == "v2":
            # The half is sliced before the sort: the first ceil(n/2) centres in set order.
            order = _set_order(rows, cols, slot, counts, width, ~all_high)
            high = all_high[rows] | (order < segments[rows])
        else:
            # v3: stable sort by anchor rank (ties in set order), keep the first ceil(n/2).
            tiebreak = slot
            if (~all_high).any():  # some row has >= 9 centres, so width >= 9 > segments
                padded_rank = torch.full((B, width), _NO_RANK, dtype=torch.long, device=device)
                padded_rank[rows, slot] = anchor_rank
                sorted_rank = padded_rank.sort(1).values
                cut = segments.clamp(1, width - 1).unsqueeze(1)
                cut_rank = sorted_rank.gather(1, cut - 1).squeeze(1)
                tie_at_cut = ~all_high & (cut_rank == sorted_rank.gather(1, cut).squeeze(1))
                # The tie-break changes the high anchors only where equal ranks straddle the cut
                # *and* belong to different anchor positions (adjacent centres often share one).
                if tie_at_cut.any():
                    group = tie_at_cut[rows] & (anchor_rank == cut_rank[rows])
                    at, where_ = rows[group], anchor_position[group]
                    lowest = torch.full((B,), L, device=device).scatter_reduce(0, at, where_, "amin")
                    highest = torch.full((B,), -1, device=device).scatter_reduce(0, at, where_, "amax")
                    tie_at_cut &= lowest != highest
                if tie_at_cut.any():
                    order = _set_order(rows, cols, slot, counts, width, tie_at_cut)
                    tiebreak = torch.where(tie_at_cut[rows], order, slot)
            padded_key = torch.full((B, max(width, 1)), _NO_RANK, dtype=torch.long, device=device)
            padded_key[rows, slot] = anchor_rank * (width + 1) + tiebreak
            by_key = padded_key.argsort(1)
            place = torch.empty_like(by_key).scatter_(1, by_key, torch.arange(by_key.shape[1], device=device).expand_as(by_key))
            high = all_high[rows] | (place[rows, slot] < segments[rows])

        info.update(anchors=_marks(rows[high], anchor_position[high], (B, L)), anchor_position=anchor_position, anchor_rank=anchor_rank, high=high)
        return masked | _spans(rows[high], anchor_position[high], *self.kmer_span, (B, L))

    def _global(self, ids, maskable, counts, info) -> torch.Tensor:
        """k = number of centres (their positions are dropped); 11-spans at the k best-ranked
        maskable positions, ties by position (the released ``sorted(key=(rank, index))``)."""
        B, L = ids.shape
        device = ids.device
        k_max = int(counts.max()) if B else 0
        if not k_max:
            info["anchors"] = torch.zeros((B, L), dtype=torch.bool, device=device)
            return torch.zeros((B, L), dtype=torch.bool, device=device)
        positions = torch.arange(L, device=device)
        if self.rank_lookup == "token":
            key = self._table("ranks", device).index_select(0, ids.view(-1)).view(B, L) * L + positions
        else:
            key = (self._ranks_by_position(L, device) * L + positions).expand(B, L)
        key = key.masked_fill(~maskable, _NO_RANK)
        best = key.topk(k_max, dim=1, largest=False, sorted=True).indices
        take = torch.arange(k_max, device=device) < counts.unsqueeze(1)
        rows = torch.arange(B, device=device).unsqueeze(1).expand_as(best)[take]
        cols = best[take]
        info["anchors"] = _marks(rows, cols, (B, L))
        return _spans(rows, cols, *self.kmer_span, (B, L))

    def _corrupt(self, original: torch.Tensor) -> torch.Tensor:
        """80/10/10 for the masked tokens ``original``, one uniform each: below 0.8 → [MASK], below
        0.9 → a random token, else unchanged (Hugging Face's distribution, ~7x fewer draws)."""
        uniforms = torch.rand(original.shape, generator=self.generator, device="cpu").to(original.device)
        low = 0 if self.random_replacement == "vocab" else self._first_kmer_id
        random_tokens = torch.randint(low, self.vocab_size, original.shape, generator=self.generator, device="cpu").to(original.device)
        keep_or_random = torch.where(uniforms < self.mask_replace_prob + self.random_replace_prob, random_tokens, original)
        return torch.where(uniforms < self.mask_replace_prob, self.mask_token_id, keep_or_random)

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


def _tensor(value: Any) -> torch.Tensor:
    """A tensor as it is (on its own device), anything else as a CPU tensor."""
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value, device="cpu")


def _integer_ids(ids: torch.Tensor) -> torch.Tensor:
    """Token ids as a LongTensor; float, complex or boolean ids are refused (``.long()`` would
    truncate 1.7 to 1 without a word)."""
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise ValueError(f"input_ids: expected integer token ids, got {str(ids.dtype).removeprefix('torch.')}")
    return ids.long()


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
        flat = torch.cat([_integer_ids(s.reshape(-1)) for s in seqs])
    elif isinstance(first, np.ndarray):
        lengths = torch.tensor([len(s) for s in seqs])
        flat_np = np.concatenate(seqs)
        if not np.issubdtype(flat_np.dtype, np.integer):
            raise ValueError(f"input_ids: expected integer token ids, got {flat_np.dtype}")
        flat = torch.from_numpy(flat_np.astype(np.int64, copy=False))
    else:
        lengths_np = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        lengths = torch.from_numpy(lengths_np)
        # Read as float64 and compared with its integer cast, so that an id such as 1.7 is refused
        # rather than truncated (exact for every id below 2**53, far past any vocabulary).
        try:
            values = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.float64, count=int(lengths_np.sum()))
        except (TypeError, ValueError) as err:
            raise ValueError(f"input_ids: expected integer token ids ({err})") from None
        finite = np.isfinite(values)
        flat_np = (values if finite.all() else np.where(finite, values, 0)).astype(np.int64)
        wrong = ~finite | (flat_np != values)
        if wrong.any():
            raise ValueError(f"input_ids: expected integer token ids, got {float(values[wrong][0])!r}")
        flat = torch.from_numpy(flat_np)
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
    *,
    calibration_examples: Any = None,
    **options: Any,
) -> DataCollatorForSpanMasking:
    """The masking collator for ``strategy`` (random, genemask, global, cmgems, cmstep, cmgems-reverse).

    ``rank_table``: a LongTensor of NPMI ranks indexed by token id, or a CSV path / DataFrame
    (ours or the authors' Data-A). How much to mask, in one of two spellings:

    * ``centre_probability``: a single strategy's probability of a span *centre* (the papers'
      0.025 / 0.0176 / 0.0136 by default); curricula take ``random_probability`` /
      ``genemask_probability`` / ``global_probability``.
    * ``mlm_probability``: Hugging Face's meaning, the expected masked fraction of the k-mer tokens.
      It needs ``calibration_examples`` (tokenized windows like the ones you train on, anything the
      collator takes): the centre probability that masks that fraction of them is found by
      :func:`calibrated_options` (deterministic, its own seeded generator; a curriculum gets each
      phase calibrated to the fraction). ``collator.centre_probability`` tells the result.

    Other options: ``rank_lookup``, ``selection``, ``special_rank_zero``, ``random_replacement``,
    ``mask_replace_prob``, ``random_replace_prob``, ``switch_threshold``, ``switch_step``,
    ``total_steps``, ``pad_to_multiple_of``.
    """
    _check_choice("strategy", strategy, STRATEGIES)
    known = {f for f in DataCollatorForSpanMasking.__dataclass_fields__ if f not in ("tokenizer", "strategy", "rank_table", "seed", "last_stats")}
    unknown = set(options) - known - {CENTRE_PROBABILITY, MLM_PROBABILITY}
    if unknown:
        raise TypeError(f"make_collator: unknown option {sorted(unknown)[0]!r}; known options: "
                        f"{CENTRE_PROBABILITY}, {MLM_PROBABILITY}, {', '.join(sorted(known))}")
    if MLM_PROBABILITY in options:
        options = calibrated_options(strategy, tokenizer, options, calibration_examples, rank_table)
    elif calibration_examples is not None:
        raise ValueError("calibration_examples: only used to convert mlm_probability (a masked fraction); "
                         "give mlm_probability, or leave calibration_examples out")
    if CENTRE_PROBABILITY in options:
        options = dict(options)
        probability = options.pop(CENTRE_PROBABILITY)
        if strategy not in SINGLE_STRATEGIES:
            raise ValueError(f"{CENTRE_PROBABILITY} is ambiguous for {strategy!r}; "
                             "set random_probability, genemask_probability or global_probability")
        _check_probability(CENTRE_PROBABILITY, probability)
        options[f"{strategy}_probability"] = probability
    return DataCollatorForSpanMasking(tokenizer=tokenizer, strategy=strategy, rank_table=rank_table, seed=seed, **options)


# ----------------------------------------------------------------------------------------------
# Calibration: centre probability <-> expected masked fraction


def check_mlm_probability(value: Any) -> None:
    """Hugging Face's ``mlm_probability`` is a masked fraction: 0 masks nothing, 1 everything."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{MLM_PROBABILITY}={value!r} must lie strictly between 0 and 1 "
                         "(the expected masked fraction, as in DataCollatorForLanguageModeling)")


def check_mlm_options(strategy: str, options: Mapping[str, Any]) -> None:
    """What :func:`calibrated_options` checks before it needs examples: ``mlm_probability`` is a
    masked fraction, and no centre probability of the strategy's phases is given beside it."""
    check_mlm_probability(options[MLM_PROBABILITY])
    _check_choice("strategy", strategy, STRATEGIES)
    given = [name for name in (CENTRE_PROBABILITY, *(f"{phase}_probability" for phase in STRATEGY_PHASES[strategy]))
             if name in options]
    if given:
        raise ValueError(f"{MLM_PROBABILITY} and {given[0]} both set how much {strategy!r} masks; give one of them")


def calibrated_options(strategy: str, tokenizer: Any, options: Mapping[str, Any], examples: Any,
                       rank_table: Any = None) -> dict[str, Any]:
    """``options`` with ``mlm_probability`` (a masked fraction) replaced by the centre probabilities
    that mask it on ``examples``: ``centre_probability`` for a single strategy, and for a curriculum
    each phase's ``<phase>_probability``, each calibrated on its own (so every phase masks the
    fraction, as the papers' defaults 0.15/6, 0.15/8.5, 0.15/11 intend). Other options (rank
    lookup, selection, ...) shape the spans and are calibrated with. Deterministic: the same
    options and examples give the same probabilities (:data:`CALIBRATION_SEED`, a generator of its
    own). Options without ``mlm_probability`` come back as they are."""
    options = dict(options)
    if MLM_PROBABILITY not in options:
        return options
    check_mlm_options(strategy, options)
    fraction = options.pop(MLM_PROBABILITY)
    phases = STRATEGY_PHASES[strategy]
    if examples is None:
        raise ValueError(f"{MLM_PROBABILITY}={fraction!r} is a masked fraction: pass calibration_examples (tokenized "
                         "windows like those you train on) to convert it, since a span strategy's masked share depends "
                         f"on the sequences; or give {CENTRE_PROBABILITY} instead")
    shaping = {name: value for name, value in options.items() if not name.endswith("_probability")}
    centres = {phase: centre_probability_for(fraction, phase, tokenizer, examples, rank_table,
                                             seed=CALIBRATION_SEED, **shaping) for phase in phases}
    if strategy in SINGLE_STRATEGIES:
        return {**options, CENTRE_PROBABILITY: centres[strategy]}
    return {**options, **{f"{phase}_probability": centre for phase, centre in centres.items()}}


# ----------------------------------------------------------------------------------------------
# Calibration: centre probability <-> expected masked fraction

def _single_strategy_collator(strategy: str, tokenizer: Any, rank_table: Any, seed: int,
                              options: Mapping[str, Any]) -> DataCollatorForSpanMasking:
    if strategy not in SINGLE_STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: calibrate one masking at a time ({', '.join(SINGLE_STRATEGIES)}); "
                         "cmgems is genemask then global, cmstep random and global")
    return make_collator(strategy, tokenizer, rank_table, seed=seed, **options)


def _pooled_masked_fraction(collator: DataCollatorForSpanMasking, ids: torch.Tensor, attention: torch.Tensor,
                            probability: float, seed: int, batch_size: int) -> float:
    setattr(collator, f"{collator.strategy}_probability", probability)
    collator.generator.manual_seed(seed)  # the same draws at every probability: a smooth curve to invert
    masked = maskable = 0
    for start in range(0, len(ids), batch_size):
        collator.mask_batch(ids[start : start + batch_size], attention[start : start + batch_size])
        masked += collator.last_stats["masked_tokens"]
        maskable += collator.last_stats["maskable_tokens"]
    if not maskable:
        raise ValueError("examples: no k-mer token to mask")
    return masked / maskable


def masked_fraction(strategy: str, tokenizer: Any, examples: Any, rank_table: Any = None, *,
                    centre_probability: float | None = None, seed: int = 0, batch_size: int = 256,
                    **options: Any) -> float:
    """Share of the maskable (k-mer) tokens of ``examples`` that ``strategy`` masks, pooled over
    all of them, at ``centre_probability`` (default: the strategy's, :data:`DEFAULT_CENTRE_PROBABILITY`).

    ``examples``: anything the collator takes (id sequences, dicts with ``input_ids``, a padded
    tensor). Spans overlap and are clipped at the ends, and GeneMask/Global place them by rank, so
    the fraction depends on the data and the ranking; measure it on the windows you train on.
    """
    collator = _single_strategy_collator(strategy, tokenizer, rank_table, seed, options)
    probability = DEFAULT_CENTRE_PROBABILITY[strategy] if centre_probability is None else centre_probability
    _check_probability("centre_probability", probability)
    ids, attention = collator._pad(examples)
    return _pooled_masked_fraction(collator, ids, attention, probability, seed, batch_size)


def centre_probability_for(target_masked_fraction: float, strategy: str, tokenizer: Any, examples: Any,
                           rank_table: Any = None, *, seed: int = 0, tolerance: float = 5e-4,
                           batch_size: int = 256, **options: Any) -> float:
    """The centre probability at which ``strategy`` masks ``target_masked_fraction`` of the
    maskable tokens of ``examples`` (the inverse of :func:`masked_fraction`).

    Hugging Face's ``mlm_probability`` is the expected masked fraction; the collator's
    ``centre_probability`` and ``*_probability`` are the probability of a span *centre*, so 0.15
    there masks far more than 15 %. This converts the first into the second (``make_collator``'s
    ``mlm_probability`` calls it, through :func:`calibrated_options`). Bisection on the measured fraction with the same random draws at every probability
    (so the curve is smooth and non-decreasing up to sampling noise), to within ``tolerance``;
    ``options`` are ``make_collator``'s (``rank_lookup``, ``selection``, ...). For DNABERT's
    random masking without end effects the answer is ``1 - (1 - fraction) ** (1 / k)``.
    """
    if not (isinstance(target_masked_fraction, (int, float)) and 0.0 < target_masked_fraction < 1.0):
        raise ValueError(f"target_masked_fraction={target_masked_fraction!r} must lie strictly between 0 and 1")
    collator = _single_strategy_collator(strategy, tokenizer, rank_table, seed, options)
    ids, attention = collator._pad(examples)
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        fraction = _pooled_masked_fraction(collator, ids, attention, middle, seed, batch_size)
        if abs(fraction - target_masked_fraction) <= tolerance:
            return middle
        low, high = (middle, high) if fraction < target_masked_fraction else (low, middle)
    raise ValueError(f"{strategy}: no centre probability masks {target_masked_fraction} (+- {tolerance}) of these "
                     f"examples (closest {middle:.6g} masks {fraction:.4f}); use more or longer examples")


try:  # The callback needs only transformers' TrainerCallback; keep the collator usable without it.
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState
except ImportError:  # pragma: no cover
    TrainerCallback = ExportableState = object

CURRICULA = (*PLATEAU_CURRICULA, "cmstep")


def _collator_in(collate_fn: Any) -> DataCollatorForSpanMasking | None:
    """The span-masking collator behind a data loader's ``collate_fn`` (the Trainer may wrap it in a
    ``RemoveColumnsCollator``), or None."""
    for _ in range(4):
        if isinstance(collate_fn, DataCollatorForSpanMasking):
            return collate_fn
        collate_fn = getattr(collate_fn, "data_collator", None)
    return None


class MaskingCurriculumCallback(TrainerCallback, ExportableState):
    """Drives a collator's curriculum from a ``transformers.Trainer`` and keeps it across resume.

    **Step.** ``collator.step`` is the number of finished optimizer steps, set after each step,
    so the CM-GEMS switch recorded at an evaluation is the step count the package's own loop
    (:mod:`genemask.pretrain`) records: the same perplexities give the same switch step.
    Evaluation masks with the current phase (as the released CM-GEMS code does). Accelerate's
    loader collates one batch ahead, so a new step or phase reaches training one batch late —
    negligible for schedules in 1 % steps, and the same in a resumed run.

    **Resume.** An ``ExportableState``: each checkpoint's ``trainer_state.json`` holds the
    collator's curriculum and random state, and ``on_train_begin`` of a resumed run loads it
    back — including the state of the batch the loader had collated ahead, which the resumed
    run collates again — so a run resumed across the CM-GEMS switch masks every batch as the
    uninterrupted run does (map-style datasets; an ``IterableDataset`` re-collates the skipped
    batches). Works whether or not ``restore_callback_states_from_checkpoint`` is set.

    **Workers.** The curriculum lives in the process that collates: ``cmgems``/``cmgems-reverse``/
    ``cmstep`` with ``dataloader_num_workers > 0`` are refused at ``on_train_begin`` (the workers'
    copies would never see a step or a perplexity).
    """

    def __init__(self, collator: DataCollatorForSpanMasking | None = None) -> None:
        self.collator = collator
        self._reset_counts()

    def _reset_counts(self) -> None:
        self._calls_at_start = self.collator.calls if self.collator is not None else 0
        self._calls_at_mark = self._calls_at_start  # calls when the last step or epoch ended
        self._eval_calls = 0  # collations made by evaluation
        self._trained_batches = 0  # micro-batches that went through forward/backward
        self._state_before_latest_training_batch: dict | None = None
        self._training = False

    def state(self) -> dict:
        """Saved with every checkpoint: the collator's state now, and the state it had before
        the batch collated ahead of this checkpoint (None when no batch is ahead)."""
        if self.collator is None or not self._training:
            return {"args": {}, "attributes": {}}
        training_calls = self.collator.calls - self._calls_at_start - self._eval_calls
        ahead = training_calls - self._trained_batches
        if ahead not in (0, 1):
            raise RuntimeError(f"MaskingCurriculumCallback: {ahead} batches collated ahead of training; expected 0 or 1")
        return {"args": {}, "attributes": {"curriculum": {
            "now": self.collator.state_dict(),
            "before_batch_ahead": self._state_before_latest_training_batch if ahead else None,
        }}}

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        if self.collator is None:  # rebuilt by restore_callback_states_from_checkpoint: find it again
            self.collator = _collator_in(getattr(train_dataloader, "collate_fn", None))
            if self.collator is None:
                raise ValueError("MaskingCurriculumCallback: no genemask masking collator in the training data loader")
        if self.collator.strategy in CURRICULA and args.dataloader_num_workers > 0:
            raise ValueError(
                f"MaskingCurriculumCallback: strategy {self.collator.strategy!r} needs dataloader_num_workers=0 "
                f"(got {args.dataloader_num_workers}): the curriculum lives in the collating process"
            )
        saved = (state.stateful_callbacks or {}).get(type(self).__name__, {}).get("attributes", {}).get("curriculum")
        if state.global_step > 0 and saved is not None:
            if saved["before_batch_ahead"] is not None:
                self.collator.replay_then_load(saved["before_batch_ahead"], saved["now"])
            else:
                self.collator.load_state_dict(saved["now"])
        else:
            self.collator.set_step(state.global_step)
        self._reset_counts()
        self._training = True

    def on_train_end(self, args, state, control, **kwargs):
        self._training = False

    def on_step_begin(self, args, state, control, **kwargs):
        # The loader has just fetched this step's batches: its latest collation was for training.
        if self.collator.calls > self._calls_at_mark:
            self._state_before_latest_training_batch = self.collator.state_before_last_call
        self.collator.set_step(state.global_step)

    def on_substep_end(self, args, state, control, **kwargs):
        self._trained_batches += 1

    def on_step_end(self, args, state, control, **kwargs):
        self._trained_batches += 1
        self.collator.set_step(state.global_step)
        self._calls_at_mark = self.collator.calls

    def on_epoch_end(self, args, state, control, **kwargs):
        self._calls_at_mark = self.collator.calls

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._eval_calls += self.collator.calls - self._calls_at_mark
        self._calls_at_mark = self.collator.calls
        if metrics and "eval_loss" in metrics:
            self.collator.observe_validation_perplexity(math.exp(min(metrics["eval_loss"], 700.0)))


#: Named configurations compared in the notebooks, the grids and the book: strategy + options.
#: The ``-position`` ones reproduce the released code (Bug 1 and its companions).
MASKING_VARIANTS: dict[str, dict] = {
    "random": {"strategy": "random"},
    "genemask": {"strategy": "genemask"},  # paper's intent: token lookup, sorted top half (v3)
    "genemask-position-v1": {"strategy": "genemask", "rank_lookup": "position", "selection": "v1",
                             "special_rank_zero": True, "random_replacement": "vocab"},
    "genemask-position-v3": {"strategy": "genemask", "rank_lookup": "position", "selection": "v3",
                             "special_rank_zero": True, "random_replacement": "vocab"},
    "global": {"strategy": "global"},
    "global-position": {"strategy": "global", "rank_lookup": "position", "random_replacement": "vocab"},
    "cmstep": {"strategy": "cmstep", "total_steps": 100},
}


def variant_options(name: str) -> dict:
    """``make_collator`` keyword arguments (strategy included) of a named variant."""
    if name not in MASKING_VARIANTS:
        raise ValueError(f"unknown masking variant {name!r}; known: {', '.join(MASKING_VARIANTS)}")
    return dict(MASKING_VARIANTS[name])
