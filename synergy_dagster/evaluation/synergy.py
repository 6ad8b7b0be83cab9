"""Synergy curves, evaluated: skill on an ROI's own sites against the number of sites added from
each pool, and a fitted slope per pool answering "is it the quantity or the diversity of added data?".

Input: the plan's curve sets (:mod:`synergy_dagster.experiments.synergy`) and the per-site test
metrics of their models on the ROI's own sites, from
:func:`synergy_dagster.evaluation.study.evaluate_domain` run on :func:`curve_evaluations` (every
point of one ROI is scored on the same sites and days: one common mask).

- **Curve** (:func:`curve_table`): per ROI x pool x k the median over the ROI's sites of each
  metric (the paper's site statistic; NSE is the headline for streamflow, RMSE for soil moisture)
  under the study's seed aggregation, then the mean over the ``draws`` nested draws (``value``) with their
  standard deviation (``sd``), min and max; ``sd_seeds`` is the spread of the same median over
  the model seeds (averaged over draws; NaN with one seed).
- **Slope** (:func:`slope_table`): ordinary least squares of the draw-mean curve on
  ``x = log2(1 + k)`` over the common grid ``k = 0 .. n_min`` (the points every pool has; the
  ``all`` points have pool-specific sizes and are drawn but not fitted). Why ``log2(1 + k)``:
  the grid doubles, so the points are evenly spaced in x and the largest ``k`` does not dominate
  the fit as it would against ``k``; learning curves are close to linear in log data size; the
  slope reads "skill gained per doubling of added sites"; and ``1 +`` keeps ``k = 0`` finite.
  Equal slopes for close, far and dissimilar pools mean the amount of added data drives the gain
  (quantity); different slopes mean which data are added matters (diversity / similarity).
- **Uncertainty** (:func:`slope_interval`): each draw sequence gives its own slope; the slope's
  standard error combines their spread (``sd / sqrt(D)``, D draws) with a site bootstrap
  (:func:`bootstrap_slopes` with the draws held fixed: each replicate resamples the ROI's sites
  with replacement, the same sites for every point and pool, so differences between pools are
  paired), and the interval is Student's t with Welch-Satterthwaite degrees of freedom. The
  percentile bootstrap over a few draws it replaces under-covered (measured in docs/statistics.md);
  a t quantile with D - 1 degrees of freedom accounts for few draws. No p-value is given
  below ``min_draws`` draws; with one draw there is no interval. ``se_ols`` is the textbook
  regression standard error of the point fit, for reference (it ignores that the points share
  sites). Region ``All`` averages the ROI slopes draw by draw and replicate by replicate (ROIs have
  disjoint sites). The seed rows scored follow the ``seed_aggregation`` setting.

Free of Dagster; the ``synergy_curves`` asset calls it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

from synergy_dagster.evaluation.statistics import ENSEMBLE, judged_rows
from synergy_dagster.evaluation.study import METRIC_NAMES
from synergy_dagster.experiments.plan import EVAL_COLUMNS
from synergy_dagster.experiments.size_control import stable_seed
from synergy_dagster.experiments.synergy import CURVE_EXPERIMENT, POOLS, parse_curve_scenario

# +1: higher is better; -1: lower is better; NaN: neither (bias: its size matters, not its sign)
DIRECTION = {"rmse": -1.0, "ubrmse": -1.0, "bias": np.nan, "corr": 1.0, "nse": 1.0, "kge": 1.0}
X_LABEL = "log2(1+k)"
CURVE_COLUMNS = (
    "domain",
    "budget",
    "region",
    "pool",
    "point",
    "k",
    "n_train_sites",
    "n_eval_sites",
    "n_draws",
    "metric",
    "value",
    "sd",
    "min",
    "max",
    "sd_seeds",
)
SLOPE_COLUMNS = (
    "domain",
    "budget",
    "region",
    "metric",
    "pool",
    "versus",
    "x",
    "n_points",
    "k_max",
    "n_rois",
    "slope",
    "intercept",
    "se",
    "ci_low",
    "ci_high",
    "p_value",
    "se_ols",
    "gain",
    "n_boot",
    "aggregation",
)


# --------------------------------------------------------------------------- which models, which sites


def curve_points(sets: pd.DataFrame) -> pd.DataFrame:
    """One row per curve set of a plan: region, scenario, set_key, model_key (``trained_as``), pool,
    point (``grid`` or ``all``), draw, k (sites added: the set's size minus the ROI's),
    n_train_sites and the ROI's own sites (``eval_site_ids``, the ``k = 0`` set)."""
    cur = sets[sets["experiment"] == CURVE_EXPERIMENT]
    cols = ["region", "scenario", "set_key", "model_key", "pool", "point", "draw", "k", "n_train_sites"]
    if cur.empty:
        return pd.DataFrame(columns=[*cols, "eval_site_ids"])
    parsed = [parse_curve_scenario(s) for s in cur["scenario"]]
    out = pd.DataFrame(
        {
            "region": cur["region"].to_numpy(),
            "scenario": cur["scenario"].to_numpy(),
            "set_key": cur["key"].to_numpy(),
            "model_key": cur["trained_as"].to_numpy(),
            "pool": [p[0] for p in parsed],
            "point": ["all" if p[1] is None else "grid" for p in parsed],
            "draw": [p[2] for p in parsed],
            "n_train_sites": cur["n_sites"].to_numpy(),
            "site_ids": cur["site_ids"].to_numpy(),
        }
    )
    roi = out[[p[1] == 0 for p in parsed]].drop_duplicates("region").set_index("region")  # k = 0: the ROI
    out["eval_site_ids"] = out["region"].map(roi["site_ids"])
    out["k"] = out["n_train_sites"] - out["region"].map(roi["n_train_sites"])
    return out[[*cols, "eval_site_ids"]].reset_index(drop=True)


