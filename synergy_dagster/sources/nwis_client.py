"""The legacy USGS NWIS daily-values client, and the landing folder streamflow files are dropped into.

The default feed is the Water Data OGC API (:mod:`synergy_dagster.sources.waterdata`, landing
``usgs_daily_*.json`` files); the ``dv`` client here is deprecated (WaterServices is decommissioned
in 2027) and kept behind the ``usgs_service: nwis_rdb`` setting until then. It asks the NWIS ``dv`` service for daily-mean discharge (``parameterCd=00060``,
``statCd=00003``) in RDB form and writes one file per fetch into the landing folder, atomically
(the temp file is a dot-file ending ``.tmp``, which the landing scan ignores). The landing helpers
list, validate and parse dropped files: Water Data fetches (``*.json``), NWIS RDB (``*.rdb``), CAMELS-US
(``<gauge>_streamflow_qc.txt``, cfs) and Caravan CSV (``<gauge_id>.csv`` with ``date`` and
``streamflow`` in mm/d). Names that try to leave the folder are rejected, never followed.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import requests

from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import atomic_path
from synergy_dagster.sources.camels_us import cfs_to_mm_per_day, read_streamflow_file
from synergy_dagster.sources.caravan import check_daily_dates, check_numeric_frame
from synergy_dagster.sources.nwis import read_nwis_rdb
from synergy_dagster.sources.waterdata_file import SUFFIX as WATERDATA_SUFFIX
from synergy_dagster.sources.waterdata_file import read_daily_file

DEFAULT_BASE_URL = "https://waterservices.usgs.gov/nwis/dv/"
# NWIS accepts long site lists, but URLs over a few kB are refused by proxies: chunk them.
SITES_PER_REQUEST = 100
_USGS_SITE = re.compile(r"^\d{8,15}$")
_NO_DATA = re.compile(r"no sites found|no sites/data found|no data", re.I)
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")
KINDS = ("waterdata_json", "nwis_rdb", "camels_us", "caravan_csv")
# Per-day annotations a landed file may carry (Water Data fetches do); kept through to the ledger.
ANNOTATIONS = ("approval_status", "qualifier", "time_series_id")


def usgs_site_number(gauge_id: str) -> str | None:
    """USGS site number of a gauge id: ``camels_01022500`` -> ``01022500``; None if not a USGS gauge."""
    s = str(gauge_id).strip()
    tail = s.split("_", 1)[1] if "_" in s else s
    return tail if _USGS_SITE.match(tail) else None


def build_dv_url(base_url: str, sites: Sequence[str], start: date, end: date) -> str:
    """The daily-values request URL (RDB, daily mean discharge) for ``sites`` over [start, end]."""
    query = {
        "format": "rdb",
        "sites": ",".join(sites),
        "startDT": f"{start:%Y-%m-%d}",
        "endDT": f"{end:%Y-%m-%d}",
        "parameterCd": "00060",
        "statCd": "00003",
        "siteStatus": "all",
    }
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}{urlencode(query)}"


def check_rdb_response(text: str, url: str) -> bool:
    """True if the body holds RDB data; False if NWIS says there are no data for the request.

    Raises ``InputError`` (naming the URL and line) for an error reported in ``#`` comments
    (``# //Response-Status: ERROR``, ``# ERROR: ...``) or a body that is not RDB at all (e.g. an
    HTML error page served with status 200).
    """
    lines = text.splitlines()
    has_header = any(line.startswith("agency_cd") for line in lines)
    no_data = any(_NO_DATA.search(line) for line in lines)
    for i, line in enumerate(lines, 1):
        if not line.startswith("#"):
            continue
        body = line.lstrip("#").strip().lstrip("/").strip()
        low = body.lower()
        if low.startswith("error") or low.startswith("response-status: error"):
            if no_data and not has_header:
                return False
            detail = [m.lstrip("#/ ").strip() for m in lines if "response-message" in m.lower()]
            raise InputError(
                url, f"NWIS reported an error: {body}" + (f" ({detail[0]})" if detail else ""), f"line {i}"
            )
    if not has_header:
        if no_data:
            return False
        first = next((line for line in lines if line.strip()), "")
        raise InputError(url, f"response is not NWIS RDB (no agency_cd header); starts with {first[:80]!r}")
    return True


def fetch_daily_values(
    sites: Sequence[str],
    start: date,
    end: date,
    *,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 60.0,
    retries: int = 2,
    session: requests.Session | None = None,
) -> str:
    """RDB text of daily-mean discharge for ``sites`` over [start, end] ('' when NWIS has none).

    Sites are USGS numbers (see :func:`usgs_site_number`). Server errors (5xx) and connection
    failures are retried with back-off; anything else raises ``InputError`` naming the URL.
    """
    bad = [s for s in sites if not _USGS_SITE.match(str(s))]
    if bad:
        raise InputError("nwis sites", f"not USGS site numbers (8-15 digits): {bad[:5]}")
    if end < start:
        raise InputError("nwis dates", f"endDT {end} is before startDT {start}")
    http = session or requests.Session()
    bodies = []
    for k in range(0, len(sites), SITES_PER_REQUEST):
        url = build_dv_url(base_url, list(sites[k : k + SITES_PER_REQUEST]), start, end)
        body = _get(http, url, timeout, retries)
        if body is not None and check_rdb_response(body, url):
            bodies.append(body if body.endswith("\n") else body + "\n")
    return "".join(bodies)


def _get(http: requests.Session, url: str, timeout: float, retries: int) -> str | None:
    """GET with retries on 5xx/connection errors; None for 404 (NWIS: no data for the request)."""
    for attempt in range(retries + 1):
        try:
            resp = http.get(url, timeout=timeout, headers={"Accept-Encoding": "gzip"})
        except requests.RequestException as exc:
            if attempt == retries:
                raise InputError(url, f"cannot reach NWIS: {exc}") from exc
            time.sleep(0.5 * 2**attempt)
            continue
        if resp.status_code == 404:
            return None
        if resp.status_code >= 500 and attempt < retries:
            time.sleep(0.5 * 2**attempt)
            continue
        if resp.status_code != 200:
            detail = " ".join(resp.text.split())[:200]
            raise InputError(url, f"HTTP {resp.status_code} {resp.reason}: {detail}")
        return resp.text
    return None  # unreachable: the last attempt returns or raises


def fetch_to_landing(
    sites: Sequence[str],
    start: date,
    end: date,
    landing_dir: str | Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 60.0,
    retries: int = 2,
    now: datetime | None = None,
) -> Path | None:
    """Fetch [start, end] for ``sites`` into one new ``nwis_dv_<start>_<end>_<utc>.rdb`` in ``landing_dir``.

    The body is parsed before it is renamed into place, so a broken response never lands.
    Returns the file, or None when NWIS has no data for the request. Deprecated: WaterServices is
    decommissioned in 2027; the Water Data API feed (``usgs_service: waterdata``) replaces it.
    """
    warnings.warn(
        "the NWIS WaterServices dv feed (usgs_service: nwis_rdb) is deprecated: USGS decommissions "
        "WaterServices in 2027; use the Water Data API feed (usgs_service: waterdata)",
        DeprecationWarning,
        stacklevel=2,
    )
    text = fetch_daily_values(sites, start, end, base_url=base_url, timeout=timeout, retries=retries)
    if not text.strip():
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    target = Path(landing_dir) / f"nwis_dv_{start:%Y%m%d}_{end:%Y%m%d}_{stamp}.rdb"
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
        read_nwis_rdb(tmp)  # raises InputError (file + line) before anything lands
    return target


# ---------------------------------------------------------------- the landing folder


@dataclass(frozen=True)
class LandedFile:
    name: str
    path: Path  # resolved, inside the landing folder
    kind: str
    size: int
    mtime: float


def landed_kind(name: str) -> str | None:
    """The format a landed file name announces, or None for files the landing ignores."""
    low = name.lower()
    if low.startswith(".") or low.endswith(IGNORED_SUFFIXES):
        return None
    if low.endswith(WATERDATA_SUFFIX):
        return "waterdata_json"
    if low.endswith(".rdb"):
        return "nwis_rdb"
    if low.endswith("_streamflow_qc.txt"):
        return "camels_us"
    if low.endswith(".csv"):
        return "caravan_csv"
    return None


def safe_landing_file(landing_dir: str | Path, name: str) -> Path:
    """The resolved path of ``name`` inside ``landing_dir``; ``InputError`` if it would leave it.

    Rejects absolute names, names with a path separator or ``..``, and symlinks whose target is
    outside the folder (the link is never followed for reading).
    """
    root = Path(landing_dir).resolve()
    if (
        not name
        or os.path.isabs(name)
        or "/" in name
        or "\\" in name
        or name in (".", "..")
        or ".." in Path(name).parts
        or "\x00" in name
    ):
        raise InputError(root, f"rejected file name {name!r}: only plain names inside the landing folder")
    candidate = root / name
    real = Path(os.path.realpath(candidate))
    if real.parent != root and root not in real.parents:
        raise InputError(root / name, f"rejected: it resolves to {real}, outside the landing folder {root}")
    if not real.is_file():
        raise InputError(root / name, "not a regular file")
    return real


def scan_landing(
    landing_dir: str | Path, settle_seconds: float = 10.0, now: float | None = None
) -> tuple[list[LandedFile], list[tuple[str, str]]]:
    """Files in ``landing_dir`` that are complete (unchanged for ``settle_seconds``), and the
    rejected ones as (name, reason). Hidden, ``.part``/``.tmp`` and unknown files are skipped."""
    root = Path(landing_dir)
    if not root.is_dir():
        return [], []
    now = time.time() if now is None else now
    ok: list[LandedFile] = []
    rejected: list[tuple[str, str]] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        kind = landed_kind(entry.name)
        if kind is None:
            continue
        try:
            path = safe_landing_file(root, entry.name)
        except InputError as exc:
            rejected.append((entry.name, str(exc)))
            continue
        st = path.stat()
        if now - st.st_mtime < settle_seconds:
            continue  # still being written (or just renamed): wait for the next tick
        ok.append(LandedFile(entry.name, path, kind, st.st_size, st.st_mtime))
    return ok, rejected


def read_landed_file(path: str | Path, kind: str) -> pd.DataFrame:
    """A landed file as columns gauge, date, value, units ('cfs' or 'mm/d'); NaN where missing.

    Water Data fetches add the ANNOTATIONS columns (approval status, qualifiers, series id).
    """
    path = Path(path)
    if kind == "waterdata_json":
        return read_daily_file(path)[0].drop(columns="last_modified")
    if kind == "nwis_rdb":
        df = read_nwis_rdb(path)
        return pd.DataFrame(
            {
                "gauge": df["site_no"].astype(str),
                "date": df["date"],
                "value": df["value"].to_numpy(dtype=np.float64),
                "units": "cfs",
            }
        )
    if kind == "camels_us":
        df = read_streamflow_file(path)
        gauge = path.name[: -len("_streamflow_qc.txt")]
        return pd.DataFrame(
            {"gauge": gauge, "date": df.index, "value": df["q_cfs"].to_numpy(), "units": "cfs"}
        )
    if kind == "caravan_csv":
        try:
            df = pd.read_csv(path, engine="c")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(path, f"cannot parse as CSV: {exc}") from exc
        for col in ("date", "streamflow"):
            if col not in df.columns:
                raise InputError(path, f"no {col!r} column; columns are {list(df.columns)}", "line 1")
        index = check_daily_dates(df["date"], path)
        q = check_numeric_frame(df[["streamflow"]], path)["streamflow"].to_numpy(dtype=np.float64)
        return pd.DataFrame({"gauge": path.stem, "date": index, "value": q, "units": "mm/d"})
    raise InputError(path, f"unknown landed file kind {kind!r}; expected one of {KINDS}")


def match_site_ids(gauges: Iterable[str], site_ids: Iterable[str]) -> dict[str, str]:
    """Map file gauge ids to dataset site ids: exact, or by the USGS number / the part after the
    first ``_`` (``01022500`` <-> ``camels_01022500``). Unknown gauges are left out."""
    ids = [str(s) for s in site_ids]
    exact = set(ids)
    by_tail = {s.split("_", 1)[1]: s for s in ids if "_" in s}
    out = {}
    for g in map(str, gauges):
        tail = g.split("_", 1)[1] if "_" in g else g
        hit = g if g in exact else by_tail.get(g, by_tail.get(tail))
        if hit is not None:
            out[g] = hit
    return out


def to_streamflow_mm(
    frame: pd.DataFrame, site_map: Mapping[str, str], area_km2: Mapping[str, float]
) -> pd.DataFrame:
    """Landed values (gauge, date, value, units) -> site_id, date, streamflow_mm for known sites.

    cfs is converted by basin area (km2, keyed by dataset site id); a missing or non-positive area
    is an ``InputError`` naming the site. ANNOTATIONS columns are carried along when present.
    """
    known = frame[frame["gauge"].astype(str).isin(list(site_map))]
    site = known["gauge"].astype(str).map(site_map)
    value = known["value"].to_numpy(dtype=np.float64).copy()
    cfs = (known["units"] == "cfs").to_numpy()
    if cfs.any():
        area = site[cfs].map(lambda s: area_km2.get(s, np.nan)).to_numpy(dtype=np.float64)
        bad = ~np.isfinite(area) | (area <= 0)
        if bad.any():
            raise InputError(
                "basin area", f"no positive area (km2) for site {site[cfs].iloc[int(np.argmax(bad))]}", "area"
            )
        value[cfs] = cfs_to_mm_per_day(value[cfs], area)
    out = pd.DataFrame(
        {"site_id": site.to_numpy(), "date": pd.to_datetime(known["date"]).to_numpy(), "streamflow_mm": value}
    )
    for col in ANNOTATIONS:
        if col in known.columns:
            out[col] = known[col].fillna("").astype(str).to_numpy()
    return out
