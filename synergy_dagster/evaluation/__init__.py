"""Evaluation science: per-site metrics, paired statistics, figures and Markdown summaries.

``figures`` is not imported here so that using the metrics does not load matplotlib.
"""

from synergy_dagster.evaluation.metrics import METRICS, MetricSpec, all_metrics, apply_mask, common_mask
from synergy_dagster.evaluation.statistics import (
    WilcoxonResult,
    compare,
    holm,
    median_diff_ci,
    paired_wilcoxon,
    rank_biserial,
    share_better,
    significance_table,
)
from synergy_dagster.evaluation.summary import markdown_table, median_table, study_summary

__all__ = [
    "METRICS",
    "MetricSpec",
    "WilcoxonResult",
    "all_metrics",
    "apply_mask",
    "common_mask",
    "compare",
    "holm",
    "markdown_table",
    "median_diff_ci",
    "median_table",
    "paired_wilcoxon",
    "rank_biserial",
    "share_better",
    "significance_table",
    "study_summary",
]
