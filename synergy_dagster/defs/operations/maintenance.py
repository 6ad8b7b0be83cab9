"""Store maintenance: the ``prune_store_history`` op, its job and the weekly schedule.

A DuckLake store keeps every replaced partition as a snapshot (time travel); a study that is
rematerialised often grows its lake until old snapshots are expired and the data files only they
held are deleted (:meth:`~synergy_dagster.store.MetadataStore.prune_history`). The schedule (cron
``SYNERGY_PRUNE_CRON``, default Sundays 03:00 UTC) is STOPPED until turned on; on a DuckDB-file
store the op does nothing.
"""

# No `from __future__ import annotations`: Dagster resolves Config annotations at decoration time.

import dagster as dg
from pydantic import Field

from synergy_dagster.defs.resources import MetadataStoreResource
from synergy_dagster.env import env_str


class PruneConfig(dg.Config):
    keep_days: float = Field(default=7.0, description="history (snapshots) younger than this is kept")
    grace_hours: float = Field(
        default=1.0,
        description="a data file is deleted once unreferenced this long (reads still scanning it)",
    )


@dg.op(
    description="Expire the metadata store's DuckLake snapshots older than keep_days and delete the data "
    "files only they held (nothing to do on a DuckDB file).",
    pool="duckdb",
)
def prune_store_history(
    context: dg.OpExecutionContext, config: PruneConfig, store: MetadataStoreResource
) -> dg.Output[dict[str, int]]:
    for name, value in (("keep_days", config.keep_days), ("grace_hours", config.grace_hours)):
        if not value >= 0:  # NaN too
            raise dg.Failure(f"prune_store_history config {name}: must be >= 0, got {value}")
    meta = store.store()
    pruned = meta.prune_history(keep_s=config.keep_days * 86400.0, grace_s=config.grace_hours * 3600.0)
    context.log.info(
        f"{meta!r}: {pruned.snapshots} snapshots expired, {pruned.files} data files deleted "
        f"({pruned.bytes / 1e6:.1f} MB)"
    )
    counts = {
        "snapshots_expired": pruned.snapshots,
        "files_deleted": pruned.files,
        "bytes_freed": pruned.bytes,
    }
    return dg.Output(counts, metadata=counts)


@dg.job(description="Prune the metadata store's history (DuckLake snapshots and their unreferenced files).")
def store_maintenance_job() -> None:
    prune_store_history()


@dg.schedule(
    job=store_maintenance_job,
    cron_schedule=env_str("SYNERGY_PRUNE_CRON", "0 3 * * 0"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    name="weekly_store_pruning",
)
def weekly_store_pruning(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"prune:{context.scheduled_execution_time:%Y-%m-%dT%H:%M}")
