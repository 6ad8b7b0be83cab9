"""The registry of new USGS gauges: each one's monitoring-location record, fetched once.

A study lists USGS numbers outside its reader's archive under ``domains.streamflow.usgs.new_gauges``.
The USGS fetch registers each number not yet registered: its ``monitoring-locations`` record (name,
WGS84 point, drainage area converted from square miles to km2) goes into one parquet file under the
landed folder, written atomically, so later runs, the ingest (area for the cfs -> mm/d conversion)
and the source build (coordinates, ``area``) read the same record without asking the API again.
A new gauge's site id is ``usgs_<number>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import requests
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import atomic_path
from synergy_dagster.layout import Layout
from synergy_dagster.sources.nwis_client import usgs_site_number
from synergy_dagster.sources.waterdata import ClientSettings, fetch_monitoring_locations

KEY = "domains.streamflow.usgs.new_gauges"  # the study key the numbers come from
SITE_PREFIX = "usgs_"
REGISTRY_COLUMNS = ["gauge", "site_id", "name", "lat", "lon", "drainage_area_km2", "fetched_at"]


def registry_path(layout: Layout) -> Path:
    """``<data_dir>/landed/usgs_new_gauges.parquet``: one row per registered gauge."""
    return layout.landed_dir() / "usgs_new_gauges.parquet"


def new_gauge_site_id(number: str) -> str:
    """The site id of a new gauge in the streamflow source: ``usgs_<number>``."""
    return f"{SITE_PREFIX}{number}"


def read_registry(layout: Layout) -> pd.DataFrame:
    """The registered gauges (REGISTRY_COLUMNS; empty when none); InputError for a damaged file."""
    path = registry_path(layout)
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REGISTRY_COLUMNS})
    reg = pd.read_parquet(path)
    missing = [c for c in REGISTRY_COLUMNS if c not in reg.columns]
    if missing:
        raise InputError(path, f"not a registry of new gauges: lacks columns {missing}")
    reg["gauge"] = reg["gauge"].astype(str)
    return reg[REGISTRY_COLUMNS]


def archive_conflicts(numbers: Sequence[str], site_ids: Sequence[str]) -> dict[str, str]:
    """New numbers the reader's archive already holds: number -> its archive site id (not ``usgs_<n>``)."""
    held = {usgs_site_number(s): str(s) for s in site_ids if not str(s).startswith(SITE_PREFIX)}
    return {n: held[n] for n in numbers if n in held}


def refuse_archive_conflicts(numbers: Sequence[str], site_ids: Sequence[str]) -> None:
    """InputError naming ``new_gauges`` when the reader's archive already holds one of ``numbers``."""
    clash = archive_conflicts(numbers, site_ids)
    if clash:
        raise InputError(
            KEY,
            "already in the reader's archive (remove them from new_gauges): "
            + ", ".join(f"{n} as {s}" for n, s in sorted(clash.items())),
        )


def register_new_gauges(
    layout: Layout,
    numbers: Sequence[str],
    settings: ClientSettings,
    *,
    archive_sites: Sequence[str] = (),
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[pd.DataFrame, list[str]]:
    """Fetch the monitoring-location record of each of ``numbers`` not yet registered and add it.

    Returns (the whole registry, the numbers added now). A number the API does not know, one
    without a drainage area (its discharge could not be converted to mm/d) or one the archive
    already holds (``archive_sites``: the streamflow source's site ids) is an InputError naming it;
    nothing is written then.
    """
    refuse_archive_conflicts(numbers, archive_sites)
    registry = read_registry(layout)
    todo = sorted(set(numbers) - set(registry["gauge"]))
    if not todo:
        return registry, []
    loc = fetch_monitoring_locations(todo, settings, session=session, sleep=sleep)
    no_area = loc.loc[~(loc["drainage_area_km2"] > 0), "gauge"].tolist()
    if no_area:
        raise InputError(
            KEY,
            f"the API gives no positive drainage area for USGS gauges {no_area[:20]}: cfs cannot become mm/d",
        )
    no_point = loc.loc[~np.isfinite(loc["lat"]) | ~np.isfinite(loc["lon"]), "gauge"].tolist()
    if no_point:
        raise InputError(KEY, f"the API gives no coordinates for USGS gauges {no_point[:20]}")
    added = pd.DataFrame(
        {
            "gauge": loc["gauge"].astype(str).to_numpy(),
            "site_id": [new_gauge_site_id(g) for g in loc["gauge"].astype(str)],
            "name": loc["name"].to_numpy(),
            "lat": loc["lat"].to_numpy(dtype=np.float64),
            "lon": loc["lon"].to_numpy(dtype=np.float64),
            "drainage_area_km2": loc["drainage_area_km2"].to_numpy(dtype=np.float64),
            "fetched_at": pd.Timestamp(datetime.now(UTC)).tz_localize(None),
        }
    )
    parts = [registry, added] if len(registry) else [added]
    out = pd.concat(parts, ignore_index=True).sort_values("gauge").reset_index(drop=True)
    path = registry_path(layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        out.to_parquet(tmp, index=False)
    return out, added["gauge"].tolist()


def registry_areas(registry: pd.DataFrame) -> dict[str, float]:
    """site id -> drainage area (km2) of the registered gauges (the ingest's cfs -> mm/d areas)."""
    return dict(
        zip(registry["site_id"].astype(str), registry["drainage_area_km2"].astype(float), strict=True)
    )


def source_site_ids(layout: Layout) -> list[str]:
    """The site ids of the streamflow source (empty before it is built): what the archive holds."""
    path = layout.source_nc("streamflow")
    if not path.exists():
        return []
    with xr.open_dataset(path) as ds:
        return [str(s) for s in ds["site"].values]
