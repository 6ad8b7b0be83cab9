"""Bank runs in Dagster: a run over a range of training partitions trains their models at once
and still materialises each partition with its own metadata, checks and model files."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from synergy_dagster.layout import Layout
from synergy_dagster.store import MetadataStore
from synergy_dagster_tests.runconfig import study_run_config

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def test_the_model_assets_run_banks_of_at_most_the_configured_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from synergy_dagster.defs.assets.training import bank_policy
    from synergy_dagster.errors import ConfigError

    monkeypatch.setenv("SYNERGY_BANK_SIZE", "5")
    policy = bank_policy()
    assert policy.max_partitions_per_run == 5
    monkeypatch.setenv("SYNERGY_BANK_SIZE", "0")
    with pytest.raises(ConfigError, match="SYNERGY_BANK_SIZE: must be >= 1, got 0"):
        bank_policy()
    from synergy_dagster.defs.definitions import defs

    for domain in ("soil_moisture", "streamflow"):
        for name in (f"{domain}_training_set", f"{domain}_model"):
            spec = defs.resolve_assets_def(name)
            assert spec.backfill_policy is not None and spec.backfill_policy.max_partitions_per_run == 64


@pytest.mark.slow  # generates a small virtual CONUS and trains a bank of six tiny models (~20 s)
def test_a_run_over_a_partition_range_materialises_each_partition_on_its_own(tmp_path: Path) -> None:
    from synergy_dagster.defs.definitions import defs

    data = tmp_path / "data"
    run_config = study_run_config(
        data,
        "virtual.pixels=150",
        "run.domains=[soil_moisture]",
        "budget.mode=equal_updates",
        "budget.updates=3",
        "seeds=[0, 1]",
    )
    instance = dg.DagsterInstance.ephemeral()
    prepare = ["source_files", "raw_ecoregions", "raw_pixels", "regions", "soil_moisture_sites"]
    result = defs.resolve_job_def("prepare_job").execute_in_process(
        run_config=run_config,
        instance=instance,
        asset_selection=[dg.AssetKey(k) for k in [*prepare, "soil_moisture_plan"]],
    )
    assert result.success
    keys = list(instance.get_dynamic_partitions("soil_moisture_sets"))[:3]
    assert len(keys) == 3
    job = defs.resolve_job_def("train_soil_moisture_job")
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]}
    result = job.execute_in_process(run_config=run_config, instance=instance, tags=tags)
    assert result.success
    # one materialisation per partition of each asset, each with its own metadata
    mats = {
        (m.asset_key.to_user_string(), m.partition): m.metadata
        for m in (
            e.step_materialization_data.materialization for e in result.get_asset_materialization_events()
        )
    }
    layout = Layout(data)
    db = MetadataStore(layout.database())
    models = db.query("SELECT set_key, seed, n_sites, bank_size, path FROM models ORDER BY set_key, seed")
    assert sorted(models["set_key"].unique()) == sorted(keys)
    assert len(models) == 6 and set(models["bank_size"]) == {6}  # 3 partitions x 2 seeds in one bank
    for key in keys:
        ts_md, model_md = mats[("soil_moisture_training_set", key)], mats[("soil_moisture_model", key)]
        n_sites = int(models[models["set_key"] == key]["n_sites"].iloc[0])
        assert ts_md["n_sites"].value == n_sites and model_md["n_sites"].value == n_sites
        assert model_md["bank_partitions"].value == 3 and model_md["checks_passed"].value is True
        assert layout.training_set("soil_moisture", key).is_file()
        for seed in (0, 1):
            assert layout.model_file("soil_moisture", "equal_updates", key, seed).is_file()
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["loss_finite_and_fell"].passed and checks["predictions_finite"].passed
    assert set(checks["predictions_finite"].metadata["sites_with_nan"].value) == set(keys)
    assert len(db.query("SELECT DISTINCT set_key, seed FROM learning_curves")) == 6

    # The same range again: every model is reused (nothing retrains), rows unchanged.
    again = job.execute_in_process(run_config=run_config, instance=instance, tags=tags)
    assert again.success
    logs = [e.user_message for e in instance.all_logs(again.run_id)]
    assert sum("reusing the intact model" in m for m in logs) == 6
    assert not any("as one bank" in m for m in logs)
    assert (
        db.query("SELECT path FROM models ORDER BY set_key, seed")["path"].tolist() == models["path"].tolist()
    )


def test_a_bank_gets_the_configured_threads_else_every_core() -> None:
    from synergy_dagster.errors import ConfigError
    from synergy_dagster.models.device import bank_threads

    assert bank_threads(3) == 3
    assert 1 <= bank_threads(0) <= (os.cpu_count() or 1)
    with pytest.raises(ConfigError, match="torch_threads: must be >= 0"):
        bank_threads(-1)
