"""Ecoregion tagging, sub-region mapping and target coverage: hand-built boxes and the real files."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from shapely.geometry import box

from synergy_dagster.errors import InputError
from synergy_dagster.regions.coverage import coverage, coverage_filter
from synergy_dagster.regions.subregions import LETTERS, SUBREGIONS, subregion_of, subregions_of
from synergy_dagster.regions.tagging import tag_basin_polygons, tag_points, tag_sites
from synergy_dagster.sources.sitedata import make_site_dataset

# (l3, l2, l1, lon_min, lat_min, lon_max, lat_max); 8.3.5 and 8.3.4 share the border lon = -85;
# 8.1.7 has two polygons, as several real polygons share one code.
BOXES = [
    ("8.3.5", "8.3", "8", -90, 30, -85, 35),
    ("8.3.4", "8.3", "8", -85, 30, -80, 35),
    ("9.2.3", "9.2", "9", -100, 40, -90, 45),
    ("8.1.7", "8.1", "8", -80, 40, -75, 42),
    ("8.1.7", "8.1", "8", -80, 43, -75, 45),
]


def make_l3(order: list[int] | None = None) -> gpd.GeoDataFrame:
    rows = [BOXES[i] for i in (order if order is not None else range(len(BOXES)))]
    return gpd.GeoDataFrame(
        {
            "l3": [r[0] for r in rows],
            "l2": [r[1] for r in rows],
            "l1": [r[2] for r in rows],
            "l3_name": [f"name {r[0]}" for r in rows],
        },
        geometry=[box(*r[3:]) for r in rows],
        crs="EPSG:4326",
    )


SITES = pd.DataFrame(
    {
        "site_id": ["p1", "p2", "p3", "p4", "out", "border", "nolat"],
        "lat": [32.0, 32.0, 42.0, 44.0, 0.0, 32.0, np.nan],
        "lon": [-87.0, -82.0, -95.0, -77.0, 0.0, -85.0, -87.0],
    }
)


def test_points_tag_correctly_and_outside_is_dropped_and_counted() -> None:
    res = tag_points(SITES, make_l3(), method="centroid")
    got = res.tagged.set_index("site_id")
    assert got.loc["p1", "l3"] == "8.3.5" and got.loc["p1", "l2"] == "8.3" and got.loc["p1", "l1"] == "8"
    assert got.loc["p2", "l3"] == "8.3.4"
    assert got.loc["p3", "l3"] == "9.2.3" and got.loc["p3", "subregion"] == "I"
    assert got.loc["p4", "l3"] == "8.1.7" and got.loc["p4", "subregion"] == "D"  # second polygon of 8.1.7
    assert got.loc["p1", "subregion"] == "F"
    assert (res.tagged["method"] == "centroid").all()
    assert set(res.dropped["site_id"]) == {"out", "nolat"}
    reasons = res.dropped.set_index("site_id")["reason"]
    assert "outside" in reasons["out"] and "missing" in reasons["nolat"]
    assert (res.n_input, res.n_tagged, res.n_dropped) == (7, 5, 2)
    c = res.counts()
    assert c["n_l3"] == 4 and c["n_l2"] == 3 and c["n_l1"] == 2 and c["method_centroid"] == 5
    assert res.level_counts("l3")["8.3.4"] == 2  # p2 and the border point
    # order of the input is kept
    assert res.tagged["site_id"].tolist() == ["p1", "p2", "p3", "p4", "border"]


def test_border_point_is_deterministic() -> None:
    results = set()
    for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 0, 3, 2, 4]):
        for sites in (SITES, SITES.iloc[::-1]):
            tagged = tag_points(sites, make_l3(order)).tagged.set_index("site_id")
            results.add(tagged.loc["border", "l3"])
    assert results == {"8.3.4"}  # the lower code of the two neighbours


def test_tag_points_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="missing columns"):
        tag_points(SITES, make_l3().drop(columns="l2"))
    with pytest.raises(InputError, match="duplicate site ids"):
        tag_points(pd.concat([SITES, SITES.iloc[:1]]), make_l3())


def test_majority_area_goes_to_bigger_share_and_records_it() -> None:
    polys = gpd.GeoDataFrame(
        {"gauge_id": ["straddle", "half_out", "outside"]},
        geometry=[box(-86.5, 31, -84.5, 33), box(-81, 31, -79, 33), box(10, 10, 11, 11)],
        crs="EPSG:4326",
    )
    got = tag_basin_polygons(polys, make_l3()).set_index("gauge_id")
    assert got.loc["straddle", "l3"] == "8.3.5"  # 1.5 degrees of 2 lie in 8.3.5
    assert got.loc["straddle", "method"] == "majority_area"
    assert got.loc["straddle", "area_share"] == pytest.approx(0.75, abs=0.01)
    assert got.loc["half_out", "l3"] == "8.3.4"
    assert got.loc["half_out", "area_share"] == pytest.approx(0.5, abs=0.01)
    assert got.loc["straddle", "subregion"] == "F"
    assert "outside" not in got.index


def test_tag_sites_mixes_polygons_and_gauge_points() -> None:
    time = pd.date_range("2000-01-01", periods=3)
    ids = ["straddle", "p2", "p3", "lost"]
    lat = np.array([32.0, 32.0, 42.0, 20.0])
    lon = np.array([-84.8, -82.0, -95.0, -60.0])
    ds = make_site_dataset(
        domain="streamflow",
        source="test",
        site_ids=ids,
        time=time,
        lat=lat,
        lon=lon,
        target=("q", np.zeros((4, 3)), "mm/d"),
        dynamic={"p": (np.zeros((4, 3)), "mm/d")},
    )
    polys = gpd.GeoDataFrame(
        {"gauge_id": ["straddle"]}, geometry=[box(-86.5, 31, -84.5, 33)], crs="EPSG:4326"
    )
    res = tag_sites(ds, make_l3(), "streamflow", polygons=polys)
    got = res.tagged.set_index("site_id")
    # the gauge lies in 8.3.4 but most of the basin is in 8.3.5: the polygon wins
    assert got.loc["straddle", "l3"] == "8.3.5" and got.loc["straddle", "method"] == "majority_area"
    assert got.loc["p2", "method"] == "gauge_point" and np.isnan(got.loc["p2", "area_share"])
    assert got.loc["p3", "l3"] == "9.2.3"
    assert res.dropped["site_id"].tolist() == ["lost"]
    no_poly = tag_sites(ds, make_l3(), "streamflow").tagged.set_index("site_id")
    assert no_poly.loc["straddle", "l3"] == "8.3.4" and no_poly.loc["straddle", "method"] == "gauge_point"
    pix = tag_sites(SITES, make_l3(), "soil_moisture")
    assert (pix.tagged["method"] == "centroid").all()
    with pytest.raises(InputError, match="differs"):
        tag_sites(ds, make_l3(), "soil_moisture")


@pytest.mark.parametrize(
    ("l1", "l2", "letter"),
    [
        ("5", "5.2", "A"),
        ("5", "5.3", "A"),
        ("6", "6.2", "B"),
        ("7", "7.1", "C"),
        ("8", "8.1", "D"),
        ("8", "8.2", "E"),
        ("8", "8.3", "F"),
        ("8", "8.4", "G"),
        ("8", "8.5", "H"),
        ("9", "9.2", "I"),
        ("9", "9.3", "J"),
        ("9", "9.4", "K"),
        ("9", "9.5", "L"),
        ("9", "9.6", "L"),
        ("10", "10.1", "M"),
        ("10", "10.2", "N"),
        ("11", "11.1", "O"),
        ("12", "12.1", "P"),
        ("13", "13.1", "Q"),
        ("14", "14.4", "R"),
        ("15", "15.4", "R"),
        (8, None, None),  # Level I 8 is split by Level II: no Level II, no sub-region
        ("9", "9.1", None),  # 9.1 (Canada) is in no sub-region
        ("2", "2.1", None),
    ],
)
def test_subregion_mapping(l1: object, l2: object, letter: str | None) -> None:
    assert subregion_of(l1, l2) == letter
    assert subregions_of(pd.Series([l1]), pd.Series([l2]))[0] == letter


def test_subregion_table_and_vectorised_forms() -> None:
    assert tuple("ABCDEFGHIJKLMNOPQR") == LETTERS
    assert dict((s.letter, s.codes) for s in SUBREGIONS)["L"] == ("9.5", "9.6")
    assert dict((s.letter, s.codes) for s in SUBREGIONS)["R"] == ("14", "15")
    out = subregions_of(np.array([8.0, 13.0, 5.0]), np.array(["8.3", "13.1", None], dtype=object))
    assert out.tolist() == ["F", "Q", "A"]


# --- real data ----------------------------------------------------------------------------------


def real_l3(real_data: Path) -> gpd.GeoDataFrame:
    raw = gpd.read_file(real_data / "ecoregions" / "us_eco_l3.gpkg")
    return raw.rename(
        columns={"NA_L3CODE": "l3", "NA_L2CODE": "l2", "NA_L1CODE": "l1", "NA_L3NAME": "l3_name"}
    )


def test_real_caravan_gauges_match_readme(real_data: Path) -> None:
    attrs = pd.read_csv(real_data / "caravan" / "attributes" / "camels" / "attributes_other_camels.csv")
    sites = attrs.rename(columns={"gauge_id": "site_id", "gauge_lat": "lat", "gauge_lon": "lon"})
    res = tag_points(sites, real_l3(real_data), method="gauge_point")
    assert (res.n_input, res.n_tagged, res.n_dropped) == (482, 482, 0)
    c = res.counts()
    assert (c["n_l1"], c["n_l2"]) == (9, 19)
    # The README says 75 Level III regions; the 482 Caravan gauges fall in 70. 75 is the count for
    # all 671 CAMELS gauges (checked below); the per-region counts are the Caravan ones.
    assert c["n_l3"] == 70
    top = res.level_counts("l3")
    assert top[top >= 20].to_dict() == {"8.4.1": 31, "8.3.4": 31, "8.3.5": 25, "7.1.8": 20}


def test_real_camels_671_gauges_span_75_level3(real_data: Path) -> None:
    topo = pd.read_csv(real_data / "camels_us" / "camels_attributes_v2.0" / "camels_topo.txt", sep=";")
    sites = topo.rename(columns={"gauge_id": "site_id", "gauge_lat": "lat", "gauge_lon": "lon"})
    res = tag_points(sites, real_l3(real_data), method="gauge_point")
    assert res.n_tagged == 671 and res.counts()["n_l3"] == 75


def test_real_smap_pixels_match_readme(real_data: Path) -> None:
    with xr.open_dataset(real_data / "smap" / "smap_conus_v4f1.nc") as nc:
        sites = pd.DataFrame(
            {
                "site_id": np.arange(nc.sizes["pixel"]).astype(str),
                "lat": nc["lat"].values,
                "lon": nc["lon"].values,
            }
        )
    res = tag_points(sites, real_l3(real_data), method="centroid")
    assert (res.n_input, res.n_tagged, res.n_dropped) == (412, 339, 73)
    top = res.level_counts("l3")
    assert top[top >= 13].to_dict() == {"9.3.3": 17, "8.3.5": 17, "10.1.5": 15, "9.4.1": 14, "9.4.2": 13}


# --- coverage -----------------------------------------------------------------------------------


def coverage_ds(domain: str) -> xr.Dataset:
    n = 10
    target = np.full((4, n), np.nan)
    target[0] = 1.0  # every day
    target[1, ::3] = 1.0  # days 0, 3, 6, 9: a 3-day revisit
    target[3, :5] = 1.0  # first half only; site 2 never observed
    return make_site_dataset(
        domain=domain,
        source="test",
        site_ids=["all", "every3", "none", "half"],
        time=pd.date_range("2000-01-01", periods=n),
        lat=np.zeros(4),
        lon=np.zeros(4),
        target=("y", target, "-"),
        dynamic={},
    )


def test_coverage_daily_and_with_revisit() -> None:
    ds = coverage_ds("streamflow")
    period = slice("2000-01-01", "2000-01-10")
    daily = coverage(ds, period)  # streamflow default: revisit_days = 1
    assert daily.to_dict() == pytest.approx({"all": 1.0, "every3": 0.4, "none": 0.0, "half": 0.5})
    r3 = coverage(ds, period, revisit_days=3)
    # every day lies within one day of an overpass; the half-covered site gains one day (the 6th)
    assert r3.to_dict() == pytest.approx({"all": 1.0, "every3": 1.0, "none": 0.0, "half": 0.6})
    sm = coverage(coverage_ds("soil_moisture"), period)  # soil-moisture default: revisit_days = 3
    assert sm["every3"] == pytest.approx(1.0)
    # days of the period beyond the data count as gaps
    longer = coverage(ds, slice("2000-01-01", "2000-01-20"))
    assert longer["all"] == pytest.approx(0.5)
    with pytest.raises(InputError, match="revisit_days"):
        coverage(ds, period, revisit_days=0)


def test_coverage_filter_needs_both_periods() -> None:
    ds = coverage_ds("streamflow")
    kept, table = coverage_filter(
        ds, slice("2000-01-01", "2000-01-05"), slice("2000-01-06", "2000-01-10"), min_share=0.9
    )
    assert kept == ["all"]  # "half" is complete in training but empty in the test period
    assert table.columns.tolist() == ["site_id", "cov_train", "cov_test", "kept"]
    row = table.set_index("site_id").loc["half"]
    assert row["cov_train"] == pytest.approx(1.0) and row["cov_test"] == pytest.approx(0.0)
    kept3, _ = coverage_filter(
        ds, slice("2000-01-01", "2000-01-05"), slice("2000-01-06", "2000-01-10"), revisit_days=3
    )
    assert kept3 == ["all", "every3"]
