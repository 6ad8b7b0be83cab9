"""What a study feeds its models: the chosen inputs of a source, and periods checked against its record.

A reader returns everything a source holds; a study lists the target, the dynamic inputs and the
static attributes it wants (categorical ones one-hot encoded, never fed as codes: a numeric column
of class codes, or a text column of class names that the readers return as codes with their
labels), its periods must lie inside the record, and sites whose target is missing on every day
are dropped with a reason instead of refusing the whole source. Attributes that would carry the
target or the test period into the models (:data:`LEAKY`) are refused unless the study allows them
by name; the clustering of :mod:`synergy_dagster.regions.schemes` follows the same list. Free of
Dagster; the sources assets call it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.config import DomainPeriods, Period
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.sources.sitedata import class_labels, dynamic_names, static_names, target_name

ALL_NUMERIC = "all_numeric"

# Attributes that carry the target or the test period into the model inputs and the clustering:
# the CAMELS streamflow signatures (camels_hydro.txt; Addor et al. 2017, HESS 21, 5293), computed
# from the observed runoff, and climate indices computed over a whole record that may include the
# test years (Caravan's, e.g. frac_snow; issue 24).
TARGET_DERIVED = frozenset(
    {
        "q_mean",
        "runoff_ratio",
        "slope_fdc",
        "baseflow_index",
        "stream_elas",
        "q5",
        "q95",
        "high_q_freq",
        "high_q_dur",
        "low_q_freq",
        "low_q_dur",
        "zero_q_freq",
        "hfd_mean",
    }
)
WHOLE_RECORD = frozenset(
    {
        "p_mean",
        "pet_mean",
        "aridity",
        "frac_snow",
        "seasonality",
        "moisture_index",
        "high_prec_freq",
        "high_prec_dur",
        "low_prec_freq",
        "low_prec_dur",
    }
)
LEAKY = TARGET_DERIVED | WHOLE_RECORD


def leaky_inputs(chosen: Sequence[str], allow_leaky: Sequence[str], key: str = "") -> list[str]:
    """The attributes of ``chosen`` that are :data:`LEAKY` and not in ``allow_leaky``; an
    ``allow_leaky`` entry that is no leaky attribute is refused (a typo would allow nothing)."""
    unknown = sorted(n for n in allow_leaky if n not in LEAKY)
    if unknown:
        raise ConfigError(
            f"{key}allow_leaky",
            f"{unknown} are not leaky attributes; the leaky ones are {sorted(LEAKY)}",
            ", ".join(unknown),
        )
    return [n for n in chosen if n in LEAKY and n not in allow_leaky]


def _missing(wanted: Sequence[str], have: Sequence[str], key: str, where: str) -> None:
    absent = [n for n in wanted if n not in have]
    if absent:
        raise ConfigError(
            key, f"{absent} not in the data of {where}; it has {sorted(have)}", ", ".join(absent)
        )


def label_slug(label: str) -> str:
    """A class label as a column-name part: lower case, runs of other characters one ``_``
    (``Siliciclastic sedimentary rocks`` -> ``siliciclastic_sedimentary_rocks``; a ``/`` in a
    label is not allowed in a NetCDF name)."""
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


def one_hot(ds: xr.Dataset, name: str, where: str) -> xr.Dataset:
    """Replace the static ``name`` (class codes) by one 0/1 static per class.

    A numeric column's indicators are named ``name=<code>``; a column read from text (its labels
    in ``attrs["categories"]``) gives ``name=<label slug>`` (:func:`label_slug`, the label itself
    in the indicator's ``attrs["label"]``). A site without a class gets NaN in every indicator
    (the normaliser and the models treat a missing static as missing, not as a class of its own).
    """
    values = ds[name].values.astype(np.float64)
    labels = class_labels(ds[name])
    ok = np.isfinite(values)
    codes = np.unique(values[ok])
    if codes.size == 0:
        raise InputError(where, f"categorical attribute {name!r} has no value at any site", name)
    if codes.size > 64:
        raise ConfigError(
            "static",
            f"categorical attribute {name!r} of {where} has {codes.size} classes: is it really categorical?",
            name,
        )
    if labels is None:
        names = [str(int(c)) if float(c).is_integer() else str(c) for c in codes]
        texts = names
    else:
        texts = [labels[int(c)] for c in codes]
        names = [label_slug(t) for t in texts]
        # two labels that differ only in case or punctuation keep distinct columns
        names = [
            f"{n}_{int(c)}" if not n or names.count(n) > 1 else n for n, c in zip(names, codes, strict=True)
        ]
    out = ds.drop_vars(name)
    for code, part, text in zip(codes, names, texts, strict=True):
        label = f"{name}={part}"
        col = np.where(ok, (values == code).astype(np.float32), np.nan)
        out[label] = xr.Variable(("site",), col.astype(np.float32), {"role": "static", "units": "1"})
        out[label].attrs["categorical_of"] = name
        out[label].attrs["label"] = text
    return out


def select_inputs(
    ds: xr.Dataset,
    *,
    target: str,
    dynamic: Sequence[str],
    static: Sequence[str] | str,
    categorical: Sequence[str] = (),
    where: str = "source",
    key: str = "",
    allow_leaky: Sequence[str] = (),
) -> xr.Dataset:
    """Keep the study's target, dynamic inputs and statics (in the listed order); one-hot encode
    the categorical statics. ``static="all_numeric"`` keeps every static of the source but the
    :data:`LEAKY` ones not in ``allow_leaky`` (named in ``attrs["inputs_left_out_leaky"]``); a
    leaky static listed by name and not allowed is an error naming it. ``key`` prefixes the
    study-file key named in errors (e.g. ``domains.streamflow.``)."""
    have_target = target_name(ds)
    if have_target != target:
        raise ConfigError(
            f"{key}target",
            f"{where} provides the target {have_target!r}, the study asks for {target!r}",
            target,
        )
    dyn = dynamic_names(ds)
    _missing(dynamic, dyn, f"{key}dynamic", where)
    stat = static_names(ds)
    text = json.loads(ds.attrs.get("text_attributes", "[]"))
    numeric = [n for n in stat if class_labels(ds[n]) is None]
    absent = [n for n in categorical if n not in stat]
    if absent:
        raise ConfigError(
            f"{key}categorical",
            f"{absent} is neither a numeric static nor a text attribute of {where}; its numeric statics "
            f"are {sorted(numeric)}, its text attributes {sorted(text)}",
            ", ".join(absent),
        )
    chosen = list(stat) if static == ALL_NUMERIC else list(static)
    as_text = [n for n in chosen if n not in stat and n in text]
    if as_text:
        raise ConfigError(
            f"{key}static",
            f"{as_text} in {where} hold text (class names): list them under categorical too, "
            "so they are one-hot encoded",
            ", ".join(as_text),
        )
    _missing(chosen, stat, f"{key}static", where)
    _missing(categorical, chosen, f"{key}categorical", where)
    named = leaky_inputs(
        list(dict.fromkeys([*categorical, *([] if static == ALL_NUMERIC else chosen)])), allow_leaky, key
    )
    if named:
        raise ConfigError(
            f"{key}static",
            f"{named} of {where} are derived from the target or computed over a record that may hold "
            f"the test period, so they would leak test information into the models; list them under "
            f"{key}allow_leaky to use them anyway",
            ", ".join(named),
        )
    leaky = leaky_inputs(chosen, allow_leaky, key)  # all_numeric: left out
    chosen = [n for n in chosen if n not in leaky]
    codes = [n for n in chosen if n not in categorical and class_labels(ds[n]) is not None]
    if codes:  # class codes of a text column are no quantity: never feed them as numbers
        raise ConfigError(
            f"{key}static",
            f"{codes} in {where} were read from text (class names): list them under categorical too",
            ", ".join(codes),
        )
    out = ds[[target, *dynamic, *chosen]]
    out.attrs = {k: v for k, v in ds.attrs.items() if k != "text_attributes"}
    for name in categorical:
        out = one_hot(out, name, where)
    out.attrs["inputs_dynamic"] = ",".join(dynamic)
    out.attrs["inputs_static"] = ",".join(static_names(out))
    if leaky:
        out.attrs["inputs_left_out_leaky"] = ",".join(leaky)
    return out


def record_span(ds: xr.Dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day on which any site has a valid target."""
    y = ds[target_name(ds)].values
    days = np.flatnonzero(np.isfinite(y).any(axis=0))
    if days.size == 0:
        raise InputError(ds.attrs.get("source", "source"), "the target has no valid value on any day")
    t = pd.DatetimeIndex(ds["time"].values)
    return t[days[0]], t[days[-1]]


def check_periods(ds: xr.Dataset, periods: DomainPeriods, where: str, key: str = "periods") -> None:
    """Refuse periods the data cannot fill: outside the record, or with no valid target at all.

    The record is where the target has data (the forcings must cover it too, as they feed the
    warm-up of every window); a study's period must lie inside it.
    """
    first, last = record_span(ds)
    t = pd.DatetimeIndex(ds["time"].values)
    span = f"{first:%Y-%m-%d}..{last:%Y-%m-%d}"
    y = ds[target_name(ds)]
    for name, p in (("train", periods.train), ("test", periods.test)):
        start, end = pd.Timestamp(p.start), pd.Timestamp(p.end)
        if start < t[0] or end > t[-1] or end < first or start > last:
            raise ConfigError(
                f"{key}.{name}",
                f"{p.start}..{p.end} is outside the record of {where} (target data {span}, "
                f"time axis {t[0]:%Y-%m-%d}..{t[-1]:%Y-%m-%d})",
            )
        n = int(np.isfinite(y.sel(time=slice(start, end)).values).sum())
        if n == 0:
            raise ConfigError(
                f"{key}.{name}", f"{p.start}..{p.end} holds no valid target value in {where} (record {span})"
            )


def drop_sites_without_target(
    ds: xr.Dataset, period: Period | None = None
) -> tuple[xr.Dataset, pd.DataFrame]:
    """Drop sites whose target is missing on every day (of ``period`` if given).

    Returns the kept data and one row per dropped site with its reason, so ragged real basin sets
    lose the empty gauges, not the whole source.
    """
    y = ds[target_name(ds)]
    if period is not None:
        y = y.sel(time=period.slice)
    empty = ~np.isfinite(y.values).any(axis=1)
    where = "" if period is None else f" in {period.start}..{period.end}"
    dropped = pd.DataFrame(
        {
            "site": ds["site"].values[empty].astype(str),
            "reason": f"target {target_name(ds)!r} missing on every day{where}",
        }
    )
    if empty.all():
        raise InputError(
            ds.attrs.get("source", "source"), f"every site's target is missing on every day{where}"
        )
    return (ds.isel(site=np.flatnonzero(~empty)) if empty.any() else ds), dropped
