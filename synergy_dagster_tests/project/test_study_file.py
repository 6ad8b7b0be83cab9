"""The study file (validated YAML) and the input selection / period checks it drives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synergy_dagster.config import DomainPeriods, Period
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.sources.selection import (
    check_periods,
    drop_sites_without_target,
    one_hot,
    select_inputs,
)
from synergy_dagster.sources.sitedata import make_site_dataset, static_names
from synergy_dagster.study_file import load_study, parse_study, preset_profile

MINIMAL = {
    "name": "mine",
    "ecoregions": "eco/us_eco_l3.gpkg",
    "domains": {
        "streamflow": {
            "reader": "caravan",
            "path": "caravan",
            "subset": "camels",
            "target": "streamflow",
            "dynamic": ["total_precipitation_sum", "temperature_2m_mean"],
            "static": ["area", "aridity"],
            "periods": {
                "train": {"start": "1990-10-01", "end": "1999-09-30"},
                "test": {"start": "1999-10-01", "end": "2003-09-30"},
            },
        }
    },
}


def _write(tmp_path: Path, study: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _changed(**domain_changes: object) -> dict:
    study = yaml.safe_load(yaml.safe_dump(MINIMAL))
    study["domains"]["streamflow"].update(domain_changes)
    return study


def test_minimal_study_loads_and_resolves_paths(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, MINIMAL))
    sf = study.domain("streamflow")
    assert Path(sf.path) == (tmp_path / "caravan").resolve()
    assert Path(study.ecoregions) == (tmp_path / "eco/us_eco_l3.gpkg").resolve()
    p = study.periods("streamflow")
    assert (p.train.start, p.test.end) == ("1990-10-01", "2003-09-30")
    assert study.thresholds.min_sites_roi == 10


def test_environment_variables_in_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_DATA", str(tmp_path / "elsewhere"))
    study = parse_study(_changed(path="${MY_DATA}/caravan"), tmp_path / "s.yaml")
    assert study.domain("streamflow").path == str(tmp_path / "elsewhere" / "caravan")
    monkeypatch.delenv("MY_DATA")
    with pytest.raises(ConfigError, match=r"domains.streamflow.path.*MY_DATA.*not set"):
        parse_study(_changed(path="${MY_DATA}/caravan"), tmp_path / "s.yaml")


@pytest.mark.parametrize(
    ("study", "key"),
    [
        ({**MINIMAL, "profil": "cpu"}, r"profil: unknown key"),
        (_changed(dynamics=["x"]), r"domains.streamflow.dynamics: unknown key"),
        (_changed(dynamic="total_precipitation_sum"), r"domains.streamflow.dynamic"),
        (
            _changed(periods={"train": {"start": "1990-10-01", "end": "1999-09-30"}}),
            r"periods.test: required",
        ),
        (
            _changed(
                periods={
                    "train": {"start": "1990-10-01", "end": "1999-09-30"},
                    "test": {"start": "1995-10-01", "end": "2003-09-30"},
                }
            ),
            r"must start after the training period",
        ),
        (
            _changed(periods={"train": {"start": "1990-13-01", "end": "1999-09-30"}, "test": {}}),
            r"train.start",
        ),
        (_changed(reader="pixel_cube", subset=None), r"reads soil_moisture data, not streamflow"),
        (_changed(categorical=["geology"]), r"categorical attributes \['geology'\] must also be listed"),
        (_changed(dynamic=["streamflow"]), r"target 'streamflow' is also listed"),
        ({**MINIMAL, "domains": {}}, r"at least one domain"),
        ({**MINIMAL, "profile": "gpu"}, r"unknown profile 'gpu'"),
        ({**MINIMAL, "seeds": [1, 1]}, r"seeds must be distinct"),
        ({k: v for k, v in MINIMAL.items() if k != "domains"}, r"domains: required key is missing"),
        ({**MINIMAL, "budget": {"mode": "forever"}}, r"budget.mode"),
        (
            _changed(recipe={"precison": "bf16"}),
            r"domains.streamflow.recipe.precison: unknown key",
        ),
    ],
)
def test_bad_study_files_name_the_key(tmp_path: Path, study: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_study(_write(tmp_path, study))


def test_a_domain_recipe_overrides_the_profiles(tmp_path: Path) -> None:
    """``domains.<d>.recipe`` changes that domain's recipe of the preset and nothing else; a bad
    value is an error naming the study file's key."""
    study = load_study(
        _write(tmp_path, {**_changed(recipe={"precision": "bf16", "lr": 0.001}), "profile": "cpu"})
    )
    profile = study.training_profile()
    base = preset_profile("cpu")
    got, want = profile.for_domain("streamflow").recipe, base.for_domain("streamflow").recipe
    assert got == want.replace(precision="bf16", lr=0.001)
    assert got != want
    bad = _write(tmp_path, {**_changed(recipe={"precision": "fp8"}), "profile": "cpu"})
    with pytest.raises(
        ConfigError, match=r"domains\.streamflow\.recipe\.precision: Input should be 'fp32' or 'bf16'"
    ):
        load_study(bad)
    rho = base.for_domain("streamflow").rho
    long = _write(tmp_path, {**_changed(recipe={"loss_days": rho + 1}), "profile": "cpu"})
    with pytest.raises(
        ConfigError,
        match=rf"domains\.streamflow\.recipe\.loss_days: {rho + 1} days is longer than the window",
    ):
        load_study(long)


