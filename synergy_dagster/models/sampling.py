"""Minibatch sampling as in the paper's code: random (site, window) pairs and the epoch length rule.

An "epoch" is not one pass over the data: it is the number of iterations after which each
(site, day) cell has been drawn with probability about 0.99,
``ceil(log(0.01) / log(1 - batch * rho / (n_sites * n_days)))``, batch capped at ``n_sites``.

Sites are drawn uniformly WITH replacement, window starts uniformly over every valid start
``[0, n_days - rho]``. Windows whose targets are all missing are not re-drawn: they simply
contribute nothing to the masked loss (the loss pools valid cells of the whole batch).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from synergy_dagster.errors import ConfigError

ArrayLike = np.ndarray | torch.Tensor


def effective_batch(batch: int, n_sites: int) -> int:
    """Batch size actually used: the paper caps it at the number of sites."""
    return max(1, min(int(batch), int(n_sites)))


def iterations_per_epoch(batch: int, rho: int, n_sites: int, n_days: int) -> int:
    """Iterations so that each (site, day) is drawn with probability ~0.99 (see module docstring).

    ``batch*rho >= n_sites*n_days`` (one batch covers the data) gives 1.
    """
    if batch <= 0 or rho <= 0 or n_sites <= 0 or n_days <= 0:
        raise ConfigError(
            "training",
            f"batch, rho, n_sites, n_days must be positive; got {batch}, {rho}, {n_sites}, {n_days}",
        )
    b = effective_batch(batch, n_sites)
    frac = b * rho / (n_sites * n_days)
    if frac >= 1.0:
        return 1
    return max(1, math.ceil(math.log(0.01) / math.log(1.0 - frac)))


def check_window(rho: int, n_days: int) -> None:
    """Raise :class:`ConfigError` when windows of ``rho`` days do not fit in ``n_days``."""
    if rho <= 0:
        raise ConfigError("rho", f"window length must be positive, got {rho}")
    if rho > n_days:
        raise ConfigError(
            "rho", f"window length {rho} days is longer than the training period ({n_days} days)"
        )


def sample_indices(
    rng: np.random.Generator, n_sites: int, n_days: int, batch: int, rho: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``batch`` (capped at ``n_sites``) site indices with replacement and window starts.

    Returns int64 arrays ``site_idx`` in [0, n_sites) and ``start_idx`` in [0, n_days - rho].
    """
    check_window(rho, n_days)
    b = effective_batch(batch, n_sites)
    site_idx = rng.integers(0, n_sites, size=b, dtype=np.int64)
    start_idx = rng.integers(0, n_days - rho + 1, size=b, dtype=np.int64)
    return site_idx, start_idx


def gather_windows(
    x: ArrayLike, c: ArrayLike, y: ArrayLike, site_idx: ArrayLike, start_idx: ArrayLike, rho: int
) -> tuple[ArrayLike, ArrayLike]:
    """Cut windows ``x[s, t:t+rho]`` with statics ``c[s]`` repeated along time, and ``y[s, t:t+rho]``.

    ``x`` [site, time, n_dyn], ``c`` [site, n_static], ``y`` [site, time, n_out]; numpy arrays or torch
    tensors (all of one kind; indices are converted). One advanced-indexing gather, no loop per sample.
    Returns ``xb`` [batch, rho, n_dyn + n_static] and ``yb`` [batch, rho, n_out].
    """
    if isinstance(x, torch.Tensor):
        dev = x.device
        s = torch.as_tensor(site_idx, dtype=torch.long, device=dev)
        t0 = torch.as_tensor(start_idx, dtype=torch.long, device=dev)
        tt = t0[:, None] + torch.arange(rho, device=dev)[None, :]  # [batch, rho]
        ss = s[:, None]
        xd = x[ss, tt]  # [batch, rho, n_dyn]
        cs = c[s][:, None, :].expand(-1, rho, -1)
        return torch.cat([xd, cs], dim=2), y[ss, tt]
    s = np.asarray(site_idx, dtype=np.int64)
    tt = np.asarray(start_idx, dtype=np.int64)[:, None] + np.arange(rho)[None, :]
    ss = s[:, None]
    xd = x[ss, tt]
    cs = np.broadcast_to(c[s][:, None, :], (s.shape[0], rho, c.shape[1]))
    return np.concatenate([xd, cs], axis=2), y[ss, tt]


def full_inputs(x: ArrayLike, c: ArrayLike) -> ArrayLike:
    """Whole-record network input [site, time, n_dyn + n_static] (statics repeated), for prediction."""
    if isinstance(x, torch.Tensor):
        return torch.cat([x, c[:, None, :].expand(-1, x.shape[1], -1)], dim=2)
    cs = np.broadcast_to(c[:, None, :], (x.shape[0], x.shape[1], c.shape[1]))
    return np.concatenate([x, cs], axis=2)
