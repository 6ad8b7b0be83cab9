"""The metadata store: sources, sites, training sets, models, metrics, significance.

One API (:class:`MetadataStore`, ``base.py``) over two backends: the embedded DuckDB file
(``duckdb_file.py``, the default) and a DuckLake catalog with Parquet data (``ducklake.py``, for
many writers); ``location.py`` parses where the store is, ``extensions.py`` loads DuckDB's
extensions from their packages, ``schema.py`` holds the tables.
"""

from synergy_dagster.store.base import MetadataStore
from synergy_dagster.store.location import StoreLocation, duckdb_file, ducklake, parse_store

__all__ = ["MetadataStore", "StoreLocation", "duckdb_file", "ducklake", "parse_store"]
