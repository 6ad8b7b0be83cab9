"""Stages 3-4 as Dagster assets: the experiment plan, training sets and trained LSTMs, per domain,
partitioned by training set (scenario:region).

The work is done in the core (:mod:`synergy_dagster.models.fit`, :mod:`synergy_dagster.experiments`);
these assets call it, register partitions and report metadata and check results."""

import json
import platform
import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.config import DOMAINS, PAPER_ROIS
from synergy_dagster.defs.assets.regions import soil_moisture_sites, streamflow_sites
from synergy_dagster.defs.metadata import png_markdown
from synergy_dagster.defs.partitions import SET_PARTITIONS
from synergy_dagster.defs.resources import ComputeResource, MetadataStoreResource, StudyResource
from synergy_dagster.env import env_int
from synergy_dagster.errors import ConfigError
from synergy_dagster.evaluation.figures import learning_curve
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.experiments.plan import build_plan, threshold_advice
from synergy_dagster.experiments.spatial import site_places
from synergy_dagster.experiments.synergy import curves_of
from synergy_dagster.io_utils import staged_outputs
from synergy_dagster.layout import Layout
from synergy_dagster.models.device import bank_threads, configure_threads, pick_device
from synergy_dagster.models.fit import (
    FitPlace,
    TrainingSet,
    build_training_set,
    check_models,
    fit_sets,
    normalizer_options,
    training_data,
)
from synergy_dagster.models.normalization import Normalizer

