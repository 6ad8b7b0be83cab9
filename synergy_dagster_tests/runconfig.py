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


# The slow end-to-end studies: tiny.yaml at twice its size, one seed and the smallest budget and
# thresholds that still plan local, +close and further sets in a few regions.
SMALL_STUDY = (
    "virtual.seed=7",
    "virtual.pixels=240",
    "virtual.basins=40",
    "seeds=[0]",
    "budget.mode=equal_updates",
    "budget.updates=4",
    "budget.eval_every=4",
    "thresholds.min_sites_subregion=40",
    "thresholds.min_sites_roi=8",
    "thresholds.coverage=0.5",
)


def study_cli(
    data_dir: str | Path, *overrides: str, domains: str = "soil_moisture", study_file: str | Path = TINY_STUDY
) -> list[str]:
    """``python -m synergy_dagster.cli`` arguments running ``study_file`` (tiny.yaml) in ``data_dir``
    on ``domains`` with ``overrides`` (dotted keys, as ``--set``)."""
    argv = ["study", "--config", str(study_file), "--data-dir", str(data_dir), "--domains", domains]
    for item in overrides:
        argv += ["--set", item]
    return argv


def tiny_study_with(path: Path, blocks: dict[str, Any]) -> Path:
    """A copy of tiny.yaml at ``path`` with top-level ``blocks`` added (for tests whose subject is a
    study-file block itself, read from a file rather than given as overrides)."""
    import yaml

    study = yaml.safe_load(TINY_STUDY.read_text())
    path.write_text(yaml.safe_dump({**study, **blocks}, sort_keys=False))
    return path
