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
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


def require_regular_file(path: str | os.PathLike, what: str, error: type[Exception] = ValueError) -> None:
    """Refuse, before opening it, a user path that exists but is not a regular file: a FIFO or a
    terminal blocks a read forever, a character device like /dev/zero streams without end, and a
    directory or socket fails opaquely. A missing path is left to the caller's own message; a link
    to a regular file is fine. The package's one home for this check (every reader of user files)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as err:  # a link loop, a name too long: say so rather than fail later
        raise error(f"{path}: cannot be read as a {what} ({err.strerror or err})") from None
    if stat.S_ISREG(mode):
        return
    kind = ("a FIFO (named pipe), which would block reading forever" if stat.S_ISFIFO(mode) else
            "a directory" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a character device, which may block or never end" if stat.S_ISCHR(mode) else
            "a block device" if stat.S_ISBLK(mode) else "not a regular file")
    raise error(f"{path}: is {kind}; the {what} must be a regular file")


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


# ----------------------------------------------------------------------------------------------
# Output folders a run owns

#: What genemask itself keeps in an ``out_dir`` it claims: claim markers and locks
#: (``.genemask-<what>.json``/``.lock``, their temporary files ``..genemask-*``), pretraining's
#: older lock ``.lock`` and the write probe. Anything else there was written by a run or by someone.
OWN_PREFIXES = (".genemask-", "..genemask-", ".write-test-")
OWN_NAMES = (".lock",)


def is_own_entry(name: str) -> bool:
    return name in OWN_NAMES or name.startswith(OWN_PREFIXES)


def prepare_out_dir(out_dir: str | Path, name: str = "out_dir") -> None:
    """Create ``out_dir`` and prove it writable now (a block written and flushed: a full disk fails
    here too), not after an hour of work; the error names it as ``name``."""
    out_dir = Path(out_dir)
    probe = out_dir / f".write-test-{os.getpid()}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_probe(probe)
    except OSError as err:
        raise PermissionError(f"{name}={str(out_dir)!r} is not writable ({err.strerror or err})") from None
    finally:
        with suppress(OSError):
            probe.unlink(missing_ok=True)


def write_probe(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, b"\0" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive(out_dir: str | Path, what: str, wait: bool = False, lock_name: str = ".lock") -> Iterator[None]:
    """An advisory lock on ``out_dir`` held while the block runs (released by the kernel however the
    process ends, ``kill -9`` included): two runs never write into one folder at once."""
    import fcntl

    with open(Path(out_dir) / lock_name, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RuntimeError(f"out_dir={str(out_dir)!r} is in use by another {what} run") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def foreign_entries(out_dir: str | Path) -> list[str]:
    """What ``out_dir`` holds besides genemask's own claim files (:func:`is_own_entry`)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(p.name for p in out_dir.iterdir() if not is_own_entry(p.name))


def shown_names(names: list[str], first: int = 4) -> str:
    return ", ".join(names[:first]) + (f" and {len(names) - first} more" if len(names) > first else "")


def claim_marker(out_dir: str | Path, what: str) -> Path:
    return Path(out_dir) / f".genemask-{what.replace(' ', '-')}.json"


