"""The daily USGS feed's state and plan: each gauge's newest day, the windows to fetch, staleness.

Each tracked gauge is fetched from its own newest day held minus the revision window (so values
USGS revises, approves or withdraws within that window are re-read every run, and a gauge that
missed days catches up); a gauge with nothing held is fetched from ``history_start``. A gauge
whose newest day is older than the allowed age is stale: the feed says so, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import requests
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.layout import Layout
from synergy_dagster.sources.landing import DOMAIN
from synergy_dagster.sources.nwis_client import usgs_site_number
from synergy_dagster.sources.sitedata import target_name
from synergy_dagster.sources.waterdata import ClientSettings, DailyFetch, FetchBudgetExceeded, fetch_daily
from synergy_dagster.sources.waterdata_file import write_daily_file


def _ledger_newest(layout: Layout, skip: set[str]) -> pd.Series:
    """USGS number -> newest held day in the ledger of the sites not in ``skip``: the new gauges
    whose values live in the ledger only until their site pack lands."""
    path = layout.landed_updates(DOMAIN)
    if not path.exists():
        return pd.Series(dtype="datetime64[ns]")
    led = pd.read_parquet(path)
    led = led[
        ~led["site_id"].astype(str).isin(skip) & np.isfinite(led["streamflow_mm"].to_numpy(dtype=np.float64))
    ]
    if "withdrawn" in led.columns:
        led = led[~led["withdrawn"].fillna(False).astype(bool)]
    newest = led.groupby(led["site_id"].astype(str))["date"].max()
    numbers = newest.index.map(usgs_site_number)
    keep = ~pd.isna(numbers)
    return pd.Series(newest.to_numpy()[keep], index=numbers[keep], dtype="datetime64[ns]")


def newest_day_per_gauge(layout: Layout) -> pd.Series:
    """USGS number -> newest day with a finite value in the streamflow source (NaT: none).

    The source holds every landed value (the ingest merges them), so this is the feed's state;
    gauges of the source without a USGS number are left out. New gauges not in the source yet
    (no site pack) take their newest day from the ledger of landed values.
    """
    path = layout.source_nc(DOMAIN)
    if not path.exists():
        return _ledger_newest(layout, set()).sort_index()
    with xr.open_dataset(path) as ds:
        q = ds[target_name(ds)].transpose("site", "time").values
        time = pd.DatetimeIndex(ds["time"].values)
        sites = [str(s) for s in ds["site"].values]
    finite = np.isfinite(q)
    last = q.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    newest = np.where(finite.any(axis=1), time.values[last], np.datetime64("NaT"))
    numbers = [usgs_site_number(s) for s in sites]
    keep = [i for i, n in enumerate(numbers) if n]
    held = pd.Series(newest[keep], index=[numbers[i] for i in keep], dtype="datetime64[ns]")
    extra = _ledger_newest(layout, set(sites))
    extra = extra[~extra.index.isin(held.index)]
    return pd.concat([held, extra]).sort_index() if len(extra) else held.sort_index()


def fetch_windows(
    gauges: list[str], newest: pd.Series, end: date, revision_days: int, history_start: date
) -> pd.DataFrame:
    """gauge, start: from each gauge's newest day minus ``revision_days`` (``history_start`` when
    nothing is held, and never before it), never after ``end``."""
    if revision_days < 0:
        raise InputError("revision_days", f"must be >= 0, got {revision_days}")
    if history_start > end:
        raise InputError("history_start", f"{history_start} is after the end of the fetch {end}")
    held = newest.reindex(gauges)
    start = (held - pd.Timedelta(days=revision_days)).fillna(pd.Timestamp(history_start))
    start = start.clip(lower=pd.Timestamp(history_start), upper=pd.Timestamp(end))
    return pd.DataFrame({"gauge": gauges, "start": start.to_numpy()})


def stale_gauges(newest: pd.Series, gauges: list[str], today: date, max_age_days: float) -> pd.DataFrame:
    """gauge, newest, age_days of the tracked gauges whose newest day is older than ``max_age_days``
    (a gauge with nothing held is stale too), oldest first."""
    held = newest.reindex(gauges)
    age = (pd.Timestamp(today) - held).dt.days.astype("float64")
    stale = held.isna() | (age > max_age_days)
    out = pd.DataFrame(
        {"gauge": held.index[stale], "newest": held[stale].to_numpy(), "age_days": age[stale].to_numpy()}
    )
    return out.sort_values("age_days", ascending=False, na_position="first").reset_index(drop=True)


@dataclass
class FeedRun:
    """One run of the feed: the landed file (None: nothing fetched), the fetch, and why it stopped early."""

    path: Path | None
    fetch: DailyFetch | None
    windows: pd.DataFrame
    stopped: str = ""  # the budget message when the time budget ran out; landed what was complete


def run_feed(
    layout: Layout,
    gauges: list[str],
    end: date,
    settings: ClientSettings,
    landing_dir: Path,
    *,
    revision_days: int,
    history_start: date,
    start: date | None = None,
    session: requests.Session | None = None,
) -> FeedRun:
    """Plan the windows from the per-gauge state, fetch them and land one fetch file.

    When the time budget runs out, the gauges fetched completely still land and ``stopped`` says
    which were not (the caller fails the run after landing them). ``start`` overrides the
    per-gauge windows (a backfill from that day).
    """
    if start is not None:  # an explicit backfill: every gauge from ``start``
        windows = pd.DataFrame({"gauge": gauges, "start": pd.Timestamp(start)})
    else:
        windows = fetch_windows(gauges, newest_day_per_gauge(layout), end, revision_days, history_start)
    stopped = ""
    try:
        fetch = fetch_daily(windows, end, settings, session=session)
    except FetchBudgetExceeded as exc:
        if exc.partial is None:
            raise
        fetch, stopped = exc.partial, str(exc)
    path = write_daily_file(fetch, landing_dir, settings.base_url)
    return FeedRun(path, fetch, windows, stopped)
