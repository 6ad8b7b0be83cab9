"""USGS NWIS daily-values RDB files (discharge, parameter 00060, daily mean statistic 00003).

An RDB file is tab-separated: ``#`` comment lines, a header row
(``agency_cd site_no datetime <ts_id>_00060_00003 <ts_id>_00060_00003_cd``), a format row
(``5s 15s 20d 14n 10s``), then data. A multi-site request repeats comments, header and format
row per site. Values may be NWIS codes (``Ice``, ``Eqp``, ``Bkw``, ``Ssn``, ``***`` ...) that mean
"no value": they become NaN. Qualifiers: ``A`` approved, ``P`` provisional, ``e`` estimated,
``<``/``>`` censored.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import atomic_path
from synergy_dagster.sources.camels_us import cfs_to_mm_per_day
from synergy_dagster.sources.plausibility import (
    MissingValues,
    check_daily_dates,
    check_file_gauge,
    check_variable,
)
from synergy_dagster.sources.sitedata import target_name, validate_site_dataset

_VALUE_COL = re.compile(r"^\d+_00060_00003$")
_FORMAT_TOKEN = re.compile(r"^\d+[sdnt]$")
# NWIS value codes are short tokens (Ice, Eqp, Bkw, Ssn, Dis, Rat, Fld, Mnt, Pr, ZFl, ***, --).
_CODE = re.compile(r"^(\*+|--|[A-Za-z]{2,4})$")
COLUMNS = ["site_no", "date", "value", "qualifier"]
# NWIS names the site of each block in a comment above it; a file named for one site starts with it.
_SITE_COMMENT = re.compile(r"^#\s*Data (?:provided )?for site (?:number )?(\d{8,15})\b", re.IGNORECASE)
_SITE_FILE = re.compile(r"^(\d{8,15})(?:\D|$)")


def _blocks(
    lines: list[str], path: Path
) -> list[tuple[int, list[str], list[int], list[str], tuple[str, int] | None]]:
    """Split into (header line no, header fields, data line numbers, data lines, (site, line) named
    by the comment above the block or None) per header row."""
    out: list[tuple[int, list[str], list[int], list[str], tuple[str, int] | None]] = []
    i, n = 0, len(lines)
    named: tuple[str, int] | None = None
    while i < n:
        line = lines[i].rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            m = _SITE_COMMENT.match(line)
            if m:
                named = (m.group(1), i + 1)
            i += 1
            continue
        fields = line.split("\t")
        if "agency_cd" not in fields or "site_no" not in fields or "datetime" not in fields:
            raise InputError(
                path,
                f"expected an RDB header row with agency_cd, site_no, datetime; found {line[:80]!r}",
                f"line {i + 1}",
            )
        if i + 1 >= n:
            raise InputError(path, "header row without the RDB format row", f"line {i + 2}")
        fmt = lines[i + 1].rstrip("\r\n").split("\t")
        if len(fmt) != len(fields) or not all(_FORMAT_TOKEN.match(t) for t in fmt):
            raise InputError(
                path,
                f"bad RDB format row {lines[i + 1].strip()!r} (expected e.g. '5s 15s 20d "
                f"14n 10s', one per column)",
                f"line {i + 2}",
            )
        j = i + 2
        nums: list[int] = []
        data: list[str] = []
        # Collecting this block's lines is a scan, not parsing: the table is read by pandas below.
        while j < n and not lines[j].startswith("#") and not lines[j].startswith("agency_cd"):
            if lines[j].strip():
                nums.append(j + 1)
                data.append(lines[j].rstrip("\r\n"))
            j += 1
        out.append((i + 1, fields, nums, data, named))
        named = None
        i = j
    return out


def read_nwis_rdb(path: str | Path, *, missing_values: MissingValues | None = None) -> pd.DataFrame:
    """Read daily-mean discharge from an NWIS RDB file: columns site_no, date, value (cfs), qualifier.

    Errors name the file and line. Several sites in one file are allowed; a (site, date) twice
    is an error. Rows must name the site their block's ``# Data provided for site`` comment names,
    and the site a file name starts with (``01022500.rdb``). Dates are plain days (no time, no
    time-zone offset). Value codes and empty cells are missing, ``missing_values`` declares more;
    other fill values and negative discharge are errors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise InputError(path, "empty file")
    lines = text.splitlines()
    blocks = _blocks(lines, path)
    if not blocks:
        raise InputError(path, "no RDB header row (only comments)")
    parts = []
    m_file = _SITE_FILE.match(path.name)
    for hline, fields, nums, data, named in blocks:
        vcols = [k for k, f in enumerate(fields) if _VALUE_COL.match(f)]
        if not vcols:
            raise InputError(
                path,
                f"no daily-mean discharge column (<ts_id>_00060_00003) in header {fields}",
                f"line {hline}",
            )
        # A qualifier column must name its value column: a damaged name would drop every
        # qualifier (provisional, estimated) silently.
        orphan = [
            f
            for f in fields
            if (f.endswith("_cd") and f != "agency_cd" and f[:-3] not in fields)
            or ("_00060_00003" in f and not _VALUE_COL.match(f) and not f.endswith("_cd"))
        ]
        if orphan:
            raise InputError(
                path,
                f"qualifier column {orphan[0]!r} has no value column {orphan[0][:-3]!r}",
                f"line {hline}",
            )
        if not data:
            continue
        arr = np.asarray(data, dtype=object).astype(str)
        ntab = np.char.count(arr, "\t")
        bad = ntab != len(fields) - 1
        if bad.any():
            k = int(np.argmax(bad))
            raise InputError(
                path, f"{int(ntab[k]) + 1} fields where the header has {len(fields)}", f"line {nums[k]}"
            )
        df = pd.read_csv(
            io.StringIO("\n".join(data)),
            sep="\t",
            header=None,
            names=fields,
            dtype=str,
            keep_default_na=False,
            engine="c",
        )
        vname = fields[vcols[0]]
        raw = df[vname].str.strip()
        value = pd.to_numeric(raw, errors="coerce")
        unknown = value.isna() & (raw != "") & ~raw.str.match(_CODE)
        if unknown.any():
            k = int(np.argmax(unknown.to_numpy()))
            raise InputError(
                path,
                f"discharge value {raw.iloc[k]!r} is neither a number nor an NWIS code",
                f"line {nums[k]}, column {vname}",
            )
        sites = df["site_no"].str.strip()
        claimed = [c for c in (named[0] if named else None, m_file.group(1) if m_file else None) if c]
        for expected in claimed:
            bad_s = (sites != expected).to_numpy()
            if bad_s.any():
                k = int(np.argmax(bad_s))
                check_file_gauge([sites.iloc[k]], expected, path, f"line {nums[k]}, column site_no")
        qcol = f"{vname}_cd"
        qual = df[qcol].str.strip() if qcol in df.columns else pd.Series("", index=df.index)
        dates = np.empty(len(df), dtype="datetime64[ns]")
        val = value.to_numpy(dtype=np.float64, copy=True)
        for site, rows in df.groupby(sites, sort=False):
            pos = df.index.get_indexer(rows.index)
            days = check_daily_dates(
                rows["datetime"], path, column="datetime", continuous=False, ordered=False,
                line_numbers=[nums[k] for k in pos], subject=f"site {site}",
            )  # fmt: skip
            dates[pos] = days.to_numpy()
            try:
                val[pos] = check_variable(
                    val[pos][None, :], "streamflow", "ft3/s", [str(site)], days, path,
                    missing_values=missing_values,
                )[0]  # fmt: skip
            except InputError as exc:  # add the line: a date alone is hard to find in a long file
                day = re.search(r"date (\d{4}-\d{2}-\d{2})", exc.where or "")
                k = pos[int(np.argmax(days == pd.Timestamp(day.group(1))))] if day else pos[0]
                raise InputError(path, exc.problem, f"line {nums[k]}, column {vname}") from exc
        parts.append(
            pd.DataFrame(
                {
                    "site_no": sites.to_numpy(),
                    "date": dates,
                    "value": val,
                    "qualifier": qual.to_numpy(),
                    "_line": nums,
                }
            )
        )
    if not parts:
        raise InputError(path, "no data rows")
    out = pd.concat(parts, ignore_index=True)
    dup = out.duplicated(["site_no", "date"])
    if dup.any():
        k = int(np.argmax(dup.to_numpy()))
        raise InputError(
            path,
            f"duplicate date {out['date'].iloc[k]:%Y-%m-%d} for site {out['site_no'].iloc[k]}",
            f"line {out['_line'].iloc[k]}",
        )
    out = out.drop(columns="_line").sort_values(["site_no", "date"], kind="stable").reset_index(drop=True)
    out["site_no"] = out["site_no"].astype(str)
    out["qualifier"] = out["qualifier"].astype(str)
    return out[COLUMNS]


