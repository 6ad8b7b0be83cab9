"""The DuckDB metadata store: sources, sites, training sets, models, metrics, significance."""

from synergy_dagster.store.duckdb_store import MetadataStore

__all__ = ["MetadataStore"]
