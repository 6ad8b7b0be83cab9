"""Basin boundary polygons keyed by gauge id (GeoPackage, shapefile or any format geopandas reads).

A polygon layer and a site table may spell one gauge differently: Caravan ids carry a subset
prefix (``camels_01022500``), polygon layers usually hold the bare USGS number (``01022500``).
:func:`match_gauge_ids` pairs them, exactly where it can, else on the trailing digits (leading
zeros kept: a lost zero is a different id, see ``check_id_padding``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from pyproj import Geod

from synergy_dagster.errors import InputError
from synergy_dagster.sources.ecoregions import check_crs, check_geometries, read_vector, to_wgs84

_POLYGONAL = ("Polygon", "MultiPolygon")
# A gauge sits at its basin's outlet, on or next to the boundary; digitising and snapping put it a
# few hundred metres off. Kilometres off means the wrong polygon or a wrong gauge location.
GAUGE_TOLERANCE_KM = 5.0
_GEOD = Geod(ellps="WGS84")


def gauge_ids(s: pd.Series) -> pd.Series:
    """Gauge ids as text. Integer ids are zero-padded to 8 digits: USGS ids lose their leading
    zero when a tool stores them as numbers."""
    if pd.api.types.is_integer_dtype(s):
        return s.astype(str).str.zfill(8)
    if pd.api.types.is_float_dtype(s):
        if s.isna().any() or not np.all(np.mod(s.to_numpy(), 1) == 0):
            return s.astype(str)
        return s.astype(np.int64).astype(str).str.zfill(8)
    # A missing cell is "" (never the text "nan"/"<NA>"), so check_ids_present refuses it.
    return s.astype(object).where(s.notna(), "").astype(str).str.strip()


def check_ids_present(ids: pd.Series, path: str | Path, column: str) -> None:
    """Every feature names its gauge: an empty id cell is an InputError naming the feature."""
    empty = ids.isin(["", "nan", "None", "<NA>"]).to_numpy()
    if empty.any():
        i = int(np.argmax(empty))
        raise InputError(path, f"feature {i} has no {column}", f"feature {i}")


def _digits(gid: str) -> str | None:
    m = re.search(r"(\d+)$", gid.strip())
    return m.group(1) if m else None


def match_gauge_ids(polygon_ids: Iterable[str], site_ids: Iterable[str]) -> dict[str, str]:
    """polygon id -> site id for the polygons that name a site: the same id, else the same trailing
    digits (``01022500`` <-> ``camels_01022500``) where exactly one site and one polygon carry
    them. Polygons of no site are left out."""
    sites = [str(s) for s in site_ids]
    polys = [str(p) for p in polygon_ids]
    exact = set(sites) & set(polys)
    out = {p: p for p in polys if p in exact}
    by_digits: dict[str, list[str]] = {}
    for s in sites:
        if s not in exact and (d := _digits(s)) is not None:
            by_digits.setdefault(d, []).append(s)
    poly_digits: dict[str, list[str]] = {}
    for p in polys:
        if p not in exact and (d := _digits(p)) is not None:
            poly_digits.setdefault(d, []).append(p)
    for d, ps in poly_digits.items():
        cand = by_digits.get(d, [])
        if len(ps) == 1 and len(cand) == 1:  # ambiguous digits pair nothing rather than guess
            out[ps[0]] = cand[0]
    return out


def check_gauges_in_basins(
    polygons: gpd.GeoDataFrame,
    gauges: pd.DataFrame,
    source: str | Path,
    tolerance_km: float = GAUGE_TOLERANCE_KM,
) -> None:
    """Each gauge point (``gauges``: lat, lon indexed by gauge id) within ``tolerance_km`` of its own
    basin polygon (``polygons`` in EPSG:4326, indexed by gauge id); gauges without a polygon are
    skipped. Ids are paired by :func:`match_gauge_ids` (``camels_01022500`` is polygon
    ``01022500``). The distance is geodesic from the point to the nearest point of the polygon."""
    pairs = match_gauge_ids(polygons.index.astype(str), gauges.index.astype(str))
    common = list(pairs)
    if not common:
        return
    gauges = gauges.rename(index=str).loc[[pairs[p] for p in common]].set_axis(common)
    pts = shapely.points(
        gauges.loc[common, "lon"].to_numpy(dtype=np.float64),
        gauges.loc[common, "lat"].to_numpy(dtype=np.float64),
    )
    geoms = polygons.loc[common].geometry.values
    inside = np.asarray(shapely.intersects(geoms, pts))
    if inside.all():
        return
    near = shapely.shortest_line(pts, geoms)  # point -> nearest point of the polygon, in degrees
    xy = shapely.get_coordinates(near).reshape(-1, 2, 2)
    _, _, dist = _GEOD.inv(xy[:, 0, 0], xy[:, 0, 1], xy[:, 1, 0], xy[:, 1, 1])
    km = np.where(inside, 0.0, np.asarray(dist) / 1000.0)
    far = km > tolerance_km
    if far.any():
        i = int(np.argmax(far))
        g = common[i]
        named = repr(pairs[g]) + ("" if pairs[g] == g else f" (polygon {g!r})")
        raise InputError(
            source,
            f"gauge {named} at lat {float(gauges.loc[g, 'lat']):g}, lon {float(gauges.loc[g, 'lon']):g} lies "
            f"{km[i]:.1f} km outside its basin polygon (tolerance {tolerance_km:g} km): wrong polygon or "
            f"wrong gauge location ({int(far.sum())} such gauge{'s' * (int(far.sum()) != 1)})",
            f"gauge {g}",
        )


def read_basin_polygons(
    path: str | Path,
    id_column: str = "gauge_id",
    *,
    gauges: pd.DataFrame | None = None,
    tolerance_km: float = GAUGE_TOLERANCE_KM,
) -> gpd.GeoDataFrame:
    """Basin polygons indexed by gauge id (str, index name = ``id_column``), in EPSG:4326.

    Requires a CRS, the id column, unique ids and valid, non-empty (multi)polygons. With
    ``gauges`` (lat, lon indexed by gauge id, e.g. a site dataset's coords), each gauge must lie
    within ``tolerance_km`` of its own polygon (:func:`check_gauges_in_basins`).
    """
    gdf = read_vector(path)
    if id_column not in gdf.columns:
        raise InputError(
            path,
            f"no id column {id_column!r}; columns are {[c for c in gdf.columns if c != gdf.geometry.name]}",
        )
    check_crs(gdf, path)
    ids = gauge_ids(gdf[id_column])
    check_ids_present(ids, path, id_column)
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
    out = to_wgs84(out, path)
    if gauges is not None:
        check_gauges_in_basins(out, gauges, path, tolerance_km)
    return out


def read_site_polygons(
    path: str | Path, ds: xr.Dataset, tolerance_km: float = GAUGE_TOLERANCE_KM
) -> gpd.GeoDataFrame:
    """The basin polygons for a site dataset (``raw_basins``' cache): every gauge point of ``ds``
    checked against its own polygon (:func:`read_basin_polygons` with ``gauges=``), and polygon
    ids renamed to the dataset's site ids (:func:`match_gauge_ids`), so tagging by basin area finds
    ``camels_01022500``'s polygon ``01022500``. Polygons of no site keep their ids."""
    sites = pd.DataFrame(
        {"lat": ds["lat"].values, "lon": ds["lon"].values}, index=pd.Index(ds["site"].values.astype(str))
    )
    polygons = read_basin_polygons(path, gauges=sites, tolerance_km=tolerance_km)
    pairs = match_gauge_ids(polygons.index, sites.index)
    ids = [pairs.get(p, p) for p in polygons.index]
    return polygons.set_axis(pd.Index(ids, name=polygons.index.name))
