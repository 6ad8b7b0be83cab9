"""A DuckLake's history: every commit is a snapshot that keeps the rows it replaced (time travel),
so a lake that is rematerialised often grows until old snapshots are expired and the data files
only they referenced are deleted. Here: that pruning, as DuckLake's own maintenance calls."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import duckdb

MAX_AGE_S = 1000 * 365.25 * 86400.0  # longer ages (infinity too) keep everything: no overflow


@dataclasses.dataclass(frozen=True)
class Pruned:
    """What a pruning removed."""

    snapshots: int  # snapshots expired (their time travel given up)
    files: int  # data files deleted (those only expired snapshots referenced)
    bytes: int  # their size on disk, as listed by a dry run just before the deletion


def prune_lake(
    con: duckdb.DuckDBPyConnection, alias: str, data_path: Path | None, keep_s: float, grace_s: float
) -> Pruned:
    """Expire the snapshots of the lake attached as ``alias`` older than ``keep_s`` seconds (the
    newest is always kept), then delete the data files unreferenced for more than ``grace_s``.

    ``data_path`` resolves relative file names for the size count. Runs in the caller's
    connection; each call is its own DuckLake transaction.
    """
    lake = alias.replace("'", "''")
    keep_us, grace_us = (int(min(s, MAX_AGE_S) * 1e6) for s in (keep_s, grace_s))
    expired = con.execute(
        f"CALL ducklake_expire_snapshots('{lake}', older_than => now() - to_microseconds(?))", [keep_us]
    ).fetchall()
    cleanup = f"CALL ducklake_cleanup_old_files('{lake}', {{}}older_than => now() - to_microseconds(?))"
    due = [str(r[0]) for r in con.execute(cleanup.format("dry_run => true, "), [grace_us]).fetchall()]
    size = sum(_size(p, data_path) for p in due)
    deleted = con.execute(cleanup.format(""), [grace_us]).fetchall()
    return Pruned(len(expired), len(deleted), size)


def _size(path: str, data_path: Path | None) -> int:
    full = Path(path) if os.path.isabs(path) or data_path is None else data_path / path
    try:
        return full.stat().st_size
    except OSError:  # already gone, or on object storage
        return 0
