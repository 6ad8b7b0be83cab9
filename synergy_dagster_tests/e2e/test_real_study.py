"""Short real-data runs from $SYNERGY_REAL_DATA: an LSTM on a few Caravan basins learns, and the
soil-moisture study on the SMAP pixels produces its tables through the same Dagster graph."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from synergy_dagster.models.normalization import Normalizer, prepare_arrays
from synergy_dagster.models.training import TrainSpec, train_model
from synergy_dagster.sources.caravan import read_caravan
from synergy_dagster.study_file import STUDIES_DIR, load_study
from synergy_dagster_tests.runconfig import overrides_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_lstm_on_a_few_caravan_basins_learns(real_data: Path) -> None:
    gauges = ["camels_01022500", "camels_01031500", "camels_01047000", "camels_01052500"]
    ds = read_caravan(real_data / "caravan", gauges=gauges)
    study = load_study(STUDIES_DIR / "real.yaml", variables={"SYNERGY_REAL_DATA": str(real_data)})
    train = study.periods("streamflow").train.slice
    norm = Normalizer.fit(ds, train, method="p10p90", log_vars=["streamflow", "total_precipitation_sum"])
    arrays = prepare_arrays(ds, norm, train)
    result = train_model(
        arrays,
        TrainSpec(hidden=32, epochs=20, rho=90, batch=16, dropconnect=0.0, seed=0, max_iters_per_epoch=10),
        progress=False,
    )
    losses = np.asarray(result.losses)
    assert np.isfinite(losses).all()
    # Epoch losses are noisy (random windows); their trend and the late-vs-early mean must fall.
    assert np.polyfit(np.arange(len(losses)), losses, 1)[0] < 0, losses
    assert losses[-5:].mean() < 0.95 * losses[:5].mean(), losses


def test_soil_moisture_global_vs_local_study_on_real_smap(real_data: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SYNERGY_DATA_DIR": str(tmp_path / "data"),
        "SYNERGY_STUDY": "real",
        "SYNERGY_REAL_DATA": str(real_data),
        **overrides_env(
            "profile=demo",
            "training.epochs=2",
            "budget.max_updates=30",
            "budget.min_updates=30",
            "budget.eval_every=10",
        ),
    }
    (tmp_path / "home").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "synergy_dagster.cli", "study", "--domains", "soil_moisture"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with duckdb.connect(str(tmp_path / "data" / "synergy.duckdb"), read_only=True) as con:
        n_sites = con.execute("SELECT count(*) FROM sites WHERE domain='soil_moisture'").fetchone()[0]
        assert n_sites == 339  # pixels inside an ecoregion (data README)
        rows = con.execute(
            "SELECT region, n, p_value FROM significance WHERE experiment='global_vs_local' AND seed='mean' "
            "AND metric='rmse'"
        ).fetchall()
    regions = {r[0] for r in rows}
    assert "All" in regions and len(regions) >= 3
    assert all(r[1] > 0 for r in rows)
    assert (tmp_path / "data" / "evaluation" / "summary.md").read_text().count("global") > 0
