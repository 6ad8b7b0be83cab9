"""The real services the distributed tests use: a PostgreSQL server (``SYNERGY_TEST_PG_DSN``) and a
Redis server (``SYNERGY_TEST_REDIS_URL``), both started by ``scripts/services.sh`` (``.ci/run``
starts them before ``make test``). Without them a test skips on a laptop; with ``CI`` set it fails,
so CI can never pass by skipping the distributed run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest

START_HINT = 'start them with `eval "$(scripts/services.sh start)"`'


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI (CI=1) must run this test: .ci/run starts the services", pytrace=False)
    pytest.skip(what)


def require_env(name: str) -> str:
    """The variable's value; skip (laptop) or fail (CI) when it is unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        _missing(f"{name} is not set ({START_HINT})")
    return value


def require_module(name: str) -> ModuleType:
    """A scale-out package (``pip install -e ".[scaleout]"``); skip or fail as above when absent."""
    try:
        return __import__(name)
    except ImportError as exc:
        _missing(f'{name} is not installed (pip install -e ".[scaleout]"): {exc}')
        raise  # not reached: _missing raises


def pg_connect(dsn: str):  # -> psycopg2 connection (the package is optional)
    """An autocommit connection, or a clear failure naming the DSN (set but unreachable is an error
    everywhere: someone meant the test to run)."""
    psycopg2 = require_module("psycopg2")
    try:
        con = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"cannot connect to SYNERGY_TEST_PG_DSN={dsn!r} ({START_HINT}): {exc}", pytrace=False)
    con.autocommit = True
    return con


@contextmanager
def fresh_database(dsn: str, prefix: str = "t") -> Iterator[str]:
    """A new, empty database on the server of ``dsn`` (so tests share no state); dropped after,
    with its open connections (workers killed mid-step leave some)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    con = pg_connect(dsn)
    try:
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with con.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.close()


def database_dsn(dsn: str, dbname: str) -> str:
    """``dsn`` with another database (a libpq key=value string or a URL in; key=value out)."""
    from psycopg2.extensions import make_dsn

    return make_dsn(dsn, dbname=dbname)


def dagster_pg_env(dsn: str, dbname: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/postgres/dagster.yaml reads, for database ``dbname`` on
    the server of ``dsn``."""
    from psycopg2.extensions import parse_dsn

    p = parse_dsn(dsn)
    return {
        "DAGSTER_PG_HOST": p.get("host", "localhost"),
        "DAGSTER_PG_PORT": p.get("port", "5432"),
        "DAGSTER_PG_USER": p.get("user", os.environ.get("USER", "postgres")),
        "DAGSTER_PG_PASSWORD": p.get("password", ""),
        "DAGSTER_PG_DB": dbname,
    }
