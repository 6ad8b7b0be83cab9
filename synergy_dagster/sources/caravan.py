"""Caravan-layout reader and writer (Kratzert et al. 2023): one daily table per gauge plus
attribute tables keyed by ``gauge_id``.

Layout under ``root``::

    timeseries/csv/<subset>/<gauge_id>.csv      # a ``date`` column, one column per variable
    timeseries/netcdf/<subset>/<gauge_id>.nc    # the same variables over dim ``date``
    attributes/<subset>/attributes_*_<subset>.csv   # keyed by ``gauge_id``

``attributes_other_<subset>.csv`` holds ``gauge_lat``, ``gauge_lon`` and ``area`` (km2).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import atomic_path
from synergy_dagster.sources.plausibility import (
    MissingValues,
    check_attribute_columns,
    check_daily_dates,
    check_file_gauge,
    check_id_padding,
    check_periods_overlap,
    check_time_units,
    check_variable,
    check_within_extent,
    masking_active,
)
from synergy_dagster.sources.sitedata import (
    dynamic_names,
    make_site_dataset,
    static_names,
    target_name,
    text_columns,
    text_statics,
)

TARGET = "streamflow"
MISSING_FLAGS = (-999.0, -9999.0)
# Above this long-term median a "mm/d" series is almost surely in cubic feet per second: even the
# wettest CAMELS basins have median runoff well below 30 mm/d.
CFS_MEDIAN_MM_PER_DAY = 100.0
# A median air temperature above this many degrees Celsius is impossible; it means Kelvin.
KELVIN_MEDIAN = 200.0

# Caravan's documented units, matched on the start of the column name.
_UNITS_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("streamflow", "mm/d"),
    ("total_precipitation", "mm/d"),
    ("potential_evaporation", "mm/d"),
    ("evaporation", "mm/d"),
    ("temperature", "degC"),
    ("dewpoint_temperature", "degC"),
    ("snow_depth_water_equivalent", "mm"),
    ("surface_net_solar_radiation", "W/m2"),
    ("surface_net_thermal_radiation", "W/m2"),
    ("surface_pressure", "kPa"),
    ("u_component_of_wind", "m/s"),
    ("v_component_of_wind", "m/s"),
    ("volumetric_soil_water", "m3/m3"),
)
_STATIC_UNITS = {"area": "km2"}
_COORD_COLUMNS = ("gauge_lat", "gauge_lon")


def caravan_units(name: str) -> str:
    """Units of a Caravan time-series column from its name ('' where not documented)."""
    for prefix, units in _UNITS_BY_PREFIX:
        if name.startswith(prefix):
            return units
    return ""


# --------------------------------------------------------------------------- shared helpers


def check_numeric_frame(df: pd.DataFrame, source: str | Path, first_line: int = 2) -> pd.DataFrame:
    """Return ``df`` as float64, or raise naming the first non-numeric cell (file line and column).

    ``first_line`` is the file line of ``df``'s first row (2 for a CSV with one header line).
    """
    out = {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[col] = s.astype("float64")
            continue
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna() & (s.astype(str).str.strip() != "")
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise InputError(
                source,
                f"non-numeric value {s.iloc[i]!r} in column {col!r}",
                f"line {first_line + i}, column {col}",
            )
        out[col] = num.astype("float64")
    return pd.DataFrame(out, index=df.index)


def stack_daily(
    frames: Sequence[pd.DataFrame], columns: Sequence[str]
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Stack per-site daily frames (DatetimeIndex, numeric columns) onto their union date range.

    Returns (time, array[site, time, column]) with NaN where a site's record is shorter.
    """
    start = min(f.index[0] for f in frames)
    end = max(f.index[-1] for f in frames)
    time = pd.date_range(start, end, freq="D")
    out = np.full((len(frames), len(time), len(columns)), np.nan, dtype=np.float32)
    for i, f in enumerate(frames):  # one block copy per site, not per row
        off = int((f.index[0] - start) / pd.Timedelta(days=1))
        out[i, off : off + len(f), :] = f[list(columns)].to_numpy(dtype=np.float32)
    return time, out


