"""EPA ecoregions (Omernik; CEC North America codes): Level III polygons and their Level II / I
parents, read from any vector format geopandas reads, validated and reprojected to EPSG:4326."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj.exceptions import CRSError, ProjError

from synergy_dagster.errors import InputError

CODE_COLUMNS = ("US_L3CODE", "NA_L3CODE", "NA_L2CODE", "NA_L1CODE")
NAME_COLUMNS = ("US_L3NAME", "NA_L3NAME", "NA_L2NAME", "NA_L1NAME")
WGS84 = "EPSG:4326"
# Regions must tile: polygons of different Level III codes may share edges, and simplified layers
# overlap by slivers, but an overlap above this share of the smaller polygon means a site could
# belong to two regions. Polygons with the same code are parts of one region, never an overlap.
MAX_OVERLAP_SHARE = 0.01
_POLYGONAL = ("Polygon", "MultiPolygon")


def read_vector(
    path: str | Path, layer: str | None = None, columns: list[str] | None = None
) -> gpd.GeoDataFrame:
    """Open a vector file (gpkg, shp, geojson ...) with errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(path, "empty file")
    try:
        gdf = gpd.read_file(path, layer=layer, columns=columns)
    except Exception as exc:  # pyogrio raises several driver-specific types; all mean "unreadable"
        raise InputError(path, f"cannot read as a vector data set: {exc}") from exc
    if len(gdf) == 0:
        raise InputError(path, "no features")
    return gdf


def check_crs(gdf: gpd.GeoDataFrame, path: str | Path) -> None:
    """A missing CRS is an error: guessing one would silently misplace every feature."""
    if gdf.crs is None:
        raise InputError(
            path,
            "no coordinate reference system (CRS); add a .prj / define the CRS, "
            "the reader does not guess one",
        )
    # A wrong CRS misplaces every feature just as silently: degrees declared as metres (or the
    # reverse) shows in the coordinate ranges. Any real extent in metres exceeds 180 m somewhere.
    xmin, ymin, xmax, ymax = (float(v) for v in gdf.total_bounds)
    in_degrees = xmin >= -180.0 and xmax <= 180.0 and ymin >= -90.0 and ymax <= 90.0
    if gdf.crs.is_geographic and not in_degrees:
        raise InputError(
            path,
            f"coordinates x {xmin:.6g}..{xmax:.6g}, y {ymin:.6g}..{ymax:.6g} are not degrees, but the "
            f"declared CRS {gdf.crs.to_string()} is geographic: the data look projected; declare their "
            "real CRS",
        )
    if gdf.crs.is_projected and in_degrees and max(xmax - xmin, ymax - ymin) > 0:
        raise InputError(
            path,
            f"coordinates x {xmin:.6g}..{xmax:.6g}, y {ymin:.6g}..{ymax:.6g} look like degrees, but the "
            f"declared CRS {gdf.crs.to_string()} is projected (metres): declare EPSG:4326",
        )


def to_wgs84(gdf: gpd.GeoDataFrame | gpd.GeoSeries, path: str | Path) -> gpd.GeoDataFrame | gpd.GeoSeries:
    """``gdf`` in EPSG:4326; a CRS that PROJ cannot transform (a damaged .prj, a non-Earth
    ellipsoid) is an InputError naming the file, not a pyproj exception."""
    if gdf.crs is not None and gdf.crs.equals(WGS84):
        return gdf
    try:
        return gdf.to_crs(WGS84)
    except (CRSError, ProjError) as exc:
        raise InputError(
            path, f"cannot transform the declared CRS {gdf.crs.name!r} to {WGS84}: {exc}"
        ) from exc


def check_geometries(gdf: gpd.GeoDataFrame, path: str | Path, labels: pd.Series | None = None) -> None:
    """Every geometry present, non-empty and valid; errors name the feature (index and label) and
    shapely's reason."""
    geoms = gdf.geometry.values
    lab = labels.astype(str).to_numpy() if labels is not None else np.asarray(gdf.index.astype(str))
    missing = np.asarray(gdf.geometry.isna()) | np.asarray(shapely.is_empty(geoms))
    if missing.any():
        i = int(np.argmax(missing))
        raise InputError(path, f"feature {i} ({lab[i]}) has no or an empty geometry", f"feature {i}")
    valid = np.asarray(shapely.is_valid(geoms))
    if not valid.all():
        i = int(np.argmax(~valid))
        reason = shapely.is_valid_reason(geoms[i])
        raise InputError(path, f"feature {i} ({lab[i]}) has an invalid geometry: {reason}", f"feature {i}")


def check_polygon_layer(
    gdf: gpd.GeoDataFrame, path: str | Path, codes: pd.Series, max_overlap: float = MAX_OVERLAP_SHARE
) -> None:
    """Every feature a (multi)polygon, and polygons of different codes not overlapping by more than
    ``max_overlap`` of the smaller one's area; errors name both features and codes."""
    types = gdf.geometry.geom_type.to_numpy()
    notpoly = ~np.isin(types, _POLYGONAL)
    if notpoly.any():
        i = int(np.argmax(notpoly))
        raise InputError(
            path,
            f"feature {i} ({codes.iloc[i]}) is a {types[i]}, not a polygon: a region layer needs polygons",
            f"feature {i}",
        )
    geoms = gdf.geometry.values
    lab = codes.to_numpy()
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = (left < right) & (lab[left] != lab[right])
    left, right = left[keep], right[keep]
    if not len(left):
        return
    inter = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    smaller = np.minimum(shapely.area(geoms[left]), shapely.area(geoms[right]))
    share = np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1.0), 0.0)
    if (share > max_overlap).any():
        k = int(np.argmax(share))
        i, j = int(left[k]), int(right[k])
        raise InputError(
            path,
            f"feature {i} ({lab[i]}) and feature {j} ({lab[j]}) overlap by {share[k]:.1%} of the smaller "
            f"one's area (more than {max_overlap:.0%}): regions must not overlap",
            f"features {i} and {j}",
        )


