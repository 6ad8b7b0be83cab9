"""The embedded default data: a "virtual CONUS" with SMAP-like pixels and gauged basins.

:func:`generate_virtual_conus` writes, under ``out_dir``, the same file formats the real data come in
(so the same readers serve both):

- ``ecoregions/us_eco_l3.gpkg`` — a three-level virtual ecoregion map (:mod:`.virtual_regions`);
- ``smap/virtual_pixels.nc`` — CF NetCDF (pixel, time): target ``SMAP_AM`` (NaN between
  overpasses), forcings ``APCP``, ``TMP``, ``PET``, ``DSWRF`` and static attributes;
- ``caravan/`` — Caravan layout: ``timeseries/csv/virtual/<gauge_id>.csv`` and
  ``attributes/virtual/attributes_{other,caravan,hydroatlas}_virtual.csv``;
- ``basins/basin_polygons.gpkg`` — a polygon around each gauge, sized by its area;
- ``gages2/gauges.csv`` — a GAGES-II-like gauge table (STAID, CLASS, AGGECOREGI, DRAIN_SQKM, HUC02,
  LAT_GAGE, LNG_GAGE, STATE, gauge_id), and the same as points in ``gages2/gauges.gpkg``;
- ``manifest.json`` — config, seed, generator version and every file with its SHA-256.

Modelling choices (so that the data do not decide the study's answer):

- Weather is continuous in space (:mod:`.virtual_weather`); it knows nothing of the regions.
- Land parameters = smooth functions of climate and terrain + nested random effects
  ``sd1 * e(L1) + sd2 * e(L2) + sd3 * e(L3)`` + a site effect, with default sds (0.35, 0.25, 0.2)
  and 0.3: regions differ moderately (neither identical nor unrelated), and a site's parameters are
  only partly predictable from its region.
- Some parameters are observable through noisy attributes (texture, bulk density, capacity, NDVI,
  elevation, slope, forest/crop share, karst share); others are LATENT and never written
  (:data:`LATENT_PIXEL_PARAMS`, :data:`LATENT_BASIN_PARAMS`: root-zone depth, drainage and
  exchange rates, groundwater recession, percolation, snow parameters, soil store partly).
  A global model can learn how attributes map to behaviour; a local model can absorb its region's
  latent offsets. Which wins is left to the experiment.
- Observations: SMAP_AM = surface moisture (start of day) + regional retrieval bias + noise
  (sd ``smap_noise_sd``), on overpass days only (gaps of 2 and 3 days in swath-like stripes) with
  ~4 % random drop-outs, clipped to [0.02, porosity]; optional frozen-soil masking. Streamflow =
  model flow with ~8 % multiplicative noise; non-reference gauges are regulated (reservoir +
  withdrawal); a share of gauges miss whole months or start late.
- Sites: pixels on a jittered equal-area grid; gauges denser in the east, with floors so each
  sub-region the paper used for streamflow and each streamflow ROI holds gauges at the default size,
  and few gauges in the sub-regions the paper dropped (L, N, P, R). Sampling decides only counts,
  never behaviour.
- Basin forcing and parameters are taken at the basin centroid; the region effects use the Level III
  region at the centroid (the majority region for all but the straddling basins).

Determinism: per-site randomness is a counter-based hash of (seed, stream, site index, day), shared
random fields are drawn once from the seed, so chunk sizes do not change any value. CSVs are
byte-identical for a seed; the NetCDF is written with fixed encodings and no timestamps, and the
GeoPackages with a fixed GDAL timestamp (``OGR_CURRENT_DATE``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import netCDF4
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyogrio
import shapely

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.io_utils import atomic_path, atomic_write_bytes, atomic_write_text, file_sha256
from synergy_dagster.sources import virtual_hydrology as hyd
from synergy_dagster.sources import virtual_regions as vr
from synergy_dagster.sources import virtual_weather as vw

GENERATOR_VERSION = "1.0.0"
SUBSET = "virtual"
PIXEL_KEY_BASE = 1 << 40  # pixel i has site key PIXEL_KEY_BASE + i, basin j has BASIN_KEY_BASE + j
BASIN_KEY_BASE = 2 << 40
FIXED_GPKG_TIME = "2000-01-01T00:00:00.000Z"

LATENT_PIXEL_PARAMS: tuple[str, ...] = (
    "z2",
    "k_perc",
    "k_exch",
    "k_drain",
    "runoff_coef",
    "ddf",
    "t_snow",
    "smap_bias",
)
LATENT_BASIN_PARAMS: tuple[str, ...] = (
    "fc",
    "beta",
    "lp",
    "k0",
    "k1",
    "k2",
    "uzl",
    "perc",
    "ddf",
    "t_snow",
    "kr",
)
PIXEL_STATICS: dict[str, str] = {
    "Sand": "1",
    "Clay": "1",
    "Silt": "1",
    "Bulk": "g cm-3",
    "Capa": "m3 m-3",
    "NDVI": "1",
    "elevation": "m",
}
PIXEL_DYNAMICS: dict[str, tuple[str, str]] = {
    "APCP": ("mm d-1", "daily total precipitation"),
    "TMP": ("degC", "daily mean 2 m air temperature"),
    "PET": ("mm d-1", "potential evapotranspiration (Hamon)"),
    "DSWRF": ("W m-2", "daily mean downward shortwave radiation"),
}
HYDROATLAS_COLUMNS: dict[str, str] = {
    "ele_mt_sav": "mean elevation, m",
    "slp_dg_sav": "mean slope, degrees x 10",
    "cly_pc_sav": "clay, %",
    "snd_pc_sav": "sand, %",
    "slt_pc_sav": "silt, %",
    "for_pc_sse": "forest cover, %",
    "crp_pc_sse": "cropland, %",
    "kar_pc_sse": "karst area, %",
}
CLIMATE_COLUMNS: tuple[str, ...] = (
    "p_mean",
    "pet_mean",
    "aridity",
    "frac_snow",
    "moisture_index",
    "seasonality",
    "high_prec_freq",
    "high_prec_dur",
    "low_prec_freq",
    "low_prec_dur",
)


@dataclass
class VirtualConusConfig:
    """Size, periods and knobs of the virtual CONUS. Validated on creation (ConfigError names the field)."""

    seed: int = 42
    n_pixels: int = 1200
    n_basins: int = 300
    pixel_start: str = "2015-04-01"
    pixel_end: str = "2017-03-31"
    basin_start: str = "2001-10-01"
    basin_end: str = "2009-09-30"
    pixel_chunk: int = 5000  # pixels simulated and written at a time (bounds memory)
    basin_chunk: int = 500
    region_seed: int = 7  # the ecoregion map; kept apart from ``seed`` so the map is stable
    region_res: float = 0.25  # degrees; must divide the box (58 x 24 degrees)
    spinup_days: int = 365
    smap_noise_sd: float = 0.03
    smap_mask_frozen: bool = False  # real SMAP drops frozen-soil days; off by default (keeps winters)
    region_effect_sd: tuple[float, float, float] = (0.35, 0.25, 0.2)  # Level I, II, III
    site_effect_sd: float = 0.3
    frac_gappy_basins: float = 0.25  # share of gauges with missing months
    frac_nonref: float = 0.15  # share of gauges classed Non-ref (regulated)
    q_noise_sd: float = 0.08

    def __post_init__(self) -> None:
        self.region_effect_sd = tuple(float(v) for v in self.region_effect_sd)  # type: ignore[assignment]
        for name in ("n_pixels", "n_basins", "pixel_chunk", "basin_chunk"):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"virtual.{name}", f"must be a positive integer, got {v!r}")
        if not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise ConfigError("virtual.seed", f"must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.region_seed, int | np.integer) or self.region_seed < 0:
            raise ConfigError(
                "virtual.region_seed", f"must be a non-negative integer, got {self.region_seed!r}"
            )
        if self.spinup_days < 0:
            raise ConfigError("virtual.spinup_days", f"must be >= 0, got {self.spinup_days}")
        for kind in ("pixel", "basin"):
            s, e = getattr(self, f"{kind}_start"), getattr(self, f"{kind}_end")
            try:
                ts, te = pd.Timestamp(s), pd.Timestamp(e)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"virtual.{kind}_start/{kind}_end", f"not a date: {exc}") from exc
            if te < ts + pd.Timedelta(days=29):
                raise ConfigError(
                    f"virtual.{kind}_end", f"{e} must be at least 30 days after {kind}_start {s}"
                )
        nx, ny = (vr.BOX[2] - vr.BOX[0]) / self.region_res, (vr.BOX[3] - vr.BOX[1]) / self.region_res
        if self.region_res <= 0 or not (np.isclose(nx, round(nx)) and np.isclose(ny, round(ny))):
            raise ConfigError(
                "virtual.region_res", f"{self.region_res} must be positive and divide 58 and 24 degrees"
            )
        if not 0.0 <= self.smap_noise_sd <= 0.2:
            raise ConfigError("virtual.smap_noise_sd", f"must be in [0, 0.2], got {self.smap_noise_sd}")
        if not 0.0 <= self.q_noise_sd <= 1.0:
            raise ConfigError("virtual.q_noise_sd", f"must be in [0, 1], got {self.q_noise_sd}")
        if len(self.region_effect_sd) != 3 or any(v < 0 for v in self.region_effect_sd):
            raise ConfigError(
                "virtual.region_effect_sd", "must be three non-negative numbers (Level I, II, III)"
            )
        if self.site_effect_sd < 0:
            raise ConfigError("virtual.site_effect_sd", f"must be >= 0, got {self.site_effect_sd}")
        for name in ("frac_gappy_basins", "frac_nonref"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"virtual.{name}", f"must be in [0, 1], got {getattr(self, name)}")

    @property
    def pixel_dates(self) -> pd.DatetimeIndex:
        return pd.date_range(self.pixel_start, self.pixel_end, freq="D")

    @property
    def basin_dates(self) -> pd.DatetimeIndex:
        return pd.date_range(self.basin_start, self.basin_end, freq="D")


# --------------------------------------------------------------------------- random effects


def _code_key(code: str) -> int:
    return zlib.crc32(code.encode("ascii"))


def region_effects(rmap: vr.RegionMap, seed: int, stream: int, sds: tuple[float, float, float]) -> np.ndarray:
    """Nested effect per Level III row: sd1 * e(L1) + sd2 * e(L2) + sd3 * e(L3), e ~ N(0, 1) per code."""
    total = np.zeros(len(rmap.table))
    for level, sd in zip((1, 2, 3), sds, strict=True):
        keys = np.array([_code_key(c) for c in rmap.codes(level)], dtype=np.int64)
        total += sd * vw.hash_normal(seed, stream, level, keys)
    return total


def site_effects(
    label: np.ndarray, keys: np.ndarray, rmap: vr.RegionMap, cfg: VirtualConusConfig, stream: int
) -> np.ndarray:
    """Regional + site-level effect (about N(0, 0.56^2) with the defaults) of one parameter."""
    reg = region_effects(rmap, cfg.seed, stream, cfg.region_effect_sd)
    return reg[label] + cfg.site_effect_sd * vw.hash_normal(cfg.seed, stream, 99, keys)


def _noise(cfg: VirtualConusConfig, stream: int, keys: np.ndarray) -> np.ndarray:
    return vw.hash_normal(cfg.seed, stream, 7, keys)


# --------------------------------------------------------------------------- land surface


def texture(
    lon: np.ndarray, lat: np.ndarray, eff_sand: np.ndarray, eff_clay: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sand and clay fractions: sandy dry west and coastal plains, regional and site effects."""
    east = vw.sigmoid((lon + 97.0) / 4.0)
    coastal = vw.sigmoid((31.5 - lat) / 1.2) * vw.sigmoid((lon + 97.0) / 2.0)
    ls = (
        -0.5
        + 0.7 * (1.0 - east)
        + 0.9 * coastal
        + 0.45 * vw.static_field(lon, lat, seed, 31, 4.0)
        + 0.8 * eff_sand
    )
    sand = 0.05 + 0.85 * vw.sigmoid(ls)
    lc = -0.6 + 0.35 * vw.static_field(lon, lat, seed, 32, 4.0) + 0.8 * eff_clay
    clay = (1.0 - sand) * 0.75 * vw.sigmoid(lc)
    return sand, clay


