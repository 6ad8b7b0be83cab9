"""The daily USGS fetch: an op, its job and the ``nwis_daily_fetch`` schedule.

The schedule (cron ``SYNERGY_NWIS_CRON``, default daily 06:00 UTC, STOPPED until turned on) runs
the feed of the ``landing`` resource's ``usgs_service``: by default the Water Data OGC API, each
tracked gauge from its own newest day held minus the revision window, landed as one
``usgs_daily_*.json`` file; the deprecated NWIS RDB path (``nwis_rdb``) fetches the days after the
newest one held. The landing sensor ingests what arrives. The study's new USGS gauges
(``domains.streamflow.usgs.new_gauges``) are registered first (their monitoring-location record,
once) and tracked from then on, so their history arrives with the same fetch. Anything that is not the service's
answer fails the run with the URL and what came back.
"""

# No `from __future__ import annotations`: Dagster resolves Config annotations at decoration time.

import warnings
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from pydantic import Field

from synergy_dagster.defs.operations.resources import LandingConfig
from synergy_dagster.defs.resources import StudyResource
from synergy_dagster.env import env_str
from synergy_dagster.errors import SynergyError
from synergy_dagster.layout import Layout
from synergy_dagster.sources.landing import newest_date, tracked_usgs_sites
from synergy_dagster.sources.nwis_client import fetch_to_landing
from synergy_dagster.sources.usgs_feed import run_feed
from synergy_dagster.sources.usgs_registry import register_new_gauges, source_site_ids


class NwisFetchConfig(dg.Config):
    start: str = Field(
        default="",
        description="YYYY-MM-DD; empty = per gauge, its newest day held minus the revision window "
        "(nwis_rdb: the day after the newest value held)",
    )
    end: str = Field(default="", description="YYYY-MM-DD; empty = today (UTC)")


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise dg.Failure(f"fetch_nwis config {name}: expected YYYY-MM-DD, got {value!r}") from None


@dg.op(
    description="Fetch new and revised daily discharge of the tracked USGS gauges into the landing folder."
)
def fetch_nwis(
    context: dg.OpExecutionContext, config: NwisFetchConfig, study: StudyResource, landing: LandingConfig
) -> dg.Output[dict[str, int]]:
    layout = study.layout
    try:
        service = landing.service()
    except SynergyError as exc:
        raise dg.Failure(str(exc)) from exc
    new_gauges = study.domain("streamflow").usgs.new_gauges if "streamflow" in study.domains() else ()
    if new_gauges and service == "nwis_rdb":
        context.log.warning(
            f"new gauges {list(new_gauges)} need the Water Data API (usgs_service: waterdata)"
        )
        new_gauges = ()
    added: list[str] = []
    if new_gauges:
        try:
            _, added = register_new_gauges(
                layout, new_gauges, landing.client_settings(), archive_sites=source_site_ids(layout)
            )
        except SynergyError as exc:  # an unknown number, or one the archive holds: name it
            raise dg.Failure(str(exc)) from exc
        if added:
            context.log.info(f"registered new USGS gauges {added}; their history is fetched now")
    sites = tracked_usgs_sites(layout, landing.nwis_sites, new_gauges)
    if not sites:
        context.log.info("no tracked gauge has a USGS site number (e.g. the virtual CONUS); nothing to fetch")
        return dg.Output({"gauges": 0}, metadata={"gauges": 0})
    end = _day(config.end, "end") if config.end else datetime.now(UTC).date()
    start = _day(config.start, "start") if config.start else None
    if service == "nwis_rdb":
        return _fetch_rdb(context, landing, layout, sites, start, end)
    try:
        run = run_feed(
            layout,
            sites,
            end,
            landing.client_settings(),
            landing.dir,
            revision_days=landing.revision_days,
            history_start=landing.first_day(),
            start=start,
        )
    except SynergyError as exc:  # the service answered wrongly: fail, naming the URL and the answer
        raise dg.Failure(str(exc)) from exc
    fetch = run.fetch
    counts = {
        "gauges": len(sites),
        "gauges_fetched": 0 if fetch is None else len(fetch.windows),
        "rows": 0 if fetch is None else len(fetch.rows),
        "requests": 0 if fetch is None else fetch.requests,
        "retries": 0 if fetch is None else fetch.retries,
        "new_gauges_registered": len(added),
    }
    several = fetch.series[fetch.series["dropped"] != ""] if fetch is not None and len(fetch.series) else None
    if several is not None and len(several):
        context.log.warning(
            f"{len(several)} gauges have several daily-mean series; kept per gauge by rule "
            f"({several['rule'].iloc[0]}): {several[['gauge', 'time_series_id', 'dropped']].to_dict('records')[:10]}"
        )
    context.log.info(
        f"Water Data API up to {end}, {counts}: " + (f"wrote {run.path}" if run.path else "nothing landed")
    )
    if run.stopped:
        raise dg.Failure(f"the fetch stopped at its time budget after landing {run.path}: {run.stopped}")
    metadata: dict[str, object] = {
        **counts,
        "landed": str(run.path) if run.path else "",
        "several_series": dg.MetadataValue.json([] if several is None else several.to_dict("records")[:50]),
    }
    return dg.Output(counts, metadata=metadata)


def _fetch_rdb(
    context: dg.OpExecutionContext,
    landing: LandingConfig,
    layout: Layout,
    sites: list[str],
    start: date | None,
    end: date,
) -> dg.Output[dict[str, int]]:
    """The deprecated WaterServices ``dv`` path: the days after the newest one held, one RDB file."""
    if start is None:
        last = newest_date(layout)
        start = (last + timedelta(days=1)) if last else end - timedelta(days=30)
    if start > end:
        context.log.info(f"already up to date (newest day held {start - timedelta(days=1)})")
        return dg.Output({"gauges": len(sites)}, metadata={"gauges": len(sites)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        try:
            path = fetch_to_landing(
                sites, start, end, landing.dir, base_url=landing.nwis_base_url, timeout=landing.nwis_timeout_s
            )
        except SynergyError as exc:
            raise dg.Failure(str(exc)) from exc
    for w in caught:
        context.log.warning(str(w.message))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    context.log.info(f"NWIS {start}..{end}, {len(sites)} sites: " + (f"wrote {path}" if path else "no data"))
    return dg.Output({"gauges": len(sites)}, metadata={"gauges": len(sites), "landed": str(path or "")})


@dg.job(description="One USGS daily fetch into the landing folder (the landing sensor ingests it).")
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
