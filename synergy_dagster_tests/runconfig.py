"""Run config of the ``study`` resource for tests: a working folder and study overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def study_run_config(data_dir: str | Path, *overrides: str, study_file: str = "virtual") -> dict[str, Any]:
    """``resources.study.config`` with ``data_dir``, ``study_file`` and ``overrides`` (dotted keys)."""
    config: dict[str, Any] = {
        "study_file": study_file,
        "data_dir": str(data_dir),
        "overrides": list(overrides),
    }
    return {"resources": {"study": {"config": config}}}


def overrides_env(*overrides: str) -> dict[str, str]:
    """The ``SYNERGY_OVERRIDES`` variable holding ``overrides`` (for subprocesses and the CLI)."""
    return {"SYNERGY_OVERRIDES": ";".join(overrides)}
