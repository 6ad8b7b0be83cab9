"""The metadata store: idempotent partition writes, atomic rollback, lock waiting / conflict retries.

The tests taking ``any_store`` run on every backend (``conftest.py``): the DuckDB file, DuckLake on
a DuckDB-file catalog and DuckLake on PostgreSQL (``SYNERGY_TEST_PG_DSN``). DuckLake's own tests
(many writers, migrations, settings) are in ``test_store_ducklake.py``."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from synergy_dagster.errors import InputError
from synergy_dagster.store import MetadataStore, StoreLocation
from synergy_dagster_tests.stores import store_location


def _sites(ids: list[str], domain: str = "streamflow") -> pd.DataFrame:
    return pd.DataFrame({"site_id": ids, "domain": domain, "lat": 40.0, "lon": -100.0, "kept": True})


def test_replace_rows_is_idempotent_per_partition(any_store: StoreLocation) -> None:
    store = MetadataStore(any_store)
    store.replace_rows("sites", _sites(["a", "b"]), {"domain": "streamflow"})
    store.replace_rows("sites", _sites(["x"], "soil_moisture"), {"domain": "soil_moisture"})
    store.replace_rows("sites", _sites(["a", "c"]), {"domain": "streamflow"})
    store.replace_rows("sites", _sites(["a", "c"]), {"domain": "streamflow"})
    got = store.query("SELECT domain, site_id FROM sites ORDER BY domain, site_id")
    assert got.values.tolist() == [["soil_moisture", "x"], ["streamflow", "a"], ["streamflow", "c"]]


def test_failed_insert_rolls_back_the_delete(any_store: StoreLocation) -> None:
    store = MetadataStore(any_store)
    store.replace_rows("sites", _sites(["a", "b"]), {"domain": "streamflow"})
    bad = _sites(["a", "a"])  # violates the primary key: the whole transaction must roll back
    with pytest.raises(duckdb.ConstraintException):
        store.replace_rows("sites", bad, {"domain": "streamflow"})
    assert store.count("sites", {"domain": "streamflow"}) == 2


def test_unknown_columns_and_tables_are_named(any_store: StoreLocation) -> None:
    store = MetadataStore(any_store)
    with pytest.raises(InputError, match="not in the table: \\['colour'\\]"):
        store.replace_rows("sites", _sites(["a"]).assign(colour="red"), {"domain": "streamflow"})
    with pytest.raises(InputError, match="unknown table"):
        store.replace_rows("nope", _sites(["a"]), {})


def _writer(path: str, domain: str, n: int) -> None:
    store = MetadataStore(path)
    for i in range(n):
        store.replace_rows(
            "sites", _sites([f"{domain}{j}" for j in range(i + 1)], domain), {"domain": domain}
        )


@pytest.mark.parametrize(
    "backend",
    ["duckdb", pytest.param("ducklake-file", marks=pytest.mark.slow), "ducklake-postgres"],
)
def test_parallel_writer_processes_wait_for_the_lock_and_lose_nothing(backend: str, tmp_path: Path) -> None:
    """Four processes rewriting their partitions of one table: the DuckDB file (and the DuckDB-file
    catalog, ~13 s) make them wait for the lock, DuckLake on PostgreSQL retries conflicting commits."""
    with store_location(backend, tmp_path) as location:
        _parallel_writers(location)


def _parallel_writers(location: StoreLocation) -> None:
    path = location.url  # the text form opens the same store in the writer processes
    MetadataStore(location).init_schema()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, f"d{k}", 8)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    counts = MetadataStore(path).query(
        "SELECT domain, count(*) AS n FROM sites GROUP BY domain ORDER BY domain"
    )
    assert counts["n"].tolist() == [8, 8, 8, 8]


def test_stale_temp_files_of_killed_writes_are_swept_but_fresh_ones_kept(tmp_path: Path) -> None:
    import os
    import time

    from synergy_dagster.io_utils import atomic_path, sweep_stale_temps

    old = tmp_path / "sub" / ".streamflow.nc.abc123.tmp"
    old.parent.mkdir()
    old.write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / ".plan.json.xyz.tmp"
    fresh.write_bytes(b"being written")
    keep = tmp_path / "data.tmp"  # not our pattern
    keep.write_bytes(b"user file")
    with atomic_path(tmp_path / "ok.txt") as tmp:
        tmp.write_text("done")
    assert sweep_stale_temps(tmp_path) == [old]
    assert fresh.exists() and keep.exists() and (tmp_path / "ok.txt").read_text() == "done"


def test_migration_renames_resumed_from_epoch_keeping_its_values(tmp_path: Path) -> None:
    """A database of the "epoch" era: its column becomes resumed_from_block, values kept, in one go."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE models (domain VARCHAR, set_key VARCHAR, seed INTEGER, resumed_from_epoch INTEGER, "
            "budget VARCHAR, PRIMARY KEY (domain, set_key, seed, budget))"
        )
        con.execute("INSERT INTO models VALUES ('streamflow', 'global:CONUS', 0, 3, 'paper')")
    store = MetadataStore(path)
    cols = store.query("DESCRIBE models")["column_name"].tolist()
    assert "resumed_from_block" in cols and "resumed_from_epoch" not in cols
    got = store.query("SELECT set_key, seed, resumed_from_block, budget FROM models")
    assert got.to_dict("records") == [
        {"set_key": "global:CONUS", "seed": 0, "resumed_from_block": 3, "budget": "paper"}
    ]
    # migrating again changes nothing; the new name is written as usual
    row = pd.DataFrame(
        [
            {
                "domain": "streamflow",
                "set_key": "local:A",
                "seed": 0,
                "budget": "paper",
                "resumed_from_block": 1,
            }
        ]
    )
    store.replace_rows("models", row, {"domain": "streamflow", "set_key": "local:A"})
    assert sorted(store.query("SELECT resumed_from_block FROM models")["resumed_from_block"]) == [1, 3]


