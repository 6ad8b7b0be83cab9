"""A domain read under its study's quality policy: findings found, acted on and recorded.

:func:`read_domain_with_quality` reads one domain as :func:`~synergy_dagster.sources.study_domain.
read_study_domain` does, with implausible values masked and recorded by the readers where the
policy asks (:func:`~synergy_dagster.sources.plausibility.masking_implausible`), then runs the
checks of :mod:`synergy_dagster.sources.quality_checks` on the selected data and applies the policy
(:func:`apply_policy`): refuse the study, mask values, drop sites or warn. Every finding is kept
with its rule, class, action, file, site, variable, date, original value and detail, for the
store, the file beside the sources and the report (:mod:`synergy_dagster.sources.quality_report`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.layout import Layout
from synergy_dagster.sources.plausibility import FINDING_COLUMNS, masking_implausible
from synergy_dagster.sources.quality_checks import Periods, no_findings, run_checks
from synergy_dagster.sources.quality_spec import QualitySpec
from synergy_dagster.sources.study_domain import DomainData, read_study_domain
from synergy_dagster.study_file import DomainSpec

# rule -> (class, the asset check that reports it). The class picks the policy's action.
RULES: dict[str, tuple[str, str]] = {
    "range": ("implausible", "values_in_range"),
    "tmin_above_tmax": ("implausible", "temperature_order"),
    "attribute_impossible": ("implausible", "attributes_possible"),
    "inputs_missing": ("unusable", "inputs_present"),
    "water_balance": ("suspicious", "water_balance"),
    "unit_slip": ("suspicious", "unit_consistency"),
    "flatline": ("suspicious", "no_flatlines"),
    "duplicate_series": ("suspicious", "no_duplicate_series"),
}
# What each asset check verifies (shown in the UI beside its result).
CHECK_DESCRIPTIONS: dict[str, str] = {
    "values_in_range": "Every value of every variable lies in the plausible range of its kind and units "
    "(sources/plausibility.py RANGES); out-of-range values are refused, masked or drop their site "
    "as quality.implausible says.",
    "temperature_order": "Where both are given, a day's minimum temperature is not above its maximum.",
    "attributes_possible": "Basin areas, elevations, fractions and percentages are physically possible.",
    "inputs_present": "No site misses a dynamic input on (nearly) every day of the train or test period.",
    "water_balance": "Over the record, runoff is below max_runoff_ratio x precipitation and precipitation "
    "minus runoff stays under the potential evaporation (the Budyko limits, with tolerances).",
    "unit_consistency": "No site's input is orders of magnitude off the study's other sites (a unit slip).",
    "no_flatlines": "No input repeats one non-zero value on many consecutive days (a stuck sensor).",
    "no_duplicate_series": "No two sites carry the same target series (a file copied under another name).",
}
EVENT_COLUMNS = ("rule", "class", "action", *FINDING_COLUMNS[1:])
# the action taken on a finding, from the policy's choice for its class
_ACTIONS = {
    "refuse": "refused",
    "mask": "masked",
    "drop_site": "site_dropped",
    "drop": "site_dropped",
    "warn": "warned",
}


@dataclass(frozen=True)
class QualityOutcome:
    """The data after the policy, every finding with its action (:data:`EVENT_COLUMNS`), and the
    sites left out with their reason (``site``, ``reason``)."""

    ds: xr.Dataset
    events: pd.DataFrame
    dropped: pd.DataFrame


def policy_action(quality: QualitySpec, klass: str) -> str:
    """The study's choice for a class of finding (``refuse``, ``mask``, ``drop`` ...)."""
    return str(getattr(quality, klass))


def _refuse(events: pd.DataFrame, klass: str) -> None:
    row = events.iloc[0]
    day = f" on {pd.Timestamp(row['date']):%Y-%m-%d}" if pd.notna(row["date"]) else ""
    value = f" = {float(row['value']):g}" if pd.notna(row["value"]) else ""
    n = len(events)
    raise InputError(
        str(row["file"]),
        f"{row['variable']}{value} for site {row['site']!r}{day}: {row['detail']} [rule {row['rule']}] "
        f"({n} such finding{'s' * (n != 1)}); the study's quality policy refuses {klass} data "
        f"(quality.{klass}: refuse); set it to "
        + ("'mask' or 'drop_site'" if klass == "implausible" else "'drop'")
        + " to go on without them",
        f"variable {row['variable']}, site {row['site']}" + (f", date {day[4:]}" if day else ""),
    )


