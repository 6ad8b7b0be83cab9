"""The ``landed_streamflow`` asset and its job: landed files merged into the streamflow source.

The work itself is :func:`synergy_dagster.sources.landing.ingest_landed`; this module wires the
resources to it, turns its errors into a failed step and records, in one DuckDB transaction, the
ledger (``sources``) and the files quarantined by validation (``landing_rejections``). A file that
fails validation never fails the run: a batch of only such files succeeds with a warning.
"""

# No `from __future__ import annotations`: Dagster resolves Config annotations at decoration time.

import dagster as dg
import pandas as pd
from pydantic import Field

from synergy_dagster.defs.assets.sources import raw_basins
from synergy_dagster.defs.operations.resources import LandingConfig
from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource
from synergy_dagster.errors import SynergyError
from synergy_dagster.sources.landing import SOURCE_NAME, Quarantined, ingest_landed, landed_source_row

INGEST_JOB = "landed_streamflow_job"
BATCH_TAG = "synergy/landing_batch"  # set by landing_sensor; the follow-up sensors chain on it


class LandedFileSpec(dg.Config):
    name: str
    sha256: str = ""


class LandedStreamflowConfig(dg.Config):
    files: list[LandedFileSpec] = Field(
        default_factory=list,
        description=(
            "Landed files to ingest (names inside the landing folder). Empty: re-apply what was ingested "
            "before (after raw_basins rebuilt the source)."
        ),
    )


@dg.asset(
    group_name="sources",
    deps=[raw_basins],
    pool="duckdb",
    kinds={"xarray", "duckdb"},
    description=(
        "Streamflow that arrived after the source was read (landing folder: NWIS RDB, CAMELS-US, Caravan "
        "CSV), each file validated on its own, archived by content hash and merged into the streamflow "
        "source and the tagged sites (files failing validation are quarantined in landed/rejected); "
        "every later rebuild of raw_basins is re-patched from the accumulated updates."
    ),
)
def landed_streamflow(
    context: dg.AssetExecutionContext,
    config: LandedStreamflowConfig,
    study: StudyResource,
    store: MetadataStoreResource,
    landing: LandingConfig,
) -> dg.MaterializeResult:
    if "streamflow" not in study.domains():  # landed files are streamflow: nothing to ingest into
        return dg.MaterializeResult(metadata={"skipped": "the study has no streamflow domain"})
    layout = study.layout
    try:
        result = ingest_landed(
            layout, landing.dir, [(f.name, f.sha256) for f in config.files], log=context.log
        )
    except SynergyError as exc:  # a missing source or an unreadable file: a clear failed step
        raise dg.Failure(str(exc)) from exc
    updates = result.updates
    writes = [
        (
            "landing_rejections",
            _rejection_rows([q], context.run.tags.get(BATCH_TAG) or context.run_id),
            {"sha256": q.sha256},
        )
        for q in result.quarantined
    ]
    if updates is not None and len(updates):
        writes.append(("sources", landed_source_row(layout, updates), {"source_name": SOURCE_NAME}))
    if writes:
        store.store().replace_many(writes)  # one transaction: the ledger row and every rejection
    if result.quarantined and not result.ingested:
        context.log.warning(
            f"every landed file of this run failed validation and was quarantined under "
            f"{layout.landed_rejected()}: {[q.name for q in result.quarantined]}; nothing ingested"
        )
    return dg.MaterializeResult(
        metadata={
            "ingested": dg.MetadataValue.json(result.ingested),
            "rejected": dg.MetadataValue.json(result.rejected),
            "quarantined": dg.MetadataValue.json(
                [
                    {"name": q.name, "sha256": q.sha256, "reason": q.reason, "stored_as": q.stored_as}
                    for q in result.quarantined
                ]
            ),
            "n_quarantined": len(result.quarantined),
            "unknown_gauges": dg.MetadataValue.json(sorted(result.unknown)[:50]),
            "n_updates_total": 0 if updates is None else len(updates),
            "n_training_sites_patched": result.n_sites_patched,
            **_change_metadata(result.changes),
            # source days (finite values) per USGS flag: landed, not_approved, estimated, qualified
            "usgs_flags": dg.MetadataValue.json(result.flag_counts),
        }
    )


def _change_metadata(changes: pd.DataFrame | None) -> dict[str, object]:
    """What Water Data fetches changed (counts per kind and the first rows; the full revision log is
    landed/streamflow_revisions.parquet): shown on the materialisation in the UI."""
    if changes is None or not len(changes):
        return {}
    shown = changes.head(100).assign(date=changes["date"].head(100).dt.strftime("%Y-%m-%d"))
    return {
        "revisions": dg.MetadataValue.json(changes["change"].value_counts().to_dict()),
        "revised_days": dg.MetadataValue.json(
            shown[["site_id", "date", "change", "old", "new", "old_status", "new_status", "reason"]]
            .astype(object)
            .where(shown.notna(), None)
            .to_dict("records")
        ),
    }


def _rejection_rows(quarantined: list[Quarantined], batch: str) -> pd.DataFrame:
    """``landing_rejections`` rows of quarantined files."""
    return pd.DataFrame(
        [
            {
                "sha256": q.sha256,
                "file_name": q.name,
                "reason": q.reason,
                "stored_as": q.stored_as,
                "rejected_at": q.rejected_at,
                "batch": batch,
            }
            for q in quarantined
        ]
    )


landed_streamflow_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(landed_streamflow),
    description="Merge landed streamflow files into the streamflow source (started by landing_sensor).",
)
