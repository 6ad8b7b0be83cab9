"""Paired, per-site comparisons of two models: Wilcoxon signed-rank tests, Holm adjustment,
bootstrap confidence intervals, effect sizes and the significance tables of the paper.

All functions take two equally long per-site vectors ``a`` and ``b`` (site i of ``a`` is site i
of ``b``) and drop the pairs with NaN in either first, as the authors' scripts did.

The Wilcoxon p-value depends on how its null distribution is computed, a setting
(:data:`WILCOXON_METHODS`): ``"paper"`` (the default) is the normal approximation the authors'
scipy used, which reproduces the paper's tables (region Q of Table 2, n = 7, every pair one way:
1.80E-02); current scipy picks the exact distribution below n = 50 by default (0.0156 there).
With several seeds, :func:`per_site_seed_means` and :func:`seed_spread` give the paired test on
per-site seed means and how much each statistic varies across seeds.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.stats

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.metrics import METRICS

__all__ = [
    "PAPER_METHOD",
    "ENSEMBLE",
    "SEED_AGGREGATIONS",
    "SEED_MEAN",
    "SEED_SPREAD_COLUMNS",
    "SIGNIFICANCE_COLUMNS",
    "WILCOXON_METHODS",
    "WilcoxonResult",
    "check_method",
    "compare",
    "holm",
    "judged_rows",
    "judged_seed_label",
    "median_diff_ci",
    "paired_valid",
    "paired_wilcoxon",
    "per_site_seed_means",
    "rank_biserial",
    "seed_spread",
    "share_better",
    "significance_table",
]

# Cap on the number of elements of one bootstrap chunk (n_boot_chunk x n): ~64 MB of float64.
_BOOT_CHUNK_ELEMENTS = 8_000_000


# How the Wilcoxon p-value is computed (the statistics setting ``wilcoxon_method``):
#   paper  - scipy's normal approximation (``method="asymptotic"``, formerly "approx"), no continuity
#            correction, zero differences dropped ("wilcox"), two-sided: the scipy of the paper's
#            time, whose p-values the paper prints (Table 2, region Q: 1.80E-02 at n = 7);
#   approx - the same normal approximation under scipy's own name (identical p-values);
#   exact  - the exact null distribution (scipy warns that it is not exact with ties or zeros);
#   auto   - whatever the installed scipy picks by default (1.17: exact for n <= 50 without ties or
#            zeros, a permutation test for n <= 13 with them, else the normal approximation).
WILCOXON_METHODS = ("paper", "exact", "auto", "approx")
PAPER_METHOD = "paper"
_SCIPY_METHOD = {"paper": "asymptotic", "approx": "asymptotic", "exact": "exact", "auto": "auto"}
# The seed label of the rows tested on per-site means of the per-seed metrics (several seeds).
SEED_MEAN = "seed_mean"
# The seed label of the rows scoring the seed-averaged prediction (an ensemble of the seeds).
ENSEMBLE = "mean"
# The study setting ``statistics.seed_aggregation``: which of the two every output judges.
SEED_AGGREGATIONS = ("seed_mean", "ensemble")


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`WILCOXON_METHODS`, else an :class:`InputError`."""
    if method not in _SCIPY_METHOD:
        raise InputError("wilcoxon_method", f"must be one of {list(WILCOXON_METHODS)}, got {method!r}")
    return method


class WilcoxonResult(NamedTuple):
    n: int  # NaN-free pairs (zero differences included)
    statistic: float
    p_value: float


