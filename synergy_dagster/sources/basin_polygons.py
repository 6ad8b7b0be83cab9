"""Basin boundary polygons keyed by gauge id (GeoPackage, shapefile or any format geopandas reads)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from synergy_dagster.errors import InputError
from synergy_dagster.sources.ecoregions import WGS84, check_crs, check_geometries, read_vector

_POLYGONAL = ("Polygon", "MultiPolygon")


def gauge_ids(s: pd.Series) -> pd.Series:
    """Gauge ids as text. Integer ids are zero-padded to 8 digits: USGS ids lose their leading
    zero when a tool stores them as numbers."""
    if pd.api.types.is_integer_dtype(s):
        return s.astype(str).str.zfill(8)
    if pd.api.types.is_float_dtype(s):
        if s.isna().any() or not np.all(np.mod(s.to_numpy(), 1) == 0):
            return s.astype(str)
        return s.astype(np.int64).astype(str).str.zfill(8)
    return s.astype(str).str.strip()


def read_basin_polygons(path: str | Path, id_column: str = "gauge_id") -> gpd.GeoDataFrame:
    """Basin polygons indexed by gauge id (str, index name = ``id_column``), in EPSG:4326.

    Requires a CRS, the id column, unique ids and valid, non-empty (multi)polygons.
    """
    gdf = read_vector(path)
    if id_column not in gdf.columns:
        raise InputError(
            path,
            f"no id column {id_column!r}; columns are {[c for c in gdf.columns if c != gdf.geometry.name]}",
        )
    check_crs(gdf, path)
    ids = gauge_ids(gdf[id_column])
    empty = ids.isin(["", "nan", "None"]).to_numpy()
    if empty.any():
        i = int(np.argmax(empty))
        raise InputError(path, f"feature {i} has no {id_column}", f"feature {i}")
    dup = ids.duplicated()
    if dup.any():
        raise InputError(path, f"duplicate gauge ids {ids[dup].unique()[:5].tolist()}", id_column)
    check_geometries(gdf, path, labels=ids)
    types = gdf.geometry.geom_type.to_numpy()
    notpoly = ~np.isin(types, _POLYGONAL)
    if notpoly.any():
        i = int(np.argmax(notpoly))
        raise InputError(path, f"feature {i} ({ids.iloc[i]}) is a {types[i]}, not a polygon", f"feature {i}")
    out = gdf.drop(columns=[id_column]).set_index(pd.Index(ids.to_numpy(), name=id_column))
    return out.to_crs(WGS84) if not out.crs.equals(WGS84) else out
