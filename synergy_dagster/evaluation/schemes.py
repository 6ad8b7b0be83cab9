"""Compare regionalisations: global vs local under each scheme, and each scheme's local models
against the null model's (random regions of equal size).

Input: the ``site_metrics`` rows of the experiments ``global_vs_local`` (ecoregions) and
``global_vs_local@<scheme>`` (see :mod:`synergy_dagster.experiments.plan`). Per domain, scheme and
metric: how many regions and sites were compared, the median skill of the global and of the local
models, the share of sites where the global model wins, and the Wilcoxon p of the paired
difference. Against the null scheme, on the sites both scored: the median paired difference of the
local models' skill and its p (if the scheme's regions carry information its local models beat
random regions' local models). Dagster-free; the ``scheme_comparison`` asset calls it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.metrics import METRICS
from synergy_dagster.evaluation.statistics import paired_valid, paired_wilcoxon, share_better
from synergy_dagster.experiments.plan import scheme_of_experiment

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
)


def scheme_pairs(site_metrics: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Global and local skill side by side per (domain, scheme, region, site): columns domain,
    scheme, region, site_id and ``<metric>_global`` / ``<metric>_local``. Seed-mean rows only when a
    ``seed`` column is present."""
    need = ["domain", "experiment", "scenario", "region", "site_id", *metrics]
    missing = [c for c in need if c not in site_metrics.columns]
    if missing:
        raise InputError("site_metrics", f"missing column(s) {missing}")
    df = site_metrics
    if "seed" in df.columns:
        df = df[df["seed"].astype(str) == "mean"]
    scheme = df["experiment"].map(scheme_of_experiment)
    df = df.assign(scheme=scheme)[scheme.notna()]
    keys = ["domain", "scheme", "region", "site_id"]
    g = df[df["scenario"] == "global"][keys + list(metrics)]
    loc = df[df["scenario"] == "local"][keys + list(metrics)]
    return g.merge(loc, on=keys, suffixes=("_global", "_local"))


def _p(a: np.ndarray, b: np.ndarray, method: str | None) -> float:
    res = paired_wilcoxon(a, b) if method is None else paired_wilcoxon(a, b, method)
    return float(res.p_value)


def compare_schemes(
    site_metrics: pd.DataFrame,
    metrics: Sequence[str],
    null_scheme: str = NULL_SCHEME,
    method: str | None = None,
) -> pd.DataFrame:
    """One row per (domain, scheme, metric) (:data:`COMPARISON_COLUMNS`). ``median_diff`` is the
    median of global - local (for ``bias`` of the absolute values); ``winner`` is ``global`` or
    ``local`` by the sign of the median difference and the metric's direction (``tie`` at 0).
    ``method``: the Wilcoxon method (default: the statistics module's)."""
    pairs = scheme_pairs(site_metrics, metrics)
    rows = []
    for (domain, scheme), grp in pairs.groupby(["domain", "scheme"], sort=True):
        null = pairs[(pairs["domain"] == domain) & (pairs["scheme"] == null_scheme)]
        for metric in metrics:
            higher = METRICS[metric].higher_is_better
            absolute = METRICS[metric].absolute
            a, b = paired_valid(grp[f"{metric}_global"], grp[f"{metric}_local"])
            if absolute:
                a, b = np.abs(a), np.abs(b)
            diff = float(np.median(a - b)) if a.size else float("nan")
            winner = (
                "tie"
                if not np.isfinite(diff) or diff == 0
                else ("global" if (diff > 0) == higher else "local")
            )
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
                "p_value": _p(a, b, method),
                "winner": winner,
                "null_scheme": null_scheme if len(null) else None,
                "n_vs_null": 0,
                "median_local_minus_null": float("nan"),
                "p_vs_null": float("nan"),
            }
            if len(null) and scheme != null_scheme:
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
    return out.astype({"n_regions": "int64", "n_sites": "int64", "n_vs_null": "int64"}) if len(out) else out


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
