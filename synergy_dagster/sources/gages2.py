"""GAGES-II gauge points (Falcone 2011): class (Ref / Non-ref), location, drainage area, HUC02,
aggregated ecoregion and state, from the ``gagesII_9322_sept30_2011`` shapefile or any copy of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from synergy_dagster.errors import InputError
from synergy_dagster.sources.basin_polygons import check_ids_present, gauge_ids
from synergy_dagster.sources.ecoregions import check_crs, read_vector, to_wgs84

REQUIRED = ("STAID", "CLASS", "DRAIN_SQKM", "HUC02", "AGGECOREGI", "STATE")
_CLASSES = {"ref": "Ref", "non-ref": "Non-ref", "nonref": "Non-ref"}


def read_gages2(path: str | Path) -> pd.DataFrame:
    """Gauges indexed by STAID (8-character str): class, lat, lon, drain_sqkm, huc02, aggecoregion, state.

    lat/lon come from LAT_GAGE/LNG_GAGE where present, else from the point geometry in EPSG:4326.
    """
    gdf = read_vector(path)
    missing = [c for c in REQUIRED if c not in gdf.columns]
    if missing:
        raise InputError(path, f"missing GAGES-II columns {missing}")
    check_crs(gdf, path)
    ids = gauge_ids(gdf["STAID"])
    check_ids_present(ids, path, "STAID")
    dup = ids.duplicated()
    if dup.any():
        raise InputError(path, f"duplicate STAID {ids[dup].unique()[:5].tolist()}", "STAID")
    # A USGS station number has 8 to 15 digits; anything else is a damaged or foreign id.
    bad_id = ~ids.str.fullmatch(r"\d{8,15}").fillna(False).to_numpy(dtype=bool)
    if bad_id.any():
        i = int(np.argmax(bad_id))
        raise InputError(
            path,
            f"STAID {ids.iloc[i]!r} is not a USGS station number (8-15 digits)",
            f"feature {i}, column STAID",
        )
    cls = gdf["CLASS"].astype(str).str.strip().str.lower().map(_CLASSES)
    if cls.isna().any():
        i = int(np.argmax(cls.isna().to_numpy()))
        raise InputError(
            path,
            f"CLASS {gdf['CLASS'].iloc[i]!r} for STAID {ids.iloc[i]} is not Ref or Non-ref",
            f"feature {i}, column CLASS",
        )
    if "LAT_GAGE" in gdf.columns and "LNG_GAGE" in gdf.columns:
        lat = pd.to_numeric(gdf["LAT_GAGE"], errors="coerce").to_numpy(dtype=np.float64)
        lon = pd.to_numeric(gdf["LNG_GAGE"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        pts = to_wgs84(gdf.geometry, path)
        if not (pts.geom_type == "Point").all():
            raise InputError(path, "no LAT_GAGE/LNG_GAGE columns and the geometries are not points")
        lat, lon = pts.y.to_numpy(), pts.x.to_numpy()
    bad = ~np.isfinite(lat) | ~np.isfinite(lon) | (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            path, f"gauge location ({lat[i]}, {lon[i]}) out of range for STAID {ids.iloc[i]}", f"feature {i}"
        )
    return pd.DataFrame(
        {
            "class": cls.to_numpy(),
            "lat": lat,
            "lon": lon,
            "drain_sqkm": pd.to_numeric(gdf["DRAIN_SQKM"], errors="coerce").to_numpy(dtype=np.float64),
            "huc02": gdf["HUC02"].astype(str).str.strip().str.zfill(2).to_numpy(),
            "aggecoregion": gdf["AGGECOREGI"].astype(str).str.strip().to_numpy(),
            "state": gdf["STATE"].astype(str).str.strip().to_numpy(),
        },
        index=pd.Index(ids.to_numpy(), name="STAID"),
    )
