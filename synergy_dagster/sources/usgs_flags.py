"""Per-day USGS approval status and qualifiers as a flag variable of the streamflow source.

The ledger of landed streamflow keeps, per (site, day), the ``approval_status`` and
``qualifier`` the Water Data API gave. :func:`with_flags` turns the whole ledger into one
variable ``usgs_flags`` (site, time) beside the target, with bits in the CF ``flag_masks`` style:

- ``LANDED`` (1): the day's value came from a landed file (the feed), not the reader's archive;
- ``NOT_APPROVED`` (2): that value is not Approved (Provisional, or a landed file with no status);
- ``ESTIMATED`` (4): a qualifier says estimated (``E`` or ``ESTIMATED``);
- ``QUALIFIED`` (8): any other qualifier (``ICE``, ``EQUIP``...).

0 means a day from the reader's archive (CAMELS, Caravan), built from published, approved
records. The variable has the role ``flag``: never an input, only read by the masks
(:mod:`synergy_dagster.sources.usgs_masks`).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.sources.sitedata import target_name

FLAG_VAR = "usgs_flags"
LANDED, NOT_APPROVED, ESTIMATED, QUALIFIED = 1, 2, 4, 8
MEANINGS = {LANDED: "landed", NOT_APPROVED: "not_approved", ESTIMATED: "estimated", QUALIFIED: "qualified"}
APPROVED_WORDS = ("APPROVED", "A")  # the API's word; 'A' is the legacy RDB code
_ESTIMATED_TOKEN = r"(?:^|,)\s*(?:E|ESTIMATED)\s*(?=,|$)"


def row_flags(ledger: pd.DataFrame) -> np.ndarray:
    """The flag bits (int) of each ledger row, from its ``approval_status`` and ``qualifier``."""
    n = len(ledger)
    status = ledger.get("approval_status", pd.Series([""] * n, index=ledger.index))
    qual = ledger.get("qualifier", pd.Series([""] * n, index=ledger.index))
    status = status.fillna("").astype(str).str.strip().str.upper()
    qual = qual.fillna("").astype(str).str.strip().str.upper()
    estimated = qual.str.contains(_ESTIMATED_TOKEN, regex=True).to_numpy()
    others = qual.str.replace(_ESTIMATED_TOKEN, "", regex=True).str.strip(" ,") != ""
    flags = np.full(n, LANDED, dtype=np.int64)
    flags |= np.where(status.isin(APPROVED_WORDS).to_numpy(), 0, NOT_APPROVED)
    flags |= np.where(estimated, ESTIMATED, 0)
    flags |= np.where(others.to_numpy(), QUALIFIED, 0)
    return flags


def with_flags(ds: xr.Dataset, ledger: pd.DataFrame | None) -> xr.Dataset:
    """``ds`` with ``usgs_flags`` rebuilt from the whole ``ledger`` (its site ids are ``ds``'s).

    Rebuilt, not patched: the ledger is the record of every landed day, so a rebuilt source gets
    the same flags. Ledger rows outside ``ds``'s sites or days are ignored.
    """
    sites = pd.Index([str(s) for s in ds["site"].values])
    time = pd.DatetimeIndex(ds["time"].values)
    flags = np.zeros((len(sites), len(time)), dtype=np.float32)
    if ledger is not None and len(ledger):
        si = sites.get_indexer(ledger["site_id"].astype(str))
        ti = time.get_indexer(pd.DatetimeIndex(pd.to_datetime(ledger["date"])).normalize())
        ok = (si >= 0) & (ti >= 0)
        flags[si[ok], ti[ok]] = row_flags(ledger)[ok]
    out = ds.copy()
    out[FLAG_VAR] = (
        ("site", "time"),
        flags,
        {
            "role": "flag",
            "units": "1",
            "flag_masks": json.dumps(list(MEANINGS)),
            "flag_meanings": " ".join(MEANINGS.values()),
            "long_name": "USGS approval status and qualifiers of the target's value (bit flags)",
        },
    )
    return out


def flags_of(ds: xr.Dataset) -> np.ndarray:
    """The (site, time) int flags of ``ds``; zeros (archive days) where it has no flag variable."""
    if FLAG_VAR not in ds:
        return np.zeros((ds.sizes["site"], ds.sizes["time"]), dtype=np.int16)
    raw = ds[FLAG_VAR].transpose("site", "time").values
    return np.nan_to_num(raw, nan=0.0).astype(np.int16)  # NaN: days added after the flags were set


def flag_counts(ds: xr.Dataset) -> dict[str, int]:
    """Days per flag over the target's finite values (what the UI shows): one count per meaning."""
    flags = flags_of(ds)
    finite = np.isfinite(ds[target_name(ds)].transpose("site", "time").values)
    return {name: int(((flags & bit) > 0)[finite].sum()) for bit, name in MEANINGS.items()}
