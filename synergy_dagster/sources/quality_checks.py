"""The checks a hydrologist makes beyond per-value ranges, on one domain's data as the study reads it.

Each check takes the selected data (the :mod:`~synergy_dagster.sources.sitedata` contract: target,
dynamic inputs and statics over site x time) and its thresholds, and returns its findings, one row
per value or site (:data:`~synergy_dagster.sources.plausibility.FINDING_COLUMNS`); what happens to
them is the study's policy (:mod:`synergy_dagster.sources.quality`). Every check is vectorised over
sites and days (numpy/pandas); docs/quality.md has the timings.

- :func:`temperature_order`: a day's minimum temperature above its maximum (implausible);
- :func:`impossible_attributes`: areas, elevations, fractions no basin can have (implausible);
- :func:`missing_inputs`: a dynamic input missing on nearly every day of a period (unusable);
- :func:`water_balance`: runoff over the record against precipitation and potential evaporation;
- :func:`unit_slips`: a site's input orders of magnitude off the study's other sites;
- :func:`flatlines`: the same non-zero value day after day (a stuck sensor, a filled gap);
- :func:`duplicate_series`: two sites with the same target series (a copied file).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.sources.plausibility import FINDING_COLUMNS, canonical_units, variable_kind
from synergy_dagster.sources.quality_spec import QualityThresholds
from synergy_dagster.sources.sitedata import dynamic_names, static_names, target_name

# (name, first day, last day) of the periods a study uses (train, test).
Periods = Sequence[tuple[str, str, str]]


def no_findings() -> pd.DataFrame:
    """An empty findings table with the :data:`FINDING_COLUMNS`."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})


def _frame(rule: str, source: str, **cols: object) -> pd.DataFrame:
    out = pd.DataFrame({"rule": rule, "file": source, **cols})
    for c in FINDING_COLUMNS:
        if c not in out.columns:
            out[c] = pd.NaT if c == "date" else np.nan
    return out[list(FINDING_COLUMNS)]


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else no_findings()


def _sites(ds: xr.Dataset) -> np.ndarray:
    return ds["site"].values.astype(str).astype(object)


def _time(ds: xr.Dataset) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ds["time"].values)


# --------------------------------------------------------------------------- implausible values

_MIN = re.compile(r"min")


def _temperature_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """(minimum, maximum) temperature inputs named alike: ``tmin``/``tmax``,
    ``temperature_2m_min``/``temperature_2m_max``, ``Tmin(C)``/``Tmax(C)``."""
    by_lower = {n.lower(): n for n in names}
    pairs = []
    for n in names:
        low = n.lower()
        if variable_kind(n) != "air_temperature" or "min" not in low:
            continue
        partner = by_lower.get(_MIN.sub("max", low))
        if partner is not None:
            pairs.append((n, partner))
    return pairs


def temperature_order(ds: xr.Dataset, tolerance: float, source: str) -> pd.DataFrame:
    """Days whose minimum temperature exceeds the maximum by more than ``tolerance``: both values
    are recorded (either may be the wrong one), where both are given."""
    sites, time = _sites(ds), _time(ds)
    parts = []
    for lo_name, hi_name in _temperature_pairs(dynamic_names(ds)):
        lo, hi = ds[lo_name].values, ds[hi_name].values
        with np.errstate(invalid="ignore"):
            bad = lo > hi + tolerance  # NaN on either side compares False
        if not bad.any():
            continue
        i, t = np.nonzero(bad)
        detail = [f"{lo_name} {a:g} above {hi_name} {b:g}" for a, b in zip(lo[bad], hi[bad], strict=True)]
        for name, values in ((lo_name, lo), (hi_name, hi)):
            parts.append(
                _frame(
                    "tmin_above_tmax",
                    source,
                    site=sites[i],
                    variable=name,
                    date=time[t],
                    value=values[bad].astype(np.float64),
                    detail=detail,
                )  # fmt: skip
            )
    return _concat(parts)


