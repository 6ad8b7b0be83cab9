"""The Water Data OGC API feed against a local server that speaks the API's documented format.

The server (a thread with ``http.server``) answers ``collections/daily/items`` with GeoJSON feature
collections: GET with one ``monitoring_location_id`` or POST with a CQL2 ``in`` filter, ``time``
intervals, ``limit`` and paging by ``next`` links with ``numberMatched``/``numberReturned``; a
script of faults makes it answer 429 (with Retry-After), 5xx, an HTML page, a redirect, an error
document, a truncated body or slowly. The whole refresh (fetch -> landed file -> validation and
changes against the held source -> ingest -> revision log -> affected partitions) runs against it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlencode, urlparse

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.experiments.affected import affected_partitions
from synergy_dagster.layout import Layout
from synergy_dagster.sources.camels_us import cfs_to_mm_per_day
from synergy_dagster.sources.landing import check_landed, ingest_landed, revisions_path
from synergy_dagster.sources.nwis import merge_streamflow
from synergy_dagster.sources.sitedata import make_site_dataset
from synergy_dagster.sources.usgs_feed import fetch_windows, newest_day_per_gauge, run_feed, stale_gauges
from synergy_dagster.sources.usgs_flags import ESTIMATED, FLAG_VAR, LANDED, NOT_APPROVED, QUALIFIED
from synergy_dagster.sources.waterdata import (
    ClientSettings,
    FetchBudgetExceeded,
    fetch_daily,
    fetch_monitoring_locations,
)
from synergy_dagster.sources.waterdata_file import read_daily_file, write_daily_file

SECRET = "test-key-5f1c9a0d"  # must never show up in a URL, a message or a landed file


# ---------------------------------------------------------------- the local Water Data API


class Api:
    """What the server holds (one row per gauge, series and day) and the faults it is told to play."""

    def __init__(self) -> None:
        self.rows = pd.DataFrame(
            columns=[
                "gauge",
                "time",
                "value",
                "approval_status",
                "qualifier",
                "time_series_id",
                "last_modified",
            ]
        )
        self.locations: dict[str, tuple[str, float, float, float]] = {}  # gauge: name, lon, lat, area mi2
        self.script: list[str] = []  # one fault per request, in order: "429:<s>", "500", "html", ...
        self.seen: list[dict[str, object]] = []

    def put(self, gauge: str, start: str, values: list[float | None], status: str = "Provisional", ts: str = "ts1",
            qualifier: list[str] | None = None) -> None:  # fmt: skip
        days = pd.date_range(start, periods=len(values), freq="D").strftime("%Y-%m-%d")
        new = pd.DataFrame(
            {
                "gauge": gauge,
                "time": days,
                "value": [None if v is None else f"{v:g}" for v in values],
                "approval_status": status,
                "qualifier": [qualifier] * len(values),
                "time_series_id": ts,
                "last_modified": "2024-01-01T00:00:00+00:00",
            }
        )
        keep = ~self.rows.set_index(["gauge", "time", "time_series_id"]).index.isin(
            new.set_index(["gauge", "time", "time_series_id"]).index
        )
        self.rows = pd.concat([self.rows[keep], new], ignore_index=True)

    def drop(self, gauge: str, day: str) -> None:
        self.rows = self.rows[~((self.rows["gauge"] == gauge) & (self.rows["time"] == day))]

    def page(self, query: dict[str, list[str]], gauges: list[str], base: str) -> dict[str, object]:
        lo, hi = query["time"][0].split("/")
        sel = self.rows[self.rows["gauge"].isin(gauges)]
        sel = sel[(sel["time"] >= lo) & (hi == ".." or sel["time"] <= hi)] if lo != ".." else sel
        sel = sel.sort_values(["gauge", "time", "time_series_id"])
        limit, offset = int(query["limit"][0]), int(query.get("offset", ["0"])[0])
        part = sel.iloc[offset : offset + limit]
        feats = [
            {
                "type": "Feature",
                "id": f"{r.gauge}-{r.time}-{r.time_series_id}",
                "geometry": None,
                "properties": {
                    "time_series_id": r.time_series_id,
                    "monitoring_location_id": f"USGS-{r.gauge}",
                    "parameter_code": "00060",
                    "statistic_id": "00003",
                    "time": r.time,
                    "value": r.value,
                    "unit_of_measure": "ft^3/s",
                    "approval_status": r.approval_status,
                    "qualifier": r.qualifier,
                    "last_modified": r.last_modified,
                },
            }
            for r in part.itertuples()
        ]
        links = [{"rel": "self", "href": base}]
        if offset + limit < len(sel):
            nxt = {k: v[0] for k, v in query.items()} | {"offset": str(offset + limit)}
            links.append(
                {
                    "rel": "next",
                    "href": f"{base.split('?')[0]}?{urlencode(nxt)}",
                    "type": "application/geo+json",
                }
            )
        return {
            "type": "FeatureCollection",
            "features": feats,
            "numberMatched": len(sel),
            "numberReturned": len(feats),
            "links": links,
        }


class _Handler(BaseHTTPRequestHandler):
    api: Api

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/geo+json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
            self.wfile.write(body)

    def _answer(self, body: bytes | None) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        self.api.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        fault = self.api.script.pop(0) if self.api.script else ""
        if fault.startswith("429"):
            return self._send(
                429, b'{"error":{"code":"OVER_RATE_LIMIT"}}', "application/json", {"Retry-After": fault[4:]}
            )
        if fault == "500":
            return self._send(503, b"<html>busy</html>", "text/html")
        if fault == "html":
            return self._send(200, b"<!DOCTYPE html><html><body>Service moved</body></html>", "text/html")
        if fault == "redirect":
            return self._send(302, b"", "text/html", {"Location": "https://example.org/maintenance"})
        if fault == "error_doc":
            return self._send(
                200, b'{"code":"InvalidParameterValue","description":"bad time"}', "application/json"
            )
        if fault == "400":
            return self._send(
                400, b'{"code":"InvalidParameterValue","description":"bad time"}', "application/json"
            )
        if fault.startswith("slow"):
            time.sleep(float(fault[5:]))
        if url.path.endswith("/collections/monitoring-locations/items"):
            ids = json.loads(body or b"{}")["args"][1]
            feats = [
                {
                    "type": "Feature",
                    "id": i,
                    "geometry": {"type": "Point", "coordinates": list(self.api.locations[g][1:3])},
                    "properties": {
                        "monitoring_location_name": self.api.locations[g][0],
                        "drainage_area": self.api.locations[g][3],
                        "contributing_drainage_area": None,
                        "site_type": "Stream",
                    },
                }
                for i in ids
                if (g := i.removeprefix("USGS-")) in self.api.locations
            ]
            doc = {"type": "FeatureCollection", "features": feats, "numberReturned": len(feats), "links": []}
            return self._send(200, json.dumps(doc).encode())
        if not url.path.endswith("/collections/daily/items"):
            return self._send(404, b'{"code":"NotFound"}', "application/json")
        if body:
            cql = json.loads(body)
            gauges = [g.removeprefix("USGS-") for g in cql["args"][1]]
        else:
            gauges = [query["monitoring_location_id"][0].removeprefix("USGS-")]
        doc = json.dumps(self.api.page(query, gauges, f"http://{self.headers['Host']}{self.path}")).encode()
        if fault == "truncated":
            doc = doc[: len(doc) // 2]
        if fault == "foreign_next":
            d = json.loads(doc)
            d["links"].append({"rel": "next", "href": "https://elsewhere.example/items?offset=7"})
            doc = json.dumps(d).encode()
        if fault == "short_count":
            d = json.loads(doc)
            d["numberMatched"] += 5
            doc = json.dumps(d).encode()
        self._send(200, doc)

    def do_GET(self) -> None:
        self._answer(None)

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def log_message(self, *args: object) -> None:
        pass


def serve_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, str]]:
    """The local API (its state, its root URL) for the duration of a test, with a key in the environment."""
    monkeypatch.setenv("API_USGS_PAT", SECRET)
    state = Api()
    handler = type("H", (_Handler,), {"api": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/ogcapi/v0/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, str]]:
    yield from serve_api(monkeypatch)


def _settings(url: str, **kw: object) -> ClientSettings:
    return ClientSettings(base_url=url, **{"backoff_s": 0.0, "page_limit": 7, **kw})  # type: ignore[arg-type]


def _plan(gauges: list[str], start: str) -> pd.DataFrame:
    return pd.DataFrame({"gauge": gauges, "start": pd.Timestamp(start)})


# ---------------------------------------------------------------- the client


def test_pages_many_gauges_per_request_with_key_and_user_agent(api: tuple[Api, str]) -> None:
    srv, url = api
    srv.put("01022500", "2024-01-01", [10.0 + i for i in range(10)])
    srv.put("01031500", "2024-01-01", [20.0 + i for i in range(10)])
    fetch = fetch_daily(
        _plan(["01022500", "01031500", "01047000"], "2024-01-03"), date(2024, 1, 9), _settings(url)
    )
    assert len(fetch.rows) == 2 * 7 and fetch.rows["value"].iloc[0] == 12.0
    assert sorted(fetch.windows["gauge"]) == ["01022500", "01031500", "01047000"]  # 01047000: empty = no data
    assert len(srv.seen) == 2 == fetch.requests  # 14 rows, pages of 7: one request, one next link
    first = srv.seen[0]
    assert first["method"] == "POST" and json.loads(first["body"])["args"][1][0] == "USGS-01022500"  # type: ignore[arg-type]
    assert first["headers"]["X-Api-Key"] == SECRET and "synergy_dagster" in first["headers"]["User-Agent"]  # type: ignore[index]
    assert all(SECRET not in str(s["path"]) for s in srv.seen) and all(SECRET not in u for u in fetch.urls)
    # Starts far apart are never asked together: a new gauge's history is not fetched for the others.
    plan = pd.DataFrame(
        {
            "gauge": ["01022500", "01031500", "01047000"],
            "start": pd.to_datetime(["2024-01-08", "1990-01-01", "2024-01-07"]),
        }
    )
    n = len(srv.seen)
    spread = fetch_daily(plan, date(2024, 1, 9), _settings(url))
    asked = [
        json.loads(s["body"])["args"][1]
        if s["body"]
        else [parse_qs(urlparse(str(s["path"])).query)["monitoring_location_id"][0]]
        for s in srv.seen[n:]
    ]  # type: ignore[arg-type]
    # 01031500 alone (two pages of 7 and 3 days), then the other two together in one page.
    assert [sorted(a) for a in asked] == [["USGS-01031500"]] * 2 + [["USGS-01022500", "USGS-01047000"]]
    assert spread.windows.set_index("gauge")["start"].dt.strftime("%Y-%m-%d").to_dict() == {
        "01031500": "1990-01-01",
        "01022500": "2024-01-07",
        "01047000": "2024-01-07",
    }
    one = fetch_daily(_plan(["01022500"], "2024-01-01"), date(2024, 1, 2), _settings(url))
    assert srv.seen[-1]["method"] == "GET" and "monitoring_location_id=USGS-01022500" in str(
        srv.seen[-1]["path"]
    )
    assert one.rows["approval_status"].tolist() == ["Provisional", "Provisional"]


def test_429_waits_for_retry_after_then_succeeds(api: tuple[Api, str]) -> None:
    srv, url = api
    srv.put("01022500", "2024-01-01", [1.0, 2.0])
    srv.script = ["429:3", "500"]
    waits: list[float] = []
    fetch = fetch_daily(
        _plan(["01022500"], "2024-01-01"), date(2024, 1, 2), _settings(url, backoff_s=0.5), sleep=waits.append
    )
    assert len(fetch.rows) == 2 and fetch.retries == 2
    assert waits[0] == 3.0 and 1.0 <= waits[1] <= 1.5  # Retry-After, then 2nd backoff + jitter
    srv.script = ["429:5000"]
    with pytest.raises(InputError, match="Retry-After 5000 s.*longer than"):
        fetch_daily(_plan(["01022500"], "2024-01-01"), date(2024, 1, 2), _settings(url), sleep=waits.append)
    srv.script = ["500"] * 5
    with pytest.raises(InputError, match="HTTP 503.*after 3 tries"):
        fetch_daily(
            _plan(["01022500"], "2024-01-01"), date(2024, 1, 2), _settings(url, retries=2), sleep=waits.append
        )


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ("html", "text/html, not the API's JSON; starts with '<!DOCTYPE html>"),
        ("redirect", "HTTP 302 redirect to 'https://example.org/maintenance'"),
        ("error_doc", "error document.*InvalidParameterValue"),
        ("400", "HTTP 400.*InvalidParameterValue"),
        ("truncated", "not complete JSON"),
        ("short_count", "numberMatched was 7, the pages held 2"),
        ("foreign_next", "leaves the service http://127.0.0.1"),
    ],
)
def test_anything_but_the_api_format_fails_with_url_and_answer(
    api: tuple[Api, str], fault: str, match: str
) -> None:
    srv, url = api
    srv.put("01022500", "2024-01-01", [1.0, 2.0])
    srv.script = [fault]
    with pytest.raises(InputError, match=match) as err:
        fetch_daily(_plan(["01022500"], "2024-01-01"), date(2024, 1, 2), _settings(url))
    assert "/collections/daily/items" in str(err.value) and SECRET not in str(err.value)


def test_a_slow_answer_times_out_and_the_budget_stops_the_fetch(api: tuple[Api, str], tmp_path: Path) -> None:
    srv, url = api
    srv.put("01022500", "2024-01-01", [1.0])
    srv.put("01031500", "2024-01-01", [2.0])
    srv.script = ["slow:1.5"]
    with pytest.raises(InputError, match="cannot reach.*ReadTimeout.*1 tries"):
        fetch_daily(
            _plan(["01022500"], "2024-01-01"), date(2024, 1, 1), _settings(url, timeout_s=0.3, retries=0)
        )
    # Budget: the first request (one gauge a request) arrives, the second is slow past the budget.
    srv.script = ["", "slow:1.5"]
    settings = _settings(url, timeout_s=5.0, retries=0, budget_s=0.8, gauges_per_request=1)
    with pytest.raises(FetchBudgetExceeded, match="1 of 2 gauges fetched") as err:
        fetch_daily(_plan(["01022500", "01031500"], "2024-01-01"), date(2024, 1, 1), settings)
    partial = err.value.partial
    assert (
        partial is not None and partial.windows["gauge"].tolist() == ["01022500"] and len(partial.rows) == 1
    )
    # The feed lands what arrived and says what did not (the op then fails the run).
    srv.script = ["", "slow:1.5"]
    run = run_feed(Layout(tmp_path), ["01022500", "01031500"], date(2024, 1, 1), settings, tmp_path,
                   revision_days=0, history_start=date(2024, 1, 1))  # fmt: skip
    assert run.path is not None and "not fetched: ['01031500']" in run.stopped
    assert read_daily_file(run.path)[1]["gauge"].tolist() == ["01022500"]


def test_several_series_per_gauge_are_chosen_by_rule_and_recorded(
    api: tuple[Api, str], tmp_path: Path
) -> None:
    srv, url = api
    srv.put("01022500", "2024-01-01", [1.0, 2.0, 3.0], ts="aaa")
    srv.put("01022500", "2024-01-01", [9.0, 9.0, 9.0, 9.0], ts="zzz")  # more days: kept
    fetch = fetch_daily(_plan(["01022500"], "2024-01-01"), date(2024, 1, 9), _settings(url))
    assert fetch.rows["time_series_id"].unique().tolist() == ["zzz"] and len(fetch.rows) == 4
    assert fetch.series[["time_series_id", "dropped"]].to_numpy().tolist() == [["zzz", "aaa"]]
    path = write_daily_file(fetch, tmp_path, url)
    assert path is not None and json.loads(path.read_text())["series"]["dropped"] == ["aaa"]
    assert SECRET not in path.read_text()
    rows, windows = read_daily_file(path)
    assert rows["units"].unique().tolist() == ["cfs"] and windows["end"].iloc[0] == pd.Timestamp("2024-01-09")


def test_new_gauges_get_their_monitoring_location_record(api: tuple[Api, str]) -> None:
    srv, url = api
    srv.locations["01022500"] = ("NARRAGUAGUS RIVER AT CHERRYFIELD, MAINE", -67.935, 44.608, 227.0)
    srv.locations["01031500"] = ("PISCATAQUIS RIVER NEAR DOVER-FOXCROFT, MAINE", -69.315, 45.175, 298.0)
    loc = fetch_monitoring_locations(["01031500", "01022500"], _settings(url))
    assert loc["gauge"].tolist() == ["01022500", "01031500"] and loc["name"].iloc[0].startswith("NARRAGUAGUS")
    assert loc["lat"].iloc[0] == 44.608 and loc["lon"].iloc[0] == -67.935
    assert loc["drainage_area_km2"].iloc[0] == pytest.approx(587.9, abs=0.1)  # 227 mi2
    assert np.isnan(loc["contributing_area_km2"]).all()
    with pytest.raises(InputError, match=r"no monitoring location for USGS gauges \['09999999'\]"):
        fetch_monitoring_locations(["01022500", "09999999"], _settings(url))


def test_bad_settings_and_plans_are_refused_before_any_http() -> None:
    with pytest.raises(InputError, match="gauges_per_request"):
        ClientSettings(gauges_per_request=0)
    with pytest.raises(InputError, match="page_limit"):
        ClientSettings(page_limit=60000)
    with pytest.raises(InputError, match="not USGS site numbers"):
        fetch_daily(
            _plan(["camels_x"], "2024-01-01"),
            date(2024, 1, 2),
            ClientSettings(base_url="http://127.0.0.1:9/"),
        )


# ---------------------------------------------------------------- state, revisions and the whole refresh

SITES = ["camels_01022500", "camels_01031500"]
AREA = np.array([620.0, 770.0])
FACTOR = cfs_to_mm_per_day(np.ones(2), AREA)  # mm/d per cfs, per site


def _world(tmp_path: Path) -> Layout:
    """A streamflow source of two CAMELS gauges up to 2009-09-30 (and its tagged sites)."""
    data = tmp_path / "data"
    t = pd.date_range("2008-10-01", "2009-09-30", freq="D")
    q = np.full((2, len(t)), 1.0)
    ds = make_site_dataset(
        domain="streamflow", source="test", site_ids=SITES, time=t, lat=np.full(2, 44.0), lon=np.full(2, -69.0),
        target=("streamflow", q, "mm/d"), dynamic={"total_precipitation_sum": (np.zeros((2, len(t))), "mm/d")},
        static={"area": (AREA, "km2")},
    )  # fmt: skip
    (data / "sources").mkdir(parents=True)
    (data / "sites").mkdir()
    ds.to_netcdf(data / "sources" / "streamflow.nc")
    ds.to_netcdf(data / "sites" / "streamflow.nc")
    return Layout(data)


def _held(layout: Layout, site: str, day: str) -> float:
    with xr.open_dataset(layout.source_nc("streamflow")) as ds:
        return float(ds["streamflow"].sel(site=site, time=day).item())


def _refresh(layout: Layout, url: str, end: date, landing: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One scheduled refresh as the op and the sensor do it: fetch, check against the source, ingest."""
    run = run_feed(layout, ["01022500", "01031500"], end, _settings(url), landing, revision_days=10,
                   history_start=date(2008, 10, 1))  # fmt: skip
    assert run.path is not None and not run.stopped
    ledger = layout.landed_updates("streamflow")
    held = pd.read_parquet(ledger) if ledger.exists() else None
    with xr.open_dataset(layout.source_nc("streamflow")) as src:
        checked = check_landed(
            run.path, "waterdata_json", SITES, dict(zip(SITES, AREA, strict=True)), src, held
        )
    assert set(checked.changes["change"]) <= {"new", "revised", "withdrawn", "approved"}  # type: ignore[index]
    result = ingest_landed(layout, landing, [(run.path.name, "")])
    assert result.ingested and not result.quarantined
    return checked.affected_rows(), result.changes if result.changes is not None else pd.DataFrame()


