"""The Water Data feed through Dagster: the fetch job (the default service), the landing sensor's
affected partitions from what a fetch changes, the ingest asset and the staleness asset check,
new gauges (registered by the fetch job, kept by the ingest, reported by raw_basins until their site
pack lands), against the local API of test_waterdata (no internet)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import xarray as xr

from synergy_dagster_tests.defs.test_operations import OLD, _resources, _tick, _world
from synergy_dagster_tests.sources.test_waterdata import SECRET, Api, serve_api

GAUGES = ["01022500", "01031500", "01047000", "01052500"]  # the USGS numbers of test_operations' world


@pytest.fixture()
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, str]]:
    yield from serve_api(monkeypatch)


def _landing(world: dict[str, Path], url: str, **kw: object) -> object:
    from synergy_dagster.defs.operations.resources import LandingConfig

    return LandingConfig(
        path=str(world["landing"]), settle_seconds=5, waterdata_url=url, revision_days=10,
        history_start="2001-10-01", **kw,
    )  # fmt: skip


def _fetch(world: dict[str, Path], url: str, end: str, **kw: object) -> dg.ExecuteInProcessResult:
    from synergy_dagster.defs.operations.nwis import nwis_fetch_job

    res = _resources(world)
    return nwis_fetch_job.execute_in_process(
        resources={"landing": _landing(world, url, **kw), "study": res["study"]},
        run_config={"ops": {"fetch_nwis": {"config": {"end": end}}}},
        raise_on_error=False,
    )


def _settle(landing: Path) -> list[str]:
    names = sorted(p.name for p in landing.glob("usgs_daily_*.json"))
    for n in names:
        os.utime(landing / n, (OLD, OLD))
    return names


def test_scheduled_refresh_fetch_sensor_ingest_and_check(api: tuple[Api, str], tmp_path: Path) -> None:
    from synergy_dagster.defs.operations.feed_check import usgs_gauges_advancing
    from synergy_dagster.defs.operations.landing import landed_streamflow
    from synergy_dagster.defs.operations.sensors import EVALUATE_TAG, PARTITIONS_TAG

    srv, url = api
    world = _world(tmp_path)
    for g in GAUGES:  # late September (test period, values unlike the source's) and new October days
        srv.put(g, "2009-09-25", [50.0] * 11)
    res = _fetch(world, url, "2009-10-05")
    assert res.success, res.all_events
    (first,) = _settle(world["landing"])
    assert SECRET not in (world["landing"] / first).read_text()
    tick = _tick(world, None)
    (req,) = tick.run_requests
    # Revised test-period days at evaluated sites: re-evaluate, retrain nothing (not training days).
    assert req.tags[PARTITIONS_TAG] == "" and req.tags[EVALUATE_TAG] == "1"
    resources = {**_resources(world), "landing": _landing(world, url)}
    done = dg.materialize(
        [landed_streamflow, usgs_gauges_advancing], resources=resources, run_config=req.run_config
    )
    assert done.success
    shown = done.asset_materializations_for_node("landed_streamflow")[0].metadata
    # Window from 09-20 (newest held 09-30 minus 10 days); the service starts on 09-25: 09-20..24 withdrawn.
    assert shown["revisions"].value == {"revised": 4 * 6, "new": 4 * 5, "withdrawn": 4 * 5}  # type: ignore[union-attr]
    rows = shown["revised_days"].value  # type: ignore[union-attr]
    # finite source days per USGS flag: 11 provisional days of 4 gauges (withdrawn days have no value)
    flags = shown["usgs_flags"].value  # type: ignore[union-attr]
    assert flags == {"landed": 4 * 11, "not_approved": 4 * 11, "estimated": 0, "qualified": 0}
    assert {r["new_status"] for r in rows if r["change"] == "new"} == {"Provisional"}  # type: ignore[index]
    assert {r["reason"] for r in rows if r["change"] == "withdrawn"} == {"not in the answer any more"}  # type: ignore[index]
    (check,) = done.get_asset_check_evaluations()
    assert not check.passed and "4 of 4 tracked gauges" in str(check.description)  # 2009 is long ago

    # The service unchanged: the next fetch lands a file that changes nothing -> nothing to redo.
    assert _fetch(world, url, "2009-10-05").success
    second = [n for n in _settle(world["landing"]) if n != first]
    tick2 = _tick(world, tick.cursor)
    (req2,) = tick2.run_requests
    assert req2.tags[PARTITIONS_TAG] == "" and req2.tags[EVALUATE_TAG] == "0" and second

    # The check passes when the allowed age covers the newest day held.
    fresh = {
        **resources,
        "landing": _landing(world, url, stale_days=(date.today() - date(2009, 10, 5)).days + 2),
    }
    ok = dg.materialize(
        [landed_streamflow, usgs_gauges_advancing], resources=fresh, run_config=req2.run_config
    )
    assert ok.get_asset_check_evaluations()[0].passed


def test_a_service_answering_html_fails_the_fetch_run_naming_url_and_answer(
    api: tuple[Api, str], tmp_path: Path
) -> None:
    srv, url = api
    world = _world(tmp_path)
    srv.script = ["html"]
    res = _fetch(world, url, "2009-10-05")
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)  # type: ignore[union-attr]
    assert "/collections/daily/items" in message and "<!DOCTYPE html>" in message and SECRET not in message
    assert not list(world["landing"].iterdir())  # nothing half-landed
    bad = _fetch(world, url, "2009-10-05", usgs_service="waterservices")
    assert not bad.success and "usgs_service" in str(
        next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error  # type: ignore[union-attr]
    )


def test_a_new_gauge_is_registered_and_fetched_by_the_fetch_job_and_kept_by_the_ingest(
    api: tuple[Api, str], tmp_path: Path
) -> None:
    from synergy_dagster.defs.operations.landing import landed_streamflow
    from synergy_dagster.defs.operations.nwis import nwis_fetch_job
    from synergy_dagster.defs.resources import StudyResource
    from synergy_dagster.layout import Layout
    from synergy_dagster.sources.usgs_registry import read_registry

    srv, url = api
    world = _world(tmp_path)
    study = StudyResource(
        study_file="virtual", data_dir=str(world["data"]),
        overrides=["domains.streamflow.usgs.new_gauges=['01099999', '09999999']"],
    )  # fmt: skip
    srv.locations["01099999"] = ("NEW RIVER", -110.0, 40.0, 300.0)
    srv.put("01099999", "2009-09-25", [80.0] * 11)

    def fetch() -> dg.ExecuteInProcessResult:
        return nwis_fetch_job.execute_in_process(
            resources={"landing": _landing(world, url), "study": study},
            run_config={"ops": {"fetch_nwis": {"config": {"end": "2009-10-05"}}}},
            raise_on_error=False,
        )

    bad = fetch()  # 09999999 is unknown to the API: the run fails naming it, nothing registered
    assert not bad.success and not list(world["landing"].iterdir())
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert "09999999" in str(failure.event_specific_data.error)  # type: ignore[union-attr]
    assert read_registry(Layout(world["data"])).empty

    srv.locations["09999999"] = ("ANOTHER RIVER", -110.5, 40.5, 120.0)
    res = fetch()
    assert res.success, res.all_events
    assert read_registry(Layout(world["data"]))["gauge"].tolist() == ["01099999", "09999999"]
    (landed,) = _settle(world["landing"])
    resources = {**_resources(world), "study": study, "landing": _landing(world, url)}
    done = dg.materialize(
        [landed_streamflow], resources=resources,
        run_config={"ops": {"landed_streamflow": {"config": {"files": [{"name": landed}]}}}},
    )  # fmt: skip
    assert done.success
    ledger = pd.read_parquet(Layout(world["data"]).landed_updates("streamflow"))
    assert (ledger["site_id"] == "usgs_01099999").sum() == 11  # kept, not ignored as unknown


def test_raw_basins_warns_naming_new_gauges_without_a_site_pack(tmp_path: Path) -> None:
    from synergy_dagster.defs.assets.sources import NEW_GAUGES_CHECK, raw_basins, source_files
    from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource
    from synergy_dagster.layout import Layout
    from synergy_dagster.sources.site_packs import pack_path
    from synergy_dagster_tests.runconfig import TINY_STUDY

    data = tmp_path / "data"
    study = StudyResource(
        study_file=str(TINY_STUDY), data_dir=str(data),
        overrides=["run.domains=[streamflow]", "domains.streamflow.usgs.new_gauges=['01099999']"],
    )  # fmt: skip
    resources = {"study": study, "store": MetadataStoreResource(path=str(data / "synergy.duckdb"))}
    done = dg.materialize([source_files, raw_basins], resources=resources)
    assert done.success
    check = next(c for c in done.get_asset_check_evaluations() if c.check_name == NEW_GAUGES_CHECK)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "01099999 (not registered yet" in str(check.description)
    # Registered (the registry the fetch writes), still no pack: the check names the file it needs.
    from synergy_dagster.sources.usgs_registry import registry_path

    reg = registry_path(Layout(data))
    reg.parent.mkdir(parents=True)
    pd.DataFrame(
        {"gauge": ["01099999"], "site_id": ["usgs_01099999"], "name": ["NEW RIVER"], "lat": [40.0],
         "lon": [-110.0], "drainage_area_km2": [777.0], "fetched_at": [pd.Timestamp("2026-12-07")]}
    ).to_parquet(reg, index=False)  # fmt: skip
    again = dg.materialize([raw_basins], resources=resources)
    check = next(c for c in again.get_asset_check_evaluations() if c.check_name == NEW_GAUGES_CHECK)
    assert not check.passed and str(pack_path(Layout(data), "01099999")) in str(check.description)
    shown = again.asset_materializations_for_node("raw_basins")[0].metadata
    assert "no site pack" in shown["new_gauges_pending"].value  # type: ignore[union-attr]

    # The pack lands (the forcing of a virtual basin, streamflow in the ledger): the gauge is a site
    # of raw_basins, through the quality checks, and the check passes.
    layout = Layout(data)
    src = xr.load_dataset(layout.source_nc("streamflow")).isel(site=0)
    days = pd.DatetimeIndex(src["time"].values)
    dynamic = ["total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum"]
    pack = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), **{n: src[n].values for n in dynamic}})
    pack_path(layout, "01099999").parent.mkdir(parents=True)
    pack.to_csv(pack_path(layout, "01099999"), index=False)
    pd.DataFrame(
        {"site_id": "usgs_01099999", "date": days, "streamflow_mm": 0.8 * src["streamflow"].values,
         "withdrawn": False}
    ).to_parquet(layout.landed_updates("streamflow"), index=False)  # fmt: skip
    packed = dg.materialize([raw_basins], resources=resources)
    check = next(c for c in packed.get_asset_check_evaluations() if c.check_name == NEW_GAUGES_CHECK)
    assert check.passed
    assert "usgs_01099999" in xr.load_dataset(layout.source_nc("streamflow"))["site"].values