def wetness_index(lon: np.ndarray, lat: np.ndarray, elev_km: np.ndarray, seed: int) -> np.ndarray:
    """log(P / PET) of the climate normals (annual PET from Hamon at the mean temperature)."""
    c = vw.climate_normals(lon, lat, elev_km, seed)
    pet_ann = 365.25 * vw.hamon_pet(np.maximum(c["t_mean"], -5.0), np.full(len(lon), 12.0)) * c["pet_factor"]
    return np.log(c["p_ann"] / np.maximum(pet_ann, 50.0))


@dataclass
class PixelSites:
    lon: np.ndarray
    lat: np.ndarray
    label: np.ndarray
    params: hyd.BucketParams
    smap_bias: np.ndarray
    statics: dict[str, np.ndarray]


def place_pixels(cfg: VirtualConusConfig) -> tuple[np.ndarray, np.ndarray]:
    """Pixels on a jittered, roughly equal-area grid over the box (n_pixels of its cells, at random)."""
    rng = np.random.default_rng([cfg.seed, 1])
    w = (vr.BOX[2] - vr.BOX[0]) * vr.COS_LAT
    h = vr.BOX[3] - vr.BOX[1]
    s = np.sqrt(w * h / cfg.n_pixels)
    nx, ny = max(1, int(np.ceil(w / s))), max(1, int(np.ceil(h / s)))
    while nx * ny < cfg.n_pixels:
        nx += 1
    cells = np.sort(rng.choice(nx * ny, size=cfg.n_pixels, replace=False))
    iy, ix = np.divmod(cells, nx)
    jx, jy = rng.uniform(-0.3, 0.3, size=(2, cfg.n_pixels))
    lon = vr.BOX[0] + (ix + 0.5 + jx) * (vr.BOX[2] - vr.BOX[0]) / nx
    lat = vr.BOX[1] + (iy + 0.5 + jy) * h / ny
    return np.round(lon, 4), np.round(lat, 4)


