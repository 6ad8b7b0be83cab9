"""The README's run command, as a user runs it: a subprocess in a fresh folder with its own
DAGSTER_HOME, on a small virtual CONUS; then every table is checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("study")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "SYNERGY_DATA_DIR": str(work / "data"),
        "SYNERGY_SOURCE": "virtual",
        "SYNERGY_PROFILE": "demo",
        "SYNERGY_VIRTUAL_PIXELS": "400",
        "SYNERGY_VIRTUAL_BASINS": "120",
        "SYNERGY_EPOCHS": "2",
        "SYNERGY_MIN_SITES": "6",
        "SYNERGY_MIN_SITES_ROI": "5",
        "PY": sys.executable,
    }
    env.pop("SYNERGY_REAL_DATA", None)
    (work / "dagster_home").mkdir()
    proc = subprocess.run(
        ["make", "-C", str(ROOT), "study"], env=env, cwd=work, capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "summary.md" in proc.stdout
    return work / "data"


def _env(study: Path) -> dict[str, str]:
    work = study.parent
    env = {**os.environ, "DAGSTER_HOME": str(work / "dagster_home"), "SYNERGY_DATA_DIR": str(study),
           "SYNERGY_SOURCE": "virtual", "SYNERGY_PROFILE": "demo", "SYNERGY_VIRTUAL_PIXELS": "400",
           "SYNERGY_VIRTUAL_BASINS": "120", "SYNERGY_EPOCHS": "2", "SYNERGY_MIN_SITES": "6",
           "SYNERGY_MIN_SITES_ROI": "5"}
    env.pop("SYNERGY_REAL_DATA", None)
    return env


def test_evaluation_star_from_the_dagster_cli_names_and_then_uses_missing_models(study: Path) -> None:
    """`dagster asset materialize --select evaluation*` re-evaluates from the trained models; with a
    model missing it stops and names the command that trains it, and that command works."""
    env, db = _env(study), study / "synergy.duckdb"
    cli = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "synergy_dagster"]
    ok = subprocess.run([*cli, "--select", "evaluation*"], env=env, cwd=ROOT, capture_output=True, text=True,
                        timeout=600)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    key = _q(db, "SELECT set_key FROM models WHERE domain='streamflow' AND set_key LIKE 'local:%' LIMIT 1")[0][0]
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM models WHERE domain='streamflow' AND set_key=?", [key])
    failed = subprocess.run([*cli, "--select", "evaluation*"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert failed.returncode != 0
    text = failed.stdout + failed.stderr
    assert "make study" in text and key in text
    train = subprocess.run([*cli, "--select", "streamflow_training_set,streamflow_model", "--partition", key],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    again = subprocess.run([*cli, "--select", "evaluation*"], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]


def _q(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_table_is_filled(study: Path) -> None:
    db = study / "synergy.duckdb"
    for table in ("sources", "sites", "training_sets", "models", "site_metrics", "significance"):
        assert _q(db, f"SELECT count(*) FROM {table}")[0][0] > 0, table
    assert {r[0] for r in _q(db, "SELECT DISTINCT domain FROM sites")} == {"soil_moisture", "streamflow"}
    assert {r[0] for r in _q(db, "SELECT source_name FROM sources")} == {
        "ecoregions",
        "soil_moisture",
        "streamflow",
    }


def test_every_comparison_has_sites(study: Path) -> None:
    db = study / "synergy.duckdb"
    rows = _q(
        db, "SELECT domain, experiment, comparison, region, metric, n FROM significance WHERE seed='mean'"
    )
    assert rows
    assert {r[1] for r in rows} >= {"global_vs_local", "similarity", "similarity_sized"}
    assert all(r[5] > 0 for r in rows), [r for r in rows if r[5] <= 0][:5]


def test_models_record_provenance_and_global_is_trained_once(study: Path) -> None:
    db = study / "synergy.duckdb"
    rows = _q(db, "SELECT domain, set_key, data_hash, config_json, code_version, file_sha256 FROM models")
    assert all(r[2] and r[3] and r[4] and r[5] for r in rows)
    for domain in ("soil_moisture", "streamflow"):
        assert sum(1 for r in rows if r[0] == domain and r[1] == "global:CONUS") == 1


def test_outputs_on_disk(study: Path) -> None:
    ev = study / "evaluation"
    assert (ev / "summary.md").read_text().strip()
    assert (ev / "site_metrics.parquet").stat().st_size > 0
    assert list((ev / "figures").glob("*.png"))
