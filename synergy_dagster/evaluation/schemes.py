"""Compare regionalisations: global vs local under each scheme, and each scheme's local models
against the null model's (random regions of equal size).

Input: the ``site_metrics`` rows of the experiments ``global_vs_local`` (ecoregions) and
``global_vs_local@<scheme>`` (see :mod:`synergy_dagster.experiments.plan`). Per domain, scheme and
metric: how many regions and sites were compared, the median skill of the global and of the local
models, the share of sites where the global model wins, and the Wilcoxon p of the paired
difference. Against the null scheme, on the sites both scored: the median paired difference of the
local models' skill and its p (if the scheme's regions carry information its local models beat
random regions' local models). ``winner`` names a side only when the Wilcoxon p is below ``alpha``
(else ``tie``). Against a scheme's size-matched nulls (experiments of the schemes
``<scheme>_nullDD``, :func:`synergy_dagster.regions.schemes.size_matched_null`), when present:
the median local gain over the global model on the scheme's regions against the same on each
draw's regions, with a one-sided permutation p (:func:`null_p`; the column ``null_scheme`` names
the number of draws, ``n_null_draws`` counts them); without them, the unmatched ``random`` scheme
as before. Every row judges the seed rows of one ``aggregation``
(:func:`~synergy_dagster.evaluation.statistics.judged_rows`), as every other output does, and
names it in its ``aggregation`` column.
Dagster-free; the ``scheme_comparison`` asset calls it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.metrics import METRICS
from synergy_dagster.evaluation.statistics import judged_rows, paired_valid, paired_wilcoxon, share_better
from synergy_dagster.experiments.plan import scheme_of_experiment
from synergy_dagster.regions.schemes import null_of

NULL_SCHEME = "random"
COMPARISON_COLUMNS = (
    "domain",
    "scheme",
    "metric",
    "n_regions",
    "n_sites",
    "median_global",
    "median_local",
    "median_diff",
    "share_global_better",
    "p_value",
    "winner",
    "null_scheme",
    "n_vs_null",
    "median_local_minus_null",
    "p_vs_null",
    "n_null_draws",
    "aggregation",
)


def scheme_pairs(
    site_metrics: pd.DataFrame,
    metrics: Sequence[str],
    aggregation: str = "seed_mean",
    include_nulls: bool = False,
) -> pd.DataFrame:
    """Global and local skill side by side per (domain, scheme, region, site): columns domain,
    scheme, region, site_id and ``<metric>_global`` / ``<metric>_local``; the seed rows of
    ``aggregation`` when a ``seed`` column is present. The size-matched null draws
    (``<scheme>_nullDD``) only with ``include_nulls``."""
    need = ["domain", "experiment", "scenario", "region", "site_id", *metrics]
    missing = [c for c in need if c not in site_metrics.columns]
    if missing:
        raise InputError("site_metrics", f"missing column(s) {missing}")
    df = judged_rows(site_metrics, aggregation, metrics)
    scheme = df["experiment"].map(scheme_of_experiment)
    keep = scheme.notna()
    if not include_nulls:
        keep &= scheme.map(lambda x: x is None or null_of(x) is None)
    df = df.assign(scheme=scheme)[keep]
    keys = ["domain", "scheme", "region", "site_id"]
    g = df[df["scenario"] == "global"][keys + list(metrics)]
    loc = df[df["scenario"] == "local"][keys + list(metrics)]
    return g.merge(loc, on=keys, suffixes=("_global", "_local"))


def _p(a: np.ndarray, b: np.ndarray, method: str | None) -> float:
    res = paired_wilcoxon(a, b) if method is None else paired_wilcoxon(a, b, method)
    return float(res.p_value)


def null_p(statistic: float, null_statistics: np.ndarray) -> float:
    """One-sided permutation p of "the scheme's regions carry no information beyond their sizes":
    ``p = (1 + #{d: T_d >= T}) / (1 + D)`` over the D finite null statistics ``T_d``, so the
    smallest p with D draws is 1 / (D + 1). NaN when ``statistic`` is NaN or no draw is finite."""
    t_d = np.asarray(null_statistics, dtype=np.float64)
    t_d = t_d[np.isfinite(t_d)]
    if not np.isfinite(statistic) or t_d.size == 0:
        return float("nan")
    return float((1 + np.sum(t_d >= statistic)) / (1 + t_d.size))


def _gain(local: np.ndarray, glob: np.ndarray, higher: bool, absolute: bool) -> np.ndarray:
    """Local minus global skill, signed so that positive means the local model is better."""
    if absolute:
        local, glob = np.abs(local), np.abs(glob)
    return local - glob if higher else glob - local


def _median_gain(pairs: pd.DataFrame, metric: str, higher: bool, absolute: bool) -> float:
    g = _gain(
        pairs[f"{metric}_local"].to_numpy(float), pairs[f"{metric}_global"].to_numpy(float), higher, absolute
    )
    g = g[np.isfinite(g)]
    return float(np.median(g)) if g.size else float("nan")


def _null_columns(
    grp: pd.DataFrame, nulls: pd.DataFrame, metric: str, higher: bool, absolute: bool
) -> dict[str, object]:
    """The null columns of one scheme row from its size-matched draws (``nulls``: the pairs of the
    schemes ``<scheme>_nullDD``). Statistic: the median over sites of the local models' gain over
    the global model, ``T`` on the scheme's regions and ``T_d`` on each draw's (the same region
    sizes, so the same number of sites with a local model); ``median_local_minus_null`` is
    ``T - median_d T_d`` (positive: the scheme's regions help the local models)."""
    t = _median_gain(grp, metric, higher, absolute)
    t_d = np.array([_median_gain(g, metric, higher, absolute) for _, g in nulls.groupby("scheme", sort=True)])
    finite = t_d[np.isfinite(t_d)]
    return {
        "null_scheme": f"size-matched ({finite.size} draws)",
        "n_vs_null": int(grp["site_id"].nunique()),
        "median_local_minus_null": float(t - np.median(finite)) if finite.size else float("nan"),
        "p_vs_null": null_p(t, t_d),
        "n_null_draws": int(finite.size),
    }


def compare_schemes(
    site_metrics: pd.DataFrame,
    metrics: Sequence[str],
    null_scheme: str = NULL_SCHEME,
    method: str | None = None,
    *,
    alpha: float = 0.05,
    aggregation: str = "seed_mean",
) -> pd.DataFrame:
    """One row per (domain, scheme, metric) (:data:`COMPARISON_COLUMNS`). ``median_diff`` is the
    median of global - local (for ``bias`` of the absolute values); ``winner`` is ``global`` or
    ``local`` by the sign of the median difference and the metric's direction when the Wilcoxon p
    is below ``alpha``, else ``tie``. ``method``: the Wilcoxon method (default: the statistics
    module's); ``aggregation``: the seed rows compared (:func:`scheme_pairs`)."""
    if not 0.0 < alpha < 1.0:
        raise InputError("alpha", f"must be in (0, 1), got {alpha}")
    pairs = scheme_pairs(site_metrics, metrics, aggregation, include_nulls=True)
    base_of = pairs["scheme"].map(lambda s: (null_of(s) or (None, 0))[0])
    draws, pairs = pairs[base_of.notna()].assign(base=base_of[base_of.notna()]), pairs[base_of.isna()]
    rows = []
    for (domain, scheme), grp in pairs.groupby(["domain", "scheme"], sort=True):
        null = pairs[(pairs["domain"] == domain) & (pairs["scheme"] == null_scheme)]
        matched = draws[(draws["domain"] == domain) & (draws["base"] == scheme)]
        for metric in metrics:
            higher = METRICS[metric].higher_is_better
            absolute = METRICS[metric].absolute
            a, b = paired_valid(grp[f"{metric}_global"], grp[f"{metric}_local"])
            if absolute:
                a, b = np.abs(a), np.abs(b)
            diff = float(np.median(a - b)) if a.size else float("nan")
            p = _p(a, b, method)
            decided = np.isfinite(diff) and diff != 0 and p < alpha
            winner = ("global" if (diff > 0) == higher else "local") if decided else "tie"
            row = {
                "domain": domain,
                "scheme": scheme,
                "metric": metric,
                "n_regions": int(grp["region"].nunique()),
                "n_sites": int(a.size),
                "median_global": float(np.median(a)) if a.size else float("nan"),
                "median_local": float(np.median(b)) if b.size else float("nan"),
                "median_diff": diff,
                "share_global_better": share_better(a, b, higher),
                "p_value": p,
                "winner": winner,
                "null_scheme": null_scheme if len(null) else None,
                "n_vs_null": 0,
                "median_local_minus_null": float("nan"),
                "p_vs_null": float("nan"),
                "n_null_draws": 0,
                "aggregation": aggregation,
            }
            if len(matched):
                row.update(_null_columns(grp, matched, metric, higher, absolute))
            elif len(null) and scheme != null_scheme:
                # the same sites' local skill under this scheme and under random regions
                both = grp[["site_id", f"{metric}_local"]].merge(
                    null[["site_id", f"{metric}_local"]], on="site_id", suffixes=("", "_null")
                )
                x, y = paired_valid(both[f"{metric}_local"], both[f"{metric}_local_null"])
                if absolute:
                    x, y = np.abs(x), np.abs(y)
                row["n_vs_null"] = int(x.size)
                row["median_local_minus_null"] = float(np.median(x - y)) if x.size else float("nan")
                row["p_vs_null"] = _p(x, y, method)
            rows.append(row)
    out = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    ints = {"n_regions": "int64", "n_sites": "int64", "n_vs_null": "int64", "n_null_draws": "int64"}
    return out.astype(ints) if len(out) else out


def explained_share(values: np.ndarray | pd.Series, regions: np.ndarray | pd.Series) -> float:
    """Share of the variance of ``values`` that region means explain (eta squared, 0..1): how much a
    regionalisation says about a site property (a true parameter of the virtual CONUS, a skill)."""
    df = pd.DataFrame({"v": np.asarray(values, dtype=np.float64), "r": np.asarray(regions, dtype=object)})
    df = df[np.isfinite(df["v"]) & df["r"].notna()]
    if len(df) < 2:
        return float("nan")
    total = float(((df["v"] - df["v"].mean()) ** 2).sum())
    within = float(((df["v"] - df.groupby("r")["v"].transform("mean")) ** 2).sum())
    return float("nan") if total == 0 else 1.0 - within / total
