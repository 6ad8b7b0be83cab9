"""A whole study with spatial holdouts (PUB 2 folds, PUR) on the tiny virtual CONUS, through the
CLI: the plan's spatial sets are trained by the bank in the same backfill, no held-out site is in
its model's stored training data, each site is scored once per scenario, and the tables and the
figure are written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from synergy_dagster.experiments.plan import sites_hash
from synergy_dagster.experiments.spatial import SPATIAL_SCENARIOS
from synergy_dagster.layout import Layout
from synergy_dagster.models.fit import load_normalizer
from synergy_dagster_tests.runconfig import SMALL_STUDY, study_cli

pytestmark = pytest.mark.e2e

SPATIAL = (*SMALL_STUDY, "thresholds.min_sites_subregion=15", "spatial.pub_folds=2", "spatial.pur=true")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("spatial")
    env = {k: v for k, v in os.environ.items() if k not in ("SYNERGY_REAL_DATA", "DAGSTER_HOME")}
    proc = subprocess.run(
        [sys.executable, "-m", "synergy_dagster.cli", *study_cli(work / "data", *SPATIAL)],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work / "data"


def test_no_held_out_site_in_its_models_training_data(study: Path) -> None:
    plan = json.loads(Layout(study).plan("soil_moisture").read_text())
    spatial = [e for e in plan["evaluations"] if e["experiment"] in ("pub", "pur")]
    assert {e["experiment"] for e in spatial} == {"pub", "pur"}
    con = duckdb.connect(str(Layout(study).database()), read_only=True)
    stored = dict(
        con.execute("SELECT set_key, n_sites FROM models WHERE domain = 'soil_moisture'").fetchall()
    )
    for e in spatial:
        # the site list the model asset trained from, as its training-set partition stored it
        trained = json.loads(Layout(study).training_set("soil_moisture", e["model_key"]).read_text())
        assert trained["sites_hash"] == sites_hash(trained["site_ids"])
        assert not set(trained["site_ids"]) & set(e["eval_site_ids"]), e
        assert stored[e["model_key"]] == len(trained["site_ids"])


def test_each_site_scored_once_per_scenario_and_tables(study: Path) -> None:
    con = duckdb.connect(str(Layout(study).database()), read_only=True)
    metrics = con.execute("SELECT * FROM spatial_site_metrics WHERE seed = 'mean'").df()
    assert not metrics.duplicated(["domain", "experiment", "scenario", "site_id"]).any()
    counts = metrics.groupby(["experiment", "scenario"])["site_id"].nunique()
    assert counts.loc["pub"].nunique() == 1 and counts.loc["pur"].nunique() == 1
    loss = con.execute("SELECT * FROM spatial_gauge_loss").df()
    assert set(loss["setting"]) == {"temporal", "pub", "pur"}
    assert con.execute("SELECT count(*) FROM spatial_significance").fetchone()[0] > 0
    assert (study / "evaluation" / "spatial" / "gauge_skill_soil_moisture.png").stat().st_size > 1000
    verdicts = pd.read_parquet(study / "evaluation" / "spatial" / "verdicts.parquet")
    assert set(verdicts["comparison"]) == {"global vs local", "global vs partner"}
    assert verdicts["verdict"].isin(["difference", "equivalent", "inconclusive"]).all()
    decided = verdicts["verdict"] == "difference"
    assert verdicts.loc[decided, "winner"].isin(["global", "local", "partner"]).all()
    assert (
        verdicts.loc[~decided, "winner"]
        == verdicts.loc[~decided, "verdict"].map({"equivalent": "tie", "inconclusive": "none"})
    ).all()


def test_spatial_sets_fit_their_normaliser_without_the_held_out_sites(study: Path) -> None:
    """The study's normalisation is shared (``run.per_set_normalization: false``): temporal sets use
    the domain's statistics, spatial sets their own, fitted on their training sites only."""
    layout = Layout(study)
    shared = json.loads(json.dumps(load_normalizer(layout, "soil_moisture").to_dict()))
    plan = json.loads(layout.plan("soil_moisture").read_text())
    kinds: dict[bool, int] = {True: 0, False: 0}
    for row in plan["sets"]:
        if row["trained_as"] != row["key"]:
            continue
        stored = json.loads(layout.training_set("soil_moisture", row["key"]).read_text())
        spatial = row["scenario"] in SPATIAL_SCENARIOS
        kinds[spatial] += 1
        assert (stored["normalizer"] == shared) is not spatial, row["key"]
    assert kinds[True] and kinds[False]
