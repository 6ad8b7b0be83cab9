"""Conceptual land-surface models of the virtual CONUS (pure numpy; vectorised across sites, the only
loop is over time steps).

- :func:`simulate_bucket` — a two-layer soil bucket for SMAP pixels: degree-day snow, a thin surface
  layer (what SMAP senses) over a root zone; saturation-excess runoff, gravity percolation and
  diffusive exchange between layers, bare-soil evaporation from the surface layer and
  transpiration from the root zone (both limited by moisture), gravity drainage below.
- :func:`simulate_hbv` — an HBV-like rainfall-runoff model for basins: degree-day snow, soil
  moisture store with ET limited below ``lp * fc`` and non-linear recharge, a fast (quickflow)
  reservoir with a threshold outlet, a slow (groundwater) reservoir fed by percolation, and a
  linear routing store.

Every flux is taken from one store and given to another or to an outflow, and is limited by the
store it leaves, so storages stay non-negative and water balance ``P = ET + Q + dS`` closes to
rounding per site. Internals are float64.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


def _snow_step(
    swe: np.ndarray, p: np.ndarray, t: np.ndarray, t_snow: np.ndarray, ddf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rain/snow split (linear over t_snow +- 1 degC) and degree-day melt; returns (swe, liquid input)."""
    snow_frac = np.clip((t_snow + 1.0 - t) * 0.5, 0.0, 1.0)
    snowfall = p * snow_frac
    swe = swe + snowfall
    melt = np.minimum(swe, ddf * np.maximum(t - t_snow, 0.0))
    return swe - melt, p - snowfall + melt


def _check_shapes(p: np.ndarray, t: np.ndarray, pet: np.ndarray, n: int) -> None:
    if not (p.shape == t.shape == pet.shape) or p.ndim != 2 or p.shape[0] != n:
        raise ValueError(
            f"forcings must share shape (n_site={n}, n_time); got {p.shape}, {t.shape}, {pet.shape}"
        )


# --------------------------------------------------------------------------- soil-moisture bucket


@dataclass
class BucketParams:
    """Per-pixel parameters, each an array (n_site,). Volumetric in m3/m3, depths in mm."""

    porosity: np.ndarray
    fc: np.ndarray  # field capacity
    wp: np.ndarray  # wilting point
    z1: np.ndarray  # surface layer depth (SMAP senses ~50 mm)
    z2: np.ndarray  # root-zone depth
    k_perc: np.ndarray  # 1/d, gravity percolation surface -> root zone above field capacity
    k_exch: np.ndarray  # 1/d, diffusive exchange between the layers
    k_drain: np.ndarray  # 1/d, gravity drainage out of the root zone above field capacity
    runoff_coef: np.ndarray  # saturation-excess runoff share when the surface layer is saturated
    f_soil: np.ndarray  # share of PET offered to bare-soil evaporation (1 - vegetation cover)
    ddf: np.ndarray  # degree-day melt factor, mm/degC/d
    t_snow: np.ndarray  # rain/snow threshold, degC

    def __post_init__(self) -> None:
        n = {np.asarray(getattr(self, f.name)).shape for f in fields(self)}
        if len(n) != 1:
            raise ValueError(f"bucket parameters must share one shape, got {n}")
        if np.any(self.wp >= self.fc) or np.any(self.fc >= self.porosity):
            raise ValueError("bucket parameters need wp < fc < porosity")

    @property
    def n(self) -> int:
        return int(np.asarray(self.porosity).shape[0])


@dataclass
class BucketResult:
    theta1: np.ndarray  # surface moisture at the start of each day (what the AM overpass sees)
    theta2: np.ndarray  # root-zone moisture at the start of each day
    swe: np.ndarray  # snow water equivalent at the start of each day, mm
    final_state: tuple[np.ndarray, np.ndarray, np.ndarray]  # (theta1, theta2, swe) after the last day
    fluxes: dict[str, np.ndarray] | None = None  # daily et, runoff, drainage, storage (mm), when asked


