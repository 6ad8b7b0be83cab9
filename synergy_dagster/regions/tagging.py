"""Tag sites (SMAP pixels, gauged basins) with their EPA ecoregion codes and sub-region letter.

- Points (pixel centroids, gauge locations): spatial join, predicate ``within``. A point on a
  polygon boundary is within no polygon, so unmatched points are joined again with ``intersects``;
  where a point matches several regions the lowest Level III code (string order) wins, so a point
  on a shared border always goes to the same region.
- Basin polygons: the Level III region covering the largest part of the basin, areas computed in
  the equal-area CONUS Albers projection (EPSG:5070); the winning share is recorded.
- Sites outside every region are dropped and returned in ``TaggingResult.dropped`` with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr

from synergy_dagster.domains import domain_record
from synergy_dagster.errors import InputError
from synergy_dagster.regions.subregions import subregions_of

EQUAL_AREA_CRS = "EPSG:5070"  # CONUS Albers equal area: areas in m2
L3_COLUMNS = ("l3", "l2", "l1", "geometry")
TAGGED_COLUMNS = ("site_id", "lat", "lon", "l1", "l2", "l3", "subregion", "method", "area_share")
DROPPED_COLUMNS = ("site_id", "lat", "lon", "method", "reason")


@dataclass(frozen=True)
class TaggingResult:
    """Tagged sites plus the sites that fell outside every region (never silently lost)."""

    tagged: pd.DataFrame
    dropped: pd.DataFrame

    @property
    def n_input(self) -> int:
        return len(self.tagged) + len(self.dropped)

    @property
    def n_tagged(self) -> int:
        return len(self.tagged)

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)

    def level_counts(self, level: str) -> pd.Series:
        """Sites per code of ``level`` (``l1``, ``l2``, ``l3`` or ``subregion``), largest first."""
        if level not in ("l1", "l2", "l3", "subregion"):
            raise InputError("level", f"unknown level {level!r}; expected l1, l2, l3 or subregion")
        return self.tagged[level].value_counts(dropna=True)

    def counts(self) -> dict[str, int]:
        """Summary: sites in/out and distinct regions per level."""
        out = {"n_input": self.n_input, "n_tagged": self.n_tagged, "n_dropped": self.n_dropped}
        for level in ("l1", "l2", "l3", "subregion"):
            out[f"n_{level}"] = int(self.tagged[level].nunique(dropna=True))
        for method, n in self.tagged["method"].value_counts().items():
            out[f"method_{method}"] = int(n)
        return out


def _check_l3(l3: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    missing = [c for c in L3_COLUMNS if c not in l3.columns]
    if missing:
        raise InputError("ecoregions", f"missing columns {missing}; have {list(l3.columns)}")
    if l3.crs is None:
        raise InputError("ecoregions", "no coordinate reference system (expected EPSG:4326)")
    regions = l3[list(L3_COLUMNS)].copy()
    for c in ("l3", "l2", "l1"):
        regions[c] = regions[c].astype(str).str.strip()
    if regions.crs.to_epsg() != 4326:
        regions = regions.to_crs(4326)
    invalid = ~regions.geometry.is_valid
    if invalid.any():
        # simplified cartographic polygons can self-touch; make_valid keeps their area
        regions.loc[invalid, "geometry"] = shapely.make_valid(regions.geometry[invalid].values)
    return regions.reset_index(drop=True)


def _check_points(sites: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in ("site_id", "lat", "lon") if c not in sites.columns]
    if missing:
        raise InputError(where, f"missing columns {missing}")
    df = pd.DataFrame(
        {
            "site_id": sites["site_id"].astype(str).to_numpy(),
            "lat": pd.to_numeric(sites["lat"], errors="coerce").to_numpy(dtype=float),
            "lon": pd.to_numeric(sites["lon"], errors="coerce").to_numpy(dtype=float),
        }
    )
    dup = df["site_id"].duplicated()
    if dup.any():
        raise InputError(
            where, f"duplicate site ids: {df.loc[dup, 'site_id'].unique()[:5].tolist()}", "site_id"
        )
    return df


def _first_match(joined: pd.DataFrame) -> pd.DataFrame:
    """One region per point: lowest l3 code, then lowest polygon row, so ties are deterministic."""
    joined = joined.sort_values(["_pt", "l3", "index_right"], kind="mergesort")
    return joined.drop_duplicates("_pt", keep="first")


def tag_points(sites: pd.DataFrame, l3: gpd.GeoDataFrame, method: str = "centroid") -> TaggingResult:
    """Tag points (columns site_id, lat, lon in degrees WGS84) with the Level III region holding them.

    ``method`` is recorded per site ("centroid" for pixels, "gauge_point" for basins).
    """
    regions = _check_l3(l3)
    df = _check_points(sites, "sites")
    finite = np.isfinite(df["lat"].to_numpy()) & np.isfinite(df["lon"].to_numpy())
    pts = gpd.GeoDataFrame(
        {"_pt": np.arange(len(df))},
        geometry=gpd.points_from_xy(df["lon"], df["lat"]),
        crs="EPSG:4326",
    )[finite]
    hit = _first_match(gpd.sjoin(pts, regions, how="inner", predicate="within"))
    rest = pts[~pts["_pt"].isin(hit["_pt"])]
    if len(rest):
        # points exactly on a boundary are within no polygon but intersect one or more
        border = _first_match(gpd.sjoin(rest, regions, how="inner", predicate="intersects"))
        hit = pd.concat([hit, border])
    hit = hit.set_index("_pt").sort_index()
    tagged = df.iloc[hit.index.to_numpy()].reset_index(drop=True)
    for c in ("l1", "l2", "l3"):
        tagged[c] = hit[c].to_numpy(dtype=object)
    tagged["subregion"] = subregions_of(tagged["l1"], tagged["l2"])
    tagged["method"] = method
    tagged["area_share"] = np.nan
    out_mask = np.ones(len(df), dtype=bool)
    out_mask[hit.index.to_numpy()] = False
    dropped = df[out_mask].reset_index(drop=True)
    dropped["method"] = method
    dropped["reason"] = np.where(
        np.isfinite(dropped["lat"]) & np.isfinite(dropped["lon"]),
        "outside every ecoregion polygon",
        "missing lat/lon",
    )
    return TaggingResult(tagged[list(TAGGED_COLUMNS)], dropped[list(DROPPED_COLUMNS)])


def tag_basin_polygons(polygons: gpd.GeoDataFrame, l3: gpd.GeoDataFrame) -> pd.DataFrame:
    """Tag each basin polygon (columns gauge_id, geometry) by the Level III region with the largest
    overlap, computed in EPSG:5070. Returns gauge_id, l1, l2, l3, subregion, method
    ("majority_area") and area_share (winning overlap / basin area). Basins overlapping no region
    are absent from the result."""
    if "gauge_id" not in polygons.columns or "geometry" not in polygons.columns:
        raise InputError(
            "basin polygons", f"need columns gauge_id and geometry; have {list(polygons.columns)}"
        )
    if polygons.crs is None:
        raise InputError("basin polygons", "no coordinate reference system")
    ids = polygons["gauge_id"].astype(str)
    if ids.duplicated().any():
        raise InputError(
            "basin polygons",
            f"duplicate gauge ids: {ids[ids.duplicated()].unique()[:5].tolist()}",
            "gauge_id",
        )
    basins = gpd.GeoDataFrame(
        {"gauge_id": ids.to_numpy()}, geometry=polygons.geometry.values, crs=polygons.crs
    )
    basins = basins.to_crs(EQUAL_AREA_CRS)
    invalid = ~basins.geometry.is_valid
    if invalid.any():
        basins.loc[invalid, "geometry"] = shapely.make_valid(basins.geometry[invalid].values)
    regions = _check_l3(l3).to_crs(EQUAL_AREA_CRS)
    basin_area = pd.Series(basins.geometry.area.to_numpy(), index=basins["gauge_id"])
    pieces = gpd.overlay(basins, regions, how="intersection", keep_geom_type=True)
    cols = ["gauge_id", "l1", "l2", "l3", "subregion", "method", "area_share"]
    if pieces.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    pieces["_area"] = pieces.geometry.area
    # several polygons can carry one l3 code: add their pieces before choosing
    area = pieces.groupby(["gauge_id", "l3", "l2", "l1"], as_index=False)["_area"].sum()
    area = area.sort_values(["gauge_id", "_area", "l3"], ascending=[True, False, True], kind="mergesort")
    best = area.drop_duplicates("gauge_id", keep="first").reset_index(drop=True)
    best["area_share"] = (best["_area"] / basin_area.reindex(best["gauge_id"]).to_numpy()).clip(upper=1.0)
    best["subregion"] = subregions_of(best["l1"], best["l2"])
    best["method"] = "majority_area"
    return best[cols]


def _sites_frame(ds_or_df: xr.Dataset | pd.DataFrame) -> pd.DataFrame:
    if isinstance(ds_or_df, xr.Dataset):
        for c in ("site", "lat", "lon"):
            if c not in ds_or_df.coords:
                raise InputError(str(ds_or_df.attrs.get("source", "dataset")), f"missing coordinate {c!r}")
        return pd.DataFrame(
            {
                "site_id": ds_or_df["site"].values.astype(str),
                "lat": ds_or_df["lat"].values.astype(float),
                "lon": ds_or_df["lon"].values.astype(float),
            }
        )
    return _check_points(ds_or_df, "sites")


def tag_sites(
    ds_or_df: xr.Dataset | pd.DataFrame,
    l3: gpd.GeoDataFrame,
    domain: str,
    polygons: gpd.GeoDataFrame | None = None,
) -> TaggingResult:
    """Tag the sites of one domain. Soil-moisture pixels: centroid in polygon. Basins: majority area
    where ``polygons`` holds the basin (method "majority_area"), otherwise the gauge location
    (method "gauge_point"). The method is recorded per site."""
    method = domain_record(domain).tagging_method
    if isinstance(ds_or_df, xr.Dataset) and ds_or_df.attrs.get("domain", domain) != domain:
        raise InputError(
            str(ds_or_df.attrs.get("source", "dataset")),
            f"dataset domain {ds_or_df.attrs.get('domain')!r} differs from requested {domain!r}",
        )
    sites = _sites_frame(ds_or_df)
    if domain == "soil_moisture" or polygons is None:
        return tag_points(sites, l3, method)

    poly_ids = polygons["gauge_id"].astype(str) if "gauge_id" in polygons.columns else None
    if poly_ids is None:
        raise InputError("basin polygons", "missing column gauge_id")
    has_poly = sites["site_id"].isin(set(poly_ids))
    by_area = tag_basin_polygons(polygons[poly_ids.isin(set(sites["site_id"])).to_numpy()], l3)
    poly_sites = sites[has_poly.to_numpy()]
    area_tagged = poly_sites.merge(by_area.rename(columns={"gauge_id": "site_id"}), on="site_id", how="inner")
    area_missed = poly_sites[~poly_sites["site_id"].isin(area_tagged["site_id"])].copy()
    area_missed["method"] = "majority_area"
    area_missed["reason"] = "basin polygon overlaps no ecoregion"
    by_point = tag_points(sites[~has_poly.to_numpy()], l3, method)

    order = {s: i for i, s in enumerate(sites["site_id"])}

    def in_input_order(df: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
        df = df[list(cols)]
        return df.iloc[np.argsort(df["site_id"].map(order).to_numpy(), kind="stable")].reset_index(drop=True)

    parts = [df for df in (area_tagged[list(TAGGED_COLUMNS)], by_point.tagged) if len(df)]
    tagged = pd.concat(parts, ignore_index=True) if parts else by_point.tagged
    dparts = [df for df in (area_missed[list(DROPPED_COLUMNS)], by_point.dropped) if len(df)]
    dropped = pd.concat(dparts, ignore_index=True) if dparts else by_point.dropped
    return TaggingResult(in_input_order(tagged, TAGGED_COLUMNS), in_input_order(dropped, DROPPED_COLUMNS))