def pixel_sites(cfg: VirtualConusConfig, rmap: vr.RegionMap) -> PixelSites:
    """Locations, true bucket parameters and noisy observable attributes of all pixels."""
    lon, lat = place_pixels(cfg)
    n = cfg.n_pixels
    keys = PIXEL_KEY_BASE + np.arange(n, dtype=np.int64)
    label = rmap.locate(lon, lat)

    def eff(stream: int) -> np.ndarray:
        return site_effects(label, keys, rmap, cfg, stream)

    elev = vw.elevation_km(lon, lat, cfg.seed)
    sand, clay = texture(lon, lat, eff(201), eff(202), cfg.seed)
    silt = 1.0 - sand - clay
    porosity = np.clip(0.48 - 0.12 * sand + 0.06 * clay + 0.03 * eff(203), 0.33, 0.6)
    wp = 0.02 + 0.32 * clay
    fc = np.minimum(wp + 0.05 + 0.17 * (1.0 - sand), porosity - 0.05)
    wet = wetness_index(lon, lat, elev, cfg.seed)
    veg = vw.sigmoid(1.8 * wet + 0.6 + 0.8 * eff(204))
    prm = hyd.BucketParams(
        porosity=porosity,
        fc=fc,
        wp=wp,
        z1=np.full(n, 50.0),
        z2=np.clip(300.0 * np.exp(0.5 * veg + 0.6 * eff(205)), 100.0, 1500.0),
        k_perc=0.2 + 0.6 * sand * np.exp(0.4 * eff(206)),
        k_exch=0.15 * np.exp(0.5 * eff(207)),
        k_drain=np.clip(0.08 * np.exp(1.2 * sand + 0.8 * eff(208)), 0.005, 1.0),
        runoff_coef=vw.sigmoid(-1.2 + 2.0 * clay + 0.8 * eff(209)),
        f_soil=1.0 - 0.9 * veg,
        ddf=3.0 * np.exp(0.25 * eff(210)),
        t_snow=0.6 * eff(211),
    )
    smap_bias = 0.02 * (veg - 0.5) + 0.03 * eff(212)
    statics = {
        "Sand": np.clip(sand + 0.03 * _noise(cfg, 301, keys), 0.0, 1.0),
        "Clay": np.clip(clay + 0.03 * _noise(cfg, 302, keys), 0.0, 1.0),
        "Silt": np.clip(silt + 0.03 * _noise(cfg, 303, keys), 0.0, 1.0),
        "Bulk": 2.65 * (1.0 - porosity) + 0.05 * _noise(cfg, 304, keys),
        "Capa": np.clip(fc - wp + 0.015 * _noise(cfg, 305, keys), 0.01, None),
        "NDVI": np.clip(0.08 + 0.75 * veg + 0.04 * _noise(cfg, 306, keys), 0.0, 1.0),
        "elevation": np.maximum(1000.0 * elev + 25.0 * _noise(cfg, 307, keys), -50.0),
    }
    return PixelSites(lon, lat, label, prm, smap_bias, statics)


def _subset_bucket(p: hyd.BucketParams, sl: slice) -> hyd.BucketParams:
    return hyd.BucketParams(**{f.name: np.asarray(getattr(p, f.name))[sl] for f in dataclasses.fields(p)})


def overpass_mask(lon: np.ndarray, days: np.ndarray) -> np.ndarray:
    """SMAP-like AM overpasses: 3 in 7 days (gaps 2, 3, 2), phase shifting in swath-like stripes."""
    phase = (np.floor((lon - vr.BOX[0]) / 2.5).astype(np.int64) * 3) % 7
    return np.isin((days[None, :] + phase[:, None]) % 7, (0, 2, 5))


