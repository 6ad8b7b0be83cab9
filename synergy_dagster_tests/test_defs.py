"""The Dagster layer: definitions load and validate, the graph has its stages, partitions come
from the plan, and evaluation without models names the command that trains them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[1]


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
    assert defs.resolve_job_def("budget_sensitivity_job") is not None
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
    assert executor_from_env("multiprocess") is not None
