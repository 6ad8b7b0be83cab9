"""A stochastic daily weather generator for the virtual CONUS (pure numpy, vectorised over sites).

Climate normals are smooth functions of lon/lat/elevation: humid east / dry west with a wet Pacific
North-West coast and orographic rain, cold north / warm south with lapse rate, small seasonal range
near the Pacific; precipitation seasonality is winter-wet near the west coast, summer-wet on the
plains and monsoonal in the south-west. A few static random smooth fields perturb the normals.

Daily anomalies are spatially correlated: random Fourier features (correlation length of a
synoptic system, ~8 degrees) whose coefficients are moving averages of white noise over *absolute*
day numbers, so any site on any date gets the same weather whatever the chunking or period.
Wet days occur where a correlated Gaussian field plus local noise exceeds the quantile of the
wet-day probability; amounts are gamma distributed (shape ``GAMMA_SHAPE``) through the Gaussian
quantile transform, so amounts are spatially correlated too. PET is Hamon's (temperature and
day length), raised in arid climates where Hamon underestimates.

Randomness that belongs to a site and day comes from a counter-based hash (splitmix64) of
(seed, stream, site key, day), so output does not depend on chunk sizes or site order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from synergy_dagster.sources.virtual.regions import COS_LAT

GAMMA_SHAPE = 0.75  # daily wet-day amounts: shape of the gamma distribution (typical 0.6-0.9)
EPOCH = np.datetime64("1970-01-01", "D")

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wraps modulo 2^64 by design)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def hash_key(*parts: int | np.ndarray) -> np.ndarray:
    """Combine integer keys (scalars or broadcastable arrays) into well-mixed uint64 hashes."""
    h = np.asarray(np.uint64(0x243F6A8885A308D3))
    with np.errstate(over="ignore"):
        for p in parts:
            h = _mix(h ^ (np.asarray(p).astype(np.uint64) * _GOLD + np.uint64(0x632BE59BD9B4E019)))
    return h


def hash_uniform(*parts: int | np.ndarray) -> np.ndarray:
    """Uniform (0, 1) numbers from keys; 53 random bits, never exactly 0 or 1."""
    h = hash_key(*parts)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def hash_normal(*parts: int | np.ndarray) -> np.ndarray:
    """Standard normal numbers from keys (inverse CDF of :func:`hash_uniform`)."""
    return special.ndtri(hash_uniform(*parts))


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def day_numbers(dates: pd.DatetimeIndex) -> np.ndarray:
    """Days since 1970-01-01 (int64): the absolute time key of the generator."""
    return (pd.DatetimeIndex(dates).values.astype("datetime64[D]") - EPOCH).astype(np.int64)


# --------------------------------------------------------------------------- spatial fields


def _rff_params(seed: int, stream: int, k: int, scale_deg: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, stream, 7919])
    w = rng.normal(0.0, 1.0 / scale_deg, size=(k, 2))
    b = rng.uniform(0.0, 2.0 * np.pi, size=k)
    return w, b


def _features(lon: np.ndarray, lat: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = np.stack([np.asarray(lon, dtype=np.float64) * COS_LAT, np.asarray(lat, dtype=np.float64)], axis=1)
    return np.sqrt(2.0) * np.cos(x @ w.T + b[None, :])  # (n, k)


def static_field(
    lon: np.ndarray, lat: np.ndarray, seed: int, stream: int, scale_deg: float = 5.0, k: int = 64
) -> np.ndarray:
    """A smooth random field with about unit variance over space (random Fourier features)."""
    w, b = _rff_params(seed, stream, k, scale_deg)
    c = np.random.default_rng([seed, stream, 104729]).normal(size=k)
    return _features(lon, lat, w, b) @ c / np.sqrt(k)


def dynamic_field(
    lon: np.ndarray,
    lat: np.ndarray,
    days: np.ndarray,
    seed: int,
    stream: int,
    scale_deg: float = 8.0,
    tau_days: float = 2.0,
    k: int = 32,
) -> np.ndarray:
    """A space-time Gaussian field (n_site, n_day), unit variance at every site, exponential memory."""
    w, b = _rff_params(seed, stream, k, scale_deg)
    phi = _features(lon, lat, w, b)
    phi /= np.sqrt((phi**2).mean(axis=1, keepdims=True))  # exactly unit variance per site
    lag = int(np.ceil(6 * tau_days))
    kern = np.exp(-np.arange(lag + 1) / tau_days)
    kern /= np.sqrt((kern**2).sum())
    d = np.arange(days[0] - lag, days[-1] + 1)
    eps = hash_normal(seed, stream, np.arange(k)[:, None], d[None, :])  # (k, n_days + lag)
    # moving average over absolute days: a_k(t) = sum_j kern_j eps_k(t - j)
    coef = np.stack([np.convolve(e, kern, mode="valid") for e in eps])  # k rows, not per sample
    coef = coef[:, days - days[0]] if len(days) != coef.shape[1] else coef
    return phi @ coef / np.sqrt(k)


# --------------------------------------------------------------------------- climate


def elevation_km(lon: np.ndarray, lat: np.ndarray, seed: int) -> np.ndarray:
    """Smooth terrain (km): Pacific ranges, Great Basin, Rockies, sloping plains, Appalachians."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    xs = [
        -125,
        -123,
        -121,
        -119.5,
        -117,
        -114,
        -111,
        -108,
        -106,
        -104,
        -101,
        -98,
        -95,
        -90,
        -85,
        -82,
        -79,
        -76,
        -67,
    ]
    zs = [0.1, 0.5, 1.2, 1.6, 1.3, 1.6, 1.9, 2.0, 2.6, 1.4, 0.8, 0.5, 0.35, 0.2, 0.3, 0.6, 0.4, 0.15, 0.2]
    base = np.interp(lon, xs, zs)
    # Appalachian ridge along (-85, 34) -> (-72, 44)
    ax, ay, bx, by = -85.0 * COS_LAT, 34.0, -72.0 * COS_LAT, 44.0
    px, py = lon * COS_LAT, lat
    t = np.clip(((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2), 0, 1)
    dist = np.hypot(px - (ax + t * (bx - ax)), py - (ay + t * (by - ay)))
    base = base + 0.55 * np.exp(-((dist / 1.4) ** 2))
    # low coastal plains along the Gulf and the south-east
    base = np.where(lon > -100, base * (1.0 - 0.6 * sigmoid((30.5 - lat) / 1.2)), base)
    rough = sigmoid((-103.0 - lon) / 1.5) * 0.35 + 0.1
    z = base + rough * static_field(lon, lat, seed, 11, scale_deg=2.5)
    return np.maximum(z, 0.0)


def climate_normals(
    lon: np.ndarray, lat: np.ndarray, elev_km: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """Per-site climate parameters (1-d arrays): mean/amplitude of temperature, annual precipitation,
    precipitation seasonality weights, base wet-day probability and a PET factor."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    east = sigmoid((lon + 97.0) / 4.0)
    pnw = np.exp(-(((lon + 123.8) / 1.7) ** 2)) * sigmoid((lat - 40.0) / 1.5)
    inland = sigmoid((lon + 121.0) / 2.0)
    west_mtn = sigmoid(-(lon + 103.0) / 2.0)
    t_mean = (
        24.5
        - 0.75 * (lat - 25.0)
        - 4.5 * elev_km
        + 1.5 * np.exp(-(((lon + 124.0) / 2.0) ** 2))
        + 0.8 * static_field(lon, lat, seed, 21, 6.0)
    )
    t_amp = (3.5 + 0.55 * (lat - 25.0)) * (0.35 + 0.65 * inland) * (1.0 - 0.25 * sigmoid((lon + 76.0) / 2.0))
    p_ann = (
        230.0
        + 950.0 * east
        + 350.0 * east * sigmoid((36.0 - lat) / 3.0)
        + 1900.0 * pnw
        + 220.0 * elev_km * west_mtn
    ) * np.exp(0.12 * static_field(lon, lat, seed, 22, 5.0))
    # rain shadow of the intermountain west (between the Pacific ranges and the Rockies)
    p_ann = p_ann * (1.0 - 0.5 * sigmoid((lon + 119.5) / 0.8) * sigmoid(-(lon + 106.5) / 1.0))
    w_winter = sigmoid(-(lon + 117.0) / 2.0)
    w_summer = np.exp(-(((lon + 100.0) / 7.0) ** 2)) * (1.0 - w_winter)
    w_monsoon = np.exp(-(((lon + 108.0) / 4.0) ** 2)) * sigmoid((36.0 - lat) / 2.0)
    p_wet = np.clip(0.13 + 0.22 * east + 0.25 * pnw + 0.06 * elev_km, 0.08, 0.6)
    pet_factor = 1.0 + 0.6 * (1.0 - east) * (1.0 - pnw)
    return {
        "t_mean": t_mean,
        "t_amp": t_amp,
        "p_ann": p_ann,
        "w_winter": w_winter,
        "w_summer": w_summer,
        "w_monsoon": w_monsoon,
        "p_wet": p_wet,
        "pet_factor": pet_factor,
        "inland": inland,
    }


def day_length_hours(lat: np.ndarray, doy: np.ndarray) -> np.ndarray:
    """Astronomical day length (h) for (n,) latitudes and (T,) days of year -> (n, T)."""
    decl = 0.409 * np.sin(2.0 * np.pi * doy / 365.0 - 1.39)
    phi = np.deg2rad(np.asarray(lat, dtype=np.float64))[:, None]
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl)[None, :], -1.0, 1.0))
    return 24.0 * ws / np.pi


def hamon_pet(t_c: np.ndarray, day_len_h: np.ndarray) -> np.ndarray:
    """Hamon (1961) potential evapotranspiration (mm/d) from mean temperature (degC) and day length."""
    esat = 6.108 * np.exp(17.26939 * t_c / (t_c + 237.3))  # hPa
    rho_sat = 216.7 * esat / (t_c + 273.3)  # g m-3
    return 0.1651 * (day_len_h / 12.0) * rho_sat


def _gamma_table(shape: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of Gamma(shape, 1) on a grid of standard-normal z (for z -> amount interpolation)."""
    z = np.linspace(-8.0, 8.0, 4001)
    lo = special.gammaincinv(shape, special.ndtr(z))
    hi = special.gammainccinv(shape, special.ndtr(-z))
    return z, np.where(z < 0, lo, hi)


_GAMMA_Z, _GAMMA_Q = _gamma_table(GAMMA_SHAPE)


def generate_weather(
    lon: np.ndarray,
    lat: np.ndarray,
    elev_km: np.ndarray,
    site_keys: np.ndarray,
    dates: pd.DatetimeIndex,
    seed: int,
) -> dict[str, np.ndarray]:
    """Daily weather for sites x dates: ``P`` (mm/d), ``T`` (degC), ``PET`` (mm/d), ``SW`` (W m-2),
    all float64 (n_site, n_day). ``site_keys`` are unique integers that identify the sites."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    keys = np.asarray(site_keys, dtype=np.int64)[:, None]
    days = day_numbers(dates)
    doy = pd.DatetimeIndex(dates).dayofyear.to_numpy().astype(np.float64)
    c = climate_normals(lon, lat, elev_km, seed)
    ang = 2.0 * np.pi / 365.25

    season_p = (
        1.0
        + 0.85 * c["w_winter"][:, None] * np.cos(ang * (doy - 15.0))[None, :]
        + 0.55 * c["w_summer"][:, None] * np.cos(ang * (doy - 165.0))[None, :]
        + 0.65 * c["w_monsoon"][:, None] * np.cos(ang * (doy - 215.0))[None, :]
    )
    season_p = np.maximum(season_p, 0.08)
    p_wet = np.clip(c["p_wet"][:, None] * (0.6 + 0.4 * season_p), 0.03, 0.85)
    mean_wet = (c["p_ann"][:, None] / 365.25) * season_p / p_wet

    f_occ = dynamic_field(lon, lat, days, seed, 101, scale_deg=7.0, tau_days=1.5)
    z_occ = np.sqrt(0.65) * f_occ + np.sqrt(0.35) * hash_normal(seed, 102, keys, days[None, :])
    del f_occ
    wet = z_occ > special.ndtri(1.0 - p_wet)
    del z_occ
    f_amt = dynamic_field(lon, lat, days, seed, 103, scale_deg=5.0, tau_days=1.0)
    z_amt = 0.5 * f_amt + np.sqrt(0.75) * hash_normal(seed, 104, keys, days[None, :])
    del f_amt
    amount = np.interp(z_amt, _GAMMA_Z, _GAMMA_Q) * (mean_wet / GAMMA_SHAPE)
    precip = np.where(wet, amount, 0.0)
    del z_amt, amount

    winter = 0.5 * (1.0 + np.cos(ang * (doy - 15.0)))[None, :]
    sd_t = 1.8 + 0.09 * (lat[:, None] - 25.0) + 1.6 * c["inland"][:, None] * winter
    f_t = dynamic_field(lon, lat, days, seed, 105, scale_deg=10.0, tau_days=3.0)
    anom = np.sqrt(0.85) * f_t + np.sqrt(0.15) * hash_normal(seed, 106, keys, days[None, :])
    del f_t
    t_clim = c["t_mean"][:, None] - c["t_amp"][:, None] * np.cos(ang * (doy - 15.0))[None, :]
    temp = t_clim + sd_t * anom - 1.0 * wet * (1.0 - winter)  # wet summer days are cooler
    del anom

    dl = day_length_hours(lat, doy)
    pet = hamon_pet(temp, dl) * c["pet_factor"][:, None]
    # shortwave: extraterrestrial radiation (FAO-56) times a transmissivity lowered on wet days
    decl = 0.409 * np.sin(ang * doy - 1.39)
    dr = 1.0 + 0.033 * np.cos(ang * doy)
    phi = np.deg2rad(lat)[:, None]
    ws = np.pi * dl / 24.0
    ra = (
        (24.0 * 60.0 / np.pi)
        * 0.082
        * dr[None, :]
        * (ws * np.sin(phi) * np.sin(decl)[None, :] + np.cos(phi) * np.cos(decl)[None, :] * np.sin(ws))
    )
    sw = np.maximum(ra, 0.0) * np.where(wet, 0.38, 0.70) * 11.574  # MJ m-2 d-1 -> W m-2
    return {"P": precip, "T": temp, "PET": pet, "SW": sw}
