"""The shared backend: a DuckLake catalog (in PostgreSQL, or in a DuckDB file) over Parquet files.

Each process keeps one in-memory DuckDB with the extensions loaded from their packages (no
download); a call gets a connection of it with the lake attached as its default database, so the
store's SQL (and the documentation's) runs unchanged. With a PostgreSQL catalog any number of processes
on any number of machines read and write at once: a transaction commits through the catalog, and
one that meets a concurrent commit it conflicts with fails as a whole, to be redone by the store.
A DuckDB-file catalog takes one process at a time, like the plain DuckDB file (waited for the
same way), so it is attached for one call only.

DuckLake has no PRIMARY KEY or UNIQUE constraints: tables are created without them and the store
checks each write's keys inside its transaction. DuckLake detects conflicts per table, and only
where a commit deletes: two writers that both only insert (a partition new to both) would both
commit. So every write also bumps its tables' counters in ``store_claims.<table>`` (an UPDATE: a
delete and an insert): two concurrent writes of one table always conflict, and the redone one sees
the other's rows, its key check included. Migrations are ALTER TABLE (ADD COLUMN with the
migration default for old rows, RENAME COLUMN).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from synergy_dagster.errors import ConfigError
from synergy_dagster.store.extensions import load_extensions
from synergy_dagster.store.history import Pruned, prune_lake
from synergy_dagster.store.location import StoreLocation, mask_password
from synergy_dagster.store.retry import Backoff
from synergy_dagster.store.schema import MIGRATION_DEFAULTS, MIGRATION_RENAMES, TABLES

# Retries of a conflicting transaction (the store's) and of the schema set-up: enough for tens of
# writers committing to one table at once, bounded so a stuck catalog fails the step.
MAX_ATTEMPTS = 40
_CONFLICT_MARKERS = ("transaction conflict", "could not serialize access", "deadlock detected")
# ATTACH races of processes creating one catalog at once, and the DuckDB-file catalog's lock.
_ATTACH_RETRY = (
    "Could not set lock",
    "Conflicting lock",
    "Unique file handle conflict",
    "too many clients",
    "the database system is starting up",
)
_INIT_RACE = ("already exists", "duplicate key value")
CLAIMS = "store_claims"  # the schema of the per-table commit counters (see the module docstring)

_SCHEMA_READY: set[tuple[str, str]] = set()  # (catalog, data path) set up by this process

# One in-memory DuckDB per process with the extensions loaded (loaded once: it is slow), its
# kept PostgreSQL-catalog attachments, and the names attachments get.
_ENGINE_LOCK = threading.RLock()
_ENGINE: dict[str, Any] = {"con": None, "postgres": False}
_ATTACHED: dict[tuple[str, str, bool], str] = {}
_ALIASES = itertools.count()
_INHERITED: list[Any] = []


def _engine(postgres: bool) -> duckdb.DuckDBPyConnection:
    if _ENGINE["con"] is None:
        con = duckdb.connect()
        load_extensions(con, ["ducklake"])
        _ENGINE["con"] = con
    if postgres and not _ENGINE["postgres"]:
        load_extensions(_ENGINE["con"], ["postgres"])
        _ENGINE["postgres"] = True
    return _ENGINE["con"]


def _forget_engine_in_child() -> None:
    """A forked child starts its own engine. The parent's stays referenced, never closed here:
    closing it would end the parent's PostgreSQL sessions over the sockets both share."""
    if _ENGINE["con"] is not None:
        _INHERITED.append(_ENGINE["con"])
    _ENGINE.update(con=None, postgres=False)
    _ATTACHED.clear()
    _SCHEMA_READY.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_engine_in_child)


@dataclasses.dataclass(frozen=True)
class LakeTable:
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)
    keys: tuple[str, ...]  # the primary key in the DuckDB-file schema (checked by the store here)


