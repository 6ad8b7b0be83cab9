"""The study's USGS masks on the streamflow target: approved days only for scoring, no estimated
or qualified days for training (``domains.streamflow.usgs``, :class:`~synergy_dagster.sources.usgs_spec.UsgsSpec`).

Each mask is applied in one place: :func:`training_view` where the training data are loaded for
fitting, :func:`evaluation_view` where the test data are loaded for scoring. Only the target is
masked, and only inside the given period, so inputs (and the other period) are untouched.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from synergy_dagster.config import Period
from synergy_dagster.sources.sitedata import target_name
from synergy_dagster.sources.usgs_flags import ESTIMATED, NOT_APPROVED, QUALIFIED, flags_of
from synergy_dagster.sources.usgs_spec import UsgsSpec


def mask_target(ds: xr.Dataset, period: Period, bits: int) -> tuple[xr.Dataset, int]:
    """``ds`` with the target set missing inside ``period`` where any of ``bits`` is flagged, and
    the number of finite values so removed. Without flags (soil moisture, no landed data) ``ds``."""
    if not bits:
        return ds, 0
    flags = flags_of(ds)
    time = ds["time"].values
    inside = (time >= np.datetime64(period.start)) & (time <= np.datetime64(period.end))
    drop = ((flags & bits) > 0) & inside[None, :]
    tgt = target_name(ds)
    y = ds[tgt].transpose("site", "time").values
    hit = drop & np.isfinite(y)
    if not hit.any():
        return ds, 0
    out = ds.copy()
    out[tgt] = (("site", "time"), np.where(hit, np.nan, y).astype(y.dtype), dict(ds[tgt].attrs))
    return out, int(hit.sum())


def training_view(ds: xr.Dataset, usgs: UsgsSpec, train: Period) -> tuple[xr.Dataset, int]:
    """The training data as the study's ``usgs.train`` rule allows (estimated/qualified days out)."""
    bits = ESTIMATED | QUALIFIED if usgs.train == "exclude_estimated" else 0
    return mask_target(ds, train, bits)


def evaluation_view(ds: xr.Dataset, usgs: UsgsSpec, test: Period) -> tuple[xr.Dataset, int]:
    """The test data as the study's ``usgs.evaluate`` rule allows (approved days only)."""
    bits = NOT_APPROVED if usgs.evaluate == "approved" else 0
    return mask_target(ds, test, bits)
