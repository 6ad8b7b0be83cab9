"""The embedded backend: one DuckDB file (the default; a laptop's or one machine's store).

DuckDB allows one read-write process per file and blocks even readers while it is open, so every
call opens, works and closes; a lock held by another process is waited for with back-off instead
of failing the step. Migrations rebuild a table in one transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

from synergy_dagster.errors import ConfigError
from synergy_dagster.store.history import Pruned
from synergy_dagster.store.location import StoreLocation
from synergy_dagster.store.retry import Backoff
from synergy_dagster.store.schema import MIGRATION_DEFAULTS, MIGRATION_RENAMES, TABLES

_LOCK_MARKERS = ("lock", "Conflicting lock", "Could not set lock")


class DuckDBFileBackend:
    def __init__(self, location: StoreLocation, lock_timeout_s: float) -> None:
        assert location.path is not None
        self.location = location
        self.file = location.path
        self.lock_timeout_s = lock_timeout_s

    @property
    def path(self) -> Path:
        return self.file

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        backoff = Backoff(self.lock_timeout_s)
        while True:
            try:
                if read_only and not self.file.exists():
                    duckdb.connect(str(self.file)).close()  # create it; read-only needs a file
                con = duckdb.connect(str(self.file), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "created with an newer version" in str(exc) or "newer version of DuckDB" in str(exc):
                    raise self._newer_file_error() from exc
                if not any(m in str(exc) for m in _LOCK_MARKERS) or not backoff.wait():
                    raise
        try:
            yield con
        finally:
            con.close()

    def _newer_file_error(self) -> ConfigError:
        # duckdb 2.x wrote such files before the pin to 1.5.5 (which the DuckLake extensions need).
        return ConfigError(
            self.location.origin,
            f"{self.file} was written by a newer DuckDB than the installed {duckdb.__version__} "
            "(pinned for the DuckLake extensions) and cannot be read: move it aside and rematerialise "
            "(make study), or EXPORT DATABASE it with that DuckDB and IMPORT DATABASE with this one",
        )

    def ensure_schema(self) -> None:
        # Cheap on a local file, so done on every use: a file replaced meanwhile is still set up.
        with self.connect() as con:
            for name, cols in TABLES.items():
                con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
                _migrate(con, name, cols)

    def is_conflict(self, exc: BaseException) -> bool:
        return False  # one writer at a time: a transaction never meets another one's commit

    def release(self) -> None:
        """Nothing is kept open between calls."""

    def claim(self, con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
        """Nothing to do: the file's lock already lets one writer in at a time."""

    def check_keys(self, con: duckdb.DuckDBPyConnection, table: str, frame: str) -> None:
        """Nothing to do: the file enforces its primary keys itself."""

    def prune_history(self, keep_s: float, grace_s: float) -> Pruned:
        """Nothing to do: a DuckDB file keeps no history (a replace frees its rows' space)."""
        return Pruned(0, 0, 0)


def _migrate(con: duckdb.DuckDBPyConnection, table: str, cols: str) -> None:
    """Bring a table made by an older version up to the current columns (and keys) in one
    transaction: rebuild it and copy the rows; a renamed column keeps its values, a new column is
    NULL or its migration default, a dropped one is left behind."""
    have = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    con.execute(f"CREATE TEMP TABLE __probe ({cols})")
    want = [r[0] for r in con.execute("DESCRIBE __probe").fetchall()]
    con.execute("DROP TABLE __probe")
    if not set(want) - set(have):
        return
    select = ", ".join(_migrated_column(c, have) for c in want)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"ALTER TABLE {table} RENAME TO {table}__old")
        con.execute(f"CREATE TABLE {table} ({cols})")
        con.execute(f"INSERT INTO {table} SELECT {select} FROM {table}__old")
        con.execute(f"DROP TABLE {table}__old")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _migrated_column(col: str, have: list[str]) -> str:
    """The SELECT expression that fills ``col`` from an older table with columns ``have``."""
    if col in have:
        return col
    old = MIGRATION_RENAMES.get(col)
    if old is not None and old in have:
        return f"{old} AS {col}"
    return f"{MIGRATION_DEFAULTS.get(col, 'NULL')} AS {col}"
