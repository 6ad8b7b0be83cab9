"""Share of days with a valid target per site, and the site filter on both study periods.

Definition. A day of the period counts as *covered* when the ``revisit_days``-day window centred on
it (truncated at the period's ends) holds at least one finite target value. The share is covered
days / calendar days of the period; days of the period outside the data count as uncovered.

- Streamflow is observed daily: ``revisit_days=1`` makes the share the plain share of valid days.
- SMAP passes over a pixel only every 2-3 days and is NaN in between, so a daily share would never
  pass 90 %. ``revisit_days=3`` judges each day against the overpasses that could have seen it:
  a pixel observed on every overpass (at most 2 days apart) scores 1.0, a pixel with a month-long
  gap loses that month.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.domains import DOMAIN_RECORDS
from synergy_dagster.errors import InputError
from synergy_dagster.sources.sitedata import target_name


def _revisit(ds: xr.Dataset, revisit_days: int | None) -> int:
    if revisit_days is None:
        domain = ds.attrs.get("domain")
        if domain not in DOMAIN_RECORDS:
            raise InputError(
                str(ds.attrs.get("source", "dataset")),
                f"attrs['domain'] must be one of {tuple(DOMAIN_RECORDS)} to pick revisit_days",
            )
        return DOMAIN_RECORDS[domain].revisit_days
    if int(revisit_days) < 1:
        raise InputError("revisit_days", f"must be >= 1, got {revisit_days}")
    return int(revisit_days)


def _period_days(ds: xr.Dataset, period: slice) -> pd.DatetimeIndex:
    t = pd.DatetimeIndex(ds["time"].values)
    start = pd.Timestamp(period.start) if period.start is not None else t[0]
    stop = pd.Timestamp(period.stop) if period.stop is not None else t[-1]
    if stop < start:
        raise InputError("period", f"end {stop:%Y-%m-%d} is before start {start:%Y-%m-%d}")
    return pd.date_range(start.normalize(), stop.normalize(), freq="D")


def coverage(ds: xr.Dataset, period: slice, revisit_days: int | None = None) -> pd.Series:
    """Share of covered days in ``period`` (inclusive slice of dates) per site, indexed by site id.

    ``revisit_days`` defaults by ``ds.attrs['domain']``: 1 for streamflow, 3 for soil moisture."""
    r = _revisit(ds, revisit_days)
    days = _period_days(ds, period)
    target = ds[target_name(ds)]
    # reindex onto the full period so days missing from the data count as gaps
    valid = np.isfinite(target.reindex(time=days).transpose("site", "time").values)
    if r > 1:
        # centred rolling max: a day is covered if any day within r//2 of it holds a value
        covered = (
            xr.DataArray(valid.astype(np.float32), dims=("site", "time"))
            .rolling(time=r, center=True, min_periods=1)
            .max()
            .values
            > 0
        )
    else:
        covered = valid
    share = covered.sum(axis=1) / float(len(days))
    return pd.Series(share, index=pd.Index(ds["site"].values.astype(str), name="site_id"), name="coverage")


def coverage_filter(
    ds: xr.Dataset,
    train: slice,
    test: slice,
    min_share: float = 0.9,
    revisit_days: int | None = None,
) -> tuple[list[str], pd.DataFrame]:
    """Keep sites whose coverage is at least ``min_share`` in both the training and the test period.

    Returns the kept site ids (dataset order) and a table site_id, cov_train, cov_test, kept."""
    if not 0.0 <= min_share <= 1.0:
        raise InputError("min_share", f"must be in [0, 1], got {min_share}")
    cov_train = coverage(ds, train, revisit_days)
    cov_test = coverage(ds, test, revisit_days)
    table = pd.DataFrame(
        {
            "site_id": cov_train.index.to_numpy(),
            "cov_train": cov_train.to_numpy(),
            "cov_test": cov_test.to_numpy(),
        }
    )
    table["kept"] = (table["cov_train"] >= min_share) & (table["cov_test"] >= min_share)
    return table.loc[table["kept"], "site_id"].tolist(), table
