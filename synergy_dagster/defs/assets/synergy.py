"""The ``synergy_curves`` asset: skill on each ROI's own sites against the sites added from each
pool, and a slope per pool with its bootstrap uncertainty (the science in
:mod:`synergy_dagster.evaluation.synergy`; the sets in :mod:`synergy_dagster.experiments.synergy`).

Runs only where the study file enables ``synergy_curves``; otherwise, and for a domain whose plan
holds no curve sets, it reports a skip and removes an earlier run's curves (files and this
budget's rows), so only what the study now produces is stored. Per domain: table
``synergy_curves`` and ``synergy_slopes`` rows (one set per domain and budget), Parquet under
``evaluation/synergy_curves/`` and ``figures/<domain>_synergy_curves.png``, all in one staged
write with one DuckDB transaction."""

from typing import Any

import dagster as dg
import pandas as pd

from synergy_dagster.config import AUTO_METRIC, DOMAINS
from synergy_dagster.defs.assets.trained import predict_planned
from synergy_dagster.defs.metadata import png_markdown
from synergy_dagster.defs.resources import ComputeResource, MetadataStoreResource, StudyResource
from synergy_dagster.evaluation.figures import synergy_curves_figure
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.evaluation.synergy import curve_evaluations, curve_points, curve_table, slope_table
from synergy_dagster.experiments.synergy import curves_of
from synergy_dagster.io_utils import staged_outputs
from synergy_dagster.layout import Layout
from synergy_dagster.models.device import configure_threads, pick_device
from synergy_dagster.models.fit import load_plan

# per domain: site metrics, curves, slopes and the figure (PNG)
Curves = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, bytes]


@dg.asset(
    group_name="evaluation",
    deps=[dg.AssetKey(f"{d}_model") for d in DOMAINS],
    pool="duckdb",
    kinds={"pytorch", "duckdb", "matplotlib"},
    description=(
        "Synergy curves (study file `synergy_curves`, off by default): per ROI and pool (close, far, "
        "dissimilar) the median test skill on the ROI's own sites of models trained on the ROI plus k "
        "sites drawn from the pool (nested seeded draws, k on a grid up to the smallest pool, and all), "
        "draws averaged with their spread; per pool the slope on log2(1+k) with a t-interval over the "
        "draws' slopes widened by a site bootstrap, and the differences between pools (quantity or diversity of added data?). Tables "
        "synergy_curves, synergy_slopes; evaluation/synergy_curves/*.parquet; "
        "figures/<domain>_synergy_curves.png."
    ),
)
def synergy_curves(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    store: MetadataStoreResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    study_file = study.spec
    cfg = curves_of(study_file)
    layout = study.layout
    profile = study_file.training_profile()
    budget = profile.budget.mode
    if cfg is None:
        _store(layout, store, budget, study.domains(), {})
        return dg.MaterializeResult(metadata={"skipped": "the study file does not enable synergy_curves"})
    stats = study_file.statistics
    agg = stats.seed_aggregation
    configure_threads(compute.torch_threads, profile.hidden)
    device = pick_device(compute.device)
    results: dict[str, Curves] = {}
    meta: dict[str, Any] = {
        "budget": budget,
        "draws": cfg.draws,
        "bootstrap": cfg.bootstrap,
        "seed_aggregation": agg,
        "p-values from draws >=": stats.curve_min_draws,
    }
    for domain in study.domains():
        plan = load_plan(layout, domain)
        evals = curve_evaluations(plan.sets, domain)
        if evals.empty:
            meta[f"{domain}/skipped"] = (
                f"the plan holds no curve sets: its ROIs are {list(plan.rois)}, synergy_curves.rois is "
                f"{list(cfg.rois) if cfg.rois is not None else 'all'} (rematerialise {domain}_plan after "
                "enabling the block)"
            )
            context.log.warning(meta[f"{domain}/skipped"])
            continue
        sites = predict_planned(study, store, domain, evals, device, what="synergy-curve model").metrics
        points = curve_points(plan.sets)
        curves = curve_table(points, sites, aggregation=agg).assign(domain=domain, budget=budget)
        slopes = slope_table(
            points,
            sites,
            cfg.bootstrap,
            cfg.seed,
            alpha=stats.alpha,
            min_draws=stats.curve_min_draws,
            aggregation=agg,
        ).assign(domain=domain, budget=budget)
        metric = AUTO_METRIC[domain]
        png = synergy_curves_figure(
            curves,
            slopes,
            metric,
            title=f"{domain}: synergy curves, median {metric} on the ROI [{budget}; seeds: {agg}]",
            alpha=stats.alpha,
        )
        results[domain] = (sites.assign(budget=budget), curves, slopes, png)
        show = slopes[(slopes["metric"] == metric)][["region", "pool", "versus", "slope", "se", "p_value"]]
        meta[f"{domain}/slopes_{metric}"] = dg.MetadataValue.md(markdown_table(show.round(4)))
        meta[f"{domain}/figure"] = png_markdown(png, f"{domain} synergy curves")
        meta[f"{domain}/n_points"] = int(curves[["region", "pool", "point", "k"]].drop_duplicates().shape[0])
        context.log.info(f"{domain}: {points['region'].nunique()} ROIs, {len(points)} curve sets scored")
    _store(layout, store, budget, study.domains(), results)
    meta["folder"] = dg.MetadataValue.path(str(layout.synergy_dir()))
    return dg.MaterializeResult(metadata=meta)


def _store(
    layout: Layout,
    store: MetadataStoreResource,
    budget: str,
    domains: list[str],
    results: dict[str, Curves],
) -> None:
    """Write each domain's curves (site metrics, curves, slopes, figure) and its DuckDB rows of
    ``budget``; a domain of the run without curves this time (none planned, or the block turned
    off) loses an earlier run's files and rows, so only what the study now produces is stored. All
    or nothing: every file and row changes together."""
    db = store.store()
    empty = pd.DataFrame({"domain": pd.Series(dtype=str)})
    writes = []
    with staged_outputs() as out:
        for domain in domains:
            where = {"domain": domain, "budget": budget}
            paths = (
                layout.synergy_site_metrics(domain),
                layout.synergy_curves_table(domain),
                layout.synergy_slopes_table(domain),
                layout.synergy_curves_png(domain),
            )
            if domain in results:
                sites, curves, slopes, png = results[domain]
                for path, table in zip(paths[:3], (sites, curves, slopes), strict=True):
                    table.to_parquet(out.path(path), index=False)
                out.write_bytes(paths[-1], png)
            else:
                for path in paths:
                    if path.exists():
                        out.remove(path)
                curves = slopes = empty
            writes += [("synergy_curves", curves, where), ("synergy_slopes", slopes, where)]
        out.transaction(db.transaction(writes), db.path)