def simulate_pixels(cfg: VirtualConusConfig, sites: PixelSites, sl: slice) -> dict[str, np.ndarray]:
    """Forcings and observed SMAP_AM (float32, (n, T)) for the pixels in ``sl``."""
    dates = cfg.pixel_dates
    days = vw.day_numbers(dates)
    idx = np.arange(cfg.n_pixels)[sl]
    keys = PIXEL_KEY_BASE + idx
    lon, lat = sites.lon[sl], sites.lat[sl]
    elev = vw.elevation_km(lon, lat, cfg.seed)
    wx = vw.generate_weather(lon, lat, elev, keys, dates, cfg.seed)
    prm = _subset_bucket(sites.params, sl)
    spin = min(cfg.spinup_days, len(dates))
    init = None
    if spin:
        init = hyd.simulate_bucket(wx["P"][:, :spin], wx["T"][:, :spin], wx["PET"][:, :spin], prm).final_state
    res = hyd.simulate_bucket(wx["P"], wx["T"], wx["PET"], prm, init=init)
    obs = (
        res.theta1
        + sites.smap_bias[sl, None]
        + cfg.smap_noise_sd * vw.hash_normal(cfg.seed, 401, keys[:, None], days[None, :])
    )
    obs = np.clip(obs, 0.02, prm.porosity[:, None])
    seen = overpass_mask(lon, days) & (vw.hash_uniform(cfg.seed, 402, keys[:, None], days[None, :]) > 0.04)
    if cfg.smap_mask_frozen:
        seen &= (wx["T"] > -1.0) & (res.swe < 5.0)
    obs = np.where(seen, obs, np.nan)
    return {
        "SMAP_AM": obs.astype(np.float32),
        "APCP": wx["P"].astype(np.float32),
        "TMP": wx["T"].astype(np.float32),
        "PET": wx["PET"].astype(np.float32),
        "DSWRF": wx["SW"].astype(np.float32),
    }


def write_pixels_netcdf(cfg: VirtualConusConfig, sites: PixelSites, path: Path) -> Path:
    """Simulate pixels chunk by chunk and write them into pre-created NetCDF-4 variables."""
    dates = cfg.pixel_dates
    n, nt = cfg.n_pixels, len(dates)
    with atomic_path(path) as tmp:
        nc = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        try:
            nc.setncatts(
                {
                    "title": "Virtual CONUS SMAP-like pixels (synthetic)",
                    "Conventions": "CF-1.8",
                    "source": f"synergy_dagster virtual_conus {GENERATOR_VERSION}",
                    "seed": int(cfg.seed),
                    "missing_value_note": "SMAP_AM is NaN on days without an overpass",
                }
            )
            nc.createDimension("pixel", n)
            nc.createDimension("time", nt)
            v = nc.createVariable("pixel", "i8", ("pixel",))
            v[:] = np.arange(n)
            v = nc.createVariable("time", "i4", ("time",))
            v.setncatts(
                {"units": f"days since {cfg.pixel_start}", "calendar": "standard", "standard_name": "time"}
            )
            v[:] = np.arange(nt, dtype=np.int32)
            for c, units in (("lat", "degrees_north"), ("lon", "degrees_east")):
                v = nc.createVariable(c, "f8", ("pixel",))
                v.setncatts({"units": units, "standard_name": "latitude" if c == "lat" else "longitude"})
                v[:] = getattr(sites, c)
            chunks = (min(n, 256), nt)
            v = nc.createVariable(
                "SMAP_AM",
                "f4",
                ("pixel", "time"),
                zlib=True,
                complevel=1,
                chunksizes=chunks,
                fill_value=np.float32(np.nan),
            )
            v.setncatts(
                {
                    "units": "m3 m-3",
                    "long_name": "virtual SMAP AM surface soil moisture",
                    "role": "target",
                    "coordinates": "lat lon",
                }
            )
            for name, (units, long) in PIXEL_DYNAMICS.items():
                v = nc.createVariable(
                    name,
                    "f4",
                    ("pixel", "time"),
                    zlib=True,
                    complevel=1,
                    chunksizes=chunks,
                    fill_value=np.float32(np.nan),
                )
                v.setncatts({"units": units, "long_name": long, "role": "dynamic", "coordinates": "lat lon"})
            for name, units in PIXEL_STATICS.items():
                v = nc.createVariable(name, "f4", ("pixel",), fill_value=np.float32(np.nan))
                v.setncatts(
                    {
                        "units": units,
                        "long_name": f"static attribute {name}",
                        "role": "static",
                        "coordinates": "lat lon",
                    }
                )
                v[:] = sites.statics[name].astype(np.float32)
            for i0 in range(0, n, cfg.pixel_chunk):
                sl = slice(i0, min(n, i0 + cfg.pixel_chunk))
                out = simulate_pixels(cfg, sites, sl)
                for name, arr in out.items():
                    nc.variables[name][sl, :] = arr
                del out
        finally:
            nc.close()
    return path


# --------------------------------------------------------------------------- basins


@dataclass
class BasinSites:
    gauge_id: list[str]
    gauge_lon: np.ndarray
    gauge_lat: np.ndarray
    lon: np.ndarray  # centroid
    lat: np.ndarray
    area: np.ndarray  # km2
    label: np.ndarray  # Level III row at the centroid
    polygons: np.ndarray  # shapely polygons
    params: hyd.HbvParams
    attributes: pd.DataFrame  # hydroatlas-like columns, indexed by gauge_id
    is_ref: np.ndarray
    regulation: tuple[np.ndarray, np.ndarray]  # (alpha, withdrawal) for Non-ref gauges


# Sub-region groups of the paper (Level I, or Level II for 8, 9, 10; 14 + 15 merged) and those the
# paper dropped for streamflow for lack of reference gauges (L, N, P, R): few gauges there here too.
_FEW_GAUGES_L2 = ("9.5", "9.6", "10.2", "12.1", "14.1", "15.4")


def _gauge_group(l1: np.ndarray, l2: np.ndarray) -> np.ndarray:
    split = np.isin(l1, ("8", "9", "10"))
    return np.where(split, l2, np.where(np.isin(l1, ("14", "15")), "14+15", l1))


