"""Every filesystem location the package uses, in one place (after showyourwork's ``paths.py``).

Nothing else in the package builds paths from ``__file__`` or the working directory: notebooks run
from ``notebooks/`` under nbval, from the repository root under papermill, and from anywhere when
installed, and all of them must agree on where data, runs and results live. Installed from a wheel
(no checkout around the package), derived files go to the user's cache folder, never into the
environment the package was installed in, and what needs a checkout (the grid, the book) says so.
"""
from __future__ import annotations

import os
from pathlib import Path

#: Repository root (``lib/genemask/paths.py`` → two levels up from ``lib``).
ROOT: Path = Path(__file__).resolve().parents[2]
NOTEBOOKS: Path = ROOT / "notebooks"
PARAMS: Path = ROOT / "params"
BOOK: Path = ROOT / "book"
RESULTS: Path = ROOT / "results"
RUNS: Path = ROOT / "runs"
BENCHMARKS: Path = ROOT / "benchmarks"


def in_checkout() -> bool:
    """Whether the package runs from a genemask checkout (``lib/genemask`` under a project root with
    ``pyproject.toml``), rather than installed from a wheel into site-packages."""
    return (ROOT / "pyproject.toml").is_file() and (ROOT / "lib" / "genemask" / "paths.py").is_file()


def user_cache_dir() -> Path:
    """The user's cache folder for genemask (the XDG rule): ``$XDG_CACHE_HOME/genemask``, else
    ``~/.cache/genemask``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "genemask"


def data_dir() -> Path:
    """Real data: ``$GENEMASK_DATA`` if set, else ``./data`` under the repository root (git-ignored;
    ``./data`` under the current folder when installed without a checkout).

    A relative ``$GENEMASK_DATA`` that does not exist from the current folder is taken relative to
    the repository root, where make and CI set it (``../shared/data``): notebooks run by papermill
    or nbval work in ``notebooks/`` and must find the same data."""
    env = os.environ.get("GENEMASK_DATA")
    if not env:
        return (ROOT if in_checkout() else Path.cwd()) / "data"
    path = Path(env).expanduser()
    if not path.is_absolute() and not path.exists():
        path = ROOT / path
    return path.resolve()


#: The valid human FASTA slices of the shared data (relative to :func:`data_dir`); the headerless
#: ``genome/chr17_brca1_ext.txt`` is left out. 11.37 Mbp of A/C/G/T in all.
HUMAN_FASTA: tuple[str, ...] = (
    "genome/chr2_1-2333275.fa.gz",
    "genome/chr22_part.fa.gz",
    "genome/ucsc.hg19.chr20.unittest.fasta.gz",
    "genome/z.fa",
    "genome/hg38_chr21_22000000_23000000.fasta",
    "genome/chr20.250k.fa.gz",
    "genome/human_g1k_v37_chr1_59kb.fasta",
)


def cache_dir() -> Path:
    """Derived, regenerable files (demo data, corpora, rankings, default run folders):
    ``$GENEMASK_CACHE``, else ``.cache/`` in a checkout, else :func:`user_cache_dir`."""
    env = os.environ.get("GENEMASK_CACHE")
    path = Path(env).expanduser().resolve() if env else ROOT / ".cache" if in_checkout() else user_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_dir() -> Path:
    """Where the deterministic demo genome and demo tasks are generated."""
    path = cache_dir() / "demo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_genome_path() -> Path:
    """The synthetic demo genome (generated on first use by :func:`genemask.genome.ensure_demo_genome`)."""
    return demo_dir() / "demo_genome.fa.gz"


def demo_tasks_dir() -> Path:
    """Root of the demo downstream tasks, laid out like the real few-shot and GUE data."""
    return demo_dir() / "tasks"


def runs_root() -> Path:
    """Executed grid notebooks: ``$GENEMASK_RUNS`` or ``runs/`` (git-ignored)."""
    env = os.environ.get("GENEMASK_RUNS")
    return Path(env).expanduser().resolve() if env else RUNS


def runs_dir(profile: str, stage: str) -> Path:
    """Executed notebooks and outputs of one grid stage."""
    return runs_root() / profile / stage


def display(path: Path) -> str:
    """A path relative to the repository when inside it (shorter messages), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def results_dir(profile: str) -> Path:
    """Small tidy results of a profile that the book reads (committed for real-data profiles);
    ``$GENEMASK_RESULTS`` relocates them (tests do, to keep the repository clean)."""
    env = os.environ.get("GENEMASK_RESULTS")
    return (Path(env).expanduser().resolve() if env else RESULTS) / profile
