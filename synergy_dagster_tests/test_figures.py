"""Figures render to PNG (and to disk atomically); the Markdown summary carries the right numbers."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
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


def test_boxplot_by_region(tmp_path: Path) -> None:
    df = _site_metrics()
    out = tmp_path / "fig" / "box.png"
    png = F.boxplot_by_region(
        df, "rmse", ["global", "local", "local+far"], region_order=["B", "A", "Z"], title="RMSE", path=out
    )
    assert png.startswith(PNG) and len(png) > 1000
    assert out.read_bytes() == png
    assert not list(out.parent.glob(".*.tmp"))  # no temp file left behind
    with pytest.raises(InputError, match="missing column"):
        F.boxplot_by_region(df, "nse", ["global"])


def test_error_matrix_absolute_and_relative() -> None:
    df = _site_metrics()
    png = F.error_matrix(df, value="rmse", title="median RMSE")
    assert png.startswith(PNG)
    med = median_table(df, "rmse")
    png2 = F.error_matrix(med, value="median", reference="local", higher_is_better=False)
    assert png2.startswith(PNG) and png2 != png
    with pytest.raises(InputError, match="reference"):
        F.error_matrix(med, value="median", reference="nowhere")


def test_region_map() -> None:
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
    # Projected polygons are brought back to degrees; sites without the colour column are black.
    png2 = F.region_map(regions.to_crs(5070), sites.drop(columns=["subregion", "domain"]))
    assert png2.startswith(PNG)


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


def test_learning_curves() -> None:
    curves = _curves()
    assert F.learning_curve(curves[curves["set_key"] == "local:A"], "one model").startswith(PNG)
    assert F.learning_curves_by_scenario(curves, "domain").startswith(PNG)
    assert F.learning_curves_by_scenario(curves, "domain", metric="val_rmse").startswith(PNG)
    with pytest.raises(InputError, match="val_kge"):
        F.learning_curves_by_scenario(curves, "domain", metric="val_kge")
    with pytest.raises(InputError, match="no curve"):
        F.learning_curves_by_scenario(curves.iloc[:0], "domain")
    with pytest.raises(InputError, match="seconds"):
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
