"""The landed file of one Water Data API fetch (``usgs_daily_*.json``): values, windows, series.

Unlike an RDB file it says which days the API was asked for, per gauge (``windows``): a day held
here inside a window that the API no longer returns (or returns without a value) is withdrawn at
ingest. It keeps each day's approval status and qualifiers, and the daily-mean series chosen per
gauge with those dropped. Written atomically; the reader checks everything the ingest relies on and
names the file and the row of a problem.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import atomic_path
from synergy_dagster.sources.waterdata import COLUMNS, DailyFetch

FORMAT = "synergy_dagster/usgs-waterdata-daily"
VERSION = 1
SUFFIX = ".json"


def write_daily_file(
    fetch: DailyFetch, landing_dir: str | Path, service: str, now: datetime | None = None
) -> Path | None:
    """Land ``fetch`` as ``usgs_daily_<utc>_<first>_<last>.json``; None when no gauge was fetched."""
    if fetch.windows.empty:
        return None
    now = now or datetime.now(UTC)
    rows = fetch.rows
    values = rows["value"].to_numpy(dtype=np.float64)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "service": service,
        "fetched_at": now.isoformat(timespec="seconds"),
        "windows": {
            "gauge": fetch.windows["gauge"].astype(str).tolist(),
            "start": pd.to_datetime(fetch.windows["start"]).dt.strftime("%Y-%m-%d").tolist(),
            "end": pd.to_datetime(fetch.windows["end"]).dt.strftime("%Y-%m-%d").tolist(),
        },
        "series": {c: fetch.series[c].astype(str).tolist() for c in ("gauge", "time_series_id", "dropped")}
        if len(fetch.series)
        else {"gauge": [], "time_series_id": [], "dropped": []},
        "rows": {
            "gauge": rows["gauge"].astype(str).tolist(),
            "date": pd.to_datetime(rows["date"]).dt.strftime("%Y-%m-%d").tolist(),
            "value": [None if not np.isfinite(v) else float(v) for v in values.tolist()],
            **{c: rows[c].astype(str).tolist() for c in COLUMNS[3:]},
        },
    }
    first, last = (pd.to_datetime(fetch.windows[c]) for c in ("start", "end"))
    # The fetch time first: files sort (and are ingested, newest last) in the order they were fetched.
    name = f"usgs_daily_{now:%Y%m%dT%H%M%S%fZ}_{first.min():%Y%m%d}_{last.max():%Y%m%d}{SUFFIX}"
    target = Path(landing_dir) / name
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        read_daily_file(tmp)  # a file that would not read back never lands
    return target


def read_daily_file(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows: gauge, date, value (ft3/s, NaN = none), units, approval_status, qualifier,
    time_series_id, last_modified; windows: gauge, start, end) of a landed fetch file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON fetch file: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(path, f"not a Water Data fetch file (format is not {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise InputError(path, f"fetch file version {doc.get('version')!r}; this code reads {VERSION}")
    try:
        rows = pd.DataFrame(doc["rows"])
        windows = pd.DataFrame(doc["windows"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"'rows' and 'windows' must be tables of equal-length columns: {exc}") from exc
    for name, frame, cols in (("rows", rows, COLUMNS), ("windows", windows, ["gauge", "start", "end"])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise InputError(path, f"{name} lack columns {missing}")
    for name, frame, cols in (("rows", rows, ["date"]), ("windows", windows, ["start", "end"])):
        for c in cols:
            parsed = pd.to_datetime(frame[c], format="%Y-%m-%d", errors="coerce")
            if parsed.isna().any():
                k = int(np.argmax(parsed.isna().to_numpy()))
                raise InputError(path, f"{c} {frame[c].iloc[k]!r} is not a day", f"{name} row {k}")
            frame[c] = parsed
    value = pd.to_numeric(rows["value"], errors="coerce")
    bad = value.isna() & rows["value"].notna()
    if bad.any():
        k = int(np.argmax(bad.to_numpy()))
        raise InputError(path, f"value {rows['value'].iloc[k]!r} is not a number", f"rows row {k}")
    neg = value < 0
    if neg.any():
        k = int(np.argmax(neg.to_numpy()))
        raise InputError(path, f"negative discharge {value.iloc[k]:g} ft3/s", f"rows row {k}")
    rows["value"] = value.astype(np.float64)
    if rows.duplicated(["gauge", "date"]).any():
        k = int(np.argmax(rows.duplicated(["gauge", "date"]).to_numpy()))
        raise InputError(
            path, f"{rows['gauge'].iloc[k]} has {rows['date'].iloc[k]:%Y-%m-%d} twice", f"rows row {k}"
        )
    outside = ~rows["gauge"].astype(str).isin(windows["gauge"].astype(str))
    if outside.any():
        raise InputError(path, f"rows of gauge {rows['gauge'][outside].iloc[0]} without a window")
    win = windows.set_index("gauge")
    lo = rows["gauge"].map(win["start"])
    hi = rows["gauge"].map(win["end"])
    off = (rows["date"] < lo) | (rows["date"] > hi)
    if off.any():
        k = int(np.argmax(off.to_numpy()))
        raise InputError(
            path,
            f"{rows['date'].iloc[k]:%Y-%m-%d} is outside the window of {rows['gauge'].iloc[k]}",
            f"rows row {k}",
        )
    for c in COLUMNS[3:]:
        rows[c] = rows[c].fillna("").astype(str)
    rows["gauge"] = rows["gauge"].astype(str)
    windows["gauge"] = windows["gauge"].astype(str)
    rows.insert(3, "units", "cfs")
    return rows, windows
