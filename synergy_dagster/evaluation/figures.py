"""The study's figures as PNG bytes: per-region boxplots, error matrices, the region map, loss curves,
observed vs simulated series of a few sites per region and the spread of comparisons across seeds.

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

from synergy_dagster.domains import DOMAIN_RECORDS
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
    "scheme_comparison_figure",
    "seed_spread_figure",
    "synergy_curves_figure",
]

DPI = 100
_DOMAIN_MARKERS = {d: r.marker for d, r in DOMAIN_RECORDS.items()}


def _clip_far_outliers(ax: Any, data: Sequence[np.ndarray]) -> None:
    """Keep the boxes readable when a few sites are far below them (an NSE of -300 at a basin the
    model misses badly would squash every box to a line): the axis starts just below the lowest
    lower whisker (1.5 IQR) and a note says how many values lie below it and the lowest value."""
    values = [v for v in data if v.size]
    if not values:
        return
    whiskers = []
    for v in values:
        q1, q3 = np.percentile(v, [25, 75])
        inside = v[v >= q1 - 1.5 * (q3 - q1)]
        whiskers.append(float(inside.min()) if inside.size else float(q1))
    low = min(whiskers)
    top = max(float(v.max()) for v in values)
    below = sum(int((v < low).sum()) for v in values)
    lowest = min(float(v.min()) for v in values)
    span = max(top - low, 1e-12)
    if below == 0 or low - lowest < 0.5 * span:  # nothing far out: matplotlib's limits are fine
        return
    ax.set_ylim(low - 0.08 * span, top + 0.05 * span)
    ax.text(0.01, 0.02, f"{below} values below the axis (lowest {lowest:.3g})", transform=ax.transAxes,
            fontsize=6, color="0.3", va="bottom")  # fmt: skip


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


def _level(alpha: float) -> str:
    """The confidence level of an interval at significance ``alpha``, as a legend shows it (``95%``)."""
    return f"{100 * (1 - alpha):g}%"


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
    shown: list[np.ndarray] = []
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
            shown += data
    _clip_far_outliers(ax, shown)
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


def seed_spread_figure(
    significance: pd.DataFrame,
    metric: str,
    aggregate: str = "seed_mean",
    title: str | None = None,
    path: str | Path | None = None,
    alpha: float = 0.05,
) -> bytes:
    """Spread across seeds of each comparison, one panel per comparison: per region (and "All"),
    every seed's median paired difference ``a - b`` as a dot, and the ``aggregate`` rows' (the
    test on per-site seed means) median difference with its bootstrap CI as a bar; ``alpha``: the
    significance level the table's intervals were computed at (level 1 - alpha), named in the legend.

    ``significance``: rows of one domain and experiment (columns comparison, region, metric,
    seed, median_diff, ci_low, ci_high); per-seed rows have seed labels "0", "1", ...
    """
    _require(
        significance, ["comparison", "region", "metric", "seed", "median_diff", "ci_low", "ci_high"], "sig"
    )
    sig = significance[significance["metric"] == metric]
    if sig.empty:
        raise InputError("significance", f"no rows for metric {metric!r}")
    seeds = sig["seed"].astype(str)
    per_seed = sig[seeds.str.fullmatch(r"\d+")]
    agg = sig[seeds == aggregate]
    comparisons = list(dict.fromkeys(sig["comparison"]))
    fig = Figure(figsize=(max(6.0, 0.5 * sig["region"].nunique() + 3), 2.6 * len(comparisons)), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(comparisons), 1, squeeze=False)[:, 0]
    seed_labels = sorted(per_seed["seed"].astype(str).unique(), key=int)
    colors = dict(zip(seed_labels, _palette(len(seed_labels)), strict=True))
    for ax, comp in zip(axes, comparisons, strict=True):
        regions = sorted(sig.loc[sig["comparison"] == comp, "region"].astype(str).unique(), key=_code_key)
        regions = [r for r in regions if r != "All"] + (["All"] if "All" in regions else [])
        x = {r: i for i, r in enumerate(regions)}
        ps = per_seed[per_seed["comparison"] == comp]
        for s, g in ps.groupby(ps["seed"].astype(str)):
            jitter = (int(s) - (len(seed_labels) - 1) / 2) * 0.08
            ax.scatter(
                [x[str(r)] + jitter for r in g["region"]], g["median_diff"], s=14, color=colors[s], zorder=3
            )
        ag = agg[agg["comparison"] == comp]
        if not ag.empty:
            xs = np.array([x[str(r)] for r in ag["region"]], dtype=float)
            med = ag["median_diff"].to_numpy(float)
            err = np.vstack([med - ag["ci_low"].to_numpy(float), ag["ci_high"].to_numpy(float) - med])
            ax.errorbar(xs, med, yerr=np.abs(err), fmt="D", color="black", ms=5, capsize=3, zorder=4)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(regions)), regions, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(f"median {metric} diff", fontsize=8)
        ax.set_title(comp, fontsize=9)
    handles = [Line2D([], [], ls="", marker="o", color=colors[s], label=f"seed {s}") for s in seed_labels]
    handles.append(
        Line2D([], [], ls="", marker="D", color="black", label=f"{aggregate} ({_level(alpha)} bootstrap CI)")
    )
    axes[0].legend(handles=handles, fontsize=7, loc="best", ncol=min(4, len(handles)))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _render(fig, path)


# Pool colours of the synergy curves (the similarity scenarios' order: close, far, dissimilar).
_POOL_COLORS = {"close": "tab:green", "far": "tab:orange", "dissimilar": "tab:red"}


def synergy_curves_figure(
    curves: pd.DataFrame,
    slopes: pd.DataFrame,
    metric: str,
    title: str | None = None,
    path: str | Path | None = None,
    alpha: float = 0.05,
) -> bytes:
    """Synergy curves of one domain, one panel per ROI: the draw-mean site-median ``metric`` against
    ``log2(1 + k)`` sites added from each pool (error bars: spread over draws), the pool's whole set
    (``all``) as an open marker at its size, and the fitted line with its slope and the slope
    table's (1 - ``alpha``) t-interval in the legend (none with one draw). ``curves`` / ``slopes``: the rows of :func:`synergy_dagster.evaluation.synergy.curve_table`
    and ``slope_table``."""
    _require(curves, ["region", "pool", "point", "k", "metric", "value", "sd"], "synergy curves")
    df = curves[curves["metric"] == metric]
    if df.empty:
        raise InputError("synergy curves", f"no {metric!r} rows to plot")
    regions = sorted(df["region"].unique(), key=_code_key)
    ncols = min(4, len(regions))
    nrows = -(-len(regions) // ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.9 * nrows + 0.4), dpi=DPI)
    FigureCanvasAgg(fig)
    fit = slopes[(slopes["metric"] == metric) & slopes["versus"].isna()] if len(slopes) else slopes
    for i, region in enumerate(regions):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        rd = df[df["region"] == region]
        ticks: set[int] = set()
        for pool, g in rd.groupby("pool", sort=False):
            color = _POOL_COLORS.get(str(pool), "tab:blue")
            grid = g[g["point"] == "grid"].sort_values("k")
            x = np.log2(1.0 + grid["k"].to_numpy(float))
            label = str(pool)
            row = fit[(fit["region"] == region) & (fit["pool"] == pool)] if len(fit) else fit
            if len(row):
                b, a, lo, hi = (float(row[c].iloc[0]) for c in ("slope", "intercept", "ci_low", "ci_high"))
                ax.plot(x, a + b * x, color=color, ls="--", lw=1)
                label = f"{pool}: {b:+.2g} [{lo:+.2g}, {hi:+.2g}]" if np.isfinite(lo) else f"{pool}: {b:+.2g}"
            ax.errorbar(
                x, grid["value"], yerr=grid["sd"].fillna(0.0), color=color, marker="o", ms=3, lw=1.3,
                capsize=2, label=label,
            )  # fmt: skip
            full = g[g["point"] == "all"]
            if len(full):
                ax.plot(
                    np.log2(1.0 + full["k"].to_numpy(float)), full["value"], ls="none", marker="o",
                    mfc="none", mec=color, ms=6,
                )  # fmt: skip
            ticks.update(int(k) for k in g["k"])
        shown = sorted(ticks)
        ax.set_xticks(np.log2(1.0 + np.array(shown, float)))
        ax.set_xticklabels([str(k) for k in shown], fontsize=6, rotation=90)
        ax.set_title(
            f"ROI {region} ({int(rd['n_eval_sites'].iloc[0])} sites)" if "n_eval_sites" in rd else region,
            fontsize=8,
        )
        ax.grid(alpha=0.3)
        ax.legend(
            fontsize=6, loc="best", title=f"slope per doubling [{_level(alpha)} t-interval]", title_fontsize=6
        )
        if i % ncols == 0:
            ax.set_ylabel(f"median {metric}")
        if i >= len(regions) - ncols:
            ax.set_xlabel("sites added, k (log2(1+k) axis; open: whole pool)", fontsize=7)
    fig.suptitle(title or f"synergy curves: {metric}", fontsize=10)
    return _render(fig, path)


def scheme_comparison_figure(
    pairs: pd.DataFrame,
    table: pd.DataFrame,
    metrics: Sequence[str],
    title: str | None = None,
    *,
    path: str | Path | None = None,
) -> bytes:
    """Global vs local per regionalisation scheme: one panel per metric, a pair of boxes (global,
    local; per-site skill pooled over the scheme's regions) per scheme, annotated with the share of
    sites where the global model wins and the Wilcoxon p. ``pairs`` holds scheme and
    ``<metric>_global`` / ``<metric>_local`` (:func:`synergy_dagster.evaluation.schemes.scheme_pairs`),
    ``table`` scheme, metric, share_global_better, p_value and n_regions."""
    _require(pairs, ["scheme"], "pairs")
    _require(table, ["scheme", "metric", "share_global_better", "p_value", "n_regions"], "table")
    schemes = list(dict.fromkeys(table["scheme"]))
    if "ecoregions" in schemes:  # the paper's scheme first, the others in table order
        schemes = ["ecoregions", *[s for s in schemes if s != "ecoregions"]]
    fig = Figure(figsize=(max(4.5, 1.2 * len(schemes) + 1.5), 2.9 * len(metrics)), dpi=DPI)
    FigureCanvasAgg(fig)
    colors = _palette(2)
    for m, metric in enumerate(metrics):
        ax = fig.add_subplot(len(metrics), 1, m + 1)
        shown: list[np.ndarray] = []
        for j, role in enumerate(("global", "local")):
            data, pos = [], []
            for i, scheme in enumerate(schemes):
                v = pairs.loc[pairs["scheme"] == scheme, f"{metric}_{role}"].to_numpy(float)
                v = v[np.isfinite(v)]
                if v.size:
                    data.append(v)
                    pos.append(i + (j - 0.5) * 0.38)
            if data:
                bp = ax.boxplot(
                    data,
                    positions=pos,
                    widths=0.34,
                    patch_artist=True,
                    flierprops={"markersize": 2},
                    medianprops={"color": "black"},
                )
                for box in bp["boxes"]:
                    box.set_facecolor(colors[j])
                shown += data
        _clip_far_outliers(ax, shown)
        rows = table[table["metric"] == metric].set_index("scheme")
        labels = []
        for scheme in schemes:
            if scheme in rows.index:
                r = rows.loc[scheme]
                labels.append(
                    f"{scheme} ({int(r['n_regions'])})\nglobal wins {100 * r['share_global_better']:.0f}%"
                    f"\np={r['p_value']:.2g}"
                )
            else:
                labels.append(scheme)
        ax.set_xticks(range(len(schemes)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_xlim(-0.6, len(schemes) - 0.4)
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
        if m == 0:
            ax.legend(
                handles=[
                    Patch(facecolor=c, label=s) for c, s in zip(colors, ("global", "local"), strict=True)
                ],
                fontsize=7,
                loc="best",
            )
    fig.suptitle(title or "global vs local per regionalisation (regions in brackets)", fontsize=10)
    fig.tight_layout()
    return _render(fig, path)
