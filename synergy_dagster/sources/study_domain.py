"""One domain of a study, read as its study file says: reader, paths, inputs, periods, extent.

The Dagster sources assets call :func:`read_study_domain`; it returns the data the models see (the
listed inputs only, categorical statics one-hot), the sites dropped with their reasons, and the
files read with their content hash (what the ``sources`` table records).

What the study file declares reaches the readers: ``missing_values`` (values that mean no data),
the ``categorical`` names (a text column among them is read as class codes with its labels), and
the caller's ``extent`` (the ecoregion layer's bounds: a site outside, e.g. lat/lon swapped, is
refused before anything is written).

With the study's working folder (``layout``), the new USGS gauges of ``usgs.new_gauges`` that are
registered and have a site pack are added as sites before the inputs are selected
(:func:`~synergy_dagster.sources.site_packs.add_new_gauge_sites`); the others are returned as pending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xarray as xr

from synergy_dagster.errors import ConfigError
from synergy_dagster.io_utils import file_sha256, tree_sha256
from synergy_dagster.layout import Layout
from synergy_dagster.sources.camels_us import read_camels_us
from synergy_dagster.sources.caravan import read_caravan
from synergy_dagster.sources.nwis import merge_rdb_folder
from synergy_dagster.sources.pixels import read_pixel_cube
from synergy_dagster.sources.selection import check_periods, drop_sites_without_target, select_inputs
from synergy_dagster.sources.site_packs import add_new_gauge_sites, pending_frame
from synergy_dagster.study_file import DomainSpec


@dataclass(frozen=True)
class DomainData:
    """What a study reads for one domain."""

    ds: xr.Dataset
    dropped: pd.DataFrame  # site, reason: sites left out before tagging
    path: Path
    fmt: str
    content_hash: str
    # new USGS gauges left out (not registered, or no site pack): gauge, site, reason, needs
    pending: pd.DataFrame = field(default_factory=lambda: pending_frame([]))


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


def read_study_domain(
    domain: str,
    spec: DomainSpec,
    extent: tuple[float, float, float, float] | None = None,
    layout: Layout | None = None,
) -> DomainData:
    """Read, select and check one domain; every error names the file or the study key.

    ``extent`` (lon_min, lat_min, lon_max, lat_max), e.g. ``extent_of(l3)``, refuses sites outside.
    ``layout`` (the working folder) is where new USGS gauges' registry, ledger and site packs are;
    without it every new gauge is pending.
    """
    if spec.path is None:
        raise ConfigError(f"domains.{domain}.path", "no path given for this domain")
    path = Path(spec.path)
    if not path.exists():
        raise ConfigError(f"domains.{domain}.path", f"does not exist: {path}")
    missing = list(spec.missing_values) or None
    if spec.reader == "caravan":
        subset = spec.subset or "camels"
        ds = read_caravan(
            path,
            subset=subset,
            gauges=spec.gauges,
            missing_values=missing,
            extent=extent,
            text_attributes=spec.categorical,
        )
        files = sorted((path / "timeseries").rglob(f"*/{subset}/*")) + sorted(
            (path / "attributes" / subset).glob("*.csv")
        )
        digest = tree_sha256(files)
    elif spec.reader == "camels_us":
        ds = read_camels_us(
            path,
            forcing=spec.forcing or "nldas",
            gauges=spec.gauges,
            attributes_root=spec.attributes,
            missing_values=missing,
            extent=extent,
            text_attributes=spec.categorical,
        )
        digest = tree_sha256(_files(path))
    else:
        # Categorical names go as text_attributes: one the cube lacks is then the study's
        # ``categorical`` key's error (select_inputs), not a missing ``static``.
        static = (
            None if spec.static == "all_numeric" else [n for n in spec.static if n not in spec.categorical]
        )
        ds = read_pixel_cube(
            path,
            target=spec.target,
            dynamic=spec.dynamic,
            static=static,
            missing_values=missing,
            extent=extent,
            text_attributes=spec.categorical,
        )
        digest = file_sha256(path) if path.is_file() else tree_sha256(_files(path))
    if spec.streamflow_rdb is not None:  # gauge discharge from NWIS overrides the reader's streamflow
        ds = merge_rdb_folder(ds, spec.streamflow_rdb, missing_values=missing)
        digest = tree_sha256([*_files(path), *sorted(Path(spec.streamflow_rdb).glob("*.rdb"))])
    pending = pending_frame([])
    new_gauges = spec.usgs.new_gauges if domain == "streamflow" else ()
    if new_gauges and layout is not None:
        ds, pending, pack_files = add_new_gauge_sites(ds, new_gauges, layout, spec.dynamic, extent)
        if pack_files:  # a landed pack or a registered gauge changes the source's content
            digest = tree_sha256([*_files(path), *pack_files])
    elif new_gauges:
        pending = pending_frame(
            [{"gauge": n, "site": f"usgs_{n}", "reason": "no working folder given", "needs": "a study run"}
             for n in new_gauges]
        )  # fmt: skip
    where = str(path)
    ds = select_inputs(
        ds,
        target=spec.target,
        dynamic=spec.dynamic,
        static=spec.static,
        categorical=spec.categorical,
        where=where,
        key=f"domains.{domain}.",
        allow_leaky=spec.allow_leaky,
    )
    ds, dropped = drop_sites_without_target(ds)
    check_periods(ds, spec.periods, where, key=f"domains.{domain}.periods")
    fmt = spec.reader if spec.reader != "pixel_cube" else ("netcdf" if path.is_file() else "zarr")
    return DomainData(ds, dropped, path, fmt, digest, pending)
