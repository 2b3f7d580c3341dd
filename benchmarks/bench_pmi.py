"""n-gram counting: all orders n = 1..10 (genemask) vs jellyfish for k = 10 alone, same FASTA.

Target: genemask's n = 1..10 in <= 0.5 x the time of ``jellyfish count -m 10 -t 2``
on the same 50 Mbp FASTA, both on 2 cores, with memory that does not grow with the genome. Also
checks that our 6- and 10-mer counts equal jellyfish's (strand-specific: no ``-C``).

The default input tiles the shared human slices under $GENEMASK_DATA (long N gaps shortened to
100 N) up to 50 Mbp, or a seeded synthetic genome when they are absent; it is written once under
the cache folder (never into git). Both tools read the same plain-text file from the page cache.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import targets  # benchmarks/targets.py, beside this script
from genemask import genome, paths, pmi

HUMAN_SLICES = paths.HUMAN_FASTA
LONG_GAP = re.compile(rb"[Nn]{101,}")


def _write_records(path: Path, records, target_bp: int, width: int = 60) -> None:
    written = 0
    with open(path, "wb") as fh:
        copy = 0
        while written < target_bp:
            for name, seq in records:
                fh.write(b">%s_copy%d\n" % (name.encode(), copy))
                for i in range(0, len(seq), width):
                    fh.write(seq[i : i + width] + b"\n")
                written += len(seq)
                if written >= target_bp:
                    break
            copy += 1


def bench_fasta(target_bp: int, source: str) -> Path:
    """The benchmark FASTA (cached): tiled human slices or a synthetic genome with N gaps."""
    folder = paths.cache_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    slices = [paths.data_dir() / f for f in HUMAN_SLICES]
    if source == "auto":
        source = "human" if all(p.exists() for p in slices) else "synthetic"
    path = folder / f"pmi_{source}_{target_bp // 1_000_000}mbp.fa"
    if path.exists():
        return path
    if source == "human":
        records = []
        for file in slices:
            for rec in genome.read_fasta(file):  # uppercase; soft-masking is irrelevant to counts
                records.append((rec.name, LONG_GAP.sub(b"N" * 100, rec.seq.encode()).strip(b"N")))
    else:
        rng = np.random.default_rng(0)
        records = []
        for r in range(10):
            seq = np.frombuffer(b"ACGT", np.uint8)[rng.choice(4, 5_000_000, p=[0.3, 0.2, 0.2, 0.3])].copy()
            for start in rng.integers(0, len(seq) - 3000, 40):
                seq[start : start + rng.integers(1, 3000)] = ord("N")
            for start in rng.integers(0, len(seq) - 5000, 400):
                seq[start : start + rng.integers(10, 5000)] |= 0x20
            records.append((f"synthetic{r}", seq.tobytes()))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    _write_records(Path(tmp), records, target_bp)
    os.replace(tmp, path)
    return path


def run_jellyfish(jellyfish: str, fasta: Path, k: int, out: Path, threads: int = 2) -> float:
    """Seconds of ``jellyfish count -m k -t threads``."""
    size = "2M" if k >= 10 else "100k"
    start = time.perf_counter()
    subprocess.run([jellyfish, "count", "-m", str(k), "-t", str(threads), "-s", size, "-o", str(out), str(fasta)], check=True)
    return time.perf_counter() - start


def jellyfish_peak_mib(jellyfish: str, fasta: Path, out: Path) -> float | None:
    """Peak RSS of ``jellyfish count -m 10 -t 2`` via GNU time (a rusage taken from this Python
    process would include the parent's pages: Linux keeps ru_maxrss across fork + exec)."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if gnu_time is None:
        return None
    cmd = [gnu_time, "-f", "%M", jellyfish, "count", "-m", "10", "-t", "2", "-s", "2M", "-o", str(out), str(fasta)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def jellyfish_counts(jellyfish: str, jf: Path, k: int) -> np.ndarray:
    dump = subprocess.run([jellyfish, "dump", "-c", "-t", str(jf)], check=True, capture_output=True).stdout
    table = pd.read_csv(io.BytesIO(dump), sep="\t", header=None, names=["kmer", "count"], dtype={"kmer": str})
    letters = np.frombuffer("".join(table["kmer"]).encode(), dtype=np.uint8).reshape(-1, k)
    digit = np.zeros(256, dtype=np.int64)
    digit[np.frombuffer(b"ACGT", np.uint8)] = np.arange(4)
    codes = (digit[letters] << (2 * np.arange(k - 1, -1, -1))).sum(axis=1)
    counts = np.zeros(4**k, dtype=np.int64)
    counts[codes] = table["count"].to_numpy()
    return counts


# VmHWM is this process's own peak since exec; the workers' ru_maxrss includes the pages they
# share with the reader at fork time (as top would show them).
PEAK_SCRIPT = """
import re, resource, sys
from genemask.pmi import count_ngrams
count_ngrams(sys.argv[1], 10, workers=int(sys.argv[2]) if sys.argv[2] != "None" else None)
own = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(own, kids)
"""


def peak_rss_mib(fasta: Path, workers: int | None) -> tuple[float, float]:
    """Peak RSS (MiB) of the reading process and of the largest counting worker, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(fasta), str(workers)], check=True, capture_output=True, text=True)
    own, kids = out.stdout.split()
    return int(own) / 1024, int(kids) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fasta", type=Path, help="plain-text FASTA to count (default: a generated 50 Mbp one)")
    parser.add_argument("--mbp", type=int, default=50, help="size of the generated FASTA")
    parser.add_argument("--source", choices=["auto", "human", "synthetic"], default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each tool (best is reported)")
    parser.add_argument("--workers", type=int, default=None, help="genemask counting processes (default: cores - 1)")
    args = parser.parse_args()

    jellyfish = shutil.which("jellyfish")
    if jellyfish is None:
        raise SystemExit("jellyfish not on PATH: apt-get install -y jellyfish (Debian package, not PyPI)")
    fasta = args.fasta or bench_fasta(args.mbp * 1_000_000, args.source)
    workers = pmi.default_workers() if args.workers is None else args.workers
    print(f"input: {fasta} ({fasta.stat().st_size / 1e6:.1f} MB), {os.cpu_count()} cores, genemask workers={workers}")

    with tempfile.TemporaryDirectory() as tmp:
        jf10 = Path(tmp) / "k10.jf"
        ours_times, jf_times = [], []
        counts = None
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            start = time.perf_counter()
            counts = pmi.count_ngrams(fasta, 10, workers=workers)
            ours_times.append(time.perf_counter() - start)
            jf_times.append(run_jellyfish(jellyfish, fasta, 10, jf10))
        jf_rss = jellyfish_peak_mib(jellyfish, fasta, jf10)

        mismatches = []
        if not np.array_equal(counts.of(10), jellyfish_counts(jellyfish, jf10, 10)):
            mismatches.append(10)
        jf6 = Path(tmp) / "k6.jf"
        run_jellyfish(jellyfish, fasta, 6, jf6)
        if not np.array_equal(counts.of(6), jellyfish_counts(jellyfish, jf6, 6)):
            mismatches.append(6)

    own_rss, worker_rss = peak_rss_mib(fasta, workers)
    with tempfile.TemporaryDirectory() as tmp:  # the same on a fifth of the input: memory must not grow
        fifth = Path(tmp) / "fifth.fa"
        with open(fasta, "rb") as src:
            head = src.read(fasta.stat().st_size // 5)
        fifth.write_bytes(head[: head.rfind(b"\n") + 1])
        small_own, small_worker = peak_rss_mib(fifth, workers)
    t_ours, t_jf = min(ours_times), min(jf_times)
    bases = counts.total(1)
    ratio = t_ours / t_jf
    print(f"A/C/G/T bases counted: {bases:,}  (10-windows: {counts.total(10):,})")
    print(f"genemask n=1..10   {t_ours:7.3f} s  (runs: {', '.join(f'{t:.2f}' for t in ours_times)})")
    print(f"jellyfish -m 10 -t 2 {t_jf:5.3f} s  (runs: {', '.join(f'{t:.2f}' for t in jf_times)})")
    print(f"throughput: {bases / t_ours / 1e6:.1f} Mbases/s -> about {3.1e9 / (bases / t_ours) / 60:.1f} min for 3.1 Gbp")
    jf_mem = f"{jf_rss:.0f} MiB" if jf_rss is not None else "n/a (no GNU time)"
    print(f"peak RSS: genemask reader {own_rss:.0f} MiB + counting worker {worker_rss:.0f} MiB; jellyfish {jf_mem}")
    print(f"peak RSS on a fifth of the input: genemask reader {small_own:.0f} MiB + worker {small_worker:.0f} MiB")
    print(f"6- and 10-mer counts equal jellyfish: {'yes' if not mismatches else f'NO (k = {mismatches})'}")
    met = targets.report("pmi n=1..10", ratio, "jellyfish -m 10 -t 2 (time)", "<= 0.50", ratio <= 0.5)
    if mismatches or not met:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
