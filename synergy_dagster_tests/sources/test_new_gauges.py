"""New USGS gauges outside the reader's archive, against the local Water Data API of test_waterdata:
registered once (monitoring-location record, area in km2), their history fetched and kept in the
ledger, left out of the source (and reported) until their site pack lands, then a site tagged by
its point like any other; bad packs and unknown numbers named."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.layout import Layout
from synergy_dagster.regions.tagging import tag_sites
from synergy_dagster.sources.camels_us import cfs_to_mm_per_day
from synergy_dagster.sources.ecoregions import read_ecoregions
from synergy_dagster.sources.landing import ingest_landed, tracked_usgs_sites
from synergy_dagster.sources.site_packs import pack_dir, pack_path
from synergy_dagster.sources.study_domain import read_study_domain
from synergy_dagster.sources.usgs_feed import newest_day_per_gauge, run_feed
from synergy_dagster.sources.usgs_registry import read_registry, register_new_gauges, registry_path
from synergy_dagster.study_file import load_study
from synergy_dagster_tests.sources.test_study_inputs import DATES, STREAMFLOW, _camels, _eco_file
from synergy_dagster_tests.sources.test_waterdata import Api, _settings, serve_api

NEW = "01099999"  # not in the CAMELS world: a new gauge
SITE = f"usgs_{NEW}"
MI2 = 300.0  # its drainage area in square miles, as the API gives it
KM2 = MI2 * 2.589988110336
WEST = (-110.0, 40.0)  # lon, lat: inside the world's western ecoregion 9.2.3 (lon -125..-100)


@pytest.fixture()
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, str]]:
    yield from serve_api(monkeypatch)


@pytest.fixture()
def world(tmp_path: Path) -> dict[str, Path]:
    return {"camels": _camels(tmp_path / "camels"), "eco": _eco_file(tmp_path / "eco.gpkg"), "tmp": tmp_path}


def _study(world: dict[str, Path], new_gauges: list[str]) -> Path:
    spec = {**STREAMFLOW, "path": str(world["camels"]), "usgs": {"new_gauges": new_gauges}}
    raw = {"name": "t", "ecoregions": str(world["eco"]), "data_dir": str(world["tmp"] / "data"),
           "domains": {"streamflow": spec}}  # fmt: skip
    path = world["tmp"] / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _read(world: dict[str, Path], layout: Layout) -> tuple[xr.Dataset, pd.DataFrame]:
    spec = load_study(_study(world, [NEW])).domains["streamflow"]
    data = read_study_domain("streamflow", spec, layout=layout)
    return data.ds, data.pending


def _pack(layout: Layout, rows: pd.DataFrame, number: str = NEW) -> Path:
    path = pack_path(layout, number)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(path, index=False)
    return path


def _forcing(days: pd.DatetimeIndex = DATES) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {"date": days.strftime("%Y-%m-%d"), "prcp": rng.gamma(1.0, 2.0, len(days)).round(2),
         "tmax": rng.normal(12, 5, len(days)).round(2)}
    )  # fmt: skip


def test_a_new_number_is_registered_once_with_its_area_in_km2(api: tuple[Api, str], tmp_path: Path) -> None:
    srv, url = api
    layout = Layout(tmp_path / "data")
    srv.locations[NEW] = ("NEW RIVER NEAR SOMEWHERE, UT", *WEST, MI2)
    reg, added = register_new_gauges(layout, [NEW], _settings(url), archive_sites=["camels_01022500"])
    assert added == [NEW] and registry_path(layout).exists()
    row = read_registry(layout).iloc[0]
    assert (row["gauge"], row["site_id"], row["name"]) == (NEW, SITE, "NEW RIVER NEAR SOMEWHERE, UT")
    assert (row["lon"], row["lat"]) == WEST and row["drainage_area_km2"] == pytest.approx(776.997, abs=1e-3)
    asked = len(srv.seen)
    _, again = register_new_gauges(layout, [NEW], _settings(url))  # once: no request the second time
    assert again == [] and len(srv.seen) == asked
    # A number the API does not know fails naming it, and nothing is written.
    with pytest.raises(InputError, match=r"no monitoring location for USGS gauges \['09999999'\]"):
        register_new_gauges(layout, [NEW, "09999999"], _settings(url))
    assert read_registry(layout)["gauge"].tolist() == [NEW]
    # A number the archive holds already is not new.
    with pytest.raises(InputError, match=r"new_gauges.*01022500 as camels_01022500"):
        register_new_gauges(layout, ["01022500"], _settings(url), archive_sites=["camels_01022500"])
    srv.locations["01088888"] = ("NO AREA CREEK", *WEST, None)  # type: ignore[assignment]
    with pytest.raises(InputError, match=r"no positive drainage area for USGS gauges \['01088888'\]"):
        register_new_gauges(layout, ["01088888"], _settings(url))


def test_a_new_gauge_is_fetched_kept_in_the_ledger_and_joins_the_source_with_its_pack(
    api: tuple[Api, str], world: dict[str, Path]
) -> None:
    srv, url = api
    layout = Layout(world["tmp"] / "data")
    # Before registration the gauge is pending, with what it needs.
    ds, pending = _read(world, layout)
    assert SITE not in ds["site"].values
    assert pending.loc[0, "gauge"] == NEW and pending.loc[0, "reason"] == "not registered yet"
    (layout.root / "sources").mkdir(parents=True)
    ds.to_netcdf(layout.source_nc("streamflow"))  # the source as raw_basins writes it

    # The fetch: registered once, tracked, its history from history_start (nothing held).
    srv.locations[NEW] = ("NEW RIVER", *WEST, MI2)
    flow = np.linspace(100.0, 200.0, 399)  # 2000-06-01..2001-07-04
    srv.put(NEW, "2000-06-01", list(flow), status="Approved")
    register_new_gauges(layout, [NEW], _settings(url), archive_sites=[str(s) for s in ds["site"].values])
    gauges = tracked_usgs_sites(layout, (), [NEW])
    assert NEW in gauges and "01022500" in gauges
    landing = world["tmp"] / "landing"
    run = run_feed(layout, [NEW], date(2001, 7, 4), _settings(url), landing, revision_days=30,
                   history_start=date(2000, 1, 1))  # fmt: skip
    assert run.windows.set_index("gauge").loc[NEW, "start"] == pd.Timestamp("2000-01-01")
    assert run.path is not None
    result = ingest_landed(layout, landing, [(run.path.name, "")])
    assert result.ingested and not result.quarantined and NEW not in result.unknown
    ledger = pd.read_parquet(layout.landed_updates("streamflow"))
    mine = ledger[ledger["site_id"] == SITE].set_index("date")["streamflow_mm"]
    assert len(mine) == 399  # kept, converted with the registry's area (km2)
    assert mine.iloc[0] == pytest.approx(float(cfs_to_mm_per_day(np.array([100.0]), KM2)[0]), rel=1e-6)
    assert set(result.changes["change"]) == {"new"}  # type: ignore[index]
    # Its state comes from the ledger: the next window starts at its newest day minus the revision window.
    assert newest_day_per_gauge(layout)[NEW] == pd.Timestamp("2001-07-04")
    again = run_feed(layout, [NEW], date(2001, 7, 4), _settings(url), landing, revision_days=30,
                     history_start=date(2000, 1, 1))  # fmt: skip
    assert again.windows.set_index("gauge").loc[NEW, "start"] == pd.Timestamp("2001-06-04")
    assert again.path is not None
    second = ingest_landed(layout, landing, [(again.path.name, "")])
    assert second.changes is None or not len(second.changes)  # compared with the ledger: nothing new

    # Registered without a pack: still pending, naming the file it needs.
    ds, pending = _read(world, layout)
    assert SITE not in ds["site"].values
    assert pending.loc[0, "reason"] == "no site pack (forcing)"
    assert pending.loc[0, "needs"] == str(pack_path(layout, NEW))

    # The pack lands (with an attribute table): a site with the ledger's streamflow, the pack's
    # forcing, the registry's point and area, and tagged by its point in the western region.
    forcing = _forcing()
    _pack(layout, forcing)
    attrs = pd.DataFrame(
        {"gauge": [NEW], "geol_permeability": ["-13.5"], "geol_1st_class": ["Acid plutonic rocks"]}
    )
    attrs.to_csv(pack_dir(layout) / "attributes.csv", index=False)
    ds, pending = _read(world, layout)
    assert pending.empty and SITE in ds["site"].values
    site = ds.sel(site=SITE)
    assert (float(site["lon"]), float(site["lat"])) == WEST
    assert float(site["area"]) == pytest.approx(KM2, rel=1e-6)
    assert float(site["geol_permeability"]) == pytest.approx(-13.5)
    assert float(site["geol_1st_class=acid_plutonic_rocks"]) == 1.0
    np.testing.assert_allclose(site["prcp"].values, forcing["prcp"].to_numpy(), rtol=1e-6)
    q = site["streamflow"].to_series()
    assert q.loc["2000-06-01"] == pytest.approx(mine.iloc[0], rel=1e-6)
    assert np.isnan(q.loc["2000-05-31"]) and int(np.isfinite(q).sum()) == 399
    tagged = tag_sites(ds, read_ecoregions(world["eco"]), "streamflow").tagged.set_index("site_id")
    assert tagged.loc[SITE, "l3"] == "9.2.3" and tagged.loc[SITE, "method"] == "gauge_point"
    assert set(tagged.loc[[f"{g}" for g in tagged.index if g != SITE], "l3"]) == {"8.1.1"}


def _registered(world: dict[str, Path], layout: Layout) -> None:
    """The registry of NEW written as the fetch writes it (no server needed for pack tests)."""
    path = registry_path(layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"gauge": [NEW], "site_id": [SITE], "name": ["NEW RIVER"], "lat": [WEST[1]], "lon": [WEST[0]],
         "drainage_area_km2": [KM2], "fetched_at": [pd.Timestamp("2026-12-07")]}
    ).to_parquet(path, index=False)  # fmt: skip


def _bad(rows: pd.DataFrame, change: str) -> pd.DataFrame:
    rows = rows.copy()
    if change == "no_column":
        return rows.drop(columns="tmax")
    if change == "bad_date":
        rows.loc[5, "date"] = "2000/01/06"
    elif change == "dup_date":
        rows.loc[6, "date"] = rows.loc[5, "date"]
    elif change == "not_number":
        rows["tmax"] = rows["tmax"].astype(object)
        rows.loc[7, "tmax"] = "warm"
    elif change == "implausible":
        rows.loc[8, "tmax"] = 95.0  # deg C
    elif change == "outside":
        rows["date"] = pd.date_range("1950-01-01", periods=len(rows), freq="D").strftime("%Y-%m-%d")
    return rows


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_column", r"missing column\(s\) \['tmax'\]"),
        ("bad_date", r"date '2000/01/06' on line 7 is not YYYY-MM-DD"),
        ("dup_date", r"date 2000-01-06 twice \(lines \[7, 8\]\)"),
        ("not_number", r"value 'warm' on line 9 is not a number"),
        ("implausible", r"tmax"),
        ("outside", r"no date on the study's time axis"),
    ],
)
def test_a_bad_site_pack_is_named(world: dict[str, Path], change: str, message: str) -> None:
    layout = Layout(world["tmp"] / "data")
    _registered(world, layout)
    path = _pack(layout, _bad(_forcing(), change))
    with pytest.raises(InputError, match=message) as err:
        _read(world, layout)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (
            {"gauge": [NEW], "geol_permeabilty": ["-13"]},
            r"columns \['geol_permeabilty'\] are not static attributes",
        ),
        ({"gauge": [NEW], "geol_1st_class": ["Basalt"]}, r"'Basalt' is not a class of the archive"),
        ({"gauge": [NEW, NEW], "geol_permeability": ["-13", "-12"]}, r"gauge '01099999' twice"),
        ({"geol_permeability": ["-13"]}, r"missing column 'gauge'"),
    ],
)
def test_a_bad_attribute_table_is_named(world: dict[str, Path], attrs: dict, message: str) -> None:
    layout = Layout(world["tmp"] / "data")
    _registered(world, layout)
    _pack(layout, _forcing())
    pd.DataFrame(attrs).to_csv(pack_dir(layout) / "attributes.csv", index=False)
    with pytest.raises(InputError, match=message):
        _read(world, layout)


def test_a_new_gauge_outside_the_extent_or_in_the_archive_is_refused(world: dict[str, Path]) -> None:
    layout = Layout(world["tmp"] / "data")
    _registered(world, layout)
    _pack(layout, _forcing())
    spec = load_study(_study(world, [NEW])).domains["streamflow"]
    with pytest.raises(InputError, match=r"site 'usgs_01099999' at lat 40, lon -110 lies outside"):
        read_study_domain("streamflow", spec, extent=(-80.0, 30.0, -60.0, 50.0), layout=layout)
    held = load_study(_study(world, ["01022500"])).domains["streamflow"]
    with pytest.raises(InputError, match=r"01022500 as 01022500"):
        read_study_domain("streamflow", held, layout=layout)


def test_new_gauge_numbers_must_be_quoted_usgs_numbers(world: dict[str, Path]) -> None:
    path = _study(world, ["01055500"])  # digits 0-7: a YAML 1.1 octal integer when unquoted
    text = path.read_text().replace("- '01055500'", "- 01055500")
    assert text != path.read_text()
    path.write_text(text)
    line = text.splitlines().index("      - 01055500") + 1
    with pytest.raises(
        ConfigError, match=rf"new_gauges.*is a number, not a gauge id.*'01055500' on line {line}"
    ):
        load_study(path)
    with pytest.raises(ConfigError, match=r"new_gauges: not USGS site numbers"):
        load_study(_study(world, ["123"]))