def paired_valid(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as float64 with every pair holding a NaN (or inf) in either removed."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError("b", f"length {y.size} does not match length {x.size} of a (pairs by site)")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def paired_wilcoxon(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, method: str = PAPER_METHOD
) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of ``d = a - b``, zero differences dropped.

    Statistic ``T = min(W+, W-)``, the smaller sum of the ranks of ``|d|`` over positive and over
    negative ``d``. Under ``method="paper"`` (or ``"approx"``) the p-value is ``2 (1 - Phi(|z|))``
    with ``z = (W+ - m (m + 1) / 4) / sqrt(m (m + 1)(2m + 1) / 24 - sum(t^3 - t) / 48)``, m the
    non-zero differences and t the sizes of tied groups; ``"exact"`` and ``"auto"`` defer to scipy
    (see :data:`WILCOXON_METHODS`). Returns NaN statistic and p-value, with ``n`` still reported,
    when there is no pair or every difference is zero (the test is undefined there).
    """
    scipy_method = _SCIPY_METHOD[check_method(method)]
    x, y = paired_valid(a, b)
    n = int(x.size)
    if n < 1 or not np.any(x != y):
        return WilcoxonResult(n, float("nan"), float("nan"))
    with warnings.catch_warnings():
        # scipy warns on ties/zeros and small samples; the result is still the one we want.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            res = scipy.stats.wilcoxon(
                x, y, zero_method="wilcox", correction=False, alternative="two-sided", method=scipy_method
            )
        except ValueError:
            return WilcoxonResult(n, float("nan"), float("nan"))
    return WilcoxonResult(n, float(res.statistic), float(res.pvalue))


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values.

    With the m non-NaN p-values sorted ascending, ``p_adj(i) = max_{j<=i} min(1, (m - j + 1) p(j))``
    (1-based ``j``); NaN entries stay NaN and do not count towards m. Output in input order.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def median_diff_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Median of the paired differences ``a - b`` and its bootstrap percentile CI.

    Resamples the sites with replacement ``n_boot`` times (all index sets drawn as one array,
    in chunks when large) and takes the ``alpha/2`` and ``1 - alpha/2`` quantiles of the
    resampled medians. Deterministic for a given ``seed``. NaN triple when no pair is left.
    """
    if n_boot < 1:
        raise InputError("n_boot", f"must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise InputError("alpha", f"must be in (0, 1), got {alpha}")
    x, y = paired_valid(a, b)
    d = x - y
    n = d.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    # The chunk size depends only on n, so the draws (and the CI) depend only on the seed.
    chunk = max(1, min(n_boot, _BOOT_CHUNK_ELEMENTS // n))
    meds = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        meds[start:stop] = np.median(d[idx], axis=1)
    lo, hi = np.quantile(meds, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(np.median(d)), float(lo), float(hi)


def rank_biserial(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of ``d = a - b``: ``(W+ - W-) / (W+ + W-)``.

    ``W+`` (``W-``) is the sum of the ranks of ``|d|`` over positive (negative) ``d``; zero
    differences are dropped before ranking, ties get average ranks. In [-1, 1]; +1 means ``a``
    is larger at every site. NaN when no non-zero difference is left.
    """
    x, y = paired_valid(a, b)
    d = x - y
    d = d[d != 0]
    if d.size == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(np.abs(d))
    w_plus = float(ranks[d > 0].sum())
    w_minus = float(ranks[d < 0].sum())
    return (w_plus - w_minus) / (w_plus + w_minus)


def share_better(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, higher_is_better: bool
) -> float:
    """Share of valid pairs where ``a`` is strictly better than ``b`` (ties count as not better)."""
    x, y = paired_valid(a, b)
    if x.size == 0:
        return float("nan")
    wins = x > y if higher_is_better else x < y
    return float(wins.mean())


def compare(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    metric_name: str,
    higher_is_better: bool,
    *,
    absolute: bool | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    method: str = PAPER_METHOD,
) -> dict[str, float | int | str]:
    """Every statistic of one paired comparison of model ``a`` against model ``b``.

    ``absolute`` (default: the metric's registry entry, e.g. True for ``bias``) compares ``|a|``
    with ``|b|``; every returned statistic then refers to the absolute values.
    Keys: metric, n, statistic, p_value, effect (rank-biserial of a - b), median_diff, ci_low,
    ci_high, median_a, median_b, share_a_better, method (the Wilcoxon setting).
    """
    if absolute is None:
        absolute = METRICS[metric_name].absolute if metric_name in METRICS else False
    x, y = paired_valid(a, b)
    if absolute:
        x, y = np.abs(x), np.abs(y)
    w = paired_wilcoxon(x, y, method)
    med, lo, hi = median_diff_ci(x, y, n_boot=n_boot, alpha=alpha, seed=seed)
    empty = x.size == 0
    return {
        "metric": metric_name,
        "n": w.n,
        "statistic": w.statistic,
        "p_value": w.p_value,
        "effect": rank_biserial(x, y),
        "median_diff": med,
        "ci_low": lo,
        "ci_high": hi,
        "median_a": float("nan") if empty else float(np.median(x)),
        "median_b": float("nan") if empty else float(np.median(y)),
        "share_a_better": share_better(x, y, higher_is_better),
        "method": method,
    }


SIGNIFICANCE_COLUMNS = [
    "comparison",
    "scenario_a",
    "scenario_b",
    "region",
    "metric",
    "n",
    "statistic",
    "p_value",
    "p_holm",
    "effect",
    "median_diff",
    "ci_low",
    "ci_high",
    "median_a",
    "median_b",
    "share_a_better",
    "method",
]


def _check_site_metrics(df: pd.DataFrame, metrics: Sequence[str], region_col: str) -> None:
    need = [region_col, "scenario", "site_id", *metrics]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError("site_metrics", f"missing column(s) {missing}; have {list(df.columns)}")
    dup = df.duplicated([region_col, "scenario", "site_id"])
    if dup.any():
        row = df.loc[dup, [region_col, "scenario", "site_id"]].iloc[0].tolist()
        raise InputError("site_metrics", f"duplicate row for (region, scenario, site_id) = {row}")


def significance_table(
    site_metrics: pd.DataFrame,
    comparisons: Sequence[tuple[str, str, str]],
    metrics: Sequence[str],
    region_col: str = "region",
    include_all: bool = True,
    *,
    all_label: str = "All",
    directions: Mapping[str, bool] | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    method: str = PAPER_METHOD,
) -> pd.DataFrame:
    """One row per (comparison, region, metric), plus an ``all_label`` row per (comparison, metric).

    ``site_metrics`` has one row per site per scenario with columns ``region_col``, ``scenario``,
    ``site_id`` and the metric columns; ``region_col`` is the region the comparison is about.
    Each comparison ``(label, scenario_a, scenario_b)`` pairs the rows of the two scenarios BY
    SITE ID within each region (row order does not matter). Regions are the sorted regions that
    hold rows of both scenarios. The "All" row tests the concatenation of the per-region paired
    vectors, so its ``n`` is the sum of the regions' ``n``.

    ``p_holm``: Holm adjustment within each (comparison, metric) family across its regions; the
    pooled "All" row is a separate, single test, so its ``p_holm`` equals its ``p_value``.
    Metrics of the registry with ``absolute`` (bias) are compared as ``|value|``. ``directions``
    maps a metric name outside the registry to its ``higher_is_better``. ``method``: how the
    Wilcoxon p-value is computed (:data:`WILCOXON_METHODS`), recorded in each row's ``method``.
    """
    check_method(method)
    metrics = list(metrics)
    higher_of = {k: v.higher_is_better for k, v in METRICS.items()} | dict(directions or {})
    unknown = [m for m in metrics if m not in higher_of]
    if unknown:
        raise InputError(
            "metrics", f"no direction known for {unknown}; pass directions={{name: higher_is_better}}"
        )
    _check_site_metrics(site_metrics, metrics, region_col)
    df = site_metrics.copy()
    df["site_id"] = df["site_id"].astype(str)
    scenarios = set(df["scenario"].astype(str))
    rows: list[dict[str, object]] = []
    for label, sa, sb in comparisons:
        for s in (sa, sb):
            if s not in scenarios:
                raise InputError("comparisons", f"scenario {s!r} has no rows in site_metrics", label)
        left = df[df["scenario"] == sa]
        right = df[df["scenario"] == sb]
        # Inner join on (region, site): only sites scored under both scenarios are paired.
        paired = left.merge(right, on=[region_col, "site_id"], suffixes=("__a", "__b"))
        paired = paired.sort_values([region_col, "site_id"], key=lambda c: c.astype(str), kind="stable")
        regions = sorted(paired[region_col].unique(), key=str)
        for metric in metrics:
            higher = higher_of[metric]
            family: list[dict[str, object]] = []
            for region in regions:
                sub = paired[paired[region_col] == region]
                res = compare(
                    sub[f"{metric}__a"].to_numpy(float),
                    sub[f"{metric}__b"].to_numpy(float),
                    metric,
                    higher,
                    n_boot=n_boot,
                    alpha=alpha,
                    seed=seed,
                    method=method,
                )
                family.append(
                    {"comparison": label, "scenario_a": sa, "scenario_b": sb, "region": region, **res}
                )
            p_adj = holm([float(r["p_value"]) for r in family])  # type: ignore[arg-type]
            for r, p in zip(family, p_adj, strict=True):
                r["p_holm"] = float(p)
            rows.extend(family)
            if include_all:
                res = compare(
                    paired[f"{metric}__a"].to_numpy(float),
                    paired[f"{metric}__b"].to_numpy(float),
                    metric,
                    higher,
                    n_boot=n_boot,
                    alpha=alpha,
                    seed=seed,
                    method=method,
                )
                rows.append(
                    {
                        "comparison": label,
                        "scenario_a": sa,
                        "scenario_b": sb,
                        "region": all_label,
                        **res,
                        "p_holm": res["p_value"],
                    }
                )
    out = pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)
    return out.astype({"n": "int64"}) if len(out) else out


def _per_seed_labels(labels: pd.Series) -> pd.Series:
    """True where a seed label names one seed ("0", "1", ...), not "mean", "std" or a seed mean."""
    return labels.astype(str).str.fullmatch(r"\d+")


def per_site_seed_means(
    site_metrics: pd.DataFrame, metrics: Sequence[str], seed_col: str = "seed"
) -> pd.DataFrame:
    """Per site and scenario, the mean over seeds of each per-seed metric: ``m_bar = (1/S) sum_s m_s``.

    The rows of ``site_metrics`` whose ``seed_col`` names one seed are grouped by every other
    column that identifies a row (domain, experiment, scenario, region, site_id, model_key and
    budget where present); a seed whose metric is NaN at a site is left out of that site's mean.
    The result carries ``seed_col = SEED_MEAN``. Empty (same columns) with fewer than two seeds:
    one seed's "mean" is that seed. Unlike the ``"mean"`` rows (the metric of the seed-mean
    prediction, an ensemble), this is the expected score of one trained model, the paper's setting.
    """
    missing = [c for c in (seed_col, "site_id", *metrics) if c not in site_metrics.columns]
    if missing:
        raise InputError("site_metrics", f"missing column(s) {missing}")
    per_seed = site_metrics[_per_seed_labels(site_metrics[seed_col])]
    keys = [
        c
        for c in ("domain", "experiment", "scenario", "region", "site_id", "model_key", "budget")
        if c in site_metrics.columns
    ]
    cols = [seed_col, *keys, *metrics]
    if per_seed[seed_col].nunique() < 2:
        return pd.DataFrame(columns=cols)
    out = per_seed.groupby(keys, sort=False, dropna=False)[list(metrics)].mean().reset_index()
    out.insert(0, seed_col, SEED_MEAN)
    return out[cols]


# Columns seed_spread adds: how the statistics of one comparison vary across the seeds.
SEED_SPREAD_COLUMNS = [
    "n_seeds",
    "seed_sd_median_diff",
    "seed_min_share",
    "seed_max_share",
    "seed_max_p",
    "seeds_agree",
]


def seed_spread(table: pd.DataFrame, keys: Sequence[str], seed_col: str = "seed") -> pd.DataFrame:
    """``table`` with :data:`SEED_SPREAD_COLUMNS` filled on its aggregate rows (seed labels that do
    not name one seed, e.g. "mean" and ``SEED_MEAN``) from the per-seed rows of the same ``keys``.

    Over the S per-seed rows of a key: ``n_seeds`` = S; ``seed_sd_median_diff`` = the population
    SD ``sqrt((1/S) sum_s (d_s - d_bar)^2)`` of the median paired differences ``d_s`` (as the
    site_metrics "std" rows); ``seed_min_share`` / ``seed_max_share`` = the range of
    ``share_a_better``; ``seed_max_p`` = the largest p-value (the weakest seed); ``seeds_agree`` =
    the seeds whose ``d_s`` has the sign of the aggregate row's ``median_diff`` (0 agrees with none).
    Per-seed rows, and keys with fewer than two seeds, keep NaN.
    """
    need = [seed_col, *keys, "median_diff", "share_a_better", "p_value"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise InputError("significance", f"missing column(s) {missing}")
    out = table.copy()
    for c in SEED_SPREAD_COLUMNS:
        out[c] = np.nan
    if out.empty:
        return out.astype({"n_seeds": "Int64", "seeds_agree": "Int64"})
    is_seed = _per_seed_labels(out[seed_col])
    per_seed = out[is_seed]
    if per_seed.empty:
        return out.astype({"n_seeds": "Int64", "seeds_agree": "Int64"})
    keys = list(keys)
    grouped = per_seed.groupby(keys, sort=False, dropna=False)
    spread = pd.DataFrame(
        {
            "n_seeds": grouped[seed_col].nunique(),
            "seed_sd_median_diff": grouped["median_diff"].agg(lambda v: float(np.nanstd(v.to_numpy(float)))),
            "seed_min_share": grouped["share_a_better"].min(),
            "seed_max_share": grouped["share_a_better"].max(),
            "seed_max_p": grouped["p_value"].max(),
            "seed_diffs": grouped["median_diff"].agg(lambda v: v.to_numpy(float)),
        }
    )
    spread = spread[spread["n_seeds"] >= 2].reset_index()
    agg = ~is_seed
    rows = out.loc[agg, keys + ["median_diff"]].rename_axis("row__").reset_index()
    merged = rows.merge(spread, on=keys, how="inner")
    for row in merged.itertuples(index=False):
        i = row.row__
        for c in SEED_SPREAD_COLUMNS[:-1]:
            out.loc[i, c] = getattr(row, c)
        sign = np.sign(row.median_diff)
        agree = np.sign(row.seed_diffs) == sign if sign else np.zeros(0, dtype=bool)
        out.loc[i, "seeds_agree"] = float(np.sum(agree))
    return out.astype({"n_seeds": "Int64", "seeds_agree": "Int64"})


def judged_seed_label(labels: pd.Series, aggregation: str) -> str:
    """The seed label of the rows that stand for ``aggregation`` among ``labels`` (a ``seed`` column).

    ``"ensemble"``: :data:`ENSEMBLE` (the metric of the seed-averaged prediction). ``"seed_mean"``:
    :data:`SEED_MEAN` (the per-site mean of the per-seed metrics, the expected skill of one trained
    model) where such rows exist, else :data:`ENSEMBLE`: with one seed the two are the same numbers.
    Every consumer (report, scheme table, curves, figures, summary) picks its rows through this.
    """
    if aggregation not in SEED_AGGREGATIONS:
        raise InputError("seed_aggregation", f"must be one of {list(SEED_AGGREGATIONS)}, got {aggregation!r}")
    if aggregation == "ensemble":
        return ENSEMBLE
    return SEED_MEAN if (labels.astype(str) == SEED_MEAN).any() else ENSEMBLE


def judged_rows(site_metrics: pd.DataFrame, aggregation: str, metrics: Sequence[str]) -> pd.DataFrame:
    """The ``site_metrics`` rows one output judges under ``aggregation`` (one row per site and
    scenario), labelled as :func:`judged_seed_label` says.

    ``"seed_mean"`` with several seeds: :func:`per_site_seed_means` of the per-seed rows (added here
    when the table does not hold them yet); with one seed, or ``"ensemble"``: the :data:`ENSEMBLE`
    rows. A table without a ``seed`` column is returned as it is (one model per set).
    """
    if aggregation not in SEED_AGGREGATIONS:
        raise InputError("seed_aggregation", f"must be one of {list(SEED_AGGREGATIONS)}, got {aggregation!r}")
    if "seed" not in site_metrics.columns:
        return site_metrics
    labels = site_metrics["seed"].astype(str)
    if aggregation == "seed_mean" and not (labels == SEED_MEAN).any():
        means = per_site_seed_means(site_metrics, metrics)
        if len(means):
            return means
    return site_metrics[labels == judged_seed_label(site_metrics["seed"], aggregation)]
