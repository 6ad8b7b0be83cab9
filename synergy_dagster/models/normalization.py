"""Input/target normalisation fitted on training data only, and the dense arrays the LSTM consumes.

Normalisation per variable is ``(f(x) - center) / scale`` where ``f`` is ``log(max(x, 0) + 1)``
for the chosen log variables and the identity otherwise:

- ``zscore``: center = mean, scale = standard deviation (soil moisture in the paper);
- ``p10p90``: center = 10th percentile, scale = p90 - p10 (streamflow in the paper).

The target's transform is part of a domain's training recipe (``Recipe.target_transform``):
``log1p`` (the paper's, for streamflow) or ``none``; :func:`log_variables` applies it. The metric is
NSE on flows in physical units, and a log target trains the network on relative errors: the
recipes are compared in docs/results.md.

Statistics come from the training period of the dataset handed to :meth:`Normalizer.fit` (never the
test period: one older code path of the authors leaked test data this way). A constant variable
gets scale 1 so it normalises to 0 instead of inf. A :class:`Normalizer` is stored with every model
as JSON (:meth:`Normalizer.to_dict`), never pickled.

:func:`prepare_arrays` turns a site dataset into :class:`Arrays` (x, c, y as float32): missing
inputs become 0 after normalisation (the mean / p10 of the training data); missing targets stay NaN
and are masked in the loss.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.config import TARGET_TRANSFORMS
from synergy_dagster.domains import domain_record
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.sources.sitedata import dynamic_names, static_names, target_name

METHODS = ("zscore", "p10p90")
# Name fragments of variables that get log(x + 1) in the paper's streamflow scripts (precipitation and
# runoff; drainage area and contact time too). Opt-in via :func:`log_candidates`.
_LOG_FRAGMENTS = ("prcp", "precip", "apcp", "rain", "runoff", "streamflow", "area", "contact")
_FORMAT_VERSION = 1


def default_method(domain: str) -> str:
    """The paper's normalisation for a domain: ``zscore`` for soil moisture, ``p10p90`` for streamflow."""
    return domain_record(domain).normalization


def log_candidates(ds: xr.Dataset) -> list[str]:
    """Variables the paper log-transforms for streamflow: the target and precipitation-, runoff-,
    area- and contact-time-like inputs (matched by name, case-insensitive). Empty for soil moisture."""
    if ds.attrs.get("domain") != "streamflow":
        return []
    names = [target_name(ds), *dynamic_names(ds), *static_names(ds)]
    out = [target_name(ds)]
    for n in names[1:]:
        low = n.lower()
        if low == "pr" or low.startswith("pr_") or any(f in low for f in _LOG_FRAGMENTS):
            out.append(n)
    return out


def log_variables(ds: xr.Dataset, log_inputs: bool, target_transform: str = "log1p") -> list[str]:
    """The variables to fit with ``log(x + 1)``: the paper's streamflow candidates
    (:func:`log_candidates`) when ``log_inputs`` (the study's ``log_transform``; off, nothing is
    logged), the target only when ``target_transform`` is ``log1p``."""
    if target_transform not in TARGET_TRANSFORMS:
        raise ConfigError(
            "recipe.target_transform", f"must be one of {TARGET_TRANSFORMS}, got {target_transform!r}"
        )
    names = log_candidates(ds) if log_inputs else []
    if target_transform == "none":
        names = [n for n in names if n != target_name(ds)]
    return names


def target_transform_of(normalizer: Normalizer) -> str:
    """``log1p`` when ``normalizer`` logs its target, else ``none``."""
    return "log1p" if normalizer.target in normalizer.log_vars else "none"


