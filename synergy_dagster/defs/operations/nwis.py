"""The daily NWIS fetch: an op, its job and the ``nwis_daily_fetch`` schedule.

The schedule (cron ``SYNERGY_NWIS_CRON``, default daily 06:00 UTC, STOPPED until turned on) fetches
the days after the newest one held for the tracked USGS gauges into the landing folder; the landing
sensor ingests what arrives.
"""

# No `from __future__ import annotations`: Dagster resolves Config annotations at decoration time.

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from pydantic import Field

from synergy_dagster.defs.operations.resources import LandingConfig
from synergy_dagster.defs.resources import SourceConfig
from synergy_dagster.env import env_str
from synergy_dagster.sources.landing import newest_date, tracked_usgs_sites
from synergy_dagster.sources.nwis_client import fetch_to_landing


class NwisFetchConfig(dg.Config):
    start: str = Field(default="", description="YYYY-MM-DD; empty = the day after the newest value held")
    end: str = Field(default="", description="YYYY-MM-DD; empty = today (UTC)")


@dg.op(description="Fetch new daily discharge of the tracked USGS gauges from NWIS into the landing folder.")
def fetch_nwis(
    context: dg.OpExecutionContext, config: NwisFetchConfig, sources: SourceConfig, landing: LandingConfig
) -> None:
    layout = sources.layout
    sites = tracked_usgs_sites(layout, landing.nwis_sites)
    if not sites:
        context.log.info("no tracked gauge has a USGS site number (e.g. the virtual CONUS); nothing to fetch")
        return
    end = date.fromisoformat(config.end) if config.end else datetime.now(UTC).date()
    if config.start:
        start = date.fromisoformat(config.start)
    else:
        last = newest_date(layout)
        start = (last + timedelta(days=1)) if last else end - timedelta(days=30)
    if start > end:
        context.log.info(f"already up to date (newest day held {start - timedelta(days=1)})")
        return
    path = fetch_to_landing(
        sites, start, end, landing.dir, base_url=landing.nwis_base_url, timeout=landing.nwis_timeout_s
    )
    context.log.info(f"NWIS {start}..{end}, {len(sites)} sites: " + (f"wrote {path}" if path else "no data"))


@dg.job(description="One NWIS daily-values fetch into the landing folder (the landing sensor ingests it).")
def nwis_fetch_job() -> None:
    fetch_nwis()


@dg.schedule(
    job=nwis_fetch_job,
    cron_schedule=env_str("SYNERGY_NWIS_CRON", "0 6 * * *"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    name="nwis_daily_fetch",
)
def nwis_daily_fetch(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    end = context.scheduled_execution_time.date()
    return dg.RunRequest(
        run_key=f"nwis:{end}", run_config={"ops": {"fetch_nwis": {"config": {"end": f"{end}"}}}}
    )
