"""A test period that ends at the newest covered day (``domains.streamflow.usgs.test_end: latest``).

The end is resolved from the data the models read, the tagged sites of the streamflow domain
(``sites/streamflow.nc``): the newest day on which some site has a finite target and every dynamic
input. Streamflow that lands beyond the forcing extends the file's time axis with missing inputs,
so it does not count until the forcing covers it too. The written ``periods.test.end`` is a floor:
the period never shrinks below what the study file says.

The study resource applies :func:`with_latest_test_end` to the resolved study, so every asset of a
run reads one test period; the tagged sites only change in an ingest run (landing), never in the
middle of a training or evaluation run. The result is cached by the file's modification time.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.config import DomainPeriods, Period
from synergy_dagster.layout import Layout
from synergy_dagster.sources.sitedata import target_name

if TYPE_CHECKING:
    from synergy_dagster.study_file import DomainSpec, StudyFile

DOMAIN = "streamflow"


def covered_until(ds: xr.Dataset, dynamic: list[str]) -> pd.Timestamp | None:
    """The newest day on which some site has the target and every ``dynamic`` input; None if none."""
    ok = np.isfinite(ds[target_name(ds)].transpose("site", "time").values)
    for name in dynamic:
        if name in ds:
            ok &= np.isfinite(ds[name].transpose("site", "time").values)
    days = np.flatnonzero(ok.any(axis=0))
    return pd.Timestamp(ds["time"].values[days[-1]]) if len(days) else None


@functools.lru_cache(maxsize=8)
def _covered(path: str, mtime_ns: int, dynamic: tuple[str, ...]) -> pd.Timestamp | None:
    with xr.open_dataset(path) as ds:
        return covered_until(ds, list(dynamic))


def _extended(periods: DomainPeriods, end: pd.Timestamp) -> DomainPeriods:
    test = Period(start=periods.test.start, end=f"{end:%Y-%m-%d}")
    return DomainPeriods(train=periods.train, test=test)


def landing_periods(spec: DomainSpec, landed_days: pd.Series) -> DomainPeriods:
    """The periods landed days are judged against (which partitions retrain, whether to re-evaluate):
    with ``latest``, a day after the current test end is a test day, since the next run's test
    period reaches it as soon as the forcing covers it too."""
    periods = spec.periods
    if spec.usgs.test_end != "latest" or not len(landed_days):
        return periods
    newest = pd.Timestamp(pd.to_datetime(landed_days).max())
    return _extended(periods, newest) if newest > pd.Timestamp(periods.test.end) else periods


def with_latest_test_end(study: StudyFile) -> StudyFile:
    """``study`` with the streamflow test period ending at the newest covered day, when the study
    asks for ``latest`` and the tagged sites exist (before the first prepare: as written)."""
    spec = study.domains.get(DOMAIN)
    if spec is None or spec.usgs.test_end != "latest":
        return study
    path = Layout(Path(study.data_dir).resolve()).sites_nc(DOMAIN)
    if not path.exists():
        return study
    newest = _covered(str(path), path.stat().st_mtime_ns, tuple(spec.dynamic))
    test = spec.periods.test
    if newest is None or newest <= pd.Timestamp(test.end):
        return study
    domains = {**study.domains, DOMAIN: spec.model_copy(update={"periods": _extended(spec.periods, newest)})}
    return study.model_copy(update={"domains": domains})
