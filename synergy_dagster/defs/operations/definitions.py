"""What the operations package adds to the project's Definitions, and the merge that adds it."""

from __future__ import annotations

import dagster as dg

from synergy_dagster.defs.operations.automation import automation_enabled, automation_sensor, with_automation
from synergy_dagster.defs.operations.feed_check import usgs_feed_check_job, usgs_gauges_advancing
from synergy_dagster.defs.operations.landing import landed_streamflow, landed_streamflow_job
from synergy_dagster.defs.operations.maintenance import store_maintenance_job, weekly_store_pruning
from synergy_dagster.defs.operations.nwis import nwis_daily_fetch, nwis_fetch_job
from synergy_dagster.defs.operations.resources import LandingConfig
from synergy_dagster.defs.operations.sensors import (
    landed_evaluation_sensor,
    landed_training_sensor,
    landing_sensor,
)
from synergy_dagster.defs.resources import StudyResource

ASSETS = [landed_streamflow]
ASSET_CHECKS = [usgs_gauges_advancing]
JOBS = [landed_streamflow_job, nwis_fetch_job, store_maintenance_job, usgs_feed_check_job]
# Decided at import (as the code location loads); full_defs adds the sensor later when asked explicitly.
SENSORS: list[dg.SensorDefinition] = [landing_sensor, landed_training_sensor, landed_evaluation_sensor] + (
    [automation_sensor] if automation_enabled() else []
)
SCHEDULES = [nwis_daily_fetch, weekly_store_pruning]


def operations_defs(study: StudyResource) -> dg.Definitions:
    """Everything the operations package adds, to merge into the project's Definitions whose
    ``study`` resource is ``study`` (the landing folder defaults to its working folder)."""
    # Bound explicitly, as the store's: an unbound ResourceDependency is None at run time, and the
    # configure_at_launch instance makes the run's `study` config reach the landing folder too.
    resources = {"landing": LandingConfig(study=study)}
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=ASSET_CHECKS,
        jobs=JOBS,
        sensors=SENSORS,
        schedules=SCHEDULES,
        resources=resources,
    )


def full_defs(base: dg.Definitions, automation: bool | None = None) -> dg.Definitions:
    """``base`` + operations (+ automation when enabled): what definitions.py should expose."""
    merged = dg.Definitions.merge(base, operations_defs(base.resources["study"]))
    if not (automation if automation is not None else automation_enabled()):
        return merged
    merged = with_automation(merged, True)
    if automation_sensor in SENSORS:
        return merged
    return dg.Definitions.merge(merged, dg.Definitions(sensors=[automation_sensor]))
