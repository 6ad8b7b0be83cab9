"""Stage 1, sources: the configured input files (or the generated virtual CONUS), read and
validated by the science readers, cached as NetCDF/GeoPackage under ``data/sources``.

Each asset's outputs change together (``staged_outputs``): the cache file(s) and the ``sources``
row are all new or all old. Sites are read within the ecoregion layer's extent (plus a margin),
so a gauge or pixel with lat/lon swapped is refused before anything is written.
"""

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.defs.resources import DuckDBStore, SourceConfig
from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.io_utils import file_sha256, staged_outputs, sweep_stale_temps
from synergy_dagster.layout import Layout
from synergy_dagster.sources.ecoregions import read_ecoregions
from synergy_dagster.sources.plausibility import extent_of
from synergy_dagster.sources.sitedata import target_name
from synergy_dagster.sources.study_domain import DomainData, read_study_domain

GROUP = "sources"


def _source_row(
    name: str, domain: str, path: Path, fmt: str, content_hash: str, ds: xr.Dataset | None
) -> pd.DataFrame:
    row: dict[str, object] = {
        "source_name": name,
        "domain": domain,
        "path": str(path),
        "format": fmt,
        "content_hash": content_hash,
        "loaded_at": datetime.now(),
    }
    if ds is not None:
        t = pd.DatetimeIndex(ds["time"].values)
        y = ds[target_name(ds)].values
        row.update(
            n_sites=int(ds.sizes["site"]),
            period_start=t[0].date(),
            period_end=t[-1].date(),
            n_rows=int(y.size),
            n_valid_target=int(np.isfinite(y).sum()),
        )
    return pd.DataFrame([row])


@dg.asset(
    group_name=GROUP,
    kinds={"python"},
    description=(
        "The raw input files. With the default source config this generates the embedded 'virtual "
        "CONUS' (seeded, regenerated only when its config changes); with kind=real it checks the "
        "configured real-data paths."
    ),
)
def source_files(context: dg.AssetExecutionContext, sources: SourceConfig) -> dg.MaterializeResult:
    sources.check()
    study = sources.study()
    stale = sweep_stale_temps(sources.work_dir)  # left by a process killed mid-write
    if stale:
        context.log.warning(f"removed {len(stale)} stale temp file(s): {[str(p) for p in stale[:5]]}")
    virtual = sources.virtual()
    if virtual is not None:
        from synergy_dagster.sources.virtual import VirtualConusConfig, generate_virtual_conus

        cfg = VirtualConusConfig(seed=virtual.seed, n_pixels=virtual.pixels, n_basins=virtual.basins)
        layout = sources.layout
        manifest_path = layout.virtual_manifest()
        wanted = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
        if manifest_path.exists() and json.loads(manifest_path.read_text()).get("config") == wanted:
            context.log.info(f"virtual CONUS already generated with this config in {layout.virtual_dir()}")
        else:
            context.log.info(f"generating the virtual CONUS into {layout.virtual_dir()}")
            generate_virtual_conus(layout.virtual_dir(), cfg)
    paths = {"ecoregions": sources.ecoregions()}
    paths |= {domain: Path(str(sources.domain(domain).path)) for domain in sources.domains()}
    for name, p in paths.items():
        if not p.exists():
            key = "ecoregions" if name == "ecoregions" else f"domains.{name}.path"
            raise InputError(f"{sources.study_path()} [{key}]", f"path does not exist: {p}")
    return dg.MaterializeResult(
        metadata={
            "study": study.name,
            "study_file": dg.MetadataValue.path(str(sources.study_path())),
            "domains": ", ".join(sources.domains()),
            **{k: dg.MetadataValue.path(str(v)) for k, v in paths.items()},
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[source_files],
    pool="duckdb",
    kinds={"geopandas", "duckdb"},
    description="EPA Level III ecoregions (official columns), validated and cached as GeoPackage.",
)
def raw_ecoregions(sources: SourceConfig, store: DuckDBStore) -> dg.MaterializeResult:
    path = sources.ecoregions()
    l3 = read_ecoregions(path)
    row = _source_row("ecoregions", "", path, path.suffix.lstrip("."), file_sha256(path), None)
    db = store.store()
    with staged_outputs() as out:  # the GeoPackage and its sources row change together
        l3.to_file(out.path(sources.layout.ecoregions()), driver="GPKG", layer="l3")
        out.transaction(db.transaction([("sources", row, {"source_name": "ecoregions"})]), db.path)
    counts = pd.DataFrame(
        {"level": ["L1", "L2", "L3"], "regions": [l3["l1"].nunique(), l3["l2"].nunique(), l3["l3"].nunique()]}
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "regions": dg.MetadataValue.md(markdown_table(counts)),
        }
    )


