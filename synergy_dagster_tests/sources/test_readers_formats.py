"""Source readers on small files written here in every supported format, good and broken."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from shapely.geometry import Point, Polygon, box

from synergy_dagster.errors import InputError
from synergy_dagster.sources.basin_polygons import read_basin_polygons
from synergy_dagster.sources.camels_us import cfs_to_mm_per_day, read_camels_attributes, read_camels_us
from synergy_dagster.sources.caravan import read_caravan, write_caravan_csv
from synergy_dagster.sources.ecoregions import dissolve_levels, read_ecoregions
from synergy_dagster.sources.gages2 import read_gages2
from synergy_dagster.sources.nwis import merge_streamflow, nwis_to_mm_per_day, read_nwis_rdb, write_nwis_rdb
from synergy_dagster.sources.pixels import read_pixel_cube
from synergy_dagster.sources.sitedata import dynamic_names, make_site_dataset, static_names, target_name

# ----------------------------------------------------------------------------- Caravan

N_DAYS = 12
T0 = "2001-01-01"


def _site_ds(n_sites: int = 3, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    time = pd.date_range(T0, periods=N_DAYS, freq="D")
    q = rng.gamma(2.0, 1.0, (n_sites, N_DAYS)).astype(np.float32)
    q[0, 3] = np.nan
    return make_site_dataset(
        domain="streamflow",
        source="test",
        site_ids=[f"camels_0{i}000000" for i in range(1, n_sites + 1)],
        time=time,
        lat=np.linspace(35, 45, n_sites),
        lon=np.linspace(-110, -80, n_sites),
        target=("streamflow", q, "mm/d"),
        dynamic={
            "total_precipitation_sum": (rng.gamma(1.0, 3.0, (n_sites, N_DAYS)), "mm/d"),
            "temperature_2m_mean": (rng.normal(10, 5, (n_sites, N_DAYS)), "degC"),
        },
        static={
            "area": (np.array([100.0, 250.5, 3000.0][:n_sites]), "km2"),
            "p_mean": (np.ones(n_sites), ""),
        },
    )


@pytest.fixture
def caravan_root(tmp_path: Path) -> Path:
    root = tmp_path / "caravan"
    write_caravan_csv(_site_ds(), root, "camels")
    return root


def _ts(root: Path, gauge: str = "camels_01000000") -> Path:
    return root / "timeseries" / "csv" / "camels" / f"{gauge}.csv"


def test_caravan_csv_roundtrip(caravan_root: Path) -> None:
    src = _site_ds()
    ds = read_caravan(caravan_root)
    assert list(ds["site"].values) == list(src["site"].values)
    assert target_name(ds) == "streamflow" and ds["streamflow"].attrs["units"] == "mm/d"
    assert set(dynamic_names(ds)) == {"total_precipitation_sum", "temperature_2m_mean"}
    assert ds["temperature_2m_mean"].attrs["units"] == "degC"
    assert set(static_names(ds)) == {"area", "p_mean"} and ds["area"].attrs["units"] == "km2"
    np.testing.assert_allclose(ds["streamflow"].values, src["streamflow"].values, rtol=1e-5)
    assert np.isnan(ds["streamflow"].values[0, 3])
    np.testing.assert_allclose(ds["lat"].values, src["lat"].values)
    np.testing.assert_allclose(ds["area"].values, [100.0, 250.5, 3000.0], rtol=1e-6)
    # gauge selection by full id or bare USGS number
    sub = read_caravan(caravan_root, gauges=["02000000", "camels_03000000"])
    assert list(sub["site"].values) == ["camels_02000000", "camels_03000000"]


def test_caravan_netcdf_variant(tmp_path: Path) -> None:
    src = _site_ds()
    root = tmp_path / "cv"
    write_caravan_csv(src, root, "camels")
    nc_dir = root / "timeseries" / "netcdf" / "camels"
    nc_dir.mkdir(parents=True)
    for p in sorted(_ts(root).parent.glob("*.csv")):
        df = pd.read_csv(p, parse_dates=["date"]).set_index("date")
        xr.Dataset.from_dataframe(df).to_netcdf(nc_dir / f"{p.stem}.nc")
    ds = read_caravan(root, fmt="netcdf")
    np.testing.assert_allclose(ds["streamflow"].values, src["streamflow"].values, rtol=1e-5)
    assert ds.sizes["time"] == N_DAYS


def test_caravan_shorter_file_is_reindexed_and_flags_become_nan(caravan_root: Path) -> None:
    p = _ts(caravan_root, "camels_02000000")
    df = pd.read_csv(p)
    df = df.iloc[2:].copy()
    df.loc[df.index[0], "total_precipitation_sum"] = -999
    df.loc[df.index[1], "streamflow"] = -9999
    df.to_csv(p, index=False)
    ds = read_caravan(caravan_root)
    assert ds.sizes["time"] == N_DAYS
    q = ds["streamflow"].sel(site="camels_02000000").values
    assert np.isnan(q[:2]).all() and np.isfinite(q[2]) and np.isnan(q[3]) and np.isfinite(q[4:]).all()
    assert np.isnan(ds["total_precipitation_sum"].sel(site="camels_02000000").values[2])


def _edit(path: Path, fn) -> None:
    df = pd.read_csv(path, dtype={"date": str})
    df = fn(df)
    df.to_csv(path, index=False)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.drop(columns="streamflow"), r"camels_01000000\.csv.*no 'streamflow' column"),
        (lambda d: d.drop(columns="date"), r"camels_01000000\.csv.*no 'date' column"),
        (lambda d: d.assign(date=d["date"].where(d.index != 4, "2001-13-45")), r"line 6.*unparseable date"),
        (
            lambda d: d.assign(date=d["date"].where(d.index != 5, d["date"].iloc[4])),
            r"line 7.*duplicate date",
        ),
        (lambda d: d.drop(index=[6, 7]), r"not continuous daily: 2 day\(s\) missing"),
        (lambda d: d.iloc[::-1], r"not increasing"),
        (
            lambda d: d.assign(streamflow=d["streamflow"].astype(str).where(d.index != 2, "abc")),
            r"camels_01000000\.csv \[line 4, column streamflow\].*non-numeric value 'abc'",
        ),
        (lambda d: d.assign(streamflow=-d["streamflow"].abs() - 1), r"negative streamflow"),
        (lambda d: d.assign(streamflow=d["streamflow"] * 500 + 200), r"looks like cfs"),
        (
            lambda d: d.assign(temperature_2m_mean=d["temperature_2m_mean"] + 273.15),
            r"temperature_2m_mean.*looks like Kelvin",
        ),
    ],
)
def test_caravan_broken_files(caravan_root: Path, edit, match: str) -> None:
    _edit(_ts(caravan_root), edit)
    with pytest.raises(InputError, match=match):
        read_caravan(caravan_root)


def test_caravan_empty_file_and_missing_attributes(caravan_root: Path) -> None:
    _ts(caravan_root).write_text("")
    with pytest.raises(InputError, match=r"camels_01000000\.csv.*empty file"):
        read_caravan(caravan_root)
    write_caravan_csv(_site_ds(), caravan_root, "camels")
    extra = _ts(caravan_root, "camels_09999999")
    extra.write_text(_ts(caravan_root).read_text())
    with pytest.raises(InputError, match=r"camels_09999999\.csv.*no attribute row"):
        read_caravan(caravan_root)
    extra.unlink()
    other = caravan_root / "attributes" / "camels" / "attributes_other_camels.csv"
    df = pd.read_csv(other, dtype={"gauge_id": str})
    pd.concat([df, df.iloc[:1]]).to_csv(other, index=False)
    with pytest.raises(InputError, match=r"attributes_other_camels\.csv.*duplicate gauge ids"):
        read_caravan(caravan_root)


# ----------------------------------------------------------------------------- CAMELS-US text

FORCING_HEADER = "Year Mnth Day Hr\tDayl(s)\tPRCP(mm/day)\tSRAD(W/m2)\tSWE(mm)\tTmax(C)\tTmin(C)\tVp(Pa)\n"


def _write_camels(
    root: Path, huc_dirs: bool, gauges=("01013500", "02046000"), area_attr: bool = True
) -> None:
    rng = np.random.default_rng(1)
    dates = pd.date_range("2000-02-26", periods=8, freq="D")  # crosses a leap day
    for k, g in enumerate(gauges):
        sub = f"0{k + 1}/" if huc_dirs else ""
        f = root / "basin_mean_forcing" / "daymet" / f"{sub}{g}_lump_cida_forcing_leap.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            f"{d.year} {d.month:02d} {d.day:02d} 12\t40000.00\t{rng.gamma(1, 2):.2f}\t200.00\t0.00\t"
            f"{10 + i:.2f}\t{2 + i:.2f}\t800.00"
            for i, d in enumerate(dates)
        ]
        f.write_text(f"  45.00\n 300.00\n {500e6 * (k + 1):.0f}\n" + FORCING_HEADER + "\n".join(rows) + "\n")
        q = root / "usgs_streamflow" / f"{sub}{g}_streamflow_qc.txt"
        q.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, d in enumerate(dates[1:]):  # one day shorter than the forcing
            val, flag = (-999.0, "M") if i == 2 else (100.0 * (k + 1), "A:e" if i % 2 else "A")
            lines.append(f"{g} {d.year} {d.month:02d} {d.day:02d} {val:8.2f} {flag}")
        q.write_text("\n".join(lines) + "\n")
    attrs = root / "camels_attributes_v2.0"
    attrs.mkdir(parents=True, exist_ok=True)
    topo = ["gauge_id;gauge_lat;gauge_lon;elev_mean" + (";area_gages2" if area_attr else "")]
    for k, g in enumerate(gauges):
        topo.append(f"{g};{45 + k};{-70 - k};300.0" + (f";{400.0 * (k + 1)}" if area_attr else ""))
    (attrs / "camels_topo.txt").write_text("\n".join(topo) + "\n")
    (attrs / "camels_name.txt").write_text(
        "gauge_id;huc_02;gauge_name\n" + "".join(f"{g};0{k + 1};River {k}\n" for k, g in enumerate(gauges))
    )


@pytest.mark.parametrize("huc_dirs", [True, False])
def test_camels_us_text_layouts(tmp_path: Path, huc_dirs: bool) -> None:
    _write_camels(tmp_path, huc_dirs)
    ds = read_camels_us(tmp_path, forcing="daymet")
    assert list(ds["site"].values) == ["01013500", "02046000"]
    assert ds.sizes["time"] == 8 and pd.Timestamp(ds["time"].values[3]) == pd.Timestamp("2000-02-29")
    assert {"prcp", "tmax", "tmin", "dayl", "srad", "swe", "vp"} <= set(dynamic_names(ds))
    assert ds["tmax"].attrs["units"] == "degC" and ds["prcp"].attrs["units"] == "mm/d"
    q = ds["streamflow"].values
    assert np.isnan(q[:, 0]).all()  # before the streamflow record
    assert np.isnan(q[:, 3]).all()  # -999 / flag M
    # 100 cfs over 400 km2 (area_gages2 from camels_topo, not the forcing header's 500 km2)
    expected = 100 * 0.0283168 * 86400 / (400e6) * 1000
    np.testing.assert_allclose(q[0, 1], expected, rtol=1e-5)
    np.testing.assert_allclose(cfs_to_mm_per_day(np.array([100.0]), 400.0), expected)
    np.testing.assert_allclose(ds["lon"].values, [-70, -71])
    attrs = read_camels_attributes(tmp_path)
    assert attrs.index.tolist() == ["01013500", "02046000"] and attrs.loc["02046000", "huc_02"] == "02"


def test_camels_us_area_falls_back_to_forcing_header(tmp_path: Path) -> None:
    _write_camels(tmp_path, huc_dirs=False, area_attr=False)
    ds = read_camels_us(tmp_path, forcing="daymet")
    np.testing.assert_allclose(ds["area"].values, [500.0, 1000.0])
    np.testing.assert_allclose(
        ds["streamflow"].values[0, 1], 100 * 0.0283168 * 86400 / 500e6 * 1000, rtol=1e-5
    )


def test_camels_us_broken(tmp_path: Path) -> None:
    _write_camels(tmp_path, huc_dirs=False)
    with pytest.raises(InputError, match=r"no forcing folder 'nldas'"):
        read_camels_us(tmp_path, forcing="nldas")
    f = tmp_path / "basin_mean_forcing" / "daymet" / "01013500_lump_cida_forcing_leap.txt"
    good = f.read_text()
    lines = good.splitlines()
    f.write_text("\n".join(lines[:6] + lines[7:]) + "\n")  # drop a day
    with pytest.raises(InputError, match=r"01013500_lump_cida_forcing_leap\.txt \[line 7\].*not continuous"):
        read_camels_us(tmp_path, forcing="daymet")
    f.write_text("\n".join(["abc"] + lines[1:]) + "\n")
    with pytest.raises(InputError, match=r"forcing_leap\.txt \[line 1\].*lat"):
        read_camels_us(tmp_path, forcing="daymet")
    f.write_text("")
    with pytest.raises(InputError, match=r"forcing_leap\.txt.*empty file"):
        read_camels_us(tmp_path, forcing="daymet")
    f.write_text(good)
    q = tmp_path / "usgs_streamflow" / "01013500_streamflow_qc.txt"
    ql = q.read_text().splitlines()
    q.write_text("\n".join(ql + [ql[-1]]) + "\n")
    with pytest.raises(InputError, match=r"01013500_streamflow_qc\.txt \[line 8\].*duplicate date"):
        read_camels_us(tmp_path, forcing="daymet")
    q.unlink()
    with pytest.raises(InputError, match=r"no streamflow file for gauges \['01013500'\]"):
        read_camels_us(tmp_path, forcing="daymet")


# ----------------------------------------------------------------------------- NWIS RDB

RDB = """# ---------------------------------- WARNING ----------------------------------------
# Provisional data are subject to revision.
#
agency_cd\tsite_no\tdatetime\t148089_00060_00003\t148089_00060_00003_cd
5s\t15s\t20d\t14n\t10s
USGS\t01022500\t2020-01-01\t255\tA
USGS\t01022500\t2020-01-02\tIce\tP
USGS\t01022500\t2020-01-03\t\t
USGS\t01022500\t2020-01-04\t190\tA:e
#
# second site
agency_cd\tsite_no\tdatetime\t150000_00060_00003\t150000_00060_00003_cd
5s\t15s\t20d\t14n\t10s
USGS\t01013500\t2020-01-01\tEqp\tP
USGS\t01013500\t2020-01-02\t***\t
USGS\t01013500\t2020-01-03\t12.5\t<
"""


def test_nwis_rdb_multi_site_codes(tmp_path: Path) -> None:
    p = tmp_path / "dv.rdb"
    p.write_text(RDB)
    df = read_nwis_rdb(p)
    assert list(df.columns) == ["site_no", "date", "value", "qualifier"]
    a = df[df.site_no == "01022500"]
    assert a["value"].tolist()[0] == 255.0 and np.isnan(a["value"].tolist()[1:3]).all()
    assert a["qualifier"].tolist() == ["A", "P", "", "A:e"]
    b = df[df.site_no == "01013500"]
    assert np.isnan(b["value"].iloc[0]) and np.isnan(b["value"].iloc[1]) and b["value"].iloc[2] == 12.5
    # write -> read round trip keeps values, NaN and qualifiers
    p2 = tmp_path / "out.rdb"
    write_nwis_rdb(df, p2)
    back = read_nwis_rdb(p2)
    pd.testing.assert_frame_equal(back, df)
    mm = nwis_to_mm_per_day(df, {"01022500": 573.6, "01013500": 2252.7})
    assert list(mm.columns) == ["site_id", "date", "streamflow_mm"]
    first = mm[(mm.site_id == "01022500") & (mm.date == "2020-01-01")]["streamflow_mm"].item()
    np.testing.assert_allclose(first, 255 * 0.0283168 * 86400 / 573.6e6 * 1000)
    with pytest.raises(InputError, match=r"no basin area for sites \['01013500'\]"):
        nwis_to_mm_per_day(df, {"01022500": 573.6})


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (
            "2020-01-02\tIce",
            "2020-01-01\tIce",
            r"dv\.rdb \[line 7\].*duplicate date 2020-01-01 for site 01022500",
        ),
        ("2020-01-04", "2020/01/04", r"dv\.rdb \[line 9, column datetime\].*unparseable date"),
        (
            "\t190\t",
            "\tabc1\t",
            r"dv\.rdb \[line 9, column 148089_00060_00003\].*neither a number nor an NWIS",
        ),
        (
            "5s\t15s\t20d\t14n\t10s\nUSGS\t01022",
            "5x\t15s\t20d\t14n\t10s\nUSGS\t01022",
            r"\[line 5\].*format row",
        ),
        (
            "agency_cd\tsite_no\tdatetime\t148089",
            "agency\tsite_no\tdatetime\t148089",
            r"\[line 4\].*header row",
        ),
        ("148089_00060_00003\t148089", "148089_00065_00003\t148089", r"\[line 4\].*no daily-mean discharge"),
        ("\t190\tA:e", "\t190\tA:e\textra", r"\[line 9\].*6 fields where the header has 5"),
    ],
)
def test_nwis_rdb_broken(tmp_path: Path, old: str, new: str, match: str) -> None:
    assert old in RDB
    p = tmp_path / "dv.rdb"
    p.write_text(RDB.replace(old, new, 1))
    with pytest.raises(InputError, match=match):
        read_nwis_rdb(p)


def test_nwis_empty(tmp_path: Path) -> None:
    p = tmp_path / "e.rdb"
    p.write_text("")
    with pytest.raises(InputError, match=r"e\.rdb.*empty file"):
        read_nwis_rdb(p)
    p.write_text("# only comments\n#\n")
    with pytest.raises(InputError, match=r"no RDB header row"):
        read_nwis_rdb(p)


def test_merge_streamflow_extends_and_overwrites() -> None:
    ds = _site_ds()
    last = pd.Timestamp(ds["time"].values[-1])
    new = pd.DataFrame(
        {
            "site_id": ["01000000", "01000000", "camels_02000000", "camels_03000000"],
            "date": [last, last + pd.Timedelta(days=2), last - pd.Timedelta(days=1), last],
            "streamflow_mm": [9.5, 7.0, np.nan, 3.25],
        }
    )
    out = merge_streamflow(ds, new)
    assert out.sizes["time"] == N_DAYS + 2
    q = out["streamflow"]
    assert float(q.sel(site="camels_01000000", time=last)) == 9.5
    assert float(q.sel(site="camels_01000000", time=last + pd.Timedelta(days=2))) == 7.0
    assert np.isnan(float(q.sel(site="camels_01000000", time=last + pd.Timedelta(days=1))))
    # NaN never erases an existing value
    prev = float(ds["streamflow"].sel(site="camels_02000000", time=last - pd.Timedelta(days=1)))
    assert float(q.sel(site="camels_02000000", time=last - pd.Timedelta(days=1))) == pytest.approx(prev)
    assert np.isnan(out["total_precipitation_sum"].values[:, -2:]).all()
    assert out["streamflow"].dtype == np.float32 and out["area"].attrs["role"] == "static"
    with pytest.raises(InputError, match=r"sites not in the dataset: \['99999999'\]"):
        merge_streamflow(ds, new.assign(site_id="99999999"))
    with pytest.raises(InputError, match=r"negative streamflow"):
        merge_streamflow(ds, new.assign(streamflow_mm=-1.0))


# ----------------------------------------------------------------------------- pixel cubes


def _pixel_ds(n_px: int = 4, n_t: int = 10) -> xr.Dataset:
    rng = np.random.default_rng(2)
    sm = rng.uniform(0.05, 0.45, (n_px, n_t)).astype(np.float32)
    sm[:, ::2] = np.nan
    return xr.Dataset(
        {
            "SMAP_AM": (("pixel", "time"), sm, {"units": "m3 m-3"}),
            "APCP_FORA": (
                ("pixel", "time"),
                rng.gamma(1, 2, (n_px, n_t)).astype(np.float32),
                {"units": "kg m-2"},
            ),
            "TMP_2_FORA": (
                ("pixel", "time"),
                (280 + rng.normal(0, 5, (n_px, n_t))).astype(np.float32),
                {"units": "K"},
            ),
            "Clay": (("pixel",), rng.uniform(0, 50, n_px).astype(np.float32)),
        },
        coords={
            "pixel": np.arange(n_px),
            "time": pd.date_range("2015-04-01", periods=n_t, freq="D"),
            "lat": ("pixel", np.linspace(30, 45, n_px)),
            "lon": ("pixel", np.linspace(-120, -75, n_px)),
        },
    )


@pytest.mark.parametrize("fmt", ["nc", "zarr"])
def test_pixel_cube_pixel_time(tmp_path: Path, fmt: str) -> None:
    src = _pixel_ds()
    p = tmp_path / f"cube.{fmt}"
    src.to_netcdf(p) if fmt == "nc" else src.to_zarr(p, consolidated=False)
    ds = read_pixel_cube(p)
    assert ds.attrs["domain"] == "soil_moisture" and list(ds["site"].values) == ["px0", "px1", "px2", "px3"]
    assert target_name(ds) == "SMAP_AM" and ds["SMAP_AM"].attrs["units"] == "m3/m3"
    assert sorted(dynamic_names(ds)) == ["APCP_FORA", "TMP_2_FORA"] and static_names(ds) == ["Clay"]
    assert ds["TMP_2_FORA"].attrs["units"] == "degC"
    np.testing.assert_allclose(ds["TMP_2_FORA"].values, src["TMP_2_FORA"].values - 273.15, atol=1e-4)
    sel = read_pixel_cube(p, dynamic=["APCP_FORA"], static=[])
    assert dynamic_names(sel) == ["APCP_FORA"] and static_names(sel) == []


@pytest.mark.parametrize("fmt", ["nc", "zarr"])
def test_pixel_cube_grid_is_stacked(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(3)
    sm = rng.uniform(0.1, 0.3, (2, 3, 5)).astype(np.float32)
    sm[1, 2, :] = np.nan  # an ocean cell: all NaN everywhere -> dropped
    pr = rng.gamma(1, 1, (2, 3, 5)).astype(np.float32)
    pr[1, 2, :] = np.nan
    grid = xr.Dataset(
        {
            "SMAP_AM": (("lat", "lon", "time"), sm),
            "APCP": (("lat", "lon", "time"), pr),
            "Sand": (("lat", "lon"), rng.uniform(0, 1, (2, 3))),
        },
        coords={
            "lat": [40.0, 41.0],
            "lon": [-100.0, -99.0, -98.0],
            "time": pd.date_range("2016-01-01", periods=5, freq="D"),
        },
    )
    p = tmp_path / f"grid.{fmt}"
    grid.to_netcdf(p) if fmt == "nc" else grid.to_zarr(p, consolidated=False)
    ds = read_pixel_cube(p)
    assert ds.sizes["site"] == 5 and "px5" not in ds["site"].values
    assert float(ds["lat"].sel(site="px4")) == 41.0 and float(ds["lon"].sel(site="px4")) == -99.0
    np.testing.assert_allclose(ds["SMAP_AM"].sel(site="px4").values, sm[1, 1])
    assert static_names(ds) == ["Sand"]


def test_pixel_cube_broken(tmp_path: Path) -> None:
    p = tmp_path / "c.nc"
    src = _pixel_ds()
    src.to_netcdf(p)
    with pytest.raises(InputError, match=r"c\.nc \[SMAP_PM\].*'SMAP_PM'.*not found.*APCP_FORA"):
        read_pixel_cube(p, target="SMAP_PM")
    with pytest.raises(InputError, match=r"variables \['NOPE'\] not found.*the file has"):
        read_pixel_cube(p, dynamic=["NOPE"])
    bad = src.copy()
    bad["TMP_2_FORA"].attrs["units"] = "degC"
    bad.to_netcdf(tmp_path / "k.nc")
    with pytest.raises(InputError, match=r"k\.nc \[TMP_2_FORA\].*looks like Kelvin where degC"):
        read_pixel_cube(tmp_path / "k.nc")
    pct = src.assign(SMAP_AM=src["SMAP_AM"] * 100)
    pct.to_netcdf(tmp_path / "pct.nc")
    with pytest.raises(InputError, match=r"pct\.nc \[SMAP_AM\].*outside \[0, 1\]"):
        read_pixel_cube(tmp_path / "pct.nc")
    far = src.assign_coords(lat=("pixel", [10.0, 20.0, 95.0, 30.0]))
    far.to_netcdf(tmp_path / "lat.nc")
    with pytest.raises(InputError, match=r"lat\.nc \[lat\].*out of range"):
        read_pixel_cube(tmp_path / "lat.nc")
    (tmp_path / "e.nc").write_bytes(b"")
    with pytest.raises(InputError, match=r"e\.nc.*empty file"):
        read_pixel_cube(tmp_path / "e.nc")
    (tmp_path / "junk.nc").write_text("not a netcdf")
    with pytest.raises(InputError, match=r"junk\.nc.*cannot open as a NetCDF"):
        read_pixel_cube(tmp_path / "junk.nc")


# ----------------------------------------------------------------------------- ecoregions

ECO_ROWS = [
    # US_L3CODE, NA_L3CODE, NA_L2CODE, NA_L1CODE, polygon
    ("1", "8.1.1", "8.1", "8", box(-90, 40, -89, 41)),
    ("2", "8.1.1", "8.1", "8", box(-89, 40, -88, 41)),  # same L3 as above: dissolved
    ("3", "8.1.2", "8.1", "8", box(-88, 40, -87, 41)),
    ("4", "8.2.1", "8.2", "8", box(-90, 39, -88, 40)),
    ("5", "9.2.1", "9.2", "9", box(-100, 40, -98, 42)),
]


def _eco_gdf(crs: str | None = "EPSG:4326") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "US_L3CODE": [r[0] for r in ECO_ROWS],
            "US_L3NAME": [f"US {r[0]}" for r in ECO_ROWS],
            "NA_L3CODE": [r[1] for r in ECO_ROWS],
            "NA_L3NAME": [f"L3 {r[1]}" for r in ECO_ROWS],
            "NA_L2CODE": [r[2] for r in ECO_ROWS],
            "NA_L2NAME": [f"L2 {r[2]}" for r in ECO_ROWS],
            "NA_L1CODE": [r[3] for r in ECO_ROWS],
            "NA_L1NAME": [f"L1 {r[3]}" for r in ECO_ROWS],
        },
        geometry=[r[4] for r in ECO_ROWS],
        crs=crs,
    )


@pytest.mark.parametrize("ext", ["gpkg", "shp", "geojson"])
def test_ecoregions_formats(tmp_path: Path, ext: str) -> None:
    p = tmp_path / f"eco.{ext}"
    _eco_gdf().to_crs("EPSG:5070").to_file(p)  # projected (Albers) on disk: reader reprojects
    e = read_ecoregions(p)
    assert e.crs.to_epsg() == 4326
    assert list(e.columns) == ["l3", "l2", "l1", "us_l3code", "l3_name", "l2_name", "l1_name", "geometry"]
    assert e["l3"].tolist() == ["8.1.1", "8.1.2", "8.2.1", "9.2.1"]
    row = e.set_index("l3").loc["8.1.1"]
    assert (
        row["us_l3code"] == "1,2" and row["l2"] == "8.1" and row["l1"] == "8" and row["l3_name"] == "L3 8.1.1"
    )
    np.testing.assert_allclose(row.geometry.bounds, (-90, 40, -88, 41), atol=1e-6)
    lv = dissolve_levels(e)
    assert [len(lv[k]) for k in ("l3", "l2", "l1")] == [4, 3, 2]
    assert list(lv["l1"].columns) == ["code", "name", "geometry"] and lv["l1"]["name"].tolist() == [
        "L1 8",
        "L1 9",
    ]
    np.testing.assert_allclose(lv["l1"].geometry.iloc[0].bounds, (-90, 39, -87, 41), atol=1e-6)


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
def test_ecoregions_broken(tmp_path: Path) -> None:
    g = _eco_gdf()
    bow = g.copy()
    bow.loc[2, "geometry"] = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    bow.to_file(tmp_path / "bow.gpkg")
    with pytest.raises(
        InputError, match=r"bow\.gpkg \[feature 2\].*8\.1\.2.*invalid geometry: Self-intersection"
    ):
        read_ecoregions(tmp_path / "bow.gpkg")
    g.set_crs(None, allow_override=True).to_file(tmp_path / "nocrs.shp")
    with pytest.raises(InputError, match=r"nocrs\.shp.*no coordinate reference system"):
        read_ecoregions(tmp_path / "nocrs.shp")
    g.drop(columns="NA_L2CODE").to_file(tmp_path / "nocol.gpkg")
    with pytest.raises(InputError, match=r"nocol\.gpkg.*missing EPA ecoregion code columns \['NA_L2CODE'\]"):
        read_ecoregions(tmp_path / "nocol.gpkg")
    g.drop(columns=["NA_L3NAME", "NA_L2NAME", "NA_L1NAME", "US_L3NAME"]).to_file(tmp_path / "nonames.gpkg")
    assert read_ecoregions(tmp_path / "nonames.gpkg")["l3_name"].eq("").all()  # names are optional
    nest = g.copy()
    nest.loc[4, "NA_L2CODE"] = "8.3"
    nest.to_file(tmp_path / "nest.gpkg")
    with pytest.raises(InputError, match=r"nest\.gpkg \[feature 4\].*codes not nested"):
        read_ecoregions(tmp_path / "nest.gpkg")
    (tmp_path / "empty.gpkg").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.gpkg.*empty file"):
        read_ecoregions(tmp_path / "empty.gpkg")
    with pytest.raises(InputError, match=r"missing\.gpkg.*file not found"):
        read_ecoregions(tmp_path / "missing.gpkg")


# ----------------------------------------------------------------------------- basin polygons, GAGES-II


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
@pytest.mark.parametrize("ext", ["gpkg", "shp"])
def test_basin_polygons(tmp_path: Path, ext: str) -> None:
    g = gpd.GeoDataFrame(
        {"gauge_id": ["01013500", "02046000"], "name": ["a", "b"]},
        geometry=[box(-69, 47, -68, 48), box(-78, 37, -77, 38)],
        crs="EPSG:4326",
    ).to_crs("EPSG:5070")
    p = tmp_path / f"basins.{ext}"
    g.to_file(p)
    b = read_basin_polygons(p)
    assert b.index.tolist() == ["01013500", "02046000"] and b.index.name == "gauge_id"
    assert b.crs.to_epsg() == 4326
    np.testing.assert_allclose(b.geometry.iloc[0].bounds, (-69, 47, -68, 48), atol=1e-6)
    dup = g.assign(gauge_id=["01013500", "01013500"])
    dup.to_file(tmp_path / f"dup.{ext}")
    with pytest.raises(InputError, match=r"dup\.\w+ \[gauge_id\].*duplicate gauge ids \['01013500'\]"):
        read_basin_polygons(tmp_path / f"dup.{ext}")
    with pytest.raises(InputError, match=r"no id column 'hru_id'"):
        read_basin_polygons(p, id_column="hru_id")
    bow = g.to_crs("EPSG:4326")
    bow.loc[1, "geometry"] = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    bow.to_file(tmp_path / f"bow.{ext}")
    with pytest.raises(
        InputError, match=r"feature 1 \(02046000\) has an invalid geometry: Self-intersection"
    ):
        read_basin_polygons(tmp_path / f"bow.{ext}")
    g.set_crs(None, allow_override=True).to_file(tmp_path / f"nocrs.{ext}")
    with pytest.raises(InputError, match=r"nocrs\.\w+.*no coordinate reference system"):
        read_basin_polygons(tmp_path / f"nocrs.{ext}")


def test_gages2_points(tmp_path: Path) -> None:
    pts = gpd.GeoDataFrame(
        {
            "STAID": ["01013500", "02046000", "12010000"],
            "CLASS": ["Ref", "Non-ref", "Ref"],
            "DRAIN_SQKM": [2252.7, 779.0, 340.0],
            "HUC02": ["01", "03", "17"],
            "AGGECOREGI": ["NorthEast", "SECstPlain", "WestMnts"],
            "STATE": ["ME", "VA", "WA"],
        },
        geometry=[Point(-68.58, 47.24), Point(-77.5, 37.0), Point(-123.7, 46.4)],
        crs="EPSG:4326",
    ).to_crs("EPSG:5070")
    p = tmp_path / "gages.shp"
    pts.to_file(p)
    g = read_gages2(p)  # no LAT_GAGE/LNG_GAGE: location from the geometry
    assert g.index.tolist() == ["01013500", "02046000", "12010000"]
    assert g["class"].tolist() == ["Ref", "Non-ref", "Ref"] and g.loc["02046000", "huc02"] == "03"
    np.testing.assert_allclose(g[["lat", "lon"]].values[0], [47.24, -68.58], atol=1e-6)
    pts.assign(CLASS=["Ref", "maybe", "Ref"]).to_file(tmp_path / "cls.shp")
    with pytest.raises(
        InputError, match=r"cls\.shp \[feature 1, column CLASS\].*'maybe'.*not Ref or Non-ref"
    ):
        read_gages2(tmp_path / "cls.shp")
    pts.drop(columns="HUC02").to_file(tmp_path / "nohuc.shp")
    with pytest.raises(InputError, match=r"nohuc\.shp.*missing GAGES-II columns \['HUC02'\]"):
        read_gages2(tmp_path / "nohuc.shp")
    pts.assign(STAID=["01013500", "01013500", "1"]).to_file(tmp_path / "dup.shp")
    with pytest.raises(InputError, match=r"dup\.shp \[STAID\].*duplicate STAID"):
        read_gages2(tmp_path / "dup.shp")


def test_caravan_gauge_without_any_streamflow_is_read_then_dropped_with_its_reason(
    caravan_root: Path,
) -> None:
    """Real basin sets are ragged: one empty gauge is not a refusal of the whole source."""
    from synergy_dagster.sources.selection import drop_sites_without_target

    _edit(_ts(caravan_root), lambda d: d.assign(streamflow=np.nan))
    ds = read_caravan(caravan_root)
    kept, dropped = drop_sites_without_target(ds)
    assert dropped["site"].tolist() == ["camels_01000000"]
    assert "camels_01000000" not in kept["site"].values and kept.sizes["site"] == ds.sizes["site"] - 1
