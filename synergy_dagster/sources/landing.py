"""Streamflow that arrives after the source was read: the ingest of landed files, without Dagster.

Each landed file (NWIS RDB, CAMELS-US or Caravan CSV in the landing folder) is validated on its
own first (:func:`check_landed`: read, converted to mm/d, range-checked and trial-merged into its
sites of the source) from a private copy that keeps its name. A valid file is archived by content
hash under ``<work>/landed/archive`` and added to the ledger of accumulated updates
(``<work>/landed/streamflow_updates.parquet``); an invalid one is quarantined under
``<work>/landed/rejected`` (the file and ``<stored name>.reason.txt``) and leaves the landing
folder, so it never blocks later files. The ledger is then merged into the streamflow source and
the tagged sites; it is written only after that merge succeeded in memory, so bad values never
reach it (rows an older version let in are moved out on the next ingest). Re-running with no file
re-applies the ledger (after ``raw_basins`` rebuilt the source).

A Water Data API fetch file (``usgs_daily_*.json``) also says which days were asked for: inside
those windows the API is the truth. Against the values held, each day is new, revised, withdrawn
(held, but no value any more: the ledger row erases it, with the qualifier as its reason) or
approved (same value, new approval status); every such change goes to the revision log
(``<work>/landed/streamflow_revisions.parquet``: site, day, old, new, statuses, reason, file, when)
and only value changes decide what is retrained. The new USGS gauges of the registry
(:mod:`synergy_dagster.sources.usgs_registry`) are known sites too: their rows are converted with
the registry's drainage area and kept in the ledger (compared with the ledger, as they are not in
the source until their site pack lands). The Dagster asset
``landed_streamflow`` wires resources to :func:`ingest_landed` and writes the store rows; errors
are :class:`~synergy_dagster.errors.InputError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import atomic_path, file_sha256, write_netcdf
from synergy_dagster.layout import Layout
from synergy_dagster.sources.nwis import merge_streamflow
from synergy_dagster.sources.nwis_client import (
    ANNOTATIONS,
    landed_kind,
    match_site_ids,
    read_landed_file,
    safe_landing_file,
    to_streamflow_mm,
    usgs_site_number,
)
from synergy_dagster.sources.plausibility import check_variable
from synergy_dagster.sources.sitedata import target_name
from synergy_dagster.sources.usgs_flags import flag_counts, with_flags
from synergy_dagster.sources.usgs_registry import read_registry, registry_areas
from synergy_dagster.sources.waterdata_file import read_daily_file

DOMAIN = "streamflow"  # landed data are streamflow only
SOURCE_NAME = f"{DOMAIN}_landed"  # its row in the store's sources table

_log = logging.getLogger(__name__)
CHANGE_COLUMNS = [
    "site_id", "date", "change", "old", "new", "old_status", "new_status", "qualifier", "reason",
]  # fmt: skip
VALUE_CHANGES = ("new", "revised", "withdrawn")  # what retrains; "approved" alone does not
RTOL = 1e-4  # the source holds float32 mm/d: closer than this is the same value


@dataclass
class Quarantined:
    """A landed file refused by validation and moved aside (``stored_as`` under landed/rejected)."""

    name: str
    sha256: str
    reason: str
    stored_as: str
    rejected_at: datetime = field(default_factory=datetime.now)


@dataclass
class IngestResult:
    """What one ingest did: per-file outcome and the whole ledger after it (None when empty)."""

    ingested: list[dict[str, object]] = field(default_factory=list)  # name, sha256, rows
    rejected: list[str] = field(default_factory=list)  # names refused (unsafe path, unknown kind)
    quarantined: list[Quarantined] = field(default_factory=list)  # failed validation, moved aside
    unknown: set[str] = field(default_factory=set)  # gauges not in the streamflow source
    updates: pd.DataFrame | None = None
    n_sites_patched: int = 0  # tagged sites whose series were patched
    changes: pd.DataFrame | None = None  # this run's revision-log rows (Water Data fetches)
    flag_counts: dict[str, int] = field(default_factory=dict)  # source days per USGS flag


@dataclass
class CheckedFile:
    """One landed file read and validated: its rows as landed, in mm/d for known sites, unknown gauges."""

    frame: pd.DataFrame  # gauge, date, value, units (see read_landed_file)
    tidy: pd.DataFrame  # site_id, date, streamflow_mm (+ annotations, withdrawn, reason) of known sites
    unknown: set[str]
    changes: pd.DataFrame | None = None  # CHANGE_COLUMNS against the source; None: not a fetch file

    def affected_rows(self) -> pd.DataFrame:
        """gauge, date, value of what this file changes (what decides the partitions to retrain)."""
        if self.changes is None:
            return self.frame
        ch = self.changes[self.changes["change"].isin(VALUE_CHANGES)]
        value = ch["new"].where(np.isfinite(ch["new"].to_numpy(dtype=np.float64)), ch["old"])
        return pd.DataFrame(
            {"gauge": ch["site_id"].to_numpy(), "date": ch["date"].to_numpy(), "value": value.to_numpy()}
        )


def landed_path(landing_dir: Path, name: str) -> tuple[Path, str]:
    """The file ``name`` inside the landing folder and its kind; InputError when unsafe or unknown."""
    path = safe_landing_file(landing_dir, name)
    kind = landed_kind(name)
    if kind is None:
        raise InputError(
            landing_dir / name, "not a landed streamflow file (.rdb, _streamflow_qc.txt or .csv)"
        )
    return path, kind


def stored_name(name: str, sha: str) -> str:
    """The name a landed file is archived or quarantined under: content hash prefix + its name."""
    return f"{sha[:16]}__{name}"  # keeps the name: CAMELS-US files carry the gauge in it


def archive_landed(path: Path, name: str, sha: str, archive: Path) -> Path:
    """Copy a landed file into the archive under its content hash (once) and return the copy."""
    kept = archive / stored_name(name, sha)
    if not kept.exists():
        with atomic_path(kept) as tmp:
            shutil.copyfile(path, tmp)
    return kept


def quarantined_hashes(layout: Layout) -> set[str]:
    """Hash prefixes (16 hex digits) of the files in the quarantine: the sensor never re-requests them."""
    folder = layout.landed_rejected()
    if not folder.is_dir():
        return set()
    return {p.name.split("__", 1)[0] for p in folder.glob("*__*.reason.txt")}


def check_landed(
    path: Path,
    kind: str,
    site_ids: Sequence[str],
    areas: Mapping[str, float],
    source: xr.Dataset | None = None,
    ledger: pd.DataFrame | None = None,
) -> CheckedFile:
    """Read and validate one landed file on its own, before anything is merged; InputError if bad.

    ``path`` must carry the landed file's own name (the readers check gauge ids against it). The
    mm/d values of known sites are range-checked per site (the Caravan and CAMELS-US landing
    readers check numbers, not physics) and, with ``source``, merged into a copy of just the
    touched sites, so every check of the real merge runs here, on this file alone. A Water Data
    fetch is compared with ``source`` (values) and ``ledger`` (approval status held) day by day
    inside its windows: ``changes`` lists what it changes, ``tidy`` holds withdrawn days too.
    """
    if kind == "waterdata_json":
        rows, windows = read_daily_file(path)
        frame = rows.drop(columns="last_modified")
        site_map = match_site_ids(windows["gauge"].unique(), site_ids)
        unknown = set(windows["gauge"]) - set(site_map)
        tidy, changes = _against_held(
            to_streamflow_mm(frame, site_map, areas), windows, site_map, source, ledger
        )
    else:
        frame = read_landed_file(path, kind)
        site_map = match_site_ids(frame["gauge"].unique(), site_ids)
        unknown = set(frame["gauge"].astype(str)) - set(site_map)
        tidy = to_streamflow_mm(frame, site_map, areas)
        tidy, changes = tidy[np.isfinite(tidy["streamflow_mm"].to_numpy())], None  # missing never erases
    check_updates(tidy[np.isfinite(tidy["streamflow_mm"].to_numpy(dtype=np.float64))], path)
    if source is not None and len(tidy):
        # new gauges not yet in the source (no site pack) live in the ledger only
        touched = sorted(set(tidy["site_id"].astype(str)) & {str(s) for s in source["site"].values})
        try:
            merge_streamflow(source.sel(site=touched), tidy[tidy["site_id"].isin(touched)])
        except InputError as exc:  # name the landed file, not the merge
            raise InputError(path, exc.problem, exc.where) from exc
    return CheckedFile(frame, tidy.reset_index(drop=True), unknown, changes)


def _held_values(
    source: xr.Dataset | None, site: np.ndarray, day: np.ndarray, ledger: pd.DataFrame | None = None
) -> np.ndarray:
    """The mm/d held at (site, day) pairs: the source's, or for a site not in the source (a new
    gauge without its site pack) the ledger's; NaN where nothing is held."""
    out = np.full(len(site), np.nan)
    if not len(site):
        return out
    in_src = np.zeros(len(site), dtype=bool)
    if source is not None:
        in_src = np.isin(site.astype(str), source["site"].values.astype(str))
        touched = sorted(set(site[in_src].tolist()))
        if touched:
            block = source[target_name(source)].sel(site=touched).transpose("site", "time").values
            si = pd.Index(touched).get_indexer(site[in_src])
            ti = pd.DatetimeIndex(source["time"].values).get_indexer(pd.DatetimeIndex(day[in_src]))
            vals = np.full(len(si), np.nan)
            vals[ti >= 0] = block[si[ti >= 0], ti[ti >= 0]]
            out[in_src] = vals
    if ledger is not None and len(ledger) and not in_src.all():
        rows = ledger[~ledger["withdrawn"].fillna(False).astype(bool)] if "withdrawn" in ledger else ledger
        held = rows.set_index(["site_id", "date"])["streamflow_mm"]
        idx = held.index.get_indexer(
            pd.MultiIndex.from_arrays([site[~in_src], pd.DatetimeIndex(day[~in_src])])
        )
        out[~in_src] = np.where(idx >= 0, held.to_numpy(dtype=np.float64)[idx], np.nan)
    return out