# backfill_policy is "beta" in Dagster 1.13; bank runs rely on it on purpose (said once, not per asset).
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy`", category=dg.BetaWarning)

SITES_ASSETS = {"soil_moisture": soil_moisture_sites, "streamflow": streamflow_sites}


def _scheme_regions(layout: Layout, domain: str) -> pd.DataFrame | None:
    """The sites asset's per-scheme regions (absent before the sites asset ever wrote them)."""
    path = layout.site_regions(domain)
    return pd.read_parquet(path) if path.exists() else None


def build_plan_asset(domain: str) -> dg.AssetsDefinition:
    parts = SET_PARTITIONS[domain]

    @dg.asset(
        name=f"{domain}_plan",
        group_name="training_sets",
        deps=[SITES_ASSETS[domain]],
        pool="duckdb",
        kinds={"python", "duckdb"},
        description=(
            "Every training set the study needs: global, local per sub-region, and per region of "
            "interest local / +close / +far / +dissimilar, with and without size control. Registers "
            "one partition per distinct set; fits the shared normalisation on the global set's "
            "training period only."
        ),
    )
    def _plan(
        context: dg.AssetExecutionContext, study: StudyResource, store: MetadataStoreResource
    ) -> dg.MaterializeResult:
        if domain not in study.domains():  # not in this study / run: no plan
            return dg.MaterializeResult(metadata={"skipped": f"{domain} is not among this run's domains"})
        layout = study.layout
        sites = pd.read_parquet(layout.sites_table(domain))
        sites = sites[sites["kept"]]
        ds = xr.load_dataset(layout.sites_nc(domain))
        spatial = study.spec.spatial
        plan = build_plan(
            sites,
            domain,
            study.spec.thresholds,
            rois_preferred=PAPER_ROIS[domain],
            curves=curves_of(study.spec),  # synergy curve sets, if the study asks
            # global vs local under the study's other regionalisations (keys local@<scheme>:<region>)
            scheme_regions=_scheme_regions(layout, domain),
            ecoregions="ecoregions" in study.spec.stratification.labels,
            spatial=spatial,  # PUB / PUR holdouts (experiments/spatial.py), if the study asks
            places=site_places(sites, ds) if spatial.pur else None,
        )
        for advice in threshold_advice(plan):
            context.log.warning(advice)
        periods = study.spec.periods(domain)
        recipe = study.spec.training_profile().for_domain(domain).recipe
        opts = normalizer_options(domain, ds, study.spec.run.log_transform, recipe.target_transform)
        norm = Normalizer.fit(ds, periods.train.slice, **opts)
        distinct = plan.sets[plan.sets["trained_as"] == plan.sets["key"]]["key"].tolist()
        rows = plan.sets.assign(
            set_key=plan.sets["key"],
            train_start=periods.train.start,
            train_end=periods.train.end,
            test_start=periods.test.start,
            test_end=periods.test.end,
        )
        columns = [
            "domain",
            "set_key",
            "scenario",
            "region",
            "experiment",
            "n_sites",
            "sites_hash",
            "trained_as",
            "added_rule",
            "train_start",
            "train_end",
            "test_start",
            "test_end",
        ]
        db = store.store()
        # All or nothing: plan, normaliser and training_sets rows change together.
        with staged_outputs() as out:
            out.write_text(layout.plan(domain), json.dumps(plan.to_dict(), indent=1))
            out.write_text(layout.normalizer(domain), json.dumps(norm.to_dict(), indent=1))
            out.transaction(db.transaction([("training_sets", rows[columns], {"domain": domain})]), db.path)
        # Partitions follow the committed plan (the instance is no part of the transaction).
        existing = set(context.instance.get_dynamic_partitions(parts.name))
        stale = sorted(existing - set(distinct))
        for key in stale:
            context.instance.delete_dynamic_partition(parts.name, key)
        context.instance.add_dynamic_partitions(parts.name, [k for k in distinct if k not in existing])
        show = plan.sets[["key", "experiment", "n_sites", "trained_as"]]
        return dg.MaterializeResult(
            metadata={
                "n_sets": len(plan.sets),
                "n_partitions": len(distinct),
                "removed_partitions": stale,
                "sets": dg.MetadataValue.md(markdown_table(show)),
                "excluded": dg.MetadataValue.md(
                    markdown_table(plan.excluded) if len(plan.excluded) else "none"
                ),
                "normalisation": opts["method"],
                "threshold_advice": dg.MetadataValue.md("\n".join(f"- {a}" for a in plan.advice) or "none"),
            }
        )

    return _plan


def bank_policy() -> dg.BackfillPolicy:
    """A backfill over a domain's training partitions runs as bank runs: at most
    ``SYNERGY_BANK_SIZE`` partitions per run (default 64), trained together in one process. A
    laptop then runs a domain as one bank; a cluster sets a small size to spread banks over nodes."""
    size = env_int("SYNERGY_BANK_SIZE", 64)
    if size < 1:
        raise ConfigError("SYNERGY_BANK_SIZE", f"must be >= 1, got {size}")
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=size)


def build_training_set_asset(domain: str, plan_asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{domain}_training_set",
        group_name="training_sets",
        partitions_def=SET_PARTITIONS[domain],
        deps=[plan_asset],
        io_manager_key="json_io_manager",
        kinds={"python"},
        backfill_policy=bank_policy(),
        description=(
            "One training set: its sites, periods, normalisation statistics (training data only) "
            "and the hash of the exact training tensors. A run over several partitions (a bank run) "
            "writes one JSON per partition."
        ),
    )
    def _training_set(context: dg.AssetExecutionContext, study: StudyResource) -> dict[str, Any]:
        recipe = study.spec.training_profile().for_domain(domain).recipe
        out = {}
        for key in context.partition_keys:
            ts = build_training_set(
                study.layout,
                domain,
                key,
                study.spec.periods(domain),
                study.spec.run.per_set_normalization,
                study.spec.run.log_transform,
                recipe.target_transform,
            )
            context.add_asset_metadata(
                {
                    "n_sites": len(ts.site_ids),
                    "n_valid_targets": ts.n_train_samples,
                    "sites_hash": ts.sites_hash,
                    "train": f"{ts.train.start}..{ts.train.end}",
                },
                partition_key=key,
            )
            out[key] = ts.to_dict()
        # one partition: its dict (the IO manager's single-partition form); several: keyed by partition
        return out[context.partition_key] if len(out) == 1 else out

    return _training_set


def build_model_asset(domain: str, training_set_asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    checks = [
        dg.AssetCheckSpec(
            "loss_finite_and_fell",
            asset=f"{domain}_model",
            blocking=True,
            description="Block losses are finite and the training RMSE of the trained weights is below "
            "that of the initial weights (every partition of the run; per partition in the metadata).",
        ),
        dg.AssetCheckSpec(
            "predictions_finite",
            asset=f"{domain}_model",
            blocking=True,
            description="A full-sequence pass over the training sites yields no NaN (every partition "
            "of the run; per partition in the metadata).",
        ),
    ]

    @dg.asset(
        name=f"{domain}_model",
        group_name="models",
        partitions_def=SET_PARTITIONS[domain],
        ins={"training_set": dg.AssetIn(training_set_asset.key)},
        io_manager_key="model_io_manager",
        check_specs=checks,
        kinds={"pytorch"},
        backfill_policy=bank_policy(),
        description=(
            "The paper's LSTM (Linear+ReLU -> LSTM -> Linear) trained on one training set under the "
            "configured training budget (paper epoch rule, equal updates, equal passes, early stopping "
            "or wall clock), one model per seed, with its learning curve (table learning_curves). "
            "A run over several partitions trains them as one bank (stacked weights, each model with "
            "its own data, seed, optimiser and stopping) and materialises each partition with its own "
            "metadata and model files. Resumes from its checkpoints if a previous run was killed; "
            "reuses an intact model trained on the same data hash with the same config."
        ),
    )
    def _model(
        context: dg.AssetExecutionContext,
        training_set: dict[str, Any],
        study: StudyResource,
        store: MetadataStoreResource,
        compute: ComputeResource,
    ) -> Iterator[dg.AssetCheckResult | dg.Output]:
        layout = study.layout
        profile = study.spec.training_profile()
        budget = profile.budget
        threads = configure_threads(compute.torch_threads, profile.hidden)
        device = pick_device(compute.device)
        ds, n_masked = training_data(
            layout, domain, study.domain(domain).usgs, study.spec.periods(domain).train
        )
        if n_masked:
            context.log.info(f"{domain}: {n_masked} estimated/qualified target days left out of training")
        keys = context.partition_keys
        given = {keys[0]: training_set} if len(keys) == 1 else training_set
        sets = [TrainingSet.from_dict(given[key], source=f"{domain}_training_set [{key}]") for key in keys]
        fits = fit_sets(
            sets,
            profile,
            budget,
            ds,
            FitPlace(
                layout, store.store(), device, context.log.info, threads, bank_threads(compute.torch_threads)
            ),
        )
        # Checks run before the outputs are stored, so a failing blocking check stops evaluation.
        checks = {fit.set_key: check_models(fit, profile.hidden, profile.dropconnect, device) for fit in fits}
        yield dg.AssetCheckResult(
            check_name="loss_finite_and_fell",
            passed=all(c.loss_ok for c in checks.values()),
            metadata={
                "failed_partitions": [k for k, c in checks.items() if not c.loss_ok],
                "training_rmse": dg.MetadataValue.json({k: c.training_rmse for k, c in checks.items()}),
                "block_losses": dg.MetadataValue.json(
                    {
                        fit.set_key: {
                            str(s): [round(x, 5) for x in v[:: max(1, len(v) // 20)]]
                            for s, v in fit.losses.items()
                        }
                        for fit in fits
                    }
                ),
            },
        )
        yield dg.AssetCheckResult(
            check_name="predictions_finite",
            passed=all(c.nan_sites == 0 for c in checks.values()),
            metadata={"sites_with_nan": dg.MetadataValue.json({k: c.nan_sites for k, c in checks.items()})},
        )
        for fit in fits:
            rows = fit.rows
            curve_png = learning_curve(fit.curves, title=f"{domain} {fit.set_key} [{budget.mode}]")
            context.add_asset_metadata(
                {
                    "n_sites": len(fit.arrays.site_ids),
                    "seeds": list(profile.seeds),
                    "profile": profile.name,
                    "budget": budget.mode,
                    "stop_reason": ", ".join(sorted({str(r["stop_reason"]) for r in rows})),
                    "n_updates": [int(r["n_iterations"]) for r in rows],
                    "best_val_nse": [
                        None if pd.isna(r["best_val_nse"]) else float(r["best_val_nse"]) for r in rows
                    ],
                    "validation": fit.validation,
                    "device": str(device),
                    "torch_threads": threads,
                    "bank_partitions": len(keys),
                    "final_loss": float(np.mean([r["final_loss"] for r in rows])),
                    "train_seconds": float(max(r["train_seconds"] for r in rows)),
                    "data_hash": rows[0]["data_hash"][:16],
                    "host": platform.node(),
                    "learning_curve": png_markdown(curve_png, "learning curve"),
                    "checks_passed": checks[fit.set_key].loss_ok and checks[fit.set_key].nan_sites == 0,
                },
                partition_key=fit.set_key,
            )
        yield dg.Output(
            {
                "domain": domain,
                "budget": budget.mode,
                "db_path": store.location().url,  # a DuckDB file or a DuckLake URL: any process opens it
                "partitions": {
                    fit.set_key: {"seeds": fit.seeds, "rows": fit.rows, "curves": fit.curves} for fit in fits
                },
            }
        )

    return _model


ASSETS: list[dg.AssetsDefinition] = []
for _domain in DOMAINS:
    _plan_asset = build_plan_asset(_domain)
    _ts_asset = build_training_set_asset(_domain, _plan_asset)
    ASSETS += [_plan_asset, _ts_asset, build_model_asset(_domain, _ts_asset)]
