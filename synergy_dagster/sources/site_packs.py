"""Site packs: the forcing and static attributes a user lands for a new USGS gauge.

USGS supplies a new gauge's discharge and its monitoring-location record (the registry,
:mod:`synergy_dagster.sources.usgs_registry`), not the model inputs. Those come from a site pack,
under the landed folder of the study's working folder:

* ``<data_dir>/landed/sites/streamflow/<number>.csv``: a ``date`` column (YYYY-MM-DD, each day
  once) and one column per dynamic input of the study (``domains.streamflow.dynamic``), in the
  units the study's reader gives that variable; other columns are ignored;
* ``<data_dir>/landed/sites/streamflow/attributes.csv`` (optional): a ``gauge`` column (the USGS
  number) and static attributes named as the reader names them; a text class must be one of the
  archive's classes. ``area``, ``lat`` and ``lon`` come from the registry.

:func:`add_new_gauge_sites` adds every registered new gauge with a pack to the reader's dataset
as the site ``usgs_<number>``: streamflow from the ledger of landed values (mm/d, converted with
the registry's area at ingest), forcing from the pack on the reader's time axis, a static the pack
does not give missing (as for an archive site without it). A new gauge without a pack, or not yet
registered, is returned as pending with the file it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.layout import Layout
from synergy_dagster.sources.plausibility import check_variable, check_within_extent
from synergy_dagster.sources.sitedata import class_labels, dynamic_names, static_names, target_name
from synergy_dagster.sources.usgs_registry import (
    KEY,
    new_gauge_site_id,
    read_registry,
    refuse_archive_conflicts,
    registry_path,
)

DOMAIN = "streamflow"
ATTRIBUTES = "attributes.csv"
FROM_REGISTRY = ("area",)  # statics the registry gives (km2); lat/lon are the site's coordinates
PENDING_COLUMNS = ["gauge", "site", "reason", "needs"]


def pack_dir(layout: Layout) -> Path:
    """``<data_dir>/landed/sites/streamflow``: where site packs land."""
    return layout.landed_dir() / "sites" / DOMAIN


def pack_path(layout: Layout, number: str) -> Path:
    """The site pack (forcing) of the new gauge ``number``."""
    return pack_dir(layout) / f"{number}.csv"


def read_site_pack(
    path: Path, dynamic: Sequence[str], units: dict[str, str], time: pd.DatetimeIndex, site: str
) -> dict[str, np.ndarray]:
    """The ``dynamic`` columns of one pack on ``time`` (NaN where the pack has no day); InputError
    naming the file, column and line for a missing column, a bad date, a date twice, a value that
    is not a number, no day on ``time``, or a value outside the plausible range of its units."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV site pack: {exc}") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("date", *dynamic) if c not in table.columns]
    if missing:
        raise InputError(
            path,
            f"missing column(s) {missing}: a site pack holds 'date' and the study's dynamic inputs "
            f"{list(dynamic)} (units {[units.get(n, '') for n in dynamic]})",
            ", ".join(missing),
        )
    text = table["date"].str.strip()
    day = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    if day.isna().any():
        i = int(np.argmax(day.isna().to_numpy()))
        raise InputError(path, f"date {text.iloc[i]!r} on line {i + 2} is not YYYY-MM-DD", "date")
    dup = day.duplicated(keep=False)
    if dup.any():
        lines = (np.flatnonzero(dup.to_numpy()) + 2)[:2].tolist()
        raise InputError(path, f"date {day[dup].iloc[0]:%Y-%m-%d} twice (lines {lines})", "date")
    pos = pd.DatetimeIndex(time).get_indexer(pd.DatetimeIndex(day))
    if not (pos >= 0).any():
        raise InputError(
            path,
            f"no date on the study's time axis {time[0]:%Y-%m-%d}..{time[-1]:%Y-%m-%d} "
            f"(the pack holds {day.min():%Y-%m-%d}..{day.max():%Y-%m-%d})",
            "date",
        )
    out: dict[str, np.ndarray] = {}
    for name in dynamic:
        raw = table[name].str.strip()
        value = pd.to_numeric(raw, errors="coerce")
        bad = value.isna() & (raw != "") & ~raw.str.lower().isin(["nan", "na"])
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise InputError(path, f"value {raw.iloc[i]!r} on line {i + 2} is not a number", name)
        series = np.full(len(time), np.nan, dtype=np.float32)
        series[pos[pos >= 0]] = value.to_numpy(dtype=np.float32)[pos >= 0]
        out[name] = check_variable(series[None, :], name, units.get(name, ""), [site], time, path)[0]
    return out


