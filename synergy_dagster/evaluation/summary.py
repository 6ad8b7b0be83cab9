"""Markdown reports of the study: pipe tables and the headline numbers per domain and experiment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from synergy_dagster.domains import DOMAIN_RECORDS
from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.metrics import METRICS

if TYPE_CHECKING:  # the type only: importing the spatial module would load matplotlib here
    from synergy_dagster.evaluation.spatial import SpatialResults

__all__ = [
    "GROUP_COLUMNS",
    "markdown_table",
    "median_table",
    "seed_spread_text",
    "spatial_section",
    "study_summary",
]

# Columns that, when present, split site_metrics / significance into separate report sections.
GROUP_COLUMNS = ("domain", "experiment")


def _cell(v: object, floatfmt: str) -> str:
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return "" if math.isnan(float(v)) else format(float(v), floatfmt)
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3g", index: bool = False) -> str:
    """A GitHub pipe table of ``df``; floats formatted with ``floatfmt``, NaN as an empty cell,
    numeric columns right-aligned. ``index=True`` adds the index as the first column."""
    if index:
        df = df.reset_index()
    cols = [str(c) for c in df.columns]
    numeric = [
        pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns
    ]
    lines = [
        "| " + " | ".join(_cell(c, floatfmt) for c in cols) + " |",
        "|" + "|".join("---:" if num else "---" for num in numeric) + "|",
    ]
    for row in df.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines) + "\n"


def median_table(
    site_metrics: pd.DataFrame, metric: str, row_col: str = "region", col_col: str = "scenario"
) -> pd.DataFrame:
    """Long table ``[row_col, col_col, median, n]`` of the per-site ``metric`` (NaN left out)."""
    for c in (row_col, col_col, metric):
        if c not in site_metrics.columns:
            raise InputError("site_metrics", f"missing column {c!r}")
    g = site_metrics.groupby([row_col, col_col], sort=True, observed=True)[metric]
    out = pd.DataFrame({"median": g.median(), "n": g.count()}).reset_index()
    return out.astype({"n": "int64"})


def _metric_columns(df: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    if metrics is not None:
        missing = [m for m in metrics if m not in df.columns]
        if missing:
            raise InputError("site_metrics", f"missing metric column(s) {missing}")
        return list(metrics)
    return [m for m in METRICS if m in df.columns]


def _headline(r: pd.Series) -> str:
    p = r["p_value"]
    p_txt = "n/a" if pd.isna(p) else f"{p:.2g}"
    share = r["share_a_better"]
    share_txt = "n/a" if pd.isna(share) else f"{share:.0%}"
    return (
        f"- {r['comparison']} ({r['scenario_a']} vs {r['scenario_b']}), {r['metric']}: median "
        f"{_cell(r['median_a'], '.3g')} vs {_cell(r['median_b'], '.3g')}; {r['scenario_a']} better "
        f"at {share_txt} of {int(r['n'])} sites; Wilcoxon p = {p_txt}{seed_spread_text(r)}"
    )


def seed_spread_text(r: pd.Series) -> str:
    """``"; across S seeds: ..."`` for a significance row with the seed-spread columns of
    :func:`~synergy_dagster.evaluation.statistics.seed_spread` (empty for one seed)."""
    n = r.get("n_seeds")
    if n is None or pd.isna(n) or int(n) < 2:
        return ""
    return (
        f"; across {int(n)} seeds: SD of the median difference {_cell(r['seed_sd_median_diff'], '.2g')}, "
        f"{r['scenario_a']} better at {r['seed_min_share']:.0%}-{r['seed_max_share']:.0%} of sites, "
        f"same direction in {int(r['seeds_agree'])} of {int(n)}, largest p {r['seed_max_p']:.2g}"
    )


def study_summary(
    site_metrics: pd.DataFrame,
    significance: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    title: str = "Data synergy study: summary",
    all_label: str = "All",
    alpha: float = 0.05,
    spatial: SpatialResults | None = None,
) -> str:
    """Markdown report: per domain and experiment (columns of ``GROUP_COLUMNS`` that are present),
    the median of each metric per scenario, the pooled ("All") tests with their headline numbers,
    and how many regions stay significant after the Holm adjustment.

    ``site_metrics``: one row per site per scenario (``scenario``, ``site_id`` and metric columns);
    ``significance``: rows of :func:`~synergy_dagster.evaluation.statistics.significance_table`,
    with the same group columns where there are several domains or experiments. ``spatial``: the
    study's spatial holdouts, a last section (:func:`spatial_section`); without them (a study with
    no ``spatial:`` block) the text is the temporal summary alone.
    """
    if "scenario" not in site_metrics.columns:
        raise InputError("site_metrics", "missing column 'scenario'")
    mcols = _metric_columns(site_metrics, metrics)
    keys = [c for c in GROUP_COLUMNS if c in site_metrics.columns]
    parts = [f"# {title}\n"]
    groups = site_metrics.groupby(keys, sort=True) if keys else [((), site_metrics)]
    for key, sm in groups:
        key_t = key if isinstance(key, tuple) else (key,)
        if keys:
            parts.append("## " + " / ".join(str(k) for k in key_t) + "\n")
        g = sm.groupby("scenario", sort=True)
        med = g[mcols].median()
        med.insert(0, "sites", g["site_id"].nunique() if "site_id" in sm.columns else g.size())
        parts.append("Median per site, by scenario:\n")
        parts.append(markdown_table(med.reset_index()))
        sig = significance
        for k, v in zip(keys, key_t, strict=True):
            if k in sig.columns:
                sig = sig[sig[k] == v]
        if sig.empty:
            parts.append("No significance tests.\n")
            continue
        pooled = sig[sig["region"].astype(str) == all_label]
        regional = sig[sig["region"].astype(str) != all_label]
        if not pooled.empty:
            parts.append("Headline (all sites pooled):\n")
            parts.append("\n".join(_headline(r) for _, r in pooled.iterrows()) + "\n")
        if not regional.empty:
            counts = (
                regional.assign(sig=regional["p_holm"] < alpha)
                .groupby(["comparison", "metric"], sort=False)
                .agg(regions=("region", "size"), significant=("sig", "sum"))
                .reset_index()
            )
            cols = ["comparison", "metric", "n", "median_a", "median_b", "p_value", "share_a_better"]
            if "n_seeds" in pooled.columns and (pooled["n_seeds"].fillna(0) >= 2).any():
                cols += ["seed_sd_median_diff", "seed_min_share", "seed_max_share", "seed_max_p"]
            if pooled.empty:
                table = counts
            else:  # keep the order of the significance table
                table = pooled[cols].merge(counts, on=["comparison", "metric"], how="left")
            table = table.rename(columns={"significant": f"regions p_holm<{alpha:g}"})
            methods = sorted(set(sig["method"].dropna().astype(str))) if "method" in sig.columns else []
            how = f"; p-values by the {'/'.join(methods)} method" if methods else ""
            parts.append(f"\nTests (Wilcoxon signed-rank, paired by site{how}):\n")
            parts.append(markdown_table(table))
    if spatial is not None:
        intro = (
            "PUB (k-fold over sites) and PUR (a whole region left out): each site predicted by a model "
            "that never saw it; a is the unified model, b the regional one (PUB: local, PUR: the "
            f"partner region). Verdicts: `difference` (Holm-corrected p < {alpha:g}), `equivalent` "
            "(within the study's equivalence margin) or `inconclusive`; in every region also `mixed` "
            "(significant differences in both directions). See docs/spatial.md.\n"
        )
        parts.append(spatial_section(spatial, "## Where there is no gauge: spatial holdouts", intro))
    return "\n".join(parts)


_POOLED_SHOWN = [
    "domain",
    "experiment",
    "comparison",
    "metric",
    "n",
    "median_a",
    "median_b",
    "p_holm",
    "verdict",
    "winner",
]
# the every-region table without its scenario and seed columns (said in the text around it)
_EVERY_HIDDEN = ["scenario_a", "scenario_b", "seed"]


def _paper_metric_rows(df: pd.DataFrame, headline_only: bool = False) -> pd.DataFrame:
    """The rows of ``df`` on the metrics the paper reports for their domain (only the first, the
    headline, with ``headline_only``)."""

    def wanted(domain: object) -> tuple[str, ...]:
        record = DOMAIN_RECORDS.get(str(domain))
        names = record.paper_metrics if record else tuple(METRICS)
        return names[:1] if headline_only else names

    keep = [m in wanted(d) for d, m in zip(df["domain"], df["metric"], strict=True)]
    return df[keep]


def spatial_section(spatial: SpatialResults, heading: str, intro: str) -> str:
    """A Markdown section on the spatial holdouts: ``heading``, ``intro``, the skill each model kind
    loses without a gauge on each domain's headline metric (temporal vs PUB vs PUR on the same
    sites), and the pooled and every-region verdicts on the paper's metrics of each domain."""
    parts = [f"{heading}\n", intro]
    if spatial.verdicts.empty:
        parts.append(
            "No spatial results are stored for this run: `spatial_evaluation` formed no holdout (see the "
            "plan's `excluded`) or has not been materialized.\n"
        )
        return "\n".join(parts)
    loss = _paper_metric_rows(spatial.gauge_loss, headline_only=True)
    parts.append(
        f"Skill with and without a gauge (seed rows `{spatial.seed}`; `median_loss`: temporal minus "
        "holdout per site, `share_worse`: the share of sites worse without the gauge):\n"
    )
    parts.append(markdown_table(loss.drop(columns=["budget"], errors="ignore")))  # said above the table
    verdicts = _paper_metric_rows(spatial.verdicts)
    pooled = verdicts[verdicts["region"].astype(str) == "All"]
    parts.append("Pooled over every held-out site:\n")
    parts.append(markdown_table(pooled[_POOLED_SHOWN]))
    every = _paper_metric_rows(spatial.every_region)
    parts.append(
        "In every region (how many regions show a difference for a, for b, are equivalent or "
        "inconclusive; Holm-corrected p per region):\n"
    )
    parts.append(markdown_table(every.drop(columns=_EVERY_HIDDEN, errors="ignore")))
    return "\n".join(parts)