def curve_evaluations(sets: pd.DataFrame, domain: str) -> pd.DataFrame:
    """The curve points as plan evaluations (experiment ``synergy_curve``), each judged on its
    ROI's own sites, for :func:`~synergy_dagster.evaluation.study.evaluate_domain`."""
    pts = curve_points(sets)
    return pd.DataFrame(
        {
            "domain": domain,
            "experiment": CURVE_EXPERIMENT,
            "region": pts["region"],
            "scenario": pts["scenario"],
            "set_key": pts["set_key"],
            "model_key": pts["model_key"],
            "eval_site_ids": pts["eval_site_ids"],
            "n_eval": pts["eval_site_ids"].map(len).astype("int64"),
        },
        columns=list(EVAL_COLUMNS),
    )


# --------------------------------------------------------------------------- estimators


def dose(k: np.ndarray | Sequence[float]) -> np.ndarray:
    """The slope's x: ``log2(1 + k)`` (see module docstring for why)."""
    return np.log2(1.0 + np.asarray(k, dtype=np.float64))


def ols_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope over the last axis: b = sum((x - xm)(y - ym)) / sum((x - xm)^2);
    ``y`` may carry leading batch axes (replicates, pools)."""
    x = np.asarray(x, dtype=np.float64)
    dx = x - x.mean()
    y = np.asarray(y, dtype=np.float64)
    return ((y - y.mean(axis=-1, keepdims=True)) * dx).sum(axis=-1) / (dx**2).sum()


def ols_intercept(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """a = ym - b xm, with b from :func:`ols_slope`."""
    x = np.asarray(x, dtype=np.float64)
    return np.asarray(y, dtype=np.float64).mean(axis=-1) - ols_slope(x, y) * x.mean()


def ols_slope_se(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Regression standard error of the slope: se(b) = sqrt(sum(e^2) / (n - 2) / sum((x - xm)^2)),
    e = y - a - b x; NaN for fewer than 3 points."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[-1]
    if n < 3:
        return np.full(y.shape[:-1], np.nan)
    b, a = ols_slope(x, y), ols_intercept(x, y)
    resid = y - a[..., None] - b[..., None] * x
    return np.sqrt((resid**2).sum(axis=-1) / (n - 2) / ((x - x.mean()) ** 2).sum())


def bootstrap_p(replicates: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p of "the statistic is 0" over the first axis:
    p = min(1, 2 min((1 + #(r <= 0)) / (B + 1), (1 + #(r >= 0)) / (B + 1)))."""
    r = np.asarray(replicates, dtype=np.float64)
    b = np.isfinite(r).sum(axis=0)
    low = (1 + (r <= 0).sum(axis=0)) / (b + 1)
    high = (1 + (r >= 0).sum(axis=0)) / (b + 1)
    return np.minimum(1.0, 2 * np.minimum(low, high))