def _against_held(
    tidy_all: pd.DataFrame,
    windows: pd.DataFrame,
    site_map: Mapping[str, str],
    source: xr.Dataset | None,
    ledger: pd.DataFrame | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ledger rows, changes) of a fetch: every day of every window against the value held.

    Ledger rows: the finite values, and the days without one (withdrawn, with a reason) where a
    value was held or the API named the day. Changes: new, revised, withdrawn, approved days.
    """
    win = windows[windows["gauge"].isin(list(site_map))]
    n = ((win["end"] - win["start"]).dt.days + 1).to_numpy(dtype=np.int64)
    offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    grid = pd.DataFrame(
        {
            "site_id": np.repeat(win["gauge"].map(site_map).to_numpy(dtype=object), n),
            "date": np.repeat(win["start"].to_numpy(dtype="datetime64[ns]"), n)
            + offsets.astype("timedelta64[D]"),
        }
    ).drop_duplicates(["site_id", "date"])
    g = grid.merge(tidy_all, on=["site_id", "date"], how="left", indicator=True)
    present = (g.pop("_merge") == "both").to_numpy()
    for col in ANNOTATIONS:
        g[col] = g[col].fillna("").astype(str) if col in g else ""
    new = g["streamflow_mm"].to_numpy(dtype=np.float64)
    old = _held_values(source, g["site_id"].to_numpy(dtype=object), g["date"].to_numpy(), ledger)
    fin_new, fin_old = np.isfinite(new), np.isfinite(old)
    with np.errstate(invalid="ignore"):
        same = fin_new & fin_old & np.isclose(new, old, rtol=RTOL, atol=1e-6)
    old_status = np.full(len(g), "", dtype=object)
    if ledger is not None and "approval_status" in ledger.columns and len(ledger):
        held = ledger.set_index(["site_id", "date"])["approval_status"].fillna("").astype(str)
        idx = held.index.get_indexer(pd.MultiIndex.from_frame(g[["site_id", "date"]]))
        old_status[idx >= 0] = held.to_numpy()[idx[idx >= 0]]
    new_status = g["approval_status"].to_numpy(dtype=object)
    change = np.select(
        [
            fin_new & ~fin_old,
            fin_new & fin_old & ~same,
            ~fin_new & fin_old,
            same & (old_status != "") & (old_status != new_status),
        ],
        ["new", "revised", "withdrawn", "approved"],
        default="",
    )
    qual = g["qualifier"].to_numpy(dtype=object)
    reason = np.where(
        fin_new,
        "",
        np.where(
            qual != "",
            "qualifier " + qual.astype(str),
            np.where(present, "no value in the answer", "not in the answer any more"),
        ),
    )
    g["withdrawn"] = ~fin_new
    g["reason"] = reason
    keep = fin_new | fin_old | present
    changes = pd.DataFrame(
        {
            "site_id": g["site_id"].to_numpy(),
            "date": g["date"].to_numpy(),
            "change": change,
            "old": old,
            "new": new,
            "old_status": old_status,
            "new_status": new_status,
            "qualifier": qual,
            "reason": reason,
        }
    )[change != ""]
    return g[keep].reset_index(drop=True), changes.reset_index(drop=True)


def check_updates(tidy: pd.DataFrame, source: str | Path) -> None:
    """Plausible mm/d streamflow and one value per (site, date); InputError naming site and date."""
    dup = tidy.duplicated(["site_id", "date"])
    if dup.any():
        row = tidy[dup.to_numpy()].iloc[0]
        raise InputError(
            source, f"duplicate date {pd.Timestamp(row['date']):%Y-%m-%d} for site {row['site_id']}"
        )
    for site, g in tidy.groupby("site_id", sort=True):
        days = pd.DatetimeIndex(g["date"])
        check_variable(
            g["streamflow_mm"].to_numpy(np.float64)[None, :], "streamflow", "mm/d", [str(site)], days, source
        )


def _reason(exc: Exception, staged: Path, shown: Path) -> str:
    """The error as the user should read it: naming the landed file, not the private copy."""
    msg = str(exc).replace(str(staged), str(shown))
    if not isinstance(exc, InputError):  # a reader bug; still, one file must not block the others
        msg = f"unexpected {type(exc).__name__} while reading (please report): {msg}"
    return msg if msg.startswith(str(shown)) else f"{shown}: {msg}"


def quarantine(staged: Path, name: str, sha: str, reason: str, layout: Layout) -> Quarantined:
    """Move a staged copy into landed/rejected with ``<stored name>.reason.txt`` beside it."""
    folder = layout.landed_rejected()
    target = folder / stored_name(name, sha)
    now = datetime.now()
    note = (
        f"file: {name}\nsha256: {sha}\nrejected_at: {now.isoformat(timespec='seconds')}\nreason: {reason}\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(target.with_name(target.name + ".reason.txt")) as tmp:
        tmp.write_text(note, encoding="utf-8")
    os.replace(staged, target)  # same file system: the staging folder is under landed/
    return Quarantined(name, sha, reason, str(target), now)


def merge_updates(old: pd.DataFrame | None, new_frames: Sequence[pd.DataFrame]) -> pd.DataFrame | None:
    """The ledger ``old`` with ``new_frames`` on top: the newest value per (site_id, date) wins."""
    frames = [f for f in ([old] if old is not None else []) + list(new_frames) if len(f)]
    if not frames:
        return None
    out = (
        pd.concat(frames, ignore_index=True)
        .drop_duplicates(["site_id", "date"], keep="last")
        .sort_values(["site_id", "date"])
        .reset_index(drop=True)
    )
    if any(c in out.columns for c in (*ANNOTATIONS, "withdrawn")):  # older rows: no annotations
        for col in (*ANNOTATIONS, "reason"):
            out[col] = out[col].fillna("").astype(str) if col in out.columns else ""
        out["withdrawn"] = out["withdrawn"].fillna(False).astype(bool) if "withdrawn" in out else False
    return out


def revisions_path(layout: Layout) -> Path:
    """The revision log: every change a Water Data fetch made to a held day (CHANGE_COLUMNS + file,
    sha256, recorded_at)."""
    return layout.landed_dir() / f"{DOMAIN}_revisions.parquet"


def append_revisions(layout: Layout, frames: Sequence[pd.DataFrame]) -> pd.DataFrame | None:
    """Add ``frames`` to the revision log (atomic; a change of a file already logged is not logged twice)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return None
    path = revisions_path(layout)
    old = [pd.read_parquet(path)] if path.exists() else []
    log = (
        pd.concat(old + list(frames), ignore_index=True)
        .drop_duplicates(["sha256", "site_id", "date", "change"], keep="first")
        .reset_index(drop=True)
    )
    with atomic_path(path) as tmp:
        log.to_parquet(tmp, index=False)
    return log


