"""The metadata store on DuckLake: settings, many concurrent writers, all-or-nothing transactions,
migrations, and the README's SQL on every backend.

PostgreSQL tests read ``SYNERGY_TEST_PG_DSN`` (``scripts/services.sh`` sets it): skipped when it is
unset, a failure when ``CI`` is set. DuckLake on a DuckDB-file catalog needs no server and runs
everywhere. The store tests shared by every backend are in ``test_store.py``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import re
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import yaml

from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource
from synergy_dagster.errors import ConfigError, InputError, StoreConflictError
from synergy_dagster.store import MetadataStore, StoreLocation, ducklake, parse_store
from synergy_dagster.store.history import Pruned
from synergy_dagster.store.location import mask_password
from synergy_dagster.study_file import parse_study
from synergy_dagster_tests.stores import BACKENDS, fresh_pg_database, pg_dsn_or_skip, store_location

ROOT = Path(__file__).resolve().parents[2]
LAKES = ["ducklake-file", "ducklake-postgres"]


@pytest.fixture(params=LAKES)
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with store_location(request.param, tmp_path) as location:
        yield location


def _sites(ids: list[str], domain: str = "streamflow") -> pd.DataFrame:
    return pd.DataFrame({"site_id": ids, "domain": domain, "lat": 40.0, "lon": -100.0, "kept": True})


# -- settings: the text form, the resource, the study file --------------------------------------


def test_store_text_forms_parse() -> None:
    assert parse_store("/tmp/x/synergy.duckdb").path == Path("/tmp/x/synergy.duckdb")
    assert parse_store("duckdb:/tmp/x/s.duckdb").kind == "duckdb"
    pg = parse_store("ducklake:postgres:host=db dbname=synergy", "/mnt/lake")
    assert (pg.kind, pg.on_postgres, pg.data_path) == ("ducklake", True, Path("/mnt/lake"))
    assert pg.url == "ducklake:postgres:host=db dbname=synergy"
    assert parse_store(pg.url).catalog == pg.catalog  # the text form opens the same store again
    file_lake = parse_store("ducklake:/tmp/x/c.ducklake")
    assert (file_lake.on_postgres, file_lake.data_path) == (False, None)
    assert mask_password("host=db password=s3cret dbname=x") == "host=db password=*** dbname=x"
    assert mask_password("postgresql://me:s3cret@db/x") == "postgresql://me:***@db/x"


@pytest.mark.parametrize(
    ("value", "data_path", "names", "message"),
    [
        ("ducklake:", None, "SYNERGY_STORE", "no catalog"),
        ("ducklake:postgres:", None, "SYNERGY_STORE", "empty PostgreSQL connection string"),
        ("ducklake:postgresql://u@db/x", None, "SYNERGY_STORE", "write postgres:postgresql://"),
        ("ducklake:sqlite:/tmp/c.sqlite", None, "SYNERGY_STORE", "not supported"),
        ("ducklake:s3://bucket/catalog", None, "SYNERGY_STORE", "not a URL"),
        ("postgres:host=db dbname=x", None, "SYNERGY_STORE", "ducklake:postgres:"),
        ("ducklake", None, "SYNERGY_STORE", "needs a location"),
        ("ducklake:postgres:dbname=x", "s3://bucket/lake", "SYNERGY_STORE_DATA_PATH", "must be a folder"),
        ("/tmp/x/s.duckdb", "/tmp/lake", "SYNERGY_STORE_DATA_PATH", "belongs to a DuckLake store"),
    ],
)
def test_wrong_store_settings_name_the_variable(
    value: str, data_path: str | None, names: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        parse_store(value, data_path)
    assert err.value.source == names


def test_a_folder_is_not_a_store_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        parse_store(str(tmp_path))
    with pytest.raises(ConfigError, match="is a folder"):
        parse_store(f"ducklake:{tmp_path}")


def _study(tmp_path: Path, store: dict[str, Any] | None = None) -> Path:
    study = yaml.safe_load((ROOT / "studies" / "virtual.yaml").read_text())
    study["data_dir"] = str(tmp_path / "data")
    if store is not None:
        study["store"] = store
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _resource(study: Path, **config: str) -> MetadataStoreResource:
    return MetadataStoreResource(
        study=StudyResource(study_file=str(study), data_dir="", overrides=[]), **config
    )


def test_resource_default_is_the_duckdb_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNERGY_STORE", raising=False)
    monkeypatch.delenv("SYNERGY_STORE_DATA_PATH", raising=False)
    res = _resource(_study(tmp_path))
    assert res.db_path == tmp_path / "data" / "synergy.duckdb"
    assert res.store().kind == "duckdb"
    assert _resource(_study(tmp_path), path=str(tmp_path / "x.duckdb")).db_path == tmp_path / "x.duckdb"


def test_resource_reads_synergy_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNERGY_STORE", f"ducklake:{tmp_path / 'cat.ducklake'}")
    monkeypatch.delenv("SYNERGY_STORE_DATA_PATH", raising=False)
    res = _resource(_study(tmp_path))
    location = res.location()
    assert (location.kind, location.data_path) == ("ducklake", tmp_path / "data" / "ducklake")
    with pytest.raises(ConfigError, match="not one DuckDB file") as err:
        _ = res.db_path
    assert err.value.source == "SYNERGY_STORE"
    monkeypatch.setenv("SYNERGY_STORE_DATA_PATH", str(tmp_path / "shared"))
    assert _resource(_study(tmp_path)).location().data_path == tmp_path / "shared"
    # an explicit path (tests, one-off runs) wins over the environment
    assert _resource(_study(tmp_path), path=str(tmp_path / "x.duckdb")).store().kind == "duckdb"
    monkeypatch.setenv("SYNERGY_STORE", "ducklake:mysql:db")
    with pytest.raises(ConfigError, match="not supported") as err:
        _resource(_study(tmp_path)).store()
    assert err.value.source == "SYNERGY_STORE"


def test_data_path_without_a_lake_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNERGY_STORE", raising=False)
    monkeypatch.setenv("SYNERGY_STORE_DATA_PATH", str(tmp_path / "lake"))
    with pytest.raises(ConfigError, match="DuckLake setting") as err:
        _resource(_study(tmp_path)).store()
    assert err.value.source == "SYNERGY_STORE_DATA_PATH"


def test_study_file_store_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNERGY_STORE", raising=False)
    monkeypatch.delenv("SYNERGY_STORE_DATA_PATH", raising=False)
    monkeypatch.setenv("LAKE_HOST", "db.example")
    study = _study(tmp_path, {"kind": "ducklake", "catalog": "meta/catalog.ducklake", "data_path": "lake"})
    location = _resource(study).location()
    assert location.catalog == str(tmp_path / "meta" / "catalog.ducklake")  # relative to the study
    assert location.data_path == tmp_path / "lake"
    pg = _resource(
        _study(tmp_path, {"kind": "ducklake", "catalog": "postgres:host=${LAKE_HOST} dbname=synergy"})
    ).location()
    assert pg.catalog == "postgres:host=db.example dbname=synergy"  # variables only, not a path
    assert pg.data_path == tmp_path / "data" / "ducklake"
    # the environment overrides the study file
    monkeypatch.setenv("SYNERGY_STORE", str(tmp_path / "other.duckdb"))
    assert _resource(study).db_path == tmp_path / "other.duckdb"


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ({"kind": "ducklake"}, "store: Value error, kind 'ducklake' needs 'catalog'"),
        ({"kind": "duckdb", "catalog": "x.ducklake"}, "store: Value error, ['catalog'] belong to kind"),
        ({"kind": "ducklake", "catalog": "c", "path": "x"}, "store: Value error, 'path' is the DuckDB file"),
        ({"kind": "lake"}, "store.kind: Input should be 'duckdb' or 'ducklake'"),
        ({"kind": "ducklake", "catalog": "c", "colour": 1}, "store.colour: unknown key"),
    ],
)
def test_study_file_store_errors_name_the_key(store: dict[str, Any], message: str) -> None:
    study = yaml.safe_load((ROOT / "studies" / "virtual.yaml").read_text())
    study["store"] = store
    with pytest.raises(ConfigError) as err:
        parse_study(study, ROOT / "studies" / "virtual.yaml")
    assert message.replace("Value error, ", "") in str(err.value)


def test_unset_variable_in_the_catalog_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_HOST", raising=False)
    study = yaml.safe_load((ROOT / "studies" / "virtual.yaml").read_text())
    study["store"] = {"kind": "ducklake", "catalog": "postgres:host=${NO_SUCH_HOST}"}
    with pytest.raises(ConfigError, match=r"store\.catalog.*NO_SUCH_HOST"):
        parse_study(study, ROOT / "studies" / "virtual.yaml")


def test_extension_of_another_duckdb_release_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from synergy_dagster.store.extensions import extension_file

    monkeypatch.setattr(duckdb, "__version__", "9.9.9")
    with pytest.raises(ConfigError, match=r"v1\.5\.5, but duckdb 9\.9\.9 is installed") as err:
        extension_file("ducklake")
    assert err.value.source == "duckdb-extension-ducklake"


def test_data_path_other_than_the_catalogs_is_refused(tmp_path: Path) -> None:
    MetadataStore(ducklake(str(tmp_path / "c.ducklake"), tmp_path / "lake_a")).init_schema()
    other = MetadataStore(ducklake(str(tmp_path / "c.ducklake"), tmp_path / "lake_b", data_origin="X"))
    with pytest.raises(ConfigError, match="not the data path this catalog was created with") as err:
        other.query("SELECT 1")
    assert err.value.source == "X"
    # without a data path the catalog's own is used
    assert MetadataStore(f"ducklake:{tmp_path / 'c.ducklake'}").count("sites") == 0


# -- DuckLake behaviour, on a DuckDB-file catalog and on PostgreSQL ------------------------------


def test_failing_transaction_changes_nothing(lake: StoreLocation) -> None:
    store = MetadataStore(lake)
    store.replace_rows("sites", _sites(["a", "b"]), {"domain": "streamflow"})
    models = pd.DataFrame([{"domain": "streamflow", "set_key": "global", "seed": 0, "budget": "paper"}])
    with (
        pytest.raises(RuntimeError, match="rename failed"),
        store.transaction(
            [("sites", _sites(["c"]), {"domain": "streamflow"}), ("models", models, {"domain": "streamflow"})]
        ),
    ):
        raise RuntimeError("rename failed")  # as staged_outputs' block failing before COMMIT
    # the second write failing (an unknown column) takes the first one back too
    with pytest.raises(InputError, match="colour"):
        store.replace_many(
            [
                ("sites", _sites(["d"]), {"domain": "streamflow"}),
                ("models", models.assign(colour="red"), {"domain": "streamflow"}),
            ]
        )
    assert store.query("SELECT site_id FROM sites ORDER BY site_id")["site_id"].tolist() == ["a", "b"]
    assert store.count("models") == 0


def test_migration_adds_and_renames_columns(lake: StoreLocation) -> None:
    """A lake of the "epoch" era: ALTER TABLE renames resumed_from_epoch (values kept) and adds
    budget, filled with 'paper' for the old rows (the DuckDB file's migration rebuilds instead)."""
    store = MetadataStore(lake)
    with store.connect() as con:
        con.execute(
            "CREATE TABLE models (domain VARCHAR, set_key VARCHAR, seed INTEGER, resumed_from_epoch INTEGER)"
        )
        con.execute("INSERT INTO models VALUES ('streamflow', 'global:CONUS', 0, 3)")
    store.init_schema()
    got = store.query("SELECT set_key, seed, resumed_from_block, budget FROM models")
    assert got.to_dict("records") == [
        {"set_key": "global:CONUS", "seed": 0, "resumed_from_block": 3, "budget": "paper"}
    ]
    described = store.query("DESCRIBE models")
    assert "resumed_from_epoch" not in described["column_name"].tolist()
    assert described.set_index("column_name").loc["budget", "default"] in (None, "NULL")
    row = {
        "domain": "streamflow",
        "set_key": "local:A",
        "seed": 0,
        "resumed_from_block": 1,
        "budget": "converge",
    }
    store.replace_rows("models", pd.DataFrame([row]), {"domain": "streamflow", "set_key": "local:A"})
    got = store.query("SELECT set_key, resumed_from_block, budget FROM models ORDER BY set_key")
    assert got.values.tolist() == [["global:CONUS", 3, "paper"], ["local:A", 1, "converge"]]
    MetadataStore(lake).close()
    MetadataStore(lake).init_schema()  # again, from a fresh start: nothing left to change
    assert store.count("models") == 2


def test_a_conflicting_commit_is_redone(tmp_path: Path) -> None:
    """Another writer commits to the same table while a transaction is open: its COMMIT
    conflicts, and the store applies the writes again to the new snapshot and commits."""
    with store_location("ducklake-postgres", tmp_path) as location:
        first, second = MetadataStore(location), MetadataStore(location)
        first.replace_rows("sites", _sites(["a"], "d1"), {"domain": "d1"})
        with first.transaction([("sites", _sites(["b", "c"], "d1"), {"domain": "d1"})]):
            second.replace_rows("sites", _sites(["x"], "d2"), {"domain": "d2"})
        assert first.retries >= 1
        got = first.query("SELECT domain, site_id FROM sites ORDER BY ALL").values.tolist()
        assert got == [["d1", "b"], ["d1", "c"], ["d2", "x"]]
        # Both create one new partition (nothing to delete, so DuckLake alone sees no conflict):
        # the table's claim makes the later commit redo its delete and insert, so the key is once.
        retries = first.retries
        with first.transaction([("sites", _sites(["n"], "d3"), {"domain": "d3"})]):
            second.replace_rows("sites", _sites(["n"], "d3"), {"domain": "d3"})
        assert first.retries == retries + 1
        assert first.count("sites", {"domain": "d3"}) == 1


def test_conflicts_beyond_the_retries_name_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MetadataStore(ducklake(str(tmp_path / "c.ducklake"), tmp_path / "lake"), lock_timeout_s=0.5)
    store.replace_rows("sites", _sites(["a"]), {"domain": "streamflow"})

    def conflict(*_: object) -> None:
        raise duckdb.TransactionException("Transaction conflict - simulated")

    monkeypatch.setattr(store, "_apply", conflict)
    with pytest.raises(
        StoreConflictError, match=r"the write to sites conflicted with other writers \d+ times"
    ):
        store.replace_rows("sites", _sites(["b"]), {"domain": "streamflow"})
    monkeypatch.undo()
    assert store.query("SELECT site_id FROM sites")["site_id"].tolist() == ["a"]


# -- many writers on PostgreSQL -------------------------------------------------------------------

N_WRITERS = 4
OWN_PARTITIONS = 6  # each writer's own (domain w<k>, set_key p<j>)
SHARED_PARTITIONS = 4  # written by every writer (domain shared, set_key s<j>)
ROUNDS = 2
CURVE_POINTS = 5


def _partition(domain: str, key: str, writer: int, generation: int) -> list[tuple[str, pd.DataFrame, dict]]:
    """One model partition: 1-3 seeds (by generation) and their learning curves, tagged with the
    writer and generation so that a mixed or doubled partition shows."""
    seeds = range(1 + generation % 3)
    base = {"domain": domain, "set_key": key, "budget": "paper", "device": f"w{writer}"}
    models = pd.DataFrame([{**base, "seed": s, "n_iterations": generation} for s in seeds])
    curves = pd.DataFrame(
        [
            {**base, "seed": s, "update": u, "train_loss": generation}
            for s in seeds
            for u in range(CURVE_POINTS)
        ]
    ).drop(columns="device")
    where = {"domain": domain, "set_key": key}
    return [("models", models, where), ("learning_curves", curves, where)]


def _writer(location: StoreLocation, writer: int, out: str) -> None:
    store = MetadataStore(location)
    t0, writes = time.monotonic(), 0
    for generation in range(ROUNDS):
        keys = [(f"w{writer}", f"p{j}") for j in range(OWN_PARTITIONS)]
        keys += [("shared", f"s{j}") for j in range(SHARED_PARTITIONS)]
        for domain, key in keys:
            store.replace_many(_partition(domain, key, writer, generation))
            writes += 1
    Path(out).write_text(json.dumps({"writes": writes, "retries": store.retries, "s": time.monotonic() - t0}))


def _reader(location: StoreLocation, stop: str, out: str) -> None:
    """Reads while the writers write: every partition it sees is one whole generation."""
    store = MetadataStore(location)
    reads = torn = 0
    while not Path(stop).exists():
        seen = store.query(
            "SELECT m.domain, m.set_key, count(*) AS n, count(DISTINCT m.device || m.n_iterations) AS g, "
            "max(m.n_iterations) AS gen, max(c.n) AS curves FROM models m LEFT JOIN "
            "(SELECT domain, set_key, count(*) AS n FROM learning_curves GROUP BY ALL) c USING (domain, set_key) "
            "GROUP BY ALL"
        )
        reads += 1
        whole = (
            (seen["g"] == 1)
            & (seen["n"] == 1 + seen["gen"] % 3)
            & (seen["curves"] == seen["n"] * CURVE_POINTS)
        )
        torn += int((~whole).sum())
    Path(out).write_text(json.dumps({"reads": reads, "torn": torn}))


@pytest.mark.fault
def test_concurrent_writer_processes_lose_and_double_nothing(tmp_path: Path) -> None:
    """N writer processes (and a reader) on one fresh PostgreSQL catalog, all starting at once on
    an empty database (so schema creation races too): each replaces its own partitions and every
    writer replaces the shared ones, models and curves in one transaction, over several rounds."""
    with fresh_pg_database(pg_dsn_or_skip()) as dsn:
        location = ducklake("postgres:" + dsn, tmp_path / "lake")
        ctx = mp.get_context("spawn")
        stop = tmp_path / "stop"
        reader = ctx.Process(target=_reader, args=(location, str(stop), str(tmp_path / "reader.json")))
        writers = [
            ctx.Process(target=_writer, args=(location, k, str(tmp_path / f"w{k}.json")))
            for k in range(N_WRITERS)
        ]
        t0 = time.monotonic()
        for p in [reader, *writers]:
            p.start()
        for p in writers:
            p.join(600)
        stop.touch()
        reader.join(120)
        wall = time.monotonic() - t0
        assert [p.exitcode for p in writers] == [0] * N_WRITERS
        assert reader.exitcode == 0
        store = MetadataStore(location)
        models = store.query("SELECT * FROM models")
        curves = store.query("SELECT * FROM learning_curves")
        store.close()

    last = ROUNDS - 1
    seeds = 1 + last % 3
    # every writer's own partitions: the last generation, complete, once
    own = models[models["domain"] != "shared"]
    assert len(own) == N_WRITERS * OWN_PARTITIONS * seeds
    assert (own["n_iterations"] == last).all()
    assert not own.duplicated(["domain", "set_key", "seed", "budget"]).any()
    # the shared partitions: one writer's last generation each, never a mix
    shared = models[models["domain"] == "shared"]
    for key, rows in shared.groupby("set_key"):
        assert rows["device"].nunique() == 1, f"shared partition {key} mixes writers"
        assert len(rows) == seeds and (rows["n_iterations"] == last).all()
    assert not curves.duplicated(["domain", "set_key", "seed", "budget", "update"]).any()
    assert len(curves) == len(models) * CURVE_POINTS
    stats = [json.loads((tmp_path / f"w{k}.json").read_text()) for k in range(N_WRITERS)]
    read = json.loads((tmp_path / "reader.json").read_text())
    assert read["torn"] == 0
    summary = {
        "writers": N_WRITERS,
        "transactions": sum(s["writes"] for s in stats),
        "retries": [s["retries"] for s in stats],
        "rows": {"models": len(models), "learning_curves": len(curves)},
        "reads": read["reads"],
        "wall_s": round(wall, 1),
    }
    print("concurrent DuckLake writers:", summary)


# -- the README's SQL, unchanged, on every backend ----------------------------------------------


def _readme_sql() -> list[str]:
    """The ```sql blocks of the README and of docs/ (the user guide's queries moved there)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    text = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 2, "README.md and docs/ hold fewer than the two ```sql blocks they had"
    return blocks


def _populate(store: MetadataStore) -> None:
    store.replace_rows(
        "significance",
        pd.DataFrame(
            [
                {
                    "domain": "streamflow",
                    "experiment": "global_vs_local",
                    "comparison": "global vs local",
                    "region": r,
                    "metric": m,
                    "seed": s,
                    "budget": b,
                    "median_a": 0.6,
                    "median_b": 0.5,
                    "p_value": 0.01,
                }
                for r in ("A", "B")
                for m in ("nse", "rmse")
                for s in ("mean", "0")
                for b in ("paper", "converge")
            ]
        ),  # fmt: skip
        {"domain": "streamflow"},
    )
    store.replace_rows(
        "synergy_slopes",
        pd.DataFrame(
            [
                {
                    "domain": "streamflow",
                    "budget": "converge",
                    "region": "8.3.5",
                    "metric": m,
                    "pool": p,
                    "versus": v,
                    "slope": 0.01,
                    "se": 0.005,
                    "p_value": 0.2,
                }
                for m in ("nse", "rmse")
                for p in ("close", "far")
                for v in (None, "close")
            ]
        ),  # fmt: skip
        {"domain": "streamflow"},
    )
    store.replace_rows(  # docs/spatial.md
        "spatial_gauge_loss",
        pd.DataFrame(
            [
                {
                    "domain": "streamflow",
                    "model": m,
                    "setting": t,
                    "metric": "nse",
                    "n_sites": 9,
                    "median": 0.5,
                }
                for m in ("unified", "regional")
                for t in ("temporal", "pub", "pur")
            ]
        ),
        {"domain": "streamflow"},
    )
    store.replace_rows("sites", _sites(["a", "b"]), {"domain": "streamflow"})
    store.replace_rows(
        "models",
        pd.DataFrame([{"domain": "streamflow", "set_key": "global:CONUS", "seed": 0, "budget": "paper"}]),
        {"domain": "streamflow"},
    )


def test_readme_sql_runs_unchanged(any_store: StoreLocation, tmp_path: Path) -> None:
    """Every ```sql block of the README gives the same rows on this backend as on a DuckDB file."""
    store = MetadataStore(any_store)
    _populate(store)
    reference = MetadataStore(tmp_path / "reference.duckdb")
    _populate(reference)
    for sql in _readme_sql():
        got = store.query(sql)
        assert len(got), f"no rows from README SQL:\n{sql}"
        pd.testing.assert_frame_equal(got, reference.query(sql), check_dtype=False)


def test_every_backend_is_listed() -> None:
    assert set(BACKENDS) == {"duckdb", *LAKES}


# -- history: snapshots and the files only they hold ----------------------------------------------


def _parquet_files(lake: StoreLocation) -> int:
    assert lake.data_path is not None
    return len(list(lake.data_path.rglob("*.parquet")))


def test_pruning_drops_old_snapshots_and_their_files_only(lake: StoreLocation) -> None:
    """Each replace keeps the rows it replaced (a snapshot); pruning gives them up and deletes the
    files only they held, after the grace period, and never touches the current rows."""
    store = MetadataStore(lake)
    store.init_schema()
    ids = [f"s{i:03d}" for i in range(500)]  # enough rows to be written as a Parquet file, not inlined
    for k in range(4):
        store.replace_rows("sites", _sites(ids).assign(lat=40.0 + k), {"domain": "streamflow"})
    before = _parquet_files(lake)
    assert before >= 4  # the replaced partitions' files are kept as history
    kept = store.prune_history(keep_s=3600.0, grace_s=0.0)  # every snapshot is younger than an hour
    assert (kept.snapshots, kept.files) == (0, 0)
    assert store.prune_history(keep_s=float("inf"), grace_s=1e30) == Pruned(0, 0, 0)  # keep forever
    expired = store.prune_history(keep_s=0.0, grace_s=3600.0)  # expired, but the files wait out the grace
    assert expired.snapshots >= 4 and expired.files == 0
    assert _parquet_files(lake) == before
    deleted = store.prune_history(keep_s=0.0, grace_s=0.0)
    assert deleted.snapshots == 0 and deleted.files >= 3 and deleted.bytes > 0
    assert _parquet_files(lake) == before - deleted.files
    now = store.query("SELECT count(*) AS n, min(lat) AS lo, max(lat) AS hi FROM sites")
    assert now.iloc[0].tolist() == [500, 43.0, 43.0]
    store.replace_rows("sites", _sites(ids), {"domain": "streamflow"})  # and it still writes
    assert store.count("sites") == 500


def test_pruning_a_duckdb_file_does_nothing_and_bad_ages_are_refused(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "m.duckdb")
    store.init_schema()
    assert store.prune_history() == Pruned(0, 0, 0)
    for bad in ({"keep_s": -1.0}, {"grace_s": float("nan")}):
        with pytest.raises(ConfigError, match=r"prune_history\.(keep|grace): must be a number of seconds"):
            store.prune_history(**bad)


def test_store_maintenance_job_prunes_and_records_what_it_freed(tmp_path: Path) -> None:
    import dagster as dg

    from synergy_dagster.defs.operations.maintenance import store_maintenance_job, weekly_store_pruning

    location = ducklake(str(tmp_path / "catalog.ducklake"), tmp_path / "lake")
    store = MetadataStore(location)
    store.init_schema()
    ids = [f"s{i:03d}" for i in range(500)]
    for k in range(3):
        store.replace_rows("sites", _sites(ids).assign(lat=40.0 + k), {"domain": "streamflow"})
    resources = {
        "store": MetadataStoreResource(
            study=StudyResource(study_file="virtual", data_dir=str(tmp_path), overrides=[]), url=location.url,
            data_path=str(tmp_path / "lake"),
        )
    }  # fmt: skip
    config = {"ops": {"prune_store_history": {"config": {"keep_days": 0.0, "grace_hours": 0.0}}}}
    res = store_maintenance_job.execute_in_process(resources=resources, run_config=config)
    assert res.success
    counts = res.output_for_node("prune_store_history")
    assert counts["snapshots_expired"] >= 3 and counts["files_deleted"] >= 2 and counts["bytes_freed"] > 0
    (event,) = [e for e in res.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    assert event.event_specific_data.metadata["files_deleted"].value == counts["files_deleted"]
    bad = {"ops": {"prune_store_history": {"config": {"keep_days": -1.0}}}}
    with pytest.raises(dg.Failure, match="keep_days: must be >= 0"):
        store_maintenance_job.execute_in_process(resources=resources, run_config=bad)
    assert MetadataStore(location).count("sites") == 500
    ctx = dg.build_schedule_context(scheduled_execution_time=pd.Timestamp("2026-12-06 03:00", tz="UTC"))
    (req,) = weekly_store_pruning.evaluate_tick(ctx).run_requests
    assert req.run_key == "prune:2026-12-06T03:00"


def _site_writer(location: StoreLocation, rounds: int, out: str) -> None:
    store = MetadataStore(location)
    ids = [f"s{i:03d}" for i in range(500)]
    for k in range(rounds):
        store.replace_rows("sites", _sites(ids).assign(lat=float(k)), {"domain": "streamflow"})
    Path(out).write_text(json.dumps({"retries": store.retries}))


@pytest.mark.fault
def test_pruning_beside_a_writer_loses_nothing(tmp_path: Path) -> None:
    """Expiring snapshots while another process replaces a partition on the same PostgreSQL
    catalog: the writer finishes, the pruner finishes, the last generation is whole."""
    with fresh_pg_database(pg_dsn_or_skip()) as dsn:
        location = ducklake("postgres:" + dsn, tmp_path / "lake")
        store = MetadataStore(location)
        store.init_schema()
        rounds = 25
        writer = mp.get_context("spawn").Process(
            target=_site_writer, args=(location, rounds, str(tmp_path / "w.json"))
        )
        writer.start()
        expired = prunes = 0
        while writer.is_alive() or prunes == 0:
            expired += store.prune_history(keep_s=0.0, grace_s=3600.0).snapshots
            prunes += 1
        writer.join(300)
        assert writer.exitcode == 0 and prunes > 1
        expired += store.prune_history(keep_s=0.0, grace_s=3600.0).snapshots
        now = store.query("SELECT count(*) AS n, min(lat) AS lo, max(lat) AS hi FROM sites")
        store.close()
    assert now.iloc[0].tolist() == [500, rounds - 1, rounds - 1]
    assert expired >= rounds - 1  # every replaced generation's snapshot went (the newest is kept)
