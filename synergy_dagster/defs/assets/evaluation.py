"""Stage 5, evaluation: per-site metrics on the test period, significance tables, the paper's
figures, a summary report and the reproduction report (the paper's claims against this run), for
both domains."""

import errno
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import xarray as xr

from synergy_dagster.config import DOMAINS
from synergy_dagster.defs.assets.trained import predict_planned
from synergy_dagster.defs.metadata import png_markdown
from synergy_dagster.defs.resources import ComputeResource, MetadataStoreResource, StudyResource
from synergy_dagster.domains import DOMAIN_RECORDS
from synergy_dagster.errors import DiskFullError
from synergy_dagster.evaluation.figures import (
    boxplot_by_region,
    error_matrix,
    observed_vs_simulated,
    pick_sites,
    seed_spread_figure,
)
from synergy_dagster.evaluation.predictions import TAG_COLUMNS, predictions_dataset, write_predictions
from synergy_dagster.evaluation.report import build_report, run_setup
from synergy_dagster.evaluation.significance import significance_for
from synergy_dagster.evaluation.spatial import SpatialResults, is_spatial
from synergy_dagster.evaluation.statistics import (
    SEED_MEAN,
    judged_rows,
    judged_seed_label,
)
from synergy_dagster.evaluation.study import COMPARISONS, METRIC_NAMES
from synergy_dagster.evaluation.summary import markdown_table, study_summary
from synergy_dagster.evaluation.water_years import POOLED, skill_per_water_year, water_year_figure
from synergy_dagster.io_utils import StagedOutputs, atomic_write_text, staged_outputs
from synergy_dagster.layout import Layout
from synergy_dagster.models.device import configure_threads, pick_device
from synergy_dagster.models.fit import load_plan

GROUP = "evaluation"
MODEL_KEYS = [dg.AssetKey(f"{d}_model") for d in DOMAINS]
# By key: defs/assets/spatial.py imports this module (its asset follows `evaluation`).
SPATIAL_EVALUATION = dg.AssetKey("spatial_evaluation")
# The paper's test metrics per domain; the tables carry every metric, these lead the summary.
PAPER_METRICS = {d: list(r.paper_metrics) for d, r in DOMAIN_RECORDS.items()}


def _stage_predictions(out: StagedOutputs, cube: xr.Dataset, target: Path) -> None:
    """The predictions file, staged in ``out``; a full disk names ``target``, not its temp."""
    try:
        write_predictions(cube, out.path(target))
    except DiskFullError as exc:
        raise DiskFullError(target, exc.free_bytes, exc.errno or errno.ENOSPC) from exc


def _site_tags(layout: Layout, domain: str) -> pd.DataFrame | None:
    path = layout.sites_table(domain)
    if not path.exists():
        return None
    table = pd.read_parquet(path).drop_duplicates("site_id")
    return table.set_index("site_id")[[c for c in TAG_COLUMNS if c in table.columns]]


def _timeseries_figures(
    out: StagedOutputs, layout: Layout, domain: str, cube: xr.Dataset, frame: pd.DataFrame
) -> dict[str, Any]:
    """Observed vs simulated series of two sites per region (PNG parts under evaluation/figures),
    staged in ``out``; parts a previous, larger study left behind go when ``out`` publishes."""
    pngs = observed_vs_simulated(
        cube,
        pick_sites(frame),
        title=f"{domain}: observed vs simulated, median-NSE and low-NSE site per region",
    )
    paths = [layout.timeseries_png(domain, i + 1) for i in range(len(pngs))]
    for stale in sorted(set(layout.timeseries_pngs(domain)) - set(paths)):
        out.remove(stale)
    meta: dict[str, Any] = {}
    for i, (path, png) in enumerate(zip(paths, pngs, strict=True)):
        out.write_bytes(path, png)
        # Inline only the first part: each is a few hundred kB in the event log; the rest by path.
        meta[f"{domain}/{path.name}"] = (
            png_markdown(png, alt=path.stem) if i == 0 else dg.MetadataValue.path(str(path))
        )
    return meta


