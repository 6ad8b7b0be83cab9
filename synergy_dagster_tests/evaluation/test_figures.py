"""Figures are checked by what they draw (axes, artists, labels, limits of the matplotlib Figure
each function renders, captured by the ``drawn_figures`` fixture), and render to PNG and to disk
atomically; the Markdown summary carries the right numbers."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from shapely.geometry import box

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation import figures as F
from synergy_dagster.evaluation.statistics import significance_table
from synergy_dagster.evaluation.summary import markdown_table, median_table, study_summary

PNG = b"\x89PNG\r\n\x1a\n"


def _site_metrics() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for region, n in (("A", 6), ("B", 9)):
        for i in range(n):
            r = rng.uniform(0.02, 0.05)
            rows.append((region, "global", f"{region}{i}", r, 0.8))
            rows.append((region, "local", f"{region}{i}", r + 0.01, 0.7))
            rows.append((region, "local+far", f"{region}{i}", r + 0.005, np.nan if i == 0 else 0.75))
    return pd.DataFrame(rows, columns=["region", "scenario", "site_id", "rmse", "corr"])


def _medians_drawn(ax: Axes, width: float) -> dict[float, float]:
    """Box centre -> median of every box: the horizontal lines as wide as a box (0.9 ``width``)."""
    out = {}
    for line in ax.lines:
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if len(x) == 2 and y[0] == y[1] and np.isclose(x[1] - x[0], 0.9 * width):
            out[round(float(x.mean()), 6)] = float(y[0])
    return out


def test_boxplot_by_region(tmp_path: Path, drawn_figures: list[Figure]) -> None:
    df = _site_metrics()
    # a site without a score in one scenario: the region still counts its 6 sites, the box 5 values
    df.loc[(df["site_id"] == "A0") & (df["scenario"] == "local+far"), "rmse"] = np.nan
    out = tmp_path / "fig" / "box.png"
    scenarios = ["global", "local", "local+far"]
    png = F.boxplot_by_region(df, "rmse", scenarios, region_order=["B", "A", "Z"], title="RMSE", path=out)
    assert png.startswith(PNG)
    assert out.read_bytes() == png
    assert not list(out.parent.glob(".*.tmp"))  # no temp file left behind
    (ax,) = drawn_figures[0].axes
    assert ax.get_title() == "RMSE" and ax.get_ylabel() == "rmse"
    # regions in the given order, each labelled with its number of sites; Z has none
    assert [t.get_text() for t in ax.get_xticklabels()] == ["B\n(9)", "A\n(6)", "Z\n(0)"]
    assert ax.get_xlim() == (-0.6, 2.6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == scenarios
    # one box per (region with data, scenario) at its offset, whose median is that group's median
    width = 0.8 / 3
    medians = _medians_drawn(ax, width)
    want = {}
    for i, region in enumerate(["B", "A"]):
        for j, scenario in enumerate(scenarios):
            v = df[(df["region"] == region) & (df["scenario"] == scenario)]["rmse"]
            want[round(i + (j - 1) * width, 6)] = float(np.nanmedian(v))
    assert medians.keys() == want.keys()
    np.testing.assert_allclose([medians[k] for k in want], list(want.values()))
    # the boxes are filled with one colour per scenario
    faces = [tuple(p.get_facecolor()[:3]) for p in ax.patches]
    assert len(faces) == 6 and len(set(faces)) == 3
    with pytest.raises(InputError, match=r"site_metrics: missing column\(s\) \['nse'\]"):
        F.boxplot_by_region(df, "nse", ["global"])
    with pytest.raises(InputError, match="at least one scenario"):
        F.boxplot_by_region(df, "rmse", [])


def test_error_matrix_absolute_and_relative(drawn_figures: list[Figure]) -> None:
    df = _site_metrics()
    png = F.error_matrix(df, value="rmse", title="median RMSE")
    assert png.startswith(PNG)
    ax = drawn_figures[0].axes[0]
    want = df.pivot_table(index="region", columns="scenario", values="rmse", aggfunc="median")
    np.testing.assert_allclose(ax.images[0].get_array(), want.to_numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "B"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["global", "local", "local+far"]
    assert ax.get_title() == "median RMSE"
    # every cell annotated with its value
    assert sorted(t.get_text() for t in ax.texts) == sorted(format(v, ".3g") for v in want.to_numpy().ravel())
    med = median_table(df, "rmse")
    F.error_matrix(med, value="median", reference="local", higher_is_better=False)
    ax = drawn_figures[1].axes[0]
    wide = med.pivot_table(index="region", columns="scenario", values="median")
    diff = wide.sub(wide["local"], axis=0).drop(columns="local")
    np.testing.assert_allclose(ax.images[0].get_array(), diff.to_numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["global", "local+far"]  # reference dropped
    lim = float(np.abs(diff.to_numpy()).max())
    assert ax.images[0].get_clim() == pytest.approx((-lim, lim))  # diverging scale centred on 0
    assert ax.images[0].get_cmap().name == "RdBu_r"  # lower is better: improvements blue
    assert drawn_figures[1].axes[1].get_ylabel() == "median - local"  # the colour bar
    with pytest.raises(InputError, match=r"reference: column 'nowhere' not in"):
        F.error_matrix(med, value="median", reference="nowhere")


def test_region_map(drawn_figures: list[Figure]) -> None:
    regions = gpd.GeoDataFrame(
        {"code": ["A", "B"]}, geometry=[box(-110, 30, -100, 40), box(-100, 30, -90, 40)], crs=4326
    )
    sites = pd.DataFrame(
        {
            "lat": [35.0, 36.0, 33.0],
            "lon": [-105.0, -95.0, -93.0],
            "subregion": ["A", "B", "B"],
            "domain": ["soil_moisture", "streamflow", "streamflow"],
        }
    )
    png = F.region_map(regions, sites, title="regions")
    assert png.startswith(PNG)
    ax = drawn_figures[0].axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("regions", "longitude", "latitude")
    assert sorted(t.get_text() for t in ax.texts) == ["A", "B"]  # region labels
    # one scatter per domain (square = pixel, circle = basin) at the sites' coordinates
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 2
    offsets = sorted(map(tuple, np.vstack([c.get_offsets() for c in points])))
    assert offsets == [(-105.0, 35.0), (-95.0, 36.0), (-93.0, 33.0)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["soil_moisture", "streamflow"]
    # a site takes its region's colour: both B sites share one colour, A's differs
    colors = {tuple(np.round(c.get_facecolors()[0], 6)) for c in points}
    assert len(colors) == 2
    # Projected polygons are brought back to degrees; sites without the colour column are black.
    F.region_map(regions.to_crs(5070), sites.drop(columns=["subregion", "domain"]))
    ax = drawn_figures[1].axes[0]
    x0, x1 = ax.get_xlim()
    assert -112 < x0 < -109 and -91 < x1 < -88  # degrees, not metres
    (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(dots.get_facecolors()[:, :3], 0.0)
    assert ax.get_legend() is None and ax.get_title() == ""


def test_region_map_real_ecoregions(real_data: Path) -> None:
    l3 = gpd.read_file(real_data / "ecoregions" / "us_eco_l3.gpkg", layer="us_eco_l3")
    l2 = l3.dissolve(by="NA_L2CODE").reset_index().rename(columns={"NA_L2CODE": "code"})
    rng = np.random.default_rng(0)
    pts = l2.geometry.representative_point()
    sites = pd.DataFrame({"lat": pts.y + rng.normal(0, 0.1, len(pts)), "lon": pts.x, "subregion": l2["code"]})
    png = F.region_map(l2[["code", "geometry"]], sites, label_regions=False)
    assert png.startswith(PNG) and len(png) > 5000


def _curves() -> pd.DataFrame:
    rows = []
    for key, scenario in (("global:CONUS", "global"), ("local:A", "local"), ("local:B", "local")):
        for seed in (0, 1):
            for k, u in enumerate((20, 40, 60)):
                rows.append({"set_key": key, "scenario": scenario, "seed": seed, "update": u,
                             "seconds": 0.5 * u, "train_loss": 1.0 / (k + 1), "val_nse": 0.2 * k,
                             "val_rmse": 1.0 - 0.1 * k})  # fmt: skip
    return pd.DataFrame(rows)


def test_learning_curves(drawn_figures: list[Figure]) -> None:
    curves = _curves()
    assert F.learning_curve(curves[curves["set_key"] == "local:A"], "one model").startswith(PNG)
    loss_ax, nse_ax = drawn_figures[0].axes
    assert (loss_ax.get_title(), loss_ax.get_xlabel()) == ("one model", "weight updates")
    assert nse_ax.get_ylabel() == "median validation NSE"
    assert [ln.get_label() for ln in loss_ax.lines] == ["seed 0 loss", "seed 1 loss"]
    assert all(ln.get_linestyle() == "--" for ln in loss_ax.lines)
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [1.0, 0.5, 1.0 / 3.0])
    np.testing.assert_allclose(nse_ax.lines[1].get_xdata(), [20, 40, 60])
    np.testing.assert_allclose(nse_ax.lines[1].get_ydata(), [0.0, 0.2, 0.4])

    F.learning_curves_by_scenario(curves, "domain")
    by_update, by_seconds = drawn_figures[1].axes
    assert drawn_figures[1].get_suptitle() == "domain"
    assert (by_update.get_xlabel(), by_seconds.get_xlabel()) == ("weight updates", "training seconds")
    assert by_update.get_ylabel() == "median validation NSE"
    # six thin lines (3 models x 2 seeds) and one thick median per scenario; seconds on the right
    assert len(by_update.lines) == 6 + 2 and len(by_seconds.lines) == 6
    np.testing.assert_allclose(by_seconds.lines[0].get_xdata(), [10, 20, 30])
    assert [t.get_text() for t in by_seconds.get_legend().get_texts()] == ["global (1)", "local (2)"]
    F.learning_curves_by_scenario(curves, "domain", metric="val_rmse")
    rmse_ax = drawn_figures[2].axes[0]
    assert rmse_ax.get_ylabel() == "median validation RMSE"
    np.testing.assert_allclose(rmse_ax.lines[-1].get_ydata(), [1.0, 0.9, 0.8])  # local's median
    with pytest.raises(InputError, match=r"metric: must be one of .*got 'val_kge'"):
        F.learning_curves_by_scenario(curves, "domain", metric="val_kge")
    with pytest.raises(InputError, match="no curve"):
        F.learning_curves_by_scenario(curves.iloc[:0], "domain")
    with pytest.raises(InputError, match=r"learning curves: missing column\(s\) \['seconds'\]"):
        F.learning_curves_by_scenario(curves.drop(columns="seconds"), "domain")


def test_markdown_table() -> None:
    df = pd.DataFrame({"scenario": ["global", "a|b"], "rmse": [0.031234, np.nan], "n": [3, 4]})
    assert markdown_table(df) == (
        "| scenario | rmse | n |\n|---|---:|---:|\n| global | 0.0312 | 3 |\n| a\\|b |  | 4 |\n"
    )


def test_study_summary_contains_medians_and_tests() -> None:
    sm = pd.DataFrame(
        {
            "domain": "soil_moisture",
            "experiment": "global_vs_local",
            "region": ["A", "A", "B", "A", "A", "B"],
            "scenario": ["global"] * 3 + ["local"] * 3,
            "site_id": ["s1", "s2", "s3"] * 2,
            "rmse": [0.01, 0.02, 0.03, 0.02, 0.04, 0.05],  # medians 0.02 vs 0.04
            "corr": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  # medians 0.8 vs 0.5
        }
    )
    sig = significance_table(sm, [("global vs local", "global", "local")], ["rmse", "corr"], n_boot=100)
    text = study_summary(sm, sig.assign(domain="soil_moisture", experiment="global_vs_local"))
    assert "## soil_moisture / global_vs_local" in text
    assert "| global | 3 | 0.02 | 0.8 |" in text
    assert "| local | 3 | 0.04 | 0.5 |" in text
    assert "rmse: median 0.02 vs 0.04; global better at 100% of 3 sites" in text
    assert "corr: median 0.8 vs 0.5" in text
    # Two regions per (comparison, metric) family are counted in the tests table.
    assert "regions p_holm<0.05" in text


def test_far_outliers_do_not_squash_the_boxes() -> None:
    """An NSE of -300 at one basin: the axis starts below the lowest whisker, a note counts what is
    below; without far outliers the limits are matplotlib's own."""
    from matplotlib.figure import Figure

    from synergy_dagster.evaluation.figures import _clip_far_outliers

    rng = np.random.default_rng(0)
    good = rng.uniform(0.2, 0.9, 200)
    ax = Figure().add_subplot()
    ax.boxplot([np.r_[good, -300.0, -40.0], good])
    _clip_far_outliers(ax, [np.r_[good, -300.0, -40.0], good])
    low, high = ax.get_ylim()
    assert -1.0 < low < 0.2 and high > 0.9
    assert [t.get_text() for t in ax.texts] == ["2 values below the axis (lowest -300)"]
    ax2 = Figure().add_subplot()
    ax2.boxplot([good])
    before = ax2.get_ylim()
    _clip_far_outliers(ax2, [good])
    assert ax2.get_ylim() == before and not ax2.texts


