"""The study's figures as PNG bytes: per-region boxplots, error matrices, the region map, loss curves
and observed vs simulated series of a few sites per region.

Figures are drawn on a bare ``matplotlib.figure.Figure`` attached to the Agg canvas, so no pyplot
global state or backend switch is involved and rendering is headless and thread-safe. Each
function returns the PNG bytes and, when ``path`` is given, also writes them atomically there.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import atomic_write_bytes

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = [
    "boxplot_by_region",
    "error_matrix",
    "learning_curve",
    "learning_curves_by_scenario",
    "observed_vs_simulated",
    "pick_sites",
    "region_map",
]

DPI = 100
_DOMAIN_MARKERS = {"soil_moisture": "s", "streamflow": "o"}


def _new_figure(width: float, height: float) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _render(fig: Figure, path: str | Path | None) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    data = buf.getvalue()
    if path is not None:
        atomic_write_bytes(path, data)
    return data


def _require(df: pd.DataFrame, cols: Sequence[str], source: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(source, f"missing column(s) {missing}; have {list(df.columns)}")


def _palette(n: int, name: str = "tab10") -> list[tuple[float, float, float, float]]:
    cmap = matplotlib.colormaps[name]
    k = cmap.N if hasattr(cmap, "N") else 10
    return [cmap(i % k) for i in range(n)]


def boxplot_by_region(
    site_metrics: pd.DataFrame,
    metric: str,
    scenarios: Sequence[str],
    region_order: Sequence[str] | None = None,
    title: str | None = None,
    *,
    region_col: str = "region",
    scenario_col: str = "scenario",
    ylabel: str | None = None,
    path: str | Path | None = None,
) -> bytes:
    """Grouped boxplots: for each region, one box per scenario of the per-site ``metric``.

    ``site_metrics`` holds one row per site per scenario (columns ``region_col``, ``scenario_col``,
    ``metric``). Regions default to the sorted regions present; the tick label carries the number
    of sites (the largest count over the scenarios). NaN values are left out of the boxes.
    """
    _require(site_metrics, [region_col, scenario_col, metric], "site_metrics")
    if not scenarios:
        raise InputError("scenarios", "at least one scenario is required")
    df = site_metrics[site_metrics[scenario_col].isin(list(scenarios))]
    regions = list(region_order) if region_order is not None else sorted(df[region_col].unique(), key=str)
    k = len(scenarios)
    width = 0.8 / k
    colors = _palette(k)
    fig, ax = _new_figure(max(4.0, 0.55 * len(regions) * max(1, k / 2) + 1.5), 3.4)
    grouped = {key: g[metric].to_numpy(float) for key, g in df.groupby([region_col, scenario_col])}
    counts = []
    for j, scen in enumerate(scenarios):
        data, pos = [], []
        for i, reg in enumerate(regions):
            v = grouped.get((reg, scen), np.empty(0))
            v = v[np.isfinite(v)]
            if v.size:
                data.append(v)
                pos.append(i + (j - (k - 1) / 2) * width)
        if data:
            bp = ax.boxplot(
                data,
                positions=pos,
                widths=width * 0.9,
                patch_artist=True,
                showfliers=True,
                flierprops={"markersize": 2},
                medianprops={"color": "black"},
            )
            for box in bp["boxes"]:
                box.set_facecolor(colors[j])
                box.set_alpha(0.85)
    for reg in regions:
        counts.append(max(int(np.isfinite(grouped.get((reg, s), np.empty(0))).sum()) for s in scenarios))
    ax.set_xticks(range(len(regions)))
    ax.set_xticklabels([f"{r}\n({n})" for r, n in zip(regions, counts, strict=True)], fontsize=7)
    ax.set_xlim(-0.6, len(regions) - 0.4)
    ax.set_ylabel(ylabel or metric)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        handles=[Patch(facecolor=c, label=s) for c, s in zip(colors, scenarios, strict=True)],
        fontsize=7,
        ncol=min(k, 4),
        loc="best",
    )
    if title:
        ax.set_title(title, fontsize=10)
    return _render(fig, path)


def error_matrix(
    table: pd.DataFrame,
    *,
    value: str = "value",
    row_col: str = "region",
    col_col: str = "scenario",
    reference: str | None = None,
    higher_is_better: bool | None = None,
    row_order: Sequence[str] | None = None,
    col_order: Sequence[str] | None = None,
    title: str | None = None,
    fmt: str = ".3g",
    path: str | Path | None = None,
) -> bytes:
    """Annotated heatmap of the median of column ``value`` per (row x column), e.g. ROI x training set.

    ``table`` may be long-format medians or per-site rows: cells are the median of all rows that
    fall in them. With ``reference`` (e.g. ``"local"``) each cell shows the difference to the
    reference column of its row (the reference column itself is dropped) on a diverging scale
    centred on 0; ``higher_is_better`` makes improvements blue and degradations red.
    """
    _require(table, [row_col, col_col, value], "table")
    mat = table.pivot_table(index=row_col, columns=col_col, values=value, aggfunc="median", dropna=False)
    if row_order is not None:
        mat = mat.reindex(index=list(row_order))
    if col_order is not None:
        mat = mat.reindex(columns=list(col_order))
    cmap_name = "viridis"
    center = False
    if reference is not None:
        if reference not in mat.columns:
            raise InputError("reference", f"column {reference!r} not in {list(mat.columns)}")
        mat = mat.sub(mat[reference], axis=0).drop(columns=[reference])
        center = True
        cmap_name = "RdBu" if higher_is_better in (True, None) else "RdBu_r"
    values = mat.to_numpy(dtype=float)
    nr, nc = values.shape
    fig, ax = _new_figure(max(3.5, 1.1 * nc + 2.0), max(2.5, 0.35 * nr + 1.2))
    finite = values[np.isfinite(values)]
    kwargs: dict[str, float] = {}
    if center and finite.size:
        lim = float(np.max(np.abs(finite))) or 1.0
        kwargs = {"vmin": -lim, "vmax": lim}
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap_name, aspect="auto", **kwargs)
    fig.colorbar(im, ax=ax, shrink=0.8, label=(f"{value} - {reference}" if reference else value))
    ax.set_xticks(range(nc))
    ax.set_xticklabels([str(c) for c in mat.columns], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(nr))
    ax.set_yticklabels([str(r) for r in mat.index], fontsize=8)
    if finite.size:
        mid = 0.0 if center else float(np.nanmean(finite))
        spread = float(np.nanmax(np.abs(finite - mid))) or 1.0
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                # Light text on the saturated ends of the scale, dark text elsewhere.
                color = "white" if abs(v - mid) > 0.6 * spread else "black"
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7, color=color)
    if title:
        ax.set_title(title, fontsize=10)
    return _render(fig, path)


def region_map(
    regions_gdf: gpd.GeoDataFrame,
    sites: pd.DataFrame,
    color_by: str = "subregion",
    *,
    code_col: str = "code",
    lat_col: str = "lat",
    lon_col: str = "lon",
    title: str | None = None,
    label_regions: bool = True,
    path: str | Path | None = None,
) -> bytes:
    """Map of the regions (polygons coloured by ``code_col``) with the sites as points.

    Sites are coloured by their ``color_by`` column, with the same colour as the region of that
    code where the values match (e.g. sub-region letters); without that column they are black.
    A ``domain`` column, when present, picks the marker (square = SMAP pixel, circle = basin).
    """
    _require(regions_gdf, [code_col, "geometry"], "regions")
    _require(sites, [lat_col, lon_col], "sites")
    gdf = regions_gdf
    if gdf.crs is not None and not gdf.crs.is_geographic:
        gdf = gdf.to_crs(4326)
    codes = [str(c) for c in gdf[code_col]]
    site_codes = [str(c) for c in sites[color_by]] if color_by in sites.columns else []
    cats = sorted(set(codes) | set(site_codes))
    palette = dict(zip(cats, _palette(len(cats), "tab20"), strict=True))
    fig, ax = _new_figure(7.0, 4.2)
    if len(gdf):
        gdf.plot(ax=ax, color=[palette[c] for c in codes], edgecolor="white", linewidth=0.3, alpha=0.55)
        if label_regions:
            pts = gdf.geometry.representative_point()
            for code, pt in zip(codes, pts, strict=True):
                ax.annotate(code, (pt.x, pt.y), ha="center", va="center", fontsize=7, weight="bold")
    lat = sites[lat_col].to_numpy(float)
    lon = sites[lon_col].to_numpy(float)
    colors = [palette[c] for c in site_codes] if site_codes else ["black"] * len(sites)
    if "domain" in sites.columns:
        doms = sites["domain"].astype(str).to_numpy()
        handles = []
        for dom in sorted(set(doms)):
            sel = doms == dom
            marker = _DOMAIN_MARKERS.get(dom, "^")
            ax.scatter(
                lon[sel],
                lat[sel],
                c=[colors[i] for i in np.flatnonzero(sel)],
                s=10,
                marker=marker,
                edgecolors="black",
                linewidths=0.25,
                zorder=3,
            )
            handles.append(Line2D([], [], marker=marker, linestyle="", color="gray", label=dom))
        ax.legend(handles=handles, fontsize=7, loc="lower left")
    elif len(sites):
        ax.scatter(lon, lat, c=colors, s=10, edgecolors="black", linewidths=0.25, zorder=3)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title, fontsize=10)
    return _render(fig, path)


CURVE_COLUMNS = ("set_key", "scenario", "seed", "update", "seconds", "train_loss", "val_nse", "val_rmse")
_METRIC_LABEL = {"val_nse": "median validation NSE", "val_rmse": "median validation RMSE"}


def learning_curve(
    curves: pd.DataFrame, title: str = "learning curve", path: str | Path | None = None
) -> bytes:
    """One model's learning curve: training loss (left axis) and median validation NSE (right axis)
    against weight updates, one line pair per seed (rows of the ``learning_curves`` table)."""
    _require(curves, ["seed", "update", "train_loss", "val_nse"], "learning curve")
    fig, ax = _new_figure(4.8, 3.0)
    ax2 = ax.twinx()
    for (seed, g), color in zip(curves.groupby("seed"), _palette(curves["seed"].nunique()), strict=True):
        g = g.sort_values("update")
        ax.plot(g["update"], g["train_loss"], color=color, ls="--", lw=1, label=f"seed {seed} loss")
        ax2.plot(g["update"], g["val_nse"], color=color, marker=".", lw=1.5, label=f"seed {seed} NSE")
    ax.set_xlabel("weight updates")
    ax.set_ylabel("training loss (dashed)")
    ax2.set_ylabel("median validation NSE")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    return _render(fig, path)


def learning_curves_by_scenario(
    curves: pd.DataFrame, title: str, metric: str = "val_nse", path: str | Path | None = None
) -> bytes:
    """Every model's validation curve of one domain, coloured by scenario: against weight updates
    (left) and against training seconds (right); the thick line is the scenario's median over its
    models at each update."""
    _require(curves, list(CURVE_COLUMNS), "learning curves")
    if metric not in _METRIC_LABEL:
        raise InputError("metric", f"must be one of {sorted(_METRIC_LABEL)}, got {metric!r}")
    if curves.empty:
        raise InputError("learning curves", "no curve to plot (no model was trained with a budget)")
    fig = Figure(figsize=(10.0, 3.8), dpi=DPI)
    FigureCanvasAgg(fig)
    ax_u, ax_s = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    scenarios = list(dict.fromkeys(curves["scenario"]))
    handles = []
    for scenario, color in zip(scenarios, _palette(len(scenarios)), strict=True):
        sc = curves[curves["scenario"] == scenario]
        for _, g in sc.groupby(["set_key", "seed"]):
            g = g.sort_values("update")
            ax_u.plot(g["update"], g[metric], color=color, lw=0.7, alpha=0.45)
            ax_s.plot(g["seconds"], g[metric], color=color, lw=0.7, alpha=0.45)
        med = sc.groupby("update")[metric].median()
        ax_u.plot(med.index, med.values, color=color, lw=2.2)
        handles.append(Line2D([], [], color=color, lw=2.2, label=f"{scenario} ({sc['set_key'].nunique()})"))
    for ax, xlabel in ((ax_u, "weight updates"), (ax_s, "training seconds")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_METRIC_LABEL[metric])
        ax.grid(alpha=0.3)
    ax_s.legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return _render(fig, path)


# Fixed colours per scenario, so a scenario looks the same in every panel and figure.
SCENARIO_ORDER = ("global", "local", "local+close", "local+far", "local+dissimilar")
SERIES_EXPERIMENTS = ("global_vs_local", "similarity")
PICK_LABELS = ("median", "low")


def _code_key(code: object) -> tuple[tuple[int, object], ...]:
    # Sub-region letters alphabetically, Level III codes numerically ("9.4.2" before "10.1.5").
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in str(code).split("."))


def pick_sites(
    site_metrics: pd.DataFrame,
    metric: str = "nse",
    *,
    low_quantile: float = 0.1,
    experiments: Sequence[str] = SERIES_EXPERIMENTS,
) -> pd.DataFrame:
    """Two sites per (experiment, region) to show as series: ``median``, the site whose score is
    closest to the region's median, and ``low``, the one closest to its ``low_quantile`` (a poor
    but typical site, not the single worst outlier). A site's score is the median over the
    experiment's scenarios of ``metric`` (seed-mean rows when a ``seed`` column is present). Ties
    go to the smaller site id, so the choice is deterministic; a region with one scored site gets
    one pick. Returns experiment, region, pick, site_id, score, metric; regions in code order."""
    _require(site_metrics, ["experiment", "region", "scenario", "site_id", metric], "site_metrics")
    df = site_metrics[site_metrics["experiment"].isin(list(experiments))]
    if "seed" in df.columns:
        df = df[df["seed"] == "mean"]
    keys = ["experiment", "region"]
    score = df.groupby([*keys, "site_id"])[metric].median().rename("score").reset_index()
    score = score[np.isfinite(score["score"].to_numpy(float))]
    columns = [*keys, "pick", "site_id", "score", "metric"]
    if score.empty:
        return pd.DataFrame(columns=columns)
    grouped = score.groupby(keys)["score"]
    score["d_median"] = (score["score"] - grouped.transform("median")).abs()
    score["d_low"] = (score["score"] - grouped.transform("quantile", low_quantile)).abs()
    median = score.sort_values([*keys, "d_median", "site_id"]).groupby(keys).head(1)
    rest = score.drop(index=median.index)
    low = rest.sort_values([*keys, "d_low", "site_id"]).groupby(keys).head(1)
    out = pd.concat([median.assign(pick=PICK_LABELS[0]), low.assign(pick=PICK_LABELS[1])]).assign(
        metric=metric
    )
    exp_rank = {e: i for i, e in enumerate(experiments)}
    out = out.assign(
        _e=out["experiment"].map(exp_rank),
        _r=out["region"].map(_code_key),
        _p=out["pick"].map(PICK_LABELS.index),
    )
    return out.sort_values(["_e", "_r", "_p"])[columns].reset_index(drop=True)


def observed_vs_simulated(
    predictions: xr.Dataset,
    picks: pd.DataFrame,
    title: str,
    *,
    max_rows: int = 8,
    panel_size: tuple[float, float] = (5.0, 1.9),
) -> list[bytes]:
    """Observed vs simulated test-period series: one row per (experiment, region) of ``picks``
    (:func:`pick_sites`), one panel per picked site, the observation in black and each scenario of
    that comparison in its colour. ``predictions`` is the predictions file's dataset
    (:mod:`synergy_dagster.evaluation.predictions`): its ``evaluation`` table says which model
    each scenario scores. At most ``max_rows`` rows per figure (the figure size is capped):
    returns one PNG per group of rows, none when there is nothing to draw."""
    _require(picks, ["experiment", "region", "pick", "site_id"], "picks")
    if max_rows < 1:
        raise InputError("max_rows", f"must be at least 1, got {max_rows}")
    from synergy_dagster.evaluation.predictions import evaluation_models  # keeps xarray out of imports

    table = evaluation_models(predictions)
    rows = list(dict.fromkeys(zip(picks["experiment"], picks["region"], strict=True)))
    ncols = max(1, int(picks.groupby(["experiment", "region"]).size().max())) if len(picks) else 1
    time = pd.DatetimeIndex(predictions["time"].to_numpy())
    units = str(predictions["simulated"].attrs.get("units", ""))
    model_pos = pd.Index(predictions["model"].to_numpy().astype(str))
    site_pos = pd.Index(predictions["site"].to_numpy().astype(str))
    scenario_colors = dict(zip(SCENARIO_ORDER, _palette(len(SCENARIO_ORDER)), strict=True))
    pngs = []
    for start in range(0, len(rows), max_rows):
        part = rows[start : start + max_rows]
        # Constrained layout keeps the title and the shared legend above the panels.
        fig = Figure(
            figsize=(panel_size[0] * ncols, panel_size[1] * len(part) + 0.8), dpi=DPI, layout="constrained"
        )
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(part), ncols, squeeze=False)
        seen: dict[str, Any] = {}
        for i, (experiment, region) in enumerate(part):
            comp = table[(table["experiment"] == experiment) & (table["region"] == region)]
            comp = comp.assign(
                _o=comp["scenario"].map(lambda s: SCENARIO_ORDER.index(s) if s in SCENARIO_ORDER else 99)
            )
            comp = comp.sort_values(["_o", "scenario"])
            chosen = picks[(picks["experiment"] == experiment) & (picks["region"] == region)]
            # One read per row: the picked sites x this comparison's models.
            s_idx = site_pos.get_indexer(chosen["site_id"].astype(str))
            m_idx = model_pos.get_indexer(comp["model"])
            if (s_idx < 0).any() or (m_idx < 0).any():
                raise InputError("picks", f"{experiment}/{region}: a site or model is not in the predictions")
            sim = predictions["simulated"].isel(site=s_idx, model=m_idx).to_numpy()
            obs = predictions["observed"].isel(site=s_idx).to_numpy()
            for j in range(ncols):
                ax = axes[i, j]
                if j >= len(chosen):
                    ax.set_visible(False)
                    continue
                pick = chosen.iloc[j]
                (h,) = ax.plot(time, obs[j], color="black", lw=0.9, label="observed")
                seen.setdefault("observed", h)
                for k, scenario in enumerate(comp["scenario"]):
                    color = scenario_colors.get(scenario, "gray")
                    (h,) = ax.plot(time, sim[j, :, k], color=color, lw=0.8, alpha=0.85, label=scenario)
                    seen.setdefault(scenario, h)
                score = (
                    f", {pick.get('metric', 'score')} {pick['score']:.2f}"
                    if "score" in pick and np.isfinite(pick["score"])
                    else ""
                )
                ax.set_title(f"{region} ({experiment}): {pick['site_id']}, {pick['pick']}{score}", fontsize=8)
                ax.tick_params(labelsize=7)
                ax.xaxis.set_major_formatter(ConciseDateFormatter(ax.xaxis.get_major_locator()))
                ax.xaxis.get_offset_text().set_fontsize(7)
                ax.grid(alpha=0.3)
                if j == 0:
                    ax.set_ylabel(units, fontsize=7)
        fig.legend(
            handles=list(seen.values()),
            loc="outside lower center",
            ncol=min(len(seen), 6),
            fontsize=8,
            frameon=False,
        )
        suffix = f" ({start // max_rows + 1}/{-(-len(rows) // max_rows)})" if len(rows) > max_rows else ""
        fig.suptitle(f"{title}{suffix}", fontsize=10)
        pngs.append(_render(fig, None))
    return pngs
