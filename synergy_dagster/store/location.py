"""Where the metadata store lives: one embedded DuckDB file, or a DuckLake catalog and its data.

The text form (``SYNERGY_STORE``, and what :class:`~synergy_dagster.store.MetadataStore` accepts):

- ``/path/to/synergy.duckdb`` or ``duckdb:/path/to/synergy.duckdb``: the embedded DuckDB file
  (one writer process at a time);
- ``ducklake:postgres:<libpq connection string>``: a DuckLake catalog in PostgreSQL, e.g.
  ``ducklake:postgres:host=db port=5432 user=synergy dbname=synergy`` (many writer processes on
  many machines); a password is best given by ``PGPASSWORD`` or ``~/.pgpass``, which libpq reads;
- ``ducklake:/path/to/catalog.ducklake``: a DuckLake catalog in a DuckDB file (one writer process
  at a time, like the plain file: for trying DuckLake without a server).

A DuckLake store's Parquet files go to its data path, a folder every writer mounts at the same
path; the catalog remembers it, so only the run that creates the catalog needs one.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Literal

from synergy_dagster.errors import ConfigError

StoreKind = Literal["duckdb", "ducklake"]
POSTGRES = "postgres:"
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_OTHER_CATALOGS = ("sqlite:", "mysql:", "postgresql:", "pg:")


@dataclasses.dataclass(frozen=True)
class StoreLocation:
    """A parsed store setting. ``origin`` is the setting it came from (named in every error)."""

    kind: StoreKind
    path: Path | None = None  # duckdb: the database file
    catalog: str = ""  # ducklake: "postgres:<dsn>" or the catalog file (absolute)
    data_path: Path | None = None  # ducklake: the Parquet folder; None = the one the catalog records
    origin: str = "store"
    data_origin: str = "store.data_path"

    @property
    def on_postgres(self) -> bool:
        return self.catalog.startswith(POSTGRES)

    @property
    def url(self) -> str:
        """The text form; :class:`MetadataStore` opens the same store from it (in any process)."""
        return str(self.path) if self.kind == "duckdb" else f"ducklake:{self.catalog}"

    def describe(self) -> str:
        """The location for messages and logs, with any password hidden."""
        if self.kind == "duckdb":
            return f"DuckDB file {self.path}"
        data = f", data {self.data_path}" if self.data_path else ""
        return f"DuckLake ducklake:{mask_password(self.catalog)}{data}"


def mask_password(text: str) -> str:
    """``password=secret`` and ``user:secret@`` shown as ``***``."""
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text, flags=re.IGNORECASE)
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def duckdb_file(path: str | Path, origin: str = "store.path") -> StoreLocation:
    text = str(path).strip()
    if not text:
        raise ConfigError(origin, "empty path of the DuckDB file")
    if text.startswith(POSTGRES) or text.startswith(_OTHER_CATALOGS) or "dbname=" in text:
        raise ConfigError(
            origin,
            f"{mask_password(text)!r} looks like a database server, not a file: a PostgreSQL catalog "
            "is a DuckLake store, written ducklake:postgres:<connection string>",
        )
    if _URL_SCHEME.match(text):
        raise ConfigError(origin, f"{text!r}: the DuckDB file must be a local path, not a URL")
    resolved = Path(text).expanduser().resolve()
    if resolved.is_dir():
        raise ConfigError(origin, f"{resolved} is a folder; give the DuckDB file inside it")
    return StoreLocation("duckdb", path=resolved, origin=origin)


def ducklake(
    catalog: str,
    data_path: str | Path | None = None,
    origin: str = "store.catalog",
    data_origin: str = "store.data_path",
) -> StoreLocation:
    """A DuckLake store: ``catalog`` is ``postgres:<dsn>`` or a catalog file path."""
    text = catalog.strip()
    if not text:
        raise ConfigError(
            origin, "no catalog: give ducklake:postgres:<connection string> or ducklake:<catalog file>"
        )
    if text.startswith(POSTGRES):
        if not text[len(POSTGRES) :].strip():
            raise ConfigError(
                origin, "empty PostgreSQL connection string after 'postgres:' (e.g. host=db dbname=synergy)"
            )
    elif text.startswith(_OTHER_CATALOGS):
        hint = " (write postgres:postgresql://...)" if text.startswith("postgresql:") else ""
        raise ConfigError(
            origin,
            f"catalog {mask_password(text)!r} not supported: PostgreSQL (postgres:<connection string>)"
            f"{hint} or a DuckDB catalog file",
        )
    elif _URL_SCHEME.match(text):
        raise ConfigError(origin, f"catalog {text!r}: a catalog file must be a local path, not a URL")
    else:
        resolved = Path(text).expanduser().resolve()
        if resolved.is_dir():
            raise ConfigError(origin, f"{resolved} is a folder; give the catalog file inside it")
        text = str(resolved)
    return StoreLocation(
        "ducklake",
        catalog=text,
        data_path=_data_path(data_path, data_origin),
        origin=origin,
        data_origin=data_origin,
    )


def _data_path(value: str | Path | None, origin: str) -> Path | None:
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if _URL_SCHEME.match(text):
        # s3:// and the like need the httpfs extension and credentials, which are not set up here.
        raise ConfigError(
            origin, f"{text!r}: the data path must be a folder (mount shared storage, e.g. NFS, at one path)"
        )
    resolved = Path(text).expanduser().resolve()
    if resolved.exists() and not resolved.is_dir():
        raise ConfigError(origin, f"{resolved} is a file; the data path is a folder")
    return resolved


def parse_store(
    value: str | Path,
    data_path: str | Path | None = None,
    origin: str = "SYNERGY_STORE",
    data_origin: str = "SYNERGY_STORE_DATA_PATH",
) -> StoreLocation:
    """The text form (see the module docstring) with an optional DuckLake data path."""
    text = str(value).strip()
    if text.startswith("ducklake:"):
        return ducklake(text[len("ducklake:") :], data_path, origin, data_origin)
    if text in ("ducklake", "duckdb"):
        raise ConfigError(
            origin, f"{text!r} needs a location: {text}:<...> (see docs/operations.md, 'The metadata store')"
        )
    location = duckdb_file(text.removeprefix("duckdb:"), origin)
    if data_path is not None and str(data_path).strip():
        raise ConfigError(
            data_origin,
            f"set, but {origin} is a DuckDB file ({location.path}); a data path belongs to a DuckLake store",
        )
    return location
