"""Inputs that parse but cannot be trusted (issue 17, classes 1-4): implausible values and
undeclared fill values, shifted or sub-daily time, wrong identity or geometry, and a text cell in a
numeric attribute column. Each bad file is built in ``tmp_path``; each error must name the file and
the variable / site / date or cell. The rules live in :mod:`synergy_dagster.sources.plausibility`.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from shapely.geometry import LineString, box

from synergy_dagster.errors import InputError
from synergy_dagster.sources.basin_polygons import read_basin_polygons
from synergy_dagster.sources.camels_us import read_camels_us
from synergy_dagster.sources.caravan import read_caravan, write_caravan_csv
from synergy_dagster.sources.ecoregions import read_ecoregions
from synergy_dagster.sources.nwis import read_nwis_rdb
from synergy_dagster.sources.pixels import read_pixel_cube
from synergy_dagster.sources.plausibility import (
    RANGES,
    check_daily_dates,
    check_id_padding,
    check_variable,
    plausible_range,
)
from synergy_dagster.sources.sitedata import make_site_dataset

GAUGES = ("camels_01000000", "camels_02000000")
N_DAYS = 20


# ----------------------------------------------------------------------------- builders


def _caravan(tmp: Path, start: str = "2001-01-01") -> Path:
    rng = np.random.default_rng(0)
    n = len(GAUGES)
    ds = make_site_dataset(
        domain="streamflow", source="test", site_ids=list(GAUGES),
        time=pd.date_range(start, periods=N_DAYS), lat=np.array([40.0, 41.0]),
        lon=np.array([-100.0, -90.0]), target=("streamflow", rng.gamma(2.0, 1.0, (n, N_DAYS)), "mm/d"),
        dynamic={"total_precipitation_sum": (rng.gamma(1.0, 3.0, (n, N_DAYS)), "mm/d"),
                 "temperature_2m_mean": (rng.normal(10, 5, (n, N_DAYS)), "degC")},
        static={"area": (np.array([100.0, 250.0]), "km2"), "p_mean": (np.array([2.5, 3.1]), "")},
    )  # fmt: skip
    root = tmp / "caravan"
    write_caravan_csv(ds, root, "camels")
    return root


def _ts(root: Path, gauge: str = GAUGES[0]) -> Path:
    return root / "timeseries" / "csv" / "camels" / f"{gauge}.csv"


def _attr(root: Path, kind: str = "caravan") -> Path:
    return root / "attributes" / "camels" / f"attributes_{kind}_camels.csv"


def _set_cell(path: Path, row: int, col: str, value: str) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row, col] = value
    df.to_csv(path, index=False)


FORCING_HEADER = "Year Mnth Day Hr\tDayl(s)\tPRCP(mm/day)\tSRAD(W/m2)\tSWE(mm)\tTmax(C)\tTmin(C)\tVp(Pa)\n"
CAMELS_GAUGES = ("01013500", "02046000")


def _camels(root: Path) -> Path:
    dates = pd.date_range("2000-02-26", periods=8, freq="D")
    for k, g in enumerate(CAMELS_GAUGES):
        f = root / "basin_mean_forcing" / "daymet" / f"{g}_lump_cida_forcing_leap.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            f"{d.year} {d.month:02d} {d.day:02d} 12\t40000.00\t{1.5 + i:.2f}\t200.00\t0.00\t"
            f"{10 + i:.2f}\t{2 + i:.2f}\t800.00"
            for i, d in enumerate(dates)
        ]
        f.write_text(f"  45.00\n 300.00\n {500e6 * (k + 1):.0f}\n" + FORCING_HEADER + "\n".join(rows) + "\n")
        q = root / "usgs_streamflow" / f"{g}_streamflow_qc.txt"
        q.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"{g} {d.year} {d.month:02d} {d.day:02d} {(-999.0 if i == 2 else 100.0):8.2f} {'M' if i == 2 else 'A'}"
            for i, d in enumerate(dates)
        ]
        q.write_text("\n".join(lines) + "\n")
    attrs = root / "camels_attributes_v2.0"
    attrs.mkdir(parents=True, exist_ok=True)
    (attrs / "camels_topo.txt").write_text(
        "gauge_id;gauge_lat;gauge_lon;elev_mean;area_gages2\n"
        + "".join(
            f"{g};{45 + k};{-70 - k};{300.0 + k};{400.0 * (k + 1)}\n" for k, g in enumerate(CAMELS_GAUGES)
        )
    )
    (attrs / "camels_name.txt").write_text(
        "gauge_id;huc_02;gauge_name\n"
        + "".join(f"{g};0{k + 1};River {k}\n" for k, g in enumerate(CAMELS_GAUGES))
    )
    return root


def _forcing(root: Path, g: str = CAMELS_GAUGES[0]) -> Path:
    return root / "basin_mean_forcing" / "daymet" / f"{g}_lump_cida_forcing_leap.txt"


def _flow(root: Path, g: str = CAMELS_GAUGES[0]) -> Path:
    return root / "usgs_streamflow" / f"{g}_streamflow_qc.txt"


def _replace_line(path: Path, lineno: int, fn) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = fn(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")


def _cube(n_px: int = 4, n_t: int = 10) -> xr.Dataset:
    rng = np.random.default_rng(2)
    return xr.Dataset(
        {
            "SMAP_AM": (("pixel", "time"), rng.uniform(0.05, 0.45, (n_px, n_t)).astype(np.float32),
                        {"units": "m3 m-3"}),
            "APCP_FORA": (("pixel", "time"), rng.gamma(1, 2, (n_px, n_t)).astype(np.float32),
                          {"units": "kg m-2"}),
            "TMP_2_FORA": (("pixel", "time"), (280 + rng.normal(0, 5, (n_px, n_t))).astype(np.float32),
                           {"units": "K"}),
            "Clay": (("pixel",), rng.uniform(0, 50, n_px).astype(np.float32)),
        },
        coords={"pixel": np.arange(n_px), "time": pd.date_range("2015-04-01", periods=n_t, freq="D"),
                "lat": ("pixel", np.linspace(30, 45, n_px)), "lon": ("pixel", np.linspace(-120, -75, n_px))},
    )  # fmt: skip


RDB_HEAD = (
    "# Data provided for site {site}\n"
    "agency_cd\tsite_no\tdatetime\t148089_00060_00003\t148089_00060_00003_cd\n5s\t15s\t20d\t14n\t10s\n"
)


def _rdb(path: Path, site: str = "01022500", rows: list[tuple[str, str, str]] | None = None) -> Path:
    rows = rows or [(site, f"2020-01-0{d}", f"{200 + d}") for d in range(1, 6)]
    body = "".join(f"USGS\t{s}\t{d}\t{v}\tA\n" for s, d, v in rows)
    path.write_text(RDB_HEAD.format(site=site) + body)
    return path


ECO = [  # US_L3CODE, NA_L3CODE, NA_L2CODE, NA_L1CODE, polygon
    ("1", "7.1.8", "7.1", "7", box(-125, 40, -115, 49)),
    ("2", "8.3.5", "8.3", "8", box(-115, 30, -100, 49)),
    ("3", "9.4.1", "9.4", "9", box(-100, 30, -85, 49)),
]


def _eco(rows=ECO) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "US_L3CODE": [r[0] for r in rows], "US_L3NAME": [f"US {r[0]}" for r in rows],
            "NA_L3CODE": [r[1] for r in rows], "NA_L3NAME": [f"L3 {r[1]}" for r in rows],
            "NA_L2CODE": [r[2] for r in rows], "NA_L2NAME": [f"L2 {r[2]}" for r in rows],
            "NA_L1CODE": [r[3] for r in rows], "NA_L1NAME": [f"L1 {r[3]}" for r in rows],
        },
        geometry=[r[4] for r in rows], crs="EPSG:4326",
    )  # fmt: skip


# ----------------------------------------------------------------------------- 1. plausibility


def test_range_table_accepts_real_units_and_knows_kinds() -> None:
    assert plausible_range("TMP_2_FORA", "K").lo == 183.0  # NLDAS in the SMAP cube
    assert plausible_range("temperature_2m_mean", "degC").hi == 60.0  # ERA5-Land in Caravan
    assert plausible_range("APCP_FORA", "kg m-2 (daily total)").kind == "precipitation"
    assert plausible_range("SPFH_2_FORA", "kg kg-1").kind == "specific_humidity"
    assert plausible_range("potential_evaporation_sum", "mm/d").lo < 0  # ERA5-Land PET dips below 0
    assert plausible_range("mystery", "furlongs") is None
    assert all(r.lo < r.hi for r in RANGES)


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("total_precipitation_sum", "-5", r"total_precipitation_sum = -5 for site 'camels_01000000' on "
         r"2001-01-04: outside the plausible range \[0, 2000\] mm/d for precipitation \(1 such value\)"),
        ("temperature_2m_mean", "75", r"temperature_2m_mean = 75 .* on 2001-01-04: outside .*\[-90, 60\] degC"),
        ("total_precipitation_sum", "1e20", r"= 1e\+20 .* on 2001-01-04: a fill value"),
        ("temperature_2m_mean", "9.96921e36", r"temperature_2m_mean = 9\.96921e\+36 .* a fill value"),
        ("temperature_2m_mean", "-inf", r"temperature_2m_mean = -inf .* a fill value"),
        ("streamflow", "-99999", r"streamflow = -99999 for site 'camels_01000000' on 2001-01-04: a fill value"),
    ],
)  # fmt: skip
def test_caravan_implausible_or_fill_value_named(tmp_path: Path, column: str, value: str, match: str) -> None:
    root = _caravan(tmp_path)
    _set_cell(_ts(root), 3, column, value)
    with pytest.raises(InputError, match=match) as err:
        read_caravan(root)
    assert f"{GAUGES[0]}.csv [variable {column}, site {GAUGES[0]}, date 2001-01-04]" in str(err.value)


def test_caravan_declared_missing_value_is_missing(tmp_path: Path) -> None:
    root = _caravan(tmp_path)
    _set_cell(_ts(root), 3, "temperature_2m_mean", "-8888")
    with pytest.raises(InputError, match=r"outside the plausible range"):
        read_caravan(root)
    ds = read_caravan(root, missing_values=[-8888.0])
    assert np.isnan(ds["temperature_2m_mean"].sel(site=GAUGES[0]).values[3])
    ds = read_caravan(root, missing_values={"temperature_2m_mean": [-8888.0]})
    assert np.isfinite(ds["temperature_2m_mean"].values).sum() == 2 * N_DAYS - 1


def test_camels_forcing_fill_is_an_error_but_streamflow_flag_is_missing(tmp_path: Path) -> None:
    root = _camels(tmp_path)
    ds = read_camels_us(root, forcing="daymet")  # -999 in the streamflow files: declared missing
    assert np.isnan(ds["streamflow"].values[:, 2]).all()
    _replace_line(_forcing(root), 7, lambda s: s.replace("\t800.00", "\t-9999.00"))
    with pytest.raises(
        InputError, match=r"vp = -9999 for site '01013500' on 2000-02-28: a fill value"
    ) as err:
        read_camels_us(root, forcing="daymet")
    assert "01013500_lump_cida_forcing_leap.txt" in str(err.value)
    ds = read_camels_us(root, forcing="daymet", missing_values={"vp": [-9999]})
    assert np.isnan(ds["vp"].values[0, 2])


def test_camels_streamflow_undeclared_fill_is_named(tmp_path: Path) -> None:
    root = _camels(tmp_path)
    _replace_line(_flow(root), 5, lambda s: s.replace("100.00", "-9999.00"))
    with pytest.raises(InputError, match=r"01013500_streamflow_qc\.txt \[variable streamflow, site 01013500, "
                       r"date 2000-03-01\].*-9999.*fill value"):  # fmt: skip
        read_camels_us(root, forcing="daymet")


def test_pixel_cube_fill_and_range(tmp_path: Path) -> None:
    src = _cube()
    src["APCP_FORA"][1, 4] = -9999.0
    p = tmp_path / "cube.nc"
    src.to_netcdf(p)
    with pytest.raises(InputError, match=r"cube\.nc \[variable APCP_FORA, site px1, date 2015-04-05\]: "
                       r"APCP_FORA = -9999 .*fill value.*\(1 such value\)"):  # fmt: skip
        read_pixel_cube(p)
    assert np.isnan(read_pixel_cube(p, missing_values=[-9999]).sel(site="px1")["APCP_FORA"].values[4])
    src = _cube()
    src["TMP_2_FORA"][2, 6] = 400.0  # K: beyond any air temperature
    src.to_netcdf(p)
    with pytest.raises(InputError, match=r"TMP_2_FORA = 126\.85 for site 'px2' on 2015-04-07: outside"):
        read_pixel_cube(p)


def test_pixel_cube_declared_netcdf_fill_value_stays_missing(tmp_path: Path) -> None:
    src = _cube()
    src["APCP_FORA"][0, 0] = np.nan
    p = tmp_path / "cube.nc"
    src.to_netcdf(p, encoding={"APCP_FORA": {"_FillValue": -9999.0}})
    ds = read_pixel_cube(p)
    assert np.isnan(ds["APCP_FORA"].values[0, 0]) and np.isfinite(ds["APCP_FORA"].values[0, 1:]).all()


def test_nwis_fill_value_and_negative_discharge(tmp_path: Path) -> None:
    p = _rdb(tmp_path / "dv.rdb", rows=[("01022500", f"2020-01-0{d}", "-999999" if d == 3 else "50")
                                        for d in range(1, 6)])  # fmt: skip
    with pytest.raises(InputError, match=r"dv\.rdb \[line 6, column 148089_00060_00003\].*-999999.*site "
                       r"'01022500' on 2020-01-03: a fill value"):  # fmt: skip
        read_nwis_rdb(p)
    assert np.isnan(read_nwis_rdb(p, missing_values=[-999999])["value"].iloc[2])
    _rdb(p, rows=[("01022500", f"2020-01-0{d}", "-3" if d == 2 else "50") for d in range(1, 6)])
    with pytest.raises(InputError, match=r"\[line 5, column .*\].*streamflow = -3 .*2020-01-02: outside"):
        read_nwis_rdb(p)


def test_check_variable_unknown_variable_gets_fill_check_only() -> None:
    arr = np.array([[1e9, -5.0, np.nan]])
    out = check_variable(arr, "mystery", "", ["s"], pd.date_range("2000-01-01", periods=3), "f.nc")
    np.testing.assert_array_equal(out[0, :2], [1e9, -5.0])
    with pytest.raises(InputError, match=r"f\.nc \[variable mystery, site s, date 2000-01-02\]"):
        check_variable(np.array([[1.0, 1e20, np.inf]]), "mystery", "", ["s"],
                       pd.date_range("2000-01-01", periods=3), "f.nc")  # fmt: skip


# ----------------------------------------------------------------------------- 2. time


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("2001-01-05", "2001-01-05T00:00+02:00", r"\[line 6, column date\].*'2001-01-05T00:00\+02:00' carries a "
         r"time-zone offset"),
        ("2001-01-05", "2001-01-05Z", r"\[line 6, column date\].*'2001-01-05Z' carries a time-zone offset"),
        ("2001-01-05", "2001-01-05 06:00", r"\[line 6, column date\].*2001-01-05 06:00:00 has a time of day"),
        ("2001-01-05", "1891-01-05", r"\[line 6\].*date 1891-01-05 is 1\d\d years away .*typo in the year"),
        ("2001-01-01", "1901-01-01", r"\[line 2\].*date 1901-01-01 is 100 years away"),
        ("2001-01-05", "2001-01-04", r"\[line 6\].*duplicate date 2001-01-04"),
    ],
)  # fmt: skip
def test_caravan_time_refused(tmp_path: Path, old: str, new: str, match: str) -> None:
    root = _caravan(tmp_path)
    p = _ts(root)
    p.write_text(p.read_text().replace(old, new, 1))
    with pytest.raises(InputError, match=match) as err:
        read_caravan(root)
    assert f"{GAUGES[0]}.csv" in str(err.value)


def test_caravan_whole_file_decades_away_is_refused(tmp_path: Path) -> None:
    root = _caravan(tmp_path)
    p = _ts(root, GAUGES[1])
    p.write_text(p.read_text().replace("2001-", "1901-"))  # every date with the typo
    with pytest.raises(InputError, match=r"camels_02000000\.csv \[time\]: record 1901-01-01 \.\. 1901-01-20 "
                       r"lies 100 years away from the other files"):  # fmt: skip
        read_caravan(root)


@pytest.mark.parametrize(
    ("units", "times", "match"),
    [
        ("days since 2015-04-01 00:00:00 +05:00", np.arange(10), r"cube\.nc \[time\]: .*\+05:00.*time-zone offset"),
        ("hours since 2015-04-01 00:00:00", np.arange(10) * 24 + 6, r"\[time index 0, column time\].*"
         r"2015-04-01 06:00:00 has a time of day"),
        ("hours since 2015-04-01", np.array([0, 12, 24, 36, 48, 60, 72, 84, 96, 108]),
         r"\[time index 1, column time\].*2015-04-01 12:00:00 has a time of day"),
    ],
)  # fmt: skip
def test_pixel_cube_time_refused(tmp_path: Path, units: str, times: np.ndarray, match: str) -> None:
    src = _cube().drop_vars("time").assign_coords(time=("time", times, {"units": units}))
    p = tmp_path / "cube.nc"
    src.to_netcdf(p)
    with pytest.raises(InputError, match=match):
        read_pixel_cube(p)


def test_camels_and_nwis_time_refused(tmp_path: Path) -> None:
    root = _camels(tmp_path / "c")
    _replace_line(_flow(root), 4, lambda s: s.replace(" 2000 02 29 ", " 1900 02 28 "))
    with pytest.raises(
        InputError, match=r"01013500_streamflow_qc\.txt \[line 4\].*1900-02-28 is 100 years away"
    ):
        read_camels_us(root, forcing="daymet")
    p = _rdb(
        tmp_path / "dv.rdb", rows=[("01022500", d, "5") for d in ("2020-01-01", "2020-01-02T00:00-05:00")]
    )
    with pytest.raises(InputError, match=r"dv\.rdb \[line 5, column datetime\].*time-zone offset"):
        read_nwis_rdb(p)
    _rdb(p, rows=[("01022500", d, "5") for d in ("2020-01-01", "2020-01-01 12:00")])
    with pytest.raises(
        InputError, match=r"\[line 5, column datetime\].*2020-01-01 12:00:00 has a time of day"
    ):
        read_nwis_rdb(p)


def test_check_daily_dates_keeps_the_named_day() -> None:
    idx = check_daily_dates(pd.Series(["2001-03-01", "2001-03-02T00:00:00", "2001-03-03 00:00"]), "f.csv")
    assert list(idx.strftime("%Y-%m-%d")) == ["2001-03-01", "2001-03-02", "2001-03-03"]
    with pytest.raises(InputError, match=r"f\.csv \[line 3, column date\].*'2001-03-02 00:00:00\+02:00'"):
        check_daily_dates(pd.Series(["2001-03-01", "2001-03-02 00:00:00+02:00"]), "f.csv")


# ----------------------------------------------------------------------------- 3. identity, geometry


def test_file_content_names_another_gauge(tmp_path: Path) -> None:
    root = _camels(tmp_path / "c")
    _flow(root).write_text(_flow(root).read_text().replace("01013500 ", "02046000 "))
    with pytest.raises(InputError, match=r"01013500_streamflow_qc\.txt \[line 1, column 1\]: the file is named "
                       r"for gauge '01013500' but its rows name gauge '02046000'"):  # fmt: skip
        read_camels_us(root, forcing="daymet")
    p = _rdb(tmp_path / "dv.rdb", rows=[("01022500", "2020-01-01", "5"), ("01013500", "2020-01-02", "6")])
    with pytest.raises(InputError, match=r"dv\.rdb \[line 5, column site_no\].*named for gauge '01022500' but "
                       r"its rows name gauge '01013500'"):  # fmt: skip
        read_nwis_rdb(p)
    p2 = _rdb(tmp_path / "01022500.rdb", site="01022500")
    p2.write_text(p2.read_text().replace("01022500", "1022500").replace("site 1022500", "site 01022500"))
    with pytest.raises(
        InputError, match=r"01022500\.rdb.*rows name gauge '1022500' \(a leading zero lost\?\)"
    ):
        read_nwis_rdb(p2)


def test_caravan_gauge_id_column_must_match_file(tmp_path: Path) -> None:
    root = _caravan(tmp_path)
    df = pd.read_csv(_ts(root), dtype=str)
    df.insert(1, "gauge_id", GAUGES[0])
    df.to_csv(_ts(root), index=False)
    assert read_caravan(root).sizes["site"] == 2  # its own id: fine, and not read as a variable
    df.loc[4, "gauge_id"] = GAUGES[1]
    df.to_csv(_ts(root), index=False)
    with pytest.raises(InputError, match=r"camels_01000000\.csv \[line 6, column gauge_id\].*rows name gauge "
                       r"'camels_02000000'"):  # fmt: skip
        read_caravan(root)


def test_leading_zero_lost_in_one_table(tmp_path: Path) -> None:
    root = _camels(tmp_path / "c")
    name = root / "camels_attributes_v2.0" / "camels_name.txt"
    name.write_text(name.read_text().replace("01013500;", "1013500;"))
    with pytest.raises(InputError, match=r"camels_name\.txt \[id 1013500\]: gauge id '1013500' here is "
                       r"'01013500' in .*camels_topo\.txt: a leading zero was lost"):  # fmt: skip
        read_camels_us(root, forcing="daymet")
    car = _caravan(tmp_path / "k")
    _set_cell(_attr(car), 0, "gauge_id", "camels_1000000")
    with pytest.raises(InputError, match=r"attributes_caravan_camels\.csv.*'camels_1000000' here is "
                       r"'camels_01000000' in .*attributes_.*_camels\.csv"):  # fmt: skip
        read_caravan(car)
    check_id_padding({"a": ["01022500", "12345678"], "b": ["12345678", "01022500"]})  # equal ids: fine


def test_gauge_far_outside_its_basin(tmp_path: Path) -> None:
    g = gpd.GeoDataFrame({"gauge_id": ["01013500", "02046000"]},
                         geometry=[box(-69, 47, -68, 48), box(-78, 37, -77, 38)], crs="EPSG:4326")  # fmt: skip
    p = tmp_path / "basins.gpkg"
    g.to_file(p)
    near = pd.DataFrame({"lat": [47.0, 38.02], "lon": [-68.5, -77.5]}, index=["01013500", "02046000"])
    assert len(read_basin_polygons(p, gauges=near)) == 2  # on the edge, and 2 km off: within 5 km
    far = near.assign(lat=[47.0, 38.5])  # ~55 km north of its basin
    with pytest.raises(InputError, match=r"basins\.gpkg \[gauge 02046000\]: gauge '02046000' at lat 38\.5, "
                       r"lon -77\.5 lies 55\.\d km outside its basin polygon \(tolerance 5 km\)"):  # fmt: skip
        read_basin_polygons(p, gauges=far)


def test_site_outside_study_extent(tmp_path: Path) -> None:
    extent = (-126.0, 23.0, -66.0, 50.0)  # CONUS ecoregion bounds + 1 degree (extent_of)
    root = _caravan(tmp_path)
    assert read_caravan(root, extent=extent).sizes["site"] == 2
    other = _attr(root, "other")
    _set_cell(other, 1, "gauge_lat", "-90")
    _set_cell(other, 1, "gauge_lon", "41")  # lat/lon swapped (and a sign lost)
    with pytest.raises(
        InputError,
        match=r"attributes_other_camels\.csv \[site camels_02000000\]: site 'camels_02000000' at lat -90, "
        r"lon 41 lies outside the study extent",
    ):
        read_caravan(root, extent=extent)
    src = _cube()
    src["lat"][2], src["lon"][2] = 45.0, 100.0  # lon sign lost: a pixel in Asia
    p = tmp_path / "cube.nc"
    src.to_netcdf(p)
    assert read_pixel_cube(p).sizes["site"] == 4  # without an extent only [-90, 90] / [-180, 180] is checked
    with pytest.raises(
        InputError, match=r"cube\.nc \[site px2\]: site 'px2' at lat 45, lon 100 lies outside"
    ):
        read_pixel_cube(p, extent=extent)


def test_ecoregion_layer_not_polygons_or_overlapping(tmp_path: Path) -> None:
    p = tmp_path / "eco.gpkg"
    rows = [*ECO[:2], ("3", "9.4.1", "9.4", "9", box(-100, 30, -85, 49).exterior)]
    _eco(rows).to_file(p)
    with pytest.raises(InputError, match=r"eco\.gpkg \[feature 2\]: feature 2 \(9\.4\.1\) is a LinearRing|"
                       r"eco\.gpkg \[feature 2\]: feature 2 \(9\.4\.1\) is a LineString"):  # fmt: skip
        read_ecoregions(p)
    rows = [*ECO[:2], ("3", "9.4.1", "9.4", "9", box(-105, 30, -85, 49))]  # 5 degrees into 8.3.5
    _eco(rows).to_file(p)
    with pytest.raises(
        InputError, match=r"feature 1 \(8\.3\.5\) and feature 2 \(9\.4\.1\) overlap by 33\.3% "
    ):
        read_ecoregions(p)
    # The same code in two polygons is one multipart region, not an overlap
    rows = [*ECO, ("4", "9.4.1", "9.4", "9", box(-85, 30, -80, 49))]
    _eco(rows).to_file(p)
    assert len(read_ecoregions(p)) == 3


def test_ecoregion_code_missing(tmp_path: Path) -> None:
    p = tmp_path / "eco.gpkg"
    gdf = _eco()
    gdf.loc[1, "NA_L2CODE"] = None
    gdf.to_file(p)
    with pytest.raises(
        InputError, match=r"eco\.gpkg \[feature 1, column NA_L2CODE\]: feature 1 has no NA_L2CODE"
    ):
        read_ecoregions(p)
    gdf = _eco()
    gdf.loc[2, "NA_L3CODE"] = " "
    gdf.to_file(p)
    with pytest.raises(InputError, match=r"feature 2 has no NA_L3CODE"):
        read_ecoregions(p)


def test_line_layer_without_polygons(tmp_path: Path) -> None:
    p = tmp_path / "eco.gpkg"
    rows = [(r[0], r[1], r[2], r[3], LineString(r[4].exterior.coords)) for r in ECO]
    _eco(rows).to_file(p)
    with pytest.raises(InputError, match=r"feature 0 \(7\.1\.8\) is a LineString, not a polygon"):
        read_ecoregions(p)


# ----------------------------------------------------------------------------- 4. one bad cell


@pytest.mark.parametrize("bad", ["n/a ", "12,5"])
def test_caravan_text_cell_in_numeric_attribute(tmp_path: Path, bad: str) -> None:
    root = _caravan(tmp_path)
    _set_cell(_attr(root), 1, "p_mean", bad)
    with pytest.raises(InputError, match=r"attributes_caravan_camels\.csv \[gauge_id camels_02000000, column "
                       rf"p_mean\]: text value '{bad}' in numeric column 'p_mean'"):  # fmt: skip
        read_caravan(root)


def test_camels_text_cell_in_numeric_attribute_but_text_columns_stay(tmp_path: Path) -> None:
    root = _camels(tmp_path)
    ds = read_camels_us(root, forcing="daymet")
    assert "elev_mean" in ds and "gauge_name" not in ds and "huc_02" not in ds  # text stays out, as before
    topo = root / "camels_attributes_v2.0" / "camels_topo.txt"
    topo.write_text(topo.read_text().replace(";301.0;", ";301,0;"))
    with pytest.raises(InputError, match=r"camels_topo\.txt \[gauge_id 02046000, column elev_mean\]: text value "
                       r"'301,0'"):  # fmt: skip
        read_camels_us(root, forcing="daymet")


def test_pixel_cube_text_variable_is_named(tmp_path: Path) -> None:
    src = _cube()
    src["landcover"] = (("pixel",), np.array(["forest", "crop", "grass", "forest"], dtype=object))
    p = tmp_path / "cube.nc"
    src.to_netcdf(p)
    with pytest.raises(
        InputError, match=r"cube\.nc \[landcover\]: variable 'landcover' holds .* not numbers"
    ):
        read_pixel_cube(p)
    assert "landcover" not in read_pixel_cube(p, static=["Clay"])