def nwis_to_mm_per_day(df: pd.DataFrame, area_km2: Mapping[str, float]) -> pd.DataFrame:
    """cfs -> mm/d by basin area: returns columns site_id, date, streamflow_mm."""
    areas = pd.Series({str(k): float(v) for k, v in area_km2.items()}, dtype=np.float64)
    sites = df["site_no"].astype(str)
    missing = sorted(set(sites) - set(areas.index))
    if missing:
        raise InputError("area_km2", f"no basin area for sites {missing[:10]}")
    a = areas.reindex(sites).to_numpy()
    if (~np.isfinite(a) | (a <= 0)).any():
        k = int(np.argmax(~np.isfinite(a) | (a <= 0)))
        raise InputError("area_km2", f"basin area {a[k]} km2 for site {sites.iloc[k]} is not positive")
    return pd.DataFrame(
        {
            "site_id": sites.to_numpy(),
            "date": pd.to_datetime(df["date"]).to_numpy(),
            "streamflow_mm": cfs_to_mm_per_day(df["value"].to_numpy(dtype=np.float64), a),
        }
    )


def write_nwis_rdb(df: pd.DataFrame, path: str | Path, ts_id: str = "1") -> Path:
    """Write columns site_no, date, value (cfs, NaN -> empty), qualifier in NWIS RDB form, one block
    per site as a multi-site NWIS request does. Atomic."""
    missing = [c for c in ("site_no", "date", "value") if c not in df.columns]
    if missing:
        raise InputError("nwis frame", f"missing columns {missing}")
    vname = f"{ts_id}_00060_00003"
    buf = io.StringIO()
    buf.write(
        "# ---------------------------------- WARNING ----------------------------------------\n"
        "# Some of the data that you have obtained from this U.S. Geological Survey database\n"
        "# may not have received Director's approval.\n#\n"
    )
    frame = df.assign(site_no=df["site_no"].astype(str)).sort_values(["site_no", "date"], kind="stable")
    for site, g in frame.groupby("site_no", sort=True):
        buf.write(
            f"# Data provided for site {site}\n#    TS   parameter     statistic     Description\n"
            f"#   {ts_id}       00060     00003     Discharge, cubic feet per second (Mean)\n#\n"
        )
        buf.write("\t".join(["agency_cd", "site_no", "datetime", vname, f"{vname}_cd"]) + "\n")
        buf.write("5s\t15s\t20d\t14n\t10s\n")
        vals = g["value"].to_numpy(dtype=np.float64)
        txt = np.where(np.isfinite(vals), pd.Series(vals).map("{:g}".format).to_numpy(), "")
        qual = g["qualifier"].fillna("").astype(str).to_numpy() if "qualifier" in g else np.full(len(g), "")
        body = pd.DataFrame(
            {
                "a": "USGS",
                "s": site,
                "d": pd.to_datetime(g["date"]).dt.strftime("%Y-%m-%d"),
                "v": txt,
                "q": qual,
            }
        )
        body.to_csv(buf, sep="\t", header=False, index=False)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def merge_streamflow(ds: xr.Dataset, new: pd.DataFrame) -> xr.Dataset:
    """Extend/overwrite the target of a streamflow sitedata dataset with new daily values.

    ``new`` has columns site_id, date, streamflow_mm (mm/d). The time axis grows to cover the new
    dates (forcings NaN on added days); finite new values overwrite old ones, NaN never erases,
    except on rows whose optional boolean column ``withdrawn`` is true: the publisher withdrew
    that day, and the held value becomes NaN. A ``site_id`` may be the dataset's id or its part
    after the first ``_`` (``01022500`` for ``camels_01022500``).
    """
    where = "merge_streamflow"
    for c in ("site_id", "date", "streamflow_mm"):
        if c not in new.columns:
            raise InputError(where, f"new data lacks column {c!r}; has {list(new.columns)}")
    if ds.attrs.get("domain") != "streamflow":
        raise InputError(where, f"dataset domain is {ds.attrs.get('domain')!r}, not 'streamflow'")
    tgt = target_name(ds)
    sites = [str(s) for s in ds["site"].values]
    pos = {s: i for i, s in enumerate(sites)}
    suffix = {s.split("_", 1)[1]: i for s, i in pos.items() if "_" in s}
    ids = new["site_id"].astype(str).to_numpy()
    row = np.array([pos.get(s, suffix.get(s, -1)) for s in pd.unique(ids)])
    lookup = dict(zip(pd.unique(ids), row, strict=True))
    unknown = [s for s, r in lookup.items() if r < 0]
    if unknown:
        raise InputError(where, f"sites not in the dataset: {unknown[:10]}", "site_id")
    dates = pd.to_datetime(new["date"], errors="coerce").dt.normalize()
    if dates.isna().any():
        raise InputError(where, f"unparseable date in row {int(np.argmax(dates.isna().to_numpy()))}", "date")
    vals = new["streamflow_mm"].to_numpy(dtype=np.float64)
    if len(new) == 0:
        return ds
    key = pd.DataFrame({"r": pd.Series(ids).map(lookup).to_numpy(), "d": dates.to_numpy()})
    if key.duplicated().any():
        k = int(np.argmax(key.duplicated().to_numpy()))
        raise InputError(where, f"duplicate date {dates.iloc[k]:%Y-%m-%d} for site {ids[k]}", "date")
    neg = np.isfinite(vals) & (vals < 0)
    if neg.any():
        k = int(np.argmax(neg))
        raise InputError(
            where,
            f"negative streamflow {vals[k]:g} mm/d for site {ids[k]} on {dates.iloc[k]:%Y-%m-%d}",
            "streamflow_mm",
        )
    t_old = pd.DatetimeIndex(ds["time"].values)
    time = pd.date_range(min(t_old[0], dates.min()), max(t_old[-1], dates.max()), freq="D")
    out = ds.reindex(time=time) if not time.equals(t_old) else ds.copy(deep=True)
    q = out[tgt].transpose("site", "time").values.copy()
    col = time.get_indexer(pd.DatetimeIndex(key["d"]))
    ok = np.isfinite(vals)
    q[key["r"].to_numpy()[ok], col[ok]] = vals[ok]
    if "withdrawn" in new.columns:
        gone = new["withdrawn"].fillna(False).to_numpy(dtype=bool) & ~ok
        q[key["r"].to_numpy()[gone], col[gone]] = np.nan
    out[tgt] = (("site", "time"), q.astype(np.float32), dict(ds[tgt].attrs))
    for v in out.data_vars:  # reindex may upcast to float64 when it inserts NaN
        if out[v].dtype != np.float32:
            out[v] = out[v].astype(np.float32)
        out[v].attrs = dict(ds[v].attrs)
    validate_site_dataset(out, where=where)
    return out