def test_the_whole_refresh_takes_revisions_withdrawals_approvals_and_new_days(
    api: tuple[Api, str], tmp_path: Path
) -> None:
    srv, url = api
    layout = _world(tmp_path)
    landing = tmp_path / "landing"
    landing.mkdir()
    # The service holds what the source holds (1 mm/d) for September, then new provisional days.
    for g, f in zip(["01022500", "01031500"], FACTOR, strict=True):
        srv.put(g, "2009-09-15", [1.0 / f] * 16, status="Approved")
        srv.put(g, "2009-10-01", [2.0 / f] * 5)
    assert newest_day_per_gauge(layout).tolist() == [pd.Timestamp("2009-09-30")] * 2

    affected, changes = _refresh(layout, url, date(2009, 10, 5), landing)
    assert set(changes["change"]) == {"new"} and len(changes) == 10  # 5 new days per gauge, nothing else
    assert _held(layout, SITES[0], "2009-10-03") == pytest.approx(2.0, rel=1e-5)
    assert newest_day_per_gauge(layout).tolist() == [pd.Timestamp("2009-10-05")] * 2

    # USGS revises one day, withdraws one, approves one, marks one as ice, and publishes two more.
    g = "01022500"
    srv.put(g, "2009-10-02", [3.0 / FACTOR[0]])  # revised, still provisional
    srv.drop(g, "2009-10-03")  # withdrawn
    srv.put(g, "2009-10-04", [2.0 / FACTOR[0]], status="Approved")  # same value, approved
    srv.put(g, "2009-10-05", [None], qualifier=["ICE"])  # ice: no value any more
    srv.put(g, "2009-10-06", [2.0 / FACTOR[0], 2.0 / FACTOR[0]], qualifier=["E"])  # new, estimated
    affected, changes = _refresh(layout, url, date(2009, 10, 7), landing)
    by = changes.set_index(changes["date"].dt.strftime("%Y-%m-%d"))
    assert by.loc["2009-10-02", "change"] == "revised" and by.loc["2009-10-02", "new"] == pytest.approx(3.0)
    assert (
        by.loc["2009-10-03", "change"] == "withdrawn"
        and by.loc["2009-10-03", "reason"] == "not in the answer any more"
    )
    assert (by.loc["2009-10-04", "change"], by.loc["2009-10-04", "old_status"], by.loc["2009-10-04", "new_status"]) == (
        "approved", "Provisional", "Approved",
    )  # fmt: skip
    assert by.loc["2009-10-05", "change"] == "withdrawn" and by.loc["2009-10-05", "reason"] == "qualifier ICE"
    assert sorted(changes.loc[changes["change"] == "new", "date"].dt.day) == [6, 7]
    assert set(changes["site_id"]) == {SITES[0]}  # the other gauge changed nothing
    assert _held(layout, SITES[0], "2009-10-02") == pytest.approx(3.0, rel=1e-5)
    assert np.isnan(_held(layout, SITES[0], "2009-10-03")) and np.isnan(_held(layout, SITES[0], "2009-10-05"))

    # The ledger keeps each day's status and reason; the revision log every change, with its file.
    ledger = pd.read_parquet(layout.landed_updates("streamflow")).set_index(["site_id", "date"])
    assert ledger.loc[(SITES[0], pd.Timestamp("2009-10-04")), "approval_status"] == "Approved"
    assert ledger.loc[(SITES[0], pd.Timestamp("2009-10-05")), "reason"] == "qualifier ICE"
    assert bool(ledger.loc[(SITES[0], pd.Timestamp("2009-10-03")), "withdrawn"])
    log = pd.read_parquet(revisions_path(layout))
    assert len(log) == 10 + len(changes) and log["file"].str.startswith("usgs_daily_").all()
    # The source and the tagged sites carry each day's status and qualifiers as flag bits.
    for path in (layout.source_nc("streamflow"), layout.sites_nc("streamflow")):
        with xr.open_dataset(path) as ds:
            flags = ds[FLAG_VAR].sel(site=SITES[0]).to_series()
        assert flags["2009-09-01"] == 0  # the archive's day
        assert flags["2009-09-20"] == LANDED  # fetched, approved
        assert flags["2009-10-02"] == LANDED | NOT_APPROVED  # revised, provisional
        assert flags["2009-10-04"] == LANDED  # approved since
        assert flags["2009-10-05"] == LANDED | NOT_APPROVED | QUALIFIED  # ice
        assert flags["2009-10-06"] == LANDED | NOT_APPROVED | ESTIMATED

    # Only value changes decide what retrains: an approval alone does not.
    periods = SimpleNamespace(
        train=SimpleNamespace(start="2008-10-01", end="2009-10-03"),
        test=SimpleNamespace(start="2009-10-04", end="2009-12-31"),
    )
    plan = SimpleNamespace(
        sets={
            "key": ["global:CONUS", "local:B"],
            "trained_as": [None, None],
            "site_ids": [SITES, [SITES[1]]],
        },
        evaluations={"eval_site_ids": [SITES]},
    )
    landed = affected.rename(columns={"gauge": "site_id"})
    assert affected_partitions(landed, plan, periods) == (["global:CONUS"], True)  # type: ignore[arg-type]
    assert "2009-10-04" not in set(landed["date"].dt.strftime("%Y-%m-%d"))  # approved, value unchanged
    assert len(landed) == 5  # revised, two withdrawn, two new

    # The same answer again changes nothing; a rebuilt source gets the withdrawals re-applied.
    _, again = _refresh(layout, url, date(2009, 10, 7), landing)
    assert again.empty
    _world(tmp_path / "rebuilt")
    os.replace(tmp_path / "rebuilt" / "data" / "sources" / "streamflow.nc", layout.source_nc("streamflow"))
    result = ingest_landed(layout, landing, [])
    assert np.isnan(_held(layout, SITES[0], "2009-10-03")) and _held(
        layout, SITES[0], "2009-10-02"
    ) == pytest.approx(3.0, rel=1e-5)
    with xr.open_dataset(layout.source_nc("streamflow")) as ds:  # the flags too, from the ledger
        assert ds[FLAG_VAR].sel(site=SITES[0], time="2009-10-06").item() == LANDED | NOT_APPROVED | ESTIMATED
    assert result.flag_counts["estimated"] == 2 and result.flag_counts["landed"] > 0


