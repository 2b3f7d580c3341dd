"""Tokenizer throughput: our vectorised batch encoder vs the Hugging Face fast tokenizer.

Both produce the same ids for the same sequences (checked here). Target: ≥ 10 Mbases/s.
Peer: ``PreTrainedTokenizerFast`` (Rust WordLevel) on the same sequences, including the k-mer text
step it needs, because that is what a user of the saved tokenizer runs.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import targets  # benchmarks/targets.py, beside this script
from genemask.tokenizer import build_tokenizer, encode_batch, kmerize


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="sequences")
    parser.add_argument("--length", type=int, default=511, help="nucleotides per sequence")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    seqs = [letters[rng.integers(0, 4, args.length)].tobytes().decode() for _ in range(args.n)]
    bases = args.n * args.length
    tok = build_tokenizer(6)

    ours = encode_batch(seqs)
    theirs = tok([kmerize(s) for s in seqs[:200]], truncation=True)["input_ids"]
    assert all(a.tolist() == b for a, b in zip(ours, theirs)), "ids differ from the HF tokenizer"

    t_ours = best_of(lambda: encode_batch(seqs), args.repeats)
    t_hf = best_of(lambda: tok([kmerize(s) for s in seqs], truncation=True)["input_ids"], args.repeats)
    print(f"{args.n} sequences x {args.length} nt = {bases / 1e6:.2f} Mbases")
    print(f"genemask encode_batch        {t_ours:7.3f} s  {bases / t_ours / 1e6:7.1f} Mbases/s  (target >= 10)")
    print(f"HF fast tokenizer + kmerize  {t_hf:7.3f} s  {bases / t_hf / 1e6:7.1f} Mbases/s")
    print(f"ratio genemask/HF speed: {t_hf / t_ours:.1f}x")
    if not targets.report("tokenizer Mbases/s", bases / t_ours / 1e6, "10 Mbases/s (HF fast tokenizer shown above)",
                          ">= 10", bases / t_ours / 1e6 >= 10):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
