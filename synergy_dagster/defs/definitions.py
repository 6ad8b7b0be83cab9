"""The one top-level Definitions of synergy_dagster.

Nothing here reads the environment for paths: ``study`` is configured at launch (its fields
default to the ``SYNERGY_*`` variables, read when a run starts), and the store and both IO managers
depend on it, so ``resources: {study: {config: {data_dir: ..., overrides: [...]}}}`` in run config
moves every file of a run and sets its study keys.
"""

from __future__ import annotations

import dagster as dg

from synergy_dagster.defs.assets import budget as budget_assets
from synergy_dagster.defs.assets import evaluation as evaluation_assets
from synergy_dagster.defs.assets import regions as region_assets
from synergy_dagster.defs.assets import schemes as scheme_assets
from synergy_dagster.defs.assets import sources as source_assets
from synergy_dagster.defs.assets import spatial as spatial_assets
from synergy_dagster.defs.assets import synergy as synergy_assets
from synergy_dagster.defs.assets.training import ASSETS as TRAINING_ASSETS
from synergy_dagster.defs.executors import executor_from_env
from synergy_dagster.defs.io_managers import JsonIOManager, ModelIOManager
from synergy_dagster.defs.operations.definitions import full_defs
from synergy_dagster.defs.partitions import SET_PARTITIONS
from synergy_dagster.defs.resources import ComputeResource, MetadataStoreResource, StudyResource

# Everything from raw files to the plans: unpartitioned, one run.
prepare_job = dg.define_asset_job(
    "prepare_job",
    selection=dg.AssetSelection.groups("sources", "regions")
    | dg.AssetSelection.assets("soil_moisture_plan", "streamflow_plan"),
    description="Sources -> tagged sites -> experiment plans (registers the training-set partitions).",
)
train_jobs = {
    domain: dg.define_asset_job(
        f"train_{domain}_job",
        selection=dg.AssetSelection.assets(f"{domain}_training_set", f"{domain}_model"),
        partitions_def=SET_PARTITIONS[domain],
        description=f"One {domain} training set and its model(s), per partition (scenario:region).",
    )
    for domain in SET_PARTITIONS
}
evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=dg.AssetSelection.groups("evaluation"),
    description="Metrics, significance tables, figures, learning curves and summary from the trained models.",
)
budget_sensitivity_job = dg.define_asset_job(
    "budget_sensitivity_job",
    selection=dg.AssetSelection.assets("budget_sensitivity"),
    description="Global vs local under several training budgets: does the winner change?",
)


def _core() -> dg.Definitions:
    """The pipeline itself; operations (sensors, schedules, ingest) are merged in below."""
    # configure_at_launch: the nested copies in the store and IO managers then take the run's
    # `study` config too (a plain instance would keep its import-time values there).
    study = StudyResource.configure_at_launch()
    return dg.Definitions(
        assets=[
            *dg.load_assets_from_modules(
                [
                    source_assets,
                    region_assets,
                    evaluation_assets,
                    budget_assets,
                    synergy_assets,
                    scheme_assets,
                    spatial_assets,
                ]
            ),
            *TRAINING_ASSETS,
        ],
        jobs=[prepare_job, *train_jobs.values(), evaluation_job, budget_sensitivity_job],
        resources={
            "study": study,
            "compute": ComputeResource(),
            "store": MetadataStoreResource(study=study),
            "json_io_manager": JsonIOManager(study=study),
            "model_io_manager": ModelIOManager(study=study),
        },
        executor=executor_from_env(),
    )


# Sensors for newly landed USGS data, the NWIS fetch schedule, and (opt-in) declarative automation.
defs = full_defs(_core())
