"""Atomic, durable file output: a reader (or a resumed run) never sees a half-written file.

Every writer in the package goes through here: write to a unique temporary file in the target's
folder, fsync it, ``os.replace`` it over the target (atomic on POSIX within one filesystem), then
fsync the folder, so that after a crash or power loss the target is either the old file or the
whole new one (a rename alone may reach the disk before the data it points to). A write that
fails (a full disk, a closed quota) raises :class:`WriteError`, which names the target, and
leaves the previous target in place.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class WriteError(OSError):
    """A file could not be written; ``str()`` names it and says why (e.g. no space left on device)."""


def fsync_path(path: str | Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if Path(path).is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


_OS_ERROR_CODE = re.compile(r"os error (\d+)")
_SHORT_WRITE = re.compile(r"^\d+ requested and \d+ written$")


def write_error(target: str | Path, err: BaseException) -> WriteError:
    """The one-line error for a failed write of ``target`` (the previous file is kept). Besides an
    ``OSError`` it reads the errors writers raise without a path: safetensors' ``SafetensorError``
    (``... (os error 28)``) and numpy's short write (``878316 requested and 524224 written``)."""
    code = getattr(err, "errno", None)
    reason = getattr(err, "strerror", None)
    if code is None and (match := _OS_ERROR_CODE.search(str(err))):
        code = int(match[1])
    if code is not None and not reason:
        reason = os.strerror(code)
    if not reason and _SHORT_WRITE.match(str(err)):
        reason = f"short write, {err}: is the disk full?"
    return WriteError(code, f"{target}: could not write ({reason or err}); the previous file, if any, is kept")


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is fsynced and replaces ``target``
    (the folder is fsynced too), on error it is removed and an ``OSError`` becomes a :class:`WriteError`."""
    target = Path(target)
    tmp_path: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        fsync_path(tmp_path)
        os.replace(tmp_path, target)
        fsync_path(target.parent)
    except BaseException as err:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, (WriteError, FileNotFoundError, PermissionError)):
            raise write_error(target, err) from err
        if not isinstance(err, OSError) and is_storage_error(err):  # safetensors' own error type
            raise write_error(target, err) from err
        raise


def is_storage_error(err: BaseException) -> bool:
    """A writer's error that is about the disk, not the data: an ``OSError``, or a safetensors
    ``SafetensorError`` wrapping one (it derives from ``Exception`` and names no path)."""
    return isinstance(err, OSError) or (type(err).__name__ == "SafetensorError" and bool(_OS_ERROR_CODE.search(str(err))))


def write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
    return Path(target)


def write_text(target: str | Path, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def _jsonable(value: Any) -> Any:
    """Dataclasses (a checkpoint's RunIdentity) as their fields; anything else as its text."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def write_json(target: str | Path, obj: Any) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def write_with(target: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Atomically write ``target`` with a function that writes to a given path (e.g. ``df.to_parquet``)."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def read_yaml(path: str | Path, error: type[Exception] = ValueError) -> Any:
    """A params file's YAML, or ``error`` with a one-line message naming the file (missing, or not YAML)."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such params file") from None
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
