"""USGS Water Data OGC API client: daily-mean discharge from the ``daily`` collection.

The replacement of the WaterServices ``dv`` service (decommissioned in 2027). One request asks
``collections/daily/items`` for ``parameter_code=00060`` (discharge, ft3/s), ``statistic_id=00003``
(daily mean) and a ``time`` interval; one gauge goes in the query string
(``monitoring_location_id=USGS-<number>``), several in a CQL2 JSON ``in`` filter sent by POST (as the
``dataretrieval`` package does). Pages are followed by their ``next`` link until the rows add up to
``numberMatched``. Anything that is not the API's GeoJSON (an HTML page, a redirect, an error
document, a truncated body, a feature of another parameter) fails with the URL and what came back;
"no data" is only an empty feature collection. The key (environment variable ``API_USGS_PAT``) goes
in the ``X-Api-Key`` header, never into a URL, a message or a file. 429 waits for ``Retry-After``;
5xx and dropped connections are retried with exponential backoff and jitter; everything runs under
one time budget per fetch. See docs/usgs-feed.md for the facts this rests on and where they come from.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests

from synergy_dagster.errors import InputError, SynergyError

DEFAULT_API_URL = "https://api.waterdata.usgs.gov/ogcapi/v0/"
API_KEY_ENV = "API_USGS_PAT"
USER_AGENT = "synergy_dagster/0.1 (data-synergy streamflow feed; python-requests)"
GROUP_GAP = pd.Timedelta(days=31)  # most starts differ by a day or two (a late gauge); history by years
MAX_PAGE_LIMIT = 50000  # the API's largest page (dataretrieval caps `limit` there too)
PARAMETER_CODE = "00060"  # discharge, ft3/s
STATISTIC_ID = "00003"  # daily mean
UNIT = "ft^3/s"
COLUMNS = ["gauge", "date", "value", "approval_status", "qualifier", "time_series_id", "last_modified"]
_USGS_SITE = re.compile(r"^\d{8,15}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_REQUIRED = ("monitoring_location_id", "parameter_code", "statistic_id", "time", "value", "time_series_id")


class FetchBudgetExceeded(SynergyError):
    """The fetch ran out of its time budget; ``partial`` holds what arrived completely (or None)."""

    def __init__(self, message: str, partial: DailyFetch | None = None) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class ClientSettings:
    """How the client talks to the service (the deployment resource fills these in)."""

    base_url: str = DEFAULT_API_URL
    api_key_env: str = API_KEY_ENV
    timeout_s: float = 60.0  # one HTTP exchange
    retries: int = 4  # after the first try, for 429, 5xx and dropped connections
    backoff_s: float = 1.0  # first backoff; doubles per retry, plus up to 50 % jitter
    max_retry_after_s: float = 600.0  # a longer Retry-After fails at once
    budget_s: float = 1800.0  # the whole fetch
    gauges_per_request: int = 50
    page_limit: int = 10000

    def __post_init__(self) -> None:
        for name in ("timeout_s", "budget_s", "backoff_s", "max_retry_after_s"):
            if not getattr(self, name) >= 0:
                raise InputError(f"waterdata {name}", f"must be >= 0, got {getattr(self, name)}")
        if self.retries < 0:
            raise InputError("waterdata retries", f"must be >= 0, got {self.retries}")
        if not 1 <= self.gauges_per_request <= 500:
            raise InputError("waterdata gauges_per_request", f"must be 1..500, got {self.gauges_per_request}")
        if not 1 <= self.page_limit <= MAX_PAGE_LIMIT:
            raise InputError("waterdata page_limit", f"must be 1..{MAX_PAGE_LIMIT}, got {self.page_limit}")
        if not self.base_url.startswith(("http://", "https://")):
            raise InputError("waterdata base_url", f"not an http(s) URL: {self.base_url!r}")


@dataclass
class DailyFetch:
    """What one fetch returned: the rows, the window each gauge was asked for, the series chosen."""

    rows: pd.DataFrame  # COLUMNS; value in ft3/s, NaN where the API gives null
    windows: pd.DataFrame  # gauge, start, end: the API answered completely for these
    series: pd.DataFrame  # gauge, time_series_id (kept), dropped (others, comma list), rule
    requests: int = 0
    retries: int = 0
    urls: list[str] = field(default_factory=list)


def usgs_location_id(number: str) -> str:
    """``01022500`` -> ``USGS-01022500`` (the API's monitoring_location_id)."""
    return f"USGS-{number}"


def api_headers(settings: ClientSettings, json_body: bool = False) -> dict[str, str]:
    """Request headers: JSON wanted, gzip, a User-Agent naming the project, the key when set."""
    headers = {
        "Accept": "application/geo+json, application/json",
        "Accept-Encoding": "gzip",
        "User-Agent": USER_AGENT,
    }
    key = os.environ.get(settings.api_key_env, "").strip()
    if key:
        headers["X-Api-Key"] = key
    if json_body:
        headers["Content-Type"] = "application/query-cql-json"
    return headers


def daily_request(
    settings: ClientSettings, gauges: Sequence[str], start: date, end: date
) -> tuple[str, dict[str, str], str | None]:
    """(items URL, query parameters, CQL2 JSON body or None) for daily means of ``gauges`` in [start, end]."""
    url = settings.base_url.rstrip("/") + "/collections/daily/items"
    params = {
        "parameter_code": PARAMETER_CODE,
        "statistic_id": STATISTIC_ID,
        "time": f"{start:%Y-%m-%d}/{end:%Y-%m-%d}",
        "limit": str(settings.page_limit),
        "skipGeometry": "true",
        "f": "json",
    }
    ids = [usgs_location_id(g) for g in gauges]
    if len(ids) == 1:
        params["monitoring_location_id"] = ids[0]
        return url, params, None
    cql = {"op": "in", "args": [{"property": "monitoring_location_id"}, ids]}
    return url, params, json.dumps(cql)


class _Clock:
    """The fetch's deadline; ``sleep`` is injectable so tests need not wait."""

    def __init__(self, budget_s: float, sleep: Callable[[float], None]) -> None:
        self.deadline = time.monotonic() + budget_s
        self.budget_s = budget_s
        self.sleep = sleep

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _shown(body: bytes | str, n: int = 200) -> str:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return repr(" ".join(text.split())[:n])


def _exchange(
    http: requests.Session,
    settings: ClientSettings,
    url: str,
    params: dict[str, str] | None,
    body: str | None,
    clock: _Clock,
    fetch: DailyFetch,
) -> dict[str, object]:
    """One page: the parsed JSON document after retries; InputError naming the URL otherwise."""
    shown_url = requests.Request("GET", url, params=params).prepare().url or url
    for attempt in range(settings.retries + 1):
        left = clock.left()
        if left <= 0:
            raise FetchBudgetExceeded(f"{shown_url}: the time budget of {clock.budget_s:g} s is spent")
        headers = api_headers(settings, json_body=body is not None)
        fetch.requests += 1
        try:
            resp = http.request(
                "POST" if body is not None else "GET",
                url,
                params=params,
                data=body,
                headers=headers,
                timeout=min(settings.timeout_s, left),
                allow_redirects=False,  # a redirect is not the API's answer: say so, do not follow
            )
        except requests.RequestException as exc:
            if left < settings.timeout_s and clock.left() <= 0.05:  # cut short by the budget, not the server
                raise FetchBudgetExceeded(
                    f"{shown_url}: no answer before the time budget of {clock.budget_s:g} s ran out"
                ) from exc
            problem = f"cannot reach the Water Data API ({type(exc).__name__})"
            wait = settings.backoff_s * 2**attempt * (1 + 0.5 * random.random())
            if attempt == settings.retries or wait >= clock.left():
                raise InputError(shown_url, f"{problem} after {attempt + 1} tries") from exc
            fetch.retries += 1
            clock.sleep(wait)
            continue
        status = resp.status_code
        if status == 429 or status >= 500:
            hinted = _retry_after(resp.headers.get("Retry-After")) if status == 429 else None
            wait = (
                hinted
                if hinted is not None
                else settings.backoff_s * 2**attempt * (1 + 0.5 * random.random())
            )
            what = f"HTTP {status} {resp.reason}" + (
                f" (Retry-After {hinted:g} s)" if hinted is not None else ""
            )
            if hinted is not None and hinted > settings.max_retry_after_s:
                raise InputError(
                    shown_url, f"{what}: longer than the {settings.max_retry_after_s:g} s allowed"
                )
            if attempt == settings.retries:
                raise InputError(shown_url, f"{what} after {attempt + 1} tries: {_shown(resp.content)}")
            if wait >= clock.left():
                raise FetchBudgetExceeded(
                    f"{shown_url}: {what}; waiting {wait:.0f} s would pass the time budget"
                )
            fetch.retries += 1
            clock.sleep(wait)
            continue
        if 300 <= status < 400:
            raise InputError(
                shown_url,
                f"HTTP {status} redirect to {resp.headers.get('Location', '?')!r}, not the API's JSON",
            )
        if status == 403:
            raise InputError(
                shown_url,
                f"HTTP 403 Forbidden (a missing, wrong or over-limit key in ${settings.api_key_env}?): "
                f"{_shown(resp.content)}",
            )
        if status != 200:
            raise InputError(shown_url, f"HTTP {status} {resp.reason}: {_shown(resp.content)}")
        return _json_document(resp, shown_url)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _json_document(resp: requests.Response, url: str) -> dict[str, object]:
    """The body as a JSON object; InputError for HTML, other media types or a truncated body."""
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if "json" not in ctype:
        raise InputError(
            url, f"answer is {ctype or 'untyped'}, not the API's JSON; starts with {_shown(resp.content)}"
        )
    try:
        doc = json.loads(resp.content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(
            url,
            f"answer is not complete JSON ({exc.msg if isinstance(exc, json.JSONDecodeError) else exc}; "
            f"{len(resp.content)} bytes, ends with {_shown(resp.content[-80:], 80)})",
        ) from exc
    if not isinstance(doc, dict):
        raise InputError(url, f"answer is JSON {type(doc).__name__}, not a feature collection")
    return doc


def parse_daily_page(
    doc: dict[str, object], url: str, gauges: Sequence[str]
) -> tuple[pd.DataFrame, str | None, int | None]:
    """One page of ``daily`` items -> (rows in COLUMNS, next URL or None, numberMatched or None).

    Refuses an error document (``code``/``description``), anything not a FeatureCollection, a
    ``numberReturned`` that disagrees with the features, and features of other gauges, parameters,
    statistics or units, or with a time that is not a plain day.
    """
    if doc.get("type") != "FeatureCollection":
        if "code" in doc or "description" in doc or "error" in doc:
            raise InputError(url, f"the API answered with an error document: {_shown(json.dumps(doc))}")
        raise InputError(url, f"not a GeoJSON FeatureCollection (type {doc.get('type')!r})")
    feats = doc.get("features")
    if not isinstance(feats, list):
        raise InputError(url, "FeatureCollection without a 'features' list")
    returned = doc.get("numberReturned")
    if returned is not None and returned != len(feats):
        raise InputError(
            url, f"numberReturned says {returned}, the page holds {len(feats)} features (truncated?)"
        )
    matched = doc.get("numberMatched")
    nxt = next(
        (
            lk.get("href")
            for lk in doc.get("links", []) or []
            if isinstance(lk, dict) and lk.get("rel") == "next"
        ),
        None,
    )
    if not feats:
        return pd.DataFrame(columns=COLUMNS), None, matched if isinstance(matched, int) else None
    props = pd.DataFrame.from_records([f.get("properties") if isinstance(f, dict) else None for f in feats])
    missing = [c for c in _REQUIRED if c not in props.columns]
    if missing:
        raise InputError(url, f"features lack properties {missing}; they have {sorted(props.columns)[:12]}")
    for col, want in (("parameter_code", PARAMETER_CODE), ("statistic_id", STATISTIC_ID)):
        bad = props[col].astype(str) != want
        if bad.any():
            raise InputError(
                url,
                f"feature {int(np.argmax(bad.to_numpy()))} has {col} {props[col][bad].iloc[0]!r}, asked {want}",
            )
    if "unit_of_measure" in props.columns:
        unit = props["unit_of_measure"].fillna(UNIT).astype(str)
        bad = unit != UNIT
        if bad.any():
            raise InputError(url, f"unit {unit[bad].iloc[0]!r} for discharge; expected {UNIT}")
    loc = props["monitoring_location_id"].astype(str)
    gauge = loc.str.removeprefix("USGS-")
    foreign = ~gauge.isin(list(gauges)) | ~loc.str.startswith("USGS-")
    if foreign.any():
        raise InputError(
            url, f"feature of monitoring location {loc[foreign].iloc[0]!r}, which was not asked for"
        )
    day = props["time"].astype(str)
    bad_day = ~day.str.match(_DAY)
    if bad_day.any():
        raise InputError(url, f"time {day[bad_day].iloc[0]!r} is not a day (YYYY-MM-DD)")
    raw = props["value"]
    value = pd.to_numeric(raw, errors="coerce")
    bad_v = value.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad_v.any():
        raise InputError(
            url,
            f"value {raw[bad_v].iloc[0]!r} is not a number",
            f"feature {int(np.argmax(bad_v.to_numpy()))}",
        )
    rows = pd.DataFrame(
        {
            "gauge": gauge.to_numpy(),
            "date": pd.to_datetime(day, format="%Y-%m-%d").to_numpy(),
            "value": value.to_numpy(dtype=np.float64),
            "approval_status": _text(props, "approval_status"),
            "qualifier": _qualifiers(props),
            "time_series_id": props["time_series_id"].astype(str).to_numpy(),
            "last_modified": _text(props, "last_modified"),
        }
    )
    return rows, nxt, matched if isinstance(matched, int) else None


def _text(props: pd.DataFrame, col: str) -> np.ndarray:
    if col not in props.columns:
        return np.full(len(props), "", dtype=object)
    return props[col].fillna("").astype(str).to_numpy()


def _qualifiers(props: pd.DataFrame) -> np.ndarray:
    """Qualifiers as one comma-separated string per day (the API gives null, a string or a list)."""
    if "qualifier" not in props.columns:
        return np.full(len(props), "", dtype=object)
    q = props["qualifier"]
    is_list = q.map(lambda v: isinstance(v, list))
    out = q.where(~is_list, q[is_list].map(lambda v: ",".join(map(str, v))) if is_list.any() else q)
    return out.fillna("").astype(str).str.upper().to_numpy()


def choose_series(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep one daily-mean series per gauge; returns (rows of the kept series, the choice per gauge).

    Rule: the series with the most days in the window, then the most recently modified, then the
    smallest id (so the choice is reproducible). Never silently the first one: every gauge's kept
    and dropped series are returned, and land with the data.
    """
    if rows.empty:
        return rows, pd.DataFrame(columns=["gauge", "time_series_id", "dropped", "rule"])
    stats = (
        rows.groupby(["gauge", "time_series_id"], sort=True)
        .agg(n=("date", "size"), modified=("last_modified", "max"))
        .reset_index()
        .sort_values(["gauge", "n", "modified", "time_series_id"], ascending=[True, False, False, True])
    )
    kept = stats.drop_duplicates("gauge", keep="first")
    dropped = stats[~stats.index.isin(kept.index)].groupby("gauge")["time_series_id"].agg(",".join)
    choice = pd.DataFrame(
        {
            "gauge": kept["gauge"].to_numpy(),
            "time_series_id": kept["time_series_id"].to_numpy(),
            "dropped": kept["gauge"].map(dropped).fillna("").to_numpy(),
            "rule": "most days in the window, then newest last_modified, then smallest id",
        }
    )
    keep = rows.set_index(["gauge", "time_series_id"]).index.isin(
        kept.set_index(["gauge", "time_series_id"]).index
    )
    out = rows[keep]
    dup = out.duplicated(["gauge", "date"])
    if dup.any():
        r = out[dup.to_numpy()].iloc[0]
        raise InputError(
            "waterdata daily", f"series {r['time_series_id']} has {r['date']:%Y-%m-%d} twice for {r['gauge']}"
        )
    return out.sort_values(["gauge", "date"]).reset_index(drop=True), choice


def fetch_daily(
    plan: pd.DataFrame,
    end: date,
    settings: ClientSettings,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DailyFetch:
    """Fetch the windows ``plan`` asks for (columns gauge, start) up to ``end``, many gauges a request.

    Gauges are sorted by start day and asked ``gauges_per_request`` at a time, never mixing starts
    more than GROUP_GAP apart (a request asks from its earliest start, so a gauge may get up to that
    many more days than it needed). A gauge is in
    ``windows`` only when every page of its request arrived. When the time budget is spent,
    ``FetchBudgetExceeded`` carries the gauges already complete; the caller lands them.
    """
    bad = [g for g in plan["gauge"] if not _USGS_SITE.match(str(g))]
    if bad:
        raise InputError("waterdata gauges", f"not USGS site numbers (8-15 digits): {bad[:5]}")
    starts = pd.to_datetime(plan["start"])
    if (starts.dt.date > end).any():
        raise InputError("waterdata dates", f"a window starts after its end {end}")
    clock = _Clock(settings.budget_s, sleep)
    http = session or requests.Session()
    fetch = DailyFetch(
        pd.DataFrame(columns=COLUMNS), pd.DataFrame(columns=["gauge", "start", "end"]), pd.DataFrame()
    )
    order = plan.assign(start=starts).sort_values(["start", "gauge"]).reset_index(drop=True)
    # Requests never mix starts more than GROUP_GAP apart: a new gauge's history is not asked for its
    # neighbours too. Within a group, gauges_per_request at a time.
    group = (order["start"].diff() > GROUP_GAP).cumsum().to_numpy()
    rank = order.groupby(group).cumcount().to_numpy() // settings.gauges_per_request
    bounds = np.flatnonzero(np.r_[True, (np.diff(group) != 0) | (np.diff(rank) != 0), True])
    parts: list[pd.DataFrame] = []
    windows: list[pd.DataFrame] = []
    for k, stop in zip(bounds[:-1], bounds[1:], strict=True):
        chunk = order.iloc[k:stop]
        gauges = chunk["gauge"].astype(str).tolist()
        start = chunk["start"].min().date()
        try:
            got = _fetch_chunk(http, settings, gauges, start, end, clock, fetch)
        except FetchBudgetExceeded as exc:
            fetch.rows, fetch.series = choose_series(
                pd.concat(parts, ignore_index=True) if parts else fetch.rows
            )
            fetch.windows = pd.concat(windows, ignore_index=True) if windows else fetch.windows
            raise FetchBudgetExceeded(
                f"{exc}; {len(fetch.windows)} of {len(order)} gauges fetched, not fetched: "
                f"{order['gauge'].iloc[k:].tolist()[:20]}",
                fetch,
            ) from exc
        parts.append(got)
        windows.append(
            pd.DataFrame({"gauge": gauges, "start": pd.Timestamp(start), "end": pd.Timestamp(end)})
        )
    rows = pd.concat(parts, ignore_index=True) if parts else fetch.rows
    fetch.rows, fetch.series = choose_series(rows)
    fetch.windows = pd.concat(windows, ignore_index=True) if windows else fetch.windows
    return fetch


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _fetch_chunk(
    http: requests.Session,
    settings: ClientSettings,
    gauges: list[str],
    start: date,
    end: date,
    clock: _Clock,
    fetch: DailyFetch,
) -> pd.DataFrame:
    """Every page of one request; the rows must add up to the first page's numberMatched."""
    url, params, body = daily_request(settings, gauges, start, end)
    pages: list[pd.DataFrame] = []
    matched: int | None = None
    next_url: str | None = url
    query: dict[str, str] | None = params
    seen: set[str] = set()
    while next_url:
        doc = _exchange(http, settings, next_url, query, body, clock, fetch)
        shown = (
            next_url
            if query is None
            else (requests.Request("GET", next_url, params=query).prepare().url or next_url)
        )
        fetch.urls.append(shown)
        rows, nxt, page_matched = parse_daily_page(doc, shown, gauges)
        matched = page_matched if matched is None else matched
        pages.append(rows)
        if nxt and (nxt in seen or len(seen) > 100000):
            raise InputError(shown, f"the next link {nxt!r} repeats: paging does not end")
        if nxt and rows.empty:
            raise InputError(shown, "an empty page with a next link")
        if nxt and _origin(nxt) != _origin(settings.base_url):  # the key must not leave the service
            raise InputError(shown, f"the next link {nxt!r} leaves the service {_origin(settings.base_url)}")
        seen.add(shown)
        next_url, query = nxt, None  # the next link carries the whole query
    total = sum(len(p) for p in pages)
    if matched is not None and total != matched:
        raise InputError(
            url, f"numberMatched was {matched}, the pages held {total} features (paging truncated)"
        )
    return pd.concat(pages, ignore_index=True) if pages else pd.DataFrame(columns=COLUMNS)


# ---------------------------------------------------------------- monitoring locations (new gauges)

SQ_MI_TO_KM2 = 2.589988110336  # one international square mile in km2
LOCATION_COLUMNS = ["gauge", "name", "lat", "lon", "drainage_area_km2", "contributing_area_km2"]


def fetch_monitoring_locations(
    gauges: Sequence[str],
    settings: ClientSettings,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """The ``monitoring-locations`` record of each gauge: name, point (WGS84 lon/lat) and drainage
    areas (square miles in the API, km2 here), LOCATION_COLUMNS; a gauge the API does not know is an
    InputError naming it (a typo in a new gauge number must not pass as a gauge without data)."""
    bad = [g for g in gauges if not _USGS_SITE.match(str(g))]
    if bad:
        raise InputError("waterdata gauges", f"not USGS site numbers (8-15 digits): {bad[:5]}")
    clock = _Clock(settings.budget_s, sleep)
    http = session or requests.Session()
    fetch = DailyFetch(pd.DataFrame(), pd.DataFrame(), pd.DataFrame())  # request counters only
    url = settings.base_url.rstrip("/") + "/collections/monitoring-locations/items"
    parts = []
    for k in range(0, len(gauges), settings.gauges_per_request):
        ids = [usgs_location_id(g) for g in gauges[k : k + settings.gauges_per_request]]
        body = json.dumps({"op": "in", "args": [{"property": "id"}, ids]})
        query: dict[str, str] | None = {"limit": str(settings.page_limit), "f": "json"}
        next_url: str | None = url
        while next_url:
            doc = _exchange(http, settings, next_url, query, body, clock, fetch)
            parts.append(_location_page(doc, next_url, ids))
            next_url = next(
                (
                    lk.get("href")
                    for lk in doc.get("links", []) or []
                    if isinstance(lk, dict) and lk.get("rel") == "next"
                ),
                None,
            )
            query = None
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LOCATION_COLUMNS)
    missing = sorted(set(gauges) - set(out["gauge"]))
    if missing:
        raise InputError(url, f"the API has no monitoring location for USGS gauges {missing[:20]}")
    return out.drop_duplicates("gauge").sort_values("gauge").reset_index(drop=True)


def _location_page(doc: dict[str, object], url: str, ids: list[str]) -> pd.DataFrame:
    """One page of monitoring-locations features -> LOCATION_COLUMNS (strict like the daily pages)."""
    if doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise InputError(url, f"not a GeoJSON FeatureCollection: {_shown(json.dumps(doc))}")
    feats = doc["features"]
    if not feats:
        return pd.DataFrame(columns=LOCATION_COLUMNS)
    props = pd.DataFrame.from_records([f.get("properties") or {} for f in feats])
    ident = pd.Series(
        [str(f.get("id") or p.get("id", "")) for f, p in zip(feats, props.to_dict("records"), strict=True)]
    )
    foreign = ~ident.isin(ids)
    if foreign.any():
        raise InputError(url, f"monitoring location {ident[foreign].iloc[0]!r} was not asked for")
    coords = [((f.get("geometry") or {}).get("coordinates") or [np.nan, np.nan]) for f in feats]
    lonlat = np.array([c[:2] if len(c) >= 2 else [np.nan, np.nan] for c in coords], dtype=np.float64)
    area = {
        c: pd.to_numeric(props[c], errors="coerce").to_numpy(dtype=np.float64) * SQ_MI_TO_KM2
        if c in props
        else np.full(len(props), np.nan)
        for c in ("drainage_area", "contributing_drainage_area")
    }
    return pd.DataFrame(
        {
            "gauge": ident.str.removeprefix("USGS-").to_numpy(),
            "name": props["monitoring_location_name"].fillna("").astype(str).to_numpy()
            if "monitoring_location_name" in props
            else "",
            "lat": lonlat[:, 1],
            "lon": lonlat[:, 0],
            "drainage_area_km2": area["drainage_area"],
            "contributing_area_km2": area["contributing_drainage_area"],
        }
    )
