"""The asset check that says when the USGS feed stops: tracked gauges whose newest day is too old.

``usgs_gauges_advancing`` runs with every ``landed_streamflow`` materialisation (and alone through
``usgs_feed_check_job``): it fails, naming the gauges, when a tracked gauge's newest day held is
older than the ``landing`` resource's ``stale_days`` (a gauge with nothing held counts as stale),
so a gauge USGS stopped publishing, or a feed that lands nothing for it, is seen within that time.
"""

# No `from __future__ import annotations`: Dagster resolves resource annotations at decoration time.

from datetime import UTC, datetime

import dagster as dg

from synergy_dagster.defs.operations.landing import landed_streamflow
from synergy_dagster.defs.operations.resources import LandingConfig
from synergy_dagster.defs.resources import StudyResource
from synergy_dagster.sources.landing import tracked_usgs_sites
from synergy_dagster.sources.usgs_feed import newest_day_per_gauge, stale_gauges


@dg.asset_check(
    asset=landed_streamflow,
    name="usgs_gauges_advancing",
    description="Fails, naming them, when tracked USGS gauges' newest day held is older than "
    "landing.stale_days (SYNERGY_USGS_STALE_DAYS).",
)
def usgs_gauges_advancing(study: StudyResource, landing: LandingConfig) -> dg.AssetCheckResult:
    layout = study.layout
    new = study.domain("streamflow").usgs.new_gauges if "streamflow" in study.domains() else ()
    gauges = tracked_usgs_sites(layout, landing.nwis_sites, new)
    if not gauges:
        return dg.AssetCheckResult(
            passed=True, description="no tracked gauge has a USGS number; nothing to watch"
        )
    today = datetime.now(UTC).date()
    stale = stale_gauges(newest_day_per_gauge(layout), gauges, today, landing.stale_days)
    shown = [
        {
            "gauge": r.gauge,
            "newest": "none" if r.newest is None or str(r.newest) == "NaT" else f"{r.newest:%Y-%m-%d}",
        }
        for r in stale.head(50).itertuples()
    ]
    return dg.AssetCheckResult(
        passed=stale.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"all {len(gauges)} tracked gauges have data within {landing.stale_days:g} days of {today}"
            if stale.empty
            else f"{len(stale)} of {len(gauges)} tracked gauges have no day newer than {landing.stale_days:g} "
            f"days before {today}: {', '.join(s['gauge'] for s in shown[:20])}"
        ),
        metadata={"n_stale": len(stale), "n_tracked": len(gauges), "stale": dg.MetadataValue.json(shown)},
    )


usgs_feed_check_job = dg.define_asset_job(
    "usgs_feed_check_job",
    selection=dg.AssetSelection.checks(usgs_gauges_advancing),
    description="Run the check that tracked USGS gauges keep advancing (without ingesting anything).",
)
