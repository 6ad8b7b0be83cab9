"""Per-site goodness-of-fit metrics, vectorised over sites.

Every metric takes ``obs`` and ``sim`` shaped ``[site, time]`` (a 1-D ``[time]`` array is one site),
NaN (or inf) meaning missing. Per site only the days where both are finite count (pairwise-valid).
Each returns a float64 array ``[site]``; a site gets NaN where it has fewer than ``min_valid`` valid
pairs or where the metric's denominator is zero (constant observations, or constant simulations for
the correlation-based metrics). Means and standard deviations are population moments (ddof = 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from synergy_dagster.errors import InputError

__all__ = [
    "METRICS",
    "MetricSpec",
    "PairStats",
    "all_metrics",
    "apply_mask",
    "bias",
    "common_mask",
    "corr",
    "kge",
    "nse",
    "pair_stats",
    "rmse",
    "ubrmse",
]


def _as_2d(x: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        return a[None, :]
    if a.ndim != 2:
        raise InputError(name, f"expected an array [site, time] or [time], got shape {a.shape}")
    return a


@dataclass(frozen=True)
class PairStats:
    """Masked moments of one (obs, sim) pair per site; every metric is a formula of these.

    ``var_*`` and ``cov`` are population moments over the pairwise-valid days of each site.
    """

    n: np.ndarray  # valid pairs per site (int)
    mean_obs: np.ndarray
    mean_sim: np.ndarray
    var_obs: np.ndarray
    var_sim: np.ndarray
    cov: np.ndarray
    mse: np.ndarray
    ok: np.ndarray  # n >= min_valid


def pair_stats(obs: np.ndarray, sim: np.ndarray, min_valid: int = 2) -> PairStats:
    """Compute the masked moments of each site in one pass over the arrays (no per-site loop)."""
    o = _as_2d(obs, "obs")
    s = _as_2d(sim, "sim")
    if o.shape != s.shape:
        raise InputError("sim", f"shape {s.shape} does not match obs shape {o.shape}")
    if min_valid < 1:
        raise InputError("min_valid", f"must be >= 1, got {min_valid}")
    valid = np.isfinite(o) & np.isfinite(s)
    n = valid.sum(axis=1)
    o0 = np.where(valid, o, 0.0)
    s0 = np.where(valid, s, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        nf = n.astype(np.float64)
        mean_o = o0.sum(axis=1) / nf
        mean_s = s0.sum(axis=1) / nf
        # Two-pass (centred) moments: far more accurate than E[x^2] - E[x]^2 for soil moisture.
        do = np.where(valid, o - mean_o[:, None], 0.0)
        ds = np.where(valid, s - mean_s[:, None], 0.0)
        var_o = (do * do).sum(axis=1) / nf
        var_s = (ds * ds).sum(axis=1) / nf
        cov = (do * ds).sum(axis=1) / nf
        err = s0 - o0
        mse = (err * err).sum(axis=1) / nf
    return PairStats(n, mean_o, mean_s, var_o, var_s, cov, mse, n >= min_valid)


def _finish(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return np.where(keep, values, np.nan).astype(np.float64)


def _rmse(p: PairStats) -> np.ndarray:
    return _finish(np.sqrt(p.mse), p.ok)


def _ubrmse(p: PairStats) -> np.ndarray:
    # mean(((s - ms) - (o - mo))^2) = var_s + var_o - 2 cov; clip rounding noise below zero.
    with np.errstate(invalid="ignore"):
        v = np.maximum(p.var_sim + p.var_obs - 2.0 * p.cov, 0.0)
    return _finish(np.sqrt(v), p.ok)


def _bias(p: PairStats) -> np.ndarray:
    return _finish(p.mean_sim - p.mean_obs, p.ok)


def _corr(p: PairStats) -> np.ndarray:
    keep = p.ok & (p.var_obs > 0) & (p.var_sim > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = p.cov / np.sqrt(p.var_obs * p.var_sim)
    return _finish(np.clip(r, -1.0, 1.0), keep)


def _nse(p: PairStats) -> np.ndarray:
    keep = p.ok & (p.var_obs > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = 1.0 - p.mse / p.var_obs  # the 1/n factors of both sums cancel
    return _finish(v, keep)


def _kge(p: PairStats) -> np.ndarray:
    keep = p.ok & (p.var_obs > 0) & (p.var_sim > 0) & (p.mean_obs != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = p.cov / np.sqrt(p.var_obs * p.var_sim)
        alpha = np.sqrt(p.var_sim / p.var_obs)
        beta = p.mean_sim / p.mean_obs
        v = 1.0 - np.sqrt((r - 1.0) ** 2 + (alpha - 1.0) ** 2 + (beta - 1.0) ** 2)
    return _finish(v, keep)


def rmse(obs: np.ndarray, sim: np.ndarray, min_valid: int = 2) -> np.ndarray:
    """Root mean squared error: ``sqrt(mean((sim - obs)^2))``."""
    return _rmse(pair_stats(obs, sim, min_valid))


def ubrmse(obs: np.ndarray, sim: np.ndarray, min_valid: int = 2) -> np.ndarray:
    """Unbiased RMSE: ``sqrt(mean(((sim - mean(sim)) - (obs - mean(obs)))^2))``."""
    return _ubrmse(pair_stats(obs, sim, min_valid))


def bias(obs: np.ndarray, sim: np.ndarray, min_valid: int = 2) -> np.ndarray:
    """Mean error: ``mean(sim - obs)`` (positive = the model overestimates)."""
    return _bias(pair_stats(obs, sim, min_valid))


def corr(obs: np.ndarray, sim: np.ndarray, min_valid: int = 2) -> np.ndarray:
    """Pearson correlation: ``cov(sim, obs) / (std(sim) * std(obs))``; NaN if either is constant."""
    return _corr(pair_stats(obs, sim, min_valid))


def nse(obs: np.ndarray, sim: np.ndarray, min_valid: int = 2) -> np.ndarray:
    """Nash-Sutcliffe efficiency: ``1 - sum((sim - obs)^2) / sum((obs - mean(obs))^2)``."""
    return _nse(pair_stats(obs, sim, min_valid))


def kge(obs: np.ndarray, sim: np.ndarray, min_valid: int = 2) -> np.ndarray:
    """Kling-Gupta efficiency (Gupta et al. 2009).

    ``1 - sqrt((r - 1)^2 + (alpha - 1)^2 + (beta - 1)^2)`` with ``r`` the Pearson correlation,
    ``alpha = std(sim) / std(obs)`` and ``beta = mean(sim) / mean(obs)``. NaN where ``mean(obs) = 0``.
    """
    return _kge(pair_stats(obs, sim, min_valid))


@dataclass(frozen=True)
class MetricSpec:
    """A metric and which direction is better.

    ``absolute``: compare ``|value|`` when ranking models (bias: closer to zero is better).
    """

    name: str
    func: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
    from_stats: Callable[[PairStats], np.ndarray]
    higher_is_better: bool
    absolute: bool = False

    def better_values(self, values: np.ndarray) -> np.ndarray:
        """The values on which "better" is judged (``|bias|`` for bias, the values otherwise)."""
        v = np.asarray(values, dtype=np.float64)
        return np.abs(v) if self.absolute else v


METRICS: dict[str, MetricSpec] = {
    "rmse": MetricSpec("rmse", rmse, _rmse, higher_is_better=False),
    "ubrmse": MetricSpec("ubrmse", ubrmse, _ubrmse, higher_is_better=False),
    "bias": MetricSpec("bias", bias, _bias, higher_is_better=False, absolute=True),
    "corr": MetricSpec("corr", corr, _corr, higher_is_better=True),
    "nse": MetricSpec("nse", nse, _nse, higher_is_better=True),
    "kge": MetricSpec("kge", kge, _kge, higher_is_better=True),
}


def all_metrics(
    obs: np.ndarray, sim: np.ndarray, min_valid: int = 2, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRICS` (or only ``names``) from one pass of masked moments."""
    names = list(METRICS) if names is None else list(names)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise InputError("metrics", f"unknown metric(s) {unknown}; expected some of {list(METRICS)}")
    p = pair_stats(obs, sim, min_valid)
    out: dict[str, np.ndarray] = {}
    for n in names:
        out[n] = METRICS[n].from_stats(p)
    return out


def common_mask(obs: np.ndarray, sims: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean ``[site, time]``: True where ``obs`` and every simulation in ``sims`` are finite.

    Applying it (:func:`apply_mask`) to every scenario before scoring makes them share the same
    sites and days, so their metrics differ only by the models.
    """
    o = _as_2d(obs, "obs")
    mask = np.isfinite(o)
    for i, s in enumerate(sims):
        a = _as_2d(s, f"sims[{i}]")
        if a.shape != o.shape:
            raise InputError(f"sims[{i}]", f"shape {a.shape} does not match obs shape {o.shape}")
        mask &= np.isfinite(a)
    return mask


def apply_mask(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` as float64 ``[site, time]`` with NaN where ``mask`` is False."""
    a = _as_2d(x, "x")
    if a.shape != mask.shape:
        raise InputError("mask", f"shape {mask.shape} does not match array shape {a.shape}")
    return np.where(mask, a, np.nan)
