"""The Dagster layer: definitions load and validate, the graph has its stages, partitions come
from the plan, and evaluation without models names the command that trains them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from synergy_dagster_tests.runconfig import TINY_STUDY, study_run_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # loads the code location in a `dagster` subprocess (~11 s)
def test_definitions_validate_with_the_cli(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_module_form_exposes_the_definitions() -> None:
    import synergy_dagster

    assert isinstance(synergy_dagster.definitions, dg.Definitions)


def test_graph_groups_and_partitions() -> None:
    from synergy_dagster.defs.definitions import defs

    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["raw_basins"] == "sources"
    assert groups["streamflow_sites"] == "regions"
    assert groups["soil_moisture_plan"] == "training_sets"
    assert groups["streamflow_model"] == "models"
    assert groups["summary"] == "evaluation"
    assert groups["learning_curves"] == "evaluation" and groups["budget_sensitivity"] == "budget"
    # `--select 'evaluation*'` refreshes the learning curves too; the sensitivity run is separate
    downstream = dg.AssetSelection.assets("evaluation").downstream().resolve(graph)
    assert (
        dg.AssetKey("learning_curves") in downstream and dg.AssetKey("budget_sensitivity") not in downstream
    )
    assert {dg.AssetKey(f"{d}_model") for d in ("soil_moisture", "streamflow")} <= set(
        graph.get(dg.AssetKey("budget_sensitivity")).parent_keys
    )
    # resolve_job_def raises for an unknown job: check what the job runs instead
    sensitivity_job = defs.resolve_job_def("budget_sensitivity_job")
    assert sensitivity_job.asset_layer.executable_asset_keys == {dg.AssetKey("budget_sensitivity")}
    model = graph.get(dg.AssetKey("streamflow_model"))
    assert isinstance(model.partitions_def, dg.DynamicPartitionsDefinition)
    assert model.partitions_def.name == "streamflow_sets"
    checks = {c.name for c in defs.resolve_asset_graph().asset_check_keys}
    assert {"loss_finite_and_fell", "predictions_finite"} <= checks


def test_unknown_executor_is_a_clear_error() -> None:
    from synergy_dagster.defs.executors import executor_from_env
    from synergy_dagster.errors import ConfigError

    with pytest.raises(ConfigError, match="SYNERGY_EXECUTOR"):
        executor_from_env("warp-drive")
    assert executor_from_env("multiprocess").name == "multiprocess"
    assert executor_from_env("in_process").name == "in_process"


@pytest.mark.slow  # generates a small virtual CONUS and trains one tiny model (~7 s)
def test_data_dir_in_run_config_moves_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run config naming only ``study.data_dir`` (no path anywhere else) puts the JSON asset
    values, the model files and the DuckDB file under it, not under the environment's folder."""
    from synergy_dagster.defs.definitions import defs
    from synergy_dagster.layout import Layout

    decoy, data = tmp_path / "decoy", tmp_path / "data"
    monkeypatch.setenv("SYNERGY_DATA_DIR", str(decoy))  # the environment default the run config overrides
    monkeypatch.chdir(tmp_path)  # nor may anything land under a relative ./data
    overrides = [
        f"data_dir={data}",
        "run.domains=[soil_moisture]",
        "budget.mode=equal_updates",
        "budget.updates=2",
        "seeds=[0]",
    ]
    run_config = study_run_config(data, *overrides[1:])
    instance = dg.DagsterInstance.ephemeral()
    prepare = [
        "source_files",
        "raw_ecoregions",
        "raw_pixels",
        "regions",
        "soil_moisture_sites",
        "soil_moisture_plan",
    ]
    result = defs.resolve_job_def("prepare_job").execute_in_process(
        run_config=run_config, instance=instance, asset_selection=[dg.AssetKey(k) for k in prepare]
    )
    assert result.success
    assert "global:CONUS" in instance.get_dynamic_partitions("soil_moisture_sets")
    # the run's resolved study is recorded beside its outputs and in the UI, and replays as a file
    recorded = Layout(data).run_study(result.run_id)
    meta = result.asset_materializations_for_node("source_files")[0].metadata
    assert meta["resolved_study"].value == str(recorded) and "budget.updates=2" in meta["overrides"].value
    from synergy_dagster.study_file import load_study

    replay, original = load_study(recorded), load_study(TINY_STUDY, overrides=overrides)
    assert replay.model_dump() == original.model_dump()
    result = defs.resolve_job_def("train_soil_moisture_job").execute_in_process(
        run_config=run_config, instance=instance, partition_key="global:CONUS"
    )
    assert result.success

    layout = Layout(data)
    assert layout.training_set("soil_moisture", "global:CONUS").is_file()
    assert layout.model_file("soil_moisture", "equal_updates", "global:CONUS", 0).is_file()
    assert layout.model_index("soil_moisture", "equal_updates", "global:CONUS").is_file()
    assert layout.database().is_file() and layout.plan("soil_moisture").is_file()
    assert not decoy.exists() and not (tmp_path / "data" / "data").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"data"}


