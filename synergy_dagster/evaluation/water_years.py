"""Skill per water year of each scenario, from the predictions file of a domain.

With a test period that ends at ``latest`` (``domains.streamflow.usgs.test_end``), every refresh
adds days; this table says whether the ranking of the scenarios (the unified, global model against
the local ones) holds year by year as new years arrive. A water year runs from 1 October to
30 September and is named by the calendar year it ends in (USGS convention). A year the test
period covers only in part (the current one, or a first year cut by the test start) is marked
``complete = False``: its skill rests on fewer days and a season may be missing.

Each (experiment, region) comparison is scored as the evaluation does: a day counts only where the
observation and every scenario's prediction are finite, so the scenarios of a comparison share
sites and days. Rows per region, and pooled over the regions of an experiment (``region = "*"``).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.metrics import all_metrics, common_mask
from synergy_dagster.evaluation.predictions import evaluation_models

METRICS = ("nse", "kge")
POOLED = "*"
COLUMNS = [
    "domain", "experiment", "region", "scenario", "water_year", "first_day", "last_day", "complete",
    "n_sites", "n_days", *(f"median_{m}" for m in METRICS),
]  # fmt: skip


def water_year(time: pd.DatetimeIndex) -> np.ndarray:
    """The water year of each day: October to December belong to the next calendar year."""
    return (time.year + (time.month >= 10)).to_numpy(dtype=np.int64)


def _site_rows(cube: xr.Dataset, min_days: int) -> pd.DataFrame:
    """Per-site metrics of every comparison, scenario and water year (long table)."""
    time = pd.DatetimeIndex(cube["time"].values)
    years = water_year(time)
    sim = cube["simulated"]
    obs_all = cube["observed"].transpose("site", "time").values.astype(np.float64)
    models = pd.Index(cube["model"].values.astype(str))
    table = evaluation_models(cube)
    frames = []
    for (experiment, region), group in table.groupby(["experiment", "region"], sort=False):
        idx = models.get_indexer(group["model"])
        if (idx < 0).any():
            raise InputError("predictions", f"comparison {experiment}/{region} names a model the file lacks")
        block = sim.isel(model=idx).transpose("site", "time", "model").values.astype(np.float64)
        # the comparison's sites: those every scenario predicted
        sites = np.isfinite(block).any(axis=1).all(axis=1)
        obs, block = obs_all[sites], block[sites]
        mask = common_mask(obs, [block[:, :, k] for k in range(block.shape[2])])
        site_ids = cube["site"].values[sites].astype(str)
        for year in np.unique(years):
            cols = years == year
            m = mask[:, cols]
            n_days = m.sum(axis=1)
            for k, scenario in enumerate(group["scenario"]):
                scores = all_metrics(
                    np.where(m, obs[:, cols], np.nan), np.where(m, block[:, cols, k], np.nan),
                    min_valid=min_days, names=METRICS,
                )  # fmt: skip
                frame = pd.DataFrame({f: scores[f] for f in METRICS})
                frames.append(
                    frame.assign(
                        experiment=experiment,
                        region=region,
                        scenario=scenario,
                        water_year=int(year),
                        site_id=site_ids,
                        n_days=n_days,
                    )  # fmt: skip
                )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def skill_per_water_year(cube: xr.Dataset, min_days: int = 30) -> pd.DataFrame:
    """Median skill per (experiment, region, scenario, water year), and pooled over regions.

    ``min_days``: a site's year is scored only with at least this many valid days (default 30:
    an NSE over a few days says little about a year). ``n_sites`` counts the sites scored,
    ``n_days`` the valid (site, day) pairs of the comparison's common mask in that year.
    """
    if min_days < 2:
        raise InputError("min_days", f"must be at least 2 (two pairs make a metric), got {min_days}")
    time = pd.DatetimeIndex(cube["time"].values)
    domain = str(cube.attrs.get("domain", ""))
    rows = _site_rows(cube, min_days)
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    pooled = rows.assign(region=POOLED).drop_duplicates(["experiment", "scenario", "water_year", "site_id"])
    both = pd.concat([rows, pooled], ignore_index=True)
    keys = ["experiment", "region", "scenario", "water_year"]
    agg = both.groupby(keys, sort=True).agg(
        n_sites=("nse", lambda v: int(np.isfinite(v).sum())),
        n_days=("n_days", "sum"),
        **{f"median_{m}": (m, lambda v: float(np.nanmedian(v)) if np.isfinite(v).any() else np.nan)
           for m in METRICS},
    ).reset_index()  # fmt: skip
    years = water_year(time)
    span = pd.DataFrame({"water_year": years, "day": time}).groupby("water_year")["day"].agg(["min", "max"])
    agg["first_day"] = agg["water_year"].map(span["min"])
    agg["last_day"] = agg["water_year"].map(span["max"])
    starts = pd.to_datetime((agg["water_year"] - 1).astype(str) + "-10-01")
    ends = pd.to_datetime(agg["water_year"].astype(str) + "-09-30")
    agg["complete"] = (agg["first_day"] <= starts) & (agg["last_day"] >= ends)
    agg["domain"] = domain
    return agg[COLUMNS]


def water_year_figure(table: pd.DataFrame, metric: str = "nse") -> bytes:
    """PNG: the pooled median ``metric`` per water year, one line per scenario, one panel per
    experiment; hollow markers for years the test period covers only in part."""
    col = f"median_{metric}"
    if col not in table.columns:
        raise InputError("water_year_skill", f"no column {col!r}; have {list(table.columns)}")
    pooled = table[table["region"] == POOLED]
    experiments = list(dict.fromkeys(pooled["experiment"])) or [""]
    fig = Figure(figsize=(6.0, 2.6 * len(experiments)), dpi=110)
    FigureCanvasAgg(fig)
    for i, experiment in enumerate(experiments):
        ax = fig.add_subplot(len(experiments), 1, i + 1)
        part = pooled[pooled["experiment"] == experiment]
        for scenario, g in part.groupby("scenario", sort=True):
            g = g.sort_values("water_year")
            (line,) = ax.plot(g["water_year"], g[col], label=str(scenario))
            done = g["complete"].to_numpy(dtype=bool)
            ax.plot(g["water_year"][done], g[col][done], "o", color=line.get_color())
            ax.plot(g["water_year"][~done], g[col][~done], "o", mfc="none", color=line.get_color())
        ax.set_title(
            f"{experiment}: median {metric.upper()} per water year (hollow: partial year)", fontsize=9
        )
        ax.set_xlabel("water year (Oct-Sep, named by its end)")
        ax.set_ylabel(f"median {metric.upper()}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if len(part):
            ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