def _mask(ds: xr.Dataset, values: pd.DataFrame) -> xr.Dataset:
    """``ds`` with the (variable, site[, date]) of ``values`` set missing, one scatter per variable."""
    out = ds.copy(deep=True)
    sites = pd.Index(ds["site"].values.astype(str))
    time = pd.DatetimeIndex(ds["time"].values)
    for name, rows in values.groupby("variable"):
        if name not in out.data_vars:  # read but not selected by the study
            continue
        i = sites.get_indexer(rows["site"].astype(str))
        arr = out[name].values
        if arr.ndim == 2:
            t = time.get_indexer(pd.DatetimeIndex(rows["date"]))
            keep = (i >= 0) & (t >= 0)
            arr[i[keep], t[keep]] = np.nan
        else:
            arr[i[i >= 0]] = np.nan
    return out


def apply_policy(ds: xr.Dataset, findings: dict[str, pd.DataFrame], quality: QualitySpec) -> QualityOutcome:
    """Act on ``findings`` (per rule, :data:`FINDING_COLUMNS`) as ``quality`` says.

    Refused classes raise :class:`InputError` naming the first finding's file, variable, site,
    date and value and the count (nothing is written). A site is dropped once, with every reason
    that dropped it; dropping every site is an error. Findings on variables the study does not use
    (read but not selected) are recorded but drop no site.
    """
    parts = []
    for rule, frame in findings.items():
        if not len(frame):
            continue
        klass = RULES[rule][0]
        frame = frame.assign(**{"class": klass, "action": _ACTIONS[policy_action(quality, klass)]})
        parts.append(frame)
    events = (
        pd.concat(parts, ignore_index=True) if parts else no_findings().assign(**{"class": "", "action": ""})
    )
    events = events[list(EVENT_COLUMNS)]
    for klass in ("implausible", "unusable"):
        refused = events[(events["class"] == klass) & (events["action"] == "refused")]
        if len(refused):
            _refuse(refused, klass)
    masked = events[events["action"] == "masked"]
    out = _mask(ds, masked) if len(masked) else ds
    used, present = set(map(str, ds.data_vars)), ds["site"].values.astype(str)
    drops = events[
        (events["action"] == "site_dropped") & events["variable"].isin(used) & events["site"].isin(present)
    ]
    reasons = (
        drops.assign(reason=drops["rule"] + " (" + drops["variable"].astype(str) + ")")
        .groupby("site", sort=True)["reason"]
        .agg(lambda r: "quality: " + ", ".join(dict.fromkeys(r)))
    )
    dropped = pd.DataFrame({"site": reasons.index.astype(str), "reason": reasons.to_numpy(dtype=str)})
    if len(dropped):
        keep = ~np.isin(out["site"].values.astype(str), dropped["site"].to_numpy())
        if not keep.any():
            raise InputError(
                ds.attrs.get("source", "source"),
                f"the quality policy dropped every one of the {len(keep)} sites; first: "
                f"{dropped['site'].iloc[0]}: {dropped['reason'].iloc[0]}",
            )
        out = out.isel(site=np.flatnonzero(keep))
    return QualityOutcome(out, events.reset_index(drop=True), dropped)


def check_quality(
    ds: xr.Dataset, screened: pd.DataFrame, quality: QualitySpec, periods: Periods, source: str
) -> QualityOutcome:
    """The checks on the selected data ``ds`` plus the values the readers masked (``screened``),
    acted on as ``quality`` says."""
    findings = {"range": screened, **run_checks(ds, quality.thresholds, periods, source)}
    return apply_policy(ds, findings, quality)


def domain_periods(spec: DomainSpec) -> Periods:
    """The (name, start, end) of a domain's train and test periods."""
    p = spec.periods
    return [("train", str(p.train.start), str(p.train.end)), ("test", str(p.test.start), str(p.test.end))]


def read_domain_with_quality(
    domain: str,
    spec: DomainSpec,
    quality: QualitySpec,
    extent: tuple[float, float, float, float] | None = None,
    layout: Layout | None = None,
) -> tuple[DomainData, QualityOutcome]:
    """Read one domain under ``quality`` (the study's policy with the domain's keys on top,
    :func:`~synergy_dagster.sources.quality_spec.effective_quality`); the returned data hold the
    policy's result and its dropped table every site left out (without target, or by quality);
    ``layout`` lets the new USGS gauges with a site pack in (:func:`read_study_domain`)."""
    if quality.implausible == "refuse":
        data = read_study_domain(domain, spec, extent=extent, layout=layout)
        screened = no_findings()
    else:
        with masking_implausible() as screen:
            data = read_study_domain(domain, spec, extent=extent, layout=layout)
        screened = screen.frame()
    outcome = check_quality(data.ds, screened, quality, domain_periods(spec), str(data.path))
    dropped = pd.concat([data.dropped, outcome.dropped], ignore_index=True)
    return dataclasses.replace(data, ds=outcome.ds, dropped=dropped), outcome
