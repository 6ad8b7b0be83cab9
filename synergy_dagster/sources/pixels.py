"""Pixel cubes for soil moisture: CF NetCDF or Zarr with dims (pixel, time) and lat/lon per pixel,
or a (lat, lon, time) grid that is stacked to pixels (cells where everything is NaN dropped)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.sources.plausibility import (
    MissingValues,
    check_daily_dates,
    check_time_units,
    check_variable,
    check_within_extent,
    mask_if_screening,
)
from synergy_dagster.sources.sitedata import encode_classes, make_site_dataset

KELVIN_MEDIAN = 200.0
_KELVIN = {"k", "kelvin", "degk", "deg_k"}
_CELSIUS = {"degc", "celsius", "c", "deg_c", "degrees_celsius", "°c"}
_TARGET_UNITS = "m3/m3"
_SKIP_STATIC = {"lat", "lon", "latitude", "longitude", "pixel_id"}


def _open(path: Path) -> xr.Dataset:
    if not path.exists():
        raise InputError(path, "file not found")
    is_zarr = path.is_dir() or path.suffix == ".zarr"
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(path, "empty file")
    try:
        if is_zarr:
            try:  # consolidated metadata is optional in Zarr 3: try it, then read the plain store
                return xr.open_zarr(path, consolidated=True)
            except (KeyError, FileNotFoundError, ValueError):
                return xr.open_zarr(path, consolidated=False)
        return xr.open_dataset(path)
    except Exception as exc:  # netCDF4/h5netcdf/zarr raise many types; all mean "unreadable"
        kind = "Zarr store" if is_zarr else "NetCDF file"
        raise InputError(path, f"cannot open as a {kind}: {exc}") from exc


def _is_temperature(name: str, var: xr.DataArray) -> bool:
    text = f"{name} {var.attrs.get('standard_name', '')} {var.attrs.get('long_name', '')}".lower()
    return "temp" in text or "tmp" in text


def _norm_units(u: object) -> str:
    return str(u).strip().lower().replace(" ", "_") if u is not None else ""


def _convert_units(name: str, arr: np.ndarray, var: xr.DataArray, path: Path) -> tuple[np.ndarray, str]:
    """Kelvin -> degC; a temperature said to be degC (or without units) whose median looks like
    Kelvin is an error: the reader does not guess units."""
    units = str(var.attrs.get("units", "")).strip()
    nu = _norm_units(units)
    if nu in _KELVIN:
        return arr - np.float32(273.15), "degC"
    if _is_temperature(name, var) or nu in _CELSIUS:
        finite = arr[np.isfinite(arr)]
        med = float(np.median(finite)) if finite.size else np.nan
        if med > KELVIN_MEDIAN and nu in _CELSIUS:
            raise InputError(
                path, f"median {med:.1f} with units {units!r}: looks like Kelvin where degC is expected", name
            )
        if med > KELVIN_MEDIAN and not nu:
            raise InputError(
                path,
                f"temperature without a units attribute has median {med:.1f}, which looks "
                "like Kelvin; set units='K' (or convert to degC)",
                name,
            )
        if nu in _CELSIUS:
            return arr, "degC"
    return arr, units


def _site_ids(ds: xr.Dataset, dim: str) -> list[str]:
    if "pixel_id" in ds.variables and ds["pixel_id"].dims == (dim,):
        return [str(v) for v in ds["pixel_id"].values]
    if dim in ds.coords:
        vals = ds[dim].values
        if np.issubdtype(vals.dtype, np.integer):
            return [f"px{int(v)}" for v in vals]
        return [str(v) for v in vals]
    return [f"px{i}" for i in range(ds.sizes[dim])]


def _grid_to_pixels(ds: xr.Dataset, target: str, path: Path) -> xr.Dataset:
    """(lat, lon, time) grid -> (pixel, time) with lat/lon per pixel, ids px<flat grid index>;
    cells where every (lat, lon, time) variable is NaN on every day are dropped."""
    lat_name = "lat" if "lat" in ds.dims else "latitude"
    lon_name = "lon" if "lon" in ds.dims else "longitude"
    lat = np.asarray(ds[lat_name].values, dtype=np.float64)
    lon = np.asarray(ds[lon_name].values, dtype=np.float64)
    stacked = ds.stack(pixel=(lat_name, lon_name))
    n = lat.size * lon.size
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    cube_vars = [k for k, v in ds.data_vars.items() if set(v.dims) == {lat_name, lon_name, "time"}]
    if not cube_vars:
        raise InputError(path, "grid has no (lat, lon, time) variables")
    any_data = np.zeros(n, dtype=bool)
    for k in cube_vars:
        any_data |= np.isfinite(stacked[k].transpose("pixel", "time").values).any(axis=1)
    if not any_data.any():
        raise InputError(path, f"every grid cell is NaN on every day (variables {cube_vars})")
    keep = np.flatnonzero(any_data)
    out = stacked.drop_vars([c for c in (lat_name, lon_name, "pixel") if c in stacked.coords])
    out = out.isel(pixel=keep)
    return out.assign_coords(
        pixel=("pixel", np.arange(n)[keep]),
        lat=("pixel", glat.ravel()[keep]),
        lon=("pixel", glon.ravel()[keep]),
    )


def read_pixel_cube(
    path: str | Path,
    target: str = "SMAP_AM",
    dynamic: Sequence[str] | None = None,
    static: Sequence[str] | None = None,
    *,
    missing_values: MissingValues | None = None,
    extent: tuple[float, float, float, float] | None = None,
    text_attributes: Sequence[str] = (),
) -> xr.Dataset:
    """Read a soil-moisture pixel cube into the sitedata contract (domain ``soil_moisture``).

    ``dynamic`` defaults to every (pixel, time) variable but the target, ``static`` to every
    (pixel,) variable. Temperatures in K become degC. The target (m3/m3) must lie in [0, 1].
    ``_FillValue`` / ``missing_value`` attributes are missing; ``missing_values`` declares more
    (for every variable, or a mapping per variable); any other fill value or implausible value is
    an error. ``extent`` (lon_min, lat_min, lon_max, lat_max) refuses pixels outside it.

    A (pixel,) variable holding text is refused unless ``text_attributes`` names it: then it is
    read (in addition to ``static``) as class codes with their labels
    (:func:`~synergy_dagster.sources.sitedata.encode_classes`). Names in ``text_attributes`` that
    the cube lacks are left to the study's input selection, which names the study key; numeric
    ones are read as plain statics.
    """
    path = Path(path)
    raw = _open(path)
    try:
        ds = raw
        if "time" not in ds.dims:
            raise InputError(path, f"no 'time' dimension; dims are {dict(ds.sizes)}")
        dims = set(ds.dims)
        if {"lat", "lon"} <= dims or {"latitude", "longitude"} <= dims:
            ds = _grid_to_pixels(ds, target, path)
        elif "pixel" not in dims:
            raise InputError(path, f"expected dims (pixel, time) or (lat, lon, time); found {dict(ds.sizes)}")
        for c in ("lat", "lon"):
            if c not in ds.variables or ds[c].dims != ("pixel",):
                raise InputError(path, f"no per-pixel {c!r} coordinate")
        have_dyn = [str(k) for k, v in ds.data_vars.items() if set(v.dims) == {"pixel", "time"}]
        have_sta = [str(k) for k, v in ds.data_vars.items() if v.dims == ("pixel",) and k not in _SKIP_STATIC]
        if target not in have_dyn:
            raise InputError(
                path,
                f"target variable {target!r} (pixel, time) not found; the file has "
                f"{sorted(map(str, ds.data_vars))}",
                target,
            )
        dyn = [v for v in have_dyn if v != target] if dynamic is None else list(dynamic)
        sta = list(have_sta) if static is None else list(static)
        sta += [v for v in text_attributes if v in have_sta and v not in sta]
        for names, have, kind in ((dyn, have_dyn, "(pixel, time)"), (sta, have_sta, "(pixel,)")):
            absent = [v for v in names if v not in have]
            if absent:
                raise InputError(
                    path, f"variables {absent} not found as {kind}; the file has {sorted(have)}", absent[0]
                )
        classes = [k for k in sta if k in text_attributes and ds[k].dtype.kind not in "biuf"]
        for k in (target, *dyn, *sta):
            if ds[k].dtype.kind not in "biuf" and k not in classes:
                hint = "; a static of classes can be declared categorical" if k in sta else ""
                raise InputError(
                    path,
                    f"variable {k!r} holds {ds[k].dtype} values (text?), not numbers; convert it or "
                    f"leave it out of dynamic/static{hint}",
                    k,
                )
        check_time_units(ds["time"].encoding.get("units") or ds["time"].attrs.get("units"), path)
        if not np.issubdtype(ds["time"].dtype, np.datetime64):
            raise InputError(path, f"time axis is not decoded as dates (dtype {ds['time'].dtype})", "time")
        # A time of day is refused, never rounded onto the day before or after; order, duplicates
        # and gaps are the dataset contract's check (validate_site_dataset).
        time = check_daily_dates(
            pd.Series(ds["time"].values), path, first_line=0, column="time", row_label="time index",
            sequence=False,
        )  # fmt: skip
        lat = np.asarray(ds["lat"].values, dtype=np.float64)
        lon = np.asarray(ds["lon"].values, dtype=np.float64)
        lon = np.where(lon > 180, lon - 360, lon)  # CF allows 0..360 east
        for c, v, lim in (("lat", lat, 90), ("lon", lon, 180)):
            bad = ~np.isfinite(v) | (np.abs(v) > lim)
            if bad.any():
                raise InputError(
                    path,
                    f"{c} {v[int(np.argmax(bad))]} out of range [-{lim}, {lim}] at pixel "
                    f"index {int(np.argmax(bad))}",
                    c,
                )
        ids = _site_ids(ds, "pixel")
        if extent is not None:
            check_within_extent(lat, lon, ids, extent, path)

        def grab(name: str) -> np.ndarray:
            v = ds[name]
            if "time" in v.dims:
                v = v.transpose("pixel", "time")
            return np.asarray(v.values, dtype=np.float32)

        def screen(name: str) -> np.ndarray:
            arr = grab(name)
            return check_variable(
                arr, name, "", ids, time if arr.ndim == 2 else None, path,
                missing_values=missing_values, check_range=False,
            )  # fmt: skip

        y = screen(target)
        finite = np.isfinite(y)
        outside = finite & ((y < 0) | (y > 1))
        what = "outside [0, 1] m3/m3 for volumetric soil moisture"
        if outside.any() and not mask_if_screening(y, outside, target, ids, time, path, what):
            i, t = np.argwhere(outside)[0]
            raise InputError(
                path,
                f"{target} = {float(y[i, t]):g} at pixel {ids[i]} on {time[t]:%Y-%m-%d} is "
                "outside [0, 1]; soil moisture must be volumetric m3/m3",
                target,
            )
        dyn_out = {}
        for k in dyn:
            arr, u = _convert_units(k, screen(k), ds[k], path)
            std = str(ds[k].attrs.get("standard_name", ""))
            arr = check_variable(arr, k, u, ids, time, path, standard_name=std)
            dyn_out[k] = (arr, u)
        sta_out, labels = {}, {}
        for k in sta:
            if k in classes:
                raw_text = np.asarray(ds[k].values)
                if raw_text.dtype.kind == "S":  # NetCDF char arrays come back as bytes
                    raw_text = np.char.decode(raw_text, "utf-8")
                codes, labels[k] = encode_classes(raw_text)
                if not labels[k]:
                    raise InputError(path, f"text variable {k!r} is empty at every pixel", k)
                sta_out[k] = (codes, "")
                continue
            arr, u = _convert_units(k, screen(k), ds[k], path)
            sta_out[k] = (arr, u)
    finally:
        raw.close()
    return make_site_dataset(
        domain="soil_moisture",
        source=str(path),
        site_ids=ids,
        time=time,
        lat=lat,
        lon=lon,
        target=(target, y, _TARGET_UNITS),
        dynamic=dyn_out,
        static=sta_out,
        categories=labels,
    )
