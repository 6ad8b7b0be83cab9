"""A catalogue of bad inputs across every reader, the config, the plan, the store and the landing
folder: each must raise :class:`InputError` / :class:`ConfigError` naming the file or field and the
problem, and leave nothing behind (no temp file, no cache file, no changed file, no lost DuckDB row).

Each case is a function that writes a good input into ``tmp_path``, breaks it, and returns a
:class:`Case`. Readers run through :func:`_through_cache`, which writes what they return the way the
``raw_*`` assets do (NetCDF / GeoPackage / Parquet through ``atomic_path``), so a reader that failed
late would leave a cache file behind and the snapshot comparison would catch it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from shapely.geometry import Point, Polygon, box

from synergy_dagster.config import Period, PlanConfig, Profile
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.io_utils import atomic_path
from synergy_dagster.sources.basin_polygons import read_basin_polygons
from synergy_dagster.sources.camels_us import read_camels_us
from synergy_dagster.sources.caravan import read_caravan, write_caravan_csv
from synergy_dagster.sources.ecoregions import read_ecoregions
from synergy_dagster.sources.gages2 import read_gages2
from synergy_dagster.sources.nwis import read_nwis_rdb
from synergy_dagster.sources.pixels import read_pixel_cube
from synergy_dagster.sources.sitedata import make_site_dataset
from synergy_dagster_tests.conftest import make_arrays

# The no-CRS cases write shapefiles without a .prj on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")


@dataclass
class Case:
    call: Callable[[], Any]  # raises
    match: str  # regex on the message: the problem
    names: str  # must appear in the message: the file or field
    error: type[Exception] = InputError
    after: Callable[[], None] | None = None  # extra checks (e.g. DuckDB rows kept)
    ignore: tuple[str, ...] = ()  # file suffixes the call may legitimately touch (a DuckDB file)


def _through_cache(read: Callable[[], Any], out: Path) -> Callable[[], None]:
    """Read, then cache the result as the raw_* assets do (atomic writes under ``out``)."""

    def run() -> None:
        obj = read()
        if isinstance(obj, xr.Dataset):
            with atomic_path(out / "cache.nc") as tmp:
                obj.to_netcdf(tmp)
        elif isinstance(obj, gpd.GeoDataFrame):
            with atomic_path(out / "cache.gpkg") as tmp:
                obj.to_file(tmp, driver="GPKG", layer="l3")
        else:
            with atomic_path(out / "cache.parquet") as tmp:
                pd.DataFrame(obj).to_parquet(tmp)

    return run


def _edit(path: Path, fn: Callable[[str], str]) -> None:
    path.write_text(fn(path.read_text()))


def _lines(path: Path, fn: Callable[[list[str]], list[str]]) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


# ----------------------------------------------------------------------------------------- Caravan

GAUGES = ("camels_01000000", "camels_02000000")


def _caravan(tmp: Path, n_days: int = 30) -> Path:
    rng = np.random.default_rng(0)
    n = len(GAUGES)
    ds = make_site_dataset(
        domain="streamflow", source="test", site_ids=list(GAUGES),
        time=pd.date_range("2001-01-01", periods=n_days), lat=np.array([40.0, 41.0]),
        lon=np.array([-100.0, -90.0]), target=("streamflow", rng.gamma(2.0, 1.0, (n, n_days)), "mm/d"),
        dynamic={"total_precipitation_sum": (rng.gamma(1.0, 3.0, (n, n_days)), "mm/d"),
                 "temperature_2m_mean": (rng.normal(10, 5, (n, n_days)), "degC")},
        static={"area": (np.array([100.0, 250.0]), "km2")},
    )  # fmt: skip
    root = tmp / "caravan"
    write_caravan_csv(ds, root, "camels")
    return root


def _ts(root: Path, gauge: str = GAUGES[0]) -> Path:
    return root / "timeseries" / "csv" / "camels" / f"{gauge}.csv"


def _caravan_case(tmp: Path, breaker: Callable[[Path], None], match: str, names: str) -> Case:
    root = _caravan(tmp)
    breaker(root)
    return Case(_through_cache(lambda: read_caravan(root, "camels"), tmp / "cache"), match, names)


def _frame_edit(path: Path, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    fn(df).to_csv(path, index=False)


def c_caravan_empty(tmp: Path) -> Case:
    return _caravan_case(tmp, lambda r: _ts(r).write_text(""), "empty file", f"{GAUGES[0]}.csv")


def c_caravan_truncated(tmp: Path) -> Case:
    def cut(r: Path) -> None:  # the write stopped inside the last line's date
        text = _ts(r).read_text()
        _ts(r).write_text(text[: text.rstrip("\n").rindex("\n") + 6])

    return _caravan_case(tmp, cut, r"1 fields where the header has 4", f"{GAUGES[0]}.csv [line 31]")


def c_caravan_wrong_delimiter(tmp: Path) -> Case:
    return _caravan_case(
        tmp, lambda r: _edit(_ts(r), lambda t: t.replace(",", ";")), "no 'date' column", f"{GAUGES[0]}.csv"
    )


def c_caravan_missing_column(tmp: Path) -> Case:
    def drop(r: Path) -> None:
        for g in GAUGES:
            _frame_edit(_ts(r, g), lambda df: df.drop(columns=["streamflow"]))

    return _caravan_case(tmp, drop, "no 'streamflow' column", f"{GAUGES[0]}.csv")


def c_caravan_extra_column(tmp: Path) -> Case:
    return _caravan_case(
        tmp,
        lambda r: _frame_edit(_ts(r, GAUGES[1]), lambda df: df.assign(snow_mystery="1")),
        r"columns .*snow_mystery.* differ from",
        f"{GAUGES[1]}.csv",
    )


def c_caravan_non_numeric(tmp: Path) -> Case:
    def bad(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[4, "total_precipitation_sum"] = "abc"
        return df

    return _caravan_case(
        tmp,
        lambda r: _frame_edit(_ts(r), bad),
        r"non-numeric value 'abc' in column 'total_precipitation_sum'",
        f"{GAUGES[0]}.csv [line 6, column total_precipitation_sum]",
    )


def c_caravan_duplicate_dates(tmp: Path) -> Case:
    def dup(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[5, "date"] = df.loc[4, "date"]
        return df

    return _caravan_case(
        tmp, lambda r: _frame_edit(_ts(r), dup), "duplicate date 2001-01-05", f"{GAUGES[0]}.csv [line 7]"
    )


def c_caravan_dates_out_of_order(tmp: Path) -> Case:
    def swap(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[[3, 4], "date"] = df.loc[[4, 3], "date"].to_numpy()
        return df

    return _caravan_case(tmp, lambda r: _frame_edit(_ts(r), swap), "dates not increasing", f"{GAUGES[0]}.csv")


def c_caravan_cfs(tmp: Path) -> Case:
    def cfs(df: pd.DataFrame) -> pd.DataFrame:  # ft3/s of a 250 km2 basin: ~35x the mm/d values
        df["streamflow"] = (df["streamflow"].astype(float) * 400).astype(str)
        return df

    return _caravan_case(
        tmp, lambda r: _frame_edit(_ts(r, GAUGES[1]), cfs), "looks like cfs", f"{GAUGES[1]}.csv"
    )


def c_caravan_kelvin(tmp: Path) -> Case:
    def kelvin(df: pd.DataFrame) -> pd.DataFrame:
        df["temperature_2m_mean"] = (df["temperature_2m_mean"].astype(float) + 273.15).astype(str)
        return df

    return _caravan_case(
        tmp,
        lambda r: _frame_edit(_ts(r), kelvin),
        "looks like Kelvin where degC is expected",
        f"{GAUGES[0]}.csv [temperature_2m_mean]",
    )


def c_caravan_all_nan(tmp: Path) -> Case:
    # One empty gauge among others is dropped later with its reason (test_study_file); a source
    # where every gauge is empty is refused.
    def empty(r: Path) -> None:
        for g in GAUGES:
            _frame_edit(_ts(r, g), lambda df: df.assign(streamflow=""))

    return _caravan_case(
        tmp, empty, f"streamflow is missing on every day for gauge '{GAUGES[0]}'", f"{GAUGES[0]}.csv"
    )


def c_caravan_negative_flow(tmp: Path) -> Case:
    def neg(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[2, "streamflow"] = "-3.5"
        return df

    return _caravan_case(
        tmp, lambda r: _frame_edit(_ts(r), neg), "negative streamflow -3.5", f"{GAUGES[0]}.csv"
    )


def c_caravan_duplicate_ids(tmp: Path) -> Case:
    other = Path("attributes") / "camels" / "attributes_other_camels.csv"
    return _caravan_case(
        tmp,
        lambda r: _lines(r / other, lambda ls: [*ls, ls[1]]),
        f"duplicate gauge ids \\['{GAUGES[0]}'\\]",
        "attributes_other_camels.csv [gauge_id]",
    )


def c_caravan_gauge_without_attributes(tmp: Path) -> Case:
    def extra(r: Path) -> None:
        _ts(r, "camels_09999999").write_text(_ts(r).read_text())

    return _caravan_case(tmp, extra, "has a time series but no attribute row", "camels_09999999.csv")


def c_caravan_missing_root(tmp: Path) -> Case:
    missing = tmp / "no_such_caravan"
    return Case(
        _through_cache(lambda: read_caravan(missing), tmp / "cache"), "root folder not found", str(missing)
    )


# ----------------------------------------------------------------------------------------- CAMELS-US

CAMELS_HEADER = "Year Mnth Day Hr\tDayl(s)\tPRCP(mm/day)\tTmax(C)\tTmin(C)\n"
CAMELS_GAUGE = "01013500"


def _camels(tmp: Path) -> Path:
    root = tmp / "camels_us"
    dates = pd.date_range("2000-01-01", periods=10)
    forcing = root / "basin_mean_forcing" / "daymet" / f"{CAMELS_GAUGE}_lump_cida_forcing_leap.txt"
    forcing.parent.mkdir(parents=True)
    rows = [
        f"{d.year} {d.month:02d} {d.day:02d} 12\t40000\t{i % 3:.1f}\t{5 + i}.0\t{i}.0"
        for i, d in enumerate(dates)
    ]
    forcing.write_text("  45.00\n 300.00\n 500000000\n" + CAMELS_HEADER + "\n".join(rows) + "\n")
    flow = root / "usgs_streamflow" / f"{CAMELS_GAUGE}_streamflow_qc.txt"
    flow.parent.mkdir(parents=True)
    flow.write_text(
        "".join(
            f"{CAMELS_GAUGE} {d.year} {d.month:02d} {d.day:02d} {50 + i:.2f} A\n" for i, d in enumerate(dates)
        )
    )
    attrs = root / "camels_attributes_v2.0"
    attrs.mkdir()
    (attrs / "camels_topo.txt").write_text(
        f"gauge_id;gauge_lat;gauge_lon;area_gages2\n{CAMELS_GAUGE};45.0;-70.0;500.0\n"
    )
    return root


def _camels_case(tmp: Path, breaker: Callable[[Path], None], match: str, names: str) -> Case:
    root = _camels(tmp)
    breaker(root)
    return Case(_through_cache(lambda: read_camels_us(root, forcing="daymet"), tmp / "cache"), match, names)


def _flow(root: Path) -> Path:
    return root / "usgs_streamflow" / f"{CAMELS_GAUGE}_streamflow_qc.txt"


def _forcing(root: Path) -> Path:
    return root / "basin_mean_forcing" / "daymet" / f"{CAMELS_GAUGE}_lump_cida_forcing_leap.txt"


def c_camels_empty_streamflow(tmp: Path) -> Case:
    return _camels_case(
        tmp, lambda r: _flow(r).write_text(""), "empty file", f"{CAMELS_GAUGE}_streamflow_qc.txt"
    )


def c_camels_bad_area_header(tmp: Path) -> Case:
    return _camels_case(
        tmp,
        lambda r: _lines(_forcing(r), lambda ls: [ls[0], ls[1], " unknown", *ls[3:]]),
        "header line should hold the basin area_m2",
        "forcing_leap.txt [line 3]",
    )


def c_camels_attributes_comma_delimited(tmp: Path) -> Case:
    topo = Path("camels_attributes_v2.0") / "camels_topo.txt"
    return _camels_case(
        tmp,
        lambda r: _edit(r / topo, lambda t: t.replace(";", ",")),
        "no 'gauge_id' column",
        "camels_topo.txt",
    )


def c_camels_duplicate_streamflow_day(tmp: Path) -> Case:
    return _camels_case(
        tmp,
        lambda r: _lines(_flow(r), lambda ls: [*ls[:4], ls[3], *ls[4:]]),
        "duplicate date 2000-01-04",
        "_streamflow_qc.txt [line 5]",
    )


def c_camels_kelvin(tmp: Path) -> Case:
    def kelvin(text: str) -> str:
        head, body = text.split(CAMELS_HEADER)
        rows = [r.split("\t") for r in body.strip().splitlines()]
        return (
            head
            + CAMELS_HEADER
            + "\n".join("\t".join([*r[:3], f"{float(r[3]) + 273.15:.2f}", r[4]]) for r in rows)
            + "\n"
        )

    return _camels_case(
        tmp, lambda r: _edit(_forcing(r), kelvin), "looks like Kelvin", "forcing_leap.txt [tmax]"
    )


# ----------------------------------------------------------------------------------------- NWIS RDB

RDB_HEAD = (
    "# US Geological Survey\n# Data provided for site 01022500\n"
    "agency_cd\tsite_no\tdatetime\t1_00060_00003\t1_00060_00003_cd\n5s\t15s\t20d\t14n\t10s\n"
)


def _rdb(tmp: Path, body: list[str] | None = None, head: str = RDB_HEAD) -> Path:
    rows = body or [f"USGS\t01022500\t2020-01-0{d}\t{100 + d}\tA" for d in range(1, 6)]
    path = tmp / "landing" / "dv.rdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + "\n".join(rows) + "\n")
    return path


def _rdb_case(tmp: Path, path: Path, match: str, names: str) -> Case:
    return Case(_through_cache(lambda: read_nwis_rdb(path), tmp / "cache"), match, names)


def c_nwis_non_numeric(tmp: Path) -> Case:
    rows = [f"USGS\t01022500\t2020-01-0{d}\t{'12..5' if d == 3 else 100}\tA" for d in range(1, 6)]
    return _rdb_case(tmp, _rdb(tmp, rows), "'12..5' is neither a number nor an NWIS code", "dv.rdb [line 7")


def c_nwis_duplicate_date(tmp: Path) -> Case:
    rows = [f"USGS\t01022500\t2020-01-0{min(d, 4)}\t100\tA" for d in range(1, 6)]
    return _rdb_case(tmp, _rdb(tmp, rows), "duplicate date 2020-01-04 for site 01022500", "dv.rdb [line 9]")


def c_nwis_spaces_not_tabs(tmp: Path) -> Case:
    path = _rdb(tmp)
    _edit(path, lambda t: t.replace("\t", "    "))
    return _rdb_case(tmp, path, "expected an RDB header row", "dv.rdb [line 3]")


def c_nwis_no_discharge_column(tmp: Path) -> Case:
    path = _rdb(tmp, head=RDB_HEAD.replace("00060", "00065"))
    return _rdb_case(tmp, path, r"no daily-mean discharge column", "dv.rdb [line 3]")


def c_nwis_truncated(tmp: Path) -> Case:
    path = _rdb(tmp)
    text = path.read_text()
    path.write_text(text[: len(text) - 6])  # the download stopped mid-line
    return _rdb_case(tmp, path, "4 fields where the header has 5", "dv.rdb [line 9]")


def c_nwis_empty(tmp: Path) -> Case:
    path = tmp / "landing" / "dv.rdb"
    path.parent.mkdir()
    path.write_text("")
    return _rdb_case(tmp, path, "empty file", "dv.rdb")


# ------------------------------------------------------------------------------ vectors (GAGES-II, ...)


def _gages(tmp: Path, ext: str = "gpkg", **change: list[Any]) -> Path:
    data: dict[str, list[Any]] = {
        "STAID": ["01013500", "02046000", "03010655"], "CLASS": ["Ref", "Non-ref", "Ref"],
        "DRAIN_SQKM": [2252.7, 350.0, 88.0], "HUC02": ["01", "02", "03"],
        "AGGECOREGI": ["NorthEast", "SECstPlain", "Appalachia"], "STATE": ["ME", "VA", "PA"],
        "LAT_GAGE": [47.2, 37.0, 41.9], "LNG_GAGE": [-68.6, -77.9, -78.3],
    }  # fmt: skip
    points = [Point(lo, la) for lo, la in zip(data["LNG_GAGE"], data["LAT_GAGE"], strict=True)]
    data.update(change)  # the attribute table is broken, the point geometries stay right
    gdf = gpd.GeoDataFrame(data, geometry=points, crs=None if ext == "shp" else "EPSG:4326")
    path = tmp / "gages2" / f"gauges.{ext}"
    path.parent.mkdir()
    gdf.to_file(path)
    return path


def _vec_case(tmp: Path, read: Callable[[], Any], match: str, names: str) -> Case:
    return Case(_through_cache(read, tmp / "cache"), match, names)


def c_gages2_no_crs(tmp: Path) -> Case:
    path = _gages(tmp, "shp")
    assert not path.with_suffix(".prj").exists()
    return _vec_case(tmp, lambda: read_gages2(path), "no coordinate reference system", "gauges.shp")


def c_gages2_missing_column(tmp: Path) -> Case:
    path = _gages(tmp)
    gdf = gpd.read_file(path).drop(columns=["CLASS"])
    gdf.to_file(path)
    return _vec_case(tmp, lambda: read_gages2(path), r"missing GAGES-II columns \['CLASS'\]", "gauges.gpkg")


def c_gages2_duplicate_staid(tmp: Path) -> Case:
    path = _gages(tmp, STAID=["01013500", "01013500", "03010655"])
    return _vec_case(tmp, lambda: read_gages2(path), r"duplicate STAID \['01013500'\]", "gauges.gpkg [STAID]")


def c_gages2_location_out_of_range(tmp: Path) -> Case:
    path = _gages(tmp, LAT_GAGE=[47.2, 137.0, 41.9])
    return _vec_case(
        tmp, lambda: read_gages2(path), r"gauge location \(137.0, .*\) out of range", "[feature 1]"
    )


def _polygons(
    tmp: Path, geoms: list[Any], ids: list[str] | None = None, crs: str | None = "EPSG:4326"
) -> Path:
    ids = ids or [f"0{i}000000" for i in range(1, len(geoms) + 1)]
    gdf = gpd.GeoDataFrame({"gauge_id": ids}, geometry=geoms, crs=crs)
    path = tmp / "basins" / ("basins.gpkg" if crs else "basins.shp")
    path.parent.mkdir()
    gdf.to_file(path)
    return path


BOWTIE = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])


def c_basins_invalid_geometry(tmp: Path) -> Case:
    path = _polygons(tmp, [box(0, 0, 1, 1), BOWTIE])
    return _vec_case(
        tmp, lambda: read_basin_polygons(path), r"\(02000000\) has an invalid geometry: Self-intersection",
        "basins.gpkg [feature 1]",
    )  # fmt: skip


def c_basins_empty_geometry(tmp: Path) -> Case:
    path = _polygons(tmp, [box(0, 0, 1, 1), Polygon()])
    return _vec_case(
        tmp, lambda: read_basin_polygons(path), "no or an empty geometry", "basins.gpkg [feature 1]"
    )


def c_basins_duplicate_ids(tmp: Path) -> Case:
    path = _polygons(tmp, [box(0, 0, 1, 1), box(2, 2, 3, 3)], ids=["01000000", "01000000"])
    return _vec_case(
        tmp, lambda: read_basin_polygons(path), r"duplicate gauge ids \['01000000'\]", "basins.gpkg"
    )


def c_basins_no_crs(tmp: Path) -> Case:
    path = _polygons(tmp, [box(0, 0, 1, 1)], crs=None)
    return _vec_case(tmp, lambda: read_basin_polygons(path), "no coordinate reference system", "basins.shp")


def c_basins_points_not_polygons(tmp: Path) -> Case:
    path = _polygons(tmp, [box(0, 0, 1, 1), Point(5, 5)])
    return _vec_case(
        tmp, lambda: read_basin_polygons(path), "is a Point, not a polygon", "basins.gpkg [feature 1]"
    )


ECO = [("1", "8.1.1", "8.1", "8", box(-100, 30, -90, 40)), ("2", "8.2.1", "8.2", "8", box(-90, 30, -80, 40))]


def _eco(
    tmp: Path, rows: list[tuple] | None = None, drop: tuple[str, ...] = (), crs: str | None = "EPSG:4326"
) -> Path:
    rows = rows or ECO
    gdf = gpd.GeoDataFrame(
        {"US_L3CODE": [r[0] for r in rows], "NA_L3CODE": [r[1] for r in rows],
         "NA_L2CODE": [r[2] for r in rows], "NA_L1CODE": [r[3] for r in rows]},
        geometry=[r[4] for r in rows], crs=crs,
    ).drop(columns=list(drop))  # fmt: skip
    path = tmp / "eco" / ("eco_l3.gpkg" if crs else "eco_l3.shp")
    path.parent.mkdir()
    gdf.to_file(path)
    return path


def c_eco_missing_columns(tmp: Path) -> Case:
    path = _eco(tmp, drop=("NA_L2CODE",))
    return _vec_case(
        tmp,
        lambda: read_ecoregions(path),
        r"missing EPA ecoregion code columns \['NA_L2CODE'\]",
        "eco_l3.gpkg",
    )


def c_eco_codes_not_nested(tmp: Path) -> Case:
    path = _eco(tmp, rows=[ECO[0], ("2", "8.2.1", "9.2", "9", ECO[1][4])])
    return _vec_case(
        tmp, lambda: read_ecoregions(path), "codes not nested: NA_L3CODE '8.2.1'", "eco_l3.gpkg [feature 1]"
    )


def c_eco_no_crs(tmp: Path) -> Case:
    path = _eco(tmp, crs=None)
    return _vec_case(tmp, lambda: read_ecoregions(path), "no coordinate reference system", "eco_l3.shp")


def c_eco_truncated_file(tmp: Path) -> Case:
    path = _eco(tmp)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return _vec_case(tmp, lambda: read_ecoregions(path), "cannot read as a vector data set", "eco_l3.gpkg")


def c_eco_empty_file(tmp: Path) -> Case:
    path = tmp / "eco_l3.gpkg"
    path.write_bytes(b"")
    return _vec_case(tmp, lambda: read_ecoregions(path), "empty file", "eco_l3.gpkg")


# ----------------------------------------------------------------------------------------- pixel cubes


def _cube(n_px: int = 4, n_t: int = 10) -> xr.Dataset:
    rng = np.random.default_rng(2)
    sm = rng.uniform(0.05, 0.45, (n_px, n_t)).astype(np.float32)
    return xr.Dataset(
        {"SMAP_AM": (("pixel", "time"), sm, {"units": "m3 m-3"}),
         "TMP_2_FORA": (("pixel", "time"), (280 + rng.normal(0, 5, (n_px, n_t))).astype(np.float32), {"units": "K"}),
         "Clay": (("pixel",), rng.uniform(0, 50, n_px).astype(np.float32))},
        coords={"pixel": np.arange(n_px), "time": pd.date_range("2015-04-01", periods=n_t),
                "lat": ("pixel", np.linspace(30, 45, n_px)), "lon": ("pixel", np.linspace(-120, -75, n_px))},
    )  # fmt: skip


def _cube_case(tmp: Path, ds: xr.Dataset | None, match: str, raw: bytes | None = None) -> Case:
    path = tmp / "smap" / "cube.nc"
    path.parent.mkdir()
    if ds is not None:
        ds.to_netcdf(path)
    if raw is not None:
        path.write_bytes(raw(path.read_bytes()) if callable(raw) else raw)
    return Case(_through_cache(lambda: read_pixel_cube(path), tmp / "cache"), match, "cube.nc")


def c_pixels_empty(tmp: Path) -> Case:
    return _cube_case(tmp, None, "empty file", raw=b"")


def c_pixels_truncated(tmp: Path) -> Case:
    return _cube_case(tmp, _cube(), "cannot open as a NetCDF file", raw=lambda b: b[: len(b) // 2])


def c_pixels_kelvin_labelled_degc(tmp: Path) -> Case:
    ds = _cube()
    ds["TMP_2_FORA"].attrs["units"] = "degC"
    return _cube_case(tmp, ds, r"median 2\d\d\.\d with units 'degC': looks like Kelvin")


def c_pixels_percent_not_fraction(tmp: Path) -> Case:
    ds = _cube()
    ds["SMAP_AM"] = ds["SMAP_AM"] * 100  # % instead of m3/m3
    return _cube_case(tmp, ds, r"SMAP_AM = \d+(\.\d+)? at pixel px0 .* outside \[0, 1\]")


def c_pixels_missing_lat(tmp: Path) -> Case:
    return _cube_case(tmp, _cube().drop_vars("lat"), "no per-pixel 'lat' coordinate")


def c_pixels_all_nan_grid(tmp: Path) -> Case:
    grid = xr.Dataset(
        {"SMAP_AM": (("lat", "lon", "time"), np.full((2, 3, 5), np.nan, np.float32))},
        coords={
            "lat": [35.0, 36.0],
            "lon": [-100.0, -99.0, -98.0],
            "time": pd.date_range("2015-04-01", periods=5),
        },
    )
    return _cube_case(tmp, grid, "every grid cell is NaN on every day")


def c_pixels_duplicate_dates(tmp: Path) -> Case:
    ds = _cube()
    t = ds["time"].values.copy()
    t[5] = t[4]
    return _cube_case(tmp, ds.assign_coords(time=t), "duplicate dates: \\['2015-04-05'\\]")


def c_pixels_dates_out_of_order(tmp: Path) -> Case:
    ds = _cube()
    return _cube_case(tmp, ds.isel(time=[0, 1, 3, 2, 4, 5]), "dates are not in increasing order")


def c_pixels_wrong_target(tmp: Path) -> Case:
    return _cube_case(
        tmp, _cube().rename({"SMAP_AM": "sm_percent"}), r"target variable 'SMAP_AM' \(pixel, time\) not found"
    )


# ----------------------------------------------------------------------------------------- regions, plan


def c_region_with_zero_sites(tmp: Path) -> Case:
    from synergy_dagster.experiments.plan import build_plan
    from synergy_dagster.regions.tagging import tag_sites

    l3 = read_ecoregions(_eco(tmp))
    pts = pd.DataFrame({"site_id": ["a", "b"], "lat": [0.0, 1.0], "lon": [0.0, 1.0]})  # in the ocean

    def run() -> None:
        tagged = tag_sites(pts, l3, "soil_moisture").tagged
        assert tagged.empty
        build_plan(tagged, "soil_moisture", PlanConfig())

    return Case(run, "no sites to plan with", "tagged sites")


def c_plan_unknown_set(tmp: Path) -> Case:
    from synergy_dagster.experiments.plan import build_plan

    tagged = pd.DataFrame({"site_id": [f"s{i}" for i in range(12)], "l1": "8", "l2": "8.1", "l3": "8.1.1",
                           "subregion": "D"})  # fmt: skip
    plan = build_plan(tagged, "streamflow", PlanConfig())
    return Case(lambda: plan.sites_of("local:Z"), "no training set 'local:Z'", "plan [streamflow]")


def c_coverage_share_out_of_range(tmp: Path) -> Case:
    from synergy_dagster.regions.coverage import coverage_filter

    return Case(
        lambda: coverage_filter(_cube(), slice(None), slice(None), min_share=1.5), "must be in", "min_share"
    )


def c_unknown_scenario(tmp: Path) -> Case:
    from synergy_dagster.experiments.plan import parse_set_key

    return Case(
        lambda: parse_set_key("local+nearby:8.3.5"),
        "unknown scenario 'local\\+nearby'",
        "partition key [local+nearby:8.3.5]",
    )


def c_partition_key_without_region(tmp: Path) -> Case:
    from synergy_dagster.experiments.plan import parse_set_key

    return Case(lambda: parse_set_key("global"), "is not '<scenario>:<region>'", "partition key")


# ----------------------------------------------------------------------------------------- config


def _profile(**kw: Any) -> Callable[[], Profile]:
    base: dict[str, Any] = {"name": "x", "hidden": 8, "epochs": 2, "dropconnect": 0.0, "seeds": (0,)}
    return lambda: Profile(**{**base, **kw})


def c_profile_negative_epochs(tmp: Path) -> Case:
    return Case(_profile(epochs=-3), "must be positive, got -3", "profile.epochs", ConfigError)


def c_profile_dropconnect_one(tmp: Path) -> Case:
    return Case(
        _profile(dropconnect=1.0), r"must be in \[0, 1\), got 1.0", "profile.dropconnect", ConfigError
    )


def c_profile_no_seeds(tmp: Path) -> Case:
    return Case(_profile(seeds=()), "at least one", "seeds", ConfigError)


def c_period_reversed(tmp: Path) -> Case:
    return Case(
        lambda: Period("2010-01-01", "2009-12-31"), "end 2009-12-31 is before start", "period", ConfigError
    )


def c_period_not_a_date(tmp: Path) -> Case:
    return Case(lambda: Period("2010-13-45", "2011-01-01"), "not a date", "period", ConfigError)


def c_plan_coverage_out_of_range(tmp: Path) -> Case:
    return Case(
        lambda: PlanConfig(coverage=1.5), r"must be in \(0, 1\], got 1.5", "plan.coverage", ConfigError
    )


def _resolved(*overrides: str) -> Callable[[], Any]:
    """Resolve the shipped virtual study with ``overrides`` (as ``SYNERGY_OVERRIDES`` would)."""
    from synergy_dagster.defs.resources import StudyResource

    return lambda: StudyResource(study_file="virtual", data_dir="", overrides=list(overrides)).spec


def c_study_negative_epochs(tmp: Path) -> Case:
    return Case(_resolved("training.epochs=-5"), "got -5", "training.epochs", ConfigError)


def c_study_unknown_profile(tmp: Path) -> Case:
    return Case(_resolved("profile=turbo"), "unknown profile 'turbo'", "profile", ConfigError)


def c_study_min_sites_zero(tmp: Path) -> Case:
    return Case(_resolved("thresholds.min_sites_subregion=0"), "must be >= 1", "thresholds", ConfigError)


def c_study_unknown_domain(tmp: Path) -> Case:
    return Case(_resolved("run.domains=[rainfall]"), "rainfall", "run.domains", ConfigError)


def c_study_unknown_budget_mode(tmp: Path) -> Case:
    return Case(_resolved("budget.mode=fastest"), "Input should be 'paper'", "budget.mode", ConfigError)


def c_study_converge_without_validation(tmp: Path) -> Case:
    return Case(
        _resolved("profile=paper", "budget.mode=converge"), "holds out no days", "budget.mode", ConfigError
    )


def c_study_one_sensitivity_mode(tmp: Path) -> Case:
    return Case(_resolved("run.sensitivity_modes=[paper, paper]"), "at least two distinct modes",
                "run.sensitivity_modes", ConfigError)  # fmt: skip


def c_study_equal_updates_negative(tmp: Path) -> Case:
    return Case(_resolved("budget.mode=equal_updates", "budget.updates=-10"), "must be >= 0, got -10",
                "budget.updates", ConfigError)  # fmt: skip


def c_study_unknown_override_key(tmp: Path) -> Case:
    return Case(_resolved("budget.max_update=10"), "unknown key", "budget.max_update", ConfigError)


def c_study_override_without_value(tmp: Path) -> Case:
    return Case(_resolved("seeds"), "expected <dotted key>=<value>", "override 'seeds'", ConfigError)


def c_validation_longer_than_training(tmp: Path) -> Case:
    return Case(lambda: Period("2015-04-01", "2015-05-31").carve_validation(61), "less than half",
                "validation_days", ConfigError)  # fmt: skip


def c_study_validation_block_days_zero(tmp: Path) -> Case:
    key = "domains.soil_moisture.training.validation.block_days"
    return Case(_resolved(f"{key}=0"), "must be an integer >= 1", key, ConfigError)


def c_validation_blocks_longer_than_training(tmp: Path) -> Case:
    from synergy_dagster.models.holdout import block_layout

    return Case(lambda: block_layout(100, 61, 5), "less than half", "validation_days", ConfigError)


def c_source_unknown_study(tmp: Path) -> Case:
    from synergy_dagster.defs.resources import StudyResource

    nope = tmp / "cloud.yaml"
    return Case(
        lambda: StudyResource(study_file=str(nope)).check(), "study file not found", str(nope), ConfigError
    )


def c_source_missing_real_data(tmp: Path) -> Case:
    from synergy_dagster.defs.resources import StudyResource

    nope = tmp / "nope"
    return Case(lambda: StudyResource(study_file="real", real_data=str(nope)).check(),
                f"folder does not exist: {nope}", "study.real_data", ConfigError)  # fmt: skip


def c_training_window_longer_than_period(tmp: Path) -> Case:
    from synergy_dagster.models.training import TrainSpec, train_model

    arrays = make_arrays(3, 20, target="noise")
    spec = TrainSpec(hidden=4, epochs=1, rho=30, batch=2, dropconnect=0.0, seed=0)
    return Case(lambda: train_model(arrays, spec, progress=False),
                "longer than the training period", "rho", ConfigError)  # fmt: skip


def c_training_all_nan_targets(tmp: Path) -> Case:
    from synergy_dagster.models.training import TrainSpec, train_model

    arrays = make_arrays(3, 40, target="noise", all_nan=True)
    ckpt = tmp / "models" / "seed0.ckpt"
    spec = TrainSpec(hidden=4, epochs=1, rho=10, batch=2, dropconnect=0.0, seed=0)
    return Case(lambda: train_model(arrays, spec, checkpoint_path=ckpt, progress=False),
                "no valid target value in the training period", "training data [y]")  # fmt: skip


# ----------------------------------------------------------------------------------------- landing folder


def _landing(tmp: Path) -> Path:
    root = tmp / "landing"
    root.mkdir()
    (root / "ok.rdb").write_text(RDB_HEAD)
    (tmp / "secret.rdb").write_text("outside the landing folder")
    return root


def c_landing_dotdot(tmp: Path) -> Case:
    from synergy_dagster.sources.nwis_client import safe_landing_file

    root = _landing(tmp)
    return Case(
        lambda: safe_landing_file(root, "../secret.rdb"), "rejected file name '../secret.rdb'", "landing"
    )


def c_landing_absolute(tmp: Path) -> Case:
    from synergy_dagster.sources.nwis_client import safe_landing_file

    root = _landing(tmp)
    name = str(tmp / "secret.rdb")
    return Case(lambda: safe_landing_file(root, name), "rejected file name", name)


def c_landing_symlink_outside(tmp: Path) -> Case:
    from synergy_dagster.sources.nwis_client import safe_landing_file

    root = _landing(tmp)
    os.symlink(tmp / "secret.rdb", root / "evil.rdb")
    return Case(lambda: safe_landing_file(root, "evil.rdb"), "outside the landing folder", "evil.rdb")


# ----------------------------------------------------------------------------------------- DuckDB store


def _store_case(tmp: Path, call: Callable[[Any], Any], match: str, names: str) -> Case:
    from synergy_dagster.store import MetadataStore

    store = MetadataStore(tmp / "synergy.duckdb")
    old = pd.DataFrame(
        {"site_id": ["a", "b"], "domain": "streamflow", "lat": 40.0, "lon": -100.0, "kept": True}
    )
    store.replace_rows("sites", old, {"domain": "streamflow"})

    def kept() -> None:
        got = store.query("SELECT site_id FROM sites WHERE domain = 'streamflow' ORDER BY site_id")
        assert got["site_id"].tolist() == ["a", "b"], "the failed write lost the previous rows"

    return Case(lambda: call(store), match, names, after=kept, ignore=(".duckdb", ".wal"))


def c_store_extra_column(tmp: Path) -> Case:
    rows = pd.DataFrame({"site_id": ["c"], "domain": "streamflow", "colour": "red"})
    return _store_case(tmp, lambda s: s.replace_rows("sites", rows, {"domain": "streamflow"}),
                       r"columns not in the table: \['colour'\]", "sites")  # fmt: skip


def c_store_unknown_table(tmp: Path) -> Case:
    return _store_case(
        tmp, lambda s: s.replace_rows("sitez", pd.DataFrame({"a": [1]}), {}), "unknown table 'sitez'", "table"
    )


def c_caravan_gauge_without_location(tmp: Path) -> Case:
    other = Path("attributes") / "camels" / "attributes_other_camels.csv"

    def blank(r: Path) -> None:
        _frame_edit(r / other, lambda df: df.assign(gauge_lat=["40.0", ""]))

    return _caravan_case(
        tmp, blank, f"gauge '{GAUGES[1]}' has no valid location", "attributes_other_camels.csv"
    )


def c_basins_metres_declared_as_degrees(tmp: Path) -> Case:
    path = _polygons(tmp, [box(1.5e6, 2.0e6, 1.6e6, 2.1e6)])  # Albers metres, labelled EPSG:4326
    return _vec_case(
        tmp, lambda: read_basin_polygons(path), "are not degrees.*EPSG:4326 is geographic", "basins.gpkg"
    )


def c_eco_degrees_declared_as_metres(tmp: Path) -> Case:
    path = _eco(tmp, crs="EPSG:5070")
    return _vec_case(
        tmp, lambda: read_ecoregions(path), "look like degrees.*EPSG:5070 is projected", "eco_l3.gpkg"
    )


def c_pixels_lat_lon_swapped(tmp: Path) -> Case:
    ds = _cube()
    return _cube_case(
        tmp, ds.assign_coords(lat=ds["lon"], lon=ds["lat"]), r"lat -120(\.0)? out of range \[-90, 90\]"
    )


def c_period_missing_end(tmp: Path) -> Case:
    return Case(
        lambda: Period("2010-01-01", ""), r"a date \(YYYY-MM-DD\) is required", "period.end", ConfigError
    )


def c_study_negative_seed(tmp: Path) -> Case:
    return Case(_resolved("seeds=[0, -1]"), r"distinct integers >= 0, at least one; got \[0, -1\]", "seeds",
                ConfigError)  # fmt: skip


def c_profile_negative_window(tmp: Path) -> Case:
    from synergy_dagster.config import DomainTraining

    return Case(lambda: DomainTraining(rho=-30, batch=8, warmup=0), "must be positive, got -30", "training.rho",
                ConfigError)  # fmt: skip


def c_study_unknown_device(tmp: Path) -> Case:
    from synergy_dagster.models.device import pick_device

    return Case(lambda: pick_device("tpu"), "unknown device 'tpu'", "device", ConfigError)


CASES: dict[str, Callable[[Path], Case]] = {
    name.removeprefix("c_"): fn
    for name, fn in sorted(globals().items())
    if name.startswith("c_") and callable(fn)
}


def _snapshot(root: Path, ignore: tuple[str, ...]) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
        if not (ignore and p.name.endswith(ignore))
    }


def test_catalogue_is_broad() -> None:
    assert len(CASES) >= 25
    areas = {n.split("_")[0] for n in CASES}
    assert {"caravan", "camels", "nwis", "gages2", "basins", "eco", "pixels", "profile", "study", "source",
            "landing", "store", "unknown", "region"} <= areas  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_named_and_leaves_nothing_behind(name: str, tmp_path: Path) -> None:
    case = CASES[name](tmp_path)
    before = _snapshot(tmp_path, case.ignore)
    with pytest.raises(case.error, match=case.match) as info:
        case.call()
    assert isinstance(info.value, InputError)  # ConfigError is one too: never a bare traceback type
    assert case.names in str(info.value), f"message does not name {case.names!r}: {info.value}"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")], "a temp file was left behind"
    assert _snapshot(tmp_path, case.ignore) == before, "the failed call created or changed files"
    if case.after is not None:
        case.after()


def test_failed_cache_write_leaves_the_previous_file_and_no_temp(tmp_path: Path) -> None:
    """The atomic NetCDF writer: a write that fails part-way keeps the old cache intact."""
    from synergy_dagster.io_utils import write_netcdf

    target = tmp_path / "sources" / "soil_moisture.nc"
    write_netcdf(_cube(), target)
    before = target.read_bytes()
    bad = _cube()
    bad.attrs["nested"] = {"not": "serialisable"}  # netCDF attributes cannot hold a dict
    with pytest.raises((TypeError, ValueError)):
        write_netcdf(bad, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["soil_moisture.nc"]


def test_failed_raw_asset_keeps_its_previous_cache_and_duckdb_row(tmp_path: Path) -> None:
    """Materialising raw_pixels on a broken cube fails with the reader's message and leaves the
    previous materialisation (cache file and ``sources`` row) as it was."""
    import dagster as dg

    from synergy_dagster.defs.assets.sources import raw_pixels
    from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource
    from synergy_dagster.layout import Layout
    from synergy_dagster.store import MetadataStore

    data = tmp_path / "data"
    good, broken = tmp_path / "good.nc", tmp_path / "broken.nc"
    _cube().to_netcdf(good)
    kelvin = _cube()
    kelvin["TMP_2_FORA"].attrs["units"] = "degC"
    kelvin.to_netcdf(broken)
    eco = _eco(tmp_path, [("1", "8.1.1", "8.1", "8", box(-125, 25, -70, 50))])  # raw_pixels reads its extent

    def run(path: Path) -> dg.ExecuteInProcessResult:
        study = tmp_path / f"{path.stem}.yaml"
        study.write_text(
            f"""name: cube