def test_seed_spread_figure_content(drawn_figures: list[Figure]) -> None:
    rows = []
    for comp in ("global vs local", "local vs local+close"):
        for region in ("8.1.1", "All", "B", "10.1.5"):
            for seed, d in (("0", 0.01), ("1", 0.03), ("seed_mean", 0.02)):
                rows.append((comp, region, "nse", seed, d, d - 0.01, d + 0.02))
    sig = pd.DataFrame(
        rows, columns=["comparison", "region", "metric", "seed", "median_diff", "ci_low", "ci_high"]
    )
    F.seed_spread_figure(sig, "nse", aggregate="seed_mean", title="spread")
    fig = drawn_figures[0]
    assert fig.get_suptitle() == "spread" and [ax.get_title() for ax in fig.axes] == list(
        dict.fromkeys(sig["comparison"])
    )
    ax = fig.axes[0]
    # regions in code order ("8.1.1" before "10.1.5", letters after codes), "All" last
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8.1.1", "10.1.5", "B", "All"]
    assert ax.get_ylabel() == "median nse diff"
    seeds = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(
        sorted(np.vstack([c.get_offsets()[:, 1] for c in seeds]).ravel()), [0.01] * 4 + [0.03] * 4
    )
    (bars,) = ax.containers  # the aggregate's median and CI per region
    x, y = bars.lines[0].get_data()
    np.testing.assert_allclose(y, [0.02] * 4)
    assert sorted(np.round(x, 6)) == [0, 1, 2, 3]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "seed 0",
        "seed 1",
        "seed_mean (95% bootstrap CI)",
    ]
    F.seed_spread_figure(sig, "nse", aggregate="seed_mean", alpha=0.1)
    legend = drawn_figures[1].axes[0].get_legend().get_texts()
    assert legend[-1].get_text() == "seed_mean (90% bootstrap CI)"  # the level drawn, not a fixed 95 %
    with pytest.raises(InputError, match="significance: no rows for metric 'kge'"):
        F.seed_spread_figure(sig, "kge")


