"""Stage 1, sources: the configured input files (or the generated virtual CONUS), read and
validated by the science readers, cached as NetCDF/GeoPackage under ``data/sources``.

Each asset's outputs change together (``staged_outputs``): the cache file(s) and the ``sources``
row are all new or all old. Sites are read within the ecoregion layer's extent (plus a margin),
so a gauge or pixel with lat/lon swapped is refused before anything is written.

``raw_basins`` and ``raw_pixels`` read under the study's quality policy (``quality:``,
sources/quality.py) and carry one asset check per quality check: ERROR (and blocking) where the
policy refuses that class of finding, WARN where it masks, drops or warns. Their findings go to the
table ``quality_events``, to ``sources/<domain>_quality.csv`` and to the Markdown report of the
materialisation, together with the cache file and the ``sources`` row.

``raw_basins`` also reports the study's new USGS gauges it left out (not registered yet, or no site
pack landed: sources/site_packs.py) in its metadata (``new_gauges_pending``) and in the WARN check
``new_gauges_have_site_packs``, naming each gauge and the file it needs.
"""

from datetime import datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource, study_yaml
from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.io_utils import file_sha256, staged_outputs, sweep_stale_temps
from synergy_dagster.layout import Layout
from synergy_dagster.sources.ecoregions import read_ecoregions
from synergy_dagster.sources.plausibility import extent_of
from synergy_dagster.sources.quality import (
    CHECK_DESCRIPTIONS,
    RULES,
    QualityOutcome,
    policy_action,
    read_domain_with_quality,
)
from synergy_dagster.sources.quality_report import (
    counts_per_rule,
    events_csv,
    quality_markdown,
    store_rows,
    worst_sites,
)
from synergy_dagster.sources.quality_spec import QualitySpec, effective_quality
from synergy_dagster.sources.sitedata import target_name
from synergy_dagster.sources.study_domain import DomainData

