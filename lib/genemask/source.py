"""The library's source as bytes, and hashes of it: what a cache key or a record names as "the code".

Kept small and dependency-free: ``genome.corpus_key`` keys its corpus cache on its own source with
it; the grid's run records and a checkpoint's model card name the commit with :func:`git_state`. It computes no result, so it is no part of a cell's code (:data:`genemask.grid.code.NOT_COMPUTING`).
"""
from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import paths


def library_root() -> Path:
    return Path(__file__).resolve().parent


def library_files(root: Path | None = None, only: tuple[str, ...] = ()) -> dict[str, bytes]:
    """``{path relative to lib/genemask: bytes}`` of every ``.py`` file (or only the named ones)."""
    root = root or library_root()
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.py") if "__pycache__" not in p.parts}
    return {k: v for k, v in files.items() if not only or k in only}


def source_hash(files: Mapping[str, bytes]) -> str:
    """Hash of a set of source files given as {path relative to lib/genemask: bytes}."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel] + b"\0")
    return digest.hexdigest()[:16]


@lru_cache(maxsize=None)
def _library_hash_cached(root: str, only: tuple[str, ...]) -> str:
    return source_hash(library_files(Path(root), only))


def library_hash(only: tuple[str, ...] = ()) -> str:
    """Hash of the library source (``lib/genemask/**/*.py``, or only the named files) as it is now."""
    return _library_hash_cached(str(library_root()), only)


def git_bytes(*args: str) -> bytes | None:
    """The output of ``git ARGS`` run in the checkout (None without git, outside a clone, or on failure)."""
    try:
        proc = subprocess.run(["git", "-C", str(paths.ROOT), *args], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_text(*args: str) -> str | None:
    out = git_bytes(*args)
    return out.decode().strip() if out is not None else None


#: What makes a result: the code and the parameters. ``results/`` is left out: the grid itself writes
#: there as cells finish, which made every later cell of a run look "dirty".
SOURCE_PATHS = ("lib", "notebooks", "params", "pyproject.toml")


def git_state() -> dict[str, Any]:
    """The commit checked out and whether its tracked code or parameters (:data:`SOURCE_PATHS`)
    differ from it (None outside a git clone)."""
    commit = git_text("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git_text("status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS)
    return {"commit": commit, "dirty": bool(status)}