def simulate_bucket(
    p: np.ndarray,
    t: np.ndarray,
    pet: np.ndarray,
    prm: BucketParams,
    init: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    return_fluxes: bool = False,
) -> BucketResult:
    """Run the bucket over forcings (n_site, n_time): P and PET in mm/d, T in degC."""
    p, t, pet = (np.asarray(a, dtype=np.float64) for a in (p, t, pet))
    n, nt = p.shape
    _check_shapes(p, t, pet, prm.n)
    por, fc, wp = prm.porosity, prm.fc, prm.wp
    z1, z2 = prm.z1, prm.z2
    s1max, s2max = por * z1, por * z2
    resid = 0.5 * wp  # bare soil dries below the wilting point, to about half of it
    if init is None:
        s1, s2, swe = 0.5 * (fc + wp) * z1, 0.5 * (fc + wp) * z2, np.zeros(n)
    else:
        s1, s2, swe = init[0] * z1, init[1] * z2, np.asarray(init[2], dtype=np.float64).copy()
    out1 = np.empty((n, nt), dtype=np.float32)
    out2 = np.empty((n, nt), dtype=np.float32)
    outw = np.empty((n, nt), dtype=np.float32)
    if return_fluxes:
        fl = {k: np.empty((n, nt)) for k in ("et", "runoff", "drainage", "storage_end")}
        storage0 = s1 + s2 + swe
    for i in range(nt):  # time loop, vectorised over sites
        out1[:, i], out2[:, i], outw[:, i] = s1 / z1, s2 / z2, swe
        swe, inp = _snow_step(swe, p[:, i], t[:, i], prm.t_snow, prm.ddf)
        runoff = inp * prm.runoff_coef * (s1 / s1max) ** 3
        s1 = s1 + (inp - runoff)
        # surface <-> root zone: gravity above field capacity plus diffusion along the moisture gradient
        q12 = prm.k_perc * np.maximum(s1 - fc * z1, 0.0) + prm.k_exch * (s1 / z1 - s2 / z2) * z1
        q12 = np.clip(q12, -np.minimum(s2, s1max - np.minimum(s1, s1max)), np.minimum(s1, s2max - s2))
        s1, s2 = s1 - q12, s2 + q12
        over = np.maximum(s1 - s1max, 0.0)  # what cannot infiltrate runs off
        s1 -= over
        runoff = runoff + over
        beta1 = np.clip((s1 / z1 - resid) / (fc - resid), 0.0, 1.0)
        e_soil = np.minimum(pet[:, i] * prm.f_soil * beta1, np.maximum(s1 - resid * z1, 0.0))
        s1 -= e_soil
        beta2 = np.clip(1.3 * (s2 / z2 - wp) / (fc - wp), 0.0, 1.0)
        tr = np.minimum(pet[:, i] * (1.0 - prm.f_soil) * beta2, np.maximum(s2 - wp * z2, 0.0))
        s2 -= tr
        drain = np.minimum(prm.k_drain * np.maximum(s2 - fc * z2, 0.0) * (s2 / s2max) ** 2, s2)
        s2 -= drain
        if return_fluxes:
            fl["et"][:, i] = e_soil + tr
            fl["runoff"][:, i] = runoff
            fl["drainage"][:, i] = drain
            fl["storage_end"][:, i] = s1 + s2 + swe
    fluxes = None
    if return_fluxes:
        fluxes = {**fl, "storage_start": storage0}
    return BucketResult(out1, out2, outw, (s1 / z1, s2 / z2, swe), fluxes)


# --------------------------------------------------------------------------- rainfall-runoff


@dataclass
class HbvParams:
    """Per-basin parameters, each an array (n_site,). Depths in mm, rates in 1/d."""

    t_snow: np.ndarray  # degC
    ddf: np.ndarray  # mm/degC/d
    fc: np.ndarray  # soil moisture capacity, mm
    beta: np.ndarray  # recharge non-linearity
    lp: np.ndarray  # share of fc above which ET is at its potential rate
    k0: np.ndarray  # fast outlet above uzl (quickflow)
    k1: np.ndarray  # upper reservoir outlet (interflow)
    k2: np.ndarray  # groundwater recession (baseflow)
    uzl: np.ndarray  # threshold of the fast outlet, mm
    perc: np.ndarray  # percolation to groundwater, mm/d
    kr: np.ndarray  # routing store outlet (larger basins route slower)

    def __post_init__(self) -> None:
        shapes = {np.asarray(getattr(self, f.name)).shape for f in fields(self)}
        if len(shapes) != 1:
            raise ValueError(f"HBV parameters must share one shape, got {shapes}")
        for name in ("k0", "k1", "k2", "kr", "lp"):
            v = np.asarray(getattr(self, name))
            if np.any(v <= 0) or np.any(v > 1):
                raise ValueError(f"HBV parameter {name} must be in (0, 1]")

    @property
    def n(self) -> int:
        return int(np.asarray(self.fc).shape[0])


