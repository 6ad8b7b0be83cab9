"""The embedded default data: a "virtual CONUS" with SMAP-like pixels and gauged basins.

This module holds the configuration and the orchestration; each concern has its own module:
:mod:`.regions` (ecoregion map), :mod:`.weather` (weather generator), :mod:`.hydrology` (land
models), :mod:`.land` (parameter effects and the shared weather + spin-up step), :mod:`.pixels`,
:mod:`.basins` and :mod:`.output` (deterministic file writing).

:func:`generate_virtual_conus` writes, under ``out_dir``, the same file formats the real data come in
(so the same readers serve both):

- ``ecoregions/us_eco_l3.gpkg`` — a three-level virtual ecoregion map (:mod:`.regions`);
- ``smap/virtual_pixels.nc`` — CF NetCDF (pixel, time): target ``SMAP_AM`` (NaN between
  overpasses), forcings ``APCP``, ``TMP``, ``PET``, ``DSWRF`` and static attributes;
- ``caravan/`` — Caravan layout: ``timeseries/csv/virtual/<gauge_id>.csv`` and
  ``attributes/virtual/attributes_{other,caravan,hydroatlas}_virtual.csv``;
- ``basins/basin_polygons.gpkg`` — a polygon around each gauge, sized by its area;
- ``gages2/gauges.csv`` — a GAGES-II-like gauge table (STAID, CLASS, AGGECOREGI, DRAIN_SQKM, HUC02,
  LAT_GAGE, LNG_GAGE, STATE, gauge_id), and the same as points in ``gages2/gauges.gpkg``;
- ``manifest.json`` — config, seed, generator version and every file with its SHA-256.

Modelling choices (so that the data do not decide the study's answer):

- Weather is continuous in space (:mod:`.weather`); it knows nothing of the regions. Pixels and
  basins get it, and their spin-up, from one shared step (:func:`.land.simulate_land`).
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

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.io_utils import atomic_write_text, file_sha256
from synergy_dagster.sources.virtual import regions as vr
from synergy_dagster.sources.virtual.basins import LATENT_BASIN_PARAMS, basin_sites, write_basins
from synergy_dagster.sources.virtual.output import GENERATOR_NAME, GENERATOR_VERSION, SUBSET, fixed_gpkg_time
from synergy_dagster.sources.virtual.pixels import LATENT_PIXEL_PARAMS, pixel_sites, write_pixels_netcdf


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


# --------------------------------------------------------------------------- entry point


def region_site_counts(
    rmap: vr.RegionMap, pixel_label: np.ndarray, basin_label: np.ndarray
) -> dict[str, dict]:
    """Pixels and basins per Level III code (by pixel location / basin centroid)."""
    codes = rmap.codes(3)
    pc = np.bincount(pixel_label, minlength=len(codes))
    bc = np.bincount(basin_label, minlength=len(codes))
    return {c: {"pixels": int(pc[i]), "basins": int(bc[i])} for i, c in enumerate(codes)}


def _config_record(cfg: VirtualConusConfig) -> dict:
    """The config as the manifest records it (JSON types: tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def ensure_virtual_conus(out_dir: str | Path, config: VirtualConusConfig) -> bool:
    """Generate the virtual CONUS under ``out_dir`` unless its manifest records the same config
    (the files are deterministic per config); True when it generated."""
    manifest = Path(out_dir) / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("config") == _config_record(config):
        return False
    generate_virtual_conus(out_dir, config)
    return True


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
    with fixed_gpkg_time():
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

    manifest = {
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "seed": int(cfg.seed),
        "config": _config_record(cfg),
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
