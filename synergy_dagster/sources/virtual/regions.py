"""A virtual three-level ecoregion hierarchy over a CONUS-like lon/lat box, with EPA-style codes.

The box (-125..-67 E, 25..49 N) is rasterised at ``res`` degrees. Level II regions are power-diagram
(weighted Voronoi) cells of hand-placed seeds that sit roughly where the real EPA Level II regions
are (several seeds per region give elongated shapes such as the Western Cordillera). Each Level II
region is split into its Level III regions by a second power diagram whose seeds are spread over
that Level II region by a few Lloyd (k-means) steps; Level I regions are unions of Level II ones.
Nesting is therefore exact by construction. Before assignment the coordinates are warped by a
smooth, small displacement field so borders are irregular but regions stay contiguous.

Polygons are unions of whole raster cells whose edges are exact binary fractions, so the Level III
polygons tile the box without gaps or overlaps and are valid. The codes cover the paper's 18
sub-regions (Level I 5-15, Level II 5.x ... 15.x) and its ROI Level III codes; ROI regions get a
larger power weight so that they hold enough sites at the default sizes, as their real counterparts
were chosen for being large / well gauged. Names of Level I and II are the EPA names; Level III
names are synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from synergy_dagster.config import PAPER_ROIS
from synergy_dagster.io_utils import atomic_path

BOX: tuple[float, float, float, float] = (-125.0, 25.0, -67.0, 49.0)  # lon0, lat0, lon1, lat1
COS_LAT = float(np.cos(np.deg2rad(37.0)))  # east-west shrink so distances are roughly isotropic

ROI_SOIL_MOISTURE: tuple[str, ...] = PAPER_ROIS["soil_moisture"]
ROI_STREAMFLOW: tuple[str, ...] = PAPER_ROIS["streamflow"]

L1_NAMES: dict[str, str] = {
    "5": "NORTHERN FORESTS",
    "6": "NORTHWESTERN FORESTED MOUNTAINS",
    "7": "MARINE WEST COAST FOREST",
    "8": "EASTERN TEMPERATE FORESTS",
    "9": "GREAT PLAINS",
    "10": "NORTH AMERICAN DESERTS",
    "11": "MEDITERRANEAN CALIFORNIA",
    "12": "SOUTHERN SEMI-ARID HIGHLANDS",
    "13": "TEMPERATE SIERRAS",
    "14": "TROPICAL DRY FORESTS",
    "15": "TROPICAL WET FORESTS",
}


@dataclass(frozen=True)
class L2Spec:
    """A Level II region: code, name, seed points (lon, lat) and its Level III codes."""

    code: str
    name: str
    seeds: tuple[tuple[float, float], ...]
    l3: tuple[str, ...]


def _l3(l2: str, *nums: int) -> tuple[str, ...]:
    return tuple(f"{l2}.{n}" for n in nums)


L2_SPECS: tuple[L2Spec, ...] = (
    L2Spec("5.2", "MIXED WOOD SHIELD", ((-91.5, 47.6),), _l3("5.2", 1, 2)),
    L2Spec("5.3", "ATLANTIC HIGHLANDS", ((-72.5, 44.2), (-69.5, 46.2)), _l3("5.3", 1, 3)),
    L2Spec(
        "6.2",
        "WESTERN CORDILLERA",
        (
            (-121.4, 45.6),
            (-115.6, 47.2),
            (-110.6, 44.6),
            (-106.3, 39.0),
            (-119.4, 38.2),
            (-117.8, 44.6),
            (-111.3, 40.2),
        ),
        _l3("6.2", 3, 4, 5, 7, 9, 10, 12, 13, 14, 15),
    ),
    L2Spec("7.1", "MARINE WEST COAST FOREST", ((-123.9, 47.2), (-123.6, 44.2)), _l3("7.1", 7, 8, 9)),
    L2Spec(
        "8.1",
        "MIXED WOOD PLAINS",
        ((-76.5, 42.8), (-84.5, 43.6), (-89.8, 44.6)),
        _l3("8.1", 1, 3, 4, 7, 8, 10),
    ),
    L2Spec("8.2", "CENTRAL USA PLAINS", ((-88.3, 41.0), (-84.0, 40.4)), _l3("8.2", 1, 2, 3, 4)),
    L2Spec(
        "8.3",
        "SOUTHEASTERN USA PLAINS",
        ((-88.6, 33.6), (-82.6, 33.6), (-77.6, 37.6), (-94.0, 32.2), (-79.0, 33.0)),
        _l3("8.3", 1, 2, 3, 4, 5, 7),
    ),
    L2Spec(
        "8.4",
        "OZARK/OUACHITA-APPALACHIAN FORESTS",
        ((-82.0, 37.6), (-93.0, 36.0), (-85.6, 35.4), (-78.6, 40.4)),
        _l3("8.4", 1, 2, 3, 4, 5, 9),
    ),
    L2Spec(
        "8.5",
        "MISSISSIPPI ALLUVIAL AND SOUTHEAST USA COASTAL PLAINS",
        ((-90.8, 33.6), (-81.6, 30.0), (-76.6, 35.4), (-90.6, 29.6)),
        _l3("8.5", 1, 2, 3),
    ),
    L2Spec("9.2", "TEMPERATE PRAIRIES", ((-96.6, 44.6), (-94.6, 41.4)), _l3("9.2", 1, 2, 3, 4)),
    L2Spec("9.3", "WEST-CENTRAL SEMI-ARID PRAIRIES", ((-104.2, 46.2), (-99.6, 47.6)), _l3("9.3", 1, 3, 4)),
    L2Spec(
        "9.4",
        "SOUTH CENTRAL SEMI-ARID PRAIRIES",
        ((-100.6, 40.0), (-99.6, 35.0), (-103.6, 33.6), (-96.6, 37.0)),
        _l3("9.4", 1, 2, 3, 4, 5, 6),
    ),
    L2Spec("9.5", "TEXAS-LOUISIANA COASTAL PLAIN", ((-95.6, 29.2),), _l3("9.5", 1)),
    L2Spec("9.6", "TAMAULIPAS-TEXAS SEMIARID PLAIN", ((-99.0, 27.4),), _l3("9.6", 1)),
    L2Spec(
        "10.1",
        "COLD DESERTS",
        ((-116.0, 41.0), (-112.0, 41.8), (-108.6, 42.0), (-119.6, 46.4), (-110.0, 37.4)),
        _l3("10.1", 2, 3, 4, 5, 6, 8),
    ),
    L2Spec("10.2", "WARM DESERTS", ((-115.6, 34.4), (-112.0, 32.4), (-105.6, 31.0)), _l3("10.2", 1, 2, 4)),
    L2Spec("11.1", "MEDITERRANEAN CALIFORNIA", ((-121.4, 37.6), (-118.2, 34.0)), _l3("11.1", 1, 2, 3)),
    L2Spec("12.1", "WESTERN SIERRA MADRE PIEDMONT", ((-109.4, 31.2),), _l3("12.1", 1)),
    L2Spec("13.1", "UPPER GILA MOUNTAINS", ((-110.4, 34.4),), _l3("13.1", 1)),
    L2Spec("14.1", "DRY GULF OF MEXICO COASTAL PLAINS AND HILLS", ((-98.0, 25.4),), _l3("14.1", 1)),
    L2Spec("15.4", "EVERGLADES", ((-80.8, 25.6),), _l3("15.4", 1)),
)

# Extra power weight (deg^2) of seeds: ROI Level III regions get bigger, tiny regions smaller.
_L2_WEIGHT: dict[str, float] = {
    "14.1": -4.0,
    "15.4": -7.0,
    "12.1": -4.0,
    "13.1": -1.0,
    "9.6": -1.0,
    "8.5": -3.0,
    "8.3": 3.0,
    "11.1": -3.0,
    "8.2": 2.0,
    "10.2": -2.0,
}
_ROI_L3_WEIGHT = 10.0
_L3_WEIGHT: dict[str, float] = {"9.4.1": 15.0, "8.2.4": 13.0, "8.4.1": 13.0, "8.4.2": 13.0}


@dataclass
class RegionMap:
    """The rasterised hierarchy: ``label[iy, ix]`` indexes rows of ``table`` (one row per Level III)."""

    res: float
    label: np.ndarray  # (ny, nx) int, row index into table
    table: pd.DataFrame  # US_L3CODE, US_L3NAME, NA_L3CODE, NA_L3NAME, NA_L2CODE, ..., NA_L1NAME

    @property
    def shape(self) -> tuple[int, int]:
        return self.label.shape  # type: ignore[return-value]

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(lon, lat) of every raster cell centre, each (ny, nx)."""
        ny, nx = self.shape
        lon = BOX[0] + (np.arange(nx) + 0.5) * self.res
        lat = BOX[1] + (np.arange(ny) + 0.5) * self.res
        return np.meshgrid(lon, lat)

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Row index (Level III) of each point; points outside the box are clamped to its edge."""
        ny, nx = self.shape
        ix = np.clip(np.floor((np.asarray(lon) - BOX[0]) / self.res).astype(np.int64), 0, nx - 1)
        iy = np.clip(np.floor((np.asarray(lat) - BOX[1]) / self.res).astype(np.int64), 0, ny - 1)
        return self.label[iy, ix]

    def codes(self, level: int) -> np.ndarray:
        """Codes of every table row at level 1, 2 or 3 (NA codes)."""
        return self.table[f"NA_L{level}CODE"].to_numpy(dtype=str)


def _warp(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    amp: float = 0.55,
    wavelength: float = 7.0,
    n: int = 6,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth displacement (amp * 2pi / wavelength < 1 keeps the warp one-to-one, so regions stay whole)."""
    dx = np.zeros_like(x)
    dy = np.zeros_like(y)
    k = 2.0 * np.pi / wavelength
    for _ in range(n):  # a handful of sinusoids, not a per-sample loop
        th, ph1, ph2 = rng.uniform(0.0, 2.0 * np.pi, 3)
        arg = k * (np.cos(th) * x + np.sin(th) * y)
        dx += np.sin(arg + ph1)
        dy += np.sin(arg + ph2)
    s = amp / np.sqrt(n / 2.0)
    return x + s * dx, y + s * dy


