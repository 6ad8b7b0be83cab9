"""A short-lived-connection wrapper over one DuckDB file.

DuckDB allows one read-write process per file and blocks even readers while it is open, so every
call opens, works inside one transaction and closes; a lock held by another process is retried
with back-off instead of failing the step. Writes are idempotent per partition: delete the rows
of the partition, insert the new ones, commit — all or nothing.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from synergy_dagster.errors import InputError
from synergy_dagster.store.schema import MIGRATION_DEFAULTS, MIGRATION_RENAMES, TABLES

_LOCK_MARKERS = ("lock", "Conflicting lock", "Could not set lock")


class MetadataStore:
    """The project's metadata database (``data/synergy.duckdb`` by default)."""

    def __init__(self, path: str | Path, lock_timeout_s: float = 300.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open, yield, close; waits (with jitter) while another process holds the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                if read_only and not self.path.exists():
                    con = duckdb.connect(str(self.path))  # create it; read-only needs a file
                    con.close()
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if not any(m in str(exc) for m in _LOCK_MARKERS) or time.monotonic() > deadline:
                    raise
                time.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 2.0)
        try:
            yield con
        finally:
            con.close()

    def init_schema(self) -> None:
        with self.connect() as con:
            for name, cols in TABLES.items():
                con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
                _migrate(con, name, cols)

    def replace_rows(self, table: str, df: pd.DataFrame, where: Mapping[str, Any]) -> int:
        """Delete the rows matching ``where`` (the partition) and insert ``df``, in one transaction.

        Columns of ``df`` must be a subset of the table's; missing ones become NULL.
        """
        self.replace_many([(table, df, where)])
        return len(df)

    def replace_many(self, writes: list[tuple[str, pd.DataFrame, Mapping[str, Any]]]) -> None:
        """Several :meth:`replace_rows` in ONE transaction (e.g. a model's row and its learning
        curve): either all tables change or none."""
        with self.transaction(writes):
            pass

    @contextlib.contextmanager
    def transaction(self, writes: list[tuple[str, pd.DataFrame, Mapping[str, Any]]]) -> Iterator[None]:
        """:meth:`replace_many` that yields before COMMIT: the rows are written (and checked) on
        enter, committed on a clean exit and rolled back if the block raises. For
        :func:`synergy_dagster.io_utils.staged_outputs`, which renames an asset's files inside it so
        that files and rows change together."""
        self.init_schema()
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                self._apply(con, writes)
                yield
                con.execute("COMMIT")
            except BaseException:
                # a failed COMMIT may already have ended the transaction; keep the first error
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise

    @staticmethod
    def _apply(
        con: duckdb.DuckDBPyConnection, writes: list[tuple[str, pd.DataFrame, Mapping[str, Any]]]
    ) -> None:
        """Delete each write's partition and insert its frame (inside the caller's transaction)."""
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
        self.init_schema()
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).df()

    def count(self, table: str, where: Mapping[str, Any] | None = None) -> int:
        where = where or {}
        cond = " AND ".join(f"{k} = ?" for k in where) or "TRUE"
        return int(
            self.query(f"SELECT count(*) AS n FROM {table} WHERE {cond}", list(where.values()))["n"][0]
        )


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
