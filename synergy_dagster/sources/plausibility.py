"""Trust checks shared by every reader: is a value physically possible, is a day the day the file
names, is a gauge the gauge it claims to be, is an attribute column numeric.

Four kinds of check live here so that every reader applies the same rules:

- values: :data:`RANGES` (one table: variable kind, units, plausible bounds) and
  :func:`check_variable` (fill values, non-finite values, range), applied to every dynamic
  variable and target; unknown variables get the fill / non-finite part only;
- time: :func:`check_daily_dates` (text or datetime values) and :func:`check_time_units` (CF
  units), refusing time-zone offsets, sub-daily times, duplicates, typo years;
- identity: :func:`check_file_gauge`, :func:`check_id_padding`, :func:`check_within_extent`;
- attribute tables: :func:`check_attribute_columns` (a text cell in a numeric column).

Each failure raises :class:`InputError` naming the file and the variable / site / date / cell.
Inside :func:`masking_implausible` (a study whose quality policy masks implausible values, see
:mod:`synergy_dagster.sources.quality_spec`) a value outside its plausible range is set missing and
recorded instead, with its file, site, date and original value; the readers need no parameter for
it, as every one of them screens its values through :func:`check_variable`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synergy_dagster.errors import InputError

# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Range:
    """Plausible bounds of one variable kind in one unit (inclusive)."""

    kind: str
    units: str
    lo: float
    hi: float


# Bounds are physical limits with room for extremes, not climatology: they catch wrong units and
# garbage, never a rare but real day (e.g. ERA5-Land potential evaporation can be slightly negative
# and above 50 mm/d; the wettest day on record is ~1.8 m of rain).
RANGES: tuple[Range, ...] = (
    Range("streamflow", "mm/d", 0.0, 5000.0),
    Range("streamflow", "ft3/s", 0.0, 1e7),
    Range("streamflow", "m3/s", 0.0, 3e5),
    Range("precipitation", "mm/d", 0.0, 2000.0),
    Range("potential_evaporation", "mm/d", -50.0, 200.0),
    Range("evaporation", "mm/d", -50.0, 200.0),
    Range("air_temperature", "degC", -90.0, 60.0),
    Range("air_temperature", "K", 183.0, 333.0),
    Range("radiation", "W/m2", 0.0, 1500.0),
    Range("net_radiation", "W/m2", -1500.0, 1500.0),
    Range("specific_humidity", "kg/kg", 0.0, 0.1),
    Range("specific_humidity", "g/kg", 0.0, 100.0),
    Range("relative_humidity", "%", 0.0, 100.0),
    Range("relative_humidity", "1", 0.0, 1.0),
    Range("vapour_pressure", "Pa", 0.0, 10000.0),
    Range("vapour_pressure", "kPa", 0.0, 10.0),
    Range("soil_moisture", "m3/m3", 0.0, 1.0),
    Range("soil_moisture", "%", 0.0, 100.0),
    Range("snow_water_equivalent", "mm", 0.0, 50000.0),
    Range("wind_component", "m/s", -150.0, 150.0),
    Range("wind_speed", "m/s", 0.0, 150.0),
    Range("surface_pressure", "Pa", 30000.0, 110000.0),
    Range("surface_pressure", "hPa", 300.0, 1100.0),
    Range("surface_pressure", "kPa", 30.0, 110.0),
    Range("day_length", "s", 0.0, 86400.0),
)

# Variable kind from the (lower-case) name or CF standard/long name; first match wins, so the
# specific patterns come before the general ones ("potential_evaporation" before "evaporation").
_KIND_PATTERNS: tuple[tuple[str, str], ...] = (
    ("streamflow", r"streamflow|discharge|runoff|^q(_cfs|_mm|obs)?$"),
    ("potential_evaporation", r"potential_evap|^pet(_|$)|^pev"),
    ("evaporation", r"evaporation|^evap"),
    ("snow_water_equivalent", r"snow_depth_water_equivalent|^swe(_|$)|snow_water"),
    ("precipitation", r"precip|^prcp|^apcp|^prec(_|$)|rainfall|^rain(_|$)"),
    ("specific_humidity", r"specific_humidity|^spfh|^qair"),
    ("relative_humidity", r"relative_humidity|^rh(_|$)|^rhum"),
    ("vapour_pressure", r"vapou?r_pressure|^vp(_|$)"),
    ("air_temperature", r"temp|^tmp|^tmax|^tmin|^tavg|^tmean|^t2m"),
    ("net_radiation", r"net_.*radiation|net_solar|net_thermal"),
    ("radiation", r"radiation|^srad|^dswrf|^dlwrf|^rsds|^rlds|shortwave|longwave"),
    ("soil_moisture", r"soil_moisture|soil_water|^smap|^sm(_|$)"),
    ("wind_component", r"^ugrd|^vgrd|[uv]_component_of_wind|^[uv]10|^[uv]wind"),
    ("wind_speed", r"wind_speed|^wind(_|$)|^ws(_|$)"),
    ("surface_pressure", r"surface_pressure|^pres(_|$)|^psurf|^sp(_|$)"),
    ("day_length", r"^dayl"),
)

# Units spellings -> the table's units. A daily total in kg m-2 is mm of water per day.
_UNITS: dict[str, str] = {
    **dict.fromkeys(("mm/d", "mm/day", "mm d-1", "mm day-1", "kg m-2", "kg/m2", "kg m-2 d-1"), "mm/d"),
    **dict.fromkeys(("kg m-2 (daily total)", "mm (daily total)", "mm/d (daily total)"), "mm/d"),
    **dict.fromkeys(("degc", "c", "celsius", "deg_c", "degrees_celsius", "°c", "deg c"), "degC"),
    **dict.fromkeys(("k", "kelvin", "degk", "deg_k"), "K"),
    **dict.fromkeys(("w/m2", "w m-2", "w/m^2", "w m**-2"), "W/m2"),
    **dict.fromkeys(("kg/kg", "kg kg-1", "kg kg**-1"), "kg/kg"),
    **dict.fromkeys(("g/kg", "g kg-1"), "g/kg"),
    **dict.fromkeys(("m3/m3", "m3 m-3", "m^3/m^3", "m3 m**-3", "cm3/cm3", "cm3 cm-3"), "m3/m3"),
    **dict.fromkeys(("%", "percent"), "%"),
    **dict.fromkeys(("1", "fraction", "-"), "1"),
    **dict.fromkeys(("m/s", "m s-1", "m s**-1"), "m/s"),
    **dict.fromkeys(("ft3/s", "cfs", "ft3 s-1"), "ft3/s"),
    **dict.fromkeys(("m3/s", "m3 s-1", "cms"), "m3/s"),
    **{"pa": "Pa", "hpa": "hPa", "kpa": "kPa", "mb": "hPa", "mbar": "hPa", "s": "s", "mm": "mm"},
}

# Values data sets use for "no data". Never data: any of them undeclared is an error.
FILL_VALUES: tuple[float, ...] = (-9999.0, -999.0, -99999.0, -999999.0, 1e20, -1e20, 9.96921e36, -9.96921e36)
# Beyond this magnitude no hydrological quantity exists in any unit: a fill value of some kind
# (netCDF/float32 maxima, uninitialised memory).
_HUGE = 1e15


def variable_kind(name: str, standard_name: str = "") -> str | None:
    """The kind of a variable (``"precipitation"`` ...) from its name, or None if unknown."""
    for text in (name.strip().lower(), standard_name.strip().lower()):
        if not text:
            continue
        for kind, pattern in _KIND_PATTERNS:
            if re.search(pattern, text):
                return kind
    return None


def canonical_units(units: str) -> str:
    """The table's spelling of ``units`` ('' where unknown)."""
    u = " ".join(str(units or "").strip().lower().split())
    return _UNITS.get(u, "")