GROUP = "sources"
NEW_GAUGES_CHECK = "new_gauges_have_site_packs"


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
def source_files(context: dg.AssetExecutionContext, study: StudyResource) -> dg.MaterializeResult:
    study.check()
    stale = sweep_stale_temps(study.work_dir)  # left by a process killed mid-write
    if stale:
        context.log.warning(f"removed {len(stale)} stale temp file(s): {[str(p) for p in stale[:5]]}")
    virtual = study.spec.virtual
    if virtual is not None:
        from synergy_dagster.sources.virtual import VirtualConusConfig, ensure_virtual_conus

        cfg = VirtualConusConfig(seed=virtual.seed, n_pixels=virtual.pixels, n_basins=virtual.basins)
        root = study.layout.virtual_dir()
        made = ensure_virtual_conus(root, cfg)
        context.log.info(f"{'generated' if made else 'kept (same config)'} the virtual CONUS in {root}")
    recorded = study.record(context.run_id)
    paths = {"ecoregions": study.ecoregions()}
    paths |= {domain: Path(str(study.domain(domain).path)) for domain in study.domains()}
    for name, p in paths.items():
        if not p.exists():
            key = "ecoregions" if name == "ecoregions" else f"domains.{name}.path"
            raise InputError(f"{study.study_path()} [{key}]", f"path does not exist: {p}")
    return dg.MaterializeResult(
        metadata={
            "study": study.spec.name,
            "study_file": dg.MetadataValue.path(str(study.study_path())),
            "overrides": ", ".join(study.spec.overrides) or "none",
            "resolved_study": dg.MetadataValue.path(str(recorded)),
            "settings": dg.MetadataValue.md(f"```yaml\n{study_yaml(study.spec)}```"),
            "domains": ", ".join(study.domains()),
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
def raw_ecoregions(study: StudyResource, store: MetadataStoreResource) -> dg.MaterializeResult:
    path = study.ecoregions()
    l3 = read_ecoregions(path)
    row = _source_row("ecoregions", "", path, path.suffix.lstrip("."), file_sha256(path), None)
    db = store.store()
    with staged_outputs() as out:  # the GeoPackage and its sources row change together
        l3.to_file(out.path(study.layout.ecoregions()), driver="GPKG", layer="l3")
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


def study_extent(study: StudyResource) -> tuple[float, float, float, float]:
    """The ecoregion layer's bounds plus a margin (``extent_of``): where the study's sites must lie.
    Read from the file the study names (a virtual study's generated layer), validated as the
    ``raw_ecoregions`` asset reads it; half a second for the EPA CONUS layer."""
    return extent_of(read_ecoregions(study.ecoregions()))


def _skipped(domain: str, study: StudyResource) -> dg.MaterializeResult:
    """A study without this domain needs none of its files (nothing is read or written)."""
    why = f"the study {study.spec.name!r} has no {domain} domain"
    return dg.MaterializeResult(
        metadata={"skipped": why},
        check_results=[
            dg.AssetCheckResult(check_name=name, passed=True, metadata={"skipped": why})
            for name in _check_names(domain) + ([NEW_GAUGES_CHECK] if domain == "streamflow" else [])
        ],
    )


def _check_names(domain: str) -> list[str]:
    """The quality checks of a domain's source asset (the water balance needs streamflow)."""
    names = dict.fromkeys(check for _, check in RULES.values())
    return [n for n in names if domain == "streamflow" or n != "water_balance"]


def _quality_check_specs(asset: str, domain: str) -> list[dg.AssetCheckSpec]:
    # Blocking: a check that fails with ERROR (its class of finding refused) stops the downstream
    # assets; a WARN failure (masked, dropped, warned) never does (Dagster's asset-check semantics).
    specs = [
        dg.AssetCheckSpec(name, asset=asset, blocking=True, description=CHECK_DESCRIPTIONS[name])
        for name in _check_names(domain)
    ]
    if domain == "streamflow":
        specs.append(
            dg.AssetCheckSpec(
                NEW_GAUGES_CHECK,
                asset=asset,
                description="Every new USGS gauge of the study (usgs.new_gauges) is registered and has "
                "its site pack (forcing), so it is a site; WARN naming those left out and the file each needs.",
            )
        )
    return specs


def _new_gauges_check(pending: pd.DataFrame) -> dg.AssetCheckResult:
    """WARN, naming them and what each needs, when new USGS gauges were left out of the source."""
    shown = pending.head(50)
    return dg.AssetCheckResult(
        check_name=NEW_GAUGES_CHECK,
        passed=pending.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description="every new gauge is a site"
        if pending.empty
        else f"{len(pending)} new USGS gauges left out: "
        + "; ".join(f"{r.gauge} ({r.reason}: {r.needs})" for r in shown.head(10).itertuples()),
        metadata={
            "n_pending": len(pending),
            "pending": dg.MetadataValue.md(markdown_table(shown) if len(shown) else "none"),
        },
    )


def _quality_check_results(
    domain: str, outcome: QualityOutcome, quality: QualitySpec
) -> list[dg.AssetCheckResult]:
    """One result per check: passed when it found nothing; ERROR where the policy refuses its
    class of finding, WARN where it masks, drops or warns."""
    results = []
    for name in _check_names(domain):
        rules = [r for r, (_, check) in RULES.items() if check == name]
        klass = RULES[rules[0]][0]
        found = outcome.events[outcome.events["rule"].isin(rules)]
        action = policy_action(quality, klass)
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not len(found),
                severity=dg.AssetCheckSeverity.ERROR if action == "refuse" else dg.AssetCheckSeverity.WARN,
                metadata={
                    "findings": len(found),
                    "sites": int(found["site"].nunique()),
                    "policy": f"quality.{klass}: {action}",
                    "first_findings": dg.MetadataValue.md(
                        markdown_table(found.head(20)[["site", "variable", "date", "value", "detail"]])
                        if len(found)
                        else "none"
                    ),
                },
            )
        )
    return results