ecoregions: {eco}
domains:
  soil_moisture:
    reader: pixel_cube
    path: {path}
    target: SMAP_AM
    dynamic: [TMP_2_FORA]
    static: [Clay]
    periods:
      train: {{start: 2015-04-01, end: 2015-04-06}}
      test: {{start: 2015-04-07, end: 2015-04-10}}
"""
        )
        resource = StudyResource(study_file=str(study), data_dir=str(data), overrides=[])
        store = MetadataStoreResource(path=str(data / "synergy.duckdb"))
        return dg.materialize(
            [raw_pixels], resources={"study": resource, "store": store}, raise_on_error=False
        )

    assert run(good).success
    cache = Layout(data).source_nc("soil_moisture")
    before = cache.read_bytes()
    row = MetadataStore(data / "synergy.duckdb").query("SELECT * FROM sources")
    result = run(broken)
    assert not result.success
    errors = [
        e.step_failure_data.error.to_string()
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    assert any("broken.nc [TMP_2_FORA]" in m and "looks like Kelvin" in m for m in errors), errors
    assert cache.read_bytes() == before
    after = MetadataStore(data / "synergy.duckdb").query("SELECT * FROM sources")
    pd.testing.assert_frame_equal(after, row)
    assert not [p for p in data.rglob("*") if p.name.endswith(".tmp")]
