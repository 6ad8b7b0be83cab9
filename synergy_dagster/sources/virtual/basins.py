"""Gauged basins of the virtual CONUS: gauge placement, polygons, true HBV parameters, observable
attributes, the simulation (shared weather + spin-up, then noise, regulation and record gaps) and the
Caravan / GAGES-II / polygon files.

Streamflow = model flow with ~8 % multiplicative noise; non-reference gauges are regulated
(reservoir + withdrawal); a share of gauges miss whole months or start late. Gauges are denser in
the east, with floors so each sub-region the paper used for streamflow and each streamflow ROI holds
gauges at the default size, and few gauges in the sub-regions the paper dropped (L, N, P, R).
Basin forcing and parameters are taken at the basin centroid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from synergy_dagster.io_utils import atomic_path, atomic_write_bytes
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
from synergy_dagster.sources.virtual.output import SUBSET, csv_bytes, fixed_gpkg_time, frame_csv

if TYPE_CHECKING:  # conus.py imports this module; the config is only read here
    from synergy_dagster.sources.virtual.conus import VirtualConusConfig

BASIN_KEY_BASE = 2 << 40  # basin j has site key BASIN_KEY_BASE + j (pixels: pixels.PIXEL_KEY_BASE + i)

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
    area = np.clip(np.exp(np.log(350.0) + 1.0 * noise(cfg, 510, keys)), 15.0, 25000.0)
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
    slope = np.exp(np.log(1.2) + 0.9 * elev + 0.35 * eff(221) + 0.25 * noise(cfg, 522, keys))  # degrees
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
            "ele_mt_sav": np.round(np.maximum(1000.0 * elev + 40.0 * noise(cfg, 530, keys), 0.0), 1),
            "slp_dg_sav": np.round(10.0 * slope, 1),
            "cly_pc_sav": np.round(100.0 * np.clip(clay + 0.03 * noise(cfg, 531, keys), 0.0, 1.0), 1),
            "snd_pc_sav": np.round(100.0 * np.clip(sand + 0.03 * noise(cfg, 532, keys), 0.0, 1.0), 1),
            "slt_pc_sav": np.round(100.0 * np.clip(silt + 0.03 * noise(cfg, 533, keys), 0.0, 1.0), 1),
            "for_pc_sse": np.round(100.0 * np.clip(forest + 0.05 * noise(cfg, 534, keys), 0.0, 1.0), 1),
            "crp_pc_sse": np.round(100.0 * np.clip(crop + 0.05 * noise(cfg, 535, keys), 0.0, 1.0), 1),
            "kar_pc_sse": np.round(100.0 * vw.sigmoid(-2.5 + 1.5 * geology + 0.8 * noise(cfg, 536, keys)), 1),
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
    prm = subset_params(sites.params, sl)
    wx, res = simulate_land(lon, lat, keys, dates, cfg.seed, cfg.spinup_days, hyd.simulate_hbv, prm)
    q = res.q.astype(np.float64)
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
        atomic_write_bytes(folder / f"{gid}.csv", csv_bytes(table))


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
        atomic_write_bytes(p, frame_csv(df))
        paths.append(p)
    gages = gages2_table(sites, rmap)
    p = out_dir / "gages2" / "gauges.csv"
    atomic_write_bytes(p, frame_csv(gages))
    paths.append(p)
    # the same table as points, for readers of the GAGES-II shapefile (they need a CRS)
    p = out_dir / "gages2" / "gauges.gpkg"
    pts = gpd.GeoDataFrame(
        gages, geometry=gpd.points_from_xy(gages["LNG_GAGE"], gages["LAT_GAGE"]), crs="EPSG:4326"
    )
    with fixed_gpkg_time(), atomic_path(p) as tmp:
        pts.to_file(tmp, layer="gauges", driver="GPKG")
    paths.append(p)
    p = out_dir / "basins" / "basin_polygons.gpkg"
    gdf = gpd.GeoDataFrame({"gauge_id": ids}, geometry=sites.polygons, crs="EPSG:4326")
    with fixed_gpkg_time(), atomic_path(p) as tmp:
        gdf.to_file(tmp, layer="basin_polygons", driver="GPKG")
    paths.append(p)
    return paths