def test_not_a_mapping_and_not_yaml(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_study(p)
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(p)
    with pytest.raises(ConfigError, match="study file not found"):
        load_study(tmp_path / "absent.yaml")


# ------------------------------------------------------------------------------ selection


def _basins(n_sites: int = 4, start: str = "2000-01-01", days: int = 400) -> object:
    time = pd.date_range(start, periods=days, freq="D")
    rng = np.random.default_rng(0)
    q = rng.gamma(2.0, 1.0, (n_sites, days))
    return make_site_dataset(
        domain="streamflow",
        source="test",
        site_ids=[f"g{i}" for i in range(n_sites)],
        time=time,
        lat=np.linspace(35, 40, n_sites),
        lon=np.linspace(-100, -90, n_sites),
        target=("streamflow", q, "mm/d"),
        dynamic={
            "prcp": (rng.gamma(1, 2, (n_sites, days)), "mm/d"),
            "tmax": (rng.normal(10, 5, (n_sites, days)), "degC"),
        },
        static={
            "area": (np.arange(1, n_sites + 1) * 100.0, "km2"),
            "geol_class": (np.array([3, 7, 3, np.nan][:n_sites]), ""),
            "aridity": (np.linspace(0.5, 2, n_sites), ""),
        },
    )


def test_select_inputs_keeps_only_listed_and_one_hot_encodes() -> None:
    ds = _basins()
    out = select_inputs(
        ds, target="streamflow", dynamic=["prcp"], static=["area", "geol_class"], categorical=["geol_class"]
    )
    assert "tmax" not in out and "aridity" not in out and "geol_class" not in out
    assert static_names(out) == ["area", "geol_class=3", "geol_class=7"]
    np.testing.assert_array_equal(out["geol_class=3"].values[:3], [1, 0, 1])
    assert np.isnan(out["geol_class=7"].values[3])  # no class: missing, not a class of its own
    every = select_inputs(ds, target="streamflow", dynamic=["prcp", "tmax"], static="all_numeric")
    # aridity is computed over a whole record (test years included): all_numeric leaves it out
    assert set(static_names(every)) == {"area", "geol_class"}
    assert every.attrs["inputs_left_out_leaky"] == "aridity"


def test_leaky_statics_are_refused_unless_the_study_allows_them_by_name() -> None:
    ds = _basins()
    ds["q_mean"] = ds["area"] * 0.0 + 1.5  # a streamflow signature, computed from the target
    ds["q_mean"].attrs["role"] = "static"
    args = {"target": "streamflow", "dynamic": ["prcp"], "key": "domains.streamflow."}
    with pytest.raises(ConfigError, match=r"domains\.streamflow\.static.*\['aridity'\].*allow_leaky"):
        select_inputs(ds, static=["area", "aridity"], **args)
    with pytest.raises(ConfigError, match=r"\['q_mean'\].*leak test information"):
        select_inputs(ds, static=["q_mean"], **args)
    kept = select_inputs(ds, static=["area", "aridity"], allow_leaky=["aridity"], **args)
    assert static_names(kept) == ["area", "aridity"]
    every = select_inputs(ds, static="all_numeric", allow_leaky=["q_mean"], **args)
    assert set(static_names(every)) == {"area", "geol_class", "q_mean"}
    with pytest.raises(ConfigError, match=r"domains\.streamflow\.allow_leaky.*\['qmean'\] are not leaky"):
        select_inputs(ds, static=["area"], allow_leaky=["qmean"], **args)


def test_allow_leaky_is_a_domain_key_of_the_study_file() -> None:
    raw = {
        **MINIMAL,
        "domains": {"streamflow": {**MINIMAL["domains"]["streamflow"], "allow_leaky": ["aridity"]}},
    }
    assert parse_study(raw, "s.yaml").domain("streamflow").allow_leaky == ["aridity"]
    assert parse_study(MINIMAL, "s.yaml").domain("streamflow").allow_leaky == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dynamic": ["prcp", "srad"]}, r"dynamic.*\['srad'\] not in the data"),
        ({"static": ["elev"]}, r"static.*\['elev'\] not in the data"),
        ({"target": "discharge"}, r"provides the target 'streamflow'.*'discharge'"),
        ({"categorical": ["aridity"]}, r"categorical.*\['aridity'\]"),
    ],
)
def test_select_inputs_errors_name_the_variable(kwargs: dict, match: str) -> None:
    args = {"target": "streamflow", "dynamic": ["prcp"], "static": ["area"], **kwargs}
    with pytest.raises(ConfigError, match=match):
        select_inputs(_basins(), **args)


