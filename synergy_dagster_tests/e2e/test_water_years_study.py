"""Skill per water year through a whole (tiny) study: the store table, the Parquet file, the figure."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

STUDY = """\
name: water-years-end-to-end
data_dir: {data}
virtual: {{seed: 7, pixels: 120, basins: 40}}
profile: demo
seeds: [0]
budget: {{mode: equal_updates, updates: 24, eval_every: 8}}
thresholds: {{min_sites_subregion: 6, min_sites_roi: 2, coverage: 0.5}}
domains:
  streamflow:
    reader: caravan
    subset: virtual
    target: streamflow
    dynamic: [total_precipitation_sum, temperature_2m_mean, potential_evaporation_sum]
    static: all_numeric
    usgs: {{evaluate: approved, train: exclude_estimated, test_end: latest}}
    periods:
      train: {{start: 2001-10-01, end: 2007-09-30}}
      test: {{start: 2007-10-01, end: 2009-09-30}}
"""


@pytest.mark.slow
def test_a_study_keeps_skill_per_water_year(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synergy_dagster import cli

    for var in ("DAGSTER_HOME", "SYNERGY_STUDY", "SYNERGY_DATA_DIR", "SYNERGY_PROFILE", "SYNERGY_BUDGET"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    study = tmp_path / "study.yaml"
    study.write_text(STUDY.format(data=data))
    assert cli.main(["study", "--config", str(study)]) == 0
    table = pd.read_parquet(data / "evaluation" / "water_year_skill.parquet")
    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        stored = con.execute("SELECT * FROM water_year_skill").df()
    assert len(table) == len(stored) > 0
    assert set(table["water_year"]) == {2008, 2009} and table["complete"].all()
    assert {"global", "local"} <= set(table["scenario"]) and "*" in set(table["region"])
    assert (table.loc[table["region"] == "*", "n_sites"] > 0).all()
    assert (data / "evaluation" / "figures" / "water_year_skill_streamflow.png").stat().st_size > 0