HBV_STATES = ("snow", "soil", "upper", "lower", "route")


@dataclass
class HbvResult:
    q: np.ndarray  # streamflow, mm/d (float32)
    final_state: dict[str, np.ndarray]
    fluxes: dict[str, np.ndarray] | None = None


def simulate_hbv(
    p: np.ndarray,
    t: np.ndarray,
    pet: np.ndarray,
    prm: HbvParams,
    init: dict[str, np.ndarray] | None = None,
    return_fluxes: bool = False,
) -> HbvResult:
    """Run the HBV-like model over forcings (n_site, n_time): P and PET in mm/d, T in degC."""
    p, t, pet = (np.asarray(a, dtype=np.float64) for a in (p, t, pet))
    n, nt = p.shape
    _check_shapes(p, t, pet, prm.n)
    if init is None:
        st = {
            "snow": np.zeros(n),
            "soil": 0.5 * prm.fc,
            "upper": np.zeros(n),
            "lower": prm.perc / prm.k2,
            "route": np.zeros(n),
        }  # groundwater near its steady state
    else:
        st = {k: np.asarray(init[k], dtype=np.float64).copy() for k in HBV_STATES}
    snow, sm, suz, slz, sr = (st[k] for k in HBV_STATES)
    q_out = np.empty((n, nt), dtype=np.float32)
    if return_fluxes:
        fl = {k: np.empty((n, nt)) for k in ("et", "q", "storage_end")}
        storage0 = snow + sm + suz + slz + sr
    for i in range(nt):  # time loop, vectorised over basins
        snow, inp = _snow_step(snow, p[:, i], t[:, i], prm.t_snow, prm.ddf)
        recharge = inp * np.clip(sm / prm.fc, 0.0, 1.0) ** prm.beta
        sm = sm + inp - recharge
        excess = np.maximum(sm - prm.fc, 0.0)
        sm -= excess
        recharge += excess
        et = np.minimum(pet[:, i] * np.minimum(sm / (prm.lp * prm.fc), 1.0), sm)
        sm -= et
        suz = suz + recharge
        perc = np.minimum(prm.perc, suz)
        suz -= perc
        slz = slz + perc
        q0 = prm.k0 * np.maximum(suz - prm.uzl, 0.0)
        suz -= q0
        q1 = prm.k1 * suz
        suz -= q1
        q2 = prm.k2 * slz
        slz -= q2
        sr = sr + q0 + q1 + q2
        q = prm.kr * sr
        sr -= q
        q_out[:, i] = q
        if return_fluxes:
            fl["et"][:, i] = et
            fl["q"][:, i] = q
            fl["storage_end"][:, i] = snow + sm + suz + slz + sr
    final = dict(zip(HBV_STATES, (snow, sm, suz, slz, sr), strict=True))
    fluxes = {**fl, "storage_start": storage0} if return_fluxes else None
    return HbvResult(q_out, final, fluxes)


def regulate(q: np.ndarray, alpha: np.ndarray, withdrawal: np.ndarray) -> np.ndarray:
    """Human influence on a non-reference gauge: a reservoir (linear store, outflow share ``alpha``
    per day) and a consumptive withdrawal share. Returns regulated flow (n_site, n_time)."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty_like(q)
    store = q[:, :30].mean(axis=1) / alpha  # start near equilibrium
    for i in range(q.shape[1]):  # time loop, vectorised over basins
        store = store + q[:, i]
        rel = alpha * store
        store -= rel
        out[:, i] = rel
    return (out * (1.0 - withdrawal)[:, None]).astype(np.float32)
