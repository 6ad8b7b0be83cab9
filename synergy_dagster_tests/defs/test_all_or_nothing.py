"""Issue 17: an asset's outputs are all new or all old; a full disk names the file; messages say
what to do.

1. :func:`staged_outputs` (files + one DuckDB transaction) on its own, and through the
   ``soil_moisture_sites`` and ``soil_moisture_plan`` assets, with a failure injected in the
   database write, in the second file, in a rename and in the commit; through ``evaluation``,
   ``significance``, ``figures``, ``reproduction_report`` and ``budget_sensitivity``, with a
   failing database write or file (old figure parts a rerun drops stay until it succeeds).
2. ENOSPC / EDQUOT in :func:`atomic_write_text`, a NetCDF and a Parquet write, and a staged file.
3. Thresholds that empty the plan, empty or truncated plan / training-set / normaliser JSON, and
   an environment variable that does not parse.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from synergy_dagster.config import PlanConfig
from synergy_dagster.errors import ConfigError, DiskFullError, InputError
from synergy_dagster.experiments.plan import build_plan, threshold_advice
from synergy_dagster.io_utils import (
    StagedOutputs,
    atomic_path,
    atomic_write_text,
    staged_outputs,
    write_netcdf,
)
from synergy_dagster.layout import Layout
from synergy_dagster.models.fit import load_normalizer, load_plan, load_training_set
from synergy_dagster.regions.subregions import subregions_of
from synergy_dagster.store import MetadataStore
from synergy_dagster_tests.runconfig import study_run_config


class Boom(RuntimeError):
    """The injected failure."""


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes), temp files included."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _rows(store: MetadataStore, table: str) -> pd.DataFrame:
    return store.query(f"SELECT * FROM {table} ORDER BY ALL")


# ------------------------------------------------------------------ 1. staged_outputs on its own


@pytest.fixture
def old_state(tmp_path: Path) -> tuple[Path, MetadataStore, dict[str, bytes], pd.DataFrame]:
    """Two files and a ``sites`` partition written by an earlier, successful run."""
    out = tmp_path / "out"
    store = MetadataStore(tmp_path / "meta.duckdb")
    with staged_outputs() as s:
        s.write_text(out / "a.json", '{"old": 1}')
        s.write_text(out / "b.json", '{"old": 2}')
        s.transaction(store.transaction([("sites", _sites("old", 3), {"domain": "streamflow"})]))
    return out, store, _snapshot(out), _rows(store, "sites")


def _sites(prefix: str, n: int) -> pd.DataFrame:
    return pd.DataFrame({"site_id": [f"{prefix}{i}" for i in range(n)], "domain": "streamflow", "kept": True})


def _new_run(out: Path, store: MetadataStore, fail: str = "") -> None:
    """A rerun writing new content to a.json, b.json and a new c.json, failing where ``fail`` says."""
    with staged_outputs() as s:
        s.write_text(out / "a.json", '{"new": 1}')
        if fail == "second file":
            with open(s.path(out / "b.json"), "w") as f:
                f.write('{"new": ')  # half written, then the writer dies
                raise Boom("writer died")
        s.write_text(out / "b.json", '{"new": 2}')
        s.write_text(out / "c.json", '{"new": 3}')
        s.transaction(store.transaction([("sites", _sites("new", 5), {"domain": "streamflow"})]))


def _assert_old(old_state: tuple[Path, MetadataStore, dict[str, bytes], pd.DataFrame]) -> None:
    out, store, files, rows = old_state
    assert _snapshot(out) == files  # byte-identical, no c.json, no temp
    pd.testing.assert_frame_equal(_rows(store, "sites"), rows)


def test_a_failing_database_write_leaves_old_files_and_rows(old_state, monkeypatch) -> None:
    def fail(*args: object) -> None:
        raise Boom("database write failed")

    monkeypatch.setattr(MetadataStore, "_apply", staticmethod(fail))
    with pytest.raises(Boom):
        _new_run(old_state[0], old_state[1])
    _assert_old(old_state)


def test_a_rejected_database_write_leaves_old_files_and_rows(old_state) -> None:
    out, store = old_state[0], old_state[1]
    with pytest.raises(InputError, match="columns not in the table"), staged_outputs() as s:
        s.write_text(out / "a.json", '{"new": 1}')
        s.transaction(
            store.transaction([("sites", _sites("new", 2).assign(bogus=1), {"domain": "streamflow"})])
        )
    _assert_old(old_state)


def test_a_failing_second_file_leaves_old_files_and_rows(old_state) -> None:
    with pytest.raises(Boom):
        _new_run(old_state[0], old_state[1], fail="second file")
    _assert_old(old_state)


def test_a_rename_failing_midway_restores_the_renamed_targets(old_state, monkeypatch) -> None:
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == "b.json" and not Path(src).name.endswith(".bak.tmp"):
            raise OSError(errno.EIO, "input/output error")  # a.json is already new by now
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="input/output error"):
        _new_run(old_state[0], old_state[1])
    _assert_old(old_state)


def test_a_failing_commit_restores_every_file(old_state) -> None:
    out = old_state[0]

    @contextlib.contextmanager
    def commit_fails() -> Iterator[None]:
        yield
        raise Boom("commit failed")

    with pytest.raises(Boom), staged_outputs() as s:
        s.write_text(out / "a.json", '{"new": 1}')
        s.write_text(out / "c.json", '{"new": 3}')
        s.transaction(commit_fails())
    _assert_old(old_state)


def test_a_clean_run_replaces_everything(old_state) -> None:
    out, store = old_state[0], old_state[1]
    _new_run(out, store)
    assert _snapshot(out) == {"a.json": b'{"new": 1}', "b.json": b'{"new": 2}', "c.json": b'{"new": 3}'}
    assert sorted(_rows(store, "sites")["site_id"]) == [f"new{i}" for i in range(5)]


def test_one_transaction_and_one_write_per_target() -> None:
    s = StagedOutputs()
    s.transaction(contextlib.nullcontext())
    with pytest.raises(ValueError, match="one database transaction"):
        s.transaction(contextlib.nullcontext())


@pytest.mark.parametrize("fail", ["database", "commit", ""])
def test_a_removed_output_goes_only_with_a_successful_publish(old_state, monkeypatch, fail) -> None:
    """``out.remove``: an old output this run no longer writes (a figure part of a larger study)."""
    out, store = old_state[0], old_state[1]

    def db_fails(*args: object) -> None:
        raise Boom("database write failed")

    @contextlib.contextmanager
    def commit_fails() -> Iterator[None]:
        yield
        raise Boom("commit failed")

    if fail == "database":
        monkeypatch.setattr(MetadataStore, "_apply", staticmethod(db_fails))
    with pytest.raises(Boom) if fail else contextlib.nullcontext(), staged_outputs() as s:
        s.write_text(out / "a.json", '{"new": 1}')
        s.remove(out / "b.json")
        s.remove(out / "never_there.json")
        rows = [("sites", _sites("new", 2), {"domain": "streamflow"})]
        s.transaction(commit_fails() if fail == "commit" else store.transaction(rows))
    if fail:
        _assert_old(old_state)
    else:
        assert _snapshot(out) == {"a.json": b'{"new": 1}'}
        assert sorted(_rows(store, "sites")["site_id"]) == ["new0", "new1"]


def test_a_target_is_either_written_or_removed(tmp_path: Path) -> None:
    s = StagedOutputs()
    s.remove(tmp_path / "a.json")
    with pytest.raises(ValueError, match="staged twice"):
        s.path(tmp_path / "a.json")
    s.path(tmp_path / "b.json")
    with pytest.raises(ValueError, match="staged twice"):
        s.remove(tmp_path / "b.json")
    s._discard()


# ------------------------------------------------------------------ 1. through the Dagster assets


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder after regions, soil_moisture_sites and soil_moisture_plan (120 virtual pixels)."""
    data = tmp_path_factory.mktemp("prepared") / "data"
    result = _run(data, ["source_files", "raw_ecoregions", "raw_pixels", "regions", "soil_moisture_sites",
                         "soil_moisture_plan"])  # fmt: skip
    assert result.success
    return data