def read_attributes(path: Path, statics: Sequence[str]) -> pd.DataFrame:
    """The attribute table of new gauges, indexed by USGS number (text as written); InputError for
    a missing ``gauge`` column, a gauge twice or a column that is not a static of the archive."""
    if not path.exists():
        return pd.DataFrame(index=pd.Index([], name="gauge"))
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV attribute table: {exc}") from None
    table.columns = [str(c).strip() for c in table.columns]
    if "gauge" not in table.columns:
        raise InputError(path, "missing column 'gauge' (the USGS number of each new gauge)", "gauge")
    table["gauge"] = table["gauge"].str.strip()
    dup = table["gauge"].duplicated()
    if dup.any():
        raise InputError(path, f"gauge {table['gauge'][dup].iloc[0]!r} twice", "gauge")
    unknown = [c for c in table.columns if c != "gauge" and c not in statics]
    if unknown:
        raise InputError(
            path,
            f"columns {unknown} are not static attributes of the archive ({sorted(statics)})",
            unknown[0],
        )
    return table.set_index("gauge")


def _static_values(ds: xr.Dataset, name: str, column: pd.Series, path: Path) -> np.ndarray:
    """One static of the new gauges from the attribute table: numbers, or class codes of the
    archive's labels for a text class."""
    raw = column.fillna("").astype(str).str.strip()
    labels = class_labels(ds[name])
    if labels is not None:
        code = {label: float(i) for i, label in enumerate(labels)}
        unknown = raw[(raw != "") & ~raw.isin(list(code))]
        if len(unknown):
            raise InputError(
                path,
                f"gauge {unknown.index[0]}: {unknown.iloc[0]!r} is not a class of the archive {labels}",
                name,
            )
        return raw.map(code).to_numpy(dtype=np.float64)
    value = pd.to_numeric(raw, errors="coerce")
    bad = value.isna() & (raw != "")
    if bad.any():
        raise InputError(
            path,
            f"gauge {raw.index[int(np.argmax(bad.to_numpy()))]}: {raw[bad].iloc[0]!r} is not a number",
            name,
        )
    return value.to_numpy(dtype=np.float64)


def _ledger_target(ledger: pd.DataFrame | None, sites: list[str], time: pd.DatetimeIndex) -> np.ndarray:
    """The landed streamflow (mm/d) of ``sites`` on ``time`` from the ledger; NaN where none or withdrawn."""
    out = np.full((len(sites), len(time)), np.nan, dtype=np.float32)
    if ledger is None or not len(ledger):
        return out
    rows = ledger[ledger["site_id"].astype(str).isin(sites)]
    if "withdrawn" in rows.columns:
        rows = rows[~rows["withdrawn"].fillna(False).astype(bool)]
    si = pd.Index(sites).get_indexer(rows["site_id"].astype(str))
    ti = time.get_indexer(pd.DatetimeIndex(rows["date"]))
    ok = ti >= 0
    out[si[ok], ti[ok]] = rows["streamflow_mm"].to_numpy(dtype=np.float32)[ok]
    return out


def pending_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """The new gauges left out of the source, with why and the file or run they need."""
    return pd.DataFrame(rows, columns=PENDING_COLUMNS)


