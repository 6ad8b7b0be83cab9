"""The suite's shared tiny study (``studies/tiny.yaml``) and the run config that points the ``study``
resource at it: a working folder and study overrides (dotted keys, as a user writes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_STUDY = Path(__file__).resolve().parent / "studies" / "tiny.yaml"


def study_run_config(
    data_dir: str | Path, *overrides: str, study_file: str | Path = TINY_STUDY
) -> dict[str, Any]:
    """``resources.study.config`` with ``data_dir``, ``study_file`` and ``overrides`` (dotted keys)."""
    config: dict[str, Any] = {
        "study_file": str(study_file),
        "data_dir": str(data_dir),
        "overrides": list(overrides),
    }
    return {"resources": {"study": {"config": config}}}


def overrides_env(*overrides: str) -> dict[str, str]:
    """The ``SYNERGY_OVERRIDES`` variable holding ``overrides`` (for subprocesses and the CLI)."""
    return {"SYNERGY_OVERRIDES": ";".join(overrides)}
