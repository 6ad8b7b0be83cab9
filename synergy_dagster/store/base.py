"""The metadata store's API, the same over every backend.

``MetadataStore(location)`` opens the embedded DuckDB file (a path) or a DuckLake catalog
(``ducklake:...``, or a :class:`StoreLocation`; see :mod:`synergy_dagster.store.location`). Every
call opens its own short connection. Writes are idempotent per partition: delete the partition's
rows, insert the new ones and commit, all or nothing; several tables go in one transaction with
:meth:`MetadataStore.replace_many` / :meth:`MetadataStore.transaction`. On DuckLake a transaction
that conflicts with another writer's commit is redone as a whole, with jittered back-off, a
bounded number of times.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd

from synergy_dagster.errors import ConfigError, InputError, StoreConflictError
from synergy_dagster.store.duckdb_file import DuckDBFileBackend
from synergy_dagster.store.ducklake import MAX_ATTEMPTS, DuckLakeBackend
from synergy_dagster.store.history import Pruned
from synergy_dagster.store.location import StoreLocation, duckdb_file, parse_store
from synergy_dagster.store.retry import Backoff
from synergy_dagster.store.schema import TABLES

log = logging.getLogger(__name__)

Writes = list[tuple[str, pd.DataFrame, Mapping[str, Any]]]


class Backend(Protocol):
    """What a backend provides; the store's SQL is the same on each."""

    location: StoreLocation

    @property
    def path(self) -> Path: ...

    def connect(self, read_only: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]: ...

    def ensure_schema(self) -> None: ...

    def is_conflict(self, exc: BaseException) -> bool: ...

    def claim(self, con: duckdb.DuckDBPyConnection, tables: list[str]) -> None: ...

    def check_keys(self, con: duckdb.DuckDBPyConnection, table: str, frame: str) -> None: ...

    def release(self) -> None: ...

    def prune_history(self, keep_s: float, grace_s: float) -> Pruned: ...