def test_fetch_files_of_one_batch_are_compared_in_fetch_order(api: tuple[Api, str], tmp_path: Path) -> None:
    srv, url = api
    layout = _world(tmp_path)
    g, f = "01022500", FACTOR[0]
    srv.put(g, "2009-09-15", [1.0 / f] * 16, status="Approved")
    srv.put(g, "2009-10-01", [2.0 / f] * 3)
    kw = {"revision_days": 10, "history_start": date(2008, 10, 1)}
    first = run_feed(layout, [g], date(2009, 10, 3), _settings(url), tmp_path, **kw).path  # type: ignore[arg-type]
    srv.put(g, "2009-10-02", [3.0 / f])  # revised before the first file was ingested
    second = run_feed(layout, [g], date(2009, 10, 3), _settings(url), tmp_path, **kw).path  # type: ignore[arg-type]
    assert first is not None and second is not None and sorted([second.name, first.name])[0] == first.name
    result = ingest_landed(layout, tmp_path, [(first.name, ""), (second.name, "")])
    log = pd.read_parquet(revisions_path(layout))
    assert log.groupby("file")["change"].agg(list).to_dict() == {
        first.name: ["new"] * 3,
        second.name: ["revised"],
    }
    assert log.loc[log["change"] == "revised", "old"].iloc[0] == pytest.approx(2.0, rel=1e-5)
    assert (
        _held(layout, SITES[0], "2009-10-02") == pytest.approx(3.0, rel=1e-5) and result.changes is not None
    )