def test_synergy_curves_figure_content(drawn_figures: list[Figure]) -> None:
    rows = []
    for region in ("8.3.5", "8.1.1"):
        for pool in ("close", "far"):
            for k, v in ((0, 0.5), (3, 0.55), (7, 0.6)):
                rows.append((region, pool, "grid", k, "nse", v, 0.01, 10))
            rows.append((region, pool, "all", 20, "nse", 0.65, np.nan, 10))
    curves = pd.DataFrame(
        rows, columns=["region", "pool", "point", "k", "metric", "value", "sd", "n_eval_sites"]
    )
    slopes = pd.DataFrame(
        [
            ("nse", None, "8.3.5", "close", 0.05, 0.5, 0.01, 0.03, 0.07),
            ("nse", None, "8.1.1", "far", 0.04, 0.5, np.nan, np.nan, np.nan),  # one draw: no interval
        ],
        columns=["metric", "versus", "region", "pool", "slope", "intercept", "se", "ci_low", "ci_high"],
    )
    F.synergy_curves_figure(curves, slopes, "nse", alpha=0.1)
    fig = drawn_figures[0]
    assert fig.get_suptitle() == "synergy curves: nse"
    first, second = fig.axes
    assert first.get_title() == "ROI 8.1.1 (10 sites)" and second.get_title() == "ROI 8.3.5 (10 sites)"
    assert [t.get_text() for t in first.get_xticklabels()] == ["0", "3", "7", "20"]
    np.testing.assert_allclose(first.get_xticks(), np.log2(1.0 + np.array([0, 3, 7, 20])))
    # the fitted line of 8.3.5/close: intercept + slope * log2(1 + k), named with its slope
    fitted = [ln for ln in second.lines if ln.get_linestyle() == "--"]
    assert len(fitted) == 1
    np.testing.assert_allclose(fitted[0].get_ydata(), 0.5 + 0.05 * np.log2(1.0 + np.array([0, 3, 7])))
    assert [t.get_text() for t in second.get_legend().get_texts()] == ["close: +0.05 [+0.03, +0.07]", "far"]
    assert second.get_legend().get_title().get_text() == "slope per doubling [90% t-interval]"
    assert [t.get_text() for t in first.get_legend().get_texts()] == ["close", "far: +0.04"]
    with pytest.raises(InputError, match="synergy curves: no 'kge' rows to plot"):
        F.synergy_curves_figure(curves, slopes, "kge")