class MetadataStore:
    """The project's metadata database (``data/synergy.duckdb`` by default).

    ``location``: a DuckDB file path, a ``ducklake:...`` text or a :class:`StoreLocation`.
    ``lock_timeout_s`` bounds the wait for a DuckDB file (or DuckDB-file catalog) held by another
    process, and the conflict retries of a DuckLake write.
    """

    def __init__(self, location: str | Path | StoreLocation, lock_timeout_s: float = 300.0) -> None:
        if isinstance(location, StoreLocation):
            self.location = location
        elif isinstance(location, Path):
            self.location = duckdb_file(location)
        else:
            self.location = parse_store(location, origin="store location")
        self.lock_timeout_s = lock_timeout_s
        self.retries = 0  # conflicting commits redone by this instance (DuckLake)
        self._backend: Backend = (
            DuckDBFileBackend(self.location, lock_timeout_s)
            if self.location.kind == "duckdb"
            else DuckLakeBackend(self.location, lock_timeout_s)
        )

    def __repr__(self) -> str:
        return f"MetadataStore({self.location.describe()})"

    @property
    def kind(self) -> str:
        return self.location.kind

    @property
    def path(self) -> Path:
        """The DuckDB file, or the DuckLake data folder (where a full disk would be)."""
        return self._backend.path

    def connect(self, read_only: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A connection whose default database holds the tables; closed on exit."""
        return self._backend.connect(read_only)

    def init_schema(self) -> None:
        self._backend.ensure_schema()

    def close(self) -> None:
        """Let go of what this process keeps open for the store (a DuckLake catalog's PostgreSQL
        sessions; nothing for a DuckDB file). Optional: the next call opens it again."""
        self._backend.release()

    def prune_history(self, keep_s: float = 7 * 86400.0, grace_s: float = 3600.0) -> Pruned:
        """Give up the history older than ``keep_s`` seconds and delete the data files only it
        held, once they have been unreferenced for ``grace_s`` (a read that started before the
        expiry may still scan them). DuckLake keeps every replaced partition as a snapshot, so a
        long-lived lake grows with each rematerialisation until pruned; a DuckDB file keeps no
        history (nothing to do). Safe beside running writers (a conflicting commit is redone)."""
        for name, value in (("keep", keep_s), ("grace", grace_s)):
            if not value >= 0:  # NaN too
                raise ConfigError(f"prune_history.{name}", f"must be a number of seconds >= 0, got {value}")
        return self._backend.prune_history(float(keep_s), float(grace_s))

    def replace_rows(self, table: str, df: pd.DataFrame, where: Mapping[str, Any]) -> int:
        """Delete the rows matching ``where`` (the partition) and insert ``df``, in one transaction.

        Columns of ``df`` must be a subset of the table's; missing ones become NULL.
        """
        self.replace_many([(table, df, where)])
        return len(df)

    def replace_many(self, writes: Writes) -> None:
        """Several :meth:`replace_rows` in ONE transaction (e.g. a model's row and its learning
        curve): either all tables change or none."""
        with self.transaction(writes):
            pass

    @contextlib.contextmanager
    def transaction(self, writes: Writes) -> Iterator[None]:
        """:meth:`replace_many` that yields before COMMIT: the rows are written (and checked) on
        enter, committed on a clean exit and rolled back if the block raises. For
        :func:`synergy_dagster.io_utils.staged_outputs`, which renames an asset's files inside it so
        that files and rows change together.

        A commit that conflicts with another writer's (DuckLake) is redone from BEGIN: the writes
        are applied again to the newest snapshot and committed; the block is not run again (its
        files are in place and go with whichever attempt commits). The last failure raises
        :class:`StoreConflictError` naming the tables; nothing was committed then."""
        self.init_schema()
        # Short first waits: a commit is brief (docs/results.md), so the writer that won is soon done.
        backoff = Backoff(self.lock_timeout_s, MAX_ATTEMPTS, first_s=0.02, cap_s=1.0)
        entered = False
        with self.connect() as con:
            while True:
                in_block = False
                con.execute("BEGIN TRANSACTION")
                try:
                    self._apply(con, writes)
                    for i, (table, df, _) in enumerate(writes):
                        if len(df):
                            self._backend.check_keys(con, table, f"frame_{i}")
                    self._backend.claim(con, [w[0] for w in writes])
                    if not entered:
                        entered = in_block = True
                        yield
                        in_block = False
                    con.execute("COMMIT")
                    return
                except BaseException as exc:
                    # a failed COMMIT may already have ended the transaction; keep the first error
                    with contextlib.suppress(duckdb.Error):
                        con.execute("ROLLBACK")
                    if in_block or not self._backend.is_conflict(exc):
                        raise
                    if not backoff.wait():
                        tables = sorted({w[0] for w in writes})
                        raise StoreConflictError(
                            f"{self.location.describe()}: the write to {', '.join(tables)} conflicted "
                            f"with other writers {backoff.waits + 1} times in {backoff.elapsed_s:.1f} s "
                            f"and was not committed; last conflict: {str(exc).strip().splitlines()[-1]}"
                        ) from exc
                    self.retries += 1
                    log.info("metadata store: commit to %s conflicted, retrying", [w[0] for w in writes])

    @staticmethod
    def _apply(con: duckdb.DuckDBPyConnection, writes: Writes) -> None:
        """Delete each write's partition and insert its frame ``frame_<i>`` (inside the caller's
        transaction)."""
        for i, (table, df, where) in enumerate(writes):
            if table not in TABLES:
                raise InputError("table", f"unknown table {table!r}")
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            extra = sorted(set(df.columns) - set(cols))
            if extra:
                raise InputError(table, f"columns not in the table: {extra}")
            con.register(f"frame_{i}", df.reindex(columns=cols))
            cond = " AND ".join(f"{k} = ?" for k in where) or "TRUE"
            con.execute(f"DELETE FROM {table} WHERE {cond}", list(where.values()))
            if len(df):
                con.execute(f"INSERT INTO {table} SELECT * FROM frame_{i}")

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """A read-only query (any number of processes at once on DuckLake)."""
        self.init_schema()
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).df()

    def count(self, table: str, where: Mapping[str, Any] | None = None) -> int:
        where = where or {}
        cond = " AND ".join(f"{k} = ?" for k in where) or "TRUE"
        return int(
            self.query(f"SELECT count(*) AS n FROM {table} WHERE {cond}", list(where.values()))["n"][0]
        )