def place_gauges(cfg: VirtualConusConfig, rmap: vr.RegionMap) -> tuple[np.ndarray, np.ndarray]:
    """Gauge points: denser in the east; every sub-region the paper used for streamflow gets at least
    ~3-4 % of the gauges, the streamflow ROIs (chosen in the paper for being well gauged) ~6 % each."""
    rng = np.random.default_rng([cfg.seed, 2])
    glon, _ = rmap.cell_centres()
    lab = rmap.label.ravel()
    w = 0.5 + 1.5 * vw.sigmoid((glon.ravel() + 96.0) / 4.0)
    group = _gauge_group(rmap.codes(1), rmap.codes(2))  # per Level III row
    few = np.isin(rmap.codes(2), _FEW_GAUGES_L2)
    ngroup = len(rmap.table)
    for g in np.unique(group[~few]):  # a handful of groups, each vectorised
        in_g = (group == g)[lab]
        w[in_g] *= max(1.0, 0.07 * w.sum() / w[in_g].sum())
    w[few[lab]] *= 0.15
    mass = np.bincount(lab, weights=w, minlength=ngroup)
    roi = np.isin(rmap.codes(3), vr.ROI_STREAMFLOW)
    boost = np.where(roi, np.maximum(2.0, 0.06 * w.sum() / np.maximum(mass, 1e-12)), 1.0)
    w = w * boost[lab]
    # systematic sampling over cells grouped by region: each region gets its expected count +- 1,
    # cells within a region in random order; then the gauges are shuffled so ids are not by region
    order = np.lexsort((rng.permutation(w.size), lab))
    cw = np.cumsum(w[order])
    pos = (rng.uniform() + np.arange(cfg.n_basins)) / cfg.n_basins * cw[-1]
    cells = order[np.minimum(np.searchsorted(cw, pos, side="right"), w.size - 1)]
    cells = cells[rng.permutation(cfg.n_basins)]
    glon, glat = rmap.cell_centres()
    jx, jy = rng.uniform(-0.5, 0.5, size=(2, cfg.n_basins))
    return np.round(glon.ravel()[cells] + jx * rmap.res, 4), np.round(glat.ravel()[cells] + jy * rmap.res, 4)