def _attribute_bounds(name: str, th: QualityThresholds) -> tuple[float, float, str] | None:
    """The possible [lo, hi] of a static attribute from its name (None: no rule applies)."""
    if name in th.attribute_bounds:
        lo, hi = th.attribute_bounds[name]
        return lo, hi, "the study's attribute_bounds"
    low = name.lower()
    if re.search(r"frac|fraction|_pc_", low) and not low.startswith("dor_pc"):
        return 0.0, 100.0 * (1.0 + th.fraction_excess), "a fraction or percentage"
    if re.search(r"(^|_)area($|_)|drain_sqkm", low):
        return 0.0, th.max_area_km2, "a basin area in km2 (above 0)"
    if re.search(r"elev|(^|_)ele_", low):
        lo, hi = th.elevation_m
        return lo, hi, "an elevation in m"
    return None


def impossible_attributes(ds: xr.Dataset, th: QualityThresholds, source: str) -> pd.DataFrame:
    """Static attributes outside what their kind allows (by name; see :func:`_attribute_bounds`).
    One-hot indicators of a class attribute are not checked (0/1 by construction)."""
    sites = _sites(ds)
    parts = []
    for name in static_names(ds):
        if "categorical_of" in ds[name].attrs:
            continue
        rule = _attribute_bounds(name, th)
        if rule is None:
            continue
        lo, hi, what = rule
        v = ds[name].values.astype(np.float64)
        with np.errstate(invalid="ignore"):
            # an area must be above 0; other bounds are inclusive
            bad = ((v <= lo) if what.startswith("a basin area") else (v < lo)) | (v > hi)
        if bad.any():
            parts.append(
                _frame(
                    "attribute_impossible",
                    source,
                    site=sites[bad],
                    variable=name,
                    date=pd.NaT,
                    value=v[bad],
                    detail=f"outside [{lo:g}, {hi:g}] for {what}",
                )  # fmt: skip
            )
    return _concat(parts)


# --------------------------------------------------------------------------- unusable sites


def missing_inputs(ds: xr.Dataset, periods: Periods, max_share: float, source: str) -> pd.DataFrame:
    """Sites whose dynamic input is missing on more than ``max_share`` of the days of a period
    (one row per site, input and period; the value is the share missing)."""
    sites, time = _sites(ds), _time(ds)
    parts = []
    for pname, start, end in periods:
        span = (time >= pd.Timestamp(start)) & (time <= pd.Timestamp(end))
        n_days = int(span.sum())
        if n_days == 0:
            continue
        for name in dynamic_names(ds):
            share = 1.0 - np.isfinite(ds[name].values[:, span]).sum(axis=1) / n_days
            bad = share > max_share
            if bad.any():
                parts.append(
                    _frame(
                        "inputs_missing",
                        source,
                        site=sites[bad],
                        variable=name,
                        date=pd.Timestamp(start),
                        value=share[bad],
                        detail=f"missing on more than {max_share:.0%} of the {n_days} days of the {pname} "
                        f"period {start}..{end}",
                    )  # fmt: skip
                )
    return _concat(parts)


# --------------------------------------------------------------------------- suspicious data


def _first_of_kind(ds: xr.Dataset, kind: str) -> str | None:
    """The first dynamic input of ``kind`` in mm/d (a daily depth, comparable with runoff)."""
    for name in dynamic_names(ds):
        var = ds[name]
        same_kind = variable_kind(name, str(var.attrs.get("standard_name", ""))) == kind
        if same_kind and canonical_units(str(var.attrs.get("units", ""))) == "mm/d":
            return name
    return None


