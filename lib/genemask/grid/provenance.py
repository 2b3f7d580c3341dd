"""How a result cell was made: commit, library source hash, package versions, CPU, time.

A cell's key names *what* was asked (notebook code + parameters); its provenance record says *how*
it was made. A record whose library hash differs from the library now in ``lib/genemask`` is stale:
the cell would not necessarily come out the same today. Reading and writing a record, and the
portable form of paths, are the results store's (:mod:`genemask.store`).
"""
from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import paths
from ..source import library_files, library_hash, source_hash  # noqa: F401 - the names callers use
from ..source import SOURCE_PATHS, git_bytes, git_state, git_text  # noqa: F401 - git_state: the name callers use
from ..store import RECORD, machine_paths, portable_text, portable_value, read_record, write_record  # noqa: F401 - the names callers use
from .code import Library, imports_in, module_name

#: Packages whose versions decide results (recorded with every cell).
PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "pandas", "scipy", "scikit-learn", "papermill", "snakemake")



def library_hash_at(commit: str) -> str | None:
    """Hash of ``lib/genemask/**/*.py`` as committed in ``commit`` (None without git)."""
    found = library_at(commit)
    return found[1] if found else None


_BLOBS: dict[str, bytes] = {}  # git blob id -> bytes, shared by every commit read
_IMPORTS: dict[tuple[str, str], set[tuple[str, ...]]] = {}  # (path, blob id) -> source.imports_in


def _read_blobs(ids: list[str]) -> None:
    """Read the blobs not yet in :data:`_BLOBS` with one ``git cat-file --batch``."""
    wanted = [i for i in dict.fromkeys(ids) if i not in _BLOBS]
    if not wanted:
        return
    proc = subprocess.run(["git", "-C", str(paths.ROOT), "cat-file", "--batch"], input="\n".join(wanted).encode() + b"\n",
                          capture_output=True, timeout=120, check=True)
    out, at = proc.stdout, 0
    for blob in wanted:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        _BLOBS[blob] = out[header_end + 1 : header_end + 1 + size]
        at = header_end + 1 + size + 1


@lru_cache(maxsize=None)
def library_at(commit: str) -> tuple[Library, str] | None:
    """The library as committed in ``commit``: its modules with their import graph (to judge a
    record made before code hashes were recorded by the rule of today) and the hash of all its
    source (what such a record names as ``library_hash``). None without git or that commit."""
    listing = git_text("ls-tree", "-r", commit, "--", "lib/genemask")
    if listing is None:
        return None
    blobs = {}
    for line in listing.splitlines():
        meta, _, name = line.partition("\t")
        if name.endswith(".py") and meta.split()[1] == "blob":
            blobs[name[len("lib/genemask/"):]] = meta.split()[2]
    try:
        _read_blobs(list(blobs.values()))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None

    def imports_of(rel: str, blob: str) -> set[tuple[str, ...]]:
        if (rel, blob) not in _IMPORTS:
            _IMPORTS[rel, blob] = imports_in(_BLOBS[blob], module_name(rel), rel.endswith("__init__.py"))
        return _IMPORTS[rel, blob]

    return Library(blobs, imports_of), source_hash({rel: _BLOBS[blob] for rel, blob in blobs.items()})




def first_commit_of(path: Path) -> str | None:
    """The commit that first added ``path`` (a file or folder) to git history."""
    rel = paths.display(path)
    out = git_text("log", "--diff-filter=A", "--format=%H", "--", rel)
    return out.splitlines()[-1] if out else None


def package_versions() -> dict[str, str | None]:
    import platform
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_description() -> dict[str, Any]:
    """The processor a cell ran on: training results drift chaotically across CPUs (a 16K-step run
    of the same seed ended at validation perplexity 191.0 on one CPU and 177.6 on another), so a
    rerun is compared bit for bit only on the same model and instruction set."""
    import platform

    info: dict[str, Any] = {"machine": platform.machine(), "model": None, "flags_hash": None}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    info["model"] = fields.get("model name")
    flags = " ".join(sorted(fields.get("flags", "").split()))
    info["flags_hash"] = hashlib.sha256(flags.encode()).hexdigest()[:12] if flags else None
    info["avx512"] = "avx512f" in flags.split()
    return info


def run_id(stage: str, key: str, finished: str) -> str:
    return hashlib.sha256(f"{stage}/{key}/{finished}".encode()).hexdigest()[:16]
