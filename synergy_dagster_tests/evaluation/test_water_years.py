"""Skill per water year (evaluation/water_years.py): years, completeness, scoring and the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.water_years import (
    POOLED,
    skill_per_water_year,
    water_year,
    water_year_figure,
)

TIME = pd.date_range("2007-10-01", "2009-12-31", freq="D")


def _cube() -> xr.Dataset:
    """Three sites; 'global' is exact until WY2009 and poor after, 'local' the reverse. Site s2 is
    predicted by the global model only (not part of the comparison)."""
    rng = np.random.default_rng(0)
    obs = 1.0 + rng.random((3, len(TIME)))
    late = np.arange(len(TIME)) >= TIME.get_loc(pd.Timestamp("2009-10-01"))
    poor = obs + 2.0 * rng.standard_normal(obs.shape)
    glob = np.where(late, poor, obs)
    loc = np.where(late, obs, poor)
    loc[2] = np.nan
    obs[0, 5] = np.nan  # a missing observation: that day counts for neither scenario
    return xr.Dataset(
        {
            "simulated": (("site", "time", "model"), np.stack([glob, loc], axis=2).astype(np.float32)),
            "observed": (("site", "time"), obs.astype(np.float32)),
        },
        coords={
            "site": ["s0", "s1", "s2"],
            "time": TIME,
            "model": ["global:CONUS", "local:A"],
            "evaluation_experiment": ("evaluation", ["e", "e"]),
            "evaluation_region": ("evaluation", ["A", "A"]),
            "evaluation_scenario": ("evaluation", ["global", "local"]),
            "evaluation_model": ("evaluation", ["global:CONUS", "local:A"]),
        },
        attrs={"domain": "streamflow"},
    )


def test_water_years_run_october_to_september() -> None:
    days = pd.DatetimeIndex(["2008-09-30", "2008-10-01", "2009-01-15", "2009-10-01"])
    assert water_year(days).tolist() == [2008, 2009, 2009, 2010]


def test_skill_per_water_year_follows_the_lead_year_by_year() -> None:
    table = skill_per_water_year(_cube())
    region = table[table["region"] == "A"].set_index(["scenario", "water_year"])
    assert sorted(table["water_year"].unique()) == [2008, 2009, 2010]
    assert region.loc[("global", 2008), "median_nse"] == pytest.approx(1.0)
    assert region.loc[("global", 2009), "median_nse"] == pytest.approx(1.0)
    assert region.loc[("global", 2010), "median_nse"] < 0.0
    assert region.loc[("local", 2010), "median_nse"] == pytest.approx(1.0)
    assert region.loc[("local", 2009), "median_nse"] < 0.0
    # s2 has no local prediction: two sites per comparison; the day without an observation not scored
    assert (region["n_sites"] == 2).all()
    assert region.loc[("global", 2008), "n_days"] == 2 * 366 - 1 == region.loc[("local", 2008), "n_days"]
    # the partial current year is marked; the pooled rows repeat the single region here
    assert region["complete"].to_dict() == {
        ("global", 2008): True, ("global", 2009): True, ("global", 2010): False,
        ("local", 2008): True, ("local", 2009): True, ("local", 2010): False,
    }  # fmt: skip
    pooled = table[table["region"] == POOLED].set_index(["scenario", "water_year"])
    assert pooled["median_nse"].to_dict() == pytest.approx(region["median_nse"].to_dict())
    assert (table["domain"] == "streamflow").all()


def test_a_short_year_is_not_scored_and_bad_arguments_are_refused() -> None:
    cube = _cube().sel(time=slice("2007-10-01", "2009-10-20"))  # 20 days of WY2010
    table = skill_per_water_year(cube, min_days=30)
    assert (table.loc[table["water_year"] == 2010, "n_sites"] == 0).all()
    assert table.loc[table["water_year"] == 2010, "median_nse"].isna().all()
    with pytest.raises(InputError, match="min_days"):
        skill_per_water_year(cube, min_days=1)


def test_water_year_figure_is_a_png() -> None:
    png = water_year_figure(skill_per_water_year(_cube()))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    with pytest.raises(InputError, match="median_rmse"):
        water_year_figure(skill_per_water_year(_cube()), metric="rmse")