def _heal_ledger(
    layout: Layout, old: pd.DataFrame, result: IngestResult, log: logging.Logger
) -> tuple[pd.DataFrame, bool]:
    """The ledger without the rows of files whose values fail today's checks (an older version
    merged before validating); those files are quarantined. Returns (ledger, whether it changed)."""
    keep = np.ones(len(old), dtype=bool)
    for (name, sha), g in old.groupby(["file", "sha256"], sort=False):
        try:
            check_updates(g, str(name))
        except InputError as exc:
            keep[old.index.get_indexer(g.index)] = False
            kept = layout.landed_archive() / stored_name(str(name), str(sha))
            reason = f"removed from the ledger of landed updates: {exc}"
            log.warning(f"quarantined {name}: {reason}")
            if kept.exists():
                result.quarantined.append(quarantine(kept, str(name), str(sha), reason, layout))
            else:
                result.quarantined.append(Quarantined(str(name), str(sha), reason, ""))
    return old[keep].reset_index(drop=True), not keep.all()


def ingest_landed(
    layout: Layout,
    landing_dir: Path,
    files: Sequence[tuple[str, str]],
    log: logging.Logger = _log,
) -> IngestResult:
    """Validate, then archive and merge the landed ``files`` ((name, expected sha256 or "")).

    Unsafe or unknown names are logged and skipped (``rejected``); a file that fails validation is
    quarantined (``quarantined``: moved from the landing folder to landed/rejected with its
    reason) while the other files are ingested. Missing values never erase held ones, except the
    days a Water Data fetch withdraws. Writes the revision log (fetch files, in the order given:
    each compared with the state the previous one left), the ledger (when a file was ingested),
    the streamflow source and the tagged sites (when kept).
    """
    src_path = layout.source_nc(DOMAIN)
    if not src_path.exists():
        raise InputError(src_path, "no streamflow source here: materialise raw_basins (prepare_job) first")
    ds = xr.load_dataset(src_path)
    site_ids = [str(s) for s in ds["site"].values]
    areas = dict(zip(site_ids, ds["area"].values.astype(float), strict=True)) if "area" in ds else {}
    registry = read_registry(layout)  # new gauges: known sites whose rows live in the ledger until packed
    fresh = registry[~registry["site_id"].isin(site_ids)]
    known_ids = site_ids + fresh["site_id"].astype(str).tolist()
    areas |= registry_areas(fresh)
    result = IngestResult()
    new_frames = []
    change_frames = []
    upath = layout.landed_updates(DOMAIN)
    held = pd.read_parquet(upath) if upath.exists() else None  # approval status held, per day
    layout.landed_dir().mkdir(parents=True, exist_ok=True)
    for name, expected_sha in files:
        try:
            path, kind = landed_path(landing_dir, name)
        except InputError as exc:
            log.error(f"skipped: {exc}")
            result.rejected.append(name)
            continue
        # A private copy under its own name: validated, archived and quarantined as one content,
        # whatever happens to the landing file meanwhile (and the readers see the real name).
        with tempfile.TemporaryDirectory(prefix=".staging-", dir=layout.landed_dir()) as tmp_dir:
            staged = Path(tmp_dir) / name
            shutil.copyfile(path, staged)
            sha = file_sha256(staged)
            if expected_sha and sha != expected_sha:
                log.warning(f"{name} changed since the sensor saw it; ingesting its current content")
            try:
                checked = check_landed(staged, kind, known_ids, areas, ds, held)
            except (OSError, MemoryError):
                raise  # the machine, not the file: fail the run, nothing was written
            except Exception as exc:  # noqa: BLE001 - one bad file must never block the others
                reason = _reason(exc, staged, landing_dir / name)
                log.warning(f"quarantined {name}: {reason}")
                result.quarantined.append(quarantine(staged, name, sha, reason, layout))
                if path.is_file() and file_sha256(path) == sha:  # keep a correction dropped meanwhile
                    path.unlink()
                continue
            # Archive only what passed: later rebuilds never depend on the landing folder.
            archive_landed(staged, name, sha, layout.landed_archive())
        result.unknown |= checked.unknown
        new_frames.append(checked.tidy.assign(file=name, sha256=sha))
        if checked.changes is not None:
            change_frames.append(checked.changes.assign(file=name, sha256=sha, recorded_at=datetime.now()))
            if len(checked.tidy):  # the next fetch file of this batch is compared with this one's result
                ds = merge_streamflow(ds, checked.tidy[checked.tidy["site_id"].isin(site_ids)])
                held = merge_updates(held, [checked.tidy])
        result.ingested.append({"name": name, "sha256": sha, "rows": len(checked.tidy)})
    if result.unknown:
        log.warning(f"gauges not in the streamflow source, ignored: {sorted(result.unknown)[:20]}")
    old, healed = (None, False)
    if upath.exists():
        old, healed = _heal_ledger(layout, pd.read_parquet(upath), result, log)
    updates = merge_updates(old, new_frames)
    merged = None
    if updates is not None and len(updates):
        applied = updates[updates["site_id"].isin(site_ids)]
        # in memory: the ledger is written only if this works; the status flags rebuilt from it
        merged = with_flags(merge_streamflow(ds, applied), applied)
    if change_frames:
        # Before the ledger: a run that fails after this logs nothing twice when re-run (dedup by file).
        append_revisions(layout, change_frames)
        result.changes = pd.concat(change_frames, ignore_index=True)
    if (new_frames or healed) and updates is not None:
        with atomic_path(upath) as tmp:
            updates.to_parquet(tmp, index=False)
    elif healed:
        upath.unlink()
    if merged is not None and updates is not None:
        write_netcdf(merged, src_path)
        result.flag_counts = flag_counts(merged)
        result.n_sites_patched = _patch_tagged_sites(layout, updates[updates["site_id"].isin(site_ids)])
    result.updates = updates
    return result


