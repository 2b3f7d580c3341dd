"""One grid cell, run: the command every Snakemake job executes.

``python -m genemask.grid.cell PARAMS.yaml STAGE KEY`` re-plans the grid (cheap, and the same on a
cluster node), runs the cell's notebook with papermill in this process, and on success moves the
executed notebook into place and writes the cell's run record last, so a record exists only for a
finished cell. ``timeout`` bounds the whole cell: a watchdog kills the kernel when it is exceeded.
SIGTERM or SIGINT kill the kernel before this process exits, so no kernel outlives its cell; the
runner also gets SIGTERM when its parent (Snakemake) dies, however it dies.

While a cell runs, its runner holds a lock on ``<key>.running`` (holding its pid) and claims the
cell's ``out_dir`` (:func:`genemask.io.claim_out_dir`): a second runner of the same cell, a cell of
another grid writing into the same explicit ``out_dir``, or an ``out_dir`` holding files no run
wrote are refused, and a rerun after a stopped grid tells a busy cell (its pid alive) from a failed one.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .. import paths, store
from ..io import claim_out_dir, write_text
from ..outdir import GRID_CLAIM
from . import provenance
from .code import Library, notebook_hash
from .plan import Cell, expand_env, notebook_code, plan_grid, portable_params
from .spec import GridError, papermill_path

QUIET_ENV = {"GENEMASK_QUIET": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
             "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}


CELL_ERROR_PREFIX = "cell failed: "
#: Kernel log lines (the TCP-without-encryption warning, interrupts) are library chatter, not results.
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


def kill_descendants(pid: int | None = None, grace: float = 3.0) -> list[int]:
    """Terminate every descendant of ``pid`` (default: this process), then kill what is left."""
    import psutil

    try:
        children = psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    return [c.pid for c in children]


def error_file(cell: Cell) -> Path:
    return cell.output.with_name(f"{cell.key}.error.txt")


#: The claim a grid cell's runner takes on its ``out_dir`` (marker ``.genemask-grid-cell.json``).
CLAIM = GRID_CLAIM


def running_file(cell: Cell) -> Path:
    """Locked by the cell's runner while it runs (the kernel drops the lock when the process ends,
    ``kill -9`` included); it holds the runner's pid."""
    return cell.output.with_name(f"{cell.key}.running")


def busy_pid(cell: Cell) -> int | None:
    """The pid of a runner running ``cell`` now, else None."""
    path = running_file(cell)
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


#: ``pid:start-time`` of the ``genemask grid`` process a runner works for (set by the grid for Snakemake).
GRID_ENV = "GENEMASK_GRID_PROCESS"


def grid_identity() -> str:
    """This process as :data:`GRID_ENV` names it (the start time tells it from a later process given its pid)."""
    import psutil

    return f"{os.getpid()}:{psutil.Process().create_time()}"


def watch_grid(stop, interval: float = 1.0) -> threading.Thread | None:
    """Call ``stop(pid)`` once the grid this runner works for (:data:`GRID_ENV`) is gone, however it
    ended: a ``kill -9`` of the grid alone leaves Snakemake waiting on its jobs; this ends the cell."""
    import psutil

    text = os.environ.get(GRID_ENV, "")
    pid, _, started = text.partition(":")
    if not pid.isdigit():
        return None

    def gone() -> bool:
        try:
            return str(psutil.Process(int(pid)).create_time()) != started
        except psutil.NoSuchProcess:
            return True

    def watch() -> None:
        while not gone():
            time.sleep(interval)
        stop(int(pid))

    thread = threading.Thread(target=watch, name="watch-grid", daemon=True)
    thread.start()
    return thread


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Have the kernel send this process ``signum`` when its parent dies (Linux ``PR_SET_PDEATHSIG``;
    elsewhere nothing): a ``kill -9`` of ``genemask grid`` then still stops Snakemake, and Snakemake's
    death its cell runners. Safe in ``preexec_fn`` (no import, no allocation beyond the call)."""
    if _LIBC is not None:
        _LIBC.prctl(1, int(signum), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _one_line(err: BaseException) -> str:
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(err).__name__}: {err}"
    return " ".join(text.split())[:500]


def _portable_notebook(notebook: Path) -> str:
    """The notebook relative to the repository (its name alone when it lies outside)."""
    shown = paths.display(notebook)
    return Path(shown).name if Path(shown).is_absolute() else shown


def execute(cell: Cell, profile: str) -> int:
    """Run one planned cell; 0 on success, 3 when another runner runs it now. Its failure leaves
    ``<key>.failed.ipynb`` and ``<key>.error.txt`` (one line), never a run record."""
    cell.output.parent.mkdir(parents=True, exist_ok=True)
    with open(running_file(cell), "a+") as running:
        try:
            fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            running.seek(0)
            print(f"{CELL_ERROR_PREFIX}{cell.id}: already running (pid {running.read().strip() or '?'})", file=sys.stderr)
            return 3
        running.seek(0)
        running.truncate()
        running.write(str(os.getpid()))
        running.flush()
        with contextlib.ExitStack() as claimed:
            if cell.out_dir is not None:
                default = cell.out_dir == paths.runs_dir(profile, cell.stage) / cell.key
                try:
                    claimed.enter_context(claim_out_dir(cell.out_dir, CLAIM, claim_identity(cell, profile), adopt=default))
                except (ValueError, RuntimeError, PermissionError) as err:
                    write_text(error_file(cell), f"{err}\n")
                    print(f"{CELL_ERROR_PREFIX}{cell.id}: {err}", file=sys.stderr)
                    return 1
            return _execute(cell, profile)


def claim_identity(cell: Cell, profile: str) -> dict[str, str]:
    """What a cell's claim on its ``out_dir`` names: the one cell that may write there."""
    return {"profile": profile, "stage": cell.stage, "key": cell.key}


