"""What pixels and basins share: nested random effects on land parameters, the land surface
(soil texture, climatic wetness) and the one weather + spin-up step that drives either land model.

:func:`simulate_land` is the only place where sites get their weather and their initial state:
weather from :mod:`.weather` at the site locations, a spin-up run of the land model over the first
``spinup_days`` days of that weather to set the initial state, then the run over the whole period.
Pixels call it with the soil bucket, basins with the HBV model.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from synergy_dagster.sources.virtual import hydrology as hyd
from synergy_dagster.sources.virtual import regions as vr
from synergy_dagster.sources.virtual import weather as vw

if TYPE_CHECKING:  # conus.py imports the simulations; at run time only attributes of the config are read
    from synergy_dagster.sources.virtual.conus import VirtualConusConfig


class _LandResult(Protocol):
    final_state: Any


ResultT = TypeVar("ResultT", bound=_LandResult)
ParamsT = TypeVar("ParamsT", hyd.BucketParams, hyd.HbvParams)

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


def noise(cfg: VirtualConusConfig, stream: int, keys: np.ndarray) -> np.ndarray:
    """Standard normal noise per site, for the observation error of attributes."""
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


# --------------------------------------------------------------------------- weather + spin-up


def subset_params(prm: ParamsT, sl: slice) -> ParamsT:
    """The parameters of the sites in ``sl`` (a chunk), as the same parameter class."""
    return type(prm)(**{f.name: np.asarray(getattr(prm, f.name))[sl] for f in dataclasses.fields(prm)})


def simulate_land(
    lon: np.ndarray,
    lat: np.ndarray,
    keys: np.ndarray,
    dates: pd.DatetimeIndex,
    seed: int,
    spinup_days: int,
    model: Callable[..., ResultT],
    prm: ParamsT,
) -> tuple[dict[str, np.ndarray], ResultT]:
    """Weather at the sites and the land model run over it, after a spin-up; returns (weather, result).

    ``model`` is :func:`.hydrology.simulate_bucket` or :func:`.hydrology.simulate_hbv`, ``prm`` its
    parameters for these sites. The spin-up reruns the first ``min(spinup_days, len(dates))`` days of
    the same weather from the model's default state and starts the real run from where it ends, so
    the initial state fits the site's climate without simulating days outside the period.
    """
    elev = vw.elevation_km(lon, lat, seed)
    wx = vw.generate_weather(lon, lat, elev, keys, dates, seed)
    spin = min(spinup_days, len(dates))
    init = None
    if spin:
        init = model(wx["P"][:, :spin], wx["T"][:, :spin], wx["PET"][:, :spin], prm).final_state
    return wx, model(wx["P"], wx["T"], wx["PET"], prm, init=init)
