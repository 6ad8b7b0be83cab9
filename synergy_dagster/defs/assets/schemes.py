"""Stage 5, evaluation: compare the study's regionalisations (ecoregions, HUC-2, climate classes,
k-means, random regions): global vs local under each, and each against its size-matched null draws
(or, without draws, random regions)."""

from typing import Any

import dagster as dg
import pandas as pd

from synergy_dagster.defs.assets.evaluation import PAPER_METRICS, evaluation
from synergy_dagster.defs.metadata import png_markdown
from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource
from synergy_dagster.evaluation.figures import scheme_comparison_figure
from synergy_dagster.evaluation.schemes import COMPARISON_COLUMNS, compare_schemes, scheme_pairs
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.io_utils import staged_outputs

SHOWN = ["scheme", "metric", "n_regions", "n_sites", "median_global", "median_local", "share_global_better"]


@dg.asset(
    group_name="evaluation",
    deps=[evaluation],
    pool="duckdb",
    kinds={"scipy", "duckdb"},
    description=(
        "Regionalisation schemes compared (study file `stratification`): per domain, scheme and metric the "
        "median skill of the global and the local models, the share of sites where global wins, the "
        "Wilcoxon p (winner 'tie' unless p < alpha), and each scheme's local models against its "
        "size-matched null draws (permutation p over statistics.null_draws draws; without draws, "
        "against random regions), on the seed rows of statistics.seed_aggregation. Table "
        "scheme_comparison, evaluation/schemes/scheme_comparison.parquet and a figure per domain."
    ),
)
def scheme_comparison(study: StudyResource, store: MetadataStoreResource) -> dg.MaterializeResult:
    layout = study.layout
    metrics = pd.read_parquet(layout.site_metrics())
    budget = str(metrics["budget"].iloc[0]) if "budget" in metrics.columns and len(metrics) else "unknown"
    stats = study.spec.statistics
    method, agg = stats.wilcoxon_method, stats.seed_aggregation
    tables, figures, meta = [], {}, {}
    for domain in sorted(metrics["domain"].unique()):
        dm = metrics[metrics["domain"] == domain]
        names = PAPER_METRICS[domain]
        table = compare_schemes(dm, names, method=method, alpha=stats.alpha, aggregation=agg)
        table["budget"] = budget
        tables.append(table)
        if len(table):
            figures[domain] = scheme_comparison_figure(
                scheme_pairs(dm, names, agg),
                table,
                names,
                title=f"{domain}: global vs local per regionalisation [seeds: {agg}]",
            )
            meta[f"{domain}/table"] = dg.MetadataValue.md(
                markdown_table(table[SHOWN + ["p_value", "p_vs_null", "n_null_draws"]])
            )
            meta[f"{domain}/figure"] = png_markdown(figures[domain])
    table = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=[*COMPARISON_COLUMNS, "budget"])
    )
    db = store.store()
    writes = [("scheme_comparison", table, {"budget": budget})]
    # All or nothing: the table, its Parquet copy and the figures change together.
    with staged_outputs() as out:
        table.to_parquet(out.path(layout.scheme_comparison()), index=False)
        for domain, png in figures.items():
            out.write_bytes(layout.scheme_figure(domain), png)
        out.transaction(db.transaction(writes), db.path)
    extra: dict[str, Any] = {"path": dg.MetadataValue.path(str(layout.scheme_comparison()))}
    extra["seed_aggregation"] = agg
    extra["alpha (winner is a tie unless p < alpha)"] = stats.alpha
    return dg.MaterializeResult(metadata={"budget": budget, "n_rows": len(table), **extra, **meta})
