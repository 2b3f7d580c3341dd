"""Quiet, offline, deterministic test environment (also inherited by nbval's kernels)."""
import os

os.environ.setdefault("GENEMASK_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PYTHONWARNINGS", "ignore")

import pytest  # noqa: E402 (the environment above is set before anything imports transformers)


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a shared 2-core machine more threads make tiny models ~10x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



# ----------------------------------------------------------------------------------------------
# Two workers (pytest-xdist): `make test` runs `pytest -n auto --dist loadfile --no-loadscope-reorder`.
# loadfile keeps each file on one worker: nbval runs a notebook's cells in order in one kernel, and a
# module-scoped fixture (a grid run, a book build, a trained checkpoint) is computed once, as serially.
# (``--dist loadgroup`` cannot group here: xdist 3.8 marks a group by rewriting ``item._nodeid``,
# which pytest 9 no longer reads.)

#: At most this many workers for ``-n auto``: the tests start grids, kernels and book builds of their
#: own, and the box CI and ``make test`` are timed on has 2 cores.
MAX_WORKERS = 2

#: Test files that take minutes, slowest first (``pytest --durations``): they start first, so that the
#: short files fill the other worker meanwhile instead of leaving one worker alone at the end.
SLOW_FIRST = ("tests/test_reproduce.py", "tests/test_book.py", "tests/test_nbval_stability.py")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without pytest-xdist installed, pytest still runs
def pytest_xdist_auto_num_workers(config):
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))


def pytest_collection_modifyitems(config, items):
    """The slow files first (a stable sort: the rest keep their order); serial runs see the same order."""
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(config.rootpath).as_posix(), len(rank)))
