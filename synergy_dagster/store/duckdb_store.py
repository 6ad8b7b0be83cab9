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
from synergy_dagster.store.schema import TABLES

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

    def replace_rows(self, table: str, df: pd.DataFrame, where: Mapping[str, Any]) -> int:
        """Delete the rows matching ``where`` (the partition) and insert ``df``, in one transaction.

        Columns of ``df`` must be a subset of the table's; missing ones become NULL.
        """
        if table not in TABLES:
            raise InputError("table", f"unknown table {table!r}")
        self.init_schema()
        with self.connect() as con:
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            extra = sorted(set(df.columns) - set(cols))
            if extra:
                raise InputError(table, f"columns not in the table: {extra}")
            frame = df.reindex(columns=cols)  # noqa: F841 - referenced by name in SQL below
            cond = " AND ".join(f"{k} = ?" for k in where) or "TRUE"
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {table} WHERE {cond}", list(where.values()))
                if len(df):
                    con.execute(f"INSERT INTO {table} SELECT * FROM frame")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return len(df)

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
