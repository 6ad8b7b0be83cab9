"""The shipped study files: each validates, and the CAMELS-US one (a second real layout with its own
periods) runs end to end through the graph from the CLI's --config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from synergy_dagster.defs.resources import StudyResource
from synergy_dagster.errors import ConfigError
from synergy_dagster.study_file import STUDIES_DIR, load_study
from synergy_dagster_tests.runconfig import overrides_env

ROOT = Path(__file__).resolve().parents[2]


def test_virtual_study_is_the_default_and_needs_no_paths() -> None:
    resource = StudyResource(study_file="", data_dir="", overrides=[])
    assert resource.study_path() == STUDIES_DIR / "virtual.yaml"
    study = resource.spec
    assert study.virtual is not None and sorted(study.domains) == ["soil_moisture", "streamflow"]
    assert resource.domain("streamflow").path.endswith("virtual_conus/caravan")
    assert study.training_profile().name == study.profile == "demo"


@pytest.mark.parametrize(
    "name", ["real.yaml", "camels_us.yaml", "real_caravan_inputs.yaml", "real_beyond.yaml"]
)
def test_real_study_files_validate_against_the_data(real_data: Path, name: str) -> None:
    study = load_study(STUDIES_DIR / name, variables={"SYNERGY_REAL_DATA": str(real_data)})
    for spec in study.domains.values():
        assert spec.path is not None and Path(spec.path).exists()
    assert study.ecoregions is not None and Path(study.ecoregions).exists()


def test_streamflow_only_study_does_not_need_the_pixel_file(real_data: Path) -> None:
    path = str(STUDIES_DIR / "camels_us.yaml")
    resource = StudyResource(study_file=path, real_data=str(real_data), overrides=[])
    assert resource.domains() == ["streamflow"]
    chosen = StudyResource(study_file=path, real_data=str(real_data), overrides=["run.domains=[streamflow]"])
    assert chosen.domains() == ["streamflow"]
    absent = StudyResource(
        study_file=path, real_data=str(real_data), overrides=["run.domains=[soil_moisture]"]
    )
    with pytest.raises(ConfigError, match=r"run\.domains: \['soil_moisture'\] not in the study"):
        absent.domains()


@pytest.mark.e2e
def test_camels_us_study_runs_end_to_end(real_data: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SYNERGY_REAL_DATA": str(real_data),
        **overrides_env("budget.max_updates=30", "budget.min_updates=30", "budget.eval_every=10"),
    }
    (tmp_path / "home").mkdir()
    data = tmp_path / "data"
    cmd = [
        sys.executable,
        "-m",
        "synergy_dagster.cli",
        "study",
        "--config",
        str(STUDIES_DIR / "camels_us.yaml"),
        "--profile",
        "demo",
        "--data-dir",
        str(data),
    ]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "camels-us-nldas" in proc.stdout and "streamflow" in proc.stdout
    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        sources = con.execute("SELECT source_name, n_sites, period_start FROM sources").fetchall()
        periods = con.execute("SELECT DISTINCT train_start, test_end FROM training_sets").fetchall()
        metrics = con.execute("SELECT count(*), count(DISTINCT site_id) FROM site_metrics").fetchone()
    assert ("streamflow", 19) in [(s, n) for s, n, _ in sources]
    assert "soil_moisture" not in [s for s, _, _ in sources]  # no pixel file was needed
    assert [(str(a), str(b)) for a, b in periods] == [("1993-10-01", "2013-09-30")]
    assert metrics is not None and metrics[0] > 0 and 0 < metrics[1] <= 19
    assert (data / "evaluation" / "summary.md").exists()
