"""Source readers on the real public data in $SYNERGY_REAL_DATA (skipped when it is unset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from synergy_dagster.sources.camels_us import read_camels_attributes, read_camels_us
from synergy_dagster.sources.caravan import read_caravan
from synergy_dagster.sources.ecoregions import dissolve_levels, read_ecoregions, read_vector
from synergy_dagster.sources.gages2 import read_gages2
from synergy_dagster.sources.pixels import read_pixel_cube
from synergy_dagster.sources.sitedata import dynamic_names, static_names, target_name


@pytest.fixture(scope="module")
def caravan(real_data: Path) -> xr.Dataset:
    return read_caravan(real_data / "caravan")


def test_caravan_all_basins(caravan: xr.Dataset) -> None:
    ds = caravan
    assert ds.sizes["site"] == 482
    assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("1981-01-01")
    assert pd.Timestamp(ds["time"].values[-1]) == pd.Timestamp("2014-12-31")
    assert target_name(ds) == "streamflow" and ds["streamflow"].attrs["units"] == "mm/d"
    assert set(dynamic_names(ds)) == {
        "total_precipitation_sum",
        "temperature_2m_mean",
        "potential_evaporation_sum",
    }
    assert ds["temperature_2m_mean"].attrs["units"] == "degC"
    assert "area" in static_names(ds) and "aridity" in static_names(ds) and "gauge_lat" not in ds.data_vars
    lat, lon = ds["lat"].values, ds["lon"].values
    assert (lat > 24).all() and (lat < 50).all() and (lon > -125).all() and (lon < -66).all()
    mean_q = ds["streamflow"].mean("time").values
    assert np.isfinite(mean_q).all() and (mean_q > 0.0).all() and (mean_q < 20).all()
    # precipitation exceeds runoff in the long run for (nearly) every basin: a units cross-check
    mean_p = ds["total_precipitation_sum"].mean("time").values
    assert np.mean(mean_p > mean_q) > 0.9  # ERA5-Land under-catches in a few snowy basins
    assert float(ds["area"].sel(site="camels_01022500")) == pytest.approx(619.1, rel=1e-3)


def test_ecoregions_real(real_data: Path) -> None:
    path = real_data / "ecoregions" / "us_eco_l3.gpkg"
    assert len(read_vector(path)) == 85  # polygons as stored
    e = read_ecoregions(path)
    # 11.1.1 is split into two US Level III regions (6 and 85): one row per NA Level III code
    assert len(e) == 84 and e.crs.to_epsg() == 4326
    assert e.set_index("l3").loc["11.1.1", "us_l3code"] == "6,85"
    assert e.set_index("l3").loc["8.3.5", "l2"] == "8.3"
    levels = dissolve_levels(e)
    assert (len(levels["l3"]), len(levels["l2"]), len(levels["l1"])) == (84, 20, 10)
    assert levels["l1"].geometry.is_valid.all()


def test_smap_real(real_data: Path) -> None:
    ds = read_pixel_cube(real_data / "smap" / "smap_conus_v4f1.nc")
    assert ds.sizes["site"] == 412 and ds.sizes["time"] == 1096
    assert ds.attrs["domain"] == "soil_moisture" and target_name(ds) == "SMAP_AM"
    assert set(dynamic_names(ds)) == {
        "APCP_FORA",
        "DLWRF_FORA",
        "DSWRF_FORA",
        "SPFH_2_FORA",
        "TMP_2_FORA",
        "UGRD_10_FORA",
        "VGRD_10_FORA",
    }
    assert len(static_names(ds)) == 12 and {"Clay", "Sand", "NDVI"} <= set(static_names(ds))
    assert ds["TMP_2_FORA"].attrs["units"] == "degC"
    assert -10 < float(ds["TMP_2_FORA"].mean()) < 30
    sm = ds["SMAP_AM"]
    assert float(sm.min()) >= 0 and float(sm.max()) <= 1
    assert np.isnan(sm.sel(time=slice("2017-04-01", None)).values).all()
    assert np.isfinite(sm.sel(time=slice(None, "2017-03-31")).values).mean() > 0.2
    assert (ds["lat"].values > 20).all() and (ds["lat"].values < 55).all()


def test_camels_us_nldas_real(real_data: Path) -> None:
    root = real_data / "camels_us"
    ds = read_camels_us(root, forcing="nldas")
    assert ds.sizes["site"] == 19 and all(len(s) == 8 and s.isdigit() for s in ds["site"].values)
    assert {"prcp", "tmax", "tmin", "srad", "vp", "dayl", "swe"} <= set(dynamic_names(ds))
    assert ds["streamflow"].attrs["units"] == "mm/d"
    mean_q = ds["streamflow"].mean("time").values
    assert ((mean_q > 0.01) & (mean_q < 10)).all()
    # the cfs -> mm/d conversion reproduces CAMELS' own q_mean (1989-10 to 2009-09) within 25 %
    attrs = read_camels_attributes(root)
    assert len(attrs) == 671 and (attrs.index.str.len() == 8).all()
    q_period = ds["streamflow"].sel(time=slice("1989-10-01", "2009-09-30")).mean("time").values
    ratio = q_period / attrs.loc[ds["site"].values, "q_mean"].to_numpy()
    assert np.all(np.abs(ratio - 1) < 0.25), ratio


def test_camels_us_daymet_sample_real(real_data: Path, caravan: xr.Dataset) -> None:
    ds = read_camels_us(
        real_data / "camels_us_daymet_sample", forcing="daymet", attributes_root=real_data / "camels_us"
    )
    assert sorted(ds["site"].values) == ["01022500", "01547700", "02064000", "03015500"]
    assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("2000-01-01")
    tmax = ds["tmax"].sel(site="01022500").values
    assert np.nanmean(tmax) > np.nanmean(ds["tmin"].sel(site="01022500").values)
    # the same gauge in Caravan (USGS streamflow, mm/d): same days, same magnitudes
    ours = ds["streamflow"].sel(site="01022500", time=slice("2000-01-01", "2002-12-31")).values
    theirs = caravan["streamflow"].sel(site="camels_01022500", time=slice("2000-01-01", "2002-12-31")).values
    ok = np.isfinite(ours) & np.isfinite(theirs)
    assert ok.sum() > 1000
    assert np.corrcoef(ours[ok], theirs[ok])[0, 1] > 0.98
    assert np.nanmean(ours[ok]) / np.nanmean(theirs[ok]) == pytest.approx(1.0, abs=0.15)


def test_gages2_real(real_data: Path) -> None:
    g = read_gages2(real_data / "gages2" / "gagesII_9322_sept30_2011.shp")
    assert len(g) == 9322 and g.index.is_unique and g.index.str.len().min() >= 8
    assert set(g["class"]) == {"Ref", "Non-ref"}
    assert (g["class"] == "Ref").sum() == 2057
    row = g.loc["01013500"]
    assert row["class"] == "Ref" and row["huc02"] == "01" and row["state"] == "ME"
    assert row["lat"] == pytest.approx(47.237, abs=1e-3) and row["lon"] == pytest.approx(-68.583, abs=1e-3)