def _patch_tagged_sites(layout: Layout, updates: pd.DataFrame) -> int:
    """Merge the updates into the tagged sites the training sets read; returns the sites patched."""
    sites_nc = layout.sites_nc(DOMAIN)
    if not sites_nc.exists():
        return 0
    sites_ds = xr.load_dataset(sites_nc)
    kept_ids = {str(s) for s in sites_ds["site"].values}
    part = updates[updates["site_id"].isin(kept_ids)]
    if not len(part):
        return 0
    write_netcdf(with_flags(merge_streamflow(sites_ds, part), part), sites_nc)
    return int(part["site_id"].nunique())


def landed_source_row(layout: Layout, updates: pd.DataFrame) -> pd.DataFrame:
    """The store's ``sources`` row describing the ledger (hash over the contents of its files)."""
    return pd.DataFrame(
        [
            {
                "source_name": SOURCE_NAME,
                "domain": DOMAIN,
                "path": str(layout.landed_dir()),
                "format": "landed",
                "content_hash": hashlib.sha256(
                    "".join(sorted(updates["sha256"].unique())).encode()
                ).hexdigest(),
                "n_sites": int(updates["site_id"].nunique()),
                "period_start": updates["date"].min().date(),
                "period_end": updates["date"].max().date(),
                "n_rows": len(updates),
                "n_valid_target": int(np.isfinite(updates["streamflow_mm"].to_numpy(dtype=np.float64)).sum()),
                "loaded_at": datetime.now(),
            }
        ]
    )