def _site_medians(values: np.ndarray, site_idx: np.ndarray | None) -> np.ndarray:
    """Median over sites (last axis) of ``values`` [..., site], or per replicate of the resampled
    sites ``site_idx`` [B, n] -> [B, ...]. All-NaN medians stay NaN without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if site_idx is None:
            return np.nanmedian(values, axis=-1)
        med = np.nanmedian(values[..., site_idx], axis=-1)  # [..., B]
    return np.moveaxis(med, -1, 0)


def bootstrap_slopes(
    values: np.ndarray,
    x: np.ndarray,
    n_boot: int,
    seed: int,
    chunk_elems: int = 20_000_000,
    resample_draws: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Slopes of the draw-mean site-median curves and their paired bootstrap replicates.

    ``values`` [pool, k, draw, site]: each site's metric for each point (a point with one set,
    ``k = 0``, repeats it in every draw slot); ``x`` [k]. Returns (slopes [pool], replicates
    [n_boot, pool]). Replicate b resamples the sites (same for every pool and point) and, with
    ``resample_draws``, the draws (same for every pool and k: the draw sequences are nested across
    k) with replacement; without it every replicate keeps all draws (the site part alone)."""
    n_pool, n_k, n_draw, n_site = values.shape
    point = ols_slope(x, np.nanmean(_site_medians(values, None), axis=-1))
    rng = np.random.default_rng(seed)
    sites = rng.integers(0, n_site, size=(n_boot, n_site))
    draws = rng.integers(0, n_draw, size=(n_boot, n_draw))
    if not resample_draws:
        draws = np.broadcast_to(np.arange(n_draw), (n_boot, n_draw))
    step = max(1, chunk_elems // max(1, values[..., 0].size * n_site))
    reps = np.empty((n_boot, n_pool))
    for start in range(0, n_boot, step):  # chunks of replicates bound the memory, not one per site
        sl = slice(start, start + step)
        med = _site_medians(values, sites[sl])  # [b, pool, k, draw]
        pick = np.take_along_axis(med, draws[sl][:, None, None, :], axis=-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            reps[sl] = ols_slope(x, np.nanmean(pick, axis=-1))
    return point, reps


def draw_slopes(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each draw sequence's slope: OLS of the site-median curve on ``x`` per pool and draw,
    [pool, draw] from ``values`` [pool, k, draw, site]. Their mean over draws is the slope of the
    draw-mean curve (OLS is linear in ``y``)."""
    med = _site_medians(values, None)  # [pool, k, draw]
    return ols_slope(x, np.moveaxis(med, 1, -1))


@dataclass(frozen=True)
class SlopeInterval:
    """A slope (or difference of slopes) with its t-interval: ``se`` combines the spread of the
    per-draw slopes (``se_draws`` = sd / sqrt(D)) and the site bootstrap (``se_sites``); ``df``
    is Welch-Satterthwaite's; ``p_value`` NaN below the minimum number of draws."""

    estimate: float
    se: float
    se_draws: float
    se_sites: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float


def slope_interval(
    per_draw: np.ndarray, site_reps: np.ndarray, alpha: float = 0.05, min_draws: int = 3
) -> SlopeInterval:
    """The t-interval of the mean of ``per_draw`` (one slope per draw sequence) widened by the
    site bootstrap replicates ``site_reps`` (draws held fixed).

    se^2 = s_draws^2 / D + se_sites^2, df = se^4 / ((s_draws^2 / D)^2 / (D - 1)) (the site part
    counted with infinite df), interval estimate +- t(1 - alpha/2, df) se, p = 2 (1 - T_df(|t|)).
    Why not the percentile bootstrap over draws: with 2-8 draws resampling draws underestimates
    their spread and the nominal 95 % interval covered 71-93 % in simulation (issue 24); the
    t quantile accounts for few draws. NaN interval with fewer than 2 finite draws (the draw
    spread is unknown); NaN p below ``min_draws``."""
    d = np.asarray(per_draw, dtype=np.float64)
    d = d[np.isfinite(d)]
    r = np.asarray(site_reps, dtype=np.float64)
    r = r[np.isfinite(r)]
    n = d.size
    est = float(d.mean()) if n else float("nan")
    se_s = float(np.std(r, ddof=1)) if r.size > 1 else 0.0
    if n < 2:
        return SlopeInterval(est, *(float("nan"),) * 2, se_s, *(float("nan"),) * 4)
    var_d = float(np.var(d, ddof=1)) / n
    se = float(np.sqrt(var_d + se_s**2))
    df = float("inf") if var_d == 0 else se**4 / (var_d**2 / (n - 1))
    if se == 0:
        return SlopeInterval(est, 0.0, 0.0, se_s, df, est, est, float("nan"))
    q = float(scipy.stats.t.ppf(1.0 - alpha / 2.0, df))
    p = float(2.0 * scipy.stats.t.sf(abs(est) / se, df)) if n >= min_draws else float("nan")
    return SlopeInterval(est, se, float(np.sqrt(var_d)), se_s, df, est - q * se, est + q * se, p)


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class RoiCurves:
    """One ROI's site metrics on its common grid: values [pool, k, draw, site]."""

    region: str
    pools: tuple[str, ...]
    ks: np.ndarray
    values: np.ndarray
    n_sites: int


def roi_curves(points: pd.DataFrame, site_metrics: pd.DataFrame, region: str, metric: str) -> RoiCurves:
    """The grid points of one ROI as a [pool, k, draw, site] array of one metric; the common grid is
    the ``k`` every pool has. ``site_metrics``: rows of one seed aggregation
    (:func:`~synergy_dagster.evaluation.statistics.judged_rows`); a table with several seed labels
    is reduced to its ensemble (``mean``) rows."""
    pts = points[(points["region"] == region) & (points["point"] == "grid")]
    pools = tuple(p for p in POOLS if p in set(pts["pool"]))
    ks = np.array(sorted(set.intersection(*(set(pts.loc[pts["pool"] == p, "k"]) for p in pools))))
    draws = np.arange(int(pts["draw"].max()) + 1)
    rows = site_metrics[site_metrics["region"] == region]
    if "seed" in rows.columns and rows["seed"].nunique() > 1:
        rows = rows[rows["seed"].astype(str) == ENSEMBLE]  # a table not yet reduced to one aggregation
    table = rows.pivot_table(
        index="scenario", columns="site_id", values=metric, aggfunc="first", dropna=False
    )
    grid = pd.MultiIndex.from_product([pools, ks, draws], names=["pool", "k", "draw"]).to_frame(index=False)
    grid = grid.merge(pts[["pool", "k", "draw", "scenario"]], on=["pool", "k", "draw"], how="left")
    # a point with one set (k = 0) stands for every draw: each draw sequence starts from it
    first = grid.groupby(["pool", "k"])["scenario"].transform("first")
    grid["scenario"] = grid["scenario"].fillna(first)
    vals = table.reindex(grid["scenario"]).to_numpy(dtype=np.float64)
    return RoiCurves(
        region, pools, ks, vals.reshape(len(pools), len(ks), len(draws), -1), int(table.shape[1])
    )


def curve_table(
    points: pd.DataFrame,
    site_metrics: pd.DataFrame,
    metrics: Sequence[str] = METRIC_NAMES,
    aggregation: str = "seed_mean",
) -> pd.DataFrame:
    """Per ROI x pool x point (``grid`` k or ``all``) and metric: the draw mean of the site median
    (``value``) of the seed rows of ``aggregation``
    (:func:`~synergy_dagster.evaluation.statistics.judged_rows`), its spread over draws and over
    model seeds (see module docstring)."""
    sm = site_metrics[site_metrics["experiment"] == CURVE_EXPERIMENT]
    judged = judged_rows(sm, aggregation, list(metrics))
    mean = judged.groupby(["region", "scenario"])[list(metrics)].median().reset_index()
    med = sm.groupby(["region", "scenario", "seed"])[list(metrics)].median().reset_index()
    per_seed = med[med["seed"].astype(str).str.fullmatch(r"\d+")]
    seeds_sd = per_seed.groupby(["region", "scenario"])[list(metrics)].std(ddof=1).reset_index()
    long = points.merge(mean, on=["region", "scenario"]).melt(
        id_vars=["region", "pool", "point", "k", "draw", "n_train_sites", "scenario"],
        value_vars=list(metrics),
        var_name="metric",
        value_name="value",
    )
    sd_long = seeds_sd.melt(id_vars=["region", "scenario"], var_name="metric", value_name="sd_seeds")
    long = long.merge(sd_long, on=["region", "scenario", "metric"], how="left")
    keys = ["region", "pool", "point", "k", "metric"]
    out = (
        long.groupby(keys, sort=False)
        .agg(
            n_train_sites=("n_train_sites", "mean"),
            n_draws=("draw", "nunique"),
            value=("value", "mean"),
            sd=("value", "std"),
            min=("value", "min"),
            max=("value", "max"),
            sd_seeds=("sd_seeds", "mean"),
        )
        .reset_index()
    )
    n_eval = sm.groupby("region")["site_id"].nunique()
    out["n_eval_sites"] = out["region"].map(n_eval).astype("int64")
    out["n_train_sites"] = out["n_train_sites"].round().astype("int64")
    out["k"] = out["k"].astype("int64")
    out["pool"] = pd.Categorical(out["pool"], categories=list(POOLS), ordered=True)
    out = out.sort_values(["region", "metric", "pool", "k"], kind="stable").reset_index(drop=True)
    out["pool"] = out["pool"].astype(str)
    return out


def _slope_rows(
    region: str,
    metric: str,
    pools: Sequence[str],
    per_draw: np.ndarray,
    reps: np.ndarray,
    extra: dict,
    alpha: float,
    min_draws: int,
) -> list[dict]:
    """Rows for each pool's slope and each pair's difference (``pool`` minus ``versus``):
    ``per_draw`` [pool, draw] slopes, ``reps`` [n_boot, pool] site-bootstrap replicates."""
    rows = []
    pairs = [(i, None) for i in range(len(pools))]
    pairs += [(i, j) for j in range(len(pools)) for i in range(j + 1, len(pools))]
    for i, j in pairs:
        d = per_draw[i] if j is None else per_draw[i] - per_draw[j]
        r = reps[:, i] if j is None else reps[:, i] - reps[:, j]
        iv = slope_interval(d, r, alpha, min_draws)
        rows.append(
            {
                "region": region,
                "metric": metric,
                "pool": pools[i],
                "versus": None if j is None else pools[j],
                "slope": iv.estimate,
                "se": iv.se,
                "ci_low": iv.ci_low,
                "ci_high": iv.ci_high,
                "p_value": iv.p_value,
                "gain": float(iv.estimate * DIRECTION[metric]),
                **{
                    k: (v[i] if j is None else np.nan) if isinstance(v, np.ndarray) else v
                    for k, v in extra.items()
                },
            }
        )
    return rows


def slope_table(
    points: pd.DataFrame,
    site_metrics: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    metrics: Sequence[str] = METRIC_NAMES,
    *,
    alpha: float = 0.05,
    min_draws: int = 3,
    aggregation: str = "seed_mean",
) -> pd.DataFrame:
    """Per ROI (and ``All``), metric and pool: the slope of skill on ``log2(1 + k)`` with its
    standard error, (1 - alpha) t-interval and p (:func:`slope_interval`: the draws' slopes plus
    an ``n_boot`` site bootstrap; no p below ``min_draws`` draws); and per pair of pools the
    difference of slopes (``pool`` minus ``versus``). ``gain`` is the slope signed so that
    positive means better. ``aggregation``: the seed rows scored (see :func:`roi_curves`), named
    in the column of that name."""
    sm = site_metrics[site_metrics["experiment"] == CURVE_EXPERIMENT]
    sm = judged_rows(sm, aggregation, list(metrics))
    rows: list[dict] = []
    all_parts: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    for region in sorted(points["region"].unique(), key=str):
        for metric in metrics:
            rc = roi_curves(points, sm, region, metric)
            x = dose(rc.ks)
            if len(rc.ks) < 2:
                continue
            # one stream per ROI (not per metric): the metrics of a ROI share their resamples
            _, reps = bootstrap_slopes(
                rc.values, x, n_boot, stable_seed(seed, f"boot:{region}"), resample_draws=False
            )
            per_draw = draw_slopes(rc.values, x)
            draw_mean = np.nanmean(_site_medians(rc.values, None), axis=-1)
            extra = {
                "intercept": ols_intercept(x, draw_mean),
                "se_ols": ols_slope_se(x, draw_mean),
                "n_points": len(rc.ks),
                "k_max": int(rc.ks.max()),
                "n_rois": 1,
            }
            rows += _slope_rows(region, metric, rc.pools, per_draw, reps, extra, alpha, min_draws)
            for i, pool in enumerate(rc.pools):
                all_parts.setdefault((metric, pool), []).append((per_draw[i], reps[:, i]))
    # All: the mean over ROIs, draw by draw and replicate by replicate (ROIs have disjoint sites)
    n_rois = len(points["region"].unique())
    if n_rois > 1:
        for metric in metrics:
            pools = [p for p in POOLS if len(all_parts.get((metric, p), [])) == n_rois]
            if not pools:
                continue
            per_draw = np.stack([np.mean([d for d, _ in all_parts[(metric, p)]], axis=0) for p in pools])
            reps = np.stack([np.mean([r for _, r in all_parts[(metric, p)]], axis=0) for p in pools], axis=1)
            extra = {"intercept": np.nan, "se_ols": np.nan, "n_points": 0, "k_max": 0, "n_rois": n_rois}
            rows += _slope_rows("All", metric, pools, per_draw, reps, extra, alpha, min_draws)
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=[c for c in SLOPE_COLUMNS if c not in ("domain", "budget")])
    out["x"] = X_LABEL
    out["n_boot"] = int(n_boot)
    out["aggregation"] = aggregation
    for c in ("n_points", "k_max", "n_rois"):
        out[c] = out[c].astype("int64")
    return out[[c for c in SLOPE_COLUMNS if c not in ("domain", "budget")]]