def test_one_hot_refuses_continuous_columns() -> None:
    ds = _basins(n_sites=4)
    ds["area"].values[:] = np.arange(4)
    assert one_hot(ds, "area", "t")["area=0"].values.tolist() == [1, 0, 0, 0]
    many = make_site_dataset(
        domain="streamflow",
        source="t",
        site_ids=[f"s{i}" for i in range(80)],
        time=pd.date_range("2000-01-01", periods=3),
        lat=np.full(80, 40.0),
        lon=np.full(80, -100.0),
        target=("streamflow", np.ones((80, 3)), "mm/d"),
        dynamic={},
        static={"elev": (np.arange(80.0), "m")},
    )
    with pytest.raises(ConfigError, match="80 classes"):
        one_hot(many, "elev", "t")


def test_periods_checked_against_the_record() -> None:
    ds = _basins(start="2000-01-01", days=400)  # record 2000-01-01 .. 2001-02-03
    ok = DomainPeriods(Period("2000-01-01", "2000-09-30"), Period("2000-10-01", "2001-02-03"))
    check_periods(ds, ok, "basins")
    late = DomainPeriods(Period("2000-01-01", "2000-09-30"), Period("2000-10-01", "2003-12-31"))
    with pytest.raises(
        ConfigError,
        match=r"periods.test.*2000-10-01..2003-12-31 is outside the record.*2000-01-01..2001-02-03",
    ):
        check_periods(ds, late, "basins")
    ds["streamflow"].loc[{"time": slice("2000-10-01", None)}] = np.nan
    empty = DomainPeriods(Period("2000-01-01", "2000-06-30"), Period("2000-07-01", "2000-12-31"))
    check_periods(ds, empty, "basins")  # test still has July-September
    with pytest.raises(ConfigError, match=r"periods.test.*outside the record"):
        check_periods(
            ds, DomainPeriods(Period("2000-01-01", "2000-06-30"), Period("2000-12-01", "2001-01-31")), "b"
        )


def test_sites_without_any_target_are_dropped_with_a_reason() -> None:
    ds = _basins()
    ds["streamflow"].values[1, :] = np.nan
    kept, dropped = drop_sites_without_target(ds)
    assert kept["site"].values.tolist() == ["g0", "g2", "g3"]
    assert dropped["site"].tolist() == ["g1"] and "missing on every day" in dropped["reason"].iloc[0]
    ds["streamflow"].values[:] = np.nan
    with pytest.raises(InputError, match="every site's target is missing"):
        drop_sites_without_target(ds)
