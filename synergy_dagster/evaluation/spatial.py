"""Evaluation of the spatial holdouts (PUB, PUR): per-site metrics, paired tests, the skill lost
when the gauge is taken away, and its figure.

The plan's spatial evaluations (:mod:`synergy_dagster.experiments.spatial`) are scored by the same
:func:`synergy_dagster.evaluation.study.evaluate_domain` as the temporal ones, one group per PUB
fold and region (``f2-A``) or PUR region; :func:`pool_folds` then reports each PUB row under its
region (``A``) with its fold in a column, so every site of a region appears once per scenario and
seed. The paired tests are :func:`~synergy_dagster.evaluation.statistics.significance_table`'s
(Wilcoxon, Holm, bootstrap intervals, effect sizes), per region and pooled. The gauge-loss table
sets, per domain and model kind, the median skill of the temporal test (the site was gauged in
training) beside PUB and PUR, on the same sites, with the median of the per-site differences.
Free of Dagster.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.every_region import (
    HOLDS,
    INCONCLUSIVE,
    NOT_HOLDS,
    every_region_rule,
    region_status,
)
from synergy_dagster.evaluation.metrics import METRICS
from synergy_dagster.evaluation.statistics import (
    ENSEMBLE,
    PAPER_METHOD,
    judged_rows,
    judged_seed_label,
    per_site_seed_means,
    significance_table,
)
from synergy_dagster.experiments.spatial import (
    PUB,
    PUR,
    SPATIAL_EXPERIMENTS,
    fold_of_group,
    scored_region,
    spatial_comparisons,
)

TEMPORAL = "temporal"
# Which scenario of each setting is the unified and which the regional model (PUR: the partner).
KINDS = {
    TEMPORAL: {"global": "unified", "local": "regional"},
    PUB: {"global": "unified", "local": "regional"},
    PUR: {"global": "unified", "partner": "regional"},
}
ALL = "All"
# The verdicts of one comparison (row_verdicts) and of all regions together (every_region_verdicts).
DIFFERENCE, EQUIVALENT, MIXED = "difference", "equivalent", "mixed"
TIE, NONE = "tie", "none"
EVERY_REGION_COLUMNS = (
    "regions",
    "difference_a",
    "difference_b",
    "equivalent",
    "inconclusive",
    "every_region",
    "winner",
)
LOSS_COLUMNS = (
    "domain",
    "model",
    "setting",
    "metric",
    "n_sites",
    "median",
    "median_temporal",
    "median_loss",
    "share_worse",
)


def is_spatial(evaluations: pd.DataFrame) -> pd.Series:
    """Which rows of a plan's evaluations are spatial holdouts (experiment ``pub`` or ``pur``)."""
    return evaluations["experiment"].isin(SPATIAL_EXPERIMENTS)


def pool_folds(frame: pd.DataFrame) -> pd.DataFrame:
    """Spatial metric rows with ``region`` the scored region and ``fold`` (PUB; None for PUR)."""
    groups = frame[["experiment", "region"]].drop_duplicates()
    scored = {
        (e, g): (scored_region(e, g), fold_of_group(e, g))
        for e, g in zip(groups["experiment"], groups["region"], strict=True)
    }
    keys = list(zip(frame["experiment"], frame["region"], strict=True))
    out = frame.copy()
    out["region"] = [scored[k][0] for k in keys]
    out["fold"] = pd.array([scored[k][1] for k in keys], dtype="Int64")
    dup = out.duplicated(["domain", "experiment", "scenario", "seed", "site_id"])
    if dup.any():  # the plan's rule: each site once per scenario
        raise InputError(
            "spatial metrics", f"sites scored twice: {out.loc[dup, 'site_id'].unique()[:5].tolist()}"
        )
    return out


