"""The study CLI hands its flags to Dagster as resource run config (not through os.environ), and
every job accepts that config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest


def test_flags_become_resource_run_config_every_job_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synergy_dagster.cli import _parse, _resource_config, _run_config
    from synergy_dagster.defs.definitions import defs

    monkeypatch.setenv("SYNERGY_OVERRIDES", "seeds=[0, 1]")
    argv = ["study", "--data-dir", str(tmp_path / "d"), "--source", "virtual", "--profile", "cpu"]
    args = _parse([*argv, "--domains", "streamflow, soil_moisture", "--budget", "converge", "--set", "a.b=1"])
    config = _resource_config(args)
    assert config == {
        "data_dir": str((tmp_path / "d").resolve()),
        "study_file": "virtual",
        # the environment's overrides first, then the flags in order: a later one wins
        "overrides": [
            "seeds=[0, 1]",
            "profile=cpu",
            "run.domains=[streamflow, soil_moisture]",
            "budget.mode=converge",
            "a.b=1",
        ],
    }
    run_config = _run_config(config)
    # `study` is nested in the store and both IO managers: one entry configures all of them
    for job in ("prepare_job", "train_streamflow_job", "evaluation_job", "budget_sensitivity_job"):
        assert dg.validate_run_config(defs.resolve_job_def(job), run_config)
    assert _resource_config(_parse(["study"])) == {}  # unset flags: the environment's defaults


def test_a_bad_flag_or_variable_fails_before_any_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synergy_dagster.cli import _bank_size, main
    from synergy_dagster.errors import ConfigError

    with pytest.raises(SystemExit, match=r"error: .*run\.domains\.0: Input should be 'soil_moisture' or"):
        main(["study", "--data-dir", str(tmp_path / "d"), "--domains", "rainfall"])
    assert not (tmp_path / "d").exists()
    monkeypatch.setenv("SYNERGY_BANK_SIZE", "four")
    with pytest.raises(ConfigError, match="SYNERGY_BANK_SIZE: expected an integer, got 'four'"):
        _bank_size(None)
    with pytest.raises(SystemExit, match="--bank-size must be >= 1, got 0"):
        _bank_size(0)
