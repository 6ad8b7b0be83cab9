"""Stage 5, evaluation of the spatial holdouts (study file ``spatial:``): PUB and PUR models
predict the sites they never saw; per-site metrics, paired tests, the gauge-loss table and figure.

The science is :mod:`synergy_dagster.evaluation.spatial`; this asset loads the plan's spatial
evaluations and the models, scores them and stores the results."""

from typing import Any

import dagster as dg
import pandas as pd

from synergy_dagster.defs.assets.evaluation import PAPER_METRICS, evaluation
from synergy_dagster.defs.assets.trained import predict_planned
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
from synergy_dagster.evaluation.study import METRIC_NAMES
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.io_utils import staged_outputs
from synergy_dagster.layout import Layout
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
        "evaluation/spatial/ and a figure per domain). Without a holdout it removes an earlier run's "
        "spatial files and this budget's rows, so only what the study now produces is stored."
    ),
)
def spatial_evaluation(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    store: MetadataStoreResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    layout = study.layout
    profile = study.spec.training_profile()
    budget = profile.budget.mode
    if not study.spec.spatial.enabled:
        _clear(layout, store, study.domains(), budget)
        return dg.MaterializeResult(metadata={"skipped": "the study sets no spatial holdout (spatial:)"})
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
        frame = predict_planned(study, store, domain, evaluations, device).metrics
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
        _clear(layout, store, study.domains(), budget)
        return dg.MaterializeResult(metadata={**meta, "skipped": "no domain has a spatial holdout"})
    metrics = pd.concat(frames, ignore_index=True)
    loss = pd.concat(losses, ignore_index=True)
    table = pd.concat(tests, ignore_index=True).assign(budget=budget, method=stats.wilcoxon_method)
    verdicts = row_verdicts(table, stats.alpha, stats.equivalence_margin)
    every = every_region_verdicts(verdicts, stats.alpha).assign(budget=budget)
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
    # every domain of the run, so that a domain without a holdout this time loses its earlier rows
    writes = _writes(study.domains(), budget, metrics, loss, table)
    # All or nothing: the three tables, their Parquet copies and the figures change together.
    with staged_outputs() as out:
        for stale in set(out_dir.glob("gauge_skill_*.png")) - {
            out_dir / f"gauge_skill_{d}.png" for d in figures
        }:
            out.remove(stale)
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


_TABLES = ("spatial_site_metrics", "spatial_gauge_loss", "spatial_significance")


def _writes(
    domains: list[str], budget: str, *frames: pd.DataFrame
) -> list[tuple[str, pd.DataFrame, dict[str, str]]]:
    """The DuckDB writes of the three spatial tables (``frames`` in :data:`_TABLES` order), one per
    table and domain of the run: a domain's rows of ``budget`` are replaced by its rows in the
    frame, none if it has none."""
    writes = []
    for domain in domains:
        where = {"domain": domain, "budget": budget}
        writes += [(name, f[f["domain"] == domain], where) for name, f in zip(_TABLES, frames, strict=True)]
    return writes


def _clear(layout: Layout, store: MetadataStoreResource, domains: list[str], budget: str) -> None:
    """No holdout this time (none asked for, or none formed): the tables, figures and DuckDB rows of
    an earlier run go, together, so that neither the summary nor a query shows results the study as
    configured now does not produce."""
    out_dir = layout.spatial_dir()
    empty = pd.DataFrame({"domain": pd.Series(dtype=str)})
    db = store.store()
    with staged_outputs() as out:
        for stale in sorted({*out_dir.glob("*.parquet"), *out_dir.glob("gauge_skill_*.png")}):
            out.remove(stale)
        out.transaction(db.transaction(_writes(domains, budget, empty, empty, empty)), db.path)