def basin_polygons(
    gauge_lon: np.ndarray,
    gauge_lat: np.ndarray,
    area: np.ndarray,
    cfg: VirtualConusConfig,
    keys: np.ndarray,
    n_vert: int = 32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Star-shaped polygons of the given areas (km2) with the gauge near the outlet edge.

    Returns (polygons, centroid lon, centroid lat)."""
    th = np.linspace(0.0, 2.0 * np.pi, n_vert, endpoint=False)
    ph = 2.0 * np.pi * vw.hash_uniform(cfg.seed, 501, keys[:, None], np.arange(3)[None, :])
    r = 1.0 + 0.28 * np.cos(2 * th[None, :] + ph[:, :1]) + 0.12 * np.cos(3 * th[None, :] + ph[:, 1:2])
    shape_area = 0.5 * np.sum(r * np.roll(r, -1, axis=1), axis=1) * np.sin(2.0 * np.pi / n_vert)
    r *= np.sqrt(area / shape_area)[:, None]  # km
    out_th = ph[:, 2]
    pos = out_th / (2.0 * np.pi / n_vert)  # linear interpolation of r at the outlet angle
    i0 = np.floor(pos).astype(np.int64) % n_vert
    frac = pos - np.floor(pos)
    rows = np.arange(len(r))
    r_out = r[rows, i0] * (1.0 - frac) + r[rows, (i0 + 1) % n_vert] * frac
    km_lon = 111.32 * np.cos(np.deg2rad(gauge_lat))
    cx = gauge_lon - 0.8 * r_out * np.cos(out_th) / km_lon
    cy = gauge_lat - 0.8 * r_out * np.sin(out_th) / 110.57
    x = cx[:, None] + r * np.cos(th)[None, :] / km_lon[:, None]
    y = cy[:, None] + r * np.sin(th)[None, :] / 110.57
    ring = np.stack([np.concatenate([x, x[:, :1]], axis=1), np.concatenate([y, y[:, :1]], axis=1)], axis=2)
    polys = shapely.polygons(ring)
    return polys, cx, cy


def basin_sites(cfg: VirtualConusConfig, rmap: vr.RegionMap) -> BasinSites:
    """Gauges, polygons, true HBV parameters and noisy observable attributes of all basins."""
    n = cfg.n_basins
    keys = BASIN_KEY_BASE + np.arange(n, dtype=np.int64)
    glon, glat = place_gauges(cfg, rmap)
    area = np.clip(np.exp(np.log(350.0) + 1.0 * _noise(cfg, 510, keys)), 15.0, 25000.0)
    polys, lon, lat = basin_polygons(glon, glat, area, cfg, keys)
    label = rmap.locate(lon, lat)

    def eff(stream: int) -> np.ndarray:
        return site_effects(label, keys, rmap, cfg, stream)

    elev = vw.elevation_km(lon, lat, cfg.seed)
    sand, clay = texture(lon, lat, eff(201), eff(202), cfg.seed)
    silt = 1.0 - sand - clay
    wet = wetness_index(lon, lat, elev, cfg.seed)
    forest = vw.sigmoid(1.8 * wet + 0.3 + 0.8 * eff(204))
    crop = (1.0 - forest) * vw.sigmoid(1.5 * wet + 1.0 - 2.0 * elev + 0.6 * eff(220))
    slope = np.exp(np.log(1.2) + 0.9 * elev + 0.35 * eff(221) + 0.25 * _noise(cfg, 522, keys))  # degrees
    geology = eff(222)  # latent: shared by groundwater recession, percolation and karst share
    depth = eff(223)  # soil depth, latent, partly visible through forest share
    prm = hyd.HbvParams(
        t_snow=0.6 * eff(211),
        ddf=3.0 * np.exp(0.25 * eff(210)),
        fc=np.clip(np.exp(np.log(180.0) + 0.6 * (forest - 0.5) + 0.6 * clay + 0.7 * depth), 40.0, 700.0),
        beta=1.0 + 3.0 * vw.sigmoid(0.8 * eff(224) + 2.0 * clay - 0.5),
        lp=0.5 + 0.4 * vw.sigmoid(0.8 * eff(225)),
        k0=0.25 + 0.45 * vw.sigmoid(0.8 * eff(226) + 0.1 * (slope - 5.0)),
        k1=0.03 + 0.15 * vw.sigmoid(0.8 * eff(227) + 0.1 * (slope - 5.0)),
        k2=np.clip(np.exp(np.log(0.02) + 1.0 * geology - 0.6 * (sand - 0.4)), 0.002, 0.2),
        uzl=np.clip(20.0 * np.exp(0.5 * eff(228)), 2.0, 80.0),
        perc=np.clip(np.exp(np.log(1.0) + 0.8 * geology + 1.0 * (sand - 0.4)), 0.05, 6.0),
        kr=np.clip(1.0 / (1.0 + 0.5 * np.sqrt(area / 100.0) / np.sqrt(slope / 3.0)), 0.05, 1.0),
    )
    ids = [f"virtual_{i:05d}" for i in range(n)]
    attrs = pd.DataFrame(
        {
            "ele_mt_sav": np.round(np.maximum(1000.0 * elev + 40.0 * _noise(cfg, 530, keys), 0.0), 1),
            "slp_dg_sav": np.round(10.0 * slope, 1),
            "cly_pc_sav": np.round(100.0 * np.clip(clay + 0.03 * _noise(cfg, 531, keys), 0.0, 1.0), 1),
            "snd_pc_sav": np.round(100.0 * np.clip(sand + 0.03 * _noise(cfg, 532, keys), 0.0, 1.0), 1),
            "slt_pc_sav": np.round(100.0 * np.clip(silt + 0.03 * _noise(cfg, 533, keys), 0.0, 1.0), 1),
            "for_pc_sse": np.round(100.0 * np.clip(forest + 0.05 * _noise(cfg, 534, keys), 0.0, 1.0), 1),
            "crp_pc_sse": np.round(100.0 * np.clip(crop + 0.05 * _noise(cfg, 535, keys), 0.0, 1.0), 1),
            "kar_pc_sse": np.round(
                100.0 * vw.sigmoid(-2.5 + 1.5 * geology + 0.8 * _noise(cfg, 536, keys)), 1
            ),
        },
        index=pd.Index(ids, name="gauge_id"),
    )
    is_ref = vw.hash_uniform(cfg.seed, 540, keys) >= cfg.frac_nonref
    alpha = 0.05 + 0.25 * vw.hash_uniform(cfg.seed, 541, keys)
    withdrawal = 0.03 + 0.17 * vw.hash_uniform(cfg.seed, 542, keys)
    return BasinSites(
        ids,
        glon,
        glat,
        np.round(lon, 5),
        np.round(lat, 5),
        area,
        label,
        polys,
        prm,
        attrs,
        is_ref,
        (alpha, withdrawal),
    )


def _subset_hbv(p: hyd.HbvParams, sl: slice) -> hyd.HbvParams:
    return hyd.HbvParams(**{f.name: np.asarray(getattr(p, f.name))[sl] for f in dataclasses.fields(p)})


def streamflow_gaps(cfg: VirtualConusConfig, keys: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
    """Missing-record mask (n, T): a share of gauges miss 1-12 whole months, some start 1-2 years late."""
    months = (dates.year.to_numpy() - dates.year[0]) * 12 + dates.month.to_numpy() - dates.month[0]
    n_months = int(months[-1]) + 1
    gappy = vw.hash_uniform(cfg.seed, 550, keys) < cfg.frac_gappy_basins
    n_miss = 1 + np.floor(12 * vw.hash_uniform(cfg.seed, 551, keys)).astype(np.int64)
    # each gauge ranks its months at random and drops the n_miss first ones
    rank = np.argsort(
        np.argsort(vw.hash_uniform(cfg.seed, 552, keys[:, None], np.arange(n_months)[None, :]), axis=1),
        axis=1,
    )
    miss_month = gappy[:, None] & (rank < np.minimum(n_miss, max(n_months - 1, 0))[:, None])
    missing = miss_month[:, months]
    late = (vw.hash_uniform(cfg.seed, 553, keys) < 0.3 * cfg.frac_gappy_basins) & (len(dates) > 3 * 365)
    start = np.where(late, (365 * (1 + (vw.hash_uniform(cfg.seed, 554, keys) > 0.5))).astype(np.int64), 0)
    missing |= np.arange(len(dates))[None, :] < start[:, None]
    return missing


def simulate_basins(cfg: VirtualConusConfig, sites: BasinSites, sl: slice) -> dict[str, np.ndarray]:
    """Forcings (float64) and observed streamflow (float32, NaN where missing) for the basins in ``sl``."""
    dates = cfg.basin_dates
    idx = np.arange(cfg.n_basins)[sl]
    keys = BASIN_KEY_BASE + idx
    lon, lat = sites.lon[sl], sites.lat[sl]
    elev = vw.elevation_km(lon, lat, cfg.seed)
    wx = vw.generate_weather(lon, lat, elev, keys, dates, cfg.seed)
    prm = _subset_hbv(sites.params, sl)
    spin = min(cfg.spinup_days, len(dates))
    init = None
    if spin:
        init = hyd.simulate_hbv(wx["P"][:, :spin], wx["T"][:, :spin], wx["PET"][:, :spin], prm).final_state
    q = hyd.simulate_hbv(wx["P"], wx["T"], wx["PET"], prm, init=init).q.astype(np.float64)
    days = vw.day_numbers(dates)
    q = q * np.exp(
        cfg.q_noise_sd * vw.hash_normal(cfg.seed, 560, keys[:, None], days[None, :]) - 0.5 * cfg.q_noise_sd**2
    )
    nonref = ~sites.is_ref[sl]
    if nonref.any():
        alpha, withdrawal = (a[sl][nonref] for a in sites.regulation)
        q[nonref] = hyd.regulate(q[nonref], alpha, withdrawal)
    q[streamflow_gaps(cfg, keys, dates)] = np.nan
    return {"P": wx["P"], "T": wx["T"], "PET": wx["PET"], "Q": q.astype(np.float32)}


def _runs_mean(flag: np.ndarray) -> np.ndarray:
    """Mean length of runs of True along axis 1 (0 where there is none)."""
    starts = flag & ~np.concatenate([np.zeros((flag.shape[0], 1), dtype=bool), flag[:, :-1]], axis=1)
    n_runs = starts.sum(axis=1)
    return np.where(n_runs > 0, flag.sum(axis=1) / np.maximum(n_runs, 1), 0.0)


def climate_indices(
    p: np.ndarray, t: np.ndarray, pet: np.ndarray, dates: pd.DatetimeIndex
) -> dict[str, np.ndarray]:
    """Caravan-style climate indices per site from daily forcing (n, T)."""
    p_mean = p.mean(axis=1)
    pet_mean = pet.mean(axis=1)
    frac_snow = np.where(
        p.sum(axis=1) > 0, (p * (t < 0.0)).sum(axis=1) / np.maximum(p.sum(axis=1), 1e-9), 0.0
    )
    month = dates.month.to_numpy() - 1
    onehot = np.eye(12)[month]  # (T, 12)
    cnt = onehot.sum(axis=0)
    pm = p @ onehot / cnt
    em = pet @ onehot / cnt
    # Knoben et al. moisture index per calendar month, in [-1, 1]
    mi = np.where(
        pm > em, 1.0 - em / np.maximum(pm, 1e-9), np.where(pm < em, pm / np.maximum(em, 1e-9) - 1.0, 0.0)
    )
    high = p >= 5.0 * p_mean[:, None]
    low = p < 1.0
    return {
        "p_mean": p_mean,
        "pet_mean": pet_mean,
        "aridity": pet_mean / np.maximum(p_mean, 1e-9),
        "frac_snow": frac_snow,
        "moisture_index": mi.mean(axis=1),
        "seasonality": mi.max(axis=1) - mi.min(axis=1),
        "high_prec_freq": high.mean(axis=1),
        "high_prec_dur": _runs_mean(high),
        "low_prec_freq": low.mean(axis=1),
        "low_prec_dur": _runs_mean(low),
    }


def _csv_bytes(table: pa.Table) -> bytes:
    """CSV with a plain header line, shortest float repr, empty cells for nulls (deterministic)."""
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return (",".join(table.column_names) + "\n").encode() + buf.getvalue()


def write_basin_timeseries(
    folder: Path, gauge_ids: list[str], date_str: pa.Array, out: dict[str, np.ndarray]
) -> None:
    """One Caravan CSV per basin (forcings rounded to 0.01, streamflow to 0.001 mm/d)."""
    p, t, pet = (np.round(out[k], 2) for k in ("P", "T", "PET"))
    q = np.round(out["Q"].astype(np.float64), 3)
    for j, gid in enumerate(gauge_ids):  # one file per basin
        qj = q[j]
        table = pa.table(
            {
                "date": date_str,
                "total_precipitation_sum": p[j] + 0.0,  # + 0.0 turns -0.0 into 0.0
                "temperature_2m_mean": t[j] + 0.0,
                "potential_evaporation_sum": pet[j] + 0.0,
                "streamflow": pa.array(qj + 0.0, mask=~np.isfinite(qj)),
            }
        )
        atomic_write_bytes(folder / f"{gid}.csv", _csv_bytes(table))


def _frame_csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode()


# GAGES-II aggregated ecoregion of each virtual Level II region (AGGECOREGI)
_AGGECOREGION: dict[str, str] = {
    "5.2": "MxWdShld",
    "5.3": "NorthEast",
    "6.2": "WestMnts",
    "7.1": "WestMnts",
    "8.1": "NorthEast",
    "8.2": "CntlPlains",
    "8.3": "SEPlains",
    "8.4": "EastHghlnds",
    "8.5": "SECstPlain",
    "9.2": "CntlPlains",
    "9.3": "WestPlains",
    "9.4": "WestPlains",
    "9.5": "SECstPlain",
    "9.6": "WestPlains",
    "10.1": "WestXeric",
    "10.2": "WestXeric",
    "11.1": "WestXeric",
    "12.1": "WestXeric",
    "13.1": "WestMnts",
    "14.1": "SECstPlain",
    "15.4": "SECstPlain",
}


def gages2_table(sites: BasinSites, rmap: vr.RegionMap) -> pd.DataFrame:
    """GAGES-II-like gauge table. STAID is the gauge number as 8 digits (gauge_id "virtual_00017" has
    STAID "00000017"); HUC02 is a virtual 6 x 3 lon/lat grid numbered east to west; STATE is "VC"."""
    n = len(sites.gauge_id)
    col = np.clip(np.floor((vr.BOX[2] - sites.gauge_lon) / (vr.BOX[2] - vr.BOX[0]) * 6), 0, 5).astype(int)
    row = np.clip(np.floor((vr.BOX[3] - sites.gauge_lat) / (vr.BOX[3] - vr.BOX[1]) * 3), 0, 2).astype(int)
    l2 = rmap.codes(2)[rmap.locate(sites.gauge_lon, sites.gauge_lat)]
    return pd.DataFrame(
        {
            "STAID": [f"{i:08d}" for i in range(n)],
            "STANAME": [f"Virtual gauge {i}" for i in range(n)],
            "gauge_id": sites.gauge_id,
            "CLASS": np.where(sites.is_ref, "Ref", "Non-ref"),
            "AGGECOREGI": [_AGGECOREGION[c] for c in l2],
            "DRAIN_SQKM": np.round(sites.area, 3),
            "HUC02": [f"{v:02d}" for v in col * 3 + row + 1],
            "LAT_GAGE": sites.gauge_lat,
            "LNG_GAGE": sites.gauge_lon,
            "STATE": "VC",
        }
    )


def write_basins(cfg: VirtualConusConfig, sites: BasinSites, out_dir: Path, rmap: vr.RegionMap) -> list[Path]:
    """Simulate basins chunk by chunk; write Caravan CSVs, attribute tables, polygons and gauge table."""
    dates = cfg.basin_dates
    ts_dir = out_dir / "caravan" / "timeseries" / "csv" / SUBSET
    at_dir = out_dir / "caravan" / "attributes" / SUBSET
    date_str = pa.array(dates.strftime("%Y-%m-%d").tolist())
    n = cfg.n_basins
    clim = {k: np.empty(n) for k in CLIMATE_COLUMNS}
    for i0 in range(0, n, cfg.basin_chunk):
        sl = slice(i0, min(n, i0 + cfg.basin_chunk))
        out = simulate_basins(cfg, sites, sl)
        write_basin_timeseries(ts_dir, sites.gauge_id[sl], date_str, out)
        for k, v in climate_indices(out["P"], out["T"], out["PET"], dates).items():
            clim[k][sl] = v
        del out
    ids = sites.gauge_id
    other = pd.DataFrame(
        {
            "gauge_id": ids,
            "gauge_name": [f"Virtual gauge {i}" for i in range(n)],
            "country": "Virtual CONUS",
            "gauge_lat": sites.gauge_lat,
            "gauge_lon": sites.gauge_lon,
            "area": np.round(sites.area, 3),
        }
    )
    caravan = pd.DataFrame({"gauge_id": ids, **{k: np.round(v, 6) for k, v in clim.items()}})
    hydroatlas = sites.attributes.reset_index()
    paths = []
    for name, df in (("other", other), ("caravan", caravan), ("hydroatlas", hydroatlas)):
        p = at_dir / f"attributes_{name}_{SUBSET}.csv"
        atomic_write_bytes(p, _frame_csv(df))
        paths.append(p)
    gages = gages2_table(sites, rmap)
    p = out_dir / "gages2" / "gauges.csv"
    atomic_write_bytes(p, _frame_csv(gages))
    paths.append(p)
    # the same table as points, for readers of the GAGES-II shapefile (they need a CRS)
    p = out_dir / "gages2" / "gauges.gpkg"
    pts = gpd.GeoDataFrame(
        gages, geometry=gpd.points_from_xy(gages["LNG_GAGE"], gages["LAT_GAGE"]), crs="EPSG:4326"
    )
    with _fixed_gpkg_time(), atomic_path(p) as tmp:
        pts.to_file(tmp, layer="gauges", driver="GPKG")
    paths.append(p)
    p = out_dir / "basins" / "basin_polygons.gpkg"
    gdf = gpd.GeoDataFrame({"gauge_id": ids}, geometry=sites.polygons, crs="EPSG:4326")
    with _fixed_gpkg_time(), atomic_path(p) as tmp:
        gdf.to_file(tmp, layer="basin_polygons", driver="GPKG")
    paths.append(p)
    return paths


@contextlib.contextmanager
def _fixed_gpkg_time() -> Iterator[None]:
    """GDAL stamps GeoPackages with the current time; pin it so the same seed gives the same bytes."""
    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_GPKG_TIME})
    try:
        with warnings.catch_warnings():  # the temp file's ".tmp" suffix; it is renamed to .gpkg after
            warnings.filterwarnings("ignore", message="The filename extension should be 'gpkg'")
            yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


# --------------------------------------------------------------------------- entry point


def region_site_counts(
    rmap: vr.RegionMap, pixel_label: np.ndarray, basin_label: np.ndarray
) -> dict[str, dict]:
    """Pixels and basins per Level III code (by pixel location / basin centroid)."""
    codes = rmap.codes(3)
    pc = np.bincount(pixel_label, minlength=len(codes))
    bc = np.bincount(basin_label, minlength=len(codes))
    return {c: {"pixels": int(pc[i]), "basins": int(bc[i])} for i, c in enumerate(codes)}


def generate_virtual_conus(out_dir: str | Path, config: VirtualConusConfig | None = None) -> dict:
    """Generate the virtual CONUS under ``out_dir``; return the manifest (also written as manifest.json)."""
    cfg = config or VirtualConusConfig()
    if not isinstance(cfg, VirtualConusConfig):
        raise ConfigError("virtual", f"expected a VirtualConusConfig, got {type(cfg).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output folder for the virtual CONUS is an existing file")
    out.mkdir(parents=True, exist_ok=True)
    rmap = vr.build_regions(cfg.region_seed, cfg.region_res)
    files: list[Path] = []
    eco = out / "ecoregions" / "us_eco_l3.gpkg"
    with _fixed_gpkg_time():
        vr.write_ecoregions_gpkg(rmap, eco)
    files.append(eco)

    pixels = pixel_sites(cfg, rmap)
    nc_path = out / "smap" / "virtual_pixels.nc"
    write_pixels_netcdf(cfg, pixels, nc_path)
    files.append(nc_path)

    basins = basin_sites(cfg, rmap)
    files.extend(write_basins(cfg, basins, out, rmap))
    ts_dir = out / "caravan" / "timeseries" / "csv" / SUBSET
    files.extend(ts_dir / f"{g}.csv" for g in basins.gauge_id)
    # a previous, larger run into the same folder must not leave basins the readers would pick up
    keep = {f"{g}.csv" for g in basins.gauge_id}
    for stale in ts_dir.glob(f"{SUBSET}_*.csv"):
        if stale.name not in keep:
            stale.unlink()

    config_dict = dataclasses.asdict(cfg)
    config_dict["region_effect_sd"] = list(cfg.region_effect_sd)
    manifest = {
        "generator": "synergy_dagster.sources.virtual_conus",
        "generator_version": GENERATOR_VERSION,
        "seed": int(cfg.seed),
        "config": config_dict,
        "n_pixels": cfg.n_pixels,
        "n_basins": cfg.n_basins,
        "layout": {
            "ecoregions": "ecoregions/us_eco_l3.gpkg",
            "pixels": "smap/virtual_pixels.nc",
            "caravan_root": "caravan",
            "caravan_subset": SUBSET,
            "basin_polygons": "basins/basin_polygons.gpkg",
            "gages2": "gages2/gauges.csv",
        },
        "latent_parameters": {"pixels": list(LATENT_PIXEL_PARAMS), "basins": list(LATENT_BASIN_PARAMS)},
        "sites_per_l3": region_site_counts(rmap, pixels.label, basins.label),
        "files": [
            {"path": f.relative_to(out).as_posix(), "sha256": file_sha256(f), "bytes": f.stat().st_size}
            for f in sorted(files)
        ],
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