def study_extent(sources: SourceConfig) -> tuple[float, float, float, float]:
    """The ecoregion layer's bounds plus a margin (``extent_of``): where the study's sites must lie.
    Read from the file the study names (a virtual study's generated layer), validated as the
    ``raw_ecoregions`` asset reads it; half a second for the EPA CONUS layer."""
    return extent_of(read_ecoregions(sources.ecoregions()))


def _skipped(domain: str, sources: SourceConfig) -> dg.MaterializeResult:
    """A study without this domain needs none of its files (nothing is read or written)."""
    return dg.MaterializeResult(
        metadata={"skipped": f"the study {sources.study().name!r} has no {domain} domain"}
    )


def _record_sites_source(
    domain: str, data: DomainData, layout: Layout, store: DuckDBStore
) -> dg.MaterializeResult:
    ds = data.ds
    row = _source_row(domain, domain, data.path, data.fmt, data.content_hash, ds)
    db = store.store()
    # All or nothing: the cache NetCDF, the dropped-sites table and the sources row; a failure in
    # any leaves the previous three in place (a NetCDF never disagrees with its row).
    with staged_outputs() as out:
        out.write_netcdf(layout.source_nc(domain), ds)
        data.dropped.to_parquet(out.path(layout.source_drops(domain)), index=False)
        out.transaction(db.transaction([("sources", row, {"source_name": domain})]), db.path)
    r = row.iloc[0]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(data.path)),
            "format": data.fmt,
            "n_sites": int(r["n_sites"]),
            "n_dropped": len(data.dropped),
            "dropped": dg.MetadataValue.md(markdown_table(data.dropped) if len(data.dropped) else "none"),
            "period": f"{r['period_start']} .. {r['period_end']}",
            "n_valid_target": int(r["n_valid_target"]),
            "content_hash": data.content_hash[:16],
            "variables": dg.MetadataValue.md(
                markdown_table(
                    pd.DataFrame(
                        [
                            {"variable": k, "role": v.attrs.get("role"), "units": v.attrs.get("units", "")}
                            for k, v in ds.data_vars.items()
                        ]
                    )
                )
            ),
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[source_files],
    pool="duckdb",
    kinds={"xarray", "duckdb"},
    description=(
        "Basins: daily forcings, streamflow (mm/d) and attributes as the study file says (Caravan "
        "or CAMELS-US layout), only the listed inputs, gauges without any streamflow dropped with "
        "their reason, periods checked against the record, gauges outside the ecoregion layer's "
        "extent refused."
    ),
)
def raw_basins(sources: SourceConfig, store: DuckDBStore) -> dg.MaterializeResult:
    if "streamflow" not in sources.domains():
        return _skipped("streamflow", sources)
    data = read_study_domain("streamflow", sources.domain("streamflow"), extent=study_extent(sources))
    return _record_sites_source("streamflow", data, sources.layout, store)


@dg.asset(
    group_name=GROUP,
    deps=[source_files],
    pool="duckdb",
    kinds={"xarray", "duckdb"},
    description=(
        "Pixels: SMAP-like soil moisture, daily forcings and static attributes from a NetCDF/Zarr "
        "cube, as the study file says (listed inputs only, periods checked against the record, "
        "pixels outside the ecoregion layer's extent refused)."
    ),
)
def raw_pixels(sources: SourceConfig, store: DuckDBStore) -> dg.MaterializeResult:
    if "soil_moisture" not in sources.domains():
        return _skipped("soil_moisture", sources)
    data = read_study_domain("soil_moisture", sources.domain("soil_moisture"), extent=study_extent(sources))
    return _record_sites_source("soil_moisture", data, sources.layout, store)
