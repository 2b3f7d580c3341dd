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