def _record_sites_source(
    domain: str,
    data: DomainData,
    layout: Layout,
    store: MetadataStoreResource,
    outcome: QualityOutcome,
    quality: QualitySpec,
    run_id: str,
) -> dg.MaterializeResult:
    ds = data.ds
    row = _source_row(domain, domain, data.path, data.fmt, data.content_hash, ds)
    events = store_rows(outcome.events, domain, run_id)
    db = store.store()
    csv_path = layout.source_quality(domain)
    # All or nothing: the cache NetCDF, the dropped-sites table, the quality findings file, the
    # sources row and the quality rows; a failure in any leaves the previous ones in place (a
    # NetCDF never disagrees with its row).
    with staged_outputs() as out:
        out.write_netcdf(layout.source_nc(domain), ds)
        data.dropped.to_parquet(out.path(layout.source_drops(domain)), index=False)
        out.write_text(csv_path, events_csv(outcome.events))
        writes = [("sources", row, {"source_name": domain}), ("quality_events", events, {"domain": domain})]
        out.transaction(db.transaction(writes), db.path)
    r = row.iloc[0]
    counts = counts_per_rule(outcome.events)
    report = quality_markdown(domain, outcome.events, data.dropped, quality, csv_path, markdown_table)
    checks = _quality_check_results(domain, outcome, quality)
    pending: dict[str, object] = {}
    if domain == "streamflow":
        checks.append(_new_gauges_check(data.pending))
        pending = {
            "new_gauges_pending": dg.MetadataValue.md(
                markdown_table(data.pending) if len(data.pending) else "none"
            )
        }
    return dg.MaterializeResult(
        check_results=checks,
        metadata={
            **pending,
            "quality_report": dg.MetadataValue.md(report),
            "quality_findings": len(outcome.events),
            "quality_counts": dg.MetadataValue.md(markdown_table(counts) if len(counts) else "none"),
            "quality_worst_sites": dg.MetadataValue.md(
                markdown_table(worst_sites(outcome.events)) if len(outcome.events) else "none"
            ),
            "quality_file": dg.MetadataValue.path(str(csv_path)),
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
        },
    )


@dg.asset(
    group_name=GROUP,
    deps=[source_files],
    pool="duckdb",
    kinds={"xarray", "duckdb"},
    check_specs=_quality_check_specs("raw_basins", "streamflow"),
    description=(
        "Basins: daily forcings, streamflow (mm/d) and attributes as the study file says (Caravan "
        "or CAMELS-US layout), only the listed inputs, gauges without any streamflow dropped with "
        "their reason, periods checked against the record, gauges outside the ecoregion layer's "
        "extent refused; data-quality checks applied as the study's quality policy says."
    ),
)
def raw_basins(
    context: dg.AssetExecutionContext, study: StudyResource, store: MetadataStoreResource
) -> dg.MaterializeResult:
    return _read_sites_source(context, "streamflow", study, store)


def _read_sites_source(
    context: dg.AssetExecutionContext, domain: str, study: StudyResource, store: MetadataStoreResource
) -> dg.MaterializeResult:
    """Read one domain under its quality policy and record it with its findings."""
    if domain not in study.domains():
        return _skipped(domain, study)
    spec = study.domain(domain)
    quality = effective_quality(study.spec.quality, spec.quality)
    data, outcome = read_domain_with_quality(
        domain, spec, quality, extent=study_extent(study), layout=study.layout
    )
    return _record_sites_source(domain, data, study.layout, store, outcome, quality, context.run_id)


@dg.asset(
    group_name=GROUP,
    deps=[source_files],
    pool="duckdb",
    kinds={"xarray", "duckdb"},
    description=(
        "Pixels: SMAP-like soil moisture, daily forcings and static attributes from a NetCDF/Zarr "
        "cube, as the study file says (listed inputs only, periods checked against the record, "
        "pixels outside the ecoregion layer's extent refused; data-quality checks applied as the "
        "study's quality policy says)."
    ),
    check_specs=_quality_check_specs("raw_pixels", "soil_moisture"),
)
def raw_pixels(
    context: dg.AssetExecutionContext, study: StudyResource, store: MetadataStoreResource
) -> dg.MaterializeResult:
    return _read_sites_source(context, "soil_moisture", study, store)