def test_windows_follow_each_gauges_state_and_stale_gauges_are_named() -> None:
    newest = pd.Series(pd.to_datetime(["2024-05-01", "2024-03-01"]), index=["01022500", "01031500"])
    win = fetch_windows(["01022500", "01031500", "01047000"], newest, date(2024, 5, 3), 30, date(1980, 1, 1))
    assert win["start"].dt.strftime("%Y-%m-%d").tolist() == ["2024-04-01", "2024-01-31", "1980-01-01"]
    stale = stale_gauges(newest, ["01022500", "01031500", "01047000"], date(2024, 5, 3), 7)
    assert stale["gauge"].tolist() == ["01047000", "01031500"] and stale["age_days"].iloc[1] == 63
    assert stale_gauges(newest, ["01022500"], date(2024, 5, 3), 7).empty
    with pytest.raises(InputError, match="revision_days"):
        fetch_windows(["01022500"], newest, date(2024, 5, 3), -1, date(1980, 1, 1))


def test_merge_streamflow_erases_only_withdrawn_days(tmp_path: Path) -> None:
    layout = _world(tmp_path)
    ds = xr.load_dataset(layout.source_nc("streamflow"))
    new = pd.DataFrame(
        {
            "site_id": SITES[0],
            "date": pd.to_datetime(["2009-01-01", "2009-01-02", "2009-01-03"]),
            "streamflow_mm": [np.nan, np.nan, 4.0],
            "withdrawn": [True, False, False],
        }
    )
    out = merge_streamflow(ds, new)["streamflow"].sel(site=SITES[0])
    assert np.isnan(out.sel(time="2009-01-01")) and float(out.sel(time="2009-01-02")) == 1.0
    assert float(out.sel(time="2009-01-03")) == 4.0


def test_the_legacy_rdb_fetch_is_deprecated(tmp_path: Path) -> None:
    from synergy_dagster.sources.nwis_client import fetch_to_landing

    with warnings.catch_warnings(record=True) as caught, pytest.raises(InputError):
        warnings.simplefilter("always")
        fetch_to_landing(
            ["01022500"],
            date(2024, 1, 1),
            date(2024, 1, 2),
            tmp_path,
            base_url="http://127.0.0.1:9/",
            retries=0,
        )
    assert any(issubclass(w.category, DeprecationWarning) and "2027" in str(w.message) for w in caught)
