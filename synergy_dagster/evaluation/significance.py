"""The significance tables of a study's per-site metrics: every comparison of every experiment, per
seed and on the per-site seed means (free of Dagster; the ``significance`` asset stores it)."""

from __future__ import annotations

import pandas as pd

from synergy_dagster.evaluation.statistics import (
    PAPER_METHOD,
    SEED_SPREAD_COLUMNS,
    SIGNIFICANCE_COLUMNS,
    per_site_seed_means,
    seed_spread,
    significance_table,
)
from synergy_dagster.evaluation.study import COMPARISONS, METRIC_NAMES


def significance_for(
    metrics: pd.DataFrame, method: str = PAPER_METHOD, n_boot: int = 2000, alpha: float = 0.05
) -> pd.DataFrame:
    """All comparison tables (Wilcoxon, Holm, effect sizes) for both domains, on seed means and,
    with several seeds, per seed and on the per-site means over seeds (seed ``SEED_MEAN``), whose
    rows and the ``"mean"`` rows carry the spread across seeds; with the budget mode of the
    metrics rows and the Wilcoxon ``method`` in every row; the bootstrap intervals at level 1 - alpha."""
    rows = metrics[metrics["seed"] != "std"]
    rows = pd.concat([rows, per_site_seed_means(rows, list(METRIC_NAMES))], ignore_index=True)
    out = []
    for (domain, experiment, seed), group in rows.groupby(["domain", "experiment", "seed"]):
        present = set(group["scenario"])  # e.g. a domain with no sized sets has no sized rows
        comps = [c for c in COMPARISONS[experiment] if c[1] in present and c[2] in present]
        if not comps:
            continue
        table = significance_table(
            group, comps, list(METRIC_NAMES), method=method, n_boot=n_boot, alpha=alpha
        )
        table.insert(0, "experiment", experiment)
        table.insert(0, "domain", domain)
        table["seed"] = seed
        out.append(table)
    if not out:  # e.g. no sub-region reached N: only the global model was evaluated
        return pd.DataFrame(
            columns=["domain", "experiment", *SIGNIFICANCE_COLUMNS, "seed", "budget", *SEED_SPREAD_COLUMNS]
        )
    table = pd.concat(out, ignore_index=True)
    budgets = metrics["budget"].unique() if "budget" in metrics.columns else []
    table["budget"] = budgets[0] if len(budgets) == 1 else None
    return seed_spread(table, ["domain", "experiment", "comparison", "region", "metric"])
