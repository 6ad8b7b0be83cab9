"""The data-quality policy (issue 25): implausible values refused, masked or dropping their site;
the checks beyond per-value ranges silent on the clean real data and firing on a made fault in a
copy of a few real basins; the report, the file beside the sources, the store rows and the asset
checks; gauge ids YAML read as numbers."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.sources.plausibility import check_variable, masking_implausible
from synergy_dagster.sources.quality import apply_policy, read_domain_with_quality
from synergy_dagster.sources.quality_checks import longest_flat_runs, no_findings, run_checks
from synergy_dagster.sources.quality_report import events_csv, quality_markdown
from synergy_dagster.sources.quality_spec import QualitySpec, QualityThresholds, effective_quality
from synergy_dagster.study_file import load_study, parse_study

N_BASINS = 6
DYNAMIC = ["total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
PERIODS = {
    "train": {"start": "1981-10-01", "end": "2009-12-31"},
    "test": {"start": "2010-01-01", "end": "2014-12-31"},
}


# ----------------------------------------------------------------------------- helpers


def copy_caravan(real_data: Path, dest: Path, n: int = N_BASINS) -> tuple[Path, list[str]]:
    """The first ``n`` Caravan basins of the real data (time series and attribute tables) under ``dest``."""
    src = real_data / "caravan"
    ids = sorted(p.stem for p in (src / "timeseries" / "csv" / "camels").glob("*.csv"))[:n]
    ts = dest / "timeseries" / "csv" / "camels"
    ts.mkdir(parents=True)
    for g in ids:
        shutil.copy(src / "timeseries" / "csv" / "camels" / f"{g}.csv", ts)
    shutil.copytree(src / "attributes", dest / "attributes")
    return dest, ids


def edit_series(root: Path, gauge: str, change: Callable[[pd.DataFrame], None]) -> None:
    path = root / "timeseries" / "csv" / "camels" / f"{gauge}.csv"
    df = pd.read_csv(path)
    change(df)
    df.to_csv(path, index=False)


def edit_attribute(root: Path, gauge: str, column: str, value: float) -> None:
    path = root / "attributes" / "camels" / "attributes_other_camels.csv"
    df = pd.read_csv(path, dtype={"gauge_id": str})
    df.loc[df["gauge_id"] == gauge, column] = value
    df.to_csv(path, index=False)


def study_raw(root: Path, real_data: Path, quality: dict | None = None, dynamic: list[str] = DYNAMIC) -> dict:
    raw: dict = {
        "name": "quality-test",
        "ecoregions": str(real_data / "ecoregions" / "us_eco_l3.gpkg"),
        "domains": {
            "streamflow": {
                "reader": "caravan",
                "path": str(root),
                "subset": "camels",
                "target": "streamflow",
                "dynamic": dynamic,
                "static": ["area", "frac_snow"],
                "allow_leaky": ["frac_snow"],  # whole-record index (docs/statistics.md)
                "periods": PERIODS,
            }
        },
    }
    if quality is not None:
        raw["quality"] = quality
    return raw


def read_checked(root: Path, real_data: Path, quality: dict | None = None, dynamic: list[str] = DYNAMIC):  # noqa: ANN201
    study = parse_study(study_raw(root, real_data, quality, dynamic), root.parent / "study.yaml")
    spec = study.domain("streamflow")
    return read_domain_with_quality("streamflow", spec, effective_quality(study.quality, spec.quality))


def rules_found(outcome: object) -> set[str]:
    return set(outcome.events["rule"])  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- the policy's schema


def test_defaults_refuse_implausible_drop_unusable_warn_suspicious() -> None:
    q = QualitySpec()
    assert (q.implausible, q.unusable, q.suspicious) == ("refuse", "drop", "warn")


def test_domain_quality_overrides_only_its_keys() -> None:
    study = QualitySpec(implausible="mask", thresholds={"flatline_days": 20, "max_runoff_ratio": 3.0})
    domain = QualitySpec(suspicious="drop", thresholds={"flatline_days": 9})
    eff = effective_quality(study, domain)
    assert (eff.implausible, eff.suspicious) == ("mask", "drop")
    assert (eff.thresholds.flatline_days, eff.thresholds.max_runoff_ratio) == (9, 3.0)
    assert effective_quality(study, None) is study


def test_bounds_must_be_ordered_and_keys_known() -> None:
    with pytest.raises(ConfigError, match=r"quality.thresholds.elevation_m.*lo < hi"):
        QualityThresholds(elevation_m=[100.0, -5.0])
    with pytest.raises(ConfigError, match=r"quality.thresholds.aridity"):
        QualityThresholds(attribute_bounds={"aridity": [3.0, 1.0]})
    with pytest.raises(ConfigError, match="implausible"):
        QualitySpec(implausible="ignore")


def test_study_file_takes_quality_per_study_and_domain(tmp_path: Path) -> None:
    raw = study_raw(tmp_path, tmp_path, {"implausible": "mask"})
    raw["domains"]["streamflow"]["quality"] = {"suspicious": "drop"}
    study = parse_study(raw, tmp_path / "s.yaml")
    eff = effective_quality(study.quality, study.domain("streamflow").quality)
    assert (eff.implausible, eff.suspicious, eff.unusable) == ("mask", "drop", "drop")
    raw["quality"] = {"implausibel": "mask"}
    with pytest.raises(ConfigError, match="implausibel"):
        parse_study(raw, tmp_path / "s.yaml")


# ----------------------------------------------------------------------------- gauge ids as numbers


def test_unquoted_gauge_ids_named_with_their_line(tmp_path: Path) -> None:
    raw = study_raw(tmp_path, tmp_path)
    text = yaml.safe_dump(raw, sort_keys=False).replace(
        "    subset: camels\n", "    subset: camels\n    gauges: [01022500, '01031500',\n      01047000]\n"
    )
    path = tmp_path / "study.yaml"
    path.write_text(text)
    line = text.splitlines().index("    gauges: [01022500, '01031500',") + 1
    with pytest.raises(ConfigError) as err:
        load_study(path)
    msg = str(err.value)
    assert "271680 is a number, not a gauge id" in msg  # 01022500 read as octal by PyYAML
    assert "quote every id" in msg
    assert f"'01022500' on line {line}" in msg and f"'01047000' on line {line + 1}" in msg
    assert err.value.where == f"line {line}"
    path.write_text(text.replace("[01022500, ", "['01022500', ").replace("  01047000]", "  '01047000']"))
    assert load_study(path).domain("streamflow").gauges == ["01022500", "01031500", "01047000"]


# ----------------------------------------------------------------------------- values in range


def test_check_variable_masks_and_records_inside_the_scope() -> None:
    time = pd.date_range("2000-01-01", periods=4)
    arr = np.array([[1.0, 2.0, 2500.0, 3.0], [0.0, -4.0, 1.0, 1.0]], dtype=np.float32)
    with pytest.raises(InputError, match=r"= 2500 .*set quality.implausible: mask \(or drop_site\)"):
        check_variable(arr, "total_precipitation_sum", "mm/d", ["a", "b"], time, ["fa.csv", "fb.csv"])
    with masking_implausible() as screen:
        out = check_variable(arr, "total_precipitation_sum", "mm/d", ["a", "b"], time, ["fa.csv", "fb.csv"])
    assert np.isnan(out[0, 2]) and np.isnan(out[1, 1]) and np.isfinite(out).sum() == 6
    rows = screen.frame()
    assert rows[["file", "site", "value"]].values.tolist() == [["fa.csv", "a", 2500.0], ["fb.csv", "b", -4.0]]
    assert [f"{d:%Y-%m-%d}" for d in rows["date"]] == ["2000-01-03", "2000-01-02"]
    with pytest.raises(InputError):  # the scope ended: refused again
        check_variable(arr, "total_precipitation_sum", "mm/d", ["a", "b"], time, "f.csv")


def test_isolated_impossible_values_masked_and_each_listed(real_data: Path, tmp_path: Path) -> None:
    """The issue's probe: one impossible temperature (172.6 degC) and one negative flow in a real
    archive. Default: refused as before; under quality.implausible: mask the study runs, the values
    are missing and the report lists each one with rule, file, site, date and original value."""
    root, ids = copy_caravan(real_data, tmp_path / "caravan")

    def fault(df: pd.DataFrame) -> None:
        df.loc[100, "temperature_2m_mean"] = 172.6
        df.loc[200, "streamflow"] = -3.0

    edit_series(root, ids[1], fault)
    with pytest.raises(InputError, match=r"negative streamflow -3"):  # refused, as before
        read_checked(root, real_data)
    data, outcome = read_checked(root, real_data, {"implausible": "mask"})
    ev = outcome.events
    assert ev[["rule", "action", "site"]].drop_duplicates().values.tolist() == [["range", "masked", ids[1]]]
    assert sorted(ev["value"].round(1)) == [-3.0, 172.6]
    assert set(ev["file"]) == {str(root / "timeseries" / "csv" / "camels" / f"{ids[1]}.csv")}
    days = pd.DatetimeIndex(data.ds["time"].values)
    t100 = days.get_loc(pd.Timestamp("1981-01-01") + pd.Timedelta(days=100))
    assert np.isnan(data.ds["temperature_2m_mean"].sel(site=ids[1]).values[t100])
    assert np.isnan(data.ds["streamflow"].sel(site=ids[1]).values[t100 + 100])
    assert data.ds.sizes["site"] == N_BASINS
    report = quality_markdown(
        "streamflow", ev, data.dropped, QualitySpec(implausible="mask"), "q.csv", markdown_table
    )
    for day, value in (("1981-04-11", "172.6"), ("1981-07-20", "-3")):
        assert any(day in line and value in line and ids[1] in line for line in report.splitlines())
    csv = pd.read_csv(pd.io.common.StringIO(events_csv(ev)))
    assert len(csv) == 2 and set(csv["date"]) == {"1981-04-11", "1981-07-20"}
    data, outcome = read_checked(root, real_data, {"implausible": "drop_site"})
    assert ids[1] not in data.ds["site"].values and ids[1] in set(data.dropped["site"])


def test_soil_moisture_above_one_masked_in_a_real_pixel_cube(real_data: Path, tmp_path: Path) -> None:
    from synergy_dagster.sources.pixels import read_pixel_cube

    with xr.open_dataset(real_data / "smap" / "smap_conus_v4f1.nc") as src:
        cube = src.load()
    sm = cube["SMAP_AM"]
    pixel, day = np.argwhere(np.isfinite(sm.transpose("pixel", "time").values))[100]
    sm[{"pixel": int(pixel), "time": int(day)}] = 1.7
    path = tmp_path / "cube.nc"
    cube.to_netcdf(path)
    with pytest.raises(InputError, match=r"SMAP_AM = 1.7 .* outside \[0, 1\]"):
        read_pixel_cube(path, target="SMAP_AM")
    with masking_implausible() as screen:
        ds = read_pixel_cube(path, target="SMAP_AM")
    rows = screen.frame()
    assert rows[["variable", "value"]].values.tolist() == [["SMAP_AM", pytest.approx(1.7)]]
    assert np.isnan(ds["SMAP_AM"].values[int(pixel), int(day)])
    assert int(np.isfinite(ds["SMAP_AM"].values).sum()) == int(np.isfinite(sm.values).sum()) - 1


# ----------------------------------------------------------------------------- clean real data


@pytest.fixture(scope="module")
def clean_data(real_data: Path) -> dict[str, tuple[xr.Dataset, list[tuple[str, str, str]]]]:
    """Real data as the readers give them: 30 Caravan basins across the archive, the 19 CAMELS-US NLDAS basins (daily
    tmin and tmax) and the 412 SMAP pixels."""
    from synergy_dagster.sources.camels_us import read_camels_us
    from synergy_dagster.sources.caravan import read_caravan
    from synergy_dagster.sources.pixels import read_pixel_cube

    ids = sorted(p.stem for p in (real_data / "caravan" / "timeseries" / "csv" / "camels").glob("*.csv"))
    caravan = read_caravan(real_data / "caravan", "camels", gauges=ids[:: len(ids) // 30][:30])
    camels = read_camels_us(real_data / "camels_us", "nldas")
    smap = read_pixel_cube(real_data / "smap" / "smap_conus_v4f1.nc", target="SMAP_AM")
    return {
        "caravan": (caravan, [("train", "1981-10-01", "2009-12-31"), ("test", "2010-01-01", "2014-12-31")]),
        "camels_us": (camels, [("train", "1993-10-01", "2008-12-31"), ("test", "2009-01-01", "2013-12-31")]),
        "smap": (smap, [("train", "2015-04-01", "2016-03-31"), ("test", "2016-04-01", "2017-03-31")]),
    }


RULES_BEYOND_RANGES = [
    "tmin_above_tmax",
    "attribute_impossible",
    "inputs_missing",
    "water_balance",
    "unit_slip",
    "flatline",
    "duplicate_series",
]


@pytest.mark.parametrize("archive", ["caravan", "camels_us", "smap"])
def test_no_check_fires_on_the_clean_real_data(clean_data: dict, archive: str) -> None:
    ds, periods = clean_data[archive]
    found = run_checks(ds, QualityThresholds(), periods, archive)
    assert sorted(found) == sorted(RULES_BEYOND_RANGES)
    assert {rule: len(f) for rule, f in found.items()} == dict.fromkeys(RULES_BEYOND_RANGES, 0)


def test_the_clean_checks_saw_what_they_check(clean_data: dict) -> None:
    """The silence above is not for want of inputs: the data hold what each check reads."""
    camels, _ = clean_data["camels_us"]
    assert {"tmin", "tmax"} <= set(camels.data_vars)
    caravan, _ = clean_data["caravan"]
    assert {"area", "frac_snow", "ele_mt_sav", "potential_evaporation_sum"} <= set(caravan.data_vars)


@pytest.mark.slow
def test_whole_caravan_archive_raises_nothing(real_data: Path, tmp_path: Path) -> None:
    """All 482 basins, as the shipped real study selects them, under the default policy."""
    root = real_data / "caravan"
    raw = study_raw(root, real_data)
    raw["domains"]["streamflow"]["static"] = "all_numeric"
    study = parse_study(raw, tmp_path / "s.yaml")
    spec = study.domain("streamflow")
    data, outcome = read_domain_with_quality("streamflow", spec, study.quality)
    assert len(outcome.events) == 0 and len(outcome.dropped) == 0
    assert data.ds.sizes["site"] == 482


# ----------------------------------------------------------------------------- made faults


def _with_min_max(df: pd.DataFrame) -> None:
    df["temperature_2m_min"] = df["temperature_2m_mean"] - 4.0
    df["temperature_2m_max"] = df["temperature_2m_mean"] + 4.0


def test_tmin_above_tmax_fires_on_a_swapped_day(real_data: Path, tmp_path: Path) -> None:
    root, ids = copy_caravan(real_data, tmp_path / "caravan")
    for g in ids:
        edit_series(root, g, _with_min_max)
    dyn = [*DYNAMIC, "temperature_2m_min", "temperature_2m_max"]
    _, outcome = read_checked(root, real_data, dynamic=dyn)
    assert "tmin_above_tmax" not in rules_found(outcome)

    def swap(df: pd.DataFrame) -> None:
        df.loc[500, ["temperature_2m_min", "temperature_2m_max"]] = [12.0, 3.0]

    edit_series(root, ids[2], swap)
    with pytest.raises(InputError, match=r"temperature_2m_min = 12 .* above temperature_2m_max 3"):
        read_checked(root, real_data, dynamic=dyn)
    data, outcome = read_checked(root, real_data, {"implausible": "mask"}, dynamic=dyn)
    ev = outcome.events[outcome.events["rule"] == "tmin_above_tmax"]
    assert sorted(ev["variable"]) == ["temperature_2m_max", "temperature_2m_min"] and set(ev["site"]) == {
        ids[2]
    }
    day = pd.Timestamp("1981-01-01") + pd.Timedelta(days=500)
    assert np.isnan(data.ds["temperature_2m_min"].sel(site=ids[2], time=day).item())


def test_impossible_area_fires(real_data: Path, tmp_path: Path) -> None:
    root, ids = copy_caravan(real_data, tmp_path / "caravan")
    edit_attribute(root, ids[3], "area", -25.0)
    with pytest.raises(InputError, match=r"area = -25 for site .*basin area"):
        read_checked(root, real_data)
    data, outcome = read_checked(root, real_data, {"implausible": "mask"})
    assert outcome.events[["rule", "site"]].values.tolist() == [["attribute_impossible", ids[3]]]
    assert np.isnan(data.ds["area"].sel(site=ids[3]).item())


def test_fraction_above_any_scale_fires(real_data: Path, tmp_path: Path) -> None:
    root, ids = copy_caravan(real_data, tmp_path / "caravan")
    path = root / "attributes" / "camels" / "attributes_caravan_camels.csv"
    df = pd.read_csv(path, dtype={"gauge_id": str})
    df.loc[df["gauge_id"] == ids[0], "frac_snow"] = 150.0
    df.to_csv(path, index=False)
    _, outcome = read_checked(root, real_data, {"implausible": "drop_site"})
    assert outcome.events[["rule", "variable"]].values.tolist() == [["attribute_impossible", "frac_snow"]]
    assert outcome.dropped["site"].tolist() == [ids[0]]


def test_input_missing_in_the_test_period_drops_the_site(real_data: Path, tmp_path: Path) -> None:
    root, ids = copy_caravan(real_data, tmp_path / "caravan")

    def blank(df: pd.DataFrame) -> None:
        df.loc[df["date"] >= "2010-01-01", "potential_evaporation_sum"] = np.nan

    edit_series(root, ids[4], blank)
    data, outcome = read_checked(root, real_data)
    assert outcome.events[["rule", "action", "site"]].values.tolist() == [
        ["inputs_missing", "site_dropped", ids[4]]
    ]
    assert "test period" in outcome.events["detail"].iloc[0]
    assert ids[4] not in data.ds["site"].values
    assert data.dropped.set_index("site").loc[ids[4], "reason"].startswith("quality: inputs_missing")
    with pytest.raises(InputError, match=r"quality.unusable: refuse"):
        read_checked(root, real_data, {"unusable": "refuse"})


def test_runoff_above_precipitation_warns(real_data: Path, tmp_path: Path) -> None:
    root, ids = copy_caravan(real_data, tmp_path / "caravan")

    def tenfold(df: pd.DataFrame) -> None:
        df["streamflow"] *= 10.0

    edit_series(root, ids[0], tenfold)
    data, outcome = read_checked(root, real_data)
    ev = outcome.events
    assert ev[["rule", "action", "site"]].values.tolist() == [["water_balance", "warned", ids[0]]]
    assert ev["value"].iloc[0] > 2.0 and data.ds.sizes["site"] == N_BASINS
    data, outcome = read_checked(root, real_data, {"suspicious": "drop"})
    assert outcome.dropped["site"].tolist() == [ids[0]]


def test_evaporation_above_its_energy_limit_warns(real_data: Path, tmp_path: Path) -> None:
    root, ids = copy_caravan(real_data, tmp_path / "caravan")

    def tenth(df: pd.DataFrame) -> None:
        # less runoff and a potential evaporation a factor 8 too low (under the unit-slip threshold):
        # precipitation minus runoff (2.5 mm/d) is then 1.7 x the potential evaporation (1.5 mm/d)
        df["streamflow"] *= 0.3
        df["potential_evaporation_sum"] /= 8.0

    edit_series(root, ids[5], tenth)
    _, outcome = read_checked(root, real_data)
    ev = outcome.events
    assert ev[["rule", "site"]].values.tolist() == [["water_balance", ids[5]]]
    assert "energy limit" in ev["detail"].iloc[0]


def test_precipitation_in_metres_is_a_unit_slip(real_data: Path, tmp_path: Path) -> None:
    root, ids = copy_caravan(real_data, tmp_path / "caravan")

    def metres(df: pd.DataFrame) -> None:
        df["total_precipitation_sum"] /= 1000.0

    edit_series(root, ids[2], metres)
    _, outcome = read_checked(root, real_data)
    slips = outcome.events[outcome.events["rule"] == "unit_slip"]
    assert slips[["site", "variable"]].values.tolist() == [[ids[2], "total_precipitation_sum"]]


def test_flatlined_temperature_fires(real_data: Path, tmp_path: Path) -> None:
    root, ids = copy_caravan(real_data, tmp_path / "caravan")

    def stuck(df: pd.DataFrame) -> None:
        df.loc[3000:3019, "temperature_2m_mean"] = 4.2

    edit_series(root, ids[1], stuck)
    _, outcome = read_checked(root, real_data)
    ev = outcome.events
    assert ev[["rule", "site", "variable"]].values.tolist() == [["flatline", ids[1], "temperature_2m_mean"]]
    assert "20 consecutive days" in ev["detail"].iloc[0]
    assert (
        f"{pd.Timestamp(ev['date'].iloc[0]):%Y-%m-%d}"
        == f"{pd.Timestamp('1981-01-01') + pd.Timedelta(days=3000):%Y-%m-%d}"
    )


def test_copied_streamflow_file_fires_for_both_sites(real_data: Path, tmp_path: Path) -> None:
    root, ids = copy_caravan(real_data, tmp_path / "caravan")
    donor = pd.read_csv(root / "timeseries" / "csv" / "camels" / f"{ids[0]}.csv")

    def copy(df: pd.DataFrame) -> None:
        df["streamflow"] = donor["streamflow"].to_numpy()

    edit_series(root, ids[3], copy)
    _, outcome = read_checked(root, real_data)
    dup = outcome.events[outcome.events["rule"] == "duplicate_series"]
    assert sorted(dup["site"]) == sorted([ids[0], ids[3]])
    assert ids[3] in dup.set_index("site").loc[ids[0], "detail"]


def test_longest_flat_run_counts_days_and_ignores_zero_and_nan() -> None:
    v = np.array([[1, 2, 2, 2, 3, 0, 0, 0, 0, 0], [5, 5, np.nan, 5, 5, 5, 1, 1, 1, 1]], dtype=np.float32)
    longest, first = longest_flat_runs(v)
    assert longest.tolist() == [3, 4] and first.tolist() == [1, 6]


# ----------------------------------------------------------------------------- policy on findings


def _tiny() -> xr.Dataset:
    from synergy_dagster.sources.sitedata import make_site_dataset

    t = pd.date_range("2000-01-01", periods=3)
    return make_site_dataset(
        domain="streamflow", source="src", site_ids=["a", "b"], time=t, lat=np.array([40.0, 41.0]),
        lon=np.array([-100.0, -101.0]), target=("streamflow", np.ones((2, 3)), "mm/d"),
        dynamic={"p": (np.ones((2, 3)), "mm/d")}, static={"area": (np.array([10.0, 20.0]), "km2")},
    )  # fmt: skip


def _finding(rule: str, site: str, variable: str) -> pd.DataFrame:
    return no_findings().pipe(
        lambda f: pd.DataFrame(
            [
                {
                    "rule": rule,
                    "file": "f",
                    "site": site,
                    "variable": variable,
                    "date": pd.NaT,
                    "value": 1.0,
                    "detail": "d",
                }
            ]
        )[list(f.columns)]
    )


def test_suspicious_warns_or_drops_and_dropping_all_is_an_error() -> None:
    ds = _tiny()
    warned = apply_policy(ds, {"flatline": _finding("flatline", "a", "p")}, QualitySpec())
    assert warned.ds.sizes["site"] == 2 and warned.events["action"].tolist() == ["warned"]
    dropped = apply_policy(ds, {"flatline": _finding("flatline", "a", "p")}, QualitySpec(suspicious="drop"))
    assert dropped.ds["site"].values.tolist() == ["b"]
    assert dropped.dropped.values.tolist() == [["a", "quality: flatline (p)"]]
    both = pd.concat([_finding("flatline", "a", "p"), _finding("flatline", "b", "p")])
    with pytest.raises(InputError, match="dropped every one of the 2 sites"):
        apply_policy(ds, {"flatline": both}, QualitySpec(suspicious="drop"))


def test_a_finding_on_an_unselected_variable_drops_no_site() -> None:
    out = apply_policy(
        _tiny(), {"range": _finding("range", "a", "not_used")}, QualitySpec(implausible="drop_site")
    )
    assert out.ds.sizes["site"] == 2 and len(out.events) == 1 and not len(out.dropped)


# ----------------------------------------------------------------------------- Dagster: checks, store, file


@pytest.mark.slow
def test_raw_basins_reports_masked_values_in_checks_store_and_file(real_data: Path, tmp_path: Path) -> None:
    import dagster as dg

    from synergy_dagster.defs.assets.sources import raw_basins
    from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource
    from synergy_dagster.store import MetadataStore

    root, ids = copy_caravan(real_data, tmp_path / "caravan")

    def fault(df: pd.DataFrame) -> None:
        df.loc[100, "temperature_2m_mean"] = 172.6

    edit_series(root, ids[1], fault)
    raw = study_raw(root, real_data, {"implausible": "mask"})
    raw["data_dir"] = str(tmp_path / "data")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    study = StudyResource(study_file=str(path))
    db = tmp_path / "data" / "synergy.duckdb"
    res = dg.materialize(
        [raw_basins], resources={"study": study, "store": MetadataStoreResource(study=study, path=str(db))}
    )
    assert res.success
    checks = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert not checks["values_in_range"].passed
    assert checks["values_in_range"].severity == dg.AssetCheckSeverity.WARN
    assert all(c.passed for name, c in checks.items() if name != "values_in_range")
    assert "water_balance" in checks and len(checks) == 9  # 8 quality checks + new_gauges_have_site_packs
    meta = res.asset_materializations_for_node("raw_basins")[0].metadata
    assert "172.6" in meta["quality_report"].value and meta["quality_findings"].value == 1
    rows = MetadataStore(db).query("SELECT * FROM quality_events")
    assert rows[["domain", "rule", "action", "site"]].values.tolist() == [
        ["streamflow", "range", "masked", ids[1]]
    ]
    assert rows["run_id"].tolist() == [res.run_id] and float(rows["value"].iloc[0]) == pytest.approx(
        172.6, abs=1e-4
    )
    csv = pd.read_csv(tmp_path / "data" / "sources" / "streamflow_quality.csv")
    assert csv[["site", "date"]].values.tolist() == [[ids[1], "1981-04-11"]]
    # a rerun replaces the domain's rows (idempotent), a clean archive leaves none
    edit_series(
        root,
        ids[1],
        lambda df: df.__setitem__("temperature_2m_mean", df["temperature_2m_mean"].clip(upper=40)),
    )
    res = dg.materialize(
        [raw_basins], resources={"study": study, "store": MetadataStoreResource(study=study, path=str(db))}
    )
    assert all(e.passed for e in res.get_asset_check_evaluations())
    assert MetadataStore(db).count("quality_events", {"domain": "streamflow"}) == 0


def test_check_severity_follows_the_policy_of_its_class() -> None:
    """ERROR (blocking downstream) where the class is refused, WARN where it is masked or warned."""
    import dagster as dg

    from synergy_dagster.defs.assets.sources import _check_names, _quality_check_results
    from synergy_dagster.sources.quality import QualityOutcome

    events = apply_policy(
        _tiny(), {"range": _finding("range", "a", "p")}, QualitySpec(implausible="mask")
    ).events
    outcome = QualityOutcome(_tiny(), events, pd.DataFrame(columns=["site", "reason"]))
    for quality, severity in (
        (QualitySpec(), dg.AssetCheckSeverity.ERROR),
        (QualitySpec(implausible="mask"), dg.AssetCheckSeverity.WARN),
    ):
        results = {r.check_name: r for r in _quality_check_results("streamflow", outcome, quality)}
        assert not results["values_in_range"].passed and results["values_in_range"].severity == severity
        assert all(r.passed for name, r in results.items() if name != "values_in_range")
    assert "water_balance" not in _check_names("soil_moisture") and len(_check_names("streamflow")) == 8
