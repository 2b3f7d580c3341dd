"""Shared test utilities: where the real data is, and a skip when it is absent."""
from __future__ import annotations

import pytest

from genemask import paths


def real_data(relative: str):
    """Path under $GENEMASK_DATA, or skip the test with the reason."""
    path = paths.data_dir() / relative
    if not path.exists():
        pytest.skip(f"real data {relative} not found under GENEMASK_DATA={paths.data_dir()}")
    return path
