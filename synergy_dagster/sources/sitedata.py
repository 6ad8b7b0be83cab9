"""The one in-memory shape every reader returns: an xarray Dataset over (site, time).

Contract (checked by :func:`validate_site_dataset`):

- dims ``site`` (string ids, unique) and ``time`` (daily ``datetime64[ns]``, unique, continuous,
  increasing);
- coords ``lat`` and ``lon`` on ``site`` (degrees, WGS84);
- every data variable has ``attrs["role"]`` in ``{"target", "dynamic", "static", "flag"}``:
  exactly one ``target`` (site, time), any number of ``dynamic`` (site, time) and
  ``static`` (site,) variables, all float32, NaN for missing; a ``flag`` (site, time) variable
  describes the target's values (USGS status bits, ``sources/usgs_flags.py``), never an input;
- ``attrs["units"]`` on each variable where known;
- a static read from a text column (classes such as a geology name) holds integer codes 0..k-1
  (NaN where a site has no class) and ``attrs["categories"]``, the JSON list of its k labels;
- ``ds.attrs["domain"]`` is ``"streamflow"`` or ``"soil_moisture"``; ``ds.attrs["source"]`` names
  the file or folder it came from.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.config import DOMAINS
from synergy_dagster.errors import InputError

ROLES = ("target", "dynamic", "static", "flag")


def make_site_dataset(
    *,
    domain: str,
    source: str,
    site_ids: list[str] | np.ndarray,
    time: pd.DatetimeIndex,
    lat: np.ndarray,
    lon: np.ndarray,
    target: tuple[str, np.ndarray, str],
    dynamic: Mapping[str, tuple[np.ndarray, str]],
    static: Mapping[str, tuple[np.ndarray, str]] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> xr.Dataset:
    """Build a dataset that meets the contract. ``target`` is (name, array[site,time], units);
    ``dynamic``/``static`` map name -> (array, units); ``categories`` maps a static holding class
    codes to its labels (see :func:`encode_classes`)."""
    if domain not in DOMAINS:
        raise InputError("domain", f"unknown domain {domain!r}; expected one of {DOMAINS}")
    data_vars: dict[str, xr.Variable] = {}
    name, arr, units = target
    data_vars[name] = xr.Variable(
        ("site", "time"), np.asarray(arr, dtype=np.float32), {"role": "target", "units": units}
    )
    for k, (a, u) in dynamic.items():
        data_vars[k] = xr.Variable(
            ("site", "time"), np.asarray(a, dtype=np.float32), {"role": "dynamic", "units": u}
        )
    for k, (a, u) in (static or {}).items():
        data_vars[k] = xr.Variable(("site",), np.asarray(a, dtype=np.float32), {"role": "static", "units": u})
    for k, labels in (categories or {}).items():
        data_vars[k].attrs["categories"] = json.dumps([str(v) for v in labels])
    ds = xr.Dataset(
        data_vars,
        coords={
            "site": np.asarray(site_ids, dtype=str),
            "time": pd.DatetimeIndex(time).astype("datetime64[ns]"),
            "lat": ("site", np.asarray(lat, dtype=np.float64)),
            "lon": ("site", np.asarray(lon, dtype=np.float64)),
        },
        attrs={"domain": domain, "source": str(source)},
    )
    validate_site_dataset(ds, where=str(source))
    return ds


def encode_classes(values: Sequence[object] | np.ndarray | pd.Series) -> tuple[np.ndarray, list[str]]:
    """Text classes -> (float32 codes 0..k-1 into the sorted labels, NaN where empty; the labels).

    Labels are stripped (CAMELS pads ``dom_land_cover`` with spaces): one class is one label
    however a table aligns it.
    """
    text = pd.Series(values, dtype="string").str.strip()
    codes, labels = pd.factorize(text.mask(text == ""), sort=True)  # -1 for a missing class
    out = codes.astype(np.float32)
    out[codes < 0] = np.nan
    return out, [str(v) for v in labels]


def text_statics(
    table: pd.DataFrame, wanted: Collection[str], source: str
) -> tuple[dict[str, tuple[np.ndarray, str]], dict[str, list[str]]]:
    """The ``wanted`` text columns of an attribute table (one row per site) as class-code statics
    and their labels. Wanted names that are numeric columns are the numeric statics already, and
    names the table lacks are left to the study's input selection, which names the study key."""
    static: dict[str, tuple[np.ndarray, str]] = {}
    labels: dict[str, list[str]] = {}
    for name in wanted:
        if name in table.columns and not pd.api.types.is_numeric_dtype(table[name]):
            codes, labels[name] = encode_classes(table[name])
            if not labels[name]:
                raise InputError(source, f"text attribute {name!r} is empty at every site", name)
            static[name] = (codes, "")
    return static, labels