@functools.cache
def lake_tables() -> dict[str, LakeTable]:
    """Each table's columns and key, as DuckDB itself reads the schema (no parsing of the text)."""
    con = duckdb.connect()
    try:
        out = {}
        for name, cols in TABLES.items():
            con.execute(f"CREATE TABLE {name} ({cols})")
            columns = tuple((r[0], r[1]) for r in con.execute(f"DESCRIBE {name}").fetchall())
            row = con.execute(
                "SELECT constraint_column_names FROM duckdb_constraints() "
                "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
                [name],
            ).fetchone()
            out[name] = LakeTable(columns, tuple(row[0]) if row else ())
        return out
    finally:
        con.close()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckLakeBackend:
    def __init__(self, location: StoreLocation, lock_timeout_s: float) -> None:
        self.location = location
        self.lock_timeout_s = lock_timeout_s

    @property
    def path(self) -> Path:
        """Where the bytes go (named by a full-disk error): the data folder, else the catalog's."""
        if self.location.data_path is not None:
            return self.location.data_path
        return Path.cwd() if self.location.on_postgres else Path(self.location.catalog).parent

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        loc = self.location
        with _ENGINE_LOCK:
            cur = _engine(postgres=loc.on_postgres).cursor()  # a connection of its own
        try:
            if loc.on_postgres:
                # Attached once per process and kept: every transaction reads the catalog's newest
                # snapshot, so a kept attachment sees other processes' commits and schema changes.
                key = (loc.catalog, str(loc.data_path), read_only)
                with _ENGINE_LOCK:
                    alias = _ATTACHED.get(key)
                    if alias is None:
                        alias = _ATTACHED[key] = self._attach(cur, read_only)
                cur.execute(f"USE {alias}")
                yield cur
                return
            # A DuckDB-file catalog is locked while attached: attached for this call only (and
            # not under the engine's lock, so that a thread waiting for it never blocks the one
            # that holds it).
            alias = self._attach(cur, read_only)
            try:
                cur.execute(f"USE {alias}")
                yield cur
            finally:
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")  # DETACH is refused inside a transaction
                cur.execute("USE memory")
                cur.execute(f"DETACH {alias}")
        finally:
            cur.close()

    def release(self) -> None:
        """Detach this process's kept attachments of the catalog (they are made again on use)."""
        with _ENGINE_LOCK:
            for key in [k for k in _ATTACHED if k[0] == self.location.catalog]:
                alias = _ATTACHED.pop(key)
                with contextlib.suppress(duckdb.Error):
                    _ENGINE["con"].execute(f"DETACH DATABASE IF EXISTS {alias}")
            _SCHEMA_READY.discard((self.location.catalog, str(self.location.data_path)))

    def _attach(self, con: duckdb.DuckDBPyConnection, read_only: bool) -> str:
        """Attach the lake under a new name, waiting out catalog locks and creation races."""
        loc = self.location
        if loc.data_path is not None:
            loc.data_path.mkdir(parents=True, exist_ok=True)
        if not loc.on_postgres:
            Path(loc.catalog).parent.mkdir(parents=True, exist_ok=True)
        alias = f"lake_{next(_ALIASES)}"
        options = []
        if loc.data_path is not None:
            # DuckLake joins the data path and file names as text: the separator must be there.
            options.append(f"DATA_PATH {_quote(str(loc.data_path).rstrip('/') + '/')}")
        if read_only:
            options.append("READ_ONLY")
        attach = f"ATTACH {_quote('ducklake:' + loc.catalog)} AS {alias}"
        if options:
            attach += f" ({', '.join(options)})"
        backoff = Backoff(self.lock_timeout_s)
        while True:
            try:
                con.execute(attach)
                return alias
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):
                    con.execute(f"DETACH DATABASE IF EXISTS {alias}")
                if not self._attach_may_pass(exc) or not backoff.wait():
                    raise self._attach_error(exc) from None

    @staticmethod
    def _attach_may_pass(exc: duckdb.Error) -> bool:
        text = str(exc)
        if any(m in text for m in _ATTACH_RETRY):
            return True
        # Processes creating one catalog together: all but one fail on the tables the first made.
        return "Failed to initialize DuckLake" in text and any(m in text for m in _INIT_RACE)

    def _attach_error(self, exc: duckdb.Error) -> Exception:
        loc = self.location
        text = mask_password(str(exc))
        if "does not match existing data path" in text:
            stored = text.split("existing data path in the catalog")[-1].strip().split('"')[1:2]
            return ConfigError(
                loc.data_origin,
                f"{loc.data_path} is not the data path this catalog was created with "
                f"({stored[0] if stored else 'see the catalog'}); every process must mount the data "
                "folder at the same path, or leave the data path unset to use the catalog's",
            )
        if "Unable to connect to Postgres" in text or "connection to server" in text:
            return ConfigError(
                loc.origin, f"cannot reach the PostgreSQL catalog of {loc.describe()}: {text.strip()}"
            )
        if "Could not set lock" in text:
            return ConfigError(
                loc.origin,
                f"{loc.describe()}: the catalog file stayed locked by another process for "
                f"{self.lock_timeout_s:.0f} s (a DuckDB-file catalog takes one process at a time; "
                "use a PostgreSQL catalog for many)",
            )
        exc.add_note(f"while opening the metadata store {loc.describe()} (set by {loc.origin})")
        return exc

    def ensure_schema(self) -> None:
        """Create missing tables and columns; idempotent, and safe when many processes do it at
        once (a losing commit is retried and then finds the work done). Once per process."""
        key = (self.location.catalog, str(self.location.data_path))
        if key in _SCHEMA_READY:
            return
        backoff = Backoff(self.lock_timeout_s, MAX_ATTEMPTS, first_s=0.02, cap_s=1.0)
        with self.connect() as con:
            while True:
                con.execute("BEGIN TRANSACTION")
                try:
                    _create_and_migrate(con)
                    con.execute("COMMIT")
                    break
                except duckdb.Error as exc:
                    with contextlib.suppress(duckdb.Error):
                        con.execute("ROLLBACK")
                    if not self.is_conflict(exc) or not backoff.wait():
                        raise
        _SCHEMA_READY.add(key)

    def prune_history(self, keep_s: float, grace_s: float) -> Pruned:
        """:func:`~synergy_dagster.store.history.prune_lake` on this lake; an expiry that meets a
        concurrent commit is redone, as a write is."""
        backoff = Backoff(self.lock_timeout_s, MAX_ATTEMPTS, first_s=0.02, cap_s=1.0)
        with self.connect() as con:
            alias = str(con.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
            data_path = self.location.data_path or _data_path_of(con, alias)
            while True:
                try:
                    return prune_lake(con, alias, data_path, keep_s, grace_s)
                except duckdb.Error as exc:
                    if not self.is_conflict(exc) or not backoff.wait():
                        raise

    @staticmethod
    def is_conflict(exc: BaseException) -> bool:
        """A commit that lost against another writer's: the whole transaction may be redone."""
        if not isinstance(exc, duckdb.Error):
            return False
        text = str(exc).lower()
        return any(m in text for m in _CONFLICT_MARKERS) or (
            "failed to commit ducklake transaction" in text and any(m in text for m in _INIT_RACE)
        )

    @staticmethod
    def claim(con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
        """Make this transaction conflict with every concurrent one writing these tables."""
        for table in sorted(set(tables)):
            con.execute(f"UPDATE {CLAIMS}.{table} SET commits = commits + 1")

    @staticmethod
    def check_keys(con: duckdb.DuckDBPyConnection, table: str, frame: str) -> None:
        """The primary key the DuckDB file enforces, checked after a write's insert (same error)."""
        keys = lake_tables()[table].keys
        if not keys:
            return
        cols = ", ".join(keys)
        null = " OR ".join(f"{k} IS NULL" for k in keys)
        row = con.execute(f"SELECT {cols} FROM {frame} WHERE {null} LIMIT 1").fetchone()
        if row is not None:
            missing = [k for k, v in zip(keys, row, strict=True) if v is None]
            raise duckdb.ConstraintException(
                f"NOT NULL constraint failed: {table}.{missing[0]} (primary key column; checked by the store)"
            )
        dup = con.execute(
            f"SELECT {cols} FROM {table} SEMI JOIN {frame} USING ({cols}) "
            f"GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        if dup is not None:
            shown = ", ".join(f"{k}: {v}" for k, v in zip(keys, dup, strict=True))
            raise duckdb.ConstraintException(
                f'Duplicate key "{shown}" violates primary key constraint of table {table} '
                "(checked by the store: DuckLake has no key constraints)"
            )


def _data_path_of(con: duckdb.DuckDBPyConnection, alias: str) -> Path | None:
    """The data folder the catalog was created with (where its relative file names live)."""
    row = con.execute(
        "SELECT value FROM ducklake_options(?) WHERE option_name = 'data_path'", [alias]
    ).fetchone()
    return Path(str(row[0])) if row and row[0] else None


def _create_and_migrate(con: duckdb.DuckDBPyConnection) -> None:
    have: dict[str, list[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' ORDER BY column_index",
    ).fetchall():
        have.setdefault(table, []).append(column)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {CLAIMS}")
    claims = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ?",
            [CLAIMS],
        ).fetchall()
    }
    for name in lake_tables():
        if name not in claims:
            con.execute(f"CREATE TABLE {CLAIMS}.{name} (commits BIGINT)")
        if name not in claims or not con.execute(f"SELECT count(*) FROM {CLAIMS}.{name}").fetchone()[0]:
            con.execute(f"INSERT INTO {CLAIMS}.{name} VALUES (0)")  # the one row every write updates
    for name, spec in lake_tables().items():
        if name not in have:
            cols = ", ".join(f"{c} {t}" for c, t in spec.columns)
            con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
            continue
        for col, typ in spec.columns:
            if col in have[name]:
                continue
            old = MIGRATION_RENAMES.get(col)
            if old is not None and old in have[name]:
                con.execute(f"ALTER TABLE {name} RENAME COLUMN {old} TO {col}")
                continue
            default = MIGRATION_DEFAULTS.get(col)
            if default is None:
                con.execute(f"ALTER TABLE {name} ADD COLUMN {col} {typ}")
            else:
                # The default fills the rows already there; dropped after, as the file's rebuild
                # leaves no default on the column either.
                con.execute(f"ALTER TABLE {name} ADD COLUMN {col} {typ} DEFAULT {default}")
                con.execute(f"ALTER TABLE {name} ALTER COLUMN {col} DROP DEFAULT")