def plausible_range(name: str, units: str, standard_name: str = "") -> Range | None:
    """The :data:`RANGES` row for a variable, or None when its kind or units are unknown."""
    kind = variable_kind(name, standard_name)
    cu = canonical_units(units)
    for r in RANGES:
        if r.kind == kind and r.units == cu:
            return r
    return None


MissingValues = Collection[float] | Mapping[str, Collection[float]]


def declared_missing(missing_values: MissingValues | None, name: str) -> tuple[float, ...]:
    """The values declared missing for variable ``name``: a collection applies to every variable,
    a mapping per variable name."""
    if not missing_values:
        return ()
    if isinstance(missing_values, Mapping):
        return tuple(float(v) for v in missing_values.get(name, ()))
    return tuple(float(v) for v in missing_values)


def _matches(arr: np.ndarray, values: Iterable[float]) -> np.ndarray:
    """Where ``arr`` equals one of ``values`` (relative tolerance for float32-rounded big fills)."""
    hit = np.zeros(arr.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for v in values:
            hit |= np.abs(arr - v) <= abs(v) * 1e-6 if abs(v) > 1e6 else arr == v
    return hit


def _site_day(
    idx: tuple[int, ...], site_ids: Sequence[str], time: pd.DatetimeIndex | None
) -> tuple[str, str]:
    site = str(site_ids[idx[0]]) if len(site_ids) else "?"
    day = f"{time[idx[1]]:%Y-%m-%d}" if time is not None and len(idx) > 1 else ""
    return site, day


def _fail(
    arr: np.ndarray,
    bad: np.ndarray,
    name: str,
    site_ids: Sequence[str],
    time: pd.DatetimeIndex | None,
    sources: Sequence[str | Path] | str | Path,
    what: str,
    hint: str = "",
) -> None:
    idx = tuple(int(v) for v in np.argwhere(bad)[0])
    site, day = _site_day(idx, site_ids, time)
    src = sources if isinstance(sources, (str, Path)) else sources[idx[0]]
    on = f" on {day}" if day else ""
    n = int(bad.sum())
    raise InputError(
        src,
        f"{name} = {float(arr[idx]):g} for site {site!r}{on}: {what} ({n} such value{'s' * (n != 1)}){hint}",
        f"variable {name}, site {site}" + (f", date {day}" if day else ""),
    )


# The columns of a recorded finding (masked value, dropped site, warning); quality.py adds the action.
FINDING_COLUMNS = ("rule", "file", "site", "variable", "date", "value", "detail")


@dataclass
class ValueScreen:
    """The implausible values set missing inside one :func:`masking_implausible` block."""

    parts: list[pd.DataFrame] = field(default_factory=list)

    def record(
        self,
        values: np.ndarray,
        bad: np.ndarray,
        name: str,
        site_ids: Sequence[str],
        time: pd.DatetimeIndex | None,
        sources: Sequence[str | Path] | str | Path,
        detail: str,
    ) -> None:
        """One row per value where ``bad`` ([site] or [site, time]), all at once (no loop per value)."""
        pos = np.nonzero(bad)
        per_site = not isinstance(sources, (str, Path))
        files = np.asarray([str(s) for s in sources], dtype=object) if per_site else None
        n = int(bad.sum())
        self.parts.append(
            pd.DataFrame(
                {
                    "rule": "range",
                    "file": files[pos[0]] if files is not None else str(sources),
                    "site": np.asarray(site_ids, dtype=object)[pos[0]],
                    "variable": name,
                    "date": time[pos[1]] if time is not None and bad.ndim > 1 else pd.NaT,
                    "value": values[bad].astype(np.float64),
                    "detail": [detail] * n,
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        """Every recorded value (the :data:`FINDING_COLUMNS`)."""
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})
        return pd.concat(self.parts, ignore_index=True)


_SCREEN: ContextVar[ValueScreen | None] = ContextVar("value_screen", default=None)
# What a study can do about isolated implausible values, said where they are refused.
_POLICY_HINT = (
    "; to go on without such values, set quality.implausible: mask (or drop_site) in the study file"
)


@contextlib.contextmanager
def masking_implausible() -> Iterator[ValueScreen]:
    """Within the block, :func:`check_variable` masks and records out-of-range values instead of
    refusing them (like ``numpy.errstate``, a scope rather than a parameter of every reader)."""
    screen = ValueScreen()
    token = _SCREEN.set(screen)
    try:
        yield screen
    finally:
        _SCREEN.reset(token)


def mask_if_screening(
    values: np.ndarray,
    bad: np.ndarray,
    name: str,
    site_ids: Sequence[str],
    time: pd.DatetimeIndex | None,
    sources: Sequence[str | Path] | str | Path,
    detail: str,
) -> bool:
    """Inside :func:`masking_implausible`: record the ``bad`` values of ``values`` and set them
    missing in place, and return True; outside it return False (the caller refuses them). For a
    reader's own range rule (e.g. volumetric soil moisture in [0, 1])."""
    screen = _SCREEN.get()
    if screen is None:
        return False
    screen.record(values, bad, name, site_ids, time, sources, detail)
    values[bad] = np.nan
    return True


def masking_active() -> bool:
    """Whether implausible values are masked here (a reader's own refusals of values that the range
    check would catch, e.g. negative flow, give way to it)."""
    return _SCREEN.get() is not None


def check_variable(
    arr: np.ndarray,
    name: str,
    units: str,
    site_ids: Sequence[str],
    time: pd.DatetimeIndex | None,
    sources: Sequence[str | Path] | str | Path,
    *,
    missing_values: MissingValues | None = None,
    standard_name: str = "",
    check_range: bool = True,
) -> np.ndarray:
    """Screen one variable ([site] or [site, time]) and return it with declared missing values as NaN.

    Declared missing values (``missing_values``) become NaN. Then undeclared fill values
    (:data:`FILL_VALUES`, magnitudes above 1e15, +-inf) and, where the variable's kind and units
    are in :data:`RANGES` and ``check_range``, values outside the plausible range are errors naming
    the file (``sources`` per site, or one for all), variable, first site and date, and the count;
    inside :func:`masking_implausible` they are set missing and recorded instead (callers use the
    returned array).
    """
    out = np.array(arr, dtype=np.float64 if arr.dtype == np.float64 else np.float32, copy=True)
    declared = declared_missing(missing_values, name)
    if declared:
        out[_matches(out, declared)] = np.nan
    with np.errstate(invalid="ignore"):
        fill = _matches(out, FILL_VALUES) | np.isinf(out) | (np.abs(out) > _HUGE)
    if fill.any():
        _fail(
            out,
            fill,
            name,
            site_ids,
            time,
            sources,
            "a fill value (no data), not a measurement; declare it with missing_values if it means missing",
        )
    rng = plausible_range(name, units, standard_name) if check_range else None
    if rng is not None:
        with np.errstate(invalid="ignore"):
            bad = (out < rng.lo) | (out > rng.hi)
        if bad.any():
            what = f"outside the plausible range [{rng.lo:g}, {rng.hi:g}] {rng.units} for {rng.kind}"
            if mask_if_screening(out, bad, name, site_ids, time, sources, what):
                return out
            if rng.kind == "air_temperature" and rng.units == "degC":
                v = out[np.isfinite(out)]
                if v.size and 183.0 <= float(np.median(v)) <= 333.0:
                    what += "; looks like Kelvin where degC is expected"
            _fail(out, bad, name, site_ids, time, sources, what, _POLICY_HINT)
    return out


# --------------------------------------------------------------------------- time

# A time-zone designator after a date or time: "Z", "UTC", "+02:00", "-0500" (a plain date's "-01"
# never matches: an offset needs a time before it or four digits).
_TZ = re.compile(
    r"(?:\d[Zz]|(?:\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?|T\d{2,6})\s*[+-]\d{2}(?::?\d{2})?"
    r"|\d{4}-\d{2}-\d{2}[+-]\d{2}:?\d{2}|\s(?:UTC|GMT)\s*[+-]?\d*)\s*$"
)
_ISO_DAY = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}(?:$|[T ])")
# A jump this long between consecutive dates is a typo (1891 for 1981), not a gap in a record.
MAX_GAP_DAYS = 20 * 365


def _raise_tz(value: str, source: str | Path, where: str) -> None:
    raise InputError(
        source,
        f"date {value!r} carries a time-zone offset; dates are read as the local day the file names, "
        "and converting would shift days. Write plain dates (YYYY-MM-DD)",
        where,
    )


def _plain_dates(raw: pd.Series) -> np.ndarray | None:
    """Fast path for plain ``YYYY-MM-DD`` text (10 characters cannot hold a time or an offset);
    None where any value is something else, which the slow path then examines."""
    try:
        arr = np.asarray(raw.to_numpy(dtype=object, na_value=""), dtype=str)
        if arr.size == 0 or not (np.char.str_len(arr) == 10).all():
            return None
        days = arr.astype("datetime64[D]")
    except (ValueError, TypeError):
        return None
    return None if np.isnat(days).any() else days.astype("datetime64[ns]")


def check_time_units(units: str | None, source: str | Path, variable: str = "time") -> None:
    """Refuse CF time units whose reference time has a non-zero time-zone offset
    (``days since 2000-01-01 00:00:00 +05:00``): decoding would move every day."""
    if not units or "since" not in str(units):
        return
    ref = str(units).split("since", 1)[1].strip()
    m = re.search(r"(?:\d|\s)([+-])(\d{1,2})(?::?(\d{2}))?\s*$", ref)
    if m and re.search(r"\d:\d{2}", ref) and (int(m.group(2)) or int(m.group(3) or 0)):
        raise InputError(
            source,
            f"time units {units!r} carry a time-zone offset ({m.group(1)}{m.group(2)}"
            f"{':' + m.group(3) if m.group(3) else ''}); decoding would shift every day. "
            "Use a reference time without offset",
            variable,
        )


def check_daily_dates(
    dates: pd.Series | pd.DatetimeIndex | np.ndarray,
    source: str | Path,
    first_line: int = 2,
    column: str = "date",
    *,
    continuous: bool = True,
    ordered: bool = True,
    line_numbers: Sequence[int] | None = None,
    row_label: str = "line",
    subject: str = "",
    sequence: bool = True,
) -> pd.DatetimeIndex:
    """Parse dates (text or datetime) as days and require them valid; every reader's date check.

    Refused, naming value, file and line (``first_line`` is the line of the first date, or give
    ``line_numbers``): unparseable or missing dates, time-zone designators, times other than
    midnight (a sub-daily series), duplicates, dates out of order (when ``ordered``; else they are
    checked sorted and returned in file order), gaps (when ``continuous``) and jumps of more than
    :data:`MAX_GAP_DAYS` (a typo in a year). A day stays the day the file names. Text dates must
    be ISO (``YYYY-MM-DD``, optionally ``THH:MM[:SS]``). ``subject`` ("site 01022500") is added to
    the messages of a file that holds several series. ``sequence=False`` checks each date alone
    (parse, time of day, offset) and leaves order, duplicates and gaps to the caller.
    """
    of = f" for {subject}" if subject else ""
    raw = pd.Series(dates).reset_index(drop=True)
    nums = list(line_numbers) if line_numbers is not None else None

    perm: np.ndarray | None = None  # sorted position -> file position, when not ``ordered``

    def where(i: int) -> str:
        k = int(perm[i]) if perm is not None else i
        line = nums[k] if nums is not None else first_line + k
        return f"{row_label} {line}, column {column}"

    if pd.api.types.is_datetime64_any_dtype(raw):
        if getattr(raw.dt, "tz", None) is not None:
            _raise_tz(str(raw.iloc[0]), source, where(0))
        if raw.isna().any():
            i = int(np.argmax(raw.isna().to_numpy()))
            raise InputError(source, "missing date", where(i))
        stamps = raw.to_numpy().astype("datetime64[ns]")
    else:
        stamps = _plain_dates(raw)
        if stamps is None:
            text = pd.Series(raw.to_numpy(dtype=object, na_value=""), dtype=object).map(
                lambda v: str(v).strip() if v is not None else ""
            )
            tz = text.str.contains(_TZ).to_numpy()
            if tz.any():
                i = int(np.argmax(tz))
                _raise_tz(text.iloc[i], source, where(i))
            parsed = pd.to_datetime(text.where(text != ""), format="ISO8601", errors="coerce")
            bad = parsed.isna().to_numpy() | ~text.str.match(_ISO_DAY).to_numpy(dtype=bool)
            if bad.any():
                i = int(np.argmax(bad))
                raise InputError(
                    source, f"missing or unparseable date {raw.iloc[i]!r}{of} (expected YYYY-MM-DD)", where(i)
                )
            stamps = parsed.to_numpy().astype("datetime64[ns]")
    days = stamps.astype("datetime64[D]")
    sub = stamps != days.astype("datetime64[ns]")
    if sub.any():
        i = int(np.argmax(sub))
        raise InputError(
            source,
            f"date {pd.Timestamp(stamps[i])} has a time of day: daily data are expected (one value per "
            "day at 00:00); aggregate sub-daily data to days first",
            where(i),
        )
    result = pd.DatetimeIndex(days.astype("datetime64[ns]"))
    if not ordered:
        perm = np.argsort(days, kind="stable")
        days = days[perm]
    idx = pd.DatetimeIndex(days.astype("datetime64[ns]"))
    if sequence and len(idx) > 1:
        steps = np.diff(days.astype(np.int64))
        if (steps == 0).any():
            i = int(np.argmax(steps == 0)) + 1
            raise InputError(source, f"duplicate date {idx[i]:%Y-%m-%d}{of}", where(i).split(",")[0])
        # A typo year shows as a jump of decades (or a step backwards by as much): name it as such.
        far = np.abs(steps) > MAX_GAP_DAYS
        if far.any():
            i = int(np.argmax(far)) + 1
            odd = 0 if i == 1 else i  # a wrong first date, else the date after the jump
            raise InputError(
                source,
                f"date {idx[odd]:%Y-%m-%d}{of} is {abs(int(steps[i - 1])) // 365} years away from its "
                f"neighbour ({idx[i - 1]:%Y-%m-%d} -> {idx[i]:%Y-%m-%d}): a typo in the year?",
                where(odd).split(",")[0],
            )
        if (steps < 0).any():
            i = int(np.argmax(steps < 0)) + 1
            raise InputError(
                source,
                f"dates not increasing{of}: {idx[i]:%Y-%m-%d} after {idx[i - 1]:%Y-%m-%d}",
                where(i).split(",")[0],
            )
        if continuous and (steps > 1).any():
            i = int(np.argmax(steps > 1)) + 1
            raise InputError(
                source,
                f"dates not continuous daily{of}: {int(steps[i - 1]) - 1} day(s) missing "
                f"between {idx[i - 1]:%Y-%m-%d} and {idx[i]:%Y-%m-%d}",
                where(i).split(",")[0],
            )
    return result


def check_periods_overlap(
    starts: Sequence[pd.Timestamp], ends: Sequence[pd.Timestamp], sources: Sequence[str | Path]
) -> None:
    """Files of one source must not lie decades apart: a file whose whole record is separated from
    the others' by more than :data:`MAX_GAP_DAYS` (a typo year in every date, a wrong file) is
    refused, naming it and its period."""
    if len(starts) < 2:
        return
    order = np.argsort(np.asarray(starts, dtype="datetime64[ns]"))
    reach = pd.Timestamp(ends[order[0]])
    for k in order[1:]:
        gap = (pd.Timestamp(starts[k]) - reach).days
        if gap > MAX_GAP_DAYS:
            before = [i for i in order if pd.Timestamp(ends[i]) <= reach]
            odd = [int(k)] if len(before) * 2 > len(order) else [int(i) for i in before]
            i = odd[0]
            raise InputError(
                sources[i],
                f"record {pd.Timestamp(starts[i]):%Y-%m-%d} .. {pd.Timestamp(ends[i]):%Y-%m-%d} lies "
                f"{gap // 365} years away from the other files of this source: a typo in the year?",
                "time",
            )
        reach = max(reach, pd.Timestamp(ends[k]))


# --------------------------------------------------------------------------- identity


def check_file_gauge(content_ids: Iterable[str], expected: str, source: str | Path, where: str = "") -> None:
    """Every gauge id named inside a time-series file must be the one its file name names."""
    ids = [str(c).strip() for c in content_ids]
    other = [c for c in dict.fromkeys(ids) if c != expected]
    if other:
        hint = " (a leading zero lost?)" if other[0].lstrip("0") == expected.lstrip("0") else ""
        raise InputError(
            source,
            f"the file is named for gauge {expected!r} but its rows name gauge {other[0]!r}{hint}",
            where or None,
        )


def _padding_key(gid: str) -> tuple[str, str] | None:
    """(prefix, digits without leading zeros) for ids like 01022500 / camels_01022500."""
    m = re.fullmatch(r"(.*?)(\d+)", gid.strip())
    return (m.group(1), m.group(2).lstrip("0")) if m else None


def check_id_padding(tables: Mapping[str, Iterable[str]]) -> None:
    """Refuse ids that lost their leading zeros in one table but not another (``1022500`` in one,
    ``01022500`` in the other): joined as they are, the gauge would silently lose that table's
    values. ``tables`` maps a table name (file) to its ids."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for table, ids in tables.items():
        for gid in dict.fromkeys(str(i).strip() for i in ids):
            key = _padding_key(gid)
            if key is None:
                continue
            prev = seen.setdefault(key, (table, gid))
            if prev[1] != gid:
                short, long_ = sorted(((table, gid), prev), key=lambda t: len(t[1]))
                raise InputError(
                    short[0],
                    f"gauge id {short[1]!r} here is {long_[1]!r} in {long_[0]}: a leading zero was lost "
                    "(store ids as text, e.g. 8-digit USGS ids)",
                    f"id {short[1]}",
                )


def extent_of(gdf: object, margin_deg: float = 1.0) -> tuple[float, float, float, float]:
    """(lon_min, lat_min, lon_max, lat_max) of a GeoDataFrame in EPSG:4326, widened by ``margin_deg``."""
    xmin, ymin, xmax, ymax = (float(v) for v in gdf.total_bounds)  # type: ignore[attr-defined]
    return (xmin - margin_deg, ymin - margin_deg, xmax + margin_deg, ymax + margin_deg)


def check_within_extent(
    lat: np.ndarray,
    lon: np.ndarray,
    site_ids: Sequence[str],
    extent: tuple[float, float, float, float],
    source: str | Path,
) -> None:
    """Every site inside the study extent (lon_min, lat_min, lon_max, lat_max), e.g. the ecoregion
    layer's bounds plus a margin (:func:`extent_of`). A point outside, e.g. lat/lon swapped for one
    gauge, is refused naming the site and both coordinates."""
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    bad_lat = ~np.isfinite(lat) | (np.abs(lat) > 90)
    x0, y0, x1, y1 = extent
    out = bad_lat | ~np.isfinite(lon) | (lon < x0) | (lon > x1) | (lat < y0) | (lat > y1)
    if out.any():
        i = int(np.argmax(out))
        swapped = x0 <= lat[i] <= x1 and y0 <= lon[i] <= y1
        raise InputError(
            source,
            f"site {site_ids[i]!r} at lat {lat[i]:g}, lon {lon[i]:g} lies outside the study extent "
            f"(lon {x0:g}..{x1:g}, lat {y0:g}..{y1:g})"
            + ("; lat and lon swapped?" if swapped else "")
            + f" ({int(out.sum())} such site{'s' * (int(out.sum()) != 1)})",
            f"site {site_ids[i]}",
        )


# --------------------------------------------------------------------------- attribute tables


def check_attribute_columns(
    df: pd.DataFrame, source: str | Path, id_column: str = "gauge_id", text_columns: Collection[str] = ()
) -> None:
    """A column that is numeric but for a few cells (``"n/a "``, ``"12,5"``) is an error naming the
    cell; otherwise the column would be dropped as text for every site. Columns that are text
    throughout (names, classes) or declared text (``text_columns``) stay text."""
    for col in df.columns:
        s = df[col]
        if col == id_column or col in text_columns or pd.api.types.is_numeric_dtype(s):
            continue
        txt = s.astype("string").str.strip()
        filled = txt.notna() & (txt != "")
        num = pd.to_numeric(txt.where(filled), errors="coerce")
        bad = (filled & num.isna()).to_numpy(dtype=bool)
        n_num = int(num.notna().sum())
        if bad.any() and n_num >= int(bad.sum()):
            i = int(np.argmax(bad))
            row = df[id_column].iloc[i] if id_column in df.columns else df.index[i]
            raise InputError(
                source,
                f"text value {s.iloc[i]!r} in numeric column {col!r} for {id_column} {row} "
                f"({int(bad.sum())} such cell{'s' * (int(bad.sum()) != 1)}, {n_num} numeric); "
                "use a plain number with '.' as decimal mark, or leave the cell empty",
                f"{id_column} {row}, column {col}",
            )