def read_claim(out_dir: str | Path, what: str) -> dict | None:
    """The claim marker :func:`claim_out_dir` left in ``out_dir`` (None: none; a damaged one is an error naming it)."""
    marker = claim_marker(out_dir, what)
    if not marker.is_file():
        return None
    try:
        value = json.loads(marker.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{marker}: damaged claim marker ({err}); remove it if the folder is yours") from None
    if not isinstance(value, dict) or not isinstance(value.get("identity"), dict):
        raise ValueError(f"{marker}: not a genemask claim marker (no 'identity' mapping)")
    return value


@contextmanager
def claim_out_dir(out_dir: str | Path, what: str, identity: dict[str, Any], adopt: bool = False) -> Iterator[dict]:
    """Take ``out_dir`` for one run for as long as the block runs: created and proved writable, locked
    against a concurrent run, refused when it holds another run (another ``identity``) or, unless
    ``adopt`` (a folder whose path already names this run, e.g. the grid's ``runs/<profile>/<stage>/<key>``),
    files no run wrote. The marker ``.genemask-<what>.json`` written into it records the identity, the
    claiming pid, the time and the names present before, so a collector takes only what the run wrote."""
    import time

    out_dir = Path(out_dir)
    prepare_out_dir(out_dir)
    tag = what.replace(" ", "-")
    with exclusive(out_dir, what, lock_name=f".genemask-{tag}.lock"):
        saved = read_claim(out_dir, what)
        if saved is not None and saved["identity"] != identity:
            changed = sorted(k for k in set(saved["identity"]) | set(identity) if saved["identity"].get(k) != identity.get(k))
            raise ValueError(f"out_dir={str(out_dir)!r} holds another {what} run (different {', '.join(changed)}; "
                             f"see {claim_marker(out_dir, what).name}): use another out_dir")
        foreign = foreign_entries(out_dir)
        if saved is None and foreign and not adopt:
            raise ValueError(f"out_dir={str(out_dir)!r} holds files no {what} run wrote ({shown_names(foreign)}); "
                             "choose an empty or new folder")
        # an adopted folder's files are this run's by its path (a resumed run's earlier steps): all its own
        claim = {"identity": identity, "pid": os.getpid(), "claimed_ns": time.time_ns(),
                 "files_before": [] if adopt else foreign}
        write_json(claim_marker(out_dir, what), claim)
        yield claim


def written_since_claim(out_dir: str | Path, what: str) -> list[Path] | None:
    """The files in ``out_dir`` its run wrote (new since the claim, or rewritten after it), genemask's
    own claim files left out; None when the folder was never claimed (made before claims existed)."""
    claim = read_claim(out_dir, what)
    if claim is None:
        return None
    before, since = set(claim.get("files_before") or []), int(claim.get("claimed_ns") or 0)
    return [p for p in sorted(Path(out_dir).iterdir())
            if not is_own_entry(p.name) and (p.name not in before or p.stat().st_mtime_ns >= since)]


#: The largest YAML file the package reads (a params file is a few KiB): a bigger one is refused
#: before it is parsed.
MAX_YAML_BYTES = 1 << 20
#: The most values a YAML document may expand to once its aliases are followed: a params file with
#: anchors reaches a few thousand; an alias bomb ("billion laughs") reaches billions and would
#: stall whatever walks it (planning, hashing, JSON).
MAX_YAML_VALUES = 200_000


def _strict_loader():
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one
    silently: ``{steps: 3, steps: 5000}`` would train 5000 steps). Merge keys (``<<: *defaults``)
    are not duplicates: explicit keys override merged ones, as YAML says."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: PyYAML's own error follows
                        continue
                    if first is not None:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (first on line {first}, again on line {line})",
                            key_node.start_mark)
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _expanded_values(node, sizes: dict[int, int], limit: int) -> int:
    """How many values ``node`` stands for with every alias followed (each shared node is
    measured once, so an alias bomb is measured in a moment, not expanded)."""
    if id(node) in sizes:
        return sizes[id(node)]
    children = node.value if isinstance(node.value, list) else []
    total = 1
    for child in children:
        parts = child if isinstance(child, tuple) else (child,)
        total += sum(_expanded_values(part, sizes, limit) for part in parts)
        if total > limit:
            break
    sizes[id(node)] = total
    return total


def read_yaml(path: str | Path, error: type[Exception] = ValueError) -> Any:
    """A YAML file the package reads (params files, queues), or ``error`` with a one-line message
    naming the file: missing, not a regular file (a folder, a FIFO that would block), over
    :data:`MAX_YAML_BYTES`, not UTF-8, not YAML, a key given twice (naming it and its lines), or
    aliases that expand past :data:`MAX_YAML_VALUES` values."""
    import yaml


    path = Path(path)
    require_regular_file(path, "YAML params file", error)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: no such params file") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err})") from None
    if info.st_size > MAX_YAML_BYTES:
        raise error(f"{path}: {info.st_size:,} bytes, over the {MAX_YAML_BYTES:,}-byte limit for a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); expected a YAML params file") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err})") from None
    loader = _strict_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_values(node, {}, MAX_YAML_VALUES) > MAX_YAML_VALUES:
            raise error(f"{path}: its aliases expand to over {MAX_YAML_VALUES:,} values (an alias bomb?); "
                        "refused before expanding")
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = "; ".join(part for part in (err.context, err.problem) if part)
        raise error(" ".join(f"{path}: not valid YAML{where}: {what}".split())) from None
    except yaml.YAMLError as err:
        raise error(" ".join(f"{path}: not valid YAML ({err})".split())) from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to be a params file") from None
    finally:
        loader.dispose()