def add_new_gauge_sites(
    ds: xr.Dataset,
    numbers: Sequence[str],
    layout: Layout,
    dynamic: Sequence[str],
    extent: tuple[float, float, float, float] | None = None,
) -> tuple[xr.Dataset, pd.DataFrame, list[Path]]:
    """The reader's ``ds`` with each registered new gauge that has a pack added as a site.

    Returns (dataset, pending new gauges, the registry/pack/attribute files read: for the content
    hash). ``dynamic`` are the study's dynamic inputs (what a pack must hold); a new gauge outside
    ``extent`` is refused as an archive site would be.
    """
    site_ids = [str(s) for s in ds["site"].values]
    refuse_archive_conflicts(numbers, site_ids)
    registry = read_registry(layout).set_index("gauge")
    pending: list[dict[str, str]] = []
    ready: list[str] = []
    for n in numbers:
        if n not in registry.index:
            pending.append(
                {"gauge": n, "site": new_gauge_site_id(n), "reason": "not registered yet",
                 "needs": "a USGS fetch (nwis_fetch_job) to register it and fetch its history"}
            )  # fmt: skip
        elif not pack_path(layout, n).exists():
            pending.append(
                {"gauge": n, "site": new_gauge_site_id(n), "reason": "no site pack (forcing)",
                 "needs": str(pack_path(layout, n))}
            )  # fmt: skip
        else:
            ready.append(n)
    files = [registry_path(layout)] if len(registry) else []
    if not ready:
        return ds, pending_frame(pending), files
    reg = registry.loc[ready]
    sites = [new_gauge_site_id(n) for n in ready]
    if extent is not None:
        check_within_extent(
            reg["lat"].to_numpy(), reg["lon"].to_numpy(), sites, extent, registry_path(layout)
        )
    time = pd.DatetimeIndex(ds["time"].values)
    units = {n: str(ds[n].attrs.get("units", "")) for n in dynamic_names(ds)}
    absent = [n for n in dynamic if n not in units]
    if absent:  # the study's own error (select_inputs names the key) comes later; say it here for packs
        raise InputError(KEY, f"the reader gives no dynamic inputs {absent}: a site pack cannot supply them")
    attr_path = pack_dir(layout) / ATTRIBUTES
    attrs = read_attributes(attr_path, static_names(ds))
    files += [pack_path(layout, n) for n in ready] + ([attr_path] if attr_path.exists() else [])
    # A template of the new sites cut from the first archive site keeps every variable, coordinate
    # and attribute of the reader's dataset; each value is then overwritten.
    new = ds.isel(site=np.zeros(len(ready), dtype=int)).assign_coords(
        site=np.asarray(sites, dtype=str),
        lat=("site", reg["lat"].to_numpy(dtype=np.float64)),
        lon=("site", reg["lon"].to_numpy(dtype=np.float64)),
    )
    for name, coord in list(new.coords.items()):
        if name not in ("site", "time", "lat", "lon") and coord.dims == ("site",):
            blank = (
                np.full(len(ready), np.nan)
                if coord.dtype.kind == "f"
                else np.full(len(ready), "", dtype=object)
            )
            new = new.assign_coords({name: ("site", blank)})
    upd = layout.landed_updates(DOMAIN)
    ledger = pd.read_parquet(upd) if upd.exists() else None
    for name, var in list(new.data_vars.items()):
        role = var.attrs.get("role")
        if role == "target" and name == target_name(ds):
            values = _ledger_target(ledger, sites, time)
        elif role == "dynamic":
            values = np.full((len(ready), len(time)), np.nan, dtype=np.float32)
        elif role == "static":
            values = np.full(len(ready), np.nan, dtype=np.float32)
            if name in FROM_REGISTRY:
                values[:] = reg["drainage_area_km2"].to_numpy(dtype=np.float32)
            elif name in attrs.columns:
                values[:] = _static_values(ds, str(name), attrs[name].reindex(ready), attr_path)
        else:  # a flag: rebuilt from the ledger by the landed ingest
            values = np.zeros(var.shape, dtype=var.dtype)
        new[name] = var.copy(data=values.astype(var.dtype))
    for k, n in enumerate(ready):
        pack = read_site_pack(pack_path(layout, n), dynamic, units, time, sites[k])
        for name, series in pack.items():
            new[name].values[k] = series
    out = xr.concat([ds, new], dim="site", combine_attrs="override")
    return out, pending_frame(pending), files