def _power_assign(
    px: np.ndarray, py: np.ndarray, sx: np.ndarray, sy: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """Index of the seed with the smallest power distance d^2 - w for each point (vectorised)."""
    d2 = (px[:, None] - sx[None, :]) ** 2 + (py[:, None] - sy[None, :]) ** 2 - w[None, :]
    return np.argmin(d2, axis=1)


def _spread_seeds(
    px: np.ndarray, py: np.ndarray, k: int, rng: np.random.Generator, iters: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """k seeds spread over the given points: random start, then a few Lloyd (k-means) steps."""
    if k >= len(px):
        idx = np.arange(len(px))[:k]
        return px[idx].copy(), py[idx].copy()
    idx = rng.choice(len(px), size=k, replace=False)
    sx, sy = px[idx].copy(), py[idx].copy()
    for _ in range(iters):
        lab = _power_assign(px, py, sx, sy, np.zeros(k))
        cnt = np.bincount(lab, minlength=k)
        ok = cnt > 0
        sx[ok] = (np.bincount(lab, weights=px, minlength=k) / np.maximum(cnt, 1))[ok]
        sy[ok] = (np.bincount(lab, weights=py, minlength=k) / np.maximum(cnt, 1))[ok]
    # order seeds west -> east then south -> north so codes land in a stable, map-like order
    order = np.lexsort((sy, np.round(sx, 6)))
    return sx[order], sy[order]


def build_regions(seed: int = 7, res: float = 0.25) -> RegionMap:
    """Build the raster hierarchy (deterministic for a given ``seed`` and ``res``)."""
    nx = round((BOX[2] - BOX[0]) / res)
    ny = round((BOX[3] - BOX[1]) / res)
    if not (np.isclose(nx * res, BOX[2] - BOX[0]) and np.isclose(ny * res, BOX[3] - BOX[1])):
        raise ValueError(f"res {res} does not divide the box {BOX}")
    rng = np.random.default_rng([seed, 20220101])
    lon = BOX[0] + (np.arange(nx) + 0.5) * res
    lat = BOX[1] + (np.arange(ny) + 0.5) * res
    glon, glat = np.meshgrid(lon, lat)
    x, y = _warp(glon.ravel() * COS_LAT, glat.ravel(), rng)

    # Level II: power diagram over all seeds of all Level II regions
    sx, sy, sw, owner = [], [], [], []
    for j, spec in enumerate(L2_SPECS):
        for lo, la in spec.seeds:
            sx.append(lo * COS_LAT)
            sy.append(la)
            sw.append(_L2_WEIGHT.get(spec.code, 0.0))
            owner.append(j)
    l2 = np.asarray(owner)[_power_assign(x, y, np.asarray(sx), np.asarray(sy), np.asarray(sw))]

    label = np.full(x.shape, -1, dtype=np.int64)
    rows = []
    for j, spec in enumerate(L2_SPECS):  # one step per Level II region (21), vectorised inside
        m = np.flatnonzero(l2 == j)
        if len(m) == 0:
            raise ValueError(f"Level II region {spec.code} got no raster cells")
        k = len(spec.l3)
        cx, cy = _spread_seeds(x[m], y[m], k, rng)
        w = np.array(
            [
                _L3_WEIGHT.get(c, _ROI_L3_WEIGHT if (c in ROI_SOIL_MOISTURE or c in ROI_STREAMFLOW) else 0.0)
                for c in spec.l3
            ]
        )
        sub = _power_assign(x[m], y[m], cx, cy, w)
        for i in range(k):
            label[m[sub == i]] = len(rows) + i
        l1 = spec.code.split(".")[0]
        rows.extend(
            {
                "NA_L3CODE": c,
                "NA_L2CODE": spec.code,
                "NA_L2NAME": spec.name,
                "NA_L1CODE": l1,
                "NA_L1NAME": L1_NAMES[l1],
            }
            for c in spec.l3
        )
    table = pd.DataFrame(rows)
    table.insert(0, "US_L3CODE", [str(i + 1) for i in range(len(table))])
    names = [
        f"Virtual {n.title()} {c.rsplit('.', 1)[1]}"
        for n, c in zip(table["NA_L2NAME"], table["NA_L3CODE"], strict=True)
    ]
    table.insert(1, "US_L3NAME", names)
    table.insert(3, "NA_L3NAME", names)
    table = table[
        [
            "US_L3CODE",
            "US_L3NAME",
            "NA_L3CODE",
            "NA_L3NAME",
            "NA_L2CODE",
            "NA_L2NAME",
            "NA_L1CODE",
            "NA_L1NAME",
        ]
    ]
    counts = np.bincount(label, minlength=len(table))
    if (counts == 0).any():
        raise ValueError(f"Level III regions without cells: {table['NA_L3CODE'][counts == 0].tolist()}")
    return RegionMap(res=res, label=label.reshape(ny, nx), table=table)


def region_polygons(rmap: RegionMap) -> gpd.GeoDataFrame:
    """Level III polygons (MultiPolygon, EPSG:4326) as unions of their raster cells."""
    ny, nx = rmap.shape
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny))
    x0 = BOX[0] + ix.ravel() * rmap.res
    y0 = BOX[1] + iy.ravel() * rmap.res
    cells = shapely.box(x0, y0, x0 + rmap.res, y0 + rmap.res)
    lab = rmap.label.ravel()
    order = np.argsort(lab, kind="stable")
    bounds = np.searchsorted(lab[order], np.arange(len(rmap.table) + 1))
    geoms = []
    for i in range(len(rmap.table)):  # one union per region
        g = shapely.coverage_union_all(cells[order[bounds[i] : bounds[i + 1]]])
        g = shapely.make_valid(g) if not shapely.is_valid(g) else g
        if g.geom_type == "Polygon":
            g = shapely.MultiPolygon([g])
        geoms.append(g)
    return gpd.GeoDataFrame(rmap.table.copy(), geometry=geoms, crs="EPSG:4326")


def write_ecoregions_gpkg(rmap: RegionMap, path: str | Path) -> Path:
    """Write the Level III polygons as GeoPackage layer ``us_eco_l3`` (EPA column names), atomically."""
    path = Path(path)
    gdf = region_polygons(rmap)
    with atomic_path(path) as tmp:
        gdf.to_file(tmp, layer="us_eco_l3", driver="GPKG")
    return path