def tracked_usgs_sites(
    layout: Layout, explicit: Sequence[str] = (), new_gauges: Sequence[str] = ()
) -> list[str]:
    """USGS numbers of the gauges the study tracks (kept sites, else every source site), with the
    study's ``new_gauges`` (tracked from registration on, with or without their site pack)."""
    if explicit:
        return sorted({usgs_site_number(s) or s for s in explicit} | set(new_gauges))
    table = layout.sites_table(DOMAIN)
    if table.exists():
        sites = pd.read_parquet(table)
        ids = sites.loc[sites["kept"], "site_id"].astype(str)
    elif layout.source_nc(DOMAIN).exists():
        with xr.open_dataset(layout.source_nc(DOMAIN)) as ds:
            ids = pd.Series([str(s) for s in ds["site"].values])
    else:
        return sorted(set(new_gauges))
    return sorted({n for n in map(usgs_site_number, ids) if n} | set(new_gauges))


def newest_date(layout: Layout) -> date | None:
    """The newest day with data held: the source's time axis or the landed updates."""
    days = []
    if layout.source_nc(DOMAIN).exists():
        with xr.open_dataset(layout.source_nc(DOMAIN)) as ds:
            days.append(pd.Timestamp(ds["time"].values[-1]).date())
    updates = layout.landed_updates(DOMAIN)
    if updates.exists():
        days.append(pd.read_parquet(updates, columns=["date"])["date"].max().date())
    return max(days) if days else None