def water_balance(ds: xr.Dataset, th: QualityThresholds, source: str) -> pd.DataFrame:
    """Over the days where runoff, precipitation (and potential evaporation) are all given: mean
    runoff above ``max_runoff_ratio`` x mean precipitation, or precipitation minus runoff (the
    actual evaporation of the record) above (1 + ``max_evaporation_excess``) x potential evaporation.
    Only for a streamflow target in mm/d with a precipitation input in mm/d (else no finding)."""
    target = target_name(ds)
    if ds.attrs.get("domain") != "streamflow" or canonical_units(ds[target].attrs.get("units", "")) != "mm/d":
        return no_findings()
    p_name = _first_of_kind(ds, "precipitation")
    if p_name is None:
        return no_findings()
    e_name = _first_of_kind(ds, "potential_evaporation")
    q, p = ds[target].values.astype(np.float64), ds[p_name].values.astype(np.float64)
    pet = ds[e_name].values.astype(np.float64) if e_name else np.zeros_like(q)
    both = np.isfinite(q) & np.isfinite(p) & np.isfinite(pet)
    n = both.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        qm, pm, em = (np.where(both, a, 0.0).sum(axis=1) / n for a in (q, p, pet))
        ratio = qm / pm
        aet_share = (pm - qm) / em
    sites = _sites(ds)
    parts = []
    wet = (n > 0) & (ratio > th.max_runoff_ratio)
    if wet.any():
        parts.append(
            _frame(
                "water_balance",
                source,
                site=sites[wet],
                variable=target,
                value=ratio[wet],
                detail=[
                    f"mean runoff {a:.3g} mm/d is {r:.3g} x mean {p_name} {b:.3g} mm/d over {k} days "
                    f"(more than {th.max_runoff_ratio:g} x)"
                    for a, b, r, k in zip(qm[wet], pm[wet], ratio[wet], n[wet], strict=True)
                ],
            )  # fmt: skip
        )
    if e_name is not None:
        hot = (n > 0) & (em > 0) & (aet_share > 1.0 + th.max_evaporation_excess) & ~wet
        if hot.any():
            parts.append(
                _frame(
                    "water_balance",
                    source,
                    site=sites[hot],
                    variable=target,
                    value=aet_share[hot],
                    detail=[
                        f"precipitation minus runoff {b - a:.3g} mm/d is {s:.3g} x mean {e_name} "
                        f"{e:.3g} mm/d (evaporation above its energy limit by more than "
                        f"{th.max_evaporation_excess:.0%})"
                        for a, b, e, s in zip(qm[hot], pm[hot], em[hot], aet_share[hot], strict=True)
                    ],
                )  # fmt: skip
            )
    return _concat(parts)


# Kinds whose long-term site means stay within a decade or so across a continent, on a ratio scale.
# Left out: the target (runoff spans three decades; the water balance covers it), snow (zero in the
# south), temperature in degC and wind components (not a ratio scale), unknown kinds.
_RATIO_KINDS = (
    "precipitation", "potential_evaporation", "evaporation", "radiation", "specific_humidity",
    "relative_humidity", "vapour_pressure", "surface_pressure", "day_length", "wind_speed",
)  # fmt: skip


def _ratio_scale(var: xr.DataArray, name: str) -> bool:
    kind = variable_kind(name, str(var.attrs.get("standard_name", "")))
    units = canonical_units(str(var.attrs.get("units", "")))
    return kind in _RATIO_KINDS or (kind == "air_temperature" and units == "K")


def unit_slips(ds: xr.Dataset, th: QualityThresholds, source: str) -> pd.DataFrame:
    """Sites whose long-term mean of a dynamic input on a ratio scale (precipitation, evaporation,
    radiation, humidity, pressure, day length, wind speed, temperature in K) lies more than
    ``unit_slip_decades`` orders of magnitude from the median of the study's sites."""
    sites = _sites(ds)
    if len(sites) < th.min_sites_unit_slip:
        return no_findings()
    parts = []
    for name in dynamic_names(ds):
        if not _ratio_scale(ds[name], name):
            continue
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a site without any value: NaN mean
            mean = np.nanmean(ds[name].values.astype(np.float64), axis=1)
        ok = np.isfinite(mean)
        if ok.sum() < th.min_sites_unit_slip or (mean[ok] <= 0).any():
            continue
        logm = np.log10(mean[ok])
        centre = float(np.median(logm))
        dev = np.full(mean.shape, np.nan)
        dev[ok] = logm - centre
        bad = np.abs(np.nan_to_num(dev)) > th.unit_slip_decades
        if bad.any():
            parts.append(
                _frame(
                    "unit_slip",
                    source,
                    site=sites[bad],
                    variable=name,
                    value=mean[bad],
                    detail=[
                        f"mean {m:.3g} is {10**d:.3g} x the median of the study's sites "
                        f"({10**centre:.3g}): a unit slip?"
                        for m, d in zip(mean[bad], dev[bad], strict=True)
                    ],
                )  # fmt: skip
            )
    return _concat(parts)


