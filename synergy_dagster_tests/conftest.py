"""Shared fixtures. Real-data tests read ``$SYNERGY_REAL_DATA`` (set by .ci/run); they skip only
when the variable is unset, and fail loudly when it points at a missing folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_data() -> Path:
    value = os.environ.get("SYNERGY_REAL_DATA")
    if not value:
        pytest.skip("SYNERGY_REAL_DATA is not set")
    path = Path(value).resolve()
    if not path.is_dir():
        pytest.fail(f"SYNERGY_REAL_DATA={value} is not a folder")
    return path


def pytest_configure(config: pytest.Config) -> None:
    # Two xdist workers share two cores: one torch thread each avoids OpenMP spin-wait contention.
    os.environ.setdefault("SYNERGY_TORCH_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