def spatial_significance(
    metrics: pd.DataFrame,
    metric_names: list[str],
    method: str = PAPER_METHOD,
    n_boot: int = 2000,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Paired tests of each spatial experiment's comparison, per region and pooled (``All``), on
    every seed label but the spread (``std``) and, with several seeds, on the per-site means over
    seeds (as the temporal significance table)."""
    rows = metrics[metrics["seed"] != "std"].drop(columns=["fold"], errors="ignore")
    rows = pd.concat([rows, per_site_seed_means(rows, metric_names)], ignore_index=True)
    out = []
    for (domain, experiment, seed), group in rows.groupby(["domain", "experiment", "seed"]):
        table = significance_table(
            group,
            spatial_comparisons(str(experiment), set(group["scenario"].astype(str))),
            metric_names,
            method=method,
            n_boot=n_boot,
            alpha=alpha,
        )
        table.insert(0, "experiment", experiment)
        table.insert(0, "domain", domain)
        table["seed"] = seed
        out.append(table)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _a_better(rows: pd.DataFrame) -> np.ndarray:
    """Whether ``a`` is the better side of each significance row: by the sign of the median paired
    difference (a - b) and the metric's direction; where that median is exactly 0, by the sign of
    the rank-biserial ``effect``, the side the signed-rank test found. Both 0: not ``a``."""
    higher = rows["metric"].map(lambda m: METRICS[m].higher_is_better).to_numpy(bool)
    diff = rows["median_diff"].to_numpy(float)
    sign = np.where(diff != 0, np.sign(diff), np.sign(rows["effect"].to_numpy(float)))
    return np.where(higher, sign > 0, sign < 0)


def row_verdicts(table: pd.DataFrame, alpha: float, margin: float) -> pd.DataFrame:
    """Every row of :func:`spatial_significance` (each region, with its Holm-corrected p, and the
    pooled ``All``) with the three verdicts of the reproduction report (docs/statistics.md):

    * ``difference``: ``p_holm`` is below ``alpha``; ``winner`` is the better scenario (by the sign
      of the median difference and the metric's direction, ``|bias|`` for bias; a median difference
      of exactly 0 by the effect's sign, :func:`_a_better`);
    * ``equivalent``: not significant, and the interval of the median paired difference lies within
      +/- ``margin`` x |median of b| (no difference larger than the margin); ``winner`` ``tie``;
    * ``inconclusive``: neither (an underpowered comparison is not a tie); ``winner`` ``none``.

    ``All``'s ``p_holm`` is its own p (a single test); a region's is corrected within its
    (comparison, metric) family, so a region needs the stronger evidence of the family.
    """
    out = table.copy()
    a_better = _a_better(out)
    decided = out["p_holm"] < alpha
    bound = margin * out["median_b"].abs()
    lo, hi = out["ci_low"], out["ci_high"]
    equivalent = ~decided & np.isfinite(lo) & np.isfinite(hi) & (lo >= -bound) & (hi <= bound)
    out["verdict"] = np.select([decided, equivalent], [DIFFERENCE, EQUIVALENT], INCONCLUSIVE)
    out["winner"] = np.select(
        [decided, equivalent],
        [np.where(a_better, out["scenario_a"], out["scenario_b"]), TIE],
        NONE,
    )
    out["margin"] = bound
    return out


def _every_region_word(status_a: list[str], status_b: list[str], equivalent: bool) -> tuple[str, str]:
    """The every-region verdict and the side it names (``a``, ``b``, ``tie`` or ``none``) from the
    regions' statuses for "a better in every region" and for "b better in every region"."""
    rule_a, rule_b = every_region_rule(status_a), every_region_rule(status_b)
    if rule_a == HOLDS:
        return DIFFERENCE, "a"
    if rule_b == HOLDS:
        return DIFFERENCE, "b"
    if equivalent:
        return EQUIVALENT, TIE
    if rule_a == NOT_HOLDS and rule_b == NOT_HOLDS:
        return MIXED, NONE
    return INCONCLUSIVE, NONE


def every_region_verdicts(verdicts: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per (domain, experiment, comparison, metric, seed) of :func:`row_verdicts`' region rows (not
    ``All``): how many regions show a difference for ``a`` (the unified model), for ``b`` (the
    regional one), are equivalent or inconclusive, and one every-region verdict by the rule of the
    reproduction report's every-region claims (:mod:`~synergy_dagster.evaluation.every_region`),
    applied to "a better in every region, significantly" and to the same for ``b``, each region's
    status from its direction and Holm-corrected p:

    * ``difference`` (``winner`` that side): the statement holds for one side, every region a
      significant difference its way;
    * ``equivalent`` (``winner`` ``tie``): every region equivalent;
    * ``mixed`` (``winner`` ``none``): the statement fails for both sides, regions significantly
      different in opposite directions;
    * ``inconclusive`` (``winner`` ``none``): anything else.

    A group without a region row (only ``All``) has no every-region verdict and no row.
    """
    keys = ["domain", "experiment", "comparison", "scenario_a", "scenario_b", "metric", "seed"]
    regions = verdicts[verdicts["region"].astype(str) != ALL].copy()
    if regions.empty:
        return pd.DataFrame(columns=[*keys, *EVERY_REGION_COLUMNS])
    a_better = _a_better(regions)
    p = regions["p_holm"].to_numpy(float)
    regions["status_a"] = [region_status(bool(x), True, q, alpha) for x, q in zip(a_better, p, strict=True)]
    regions["status_b"] = [region_status(not x, True, q, alpha) for x, q in zip(a_better, p, strict=True)]
    win_a = (regions["verdict"] == DIFFERENCE) & (regions["winner"] == regions["scenario_a"])
    win_b = (regions["verdict"] == DIFFERENCE) & (regions["winner"] == regions["scenario_b"])
    regions = regions.assign(
        difference_a=win_a,
        difference_b=win_b,
        equivalent=regions["verdict"] == EQUIVALENT,
        inconclusive=regions["verdict"] == INCONCLUSIVE,
    )
    grouped = regions.groupby(keys, sort=False, dropna=False)
    out = grouped.agg(
        regions=("region", "size"),
        difference_a=("difference_a", "sum"),
        difference_b=("difference_b", "sum"),
        equivalent=("equivalent", "sum"),
        inconclusive=("inconclusive", "sum"),
    ).reset_index()
    word = {
        key: _every_region_word(list(g["status_a"]), list(g["status_b"]), bool(g["equivalent"].all()))
        for key, g in grouped
    }
    judged = [word[tuple(k)] for k in out[keys].itertuples(index=False, name=None)]
    out["every_region"] = [w for w, _ in judged]
    side = pd.Series([s for _, s in judged], index=out.index)
    out["winner"] = side.mask(side == "a", out["scenario_a"]).mask(side == "b", out["scenario_b"])
    return out[[*keys, *EVERY_REGION_COLUMNS]]


@dataclass(frozen=True)
class SpatialResults:
    """What the study summary and the reproduction report show of the spatial holdouts: the rows
    of :func:`row_verdicts` and :func:`every_region_verdicts` of one seed label, and the
    :func:`gauge_loss` table (already on the rows the study's seed aggregation judges)."""

    verdicts: pd.DataFrame
    every_region: pd.DataFrame
    gauge_loss: pd.DataFrame
    seed: str

    @classmethod
    def judged(
        cls, verdicts: pd.DataFrame, every_region: pd.DataFrame, loss: pd.DataFrame, aggregation: str
    ) -> SpatialResults:
        """The stored tables narrowed to the seed label ``aggregation`` judges
        (:func:`~synergy_dagster.evaluation.statistics.judged_seed_label`)."""
        label = judged_seed_label(verdicts["seed"], aggregation) if len(verdicts) else ENSEMBLE
        return cls(
            verdicts[verdicts["seed"].astype(str) == label].reset_index(drop=True),
            every_region[every_region["seed"].astype(str) == label].reset_index(drop=True),
            loss.reset_index(drop=True),
            label,
        )


def judge_domain(
    frame: pd.DataFrame,
    temporal: pd.DataFrame,
    metrics: list[str],
    loss_metrics: list[str],
    aggregation: str,
    method: str,
    n_boot: int,
    alpha: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One domain's spatial tests and gauge-loss table: :func:`spatial_significance` of the pooled
    spatial site metrics ``frame`` over ``metrics``, and :func:`gauge_loss` for each of
    ``loss_metrics`` against that domain's ``temporal`` site metrics, both settings judged on the
    rows the study's seed ``aggregation`` picks (the same rule for both)."""
    tests = spatial_significance(frame, metrics, method, n_boot, alpha)
    held = judged_rows(frame, aggregation, metrics)
    kept = judged_rows(temporal, aggregation, metrics)
    label = str(held["seed"].iloc[0])
    loss = pd.concat([gauge_loss(kept, held, m, seed=label) for m in loss_metrics], ignore_index=True)
    return tests, loss


def gauge_loss(
    temporal: pd.DataFrame, spatial: pd.DataFrame, metric: str, seed: str = "mean"
) -> pd.DataFrame:
    """Per domain, model kind (unified, regional) and setting (temporal, pub, pur): the median
    ``metric`` over the sites scored in that setting, the temporal median on the same sites, the
    median per-site loss (temporal minus holdout; for an error metric such as RMSE, a negative
    loss) and the share of sites worse without the gauge (judged as the statistics judge ``metric``:
    ``|bias|`` for bias). ``temporal``: the study's site metrics (experiment ``global_vs_local``);
    ``seed``: the seed label of the rows compared (statistics.judged_seed_label)."""
    for name, df in (("temporal", temporal), ("spatial", spatial)):
        missing = [
            c for c in ("domain", "experiment", "scenario", "seed", "site_id", metric) if c not in df.columns
        ]
        if missing:
            raise InputError(f"{name} site metrics", f"missing columns {missing}")
    if metric not in METRICS:
        raise InputError("gauge loss", f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
    spec = METRICS[metric]
    temp = temporal[(temporal["experiment"] == "global_vs_local") & (temporal["seed"] == seed)]
    temp = temp.assign(model=temp["scenario"].map(KINDS[TEMPORAL]))
    temp = temp.dropna(subset=["model"]).drop_duplicates(["domain", "model", "site_id"])
    base = temp.set_index(["domain", "model", "site_id"])[metric]
    rows = []
    for setting in (TEMPORAL, *SPATIAL_EXPERIMENTS):
        if setting == TEMPORAL:
            values = base
        else:
            sp = spatial[(spatial["experiment"] == setting) & (spatial["seed"] == seed)]
            sp = sp.assign(model=sp["scenario"].map(KINDS[setting])).dropna(subset=["model"])
            values = sp.set_index(["domain", "model", "site_id"])[metric]
        paired = pd.DataFrame({"value": values, "temporal": base.reindex(values.index)}).dropna()
        for (domain, model), g in paired.groupby(level=["domain", "model"]):
            diff = g["temporal"] - g["value"]
            held, kept = spec.better_values(g["value"]), spec.better_values(g["temporal"])
            worse = held < kept if spec.higher_is_better else held > kept
            rows.append(
                {
                    "domain": domain,
                    "model": model,
                    "setting": setting,
                    "metric": metric,
                    "n_sites": len(g),
                    "median": float(g["value"].median()),
                    "median_temporal": float(g["temporal"].median()),
                    "median_loss": float(diff.median()),
                    "share_worse": float(worse.mean()),
                }
            )
    return pd.DataFrame(rows, columns=list(LOSS_COLUMNS))


def gauge_figure(loss: pd.DataFrame, title: str) -> bytes:
    """Bars of the median skill per model kind, temporal vs PUB vs PUR (PNG bytes)."""
    if loss.empty:
        raise InputError("gauge figure", "no rows to draw")
    settings = [s for s in (TEMPORAL, PUB, PUR) if s in set(loss["setting"])]
    models = sorted(loss["model"].unique())
    fig = Figure(figsize=(5.0, 3.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(settings)
    x = np.arange(len(models))
    for i, setting in enumerate(settings):
        s = loss[loss["setting"] == setting].set_index("model").reindex(models)
        bars = ax.bar(
            x + i * width,
            s["median"],
            width,
            label=f"{setting} (gauge {'kept' if setting == TEMPORAL else 'taken away'})",
        )
        for bar, n in zip(bars, s["n_sites"], strict=True):
            if pd.notna(n):
                ax.annotate(
                    f"n={int(n)}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    fontsize=6,
                    ha="center",
                    va="bottom",
                )
    ax.set_xticks(x + width * (len(settings) - 1) / 2, models)
    ax.set_ylabel(f"median {loss['metric'].iloc[0]}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