def merge_rdb_folder(
    ds: xr.Dataset, folder: str | Path, *, missing_values: MissingValues | None = None
) -> xr.Dataset:
    """Overwrite a basin dataset's streamflow with the daily discharge of every ``*.rdb`` in ``folder``.

    Discharge (cfs) becomes mm/d by each basin's ``area`` static (km2); a gauge id may be the
    dataset's or its part after the first ``_``. Finite values overwrite, gaps never erase.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "NWIS RDB folder not found")
    files = sorted(folder.glob("*.rdb"))
    if not files:
        raise InputError(folder, "no *.rdb files")
    frame = pd.concat([read_nwis_rdb(f, missing_values=missing_values) for f in files], ignore_index=True)
    if "area" not in ds:
        raise InputError(folder, "the basin data have no 'area' static (km2) to convert cfs to mm/d")
    area = ds["area"].values.astype(np.float64)
    ids = [str(s) for s in ds["site"].values]
    by_id = {**{s: a for s, a in zip(ids, area, strict=True)}}
    by_id |= {s.split("_", 1)[1]: a for s, a in zip(ids, area, strict=True) if "_" in s}
    unknown = sorted(set(frame["site_no"].astype(str)) - set(by_id))
    if unknown:
        raise InputError(folder, f"RDB files name gauges that are not in the basin data: {unknown[:10]}")
    return merge_streamflow(ds, nwis_to_mm_per_day(frame, by_id))
