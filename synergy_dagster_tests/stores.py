"""Metadata stores of every backend for tests: the DuckDB file, DuckLake on a DuckDB-file catalog
(no server) and DuckLake on PostgreSQL (``SYNERGY_TEST_PG_DSN``, set by ``scripts/services.sh``:
skipped when unset on a laptop, a failure with ``CI`` set). Each PostgreSQL test gets a database of
its own, created and dropped through DuckDB's postgres extension (no client library needed)."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from synergy_dagster.store import MetadataStore, StoreLocation, duckdb_file, ducklake
from synergy_dagster.store.extensions import load_extensions

PG_ENV = "SYNERGY_TEST_PG_DSN"
BACKENDS = ("duckdb", "ducklake-file", "ducklake-postgres")


def pg_dsn_or_skip() -> str:
    dsn = os.environ.get(PG_ENV, "").strip()
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail(
                f'{PG_ENV} is not set: CI must start PostgreSQL (eval "$(scripts/services.sh start)")'
            )
        pytest.skip(f'{PG_ENV} is not set (eval "$(scripts/services.sh start)" runs these tests)')
    return dsn


def with_dbname(dsn: str, name: str) -> str:
    """The connection string ``dsn`` pointed at database ``name`` (key=value or URI form)."""
    if re.match(r"^postgres(ql)?://", dsn):
        head, _, query = dsn.partition("?")
        base = re.sub(r"^(postgres(?:ql)?://[^/]*)(/.*)?$", r"\1", head)
        return f"{base}/{name}" + (f"?{query}" if query else "")
    rest = re.sub(r"(^|\s)dbname\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", " ", dsn).strip()
    return f"{rest} dbname={name}"


@contextlib.contextmanager
def fresh_pg_database(dsn: str) -> Iterator[str]:
    """A new empty database on ``dsn``'s server for one test: its connection string; dropped after."""
    name = f"synergy_test_{uuid.uuid4().hex[:12]}"
    admin = duckdb.connect()
    load_extensions(admin, ["postgres"])
    admin.execute(f"ATTACH '{dsn.replace(chr(39), chr(39) * 2)}' AS pg (TYPE postgres)")

    def run(sql: str) -> None:  # CREATE/DROP DATABASE cannot run inside a transaction
        admin.execute("CALL postgres_execute('pg', ?, use_transaction := false)", [sql])

    run(f'CREATE DATABASE "{name}"')
    try:
        yield with_dbname(dsn, name)
    finally:
        with contextlib.suppress(duckdb.Error):
            run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def store_location(kind: str, folder: Path) -> Iterator[StoreLocation]:
    """A new, empty store of backend ``kind`` (one of :data:`BACKENDS`) under ``folder``."""
    if kind == "duckdb":
        yield duckdb_file(folder / "m.duckdb")
    elif kind == "ducklake-file":
        yield ducklake(str(folder / "catalog.ducklake"), folder / "lake")
    elif kind == "ducklake-postgres":
        with fresh_pg_database(pg_dsn_or_skip()) as dsn:
            location = ducklake("postgres:" + dsn, folder / "lake")
            try:
                yield location
            finally:
                MetadataStore(location).close()  # before the database is dropped
    else:
        raise ValueError(f"unknown store backend {kind!r}; expected one of {BACKENDS}")