def longest_flat_runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``values`` [site, time]: the longest run of days holding one same non-zero finite
    value (in days; 1 where none repeats) and the index of its first day."""
    v = values
    same = np.zeros(v.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        same[:, 1:] = (v[:, 1:] == v[:, :-1]) & (v[:, 1:] != 0) & np.isfinite(v[:, 1:])
    count = np.cumsum(same, axis=1, dtype=np.int32)
    # the count at the last day that broke a run, carried forward: run length = count - that
    base = np.maximum.accumulate(np.where(same, 0, count), axis=1)
    run = count - base
    end = run.argmax(axis=1)
    longest = run[np.arange(len(v)), end] + 1
    return longest, end - longest + 1


def flatlines(ds: xr.Dataset, th: QualityThresholds, source: str) -> pd.DataFrame:
    """Sites whose input repeats one non-zero value on at least ``flatline_days`` consecutive days
    (``flatline_days_target`` for the target); runs of zero (dry spells, zero flow) never count,
    nor does day length (it stands still around the solstices: 31 days in the CAMELS-US forcing files)."""
    sites, time = _sites(ds), _time(ds)
    target = target_name(ds)
    parts = []
    for name in [target, *dynamic_names(ds)]:
        if variable_kind(name) == "day_length":
            continue
        days = th.flatline_days_target if name == target else th.flatline_days
        v = ds[name].values
        longest, first = longest_flat_runs(v)
        bad = longest >= days
        if bad.any():
            idx = np.flatnonzero(bad)
            parts.append(
                _frame(
                    "flatline",
                    source,
                    site=sites[bad],
                    variable=name,
                    date=time[first[bad]],
                    value=v[idx, first[bad]].astype(np.float64),
                    detail=[
                        f"the same value on {k} consecutive days (at least {days})" for k in longest[bad]
                    ],
                )  # fmt: skip
            )
    return _concat(parts)


def duplicate_series(ds: xr.Dataset, min_days: int, source: str) -> pd.DataFrame:
    """Sites whose target series equals another site's on every day (missing days alike), where the
    series holds at least ``min_days`` valid non-zero values; every member of a group is named."""
    target = target_name(ds)
    y = ds[target].values
    informative = (np.isfinite(y) & (y != 0)).sum(axis=1) >= min_days
    if informative.sum() < 2:
        return no_findings()
    sites = _sites(ds)
    rows = np.flatnonzero(informative)
    # one digest per site's whole series (a loop over sites, not days); equality is confirmed below
    hashes = [hashlib.blake2b(np.ascontiguousarray(y[i]).tobytes(), digest_size=16).digest() for i in rows]
    groups = pd.Series(rows).groupby(hashes)
    members = [g.to_numpy() for _, g in groups if len(g) > 1]
    # a hash collision is not equality: keep only rows equal to their group's first
    same = [g[[np.array_equal(y[g[0]], y[k], equal_nan=True) for k in g]] for g in members]
    same = [g for g in same if len(g) > 1]
    if not same:
        return no_findings()
    site_idx = np.concatenate(same)
    detail = [
        f"{target} identical to site(s) {', '.join(sites[[j for j in g if j != k]])}" for g in same for k in g
    ]
    return _frame(
        "duplicate_series", source, site=sites[site_idx], variable=target,
        value=(np.isfinite(y[site_idx])).sum(axis=1).astype(np.float64), detail=detail,
    )  # fmt: skip


def run_checks(
    ds: xr.Dataset, th: QualityThresholds, periods: Periods, source: str
) -> dict[str, pd.DataFrame]:
    """Every check of this module on ``ds``: findings per rule (an empty table where none)."""
    return {
        "tmin_above_tmax": temperature_order(ds, th.tmin_tmax_tolerance, source),
        "attribute_impossible": impossible_attributes(ds, th, source),
        "inputs_missing": missing_inputs(ds, periods, th.max_missing_share, source),
        "water_balance": water_balance(ds, th, source),
        "unit_slip": unit_slips(ds, th, source),
        "flatline": flatlines(ds, th, source),
        "duplicate_series": duplicate_series(ds, th.min_days_duplicate, source),
    }
