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
        _publish(layout, store, budget, study.domains(), {}, {})
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
        _publish(layout, store, budget, study.domains(), {}, {})
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
    tables = {
        "site_metrics": metrics,
        "gauge_loss": loss,
        "significance": table,
        "verdicts": verdicts,
        "every_region": every,
    }
    _publish(layout, store, budget, study.domains(), tables, figures)
    return dg.MaterializeResult(
        metadata={**meta, "n_rows": len(metrics), "path": dg.MetadataValue.path(str(out_dir))}
    )


# the DuckDB table of each Parquet table that is also stored there
_STORED = {
    "site_metrics": "spatial_site_metrics",
    "gauge_loss": "spatial_gauge_loss",
    "significance": "spatial_significance",
}


def _writes(
    domains: list[str], budget: str, tables: dict[str, pd.DataFrame]
) -> list[tuple[str, pd.DataFrame, dict[str, str]]]:
    """The DuckDB writes of the three stored spatial tables, one per table and domain of the run:
    a domain's rows of ``budget`` are replaced by its rows in ``tables``, none if it has none (or
    the table is absent), so a domain without a holdout this time loses its earlier rows."""
    empty = pd.DataFrame({"domain": pd.Series(dtype=str)})
    writes = []
    for domain in domains:
        where = {"domain": domain, "budget": budget}
        for name, db_table in _STORED.items():
            frame = tables.get(name, empty)
            writes.append((db_table, frame[frame["domain"] == domain], where))
    return writes


def _publish(
    layout: Layout,
    store: MetadataStoreResource,
    budget: str,
    domains: list[str],
    tables: dict[str, pd.DataFrame],
    figures: dict[str, bytes],
) -> None:
    """Write the spatial ``tables`` (Parquet under evaluation/spatial/, by name) and ``figures``
    (PNG per domain) with the DuckDB rows, and remove every earlier spatial file this run does not
    write: with no holdout (``tables`` empty) all of them and the run's rows go, so neither the
    summary nor a query shows results the study as configured now does not produce. All or nothing:
    files and rows change together."""
    out_dir = layout.spatial_dir()
    keep = {layout.spatial_table(name) for name in tables} | {
        out_dir / f"gauge_skill_{domain}.png" for domain in figures
    }
    db = store.store()
    with staged_outputs() as out:
        for stale in sorted({*out_dir.glob("*.parquet"), *out_dir.glob("gauge_skill_*.png")} - keep):
            out.remove(stale)
        for name, frame in tables.items():
            frame.to_parquet(out.path(layout.spatial_table(name)), index=False)
        for domain, png in figures.items():
            out.write_bytes(out_dir / f"gauge_skill_{domain}.png", png)
        out.transaction(db.transaction(_writes(domains, budget, tables)), db.path)
