"""Checksums of saved weights, so that a file damaged on disk is refused instead of loaded.

A safetensors file whose bytes rotted inside a tensor (not its header) still loads: a flipped
4 KB block gave a classifier embeddings off by up to 9.9e4 and a pretraining run that read as
finished (issue 21). So every writer of weights (a pretraining checkpoint, a kept checkpoint, a
resume state) records the sha256 of each weights file in :data:`CHECKSUM_FILE` beside them, and
every reader verifies before loading: a mismatch is :class:`ChecksumError` naming the file.
Folders saved before checksums were kept still load, with the lack noted once per folder.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from pathlib import Path

from .genome import require_regular_file
from .io import write_json

#: Written beside the weights: ``{"sha256": {file name: hex digest}}``.
CHECKSUM_FILE = "checksums.json"
#: The weights files a Hugging Face checkpoint folder may hold (safetensors first).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_BLOCK = 1 << 22
_UNVERIFIED_NOTED: set[str] = set()
#: Files verified in this process, by (size, modification time): a few-shot grid loads one
#: checkpoint per run, and a DNABERT-size file takes about a second to hash.
_VERIFIED: dict[str, tuple[str, int, int]] = {}


class ChecksumError(ValueError):
    """A weights file whose bytes differ from the checksum recorded when it was saved; ``path`` is
    the file, ``reason`` what is wrong with it, and ``str()`` both in one line."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: str | Path, names: Iterable[str]) -> Path:
    """Record the sha256 of the files ``names`` of ``folder`` (call once they are written whole)."""
    folder = Path(folder)
    return write_json(folder / CHECKSUM_FILE, {"sha256": {name: sha256_file(folder / name) for name in sorted(names)}})


def verify_checksums(folder: str | Path, names: Iterable[str]) -> bool:
    """Check the files ``names`` of ``folder`` that exist against :data:`CHECKSUM_FILE`: True when
    verified; False (noted once per folder) for a folder saved before checksums were kept. A
    mismatch, a file the record lacks, or a damaged record is a :class:`ChecksumError` naming it."""
    folder = Path(folder)
    record = folder / CHECKSUM_FILE
    present = [name for name in names if (folder / name).exists()]
    for name in present:  # a FIFO in place of the weights would block the hash (and the load) forever
        require_regular_file(folder / name, "weights file")
    if not record.is_file():
        if str(folder.resolve()) not in _UNVERIFIED_NOTED:
            _UNVERIFIED_NOTED.add(str(folder.resolve()))
            warnings.warn(f"{folder}: no {CHECKSUM_FILE} (saved before checksums were kept): its weights are not "
                          "verified", stacklevel=2)
        return False
    try:
        expected = json.loads(record.read_text())["sha256"]
        if not isinstance(expected, dict):
            raise TypeError("'sha256' is not a mapping")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ChecksumError(record, f"damaged checksum record ({type(err).__name__}: {err})") from None
    for name in present:
        if name not in expected:
            raise ChecksumError(folder / name, f"not in {CHECKSUM_FILE}; the folder was changed after it was saved")
        path = folder / name
        stat = path.stat()
        key, seen = str(path.resolve()), (expected[name], stat.st_size, stat.st_mtime_ns)
        if _VERIFIED.get(key) == seen:
            continue
        if sha256_file(path) != expected[name]:
            raise ChecksumError(path, "checksum mismatch (sha256 differs from the one recorded when it was "
                                "saved): the file is damaged")
        _VERIFIED[key] = seen
    return True