def test_env_readers_name_the_variable_and_the_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from synergy_dagster.env import env_bool, env_float, env_int, env_list, env_str
    from synergy_dagster.errors import ConfigError

    monkeypatch.setenv("SYNERGY_MIN_SITES", "ten")
    with pytest.raises(ConfigError, match=r"^SYNERGY_MIN_SITES: expected an integer, got 'ten'$"):
        env_int("SYNERGY_MIN_SITES", 10)
    monkeypatch.setenv("SYNERGY_BUDGET_SECONDS", "1 min")
    with pytest.raises(ConfigError, match=r"SYNERGY_BUDGET_SECONDS: expected a number, got '1 min'"):
        env_float("SYNERGY_BUDGET_SECONDS", 0.0)
    monkeypatch.setenv("SYNERGY_SEEDS", "0,one,2")
    with pytest.raises(
        ConfigError, match=r"SYNERGY_SEEDS: expected a comma-separated list of integers, got '0,one,2'"
    ):
        env_list("SYNERGY_SEEDS", [], int)
    monkeypatch.setenv("SYNERGY_AUTOMATION", "maybe")
    with pytest.raises(ConfigError, match="SYNERGY_AUTOMATION: expected one of 1/true/yes/on/0/false/no/off"):
        env_bool("SYNERGY_AUTOMATION", False)
    # unset or blank: the default; values are stripped, blank list items dropped
    monkeypatch.setenv("SYNERGY_EPOCHS", "  ")
    monkeypatch.delenv("SYNERGY_HIDDEN", raising=False)
    monkeypatch.setenv("SYNERGY_SEEDS", " 0, 1,,2 ")
    monkeypatch.setenv("SYNERGY_SOURCE", " real ")
    assert env_int("SYNERGY_EPOCHS", 3) == 3 and env_int("SYNERGY_HIDDEN", 64) == 64
    assert env_list("SYNERGY_SEEDS", [], int) == [0, 1, 2] and env_str("SYNERGY_SOURCE", "virtual") == "real"


def test_a_bad_environment_value_fails_when_the_resource_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    from synergy_dagster.defs.executors import executor_from_env
    from synergy_dagster.defs.resources import ComputeResource, StudyResource
    from synergy_dagster.errors import ConfigError

    monkeypatch.setenv("SYNERGY_TORCH_THREADS", "ten")
    with pytest.raises(ConfigError, match="SYNERGY_TORCH_THREADS: expected an integer, got 'ten'"):
        ComputeResource()
    monkeypatch.delenv("SYNERGY_TORCH_THREADS")
    # an override is a study key: checked, and reported, like one written in the file
    monkeypatch.setenv("SYNERGY_OVERRIDES", "virtual.pixels=1.5e3")
    with pytest.raises(ConfigError, match=r"virtual\.pixels.*set by override 'virtual\.pixels=1\.5e3'"):
        _ = StudyResource().spec
    monkeypatch.setenv("SYNERGY_OVERRIDES", "budget.max_updatez=10")
    with pytest.raises(ConfigError, match=r"budget\.max_updatez: unknown key"):
        _ = StudyResource().spec
    monkeypatch.setenv("SYNERGY_OVERRIDES", "budget.max_updates")
    with pytest.raises(ConfigError, match=r"expected <dotted key>=<value>"):
        _ = StudyResource().spec
    monkeypatch.delenv("SYNERGY_OVERRIDES")
    monkeypatch.setenv("SYNERGY_MAX_CONCURRENT", "two")
    with pytest.raises(ConfigError, match="SYNERGY_MAX_CONCURRENT: expected an integer, got 'two'"):
        executor_from_env("multiprocess")


def test_scoring_planned_models_that_were_never_trained_names_them_and_the_command(tmp_path: Path) -> None:
    """The shared set-up of the evaluation, spatial and synergy-curve assets stops before any
    prediction when a planned model is not in the store under the study's budget."""
    import pandas as pd

    from synergy_dagster.defs.assets.trained import predict_planned
    from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource

    study = StudyResource(study_file=str(TINY_STUDY), data_dir=str(tmp_path / "data"), overrides=[])
    store = MetadataStoreResource(path=str(tmp_path / "synergy.duckdb"))
    rows = pd.DataFrame({"model_key": ["local:B", "global:CONUS", "local:B"]})
    budget = study.spec.training_profile().budget.mode
    with pytest.raises(dg.Failure) as failed:
        predict_planned(study, store, "streamflow", rows, None, what="synergy-curve model")
    text = str(failed.value.description)
    assert f"2 streamflow synergy-curve model partition(s) were never trained under the {budget!r}" in text
    assert (
        "['global:CONUS', 'local:B']" in text
        and "make study" in text
        and "--partition 'global:CONUS'" in text
    )


def test_spatial_writes_cover_every_domain_of_the_run() -> None:
    """A domain of the run without a holdout this time gets an empty write under its (domain,
    budget) partition, so its earlier rows go in the same transaction as the new ones."""
    import pandas as pd

    from synergy_dagster.defs.assets.spatial import _writes

    frame = pd.DataFrame({"domain": ["soil_moisture", "soil_moisture"], "x": [1, 2]})
    tables = {"site_metrics": frame, "gauge_loss": frame.head(1), "verdicts": frame}  # no significance
    writes = _writes(["soil_moisture", "streamflow"], "converge", tables)
    got = [(table, where["domain"], where["budget"], len(df)) for table, df, where in writes]
    assert got == [
        ("spatial_site_metrics", "soil_moisture", "converge", 2),
        ("spatial_gauge_loss", "soil_moisture", "converge", 1),
        ("spatial_significance", "soil_moisture", "converge", 0),
        ("spatial_site_metrics", "streamflow", "converge", 0),
        ("spatial_gauge_loss", "streamflow", "converge", 0),
        ("spatial_significance", "streamflow", "converge", 0),
    ]
