"""Stage 5, evaluation of the spatial holdouts (study file ``spatial:``): PUB and PUR models
predict the sites they never saw; per-site metrics, paired tests, the gauge-loss table and figure.

The science is :mod:`synergy_dagster.evaluation.spatial`; this asset loads the plan's spatial
evaluations and the models, scores them and stores the results."""

from typing import Any

import dagster as dg
import pandas as pd

from synergy_dagster.defs.assets.evaluation import PAPER_METRICS, evaluation
from synergy_dagster.defs.assets.trained import missing_message, model_loader, trained_models
from synergy_dagster.defs.metadata import png_markdown
from synergy_dagster.defs.resources import ComputeResource, MetadataStoreResource, StudyResource
from synergy_dagster.evaluation.spatial import (
    every_region_verdicts,
    gauge_figure,
    is_spatial,
    judge_domain,
    pool_folds,
    row_verdicts,
)
from synergy_dagster.evaluation.study import METRIC_NAMES, predict_evaluations
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.io_utils import staged_outputs
from synergy_dagster.models.device import configure_threads, pick_device
from synergy_dagster.models.fit import load_plan


@dg.asset(
    group_name="evaluation",
    deps=[evaluation],
    pool="duckdb",
    kinds={"pytorch", "duckdb"},
    description=(
        "Spatial holdouts (study file `spatial`): the PUB and PUR models predict, on the test period, the "
        "sites they never trained on; per-site metrics (table spatial_site_metrics, with the PUB fold), "
        "Wilcoxon tests per region and pooled (spatial_significance) with a verdict per row and one in "
        "every region (verdicts.parquet, every_region.parquet), and the skill each model kind loses "
        "when the gauge is taken away, temporal vs PUB vs PUR on the same sites (spatial_gauge_loss, "
        "evaluation/spatial/ and a figure per domain). Skipped when the study asks for no holdout."
    ),
)
def spatial_evaluation(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    store: MetadataStoreResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    if not study.spec.spatial.enabled:
        return dg.MaterializeResult(metadata={"skipped": "the study sets no spatial holdout (spatial:)"})
    layout = study.layout
    profile = study.spec.training_profile()
    budget = profile.budget.mode
    configure_threads(compute.torch_threads, profile.hidden)
    device = pick_device(compute.device)
    stats = study.spec.statistics
    temporal = pd.read_parquet(layout.site_metrics())
    frames, losses, tests, figures = [], [], [], {}
    meta: dict[str, Any] = {"budget": budget}
    for domain in study.domains():
        evaluations = load_plan(layout, domain).evaluations
        evaluations = evaluations[is_spatial(evaluations)]
        if evaluations.empty:
            meta[f"{domain}/skipped"] = "no spatial holdout could be formed (see the plan's excluded)"
            continue
        models = trained_models(store, domain, budget)
        missing = sorted(set(evaluations["model_key"]) - set(models["set_key"]))
        if missing:
            raise dg.Failure(missing_message(domain, missing, budget))
        frame = predict_evaluations(
            layout,
            domain,
            study.domain(domain).usgs,
            study.spec.periods(domain).test,
            profile.for_domain(domain).warmup,
            evaluations,
            models,
            model_loader(models, layout, domain),
            device,
        ).metrics
        frame = pool_folds(frame.assign(budget=budget))
        frames.append(frame)
        names = PAPER_METRICS[domain]
        test, loss = judge_domain(
            frame,
            temporal[temporal["domain"] == domain],
            list(METRIC_NAMES),
            list(names),
            stats.seed_aggregation,
            stats.wilcoxon_method,
            stats.n_boot,
            stats.alpha,
        )
        tests.append(test)
        loss["budget"] = budget
        losses.append(loss)
        headline = loss[loss["metric"] == names[0]]
        figures[domain] = gauge_figure(headline, f"{domain}: skill with and without a gauge")
        meta[f"{domain}/gauge_loss"] = dg.MetadataValue.md(markdown_table(loss.drop(columns=["budget"])))
        meta[f"{domain}/figure"] = png_markdown(
            figures[domain], alt=f"{domain} skill with and without a gauge"
        )
        context.log.info(f"{domain}: {frame['site_id'].nunique()} held-out sites scored")
    out_dir = layout.spatial_dir()
    if not frames:
        # no holdout formed: the tables of an earlier run go, so the summary does not show them
        with staged_outputs() as out:
            for stale in sorted({*out_dir.glob("*.parquet"), *out_dir.glob("gauge_skill_*.png")}):
                out.remove(stale)
        return dg.MaterializeResult(metadata={**meta, "skipped": "no domain has a spatial holdout"})
    metrics = pd.concat(frames, ignore_index=True)
    loss = pd.concat(losses, ignore_index=True)
    table = pd.concat(tests, ignore_index=True).assign(budget=budget, method=stats.wilcoxon_method)
    verdicts = row_verdicts(table, stats.alpha, stats.equivalence_margin)
    every = every_region_verdicts(verdicts, stats.alpha)
    meta["verdicts"] = dg.MetadataValue.md(
        markdown_table(
            verdicts[verdicts["region"] == "All"][
                [
                    "domain",
                    "experiment",
                    "comparison",
                    "metric",
                    "seed",
                    "n",
                    "median_diff",
                    "p_holm",
                    "verdict",
                    "winner",
                ]
            ]
        )
    )
    meta["every_region"] = dg.MetadataValue.md(markdown_table(every))
    db = store.store()
    writes = []
    for domain in sorted(metrics["domain"].unique()):
        where = {"domain": domain, "budget": budget}
        writes += [
            ("spatial_site_metrics", metrics[metrics["domain"] == domain], where),
            ("spatial_gauge_loss", loss[loss["domain"] == domain], where),
            ("spatial_significance", table[table["domain"] == domain], where),
        ]
    # All or nothing: the three tables, their Parquet copies and the figures change together.
    with staged_outputs() as out:
        metrics.to_parquet(out.path(layout.spatial_table("site_metrics")), index=False)
        loss.to_parquet(out.path(layout.spatial_table("gauge_loss")), index=False)
        table.to_parquet(out.path(layout.spatial_table("significance")), index=False)
        verdicts.to_parquet(out.path(layout.spatial_table("verdicts")), index=False)
        every.to_parquet(out.path(layout.spatial_table("every_region")), index=False)
        for domain, png in figures.items():
            out.write_bytes(out_dir / f"gauge_skill_{domain}.png", png)
        out.transaction(db.transaction(writes), db.path)
    return dg.MaterializeResult(
        metadata={**meta, "n_rows": len(metrics), "path": dg.MetadataValue.path(str(out_dir))}
    )