def _water_year_table(layout: Layout) -> Path:
    return layout.evaluation_dir() / "water_year_skill.parquet"


def _water_year_outputs(
    out: StagedOutputs, layout: Layout, domain: str, years: pd.DataFrame
) -> dict[str, Any]:
    """The figure of the pooled median NSE per water year (staged) and its table, for the UI."""
    png = water_year_figure(years)
    out.write_bytes(layout.figure(f"water_year_skill_{domain}.png"), png)
    pooled = years[years["region"] == POOLED].drop(columns=["domain", "region", "budget"])
    return {
        f"{domain}/water_year_skill": dg.MetadataValue.md(markdown_table(pooled) if len(pooled) else "none"),
        f"{domain}/water_year_skill.png": png_markdown(png, alt=f"{domain} water-year skill"),
        "water_year_table": dg.MetadataValue.path(str(_water_year_table(layout))),
    }


@dg.asset(
    group_name=GROUP,
    deps=MODEL_KEYS,
    pool="duckdb",
    kinds={"pytorch", "duckdb"},
    description=(
        "Test-period predictions of every planned model (one full-sequence pass with warm-up) and per-site "
        "RMSE, ubRMSE, bias, correlation, NSE and KGE on a common mask; per seed and for the seed mean. "
        "Uses the models of the configured training budget. Table site_metrics in DuckDB (one set of "
        "rows per budget mode) and evaluation/site_metrics.parquet; every model's test-period series "
        "with the observations in evaluation/predictions/<domain>.nc (CF NetCDF), and observed vs "
        "simulated series of two sites per region under evaluation/figures."
    ),
)
def evaluation(
    context: dg.AssetExecutionContext,
    study: StudyResource,
    store: MetadataStoreResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    layout = study.layout
    profile = study.spec.training_profile()
    budget = profile.budget.mode
    configure_threads(compute.torch_threads, profile.hidden)
    device = pick_device(compute.device)
    frames, year_frames = [], []
    meta: dict[str, Any] = {}
    db = store.store()
    writes: list[tuple[str, pd.DataFrame, dict[str, str]]] = []
    # All or nothing: every domain's site_metrics rows, predictions NetCDF and time-series figures
    # and site_metrics.parquet change together; each domain's files wait as temps beside their
    # targets (a cube is not held in memory) until the last domain is scored.
    with staged_outputs() as out:
        for domain in study.domains():
            plan = load_plan(layout, domain)
            # the spatial holdouts are scored by the spatial_evaluation asset
            evaluations = plan.evaluations[~is_spatial(plan.evaluations)]
            periods = study.spec.periods(domain)
            warmup = profile.for_domain(domain).warmup
            ds, n_masked, preds, frame = predict_planned(study, store, domain, evaluations, device)
            meta[f"{domain}/not_approved_days_masked"] = n_masked
            # The scored series, kept: one file per domain, built from the same predictions.
            cube = predictions_dataset(
                ds,
                evaluations,
                preds,
                periods.test.slice,
                warmup,
                tags=_site_tags(layout, domain),
                budget=budget,
            )
            del preds
            _stage_predictions(out, cube, layout.predictions(domain))
            meta[f"predictions/{domain}"] = dg.MetadataValue.path(str(layout.predictions(domain)))
            meta[f"predictions/{domain}/shape"] = dg.MetadataValue.json(
                {k: int(v) for k, v in cube.sizes.items()}
            )
            meta.update(_timeseries_figures(out, layout, domain, cube, frame))
            years = skill_per_water_year(cube).assign(budget=budget)  # does the lead hold year by year?
            del cube
            meta.update(_water_year_outputs(out, layout, domain, years))
            year_frames.append(years)
            writes.append(("water_year_skill", years, {"domain": domain, "budget": budget}))
            frame["budget"] = budget
            frames.append(frame)
            writes.append(("site_metrics", frame, {"domain": domain, "budget": budget}))
            context.log.info(f"{domain}: {frame['site_id'].nunique()} sites scored, {len(frame)} metric rows")
        metrics = pd.concat(frames, ignore_index=True)
        metrics.to_parquet(out.path(layout.site_metrics()), index=False)
        pd.concat(year_frames, ignore_index=True).to_parquet(out.path(_water_year_table(layout)), index=False)
        out.transaction(db.transaction(writes), db.path)
    med = (
        metrics[metrics["seed"] == "mean"]
        .groupby(["domain", "experiment", "scenario"])[list(METRIC_NAMES)]
        .median()
        .reset_index()
    )
    return dg.MaterializeResult(
        metadata={
            "budget": budget,
            "n_rows": len(metrics),
            "path": dg.MetadataValue.path(str(layout.site_metrics())),
            "medians": dg.MetadataValue.md(markdown_table(med)),
            **meta,
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[evaluation],
    pool="duckdb",
    kinds={"scipy", "duckdb"},
    description=(
        "Wilcoxon signed-rank tests per region and All (the paper's Tables 2-5), with Holm-corrected p-values, "
        "median paired differences with bootstrap CIs, rank-biserial effect sizes and shares of sites improved. "
        "The p-value method is the study file's statistics.wilcoxon_method (default 'paper': scipy's normal "
        "approximation, as the paper), recorded in each row; with several seeds also the test on per-site "
        "seed means (seed 'seed_mean') and the spread across seeds."
    ),
)
def significance(study: StudyResource, store: MetadataStoreResource) -> dg.MaterializeResult:
    layout = study.layout
    stats = study.spec.statistics
    metrics = pd.read_parquet(layout.site_metrics())
    table = significance_for(metrics, stats.wilcoxon_method, stats.n_boot, stats.alpha)
    budget = str(metrics["budget"].iloc[0])
    db = store.store()
    # All or nothing: every domain's significance rows and significance.parquet change together.
    with staged_outputs() as out:
        table.to_parquet(out.path(layout.significance()), index=False)
        writes = [  # also clears a domain whose table is now empty
            ("significance", table[table["domain"] == domain], {"domain": domain, "budget": budget})
            for domain in metrics["domain"].unique()
        ]
        out.transaction(db.transaction(writes), db.path)
    md = {}
    judged = table[table["seed"].astype(str) == judged_seed_label(table["seed"], stats.seed_aggregation)]
    for (domain, experiment), g in judged.groupby(["domain", "experiment"]):
        g = g[g["metric"].isin(PAPER_METRICS[domain])]
        md[f"{domain}/{experiment}"] = dg.MetadataValue.md(
            markdown_table(
                g[
                    [
                        "comparison",
                        "region",
                        "metric",
                        "n",
                        "p_value",
                        "p_holm",
                        "median_a",
                        "median_b",
                        "share_a_better",
                        "effect",
                    ]
                ]
            )
        )
    return dg.MaterializeResult(
        metadata={
            "budget": budget,
            "wilcoxon_method": stats.wilcoxon_method,
            "seed_aggregation (metadata tables)": stats.seed_aggregation,
            "n_rows": len(table),
            **md,
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[evaluation, significance],
    kinds={"matplotlib"},
    description=(
        "The paper's figures: boxplots per region (global vs local; the four similarity scenarios, with and "
        "without size control) and error matrices of the size-controlled case; PNGs under evaluation/figures."
    ),
)
def figures(study: StudyResource) -> dg.MaterializeResult:
    layout = study.layout
    aggregation = study.spec.statistics.seed_aggregation
    metrics = judged_rows(pd.read_parquet(layout.site_metrics()), aggregation, list(METRIC_NAMES))
    seeds = f" [seeds: {aggregation}]"
    meta: dict[str, Any] = {}
    # All or nothing: the figures of this run replace those of the last one together.
    with staged_outputs() as out:
        for domain in metrics["domain"].unique():
            dm = metrics[metrics["domain"] == domain]
            for experiment, comps in COMPARISONS.items():
                em = dm[dm["experiment"] == experiment]
                if em.empty:
                    continue
                scenarios = list(dict.fromkeys(s for _, a, b in comps for s in (a, b)))
                for metric in PAPER_METRICS[domain]:
                    png = boxplot_by_region(
                        em, metric, scenarios, title=f"{domain} {experiment}: {metric}{seeds}"
                    )
                    name = f"{domain}_{experiment}_{metric}_boxplot.png"
                    out.write_bytes(layout.figure(name), png)
                    meta[name] = png_markdown(png)
            sized = dm[dm["experiment"].isin(["similarity", "similarity_sized"])]
            if not sized.empty:
                for metric in PAPER_METRICS[domain]:
                    table = sized.groupby(["region", "scenario"])[metric].median().reset_index()
                    png = error_matrix(
                        table, value=metric, title=f"{domain}: median {metric} per ROI and scenario{seeds}"
                    )
                    name = f"{domain}_error_matrix_{metric}.png"
                    out.write_bytes(layout.figure(name), png)
                    meta[name] = png_markdown(png)
        meta.update(_seed_spread_figures(out, layout, aggregation, study.spec.statistics.alpha))
    meta["folder"] = dg.MetadataValue.path(str(layout.figures_dir()))
    meta["seed_aggregation"] = aggregation
    return dg.MaterializeResult(metadata=meta)


def _seed_spread_figures(
    out: StagedOutputs, layout: Layout, aggregation: str, alpha: float
) -> dict[str, Any]:
    """With several seeds: per domain, experiment and paper metric, each seed's median difference
    next to the test on the rows of the study's seed ``aggregation`` with its (1 - ``alpha``)
    interval, staged in ``out`` (files of a study with fewer seeds go when ``out`` publishes)."""
    sig = pd.read_parquet(layout.significance()) if layout.significance().exists() else pd.DataFrame()
    meta: dict[str, Any] = {}
    written = set()
    if "seed" in sig.columns and (sig["seed"].astype(str) == SEED_MEAN).any():
        for (domain, experiment), g in sig.groupby(["domain", "experiment"]):
            for metric in PAPER_METRICS.get(str(domain), []):
                path = layout.seed_spread_png(str(domain), str(experiment), metric)
                png = seed_spread_figure(
                    g,
                    metric,
                    aggregate=judged_seed_label(sig["seed"], aggregation),
                    title=f"{domain} {experiment}: {metric} across seeds [seeds: {aggregation}]",
                    alpha=alpha,
                )
                out.write_bytes(path, png)
                written.add(path)
                meta[path.name] = png_markdown(png)
    for stale in sorted(set(layout.figures_dir().glob("*_seed_spread.png")) - written):
        out.remove(stale)
    return meta


def _spatial_results(study: StudyResource, budget: str) -> SpatialResults | None:
    """The spatial holdouts' stored verdicts and gauge-loss table for the summary and the report,
    on the rows the study's seed aggregation judges; None when the study sets no holdout (both
    texts are then exactly as without the feature). Tables missing, or of another budget, give
    empty results (the section then says so) rather than an earlier run's numbers."""
    if not study.spec.spatial.enabled:
        return None
    layout = study.layout
    names = ("verdicts", "every_region", "gauge_loss")
    tables = [pd.read_parquet(p) for p in map(layout.spatial_table, names) if p.exists()]
    if len(tables) < len(names) or set(tables[0]["budget"].astype(str)) != {budget}:
        tables = [pd.DataFrame(columns=["seed"]) for _ in names]
    verdicts, every, loss = tables
    return SpatialResults.judged(verdicts, every, loss, study.spec.statistics.seed_aggregation)


@dg.asset(
    group_name=GROUP,
    deps=[significance, figures, SPATIAL_EVALUATION],
    kinds={"python"},
    description=(
        "Headline numbers in Markdown: medians per scenario, p-values and the share of sites improved, "
        "both domains, and, where the study sets spatial holdouts, the skill lost without a gauge and "
        "their verdicts; evaluation/summary.md."
    ),
)
def summary(context: dg.AssetExecutionContext, study: StudyResource) -> dg.MaterializeResult:
    layout = study.layout
    stats = study.spec.statistics
    metrics = pd.read_parquet(layout.site_metrics())
    table = pd.read_parquet(layout.significance())
    judged = judged_rows(metrics, stats.seed_aggregation, list(METRIC_NAMES))
    label = judged_seed_label(table["seed"], stats.seed_aggregation)
    budget = str(metrics["budget"].iloc[0])
    text = study_summary(
        judged,
        table[table["seed"].astype(str) == label],
        alpha=stats.alpha,
        spatial=_spatial_results(study, budget),
    )
    head, _, rest = text.partition("\n")
    text = (
        f"{head}\n\nTraining budget: **{budget}** (see the learning curves under evaluation/figures). "
        f"Seed aggregation: **{stats.seed_aggregation}** (rows `{label}`).\n{rest}"
    )
    path = layout.summary()
    atomic_write_text(path, text)
    context.log.info(f"summary written to {path}")
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(text),
            "path": dg.MetadataValue.path(str(path)),
            "n_sites": len(judged),
            "seed_aggregation": stats.seed_aggregation,
        }
    )


@dg.asset(
    group_name=GROUP,
    deps=[significance, summary, SPATIAL_EVALUATION],
    pool="duckdb",
    kinds={"python"},
    description=(
        "The paper's headline claims (global vs local RMSE/correlation/NSE and shares of sites, Table 2 per "
        "region, the direction of each similarity comparison of Tables 3-5) next to this run's numbers, with "
        "what differs in the data (sites, forcing, periods, inputs), profile, budget, seeds and code version, "
        "and a verdict per claim: holds / does not hold / not testable here; where the study sets spatial "
        "holdouts, their results beyond the paper (no claim of the paper). evaluation/reproduction_report.md "
        "and reproduction_verdicts.parquet."
    ),
)
def reproduction_report(
    context: dg.AssetExecutionContext, study: StudyResource, store: MetadataStoreResource
) -> dg.MaterializeResult:
    layout = study.layout
    study_file = study.spec
    stats = study_file.statistics
    profile = study_file.training_profile()
    metrics = pd.read_parquet(layout.site_metrics())
    table = pd.read_parquet(layout.significance())
    budget = str(metrics["budget"].iloc[0])
    domains = [str(d) for d in metrics["domain"].unique()]
    models = {
        d: store.store().query("SELECT * FROM models WHERE domain = ? AND budget = ?", [d, budget])
        for d in domains
    }
    sets = {d: store.store().query("SELECT * FROM training_sets WHERE domain = ?", [d]) for d in domains}
    methods = sorted(set(table["method"].dropna().astype(str))) if "method" in table.columns else []
    setup = run_setup(
        study_file,
        profile,
        table,
        models,
        sources=store.store().query("SELECT * FROM sources", []),
        training_sets=sets,
        method="/".join(methods) or stats.wilcoxon_method,
    )
    setup.study["training budget of the evaluated models"] = budget
    report = build_report(
        table,
        metrics,
        setup,
        alpha=stats.alpha,
        aggregation=stats.seed_aggregation,
        margin=stats.equivalence_margin,
        spatial=_spatial_results(study, budget),
    )
    with staged_outputs() as out:  # the report and its verdicts table change together
        out.write_text(layout.reproduction_report(), report.markdown)
        report.verdicts.to_parquet(out.path(layout.reproduction_verdicts()), index=False)
    counts = report.verdicts["verdict"].value_counts().to_dict()
    context.log.info(f"reproduction report written to {layout.reproduction_report()}: {counts}")
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(report.markdown),
            "path": dg.MetadataValue.path(str(layout.reproduction_report())),
            "verdicts": dg.MetadataValue.json({str(k): int(v) for k, v in counts.items()}),
            "budget": budget,
            "wilcoxon_method": stats.wilcoxon_method,
            "seed_aggregation": stats.seed_aggregation,
        }
    )
