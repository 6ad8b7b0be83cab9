"""Does the answer to "global or local?" depend on the training budget?

From the global-vs-local significance rows of several budget modes, name each region's winner per
mode and flag the regions whose winner changes between modes. Free of Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.metrics import METRICS
from synergy_dagster.evaluation.statistics import judged_seed_label

SENSITIVITY_COLUMNS = [
    "domain",
    "region",
    "metric",
    "budget",
    "n",
    "median_global",
    "median_local",
    "median_diff",
    "p_value",
    "share_global_better",
    "winner",
    "sign_changed",
]


def winner(median_diff: float, higher_is_better: bool) -> str:
    """``global`` when the median paired difference (global - local) favours it, ``local`` when it
    favours local, ``tie`` at exactly 0 or when undefined."""
    if not np.isfinite(median_diff) or median_diff == 0:
        return "tie"
    return "global" if (median_diff > 0) == higher_is_better else "local"


def sign_changes(
    significance: pd.DataFrame, metrics: Sequence[str] = ("nse", "rmse"), aggregation: str = "seed_mean"
) -> pd.DataFrame:
    """One row per (domain, region, metric, budget) of the global-vs-local comparison, with the
    winner under that budget and ``sign_changed``: True when the region's winner (ties aside)
    is not the same under every budget mode present.

    ``significance`` holds rows of the ``significance`` table (columns ``budget``, ``domain``,
    ``comparison``, ``region``, ``metric``, ``n``, ``median_a``, ``median_b``, ``median_diff``,
    ``p_value``, ``share_a_better``), a = global, b = local; the seed rows of ``aggregation``
    (:func:`~synergy_dagster.evaluation.statistics.judged_seed_label`), as every output.
    """
    need = ["budget", "domain", "comparison", "region", "metric", "n", "median_a", "median_b",
            "median_diff", "p_value", "share_a_better"]  # fmt: skip
    missing = [c for c in need if c not in significance.columns]
    if missing:
        raise InputError("significance", f"missing column(s) {missing}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError("metrics", f"unknown metric(s) {unknown}; expected some of {sorted(METRICS)}")
    rows = significance[
        (significance["comparison"] == "global vs local") & significance["metric"].isin(list(metrics))
    ]
    if "seed" in rows.columns:
        rows = rows[rows["seed"].astype(str) == judged_seed_label(rows["seed"], aggregation)]
    if rows.empty:
        return pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    out = pd.DataFrame(
        {
            "domain": rows["domain"].to_numpy(),
            "region": rows["region"].to_numpy(),
            "metric": rows["metric"].to_numpy(),
            "budget": rows["budget"].to_numpy(),
            "n": rows["n"].to_numpy(),
            "median_global": rows["median_a"].to_numpy(),
            "median_local": rows["median_b"].to_numpy(),
            "median_diff": rows["median_diff"].to_numpy(),
            "p_value": rows["p_value"].to_numpy(),
            "share_global_better": rows["share_a_better"].to_numpy(),
        }
    )
    out["winner"] = [
        winner(d, METRICS[m].higher_is_better) for d, m in zip(out["median_diff"], out["metric"], strict=True)
    ]
    decided = out[out["winner"] != "tie"]
    n_winners = decided.groupby(["domain", "region", "metric"])["winner"].nunique()
    changed = out.set_index(["domain", "region", "metric"]).index.map(lambda k: n_winners.get(k, 0) > 1)
    out["sign_changed"] = np.asarray(changed, dtype=bool)
    return out[SENSITIVITY_COLUMNS].sort_values(["domain", "metric", "region", "budget"], ignore_index=True)


def sensitivity_matrix(table: pd.DataFrame, metric: str, alpha: float = 0.05) -> pd.DataFrame:
    """Region x budget grid of winners (with ``*`` where p < ``alpha``) for one metric, plus a
    ``sign_changed`` column: the shape a reader scans."""
    t = table[table["metric"] == metric]
    if t.empty:
        return pd.DataFrame()
    label = t["winner"] + np.where(t["p_value"] < alpha, "*", "")
    grid = t.assign(label=label).pivot_table(
        index=["domain", "region"], columns="budget", values="label", aggfunc="first"
    )
    grid["sign_changed"] = t.groupby(["domain", "region"])["sign_changed"].first()
    return grid.reset_index()
