"""Held-out validation blocks spread over a training period (``training.validation.split: blocks``).

A one-year training period whose validation days are its last two months is never trained on late
winter and is validated on late winter alone. The ``blocks`` split holds out the same number of
days as evenly spaced blocks over the whole period instead: every season is both trained and
validated. Held-out days stay in the training arrays as inputs (they feed the LSTM's state of the
windows that cross them) but their targets are masked, so no held-out day is ever a training
target; the validation arrays are the same period with every other target masked, so early
stopping scores the held-out days only, each after the days (and ``warmup``) before it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synergy_dagster.errors import ConfigError
from synergy_dagster.models.normalization import Arrays


def block_layout(n_days: int, total: int, block_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths (day indices into a period of ``n_days``) of the held-out blocks.

    ``total`` days are cut into ``total // block_days`` blocks whose lengths differ by at most one
    day (each ``block_days`` or a day longer, so the held-out days are exactly ``total``); the
    period is cut into as many equal segments and each block is centred in its own segment, so
    the blocks are evenly spaced and never touch the period's first or last day.
    """
    if block_days < 1:
        raise ConfigError("validation.block_days", f"must be an integer >= 1, got {block_days!r}")
    if total < block_days:
        raise ConfigError(
            "validation.block_days", f"{block_days} is longer than the {total} validation_days it cuts"
        )
    if n_days < 2 * total:
        raise ConfigError(
            "validation_days",
            f"{total} held-out days would leave less than half of the {n_days}-day training period",
        )
    n = total // block_days
    lengths = np.full(n, total // n, dtype=np.int64)
    lengths[: total % n] += 1
    segment = n_days / n
    starts = np.floor(np.arange(n) * segment + (segment - lengths) / 2).astype(np.int64)
    return starts, lengths


def held_out_mask(n_days: int, total: int, block_days: int) -> np.ndarray:
    """Boolean [n_days], True on the held-out days of :func:`block_layout`."""
    starts, lengths = block_layout(n_days, total, block_days)
    day = np.arange(n_days)[None, :]
    return ((day >= starts[:, None]) & (day < (starts + lengths)[:, None])).any(axis=0)


def mask_targets(arrays: Arrays, keep: np.ndarray) -> Arrays:
    """A copy of ``arrays`` whose targets are NaN on every day where ``keep`` [n_days] is False
    (inputs untouched: a masked day still feeds the LSTM's state, it is never a target)."""
    if keep.shape != (arrays.n_days,):
        raise ValueError(f"a mask of {keep.shape} days for arrays of {arrays.n_days}")
    y = np.where(keep[None, :, None], arrays.y, np.float32(np.nan)).astype(arrays.y.dtype)
    return dataclasses.replace(arrays, y=y)
