"""Declarative automation of the evaluation (optional, off by default: ``SYNERGY_AUTOMATION=1``).

When enabled, the evaluation group gets :func:`evaluation_automation_condition` and the
``evaluation_automation`` sensor (an ``AutomationConditionSensorDefinition``) evaluates it.
"""

from __future__ import annotations

import warnings

import dagster as dg

from synergy_dagster.env import env_bool

EVALUATION_SELECTION = dg.AssetSelection.groups("evaluation")


def automation_enabled() -> bool:
    """``SYNERGY_AUTOMATION=1|true|yes|on`` turns declarative automation of the evaluation on."""
    return env_bool("SYNERGY_AUTOMATION", False)


def evaluation_automation_condition() -> dg.AutomationCondition:
    """Re-materialise when any upstream (any model partition) was updated, once none is missing or
    in progress: ``AutomationCondition.eager()``. Attach it to the evaluation group."""
    return dg.AutomationCondition.eager()


automation_sensor = dg.AutomationConditionSensorDefinition(
    "evaluation_automation",
    target=EVALUATION_SELECTION,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the evaluation group's automation conditions "
    "(exposed only with SYNERGY_AUTOMATION=1).",
)


def with_automation(defs: dg.Definitions, enabled: bool | None = None) -> dg.Definitions:
    """``defs`` with the evaluation group's automation condition attached when enabled."""
    if not (automation_enabled() if enabled is None else enabled):
        return defs
    with warnings.catch_warnings():  # map_resolved_asset_specs is marked "preview" in 1.13
        warnings.filterwarnings("ignore", message=".*map_resolved_asset_specs.*")
        return defs.map_resolved_asset_specs(
            func=lambda spec: spec.replace_attributes(automation_condition=evaluation_automation_condition()),
            selection=EVALUATION_SELECTION,
        )