def check_streamflow_sanity(
    q: np.ndarray, site_ids: Sequence[str], sources: Sequence[str | Path], name: str = TARGET
) -> None:
    """Streamflow in mm/d: not negative, median not cfs-like, not missing everywhere. ``q`` is [site, time].

    A gauge whose streamflow is missing on every day is let through: real basin sets are ragged, and
    the study drops such a gauge with its reason (``sources.selection.drop_sites_without_target``)
    instead of refusing the whole source. Only a source without any value is refused here.
    """
    finite = np.isfinite(q)
    empty = ~finite.any(axis=1)
    if empty.all():
        others = f" and the {len(site_ids) - 1} other gauge(s)" if len(site_ids) > 1 else ""
        raise InputError(
            sources[0], f"{name} is missing on every day for gauge {site_ids[0]!r}{others}", name
        )
    neg = np.where(finite, q, 0.0) < 0
    if neg.any() and not masking_active():  # else the range check masks and records them
        i, t = np.argwhere(neg)[0]
        raise InputError(
            sources[i],
            f"negative {name} {float(q[i, t]):g} for gauge {site_ids[i]!r} "
            f"(day index {int(t)}); runoff cannot be negative",
            name,
        )
    med = np.nanmedian(q, axis=1)
    high = med > CFS_MEDIAN_MM_PER_DAY
    if high.any():
        i = int(np.argmax(high))
        raise InputError(
            sources[i],
            f"median {name} {float(med[i]):.1f} mm/d for gauge {site_ids[i]!r} is "
            f"implausible for mm/d; it looks like cfs (cubic feet per second). Convert to mm/d "
            f"by basin area",
            name,
        )


def check_temperature_celsius(
    arr: np.ndarray, name: str, site_ids: Sequence[str], sources: Sequence[str | Path]
) -> None:
    """Raise if a degC temperature [site, time] has a Kelvin-like median for any site."""
    with np.errstate(all="ignore"):
        finite_any = np.isfinite(arr).any(axis=1)
        med = np.full(arr.shape[0], np.nan)
        if finite_any.any():
            med[finite_any] = np.nanmedian(arr[finite_any], axis=1)
    hot = med > KELVIN_MEDIAN
    if hot.any():
        i = int(np.argmax(hot))
        raise InputError(
            sources[i],
            f"{name} has median {float(med[i]):.1f} for gauge {site_ids[i]!r}: "
            f"looks like Kelvin where degC is expected",
            name,
        )


# --------------------------------------------------------------------------- reading