def _code(s: pd.Series) -> pd.Series:
    """Codes as trimmed text (a shapefile may store '8' as a number)."""
    if pd.api.types.is_float_dtype(s):
        s = s.map(lambda v: "" if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
    # fillna first: pandas' string dtype keeps a missing value as NaN through astype(str).
    return s.astype(object).where(s.notna(), "").astype(str).str.strip()


def _code_key(code: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in code.split("."))
    except ValueError:
        return (10**6,)


def read_ecoregions(path: str | Path, layer: str | None = None) -> gpd.GeoDataFrame:
    """Level III ecoregions, one row per NA_L3CODE (polygons sharing a code are dissolved), in
    EPSG:4326 with columns l3, l2, l1, us_l3code, l3_name, l2_name, l1_name, geometry.

    ``us_l3code`` joins the US codes of dissolved polygons with ',' (e.g. "6,85").
    """
    gdf = read_vector(path, layer=layer)
    missing = [c for c in CODE_COLUMNS if c not in gdf.columns]
    if missing:
        raise InputError(
            path,
            f"missing EPA ecoregion code columns {missing}; columns are "
            f"{[c for c in gdf.columns if c != gdf.geometry.name]}",
        )
    check_crs(gdf, path)
    codes = {c: _code(gdf[c]) for c in CODE_COLUMNS}
    for c, s in codes.items():
        empty = (s == "") | (s.str.lower().isin(["nan", "none"]))
        if empty.any():
            i = int(np.argmax(empty.to_numpy()))
            raise InputError(path, f"feature {i} has no {c}", f"feature {i}, column {c}")
    check_geometries(gdf, path, labels=codes["NA_L3CODE"])
    check_polygon_layer(gdf, path, codes["NA_L3CODE"])
    l3, l2, l1 = codes["NA_L3CODE"], codes["NA_L2CODE"], codes["NA_L1CODE"]
    nested = np.array([a.startswith(b + ".") for a, b in zip(l3, l2, strict=True)]) & np.array(
        [a.startswith(b + ".") for a, b in zip(l2, l1, strict=True)]
    )
    if not nested.all():
        i = int(np.argmax(~nested))
        raise InputError(
            path,
            f"codes not nested: NA_L3CODE {l3.iloc[i]!r}, NA_L2CODE {l2.iloc[i]!r}, "
            f"NA_L1CODE {l1.iloc[i]!r} (a level's code must start with its parent's code + '.')",
            f"feature {i}",
        )
    names = {
        c: (gdf[c].astype(str).str.strip() if c in gdf.columns else pd.Series("", index=gdf.index))
        for c in NAME_COLUMNS
    }
    flat = gpd.GeoDataFrame(
        {
            "l3": l3.to_numpy(),
            "l2": l2.to_numpy(),
            "l1": l1.to_numpy(),
            "us_l3code": codes["US_L3CODE"].to_numpy(),
            "l3_name": names["NA_L3NAME"].to_numpy(),
            "l2_name": names["NA_L2NAME"].to_numpy(),
            "l1_name": names["NA_L1NAME"].to_numpy(),
        },
        geometry=gdf.geometry.values,
        crs=gdf.crs,
    )
    parents = flat.groupby("l3")[["l2", "l1"]].nunique()
    clash = parents[(parents["l2"] > 1) | (parents["l1"] > 1)]
    if len(clash):
        raise InputError(path, f"Level III code {clash.index[0]!r} appears with different Level II/I parents")
    out = flat.dissolve(
        by="l3",
        aggfunc={
            "l2": "first",
            "l1": "first",
            "l3_name": "first",
            "l2_name": "first",
            "l1_name": "first",
            "us_l3code": lambda s: ",".join(sorted(set(s), key=_code_key)),
        },
    ).reset_index()
    out = to_wgs84(out, path)
    out = out.iloc[sorted(range(len(out)), key=lambda i: _code_key(out["l3"].iloc[i]))].reset_index(drop=True)
    return out[["l3", "l2", "l1", "us_l3code", "l3_name", "l2_name", "l1_name", "geometry"]]


def dissolve_levels(l3: gpd.GeoDataFrame) -> dict[str, gpd.GeoDataFrame]:
    """{"l3", "l2", "l1"} -> GeoDataFrame(code, name, geometry), dissolving Level III upward."""
    out: dict[str, gpd.GeoDataFrame] = {}
    for level in ("l3", "l2", "l1"):
        name_col = f"{level}_name"
        part = l3[[level, name_col, "geometry"]].rename(columns={level: "code", name_col: "name"})
        diss = part.dissolve(by="code", aggfunc={"name": "first"}).reset_index()
        order = sorted(range(len(diss)), key=lambda i: _code_key(str(diss["code"].iloc[i])))
        out[level] = diss.iloc[order].reset_index(drop=True)[["code", "name", "geometry"]]
    return out