def test_migration_adds_the_aggregation_and_null_draw_columns_keeping_rows(tmp_path: Path) -> None:
    """A store written before the seed aggregation and the null draws were recorded: the scheme
    table and the slopes gain the columns (NULL: not recorded then), rows kept, and new rows write them."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE scheme_comparison (domain VARCHAR, scheme VARCHAR, metric VARCHAR, budget VARCHAR, "
            "p_vs_null DOUBLE, PRIMARY KEY (domain, scheme, metric, budget))"
        )
        con.execute("INSERT INTO scheme_comparison VALUES ('streamflow', 'huc2', 'nse', 'paper', 0.2)")
        con.execute(
            "CREATE TABLE synergy_slopes (domain VARCHAR, budget VARCHAR, pool VARCHAR, slope DOUBLE)"
        )
        con.execute("INSERT INTO synergy_slopes VALUES ('soil_moisture', 'paper', 'close', 0.01)")
    store = MetadataStore(path)
    old = store.query("SELECT scheme, p_vs_null, n_null_draws, aggregation FROM scheme_comparison")
    assert old["scheme"].tolist() == ["huc2"] and old["p_vs_null"].tolist() == [0.2]
    assert old["n_null_draws"].isna().all() and old["aggregation"].isna().all()
    assert store.query("SELECT aggregation FROM synergy_slopes")["aggregation"].isna().all()
    row = pd.DataFrame(
        [{"domain": "streamflow", "scheme": "kmeans", "metric": "nse", "budget": "converge",
          "p_vs_null": 0.05, "n_null_draws": 20, "aggregation": "seed_mean"}]
    )  # fmt: skip
    store.replace_rows("scheme_comparison", row, {"budget": "converge"})
    got = store.query("SELECT n_null_draws, aggregation FROM scheme_comparison WHERE scheme = 'kmeans'")
    assert got.to_dict("records") == [{"n_null_draws": 20, "aggregation": "seed_mean"}]