def _execute(cell: Cell, profile: str) -> int:
    import papermill as pm
    import yaml

    partial = cell.output.with_name(f".{cell.key}.running.ipynb")
    failed = cell.output.with_name(f"{cell.key}.failed.ipynb")
    errors = error_file(cell)
    errors.unlink(missing_ok=True)
    inputs = {}
    for stage, key in cell.deps:
        record = store.read_record(paths.runs_dir(profile, stage) / f"{key}.provenance.json")
        if record is None:
            write_text(errors, f"upstream cell {stage}/{key} has no run record\n")
            return 1
        inputs[f"{stage}/{key}"] = record.get("run_id")
    input_files = store.input_file_digests(cell.params, profile)  # hashed before the run reads them
    chosen = cell.out_dir == paths.runs_dir(profile, cell.stage) / cell.key  # the grid's path: never expanded
    expanded = expand_env({k: v for k, v in cell.params.items() if k != "out_dir" or not chosen}, f"stage {cell.stage!r}")
    if chosen:
        expanded["out_dir"] = str(cell.out_dir)
    write_text(cell.output.with_name(f"{cell.key}.params.yaml"), yaml.safe_dump(expanded, sort_keys=True))
    os.environ.update(QUIET_ENV)
    library = provenance.library_hash()  # what the kernel will import
    git = provenance.git_state()  # the commit it ran from: read now, a commit during a long run is not it
    code = Library.now().code_hash(notebook_code(cell.notebook))  # the part of it the notebook runs
    notebook = notebook_hash(notebook_code(cell.notebook))  # and the notebook's own code
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        kill_descendants()

    def on_signal(signum, _frame) -> None:
        kill_descendants(grace=1.0)
        write_text(errors, f"killed by signal {signum}\n")
        if partial.exists():
            os.replace(partial, failed)
        os._exit(128 + signum)

    def on_grid_gone(pid: int) -> None:
        kill_descendants(grace=1.0)
        write_text(errors, f"stopped: its genemask grid (pid {pid}) is gone\n")
        if partial.exists():
            os.replace(partial, failed)
        os._exit(1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watch_grid(on_grid_gone)
    watchdog = threading.Timer(cell.timeout, on_timeout) if cell.timeout else None
    start, cpu0 = time.perf_counter(), os.times()
    try:
        if watchdog:
            watchdog.daemon = True
            watchdog.start()
        pm.execute_notebook(papermill_path(cell.notebook), papermill_path(partial), parameters=expanded, cwd=str(cell.notebook.parent),
                            kernel_name="python3", progress_bar=False, log_output=False, extra_arguments=KERNEL_ARGS)
        if timed_out.is_set():
            raise TimeoutError
    except Exception as err:  # noqa: BLE001 - every failure is reported as one line, the cell's error
        if partial.exists():
            os.replace(partial, failed)
        message = (f"timed out after {cell.timeout} s (the stage's timeout, for the whole cell)"
                   if timed_out.is_set() else _one_line(err))
        write_text(errors, message + "\n")
        print(f"{CELL_ERROR_PREFIX}{cell.id}: {message}", file=sys.stderr)
        return 1
    finally:
        if watchdog:
            watchdog.cancel()
    wall, cpu1 = time.perf_counter() - start, os.times()
    cpu = sum(cpu1[i] - cpu0[i] for i in range(4))
    os.replace(partial, cell.output)
    failed.unlink(missing_ok=True)
    finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record = {
        "stage": cell.stage, "key": cell.key, "run_id": provenance.run_id(cell.stage, cell.key, finished),
        "finished": finished, **git, "library_hash": library, "code_hash": code,
        "notebook_hash": notebook,
        "library_changed_during_run": provenance.source_hash(provenance.library_files()) != library or None,
        "versions": provenance.package_versions(), "cpu": provenance.cpu_description(), "notebook": _portable_notebook(cell.notebook),
        "params": portable_params(cell.params), "inputs": inputs, "input_files": input_files or None,
        "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
    }
    record = {k: v for k, v in record.items() if v is not None or k in ("commit", "dirty")}
    store.write_record(cell.marker, record)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m genemask.grid.cell PARAMS.yaml STAGE KEY", file=sys.stderr)
        return 2
    die_with_parent()
    if os.getppid() == 1:  # the parent died before the line above: nobody wants this cell any more
        return 1
    try:
        plan = plan_grid(argv[0])
        return execute(plan.cell(argv[1], argv[2]), plan.spec.profile)
    except (GridError, store.StoreError) as err:
        print(f"genemask grid: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