def _read_csv_table(path: Path, **kw: object) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    try:
        df = pd.read_csv(path, engine="c", **kw)  # type: ignore[arg-type]
    except pd.errors.EmptyDataError as exc:
        raise InputError(path, "empty file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(path, f"cannot parse as CSV: {exc}") from exc
    _check_row_widths(path, len(df.columns))
    return df


def _check_row_widths(path: Path, width: int) -> None:
    """pandas pads a short row with NaN: a row split by a stray line break would shift cells into
    other columns silently. Every non-blank row must have the header's number of fields."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        for line, row in enumerate(csv.reader(fh), 1):
            if row and any(c.strip() for c in row) and len(row) != width:
                raise InputError(path, f"{len(row)} fields where the header has {width}", f"line {line}")


def read_caravan_attributes(root: str | Path, subset: str = "camels") -> pd.DataFrame:
    """All ``attributes/<subset>/*.csv`` tables joined on ``gauge_id`` (index, str)."""
    folder = Path(root) / "attributes" / subset
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise InputError(folder, f"no attribute tables (*.csv) for subset {subset!r}")
    joined: pd.DataFrame | None = None
    table_ids: dict[str, pd.Series] = {}
    for f in files:
        df = _read_csv_table(f, dtype={"gauge_id": str})
        if "gauge_id" not in df.columns:
            raise InputError(f, f"no 'gauge_id' column; columns are {list(df.columns)}")
        check_attribute_columns(df, f)
        ids = df["gauge_id"].astype(str).str.strip()
        table_ids[str(f)] = ids
        check_id_padding(table_ids)
        if ids.duplicated().any():
            dup = ids[ids.duplicated()].unique()[:5].tolist()
            raise InputError(f, f"duplicate gauge ids {dup}", "gauge_id")
        df = df.assign(gauge_id=ids).set_index("gauge_id")
        if joined is None:
            joined = df
        else:
            clash = [c for c in df.columns if c in joined.columns]
            joined = joined.join(df.drop(columns=clash), how="outer")
    assert joined is not None
    return joined


def _list_timeseries(root: Path, subset: str, fmt: str) -> tuple[str, dict[str, Path]]:
    if fmt not in ("auto", "csv", "netcdf"):
        raise InputError("fmt", f"unknown format {fmt!r}; expected 'auto', 'csv' or 'netcdf'")
    csv_dir = root / "timeseries" / "csv" / subset
    nc_dir = root / "timeseries" / "netcdf" / subset
    if fmt == "auto":
        fmt = "csv" if csv_dir.is_dir() else "netcdf"
    folder, ext = (csv_dir, ".csv") if fmt == "csv" else (nc_dir, ".nc")
    if not folder.is_dir():
        raise InputError(folder, f"no Caravan time-series folder for subset {subset!r} ({fmt})")
    files = {p.stem: p for p in sorted(folder.glob(f"*{ext}"))}
    if not files:
        raise InputError(folder, f"no *{ext} time-series files")
    return fmt, files


def _read_timeseries_file(path: Path, fmt: str) -> pd.DataFrame:
    """One gauge's table, indexed by validated daily dates, every column float64.

    A ``gauge_id`` column, where the file has one, must name the file's own gauge.
    """
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    if fmt == "csv":
        df = _read_csv_table(path, dtype={"gauge_id": str})
        if "date" not in df.columns:
            raise InputError(path, f"no 'date' column; columns are {list(df.columns)}", "line 1")
        if df.empty:
            raise InputError(path, "no data rows")
        dates = df.pop("date")
    else:
        try:
            with xr.open_dataset(path) as nc:
                if "date" not in nc.dims and "date" not in nc.coords:
                    raise InputError(path, f"no 'date' dimension; dims are {list(nc.dims)}")
                date = nc["date"]
                check_time_units(date.encoding.get("units") or date.attrs.get("units"), path, "date")
                df = nc.load().to_dataframe().reset_index()
        except InputError:
            raise
        except (OSError, ValueError) as exc:
            raise InputError(path, f"cannot open as netCDF: {exc}") from exc
        if df.empty:
            raise InputError(path, "no data rows")
        dates = df.pop("date")
    if "gauge_id" in df.columns:
        ids = df.pop("gauge_id").astype(str).str.strip()
        bad = (ids != path.stem).to_numpy() & (ids != path.stem.split("_", 1)[-1]).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            check_file_gauge([ids.iloc[i]], path.stem, path, f"line {2 + i}, column gauge_id")
    index = check_daily_dates(dates, path)
    df = check_numeric_frame(df, path)
    df.index = index
    return df


def read_caravan(
    root: str | Path,
    subset: str = "camels",
    gauges: Iterable[str] | None = None,
    fmt: str = "auto",
    *,
    missing_values: MissingValues | None = None,
    extent: tuple[float, float, float, float] | None = None,
    text_attributes: Sequence[str] = (),
) -> xr.Dataset:
    """Read a Caravan subset into the sitedata contract (domain ``streamflow``, target ``streamflow``).

    ``gauges`` selects gauge ids (``camels_01022500`` or just ``01022500``); default all.
    Dynamic inputs are every other numeric time-series column; statics are the numeric
    attribute columns (``area`` in km2 kept); lat/lon come from ``attributes_other_<subset>.csv``.
    Empty cells, -999 and -9999 are missing; ``missing_values`` declares more (for every variable,
    or a mapping per variable); any other fill value or implausible value is an error
    (:mod:`synergy_dagster.sources.plausibility`). ``extent`` (lon_min, lat_min, lon_max, lat_max),
    e.g. the ecoregion layer's bounds plus a margin, refuses gauges outside it.

    ``text_attributes`` names text attribute columns (class names) to read as class codes with
    their labels (:func:`~synergy_dagster.sources.sitedata.text_statics`);
    ``ds.attrs["text_attributes"]`` lists every text column of the tables (JSON).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "Caravan root folder not found")
    fmt, files = _list_timeseries(root, subset, fmt)
    if gauges is not None:
        wanted = [str(g) for g in gauges]
        by_suffix = {k.split("_", 1)[-1]: k for k in files}
        chosen: dict[str, Path] = {}
        for g in wanted:
            key = g if g in files else by_suffix.get(g)
            if key is None:
                raise InputError(root / "timeseries" / fmt / subset, f"no time series for gauge {g!r}")
            chosen[key] = files[key]
        files = chosen
    attrs = read_caravan_attributes(root, subset)
    other = root / "attributes" / subset / f"attributes_other_{subset}.csv"
    for c in _COORD_COLUMNS:
        if c not in attrs.columns:
            raise InputError(other, f"no {c!r} column in the attribute tables")
    ids = list(files)
    check_id_padding({str(files[ids[0]].parent): ids, str(other.parent): attrs.index})
    missing = [g for g in ids if g not in attrs.index]
    if missing:
        raise InputError(
            files[missing[0]],
            f"gauge {missing[0]!r} has a time series but no attribute row "
            f"in {other.name} ({len(missing)} such gauges)",
        )

    frames = [_read_timeseries_file(files[g], fmt) for g in ids]
    columns = list(frames[0].columns)
    if TARGET not in columns:
        raise InputError(files[ids[0]], f"no {TARGET!r} column; columns are {columns}")
    for g, f in zip(ids, frames, strict=True):
        if list(f.columns) != columns and set(f.columns) != set(columns):
            raise InputError(
                files[g], f"columns {sorted(f.columns)} differ from {files[ids[0]].name}'s {sorted(columns)}"
            )
    sources = [str(files[g]) for g in ids]
    check_periods_overlap([f.index[0] for f in frames], [f.index[-1] for f in frames], sources)
    time, cube = stack_daily(frames, columns)
    cube[np.isin(cube, MISSING_FLAGS)] = np.nan
    # Fill values first (so a -1e20 is named as such, not as "negative"), then the unit checks
    # with their specific hints, then the plausible range of every variable.
    for j, c in enumerate(columns):
        cube[:, :, j] = check_variable(
            cube[:, :, j], c, "", ids, time, sources, missing_values=missing_values, check_range=False
        )
    q = cube[:, :, columns.index(TARGET)]
    check_streamflow_sanity(q, ids, sources)
    dynamic = {}
    for j, c in enumerate(columns):
        if "temperature" in c:
            check_temperature_celsius(cube[:, :, j], c, ids, sources)
        cube[:, :, j] = check_variable(cube[:, :, j], c, caravan_units(c), ids, time, sources)
        if c != TARGET:
            dynamic[c] = (cube[:, :, j], caravan_units(c))

    table = attrs.loc[ids]
    lat = pd.to_numeric(table["gauge_lat"], errors="coerce").to_numpy()
    lon = pd.to_numeric(table["gauge_lon"], errors="coerce").to_numpy()
    # Name the attribute table and gauge here: the dataset check later only knows the root folder.
    bad = ~np.isfinite(lat) | ~np.isfinite(lon) | (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            other,
            f"gauge {ids[i]!r} has no valid location (gauge_lat {lat[i]}, gauge_lon {lon[i]})",
            f"gauge_id {ids[i]}",
        )
    if extent is not None:
        check_within_extent(lat, lon, ids, extent, other)
    # Text columns (names, country) stay out unless asked for as classes; a numeric column with a
    # text cell was refused when the attribute table was read.
    static = {
        c: (
            check_variable(
                table[c].to_numpy(dtype=np.float64), c, "", ids, None, other, missing_values=missing_values
            ),
            _STATIC_UNITS.get(c, ""),
        )
        for c in table.select_dtypes("number").columns
        if c not in _COORD_COLUMNS
    }
    classes, labels = text_statics(table, text_attributes, str(other.parent))
    ds = make_site_dataset(
        domain="streamflow",
        source=str(root),
        site_ids=ids,
        time=time,
        lat=lat,
        lon=lon,
        target=(TARGET, q, caravan_units(TARGET)),
        dynamic=dynamic,
        static={**static, **classes},
        categories=labels,
    )
    ds.attrs["text_attributes"] = json.dumps(text_columns(table, _COORD_COLUMNS))
    return ds


# --------------------------------------------------------------------------- writing


def write_caravan_csv(ds: xr.Dataset, root: str | Path, subset: str) -> Path:
    """Write a sitedata dataset in the Caravan CSV layout under ``root``; every file atomic.

    The target is written as the ``streamflow`` column. ``attributes_other_<subset>.csv`` gets
    gauge_id, gauge_lat, gauge_lon, area (static ``area`` if present, else empty) and gauge_name
    when the dataset has a ``gauge_name`` coordinate; the other statics go to
    ``attributes_caravan_<subset>.csv``.
    """
    root = Path(root)
    ts_dir = root / "timeseries" / "csv" / subset
    at_dir = root / "attributes" / subset
    ts_dir.mkdir(parents=True, exist_ok=True)
    at_dir.mkdir(parents=True, exist_ok=True)
    tgt, dyn, sta = target_name(ds), dynamic_names(ds), static_names(ds)
    ids = [str(s) for s in ds["site"].values]
    dates = pd.DatetimeIndex(ds["time"].values).strftime("%Y-%m-%d")
    cols = [TARGET, *dyn]  # the target is always written as Caravan's streamflow column
    cube = np.stack(
        [ds[tgt].transpose("site", "time").values] + [ds[v].transpose("site", "time").values for v in dyn],
        axis=-1,
    )
    for i, g in enumerate(ids):
        frame = pd.DataFrame(cube[i].astype(np.float64), columns=cols)
        frame.insert(0, "date", dates)
        with atomic_path(ts_dir / f"{g}.csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g", na_rep="")

    other = pd.DataFrame({"gauge_id": ids})
    if "gauge_name" in ds.coords:
        other["gauge_name"] = [str(v) for v in ds["gauge_name"].values]
    other["gauge_lat"] = ds["lat"].values
    other["gauge_lon"] = ds["lon"].values
    other["area"] = ds["area"].values.astype(np.float64) if "area" in sta else np.nan
    with atomic_path(at_dir / f"attributes_other_{subset}.csv") as tmp:
        other.to_csv(tmp, index=False, float_format="%.8g", na_rep="")
    rest = pd.DataFrame({"gauge_id": ids})
    for v in sta:
        if v != "area":
            rest[v] = ds[v].values.astype(np.float64)
    with atomic_path(at_dir / f"attributes_caravan_{subset}.csv") as tmp:
        rest.to_csv(tmp, index=False, float_format="%.8g", na_rep="")
    return root
