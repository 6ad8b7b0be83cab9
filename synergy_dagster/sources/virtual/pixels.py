"""SMAP-like pixels of the virtual CONUS: placement, true bucket parameters, observable attributes,
the simulation (shared weather + spin-up, then the SMAP observation model) and the NetCDF cube.

SMAP_AM = surface moisture (start of day) + regional retrieval bias + noise (sd ``smap_noise_sd``),
on overpass days only (gaps of 2 and 3 days in swath-like stripes) with ~4 % random drop-outs,
clipped to [0.02, porosity]; optional frozen-soil masking.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import netCDF4
import numpy as np

from synergy_dagster.io_utils import atomic_path
from synergy_dagster.sources.virtual import hydrology as hyd
from synergy_dagster.sources.virtual import regions as vr
from synergy_dagster.sources.virtual import weather as vw
from synergy_dagster.sources.virtual.land import (
    noise,
    simulate_land,
    site_effects,
    subset_params,
    texture,
    wetness_index,
)
from synergy_dagster.sources.virtual.output import GENERATOR_VERSION

if TYPE_CHECKING:  # conus.py imports this module; the config is only read here
    from synergy_dagster.sources.virtual.conus import VirtualConusConfig

PIXEL_KEY_BASE = 1 << 40  # pixel i has site key PIXEL_KEY_BASE + i (basins: basins.BASIN_KEY_BASE + j)

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
        "Sand": np.clip(sand + 0.03 * noise(cfg, 301, keys), 0.0, 1.0),
        "Clay": np.clip(clay + 0.03 * noise(cfg, 302, keys), 0.0, 1.0),
        "Silt": np.clip(silt + 0.03 * noise(cfg, 303, keys), 0.0, 1.0),
        "Bulk": 2.65 * (1.0 - porosity) + 0.05 * noise(cfg, 304, keys),
        "Capa": np.clip(fc - wp + 0.015 * noise(cfg, 305, keys), 0.01, None),
        "NDVI": np.clip(0.08 + 0.75 * veg + 0.04 * noise(cfg, 306, keys), 0.0, 1.0),
        "elevation": np.maximum(1000.0 * elev + 25.0 * noise(cfg, 307, keys), -50.0),
    }
    return PixelSites(lon, lat, label, prm, smap_bias, statics)


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
    prm = subset_params(sites.params, sl)
    wx, res = simulate_land(lon, lat, keys, dates, cfg.seed, cfg.spinup_days, hyd.simulate_bucket, prm)
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
                    # the generator's stable name, not a module path: the bytes stay when code moves
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