def text_columns(table: pd.DataFrame, skip: Collection[str] = ()) -> list[str]:
    """Names of the text columns of an attribute table (what a study may declare categorical)."""
    return [str(c) for c in table.columns if c not in skip and not pd.api.types.is_numeric_dtype(table[c])]


def class_labels(var: xr.DataArray) -> list[str] | None:
    """The labels of a static read from a text column, None for a numeric static."""
    raw = var.attrs.get("categories")
    return None if raw is None else [str(v) for v in json.loads(raw)]


def vars_with_role(ds: xr.Dataset, role: str) -> list[str]:
    return [str(k) for k, v in ds.data_vars.items() if v.attrs.get("role") == role]


def target_name(ds: xr.Dataset) -> str:
    (name,) = vars_with_role(ds, "target")
    return name


def dynamic_names(ds: xr.Dataset) -> list[str]:
    return vars_with_role(ds, "dynamic")


def static_names(ds: xr.Dataset) -> list[str]:
    return vars_with_role(ds, "static")


def validate_site_dataset(ds: xr.Dataset, where: str) -> None:
    """Raise :class:`InputError` naming ``where`` and the variable if the contract is broken."""
    for dim in ("site", "time"):
        if dim not in ds.dims:
            raise InputError(where, f"missing dimension {dim!r}")
    if ds.attrs.get("domain") not in DOMAINS:
        raise InputError(where, f"attrs['domain'] must be one of {DOMAINS}")
    sites = pd.Index(ds["site"].values)
    if ds.sizes["site"] == 0:
        raise InputError(where, "no sites")
    if sites.has_duplicates:
        dup = sites[sites.duplicated()].unique()[:5].tolist()
        raise InputError(where, f"duplicate site ids: {dup}", "site")
    t = pd.DatetimeIndex(ds["time"].values)
    if len(t) == 0:
        raise InputError(where, "empty time axis", "time")
    if t.has_duplicates:
        raise InputError(
            where, f"duplicate dates: {t[t.duplicated()][:3].strftime('%Y-%m-%d').tolist()}", "time"
        )
    if not t.is_monotonic_increasing:
        raise InputError(where, "dates are not in increasing order", "time")
    if len(t) > 1:
        steps = np.diff(t.values).astype("timedelta64[D]").astype(int)
        if (steps != 1).any():
            i = int(np.argmax(steps != 1))
            raise InputError(where, f"dates not continuous daily: gap after {t[i]:%Y-%m-%d}", "time")
    for c, lo, hi in (("lat", -90, 90), ("lon", -180, 180)):
        if c not in ds.coords:
            raise InputError(where, f"missing coordinate {c!r}")
        v = ds[c].values
        bad = ~np.isfinite(v) | (v < lo) | (v > hi)
        if bad.any():
            raise InputError(
                where, f"{c} out of range [{lo}, {hi}] for site {sites[int(np.argmax(bad))]!r}", c
            )
    roles = {k: v.attrs.get("role") for k, v in ds.data_vars.items()}
    bad_roles = [k for k, r in roles.items() if r not in ROLES]
    if bad_roles:
        raise InputError(where, f"variables without a valid role: {bad_roles}")
    if list(roles.values()).count("target") != 1:
        raise InputError(where, "exactly one target variable is required")
    for k, r in roles.items():
        want = ("site",) if r == "static" else ("site", "time")
        if ds[k].dims != want:
            raise InputError(where, f"dims {ds[k].dims}, expected {want}", str(k))