def _forward(x: np.ndarray, log: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if log:
        # Clip at 0: precipitation/runoff cannot be negative; tiny negative values from gap-filling or
        # unit conversion would otherwise give log of <= 0.
        return np.log1p(np.clip(x, 0.0, None))
    return x


def _slice_str(period: slice | None) -> list[str | None] | None:
    if period is None:
        return None
    return [None if v is None else str(pd.Timestamp(v).date()) for v in (period.start, period.stop)]


@dataclass
class Normalizer:
    """Per-variable center/scale, fitted on training data. Serialise with :meth:`to_dict`."""

    method: str
    target: str
    dynamic: tuple[str, ...]
    static: tuple[str, ...]
    center: dict[str, float]
    scale: dict[str, float]
    log_vars: tuple[str, ...] = ()
    period: list[str | None] | None = None  # training period the statistics came from (provenance)
    n_sites: int = 0
    domain: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        ds: xr.Dataset,
        period: slice | None,
        method: str = "zscore",
        log_vars: Sequence[str] = (),
        sites: Sequence[str] | None = None,
    ) -> Normalizer:
        """Fit on ``ds`` restricted to ``period`` (a time slice; None = whole record) and ``sites``.

        Dynamic and target statistics pool all (site, day) cells of the period, NaN-aware; static
        statistics pool the sites. An input with no valid value gets center 0 / scale 1 (with a
        warning); a target with none raises :class:`InputError`.
        """
        if method not in METHODS:
            raise ConfigError("normalization.method", f"unknown method {method!r}; expected one of {METHODS}")
        tgt, dyn, sta = target_name(ds), dynamic_names(ds), static_names(ds)
        all_vars = [tgt, *dyn, *sta]
        unknown = [v for v in log_vars if v not in all_vars]
        if unknown:
            raise ConfigError("normalization.log_vars", f"not variables of the dataset: {unknown}")
        sub = _select(ds, period, sites, where="normalizer fit")
        center: dict[str, float] = {}
        scale: dict[str, float] = {}
        for name in all_vars:
            vals = _forward(sub[name].values, name in log_vars).ravel()
            vals = vals[np.isfinite(vals)]
            if vals.size == 0:
                if name == tgt:
                    raise InputError(
                        ds.attrs.get("source", "dataset"),
                        f"target has no valid value in the training period {_slice_str(period)}",
                        name,
                    )
                warnings.warn(
                    f"normalizer: input {name!r} has no valid value in the training data; "
                    "it will be all zeros",
                    stacklevel=2,
                )
                center[name], scale[name] = 0.0, 1.0
                continue
            if method == "zscore":
                c, s = float(vals.mean()), float(vals.std())
            else:
                p10, p90 = np.percentile(vals, [10.0, 90.0])
                c, s = float(p10), float(p90 - p10)
                if not s > 1e-12:  # e.g. mostly-zero precipitation: fall back to the spread
                    s = float(vals.std())
            center[name] = c
            scale[name] = s if s > 1e-12 and math.isfinite(s) else 1.0
        return cls(
            method=method,
            target=tgt,
            dynamic=tuple(dyn),
            static=tuple(sta),
            center=center,
            scale=scale,
            log_vars=tuple(log_vars),
            period=_slice_str(period),
            n_sites=int(sub.sizes["site"]),
            domain=ds.attrs.get("domain"),
        )

    # -- transforms -------------------------------------------------------------------------------
    def _check(self, name: str) -> None:
        if name not in self.center:
            raise InputError("normalizer", f"no statistics for variable {name!r}", name)

    def transform(self, name: str, array: np.ndarray | float) -> np.ndarray:
        """Normalise ``array`` of variable ``name`` (NaN stays NaN). Returns float64 (float32 kept)."""
        self._check(name)
        a = np.asarray(array)
        out = (_forward(a, name in self.log_vars) - self.center[name]) / self.scale[name]
        return out.astype(np.float32) if a.dtype == np.float32 else out

    def inverse(self, name: str, array: np.ndarray | float) -> np.ndarray:
        """Back to physical units (undoing the log transform for log variables)."""
        self._check(name)
        a = np.asarray(array)
        out = np.asarray(a, dtype=np.float64) * self.scale[name] + self.center[name]
        if name in self.log_vars:
            out = np.expm1(out)
        return out.astype(np.float32) if a.dtype == np.float32 else out

    def inverse_target(self, array: np.ndarray | float) -> np.ndarray:
        """Model output -> target in physical units."""
        return self.inverse(self.target, array)

    # -- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (plain str/float/list)."""
        return {
            "format_version": _FORMAT_VERSION,
            "method": self.method,
            "target": self.target,
            "dynamic": list(self.dynamic),
            "static": list(self.static),
            "log_vars": list(self.log_vars),
            "center": {k: float(v) for k, v in self.center.items()},
            "scale": {k: float(v) for k, v in self.scale.items()},
            "period": self.period,
            "n_sites": int(self.n_sites),
            "domain": self.domain,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "normalizer") -> Normalizer:
        """Inverse of :meth:`to_dict`; malformed input raises :class:`InputError` naming the field."""
        if not isinstance(d, Mapping):
            raise InputError(source, f"expected a JSON object, got {type(d).__name__}")
        for key in ("method", "target", "dynamic", "static", "center", "scale"):
            if key not in d:
                raise InputError(source, "missing field", key)
        if d["method"] not in METHODS:
            raise InputError(source, f"unknown method {d['method']!r}", "method")
        names = [d["target"], *d["dynamic"], *d["static"]]
        try:
            center = {str(k): float(v) for k, v in d["center"].items()}
            scale = {str(k): float(v) for k, v in d["scale"].items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(source, f"center/scale must map names to numbers ({exc})", "center") from exc
        for n in names:
            if n not in center or n not in scale:
                raise InputError(source, f"no center/scale for variable {n!r}", "center")
            if not (math.isfinite(center[n]) and math.isfinite(scale[n]) and scale[n] != 0.0):
                raise InputError(source, f"non-finite or zero statistics for {n!r}", "scale")
        return cls(
            method=str(d["method"]),
            target=str(d["target"]),
            dynamic=tuple(map(str, d["dynamic"])),
            static=tuple(map(str, d["static"])),
            center=center,
            scale=scale,
            log_vars=tuple(map(str, d.get("log_vars", ()))),
            period=d.get("period"),
            n_sites=int(d.get("n_sites", 0)),
            domain=d.get("domain"),
            extra=dict(d.get("extra") or {}),
        )


def _select(ds: xr.Dataset, period: slice | None, sites: Sequence[str] | None, where: str) -> xr.Dataset:
    """Subset to ``sites`` (in the given order) and ``period``; InputError when nothing is left."""
    src = ds.attrs.get("source", "dataset")
    if sites is not None:
        sites = [str(s) for s in sites]
        have = pd.Index(ds["site"].values.astype(str))
        missing = [s for s in sites if s not in have]
        if missing:
            raise InputError(src, f"{where}: sites not in the dataset: {missing[:5]}", "site")
        if not sites:
            raise InputError(src, f"{where}: empty site list", "site")
        ds = ds.sel(site=sites)
    if period is not None:
        ds = ds.sel(time=slice(period.start, period.stop))
        if ds.sizes["time"] == 0:
            raise InputError(src, f"{where}: no days in period {_slice_str(period)}", "time")
    return ds


@dataclass
class Arrays:
    """Dense normalised tensors of one (sites, period) selection.

    ``x`` [site, time, n_dyn] and ``c`` [site, n_static] have no NaN (missing -> 0); ``y``
    [site, time, 1] keeps NaN for missing targets. All float32.
    """

    x: np.ndarray
    c: np.ndarray
    y: np.ndarray
    site_ids: np.ndarray
    time: pd.DatetimeIndex
    dynamic_names: tuple[str, ...]
    static_names: tuple[str, ...]
    target_name: str

    @property
    def n_sites(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_days(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_in(self) -> int:
        """Network input width: forcings plus static attributes repeated at every step."""
        return int(self.x.shape[2] + self.c.shape[1])

    @property
    def n_valid_targets(self) -> int:
        return int(np.isfinite(self.y).sum())


def prepare_arrays(
    ds: xr.Dataset, normalizer: Normalizer, period: slice | None, sites: Sequence[str] | None = None
) -> Arrays:
    """Normalise ``ds`` over ``period`` and ``sites`` (None = all) with ``normalizer``.

    Uses the normalizer's variable lists and order, so train and test arrays line up; a variable the
    normalizer expects but ``ds`` lacks raises :class:`InputError`. Non-finite values count as missing.
    """
    src = ds.attrs.get("source", "dataset")
    for name in (normalizer.target, *normalizer.dynamic, *normalizer.static):
        if name not in ds.data_vars:
            raise InputError(src, "variable expected by the normalizer is missing from the dataset", name)
    sub = _select(ds, period, sites, where="prepare_arrays")
    n_site, n_time = sub.sizes["site"], sub.sizes["time"]

    x = np.zeros((n_site, n_time, len(normalizer.dynamic)), dtype=np.float32)
    for k, name in enumerate(normalizer.dynamic):
        x[:, :, k] = normalizer.transform(name, sub[name].transpose("site", "time").values)
    c = np.zeros((n_site, len(normalizer.static)), dtype=np.float32)
    for k, name in enumerate(normalizer.static):
        c[:, k] = normalizer.transform(name, sub[name].values)
    # Missing inputs -> 0 after normalisation, i.e. the training mean (zscore) or p10 (p10p90).
    np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.nan_to_num(c, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    y = normalizer.transform(normalizer.target, sub[normalizer.target].transpose("site", "time").values)
    y = np.where(np.isfinite(y), y, np.nan).astype(np.float32)[:, :, None]
    return Arrays(
        x=x,
        c=c,
        y=y,
        site_ids=np.asarray(sub["site"].values).astype(str),
        time=pd.DatetimeIndex(sub["time"].values),
        dynamic_names=tuple(normalizer.dynamic),
        static_names=tuple(normalizer.static),
        target_name=normalizer.target,
    )