def _run(data: Path, assets: list[str], coverage: float = 0.9) -> dg.ExecuteInProcessResult:
    from synergy_dagster.defs.definitions import defs

    overrides = (
        "run.domains=[soil_moisture]", "thresholds.min_sites_subregion=3",
        "thresholds.min_sites_roi=3", f"thresholds.coverage={coverage}",
    )  # fmt: skip
    return defs.resolve_job_def("prepare_job").execute_in_process(
        run_config=study_run_config(data, *overrides),
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(a) for a in assets],
        raise_on_error=False,
    )


@pytest.fixture
def data(prepared: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(prepared, copy)
    return copy


def _state(data: Path) -> tuple[dict[str, bytes], dict[str, pd.DataFrame]]:
    files = {k: v for k, v in _snapshot(data).items() if not k.endswith(".duckdb") and ".wal" not in k}
    store = MetadataStore(Layout(data).database())
    return files, {t: _rows(store, t) for t in ("sites", "training_sets")}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    """The failed step's error message (so a test fails for the injected reason, not another)."""
    (event,) = [e for e in result.all_events if e.is_step_failure]
    return event.step_failure_data.error.to_string()  # with its cause chain


def _assert_unchanged(data: Path, before: tuple[dict[str, bytes], dict[str, pd.DataFrame]]) -> None:
    files, rows = _state(data)
    assert sorted(files) == sorted(before[0])  # nothing added, no temp
    assert [k for k in files if files[k] != before[0][k]] == []
    for table, df in rows.items():
        pd.testing.assert_frame_equal(df, before[1][table])
    assert _temps(data) == []


@pytest.mark.parametrize("asset", ["soil_moisture_sites", "soil_moisture_plan"])
def test_asset_with_a_failing_database_write_keeps_old_files_and_rows(data, monkeypatch, asset) -> None:
    before = _state(data)
    assert len(before[1]["sites"]) and len(before[1]["training_sets"])

    def fail(*args: object) -> None:
        raise Boom("database write failed")

    monkeypatch.setattr(MetadataStore, "_apply", staticmethod(fail))
    result = _run(data, [asset], coverage=0.3)
    assert not result.success and "database write failed" in _failure(result)
    _assert_unchanged(data, before)


@pytest.mark.parametrize(
    ("asset", "method"), [("soil_moisture_sites", "write_netcdf"), ("soil_moisture_plan", "write_text")]
)
def test_asset_with_a_failing_second_file_keeps_old_files_and_rows(data, monkeypatch, asset, method) -> None:
    """The sites asset's NetCDF (after its Parquet) and the plan asset's normaliser (after its plan)."""
    before = _state(data)
    real = getattr(StagedOutputs, method)
    calls = []

    def second_fails(self: StagedOutputs, target: Path, content: object) -> Path:
        calls.append(target)
        if len(self.targets) >= 1:
            with open(self.path(target), "wb") as f:
                f.write(b"\x89HDF half")
            raise Boom(f"writing {target} failed")
        return real(self, target, content)

    monkeypatch.setattr(StagedOutputs, method, second_fails)
    result = _run(data, [asset], coverage=0.3)
    assert not result.success and calls and f"writing {calls[-1]} failed" in _failure(result)
    _assert_unchanged(data, before)


def test_sites_asset_success_replaces_rows_table_netcdf_and_map_together(data) -> None:
    layout = Layout(data)
    old_inodes = {
        p: p.stat().st_ino for p in (layout.sites_table("soil_moisture"), layout.sites_nc("soil_moisture"))
    }
    assert _run(data, ["soil_moisture_sites"], coverage=0.3).success
    rows = MetadataStore(layout.database()).query("SELECT * FROM sites WHERE domain = 'soil_moisture'")
    table = pd.read_parquet(layout.sites_table("soil_moisture"))
    kept = xr.open_dataset(layout.sites_nc("soil_moisture"))
    try:
        assert sorted(rows.loc[rows["kept"], "site_id"]) == sorted(table.loc[table["kept"], "site_id"])
        assert sorted(map(str, kept["site"].values)) == sorted(table.loc[table["kept"], "site_id"])
    finally:
        kept.close()
    assert all(p.stat().st_ino != ino for p, ino in old_inodes.items())
    assert layout.region_map("soil_moisture").is_file() and _temps(data) == []


# ------------------------------------------- 1. through the evaluation, figures and budget assets

# Two soil-moisture partitions (global:CONUS, local:F), two seeds, tiny models: a few seconds.
EVAL_STUDY = (
    "run.domains=[soil_moisture]", "thresholds.min_sites_subregion=12",
    "thresholds.min_sites_roi=100000", "thresholds.coverage=0.9", "training.epochs=1", "training.hidden=4",
    "seeds=[0, 1]", "budget.mode=paper", "budget.updates=5", "run.sensitivity_modes=[paper, equal_updates]",
)  # fmt: skip
# The tables these assets replace rows in; old rows are marked so that a replace would show.
EVAL_TABLES = ("site_metrics", "significance", "budget_sensitivity")
OLD = " [old]"
# Per asset: the job holding it and the table its rows go to (None: files only).
EVAL_ASSETS = {
    "evaluation": ("evaluation_job", "site_metrics"),
    "significance": ("evaluation_job", "significance"),
    "figures": ("evaluation_job", None),
    "reproduction_report": ("evaluation_job", None),
    "budget_sensitivity": ("budget_sensitivity_job", "budget_sensitivity"),
}


def _study_run(
    data: Path,
    job: str,
    assets: list[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    partition: str | None = None,
) -> dg.ExecuteInProcessResult:
    from synergy_dagster.defs.definitions import defs

    return defs.resolve_job_def(job).execute_in_process(
        run_config=study_run_config(data, *EVAL_STUDY),
        instance=instance or dg.DagsterInstance.ephemeral(),
        asset_selection=None if assets is None else [dg.AssetKey(a) for a in assets],
        partition_key=partition,
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder after prepare, training, the evaluation job and budget_sensitivity."""
    data = tmp_path_factory.mktemp("evaluated") / "data"
    instance = dg.DagsterInstance.ephemeral()  # holds the training-set partitions the plan registers
    prepare = ["source_files", "raw_ecoregions", "raw_pixels", "regions", "soil_moisture_sites",
               "soil_moisture_plan"]  # fmt: skip
    assert _study_run(data, "prepare_job", prepare, instance).success
    keys = instance.get_dynamic_partitions("soil_moisture_sets")
    assert keys
    for key in keys:
        assert _study_run(data, "train_soil_moisture_job", instance=instance, partition=key).success
    assert _study_run(data, "evaluation_job").success
    assert _study_run(data, "budget_sensitivity_job").success
    return data


@pytest.fixture
def eval_data(evaluated: Path, tmp_path: Path) -> Path:
    """A copy of ``evaluated`` with figure parts of an earlier, larger study (a third time-series
    part, a similarity seed-spread figure) and its rows marked old."""
    copy = tmp_path / "data"
    shutil.copytree(evaluated, copy)
    figures = Layout(copy).figures_dir()
    (figures / "soil_moisture_timeseries_9.png").write_bytes(b"part 9 of a larger study")
    (figures / "soil_moisture_similarity_rmse_seed_spread.png").write_bytes(b"of a study with similarity")
    import duckdb

    with duckdb.connect(str(Layout(copy).database())) as con:
        for table in EVAL_TABLES:
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
            con.execute(f"UPDATE {table} SET region = region || '{OLD}'")
    return copy


EvalState = tuple[dict[str, tuple[bytes, int]], dict[str, pd.DataFrame]]


def _eval_state(data: Path, with_models: bool = True) -> EvalState:
    """Every file's bytes and inode (a replaced file has a new one) and the rows of EVAL_TABLES.
    ``with_models=False`` leaves models/ out: budget_sensitivity saves each model it fits or reuses
    as its own unit (``save_models``), a cache, not part of the asset's unit."""
    files = {
        str(p.relative_to(data)): (p.read_bytes(), p.stat().st_ino)
        for p in sorted(data.rglob("*"))
        if p.is_file()
        and not p.name.endswith((".duckdb", ".wal"))
        and (with_models or "models" not in p.relative_to(data).parts)
    }
    store = MetadataStore(Layout(data).database())
    return files, {t: _rows(store, t) for t in EVAL_TABLES}


def _assert_eval_unchanged(data: Path, before: EvalState, with_models: bool = True) -> None:
    files, rows = _eval_state(data, with_models)
    assert sorted(files) == sorted(before[0])  # nothing added or removed, no temp
    assert [k for k in files if files[k] != before[0][k]] == []  # same bytes, same inode
    for table, df in rows.items():
        pd.testing.assert_frame_equal(df, before[1][table])
        assert df["region"].str.endswith(OLD).all(), table
    assert _temps(data) == []


@pytest.mark.parametrize("asset", ["evaluation", "significance", "budget_sensitivity"])
def test_evaluation_asset_with_a_failing_database_write_keeps_old_files_and_rows(
    eval_data, monkeypatch, asset
) -> None:
    job, table = EVAL_ASSETS[asset]
    with_models = asset != "budget_sensitivity"
    before = _eval_state(eval_data, with_models)
    real = MetadataStore._apply

    def fail(con: object, writes: list[tuple[str, pd.DataFrame, dict[str, str]]]) -> None:
        if table in {w[0] for w in writes}:  # the asset's own unit; models (budget_sensitivity) pass
            raise Boom("database write failed")
        real(con, writes)

    monkeypatch.setattr(MetadataStore, "_apply", staticmethod(fail))
    result = _study_run(eval_data, job, [asset])
    assert not result.success and "database write failed" in _failure(result)
    _assert_eval_unchanged(eval_data, before, with_models)


@pytest.mark.parametrize(
    ("asset", "failing"),
    [
        ("evaluation", "site_metrics.parquet"),  # after the predictions NetCDF and the time series
        ("significance", "significance.parquet"),
        ("figures", "soil_moisture_global_vs_local_corr_seed_spread.png"),  # the last of the figures
        ("reproduction_report", "reproduction_verdicts.parquet"),  # after the Markdown
        ("budget_sensitivity", "site_metrics.parquet"),  # after sensitivity.parquet
    ],
)
def test_evaluation_asset_with_a_failing_file_keeps_old_files_and_rows(
    eval_data, monkeypatch, asset, failing
) -> None:
    """The failure is injected in the writers (Parquet, PNG bytes), not in ``staged_outputs``: the
    asset's other outputs are already written (to temps) when it strikes."""
    job = EVAL_ASSETS[asset][0]
    with_models = asset != "budget_sensitivity"
    before = _eval_state(eval_data, with_models)
    real_parquet, real_bytes = pd.DataFrame.to_parquet, Path.write_bytes

    def half_then_fail(path: object) -> None:
        # a temp's name is ".<target name>.<random>.tmp"
        if failing in Path(str(path)).name:
            real_bytes(Path(str(path)), b"PAR1 half")  # half written, then the writer dies
            raise Boom(f"writing {failing} failed")

    def to_parquet(self: pd.DataFrame, path: object, *args: object, **kwargs: object) -> object:
        half_then_fail(path)
        return real_parquet(self, path, *args, **kwargs)

    def write_bytes(self: Path, data: bytes) -> int:
        half_then_fail(self)
        return real_bytes(self, data)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    result = _study_run(eval_data, job, [asset])
    assert not result.success and f"writing {failing} failed" in _failure(result)
    _assert_eval_unchanged(eval_data, before, with_models)


def test_evaluation_and_figures_reruns_replace_everything_and_drop_stale_parts(eval_data) -> None:
    layout = Layout(eval_data)
    figures = layout.figures_dir()
    replaced = [
        layout.site_metrics(),
        layout.predictions("soil_moisture"),
        layout.timeseries_png("soil_moisture"),
    ]
    inodes = {p: p.stat().st_ino for p in replaced}
    assert _study_run(eval_data, "evaluation_job", ["evaluation"]).success
    assert all(p.stat().st_ino != ino for p, ino in inodes.items())
    assert not (figures / "soil_moisture_timeseries_9.png").exists()
    metrics = MetadataStore(layout.database()).query("SELECT * FROM site_metrics WHERE budget = 'paper'")
    assert not metrics["region"].str.endswith(OLD).any()  # replaced, not added to
    assert len(metrics) == len(pd.read_parquet(layout.site_metrics()))
    assert (figures / "soil_moisture_similarity_rmse_seed_spread.png").exists()  # the figures asset's
    assert _study_run(eval_data, "evaluation_job", ["figures"]).success
    assert not (figures / "soil_moisture_similarity_rmse_seed_spread.png").exists()
    assert (figures / "soil_moisture_global_vs_local_corr_seed_spread.png").is_file()
    assert _temps(eval_data) == []


# ------------------------------------------------------------------------------- 2. disk full


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


FULL = r"^no space left on device writing {} \(\d+ bytes free\)$"


def test_disk_full_in_atomic_write_text_names_the_path(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "plans" / "soil_moisture.json"
    atomic_write_text(target, "old")
    monkeypatch.setattr(Path, "write_bytes", _enospc)
    with pytest.raises(DiskFullError, match=FULL.format(target)) as info:
        atomic_write_text(target, "new")
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert target.read_text() == "old" and _temps(tmp_path) == []


def test_disk_full_in_a_netcdf_write_names_the_path(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "sites" / "soil_moisture.nc"
    ds = xr.Dataset({"v": ("site", np.arange(3.0))})

    def half_then_full(self: xr.Dataset, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"\x89HDF partial")
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", half_then_full)
    with pytest.raises(DiskFullError, match=FULL.format(target)) as info:
        write_netcdf(ds, target)
    assert info.value.errno == errno.EDQUOT
    assert not target.exists() and _temps(tmp_path) == []


def test_disk_full_in_a_parquet_write_reported_as_text_names_the_path(tmp_path: Path, monkeypatch) -> None:
    """pyarrow wraps the OS error: only its text says the disk is full."""
    target = tmp_path / "sites" / "soil_moisture_sites.parquet"

    def arrow_full(self: pd.DataFrame, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"PAR1")
        raise OSError(f"[Errno 28] Error writing bytes to file. Detail: {os.strerror(errno.ENOSPC)}")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", arrow_full)
    with pytest.raises(DiskFullError, match=FULL.format(target)), atomic_path(target) as tmp:
        pd.DataFrame({"a": [1]}).to_parquet(tmp)
    assert not target.exists() and _temps(tmp_path) == []


def test_disk_full_in_a_staged_file_names_that_file_and_keeps_the_old(old_state, monkeypatch) -> None:
    out = old_state[0]
    with pytest.raises(DiskFullError, match=FULL.format(out / "b.json")), staged_outputs() as s:
        s.write_text(out / "a.json", '{"new": 1}')
        monkeypatch.setattr(Path, "write_bytes", _enospc)
        s.write_text(out / "b.json", '{"new": 2}')
    _assert_old(old_state)


def test_other_os_errors_pass_unchanged(tmp_path: Path, monkeypatch) -> None:
    def eio(*args: object) -> None:
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(Path, "write_bytes", eio)
    with pytest.raises(OSError, match="input/output error") as info:
        atomic_write_text(tmp_path / "x.json", "x")
    assert not isinstance(info.value, DiskFullError) and _temps(tmp_path) == []


# --------------------------------------------------------------- 3a. thresholds that empty the plan


def _tagged(counts: dict[str, int]) -> pd.DataFrame:
    rows = []
    for l3, n in counts.items():
        l1, b, _ = l3.split(".")
        rows += [{"site_id": f"s{l3}_{i}", "l1": l1, "l2": f"{l1}.{b}", "l3": l3} for i in range(n)]
    df = pd.DataFrame(rows)
    df["subregion"] = subregions_of(df["l1"], df["l2"])
    return df


def test_no_subregion_and_no_roi_names_both_thresholds_and_the_largest_counts() -> None:
    tagged = _tagged({"8.1.1": 4, "8.3.5": 6, "9.2.3": 2})
    largest_sub = tagged["subregion"].value_counts()
    letter, n_sub = largest_sub.index[0], int(largest_sub.iloc[0])
    with pytest.raises(ConfigError) as info:
        build_plan(tagged, "soil_moisture", PlanConfig(min_sites_subregion=50, min_sites_roi=40))
    msg = str(info.value)
    assert msg.startswith("study thresholds [soil_moisture]: the plan would hold the global set only")
    assert f"min_sites_subregion=50 (largest: {letter} with {n_sub} sites)" in msg
    assert "min_sites_roi=40 (largest: 8.3.5 with 6 sites)" in msg
    for setting in ("thresholds: {min_sites_subregion:", f"thresholds.min_sites_subregion={n_sub}`",
                    "thresholds: {min_sites_roi: 6}", "thresholds.min_sites_roi=6`"):  # fmt: skip
        assert setting in msg


def test_no_roi_only_is_advice_on_the_plan_not_an_error() -> None:
    tagged = _tagged({"8.1.1": 4, "8.3.5": 6, "9.2.3": 2})
    plan = build_plan(tagged, "soil_moisture", PlanConfig(min_sites_subregion=2, min_sites_roi=7))
    assert not plan.rois and plan.training_keys
    (advice,) = threshold_advice(plan)
    assert "no Level III region reaches min_sites_roi=7 (largest: 8.3.5 with 6 sites)" in advice
    assert "lower min_sites_roi to 6 or less" in advice and "override `thresholds.min_sites_roi=6`" in advice
    # and it survives the plan file
    from synergy_dagster.experiments.plan import Plan

    assert threshold_advice(Plan.from_dict(json.loads(json.dumps(plan.to_dict())))) == [advice]


def test_no_subregion_only_names_min_sites_subregion() -> None:
    tagged = _tagged({"8.1.1": 4, "8.3.5": 6})
    plan = build_plan(tagged, "streamflow", PlanConfig(min_sites_subregion=20, min_sites_roi=3))
    (advice,) = threshold_advice(plan)
    assert (
        "no sub-region reaches min_sites_subregion=20" in advice
        and "`thresholds.min_sites_subregion=" in advice
    )


# ------------------------------------------------------- 3b. empty or truncated JSON names the asset


@pytest.fixture
def layout_with_plan(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path)
    plan = build_plan(_tagged({"8.1.1": 4, "8.3.5": 6}), "soil_moisture", PlanConfig(2, 2))
    atomic_write_text(layout.plan("soil_moisture"), json.dumps(plan.to_dict()))
    return layout


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty file"),
        ("   \n", "empty file"),
        (None, "truncated or not JSON"),
        ("[1, 2]", "not a serialised plan"),
    ],
)
def test_a_broken_plan_file_names_the_plan_asset(layout_with_plan: Layout, content, problem) -> None:
    path = layout_with_plan.plan("soil_moisture")
    text = path.read_text()
    path.write_text(text[: len(text) // 2] if content is None else content)
    with pytest.raises(InputError, match=problem) as info:
        load_plan(layout_with_plan, "soil_moisture")
    assert str(info.value).startswith(str(path)) and "rematerialise soil_moisture_plan" in str(info.value)


@pytest.mark.parametrize(("content", "problem"), [("", "empty file"), ('{"domain": "soil_mo', "truncated")])
def test_a_broken_training_set_file_names_its_partition(tmp_path: Path, content: str, problem: str) -> None:
    layout = Layout(tmp_path)
    path = layout.training_set("soil_moisture", "global:CONUS")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    with pytest.raises(InputError, match=problem) as info:
        load_training_set(layout, "soil_moisture", "global:CONUS")
    assert "rematerialise soil_moisture_training_set [global:CONUS]" in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"), [("", "empty file"), ('{"method": "zscore", "tar', "truncated")]
)
def test_a_broken_normalizer_file_names_the_plan_asset(tmp_path: Path, content: str, problem: str) -> None:
    layout = Layout(tmp_path)
    atomic_write_text(layout.normalizer("streamflow"), content)
    with pytest.raises(InputError, match=problem) as info:
        load_normalizer(layout, "streamflow")
    assert str(info.value).startswith(str(layout.normalizer("streamflow")))
    assert "rematerialise streamflow_plan" in str(info.value)


# ------------------------------------------------------ 3c. an environment variable that does not parse


@pytest.mark.parametrize(
    ("name", "value", "reader", "default"),
    [
        ("SYNERGY_BANK_SIZE", "5.5", "env_int", 10),
        ("SYNERGY_LANDING_SETTLE_S", "ten", "env_float", 0.0),
        ("SYNERGY_AUTOMATION", "maybe", "env_bool", False),
    ],
)
def test_an_unparsable_environment_variable_is_named(monkeypatch, name, value, reader, default) -> None:
    from synergy_dagster import env

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=rf"^{name}: expected .*got '{value}'$"):
        getattr(env, reader)(name, default)