def test_scheme_comparison_figure_content(drawn_figures: list[Figure]) -> None:
    pairs = pd.DataFrame(
        {
            "scheme": ["huc2"] * 4 + ["ecoregions"] * 4,
            "nse_global": [0.5, 0.6, 0.7, 0.8, 0.4, 0.5, 0.6, 0.7],
            "nse_local": [0.4, 0.5, 0.6, 0.7, 0.45, 0.55, 0.65, 0.75],
        }
    )
    table = pd.DataFrame(
        {"scheme": ["huc2", "ecoregions"], "metric": "nse", "share_global_better": [1.0, 0.0],
         "p_value": [0.01, 0.2], "n_regions": [3, 5]}
    )  # fmt: skip
    F.scheme_comparison_figure(pairs, table, ["nse"])
    (ax,) = drawn_figures[0].axes
    # the paper's scheme first, each labelled with its regions, the global share and p
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "ecoregions (5)\nglobal wins 0%\np=0.2",
        "huc2 (3)\nglobal wins 100%\np=0.01",
    ]
    medians = _medians_drawn(ax, 0.34 / 0.9)
    assert medians == pytest.approx({-0.19: 0.55, 0.19: 0.6, 0.81: 0.65, 1.19: 0.55})
    assert ax.get_ylabel() == "nse" and [t.get_text() for t in ax.get_legend().get_texts()] == [
        "global",
        "local",
    ]
