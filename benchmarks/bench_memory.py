"""Pretraining memory: anonymous RSS per step over a LOGO run, to show that it stays flat.

Issue 12 saw a LOGO run (random masking, batch 16 x 128 tokens, evaluation every 250 steps) grow
from 1.6 GB to 5.6 GB of anonymous memory by step 1,836. This script reruns that shape in one
process and samples ``/proc/self/status`` (``RssAnon``: heap and anonymous maps, what grows when
memory leaks or fragments; the memory-mapped corpus is ``RssFile`` and is not counted) every
``--every`` micro-batches, appending one JSON line per sample to ``--log`` as it goes, so a
killed run still leaves its curve; the run's metrics.csv is kept beside it (``.metrics.csv``), so
two runs' losses can be compared. ``--tracemalloc`` also diffs Python-level allocations between
the first and the last sample (slow: use it on a shortened run) to tell Python objects that
accumulate from native (torch / glibc) memory.

    GENEMASK_DATA=/path/to/data python benchmarks/bench_memory.py --steps 2000 --log mem.jsonl

By default the FASTA list is the pretrain stage's in ``params/cpu.yaml`` (needs
``$GENEMASK_DATA``); ``--fasta demo`` uses the demo genome.

Last runs (shared 2-core box under load, cpu FASTA list, LOGO, random masking, batch 16 x 128,
eval every 250 steps, one thread; RssAnon in MB at step 0 / 50 / 100 / 150 / 300 / 450):

* before ``pretrain.steady_heap``: 297 / 1,355 / 2,171 / 2,771 (stopped at 150: ~13 MB a step,
  it would not have fitted this 23 GB machine by step 2K);
* after: 330 / 378 / 379 / 380 / 382 / 384 (stopped at 450 for lack of CPU time).

``MALLOC_MMAP_THRESHOLD_=65536``, ``131072`` and ``1048576`` in the environment of the old code
each kept it flat too (342-351 MB at step 40, against 1,091 MB), with losses and perplexities
identical to the last digit: the cause is glibc's sliding mmap threshold, not a leak.

Target (what ``make bench`` runs: ``--steps 80 --every 20 --eval-steps 40``): RssAnon grows by at
most ``--max-growth-mb`` (64 MB) from the second sample (after the optimizer's one-off allocations) to
the end, two evaluations included; the peer is the same run before ``steady_heap``, which grew
~13 MB a step (~1 GB by step 80).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

import targets  # benchmarks/targets.py, beside this script
from genemask import paths, pretrain


def rss_mb() -> dict[str, float]:
    """RssAnon / RssFile / VmHWM of this process, in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def cpu_fasta() -> list[str]:
    """The FASTA list of params/cpu.yaml's pretrain stage, ``${GENEMASK_DATA}`` expanded."""
    spec = yaml.safe_load((paths.ROOT / "params" / "cpu.yaml").read_text())
    stage = next(s for s in spec["stages"] if s["name"] == "pretrain")
    if "GENEMASK_DATA" not in os.environ:
        raise SystemExit("bench_memory: set GENEMASK_DATA (the cpu profile's FASTA list), or pass --fasta demo")
    return [os.path.expandvars(p) for p in stage["params"]["fasta"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--model", default="logo")
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    parser.add_argument("--max-len", dest="max_len", type=int, default=128)
    parser.add_argument("--eval-steps", dest="eval_steps", type=int, default=250)
    parser.add_argument("--save-steps", dest="save_steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fasta", default="cpu", help="'cpu' (params/cpu.yaml's list), 'demo', or a FASTA path")
    parser.add_argument("--every", type=int, default=50, help="sample every this many micro-batches")
    parser.add_argument("--log", default=str(paths.cache_dir() / "bench" / "bench_memory.jsonl"))
    parser.add_argument("--max-growth-mb", dest="max_growth_mb", type=float, default=64.0,
                        help="target: RssAnon growth from the second sample to the end")
    parser.add_argument("--tracemalloc", action="store_true", help="diff Python allocations first vs last sample")
    args = parser.parse_args()

    fasta = cpu_fasta() if args.fasta == "cpu" else (None if args.fasta == "demo" else args.fasta)
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    if args.tracemalloc:
        tracemalloc.start(25)
    snapshots: list = []
    samples: list[float] = []
    started = time.perf_counter()
    original = pretrain._Batches.batch

    def sampled(self, micro_batch: int):
        if micro_batch % args.every == 0:
            sample = {"micro_batch": micro_batch, "seconds": round(time.perf_counter() - started, 1), **rss_mb()}
            samples.append(sample["RssAnon"])
            with open(log, "a") as handle:
                handle.write(json.dumps(sample) + "\n")
            print(json.dumps(sample), flush=True)
            if args.tracemalloc:
                snapshots[1:] = [tracemalloc.take_snapshot()] if snapshots else []
                if not snapshots:
                    snapshots.append(tracemalloc.take_snapshot())
        return original(self, micro_batch)

    pretrain._Batches.batch = sampled
    with tempfile.TemporaryDirectory() as tmp:
        cfg = pretrain.PretrainConfig(
            steps=args.steps, model=args.model, strategy=args.strategy, batch_size=args.batch_size,
            max_len=args.max_len, eval_steps=args.eval_steps, save_steps=args.save_steps, threads=args.threads,
            lr=8e-4, fasta=fasta, out_dir=tmp, resume=False)
        result = pretrain.run(cfg)
        shutil.copyfile(result.metrics_path, log.with_suffix(".metrics.csv"))  # losses, to compare runs
    end = {"micro_batch": "end", "seconds": round(time.perf_counter() - started, 1), **rss_mb()}
    with open(log, "a") as handle:
        handle.write(json.dumps(end) + "\n")
    print(json.dumps(end))
    growth = end["RssAnon"] - samples[min(1, len(samples) - 1)]
    met = targets.report("pretrain memory, RssAnon growth MB", growth, "the run before steady_heap (~13 MB a step)",
                         f"<= {args.max_growth_mb:.0f}", growth <= args.max_growth_mb)
    if args.tracemalloc and len(snapshots) == 2:
        print("largest Python-level growth, first to last sample:")
        for stat in snapshots[1].compare_to(snapshots[0], "traceback")[:10]:
            print(f"{stat.size_diff / 1e6:+.1f} MB in {stat.count_diff:+d} blocks")
            for frame in stat.traceback.format()[-6:]:
                print("   ", frame)
    if not met:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
