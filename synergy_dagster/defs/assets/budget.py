"""Training budgets made visible: every model's learning curve, and whether the global-vs-local
answer survives a change of training budget (issue 8)."""

from typing import Any

import dagster as dg
import pandas as pd
import torch
import xarray as xr

from synergy_dagster.defs.assets.evaluation import MODEL_KEYS, PAPER_METRICS, evaluation
from synergy_dagster.defs.metadata import png_markdown
from synergy_dagster.defs.resources import ComputeResource, MetadataStoreResource, StudyResource
from synergy_dagster.evaluation.budget import sensitivity_matrix, sign_changes
from synergy_dagster.evaluation.figures import learning_curves_by_scenario
from synergy_dagster.evaluation.significance import significance_for
from synergy_dagster.evaluation.study import evaluate_domain
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.io_utils import staged_outputs
from synergy_dagster.models.device import bank_threads, configure_threads, pick_device
from synergy_dagster.models.files import PartitionModels, save_partitions
from synergy_dagster.models.fit import FitPlace, fit_sets, load_plan, load_training_set
from synergy_dagster.models.normalization import Normalizer
from synergy_dagster.sources.usgs_masks import evaluation_view, training_view

EXPERIMENT = "global_vs_local"


@dg.asset(
    group_name="evaluation",
    deps=[evaluation],  # after the models' test scores, so `--select 'evaluation*'` refreshes it too
    pool="duckdb",
    kinds={"matplotlib", "duckdb"},
    description=(
        "Learning curves of the configured training budget: the median validation metric of every "
        "model every K updates (table learning_curves), one PNG per domain with every scenario's "
        "curves against updates and training seconds, and how each model stopped."
    ),
)
def learning_curves(study: StudyResource, store: MetadataStoreResource) -> dg.MaterializeResult:
    layout = study.layout
    profile = study.spec.training_profile()
    budget = profile.budget
    meta: dict[str, Any] = {"budget": budget.mode}
    # All or nothing: every domain's PNG is replaced together (a domain without curves fails the
    # asset before any is).
    with staged_outputs() as out:
        for domain in study.domains():
            metric = f"val_{budget.for_domain(domain).metric}"
            keys = sorted(set(load_plan(layout, domain).evaluations["model_key"]))
            curves = store.store().query(
                "SELECT * FROM learning_curves WHERE domain = ? AND budget = ? ORDER BY set_key, seed, update",
                [domain, budget.mode],
            )
            curves = curves[curves["set_key"].isin(keys)]
            models = store.store().query(
                "SELECT set_key, scenario, seed, stop_reason, n_iterations, best_update, best_val_nse, "
                "train_seconds FROM models WHERE domain = ? AND budget = ?",
                [domain, budget.mode],
            )
            models = models[models["set_key"].isin(keys)]
            if curves.empty:
                raise dg.Failure(
                    f"no {domain} learning curve under the {budget.mode!r} budget: train the models first "
                    "(make study)"
                )
            png = learning_curves_by_scenario(
                curves, f"{domain}: learning curves [{budget.mode}]", metric=metric
            )
            png_path = layout.learning_curves_png(domain)
            name = png_path.name
            out.write_bytes(png_path, png)
            stops = (
                models.groupby(["scenario", "stop_reason"])
                .agg(
                    models=("set_key", "size"),
                    median_updates=("n_iterations", "median"),
                    median_best_update=("best_update", "median"),
                    median_best_val_nse=("best_val_nse", "median"),
                    median_seconds=("train_seconds", "median"),
                )
                .reset_index()
            )
            meta[name] = png_markdown(png, "learning curves")
            meta[f"{domain}_stops"] = dg.MetadataValue.md(markdown_table(stops))
            meta[f"{domain}_share_converged"] = float((models["stop_reason"] == "converged").mean())
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    group_name="budget",
    deps=MODEL_KEYS,
    pool="duckdb",
    kinds={"pytorch", "duckdb"},
    description=(
        "The global-vs-local comparison under several training budgets (study.sensitivity_modes, at "
        "least two): trains or reuses the global and local models under each mode, evaluates them on "
        "the test period and reports, per region, which side wins under each mode and whether the "
        "sign changes. Table budget_sensitivity; evaluation/budget_sensitivity/."
    ),
)
def budget_sensitivity(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    store: MetadataStoreResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    layout = study.layout
    profile = study.spec.training_profile()
    modes = study.spec.run.sensitivity_modes
    stats = study.spec.statistics
    # Every mode shares the profile's budget parameters (updates, passes, cap, patience, K).
    budgets = [profile.budget.replace(mode=mode) for mode in modes]
    for b in budgets:  # every mode must be able to run before any trains
        profile.check_budget(b)
    threads = configure_threads(compute.torch_threads, profile.hidden)
    device = pick_device(compute.device)
    tables, metric_frames = [], []
    # The rows of every domain and mode, written with the table below in one transaction. The
    # models are not part of this unit: each save_partitions call is its own all-or-nothing unit, a
    # cache the next run reuses (fit_sets) rather than an output of this asset.
    writes: list[tuple[str, pd.DataFrame, dict[str, str]]] = []
    for domain in study.domains():
        plan = load_plan(layout, domain)
        evals = plan.evaluations[plan.evaluations["experiment"] == EXPERIMENT]
        if evals.empty:
            context.log.warning(
                f"{domain}: no global-vs-local comparison in the plan (no sub-region reached N)"
            )
            continue
        keys = sorted(set(evals["model_key"]))
        sets = {key: load_training_set(layout, domain, key) for key in keys}
        periods = study.spec.periods(domain)
        # one dataset fits and scores: the training mask on the train period, the scoring mask on test
        usgs = study.domain(domain).usgs
        ds = training_view(xr.load_dataset(layout.sites_nc(domain)), usgs, periods.train)[0]
        ds = evaluation_view(ds, usgs, periods.test)[0]
        dom = profile.for_domain(domain)
        for budget in budgets:
            # every model of this domain and mode as one bank
            fits = fit_sets(
                [sets[key] for key in keys],
                profile,
                budget,
                ds,
                FitPlace(
                    layout,
                    store.store(),
                    device,
                    context.log.info,
                    threads,
                    bank_threads(compute.torch_threads),
                ),
            )
            save_partitions(
                layout,
                store.store(),
                domain,
                budget.mode,
                [PartitionModels(f.set_key, f.seeds, f.rows, f.curves) for f in fits],
            )
            fitted: dict[str, tuple[dict[int, Any], Normalizer]] = {
                f.set_key: (f.seeds, sets[f.set_key].norm) for f in fits
            }
            with torch.inference_mode():
                frame = evaluate_domain(
                    ds, evals, fitted.__getitem__, profile.hidden, periods.test.slice, dom.warmup, device
                )
            frame["budget"] = budget.mode
            sig = significance_for(frame, stats.wilcoxon_method, stats.n_boot, stats.alpha)
            where = {"domain": domain, "budget": budget.mode, "experiment": EXPERIMENT}
            writes += [("site_metrics", frame, where), ("significance", sig, where)]
            metric_frames.append(frame)
            tables.append(sig)
            context.log.info(f"{domain} [{budget.mode}]: {len(keys)} models evaluated")
    if not tables:
        raise dg.Failure("no domain has a global-vs-local comparison to test under several budgets")
    sig_all = pd.concat(tables, ignore_index=True)
    table = sign_changes(sig_all, metrics=("nse", "rmse", "corr"), aggregation=stats.seed_aggregation)
    writes += [
        ("budget_sensitivity", table[table["domain"] == d], {"domain": d}) for d in table["domain"].unique()
    ]
    db = store.store()
    # All or nothing: the site_metrics, significance and budget_sensitivity rows and both Parquet
    # files change together.
    with staged_outputs() as out:
        table.to_parquet(out.path(layout.sensitivity_table()), index=False)
        pd.concat(metric_frames).to_parquet(out.path(layout.sensitivity_site_metrics()), index=False)
        out.transaction(db.transaction(writes), db.path)
    meta: dict[str, Any] = {
        "modes": modes,
        "path": dg.MetadataValue.path(str(layout.sensitivity_dir())),
        "seed_aggregation": stats.seed_aggregation,
        "alpha (* in the grids: p < alpha)": stats.alpha,
    }
    for domain in table["domain"].unique():
        dt = table[table["domain"] == domain]
        for metric in PAPER_METRICS[domain]:
            grid = sensitivity_matrix(dt, metric, alpha=stats.alpha)
            if not grid.empty:
                meta[f"{domain}_{metric}"] = dg.MetadataValue.md(markdown_table(grid))
        regions = dt[dt["region"] != "All"]
        meta[f"{domain}_regions_sign_changed"] = int(regions.groupby("region")["sign_changed"].any().sum())
        meta[f"{domain}_regions"] = int(regions["region"].nunique())
    return dg.MaterializeResult(metadata=meta)
