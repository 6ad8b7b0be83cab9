"""CAMELS-US original text files (Newman et al. 2015; Addor et al. 2017), as distributed by NCAR.

Under ``root``: ``basin_mean_forcing/<forcing>/[<huc2>/]<gauge>_lump_<src>_forcing_leap.txt``
(3 header lines: latitude, elevation m, area m2; then a whitespace header row), and
``usgs_streamflow/[<huc2>/]<gauge>_streamflow_qc.txt`` (gauge year month day Q_cfs flag, -999 =
missing), plus ``camels_attributes_v2.0/camels_*.txt`` (``;``-separated, keyed by ``gauge_id``).
Gauge ids are 8-digit strings with leading zeros and are always read as strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.sources.caravan import (
    check_daily_dates,
    check_numeric_frame,
    check_streamflow_sanity,
    check_temperature_celsius,
    stack_daily,
)
from synergy_dagster.sources.plausibility import (
    MissingValues,
    check_attribute_columns,
    check_file_gauge,
    check_id_padding,
    check_periods_overlap,
    check_variable,
    check_within_extent,
)
from synergy_dagster.sources.sitedata import make_site_dataset, text_columns, text_statics

ATTR_DIR = "camels_attributes_v2.0"
CFS_TO_M3S = 0.0283168  # m3/s per ft3/s
MISSING_Q = -999.0
_UNITS = {"mm/day": "mm/d", "C": "degC", "W/m2": "W/m2", "mm": "mm", "Pa": "Pa", "s": "s"}
# Columns that are codes, not quantities: read as text so leading zeros survive.
_TEXT_COLUMNS = {"gauge_id": str, "huc_02": str}
_DATE_COLUMNS = ("Year", "Mnth", "Day", "Hr")


def read_camels_attributes(root: str | Path) -> pd.DataFrame:
    """Every ``camels_attributes_v2.0/camels_*.txt`` table joined on ``gauge_id`` (str index)."""
    folder = Path(root) / ATTR_DIR
    files = sorted(folder.glob("camels_*.txt"))
    if not files:
        raise InputError(folder, "no CAMELS attribute tables (camels_*.txt)")
    joined: pd.DataFrame | None = None
    table_ids: dict[str, pd.Series] = {}
    for f in files:
        if f.stat().st_size == 0:
            raise InputError(f, "empty file")
        try:
            df = pd.read_csv(f, sep=";", dtype=_TEXT_COLUMNS, engine="c")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise InputError(f, f"cannot parse as ';'-separated table: {exc}") from exc
        if "gauge_id" not in df.columns:
            raise InputError(f, f"no 'gauge_id' column; columns are {list(df.columns)}", "line 1")
        check_attribute_columns(df, f, text_columns=_TEXT_COLUMNS)
        ids = df["gauge_id"].str.strip()
        table_ids[str(f)] = ids
        check_id_padding(table_ids)
        if ids.duplicated().any():
            raise InputError(
                f, f"duplicate gauge ids {ids[ids.duplicated()].unique()[:5].tolist()}", "gauge_id"
            )
        df = df.assign(gauge_id=ids).set_index("gauge_id")
        if joined is None:
            joined = df
        else:
            joined = joined.join(df.drop(columns=[c for c in df.columns if c in joined.columns]), how="outer")
    assert joined is not None
    return joined


def _find(folder: Path, pattern: str) -> dict[str, Path]:
    """gauge id -> file, searching sub-folders (huc2 layout) and the flat layout alike."""
    found: dict[str, Path] = {}
    for p in sorted(folder.rglob(pattern)):
        gid = p.name.split("_", 1)[0]
        if gid in found:
            raise InputError(p, f"gauge {gid} has two files: {found[gid]} and {p}")
        found[gid] = p
    return found


def _split_name(col: str) -> tuple[str, str]:
    """``PRCP(mm/day)`` -> (``prcp``, ``mm/d``)."""
    m = re.fullmatch(r"\s*([^()]+?)\s*(?:\((.*)\))?\s*", col)
    name, units = (m.group(1), m.group(2) or "") if m else (col, "")
    return name.strip().lower(), _UNITS.get(units, units)


def read_forcing_file(path: Path) -> tuple[dict[str, float], pd.DataFrame, dict[str, str]]:
    """One basin-mean forcing file: header {lat, elev_m, area_km2}, daily table, units per column."""
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    with open(path, encoding="utf-8", errors="replace") as fh:
        head = [fh.readline() for _ in range(4)]
    header: dict[str, float] = {}
    for i, key in enumerate(("lat", "elev_m", "area_m2")):
        try:
            header[key] = float(head[i].strip())
        except ValueError as exc:
            raise InputError(
                path, f"header line should hold the basin {key}, found {head[i].strip()!r}", f"line {i + 1}"
            ) from exc
    if not np.isfinite(header["area_m2"]) or header["area_m2"] <= 0:
        raise InputError(path, f"basin area {header['area_m2']} m2 is not positive", "line 3")
    header["area_km2"] = header.pop("area_m2") / 1e6
    try:
        df = pd.read_csv(path, sep=r"\s+", skiprows=3, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(path, f"cannot parse the forcing table: {exc}") from exc
    missing = [c for c in _DATE_COLUMNS[:3] if c not in df.columns]
    if missing:
        raise InputError(path, f"missing date columns {missing}; header is {list(df.columns)}", "line 4")
    if df.empty:
        raise InputError(path, "no data rows")
    # Whitespace-separated rows cannot hold an empty cell: a short row (a file cut mid-line) would be
    # padded with NaN by the parser and read as missing data, so it is refused here.
    lines = pd.Series(path.read_text(encoding="utf-8", errors="replace").splitlines()[4:])
    fields = lines[lines.str.strip() != ""].str.split().str.len()
    short = fields.to_numpy() != len(df.columns)
    if short.any():
        i = int(np.argmax(short))
        raise InputError(
            path,
            f"{int(fields.iloc[i])} fields where the header has {len(df.columns)} (file cut short?)",
            f"line {5 + int(fields.index[i])}",
        )
    num = check_numeric_frame(df, path, first_line=5)
    dates = pd.to_datetime(
        pd.DataFrame({"year": num["Year"], "month": num["Mnth"], "day": num["Day"]}), errors="coerce"
    )
    bad = dates.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(path, "invalid date (Year Mnth Day)", f"line {5 + i}")
    index = check_daily_dates(dates, path, first_line=5, column="Year Mnth Day")
    units: dict[str, str] = {}
    out = {}
    for c in num.columns:
        if c in _DATE_COLUMNS:
            continue
        name, u = _split_name(c)
        out[name] = num[c].to_numpy()
        units[name] = u
    # No missing flag is declared for forcing files: a -999 there is screened (and refused unless
    # declared) by read_camels_us like any other fill value.
    return header, pd.DataFrame(out, index=index), units


def read_streamflow_file(path: Path) -> pd.DataFrame:
    """``<gauge>_streamflow_qc.txt`` -> frame indexed by date with ``q_cfs`` (NaN for -999) and ``flag``."""
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    try:
        df = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            engine="c",
            names=["gauge", "year", "month", "day", "q_cfs", "flag"],
            dtype={"gauge": str, "flag": str},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(path, f"cannot parse streamflow table (gauge year month day Q flag): {exc}") from exc
    if df.empty:
        raise InputError(path, "no data rows")
    num = check_numeric_frame(df[["year", "month", "day", "q_cfs"]], path, first_line=1)
    dates = pd.to_datetime(num[["year", "month", "day"]], errors="coerce")
    bad = dates.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(path, "invalid date (year month day)", f"line {1 + i}")
    index = check_daily_dates(dates, path, first_line=1, column="year month day")
    gauges = df["gauge"].unique()
    if len(gauges) != 1:
        raise InputError(path, f"several gauge ids in one file: {gauges[:5].tolist()}")
    expected = path.name.split("_", 1)[0]
    if gauges[0] != expected:
        check_file_gauge(gauges, expected, path, "line 1, column 1")
    q = num["q_cfs"].to_numpy(dtype=np.float64, copy=True)
    q[q == MISSING_Q] = np.nan  # CAMELS' declared missing flag in streamflow files
    return pd.DataFrame({"q_cfs": q, "flag": df["flag"].to_numpy()}, index=index)


def cfs_to_mm_per_day(q_cfs: np.ndarray, area_km2: np.ndarray | float) -> np.ndarray:
    """ft3/s -> mm/d over a basin: Q * 0.0283168 m3/s * 86400 s / (A km2 * 1e6 m2) * 1000 mm/m."""
    return np.asarray(q_cfs, dtype=np.float64) * CFS_TO_M3S * 86400.0 / (np.asarray(area_km2) * 1e6) * 1000.0


def read_camels_us(
    root: str | Path,
    forcing: str = "nldas",
    gauges: Iterable[str] | None = None,
    attributes_root: str | Path | None = None,
    *,
    missing_values: MissingValues | None = None,
    extent: tuple[float, float, float, float] | None = None,
    text_attributes: Sequence[str] = (),
) -> xr.Dataset:
    """Read CAMELS-US text files into the sitedata contract (target ``streamflow`` in mm/d).

    ``forcing`` is a folder under ``basin_mean_forcing`` (``nldas``, ``daymet``, ``maurer`` ...).
    Attributes (statics, lon, area_gages2) come from ``camels_attributes_v2.0`` under ``root`` or,
    where the data set has none (e.g. a sample), under ``attributes_root``. Without attributes the
    longitude is unknown, which is an error.

    -999 in a streamflow file is missing (CAMELS' flag); ``missing_values`` declares more values
    missing (for every variable, or a mapping per variable); any other fill value or implausible
    value is an error. ``extent`` (lon_min, lat_min, lon_max, lat_max) refuses gauges outside it.

    Statics are the numeric attribute columns; ``text_attributes`` names text columns (classes
    such as ``geol_1st_class`` or ``dom_land_cover``) to read as class codes with their labels
    (:func:`~synergy_dagster.sources.sitedata.text_statics`). ``ds.attrs["text_attributes"]`` lists
    every text column of the tables (JSON), for error messages.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "CAMELS-US root folder not found")
    fdir = root / "basin_mean_forcing" / forcing
    if not fdir.is_dir():
        have = sorted(p.name for p in (root / "basin_mean_forcing").glob("*") if p.is_dir())
        raise InputError(fdir, f"no forcing folder {forcing!r}; available: {have}")
    forcing_files = _find(fdir, "*_lump_*_forcing_leap.txt")
    if not forcing_files:
        raise InputError(fdir, "no *_lump_*_forcing_leap.txt files")
    flow_files = _find(root / "usgs_streamflow", "*_streamflow_qc.txt")
    ids = sorted(forcing_files)
    if gauges is not None:
        ids = [str(g).zfill(8) for g in gauges]
        absent = [g for g in ids if g not in forcing_files]
        if absent:
            raise InputError(fdir, f"no {forcing} forcing file for gauges {absent}")
    no_flow = [g for g in ids if g not in flow_files]
    if no_flow:
        raise InputError(root / "usgs_streamflow", f"no streamflow file for gauges {no_flow}")

    attr_base = next(
        (Path(r) for r in (root, attributes_root) if r is not None and (Path(r) / ATTR_DIR).is_dir()), None
    )
    if attr_base is None:
        raise InputError(
            root / ATTR_DIR,
            "no CAMELS attribute folder: gauge longitudes are unknown; pass "
            "attributes_root pointing at a folder that holds camels_attributes_v2.0",
        )
    attrs = read_camels_attributes(attr_base)
    check_id_padding(
        {
            str(fdir): forcing_files,
            str(root / "usgs_streamflow"): flow_files,
            str(attr_base / ATTR_DIR): attrs.index,
        }
    )
    no_attr = [g for g in ids if g not in attrs.index]
    if no_attr:
        raise InputError(attr_base / ATTR_DIR, f"no attribute rows for gauges {no_attr}")
    table = attrs.loc[ids]
    for c in ("gauge_lat", "gauge_lon"):
        if c not in table.columns:
            raise InputError(attr_base / ATTR_DIR, f"no {c!r} column (expected in camels_topo.txt)")

    frames, units, areas = [], None, []
    for g in ids:
        header, forc, u = read_forcing_file(forcing_files[g])
        if units is None:
            units = u
        elif set(u) != set(units):
            raise InputError(forcing_files[g], f"columns {sorted(u)} differ from {sorted(units)}")
        flow = read_streamflow_file(flow_files[g])
        # Screen fill values in cfs, before the conversion to mm/d would disguise them.
        q_cfs = check_variable(
            flow["q_cfs"].to_numpy()[None, :], "streamflow", "ft3/s", [g], pd.DatetimeIndex(flow.index),
            flow_files[g], missing_values=missing_values, check_range=False,
        )[0]  # fmt: skip
        area = float(table["area_gages2"].loc[g]) if "area_gages2" in table.columns else np.nan
        if not np.isfinite(area) or area <= 0:
            area = header["area_km2"]  # the forcing header's area where the attribute is missing
        areas.append(area)
        idx = forc.index.union(flow.index)
        both = forc.reindex(idx)
        both["streamflow"] = cfs_to_mm_per_day(pd.Series(q_cfs, flow.index).reindex(idx).to_numpy(), area)
        frames.append(both)
    assert units is not None
    columns = ["streamflow", *units]
    sources = [str(flow_files[g]) for g in ids]
    fsources = [str(forcing_files[g]) for g in ids]
    check_periods_overlap([f.index[0] for f in frames], [f.index[-1] for f in frames], fsources)
    time, cube = stack_daily(frames, columns)
    for j, name in enumerate(columns):  # fill values first, named as such
        cube[:, :, j] = check_variable(
            cube[:, :, j], name, "", ids, time, sources if j == 0 else fsources,
            missing_values=missing_values, check_range=False,
        )  # fmt: skip
    q = cube[:, :, 0]
    check_streamflow_sanity(q, ids, sources)
    cube[:, :, 0] = check_variable(q, "streamflow", "mm/d", ids, time, sources)  # q is a view of it
    dynamic = {}
    for j, name in enumerate(units, start=1):
        if units[name] == "degC":
            check_temperature_celsius(cube[:, :, j], name, ids, fsources)
        cube[:, :, j] = check_variable(cube[:, :, j], name, units[name], ids, time, fsources)
        dynamic[name] = (cube[:, :, j], units[name])
    lat = table["gauge_lat"].to_numpy(dtype=np.float64)
    lon = table["gauge_lon"].to_numpy(dtype=np.float64)
    if extent is not None:
        check_within_extent(lat, lon, ids, extent, attr_base / ATTR_DIR / "camels_topo.txt")
    # Text columns (names, classes) stay out unless asked for as classes; a numeric column with a
    # text cell was refused when its table was read.
    static = {
        c: (
            check_variable(
                table[c].to_numpy(dtype=np.float64), c, "", ids, None, attr_base / ATTR_DIR,
                missing_values=missing_values,
            ),
            "km2" if c.startswith("area") else "",
        )
        for c in table.select_dtypes("number").columns
        if c not in ("gauge_lat", "gauge_lon")
    }  # fmt: skip
    static["area"] = (np.asarray(areas), "km2")
    classes, labels = text_statics(table, text_attributes, str(attr_base / ATTR_DIR))
    ds = make_site_dataset(
        domain="streamflow",
        source=str(root),
        site_ids=ids,
        time=time,
        lat=lat,
        lon=lon,
        target=("streamflow", q, "mm/d"),
        dynamic=dynamic,
        static={**static, **classes},
        categories=labels,
    )
    ds.attrs["text_attributes"] = json.dumps(text_columns(table))
    return ds
