"""Training orchestration without Dagster (models/fit.py) and the model-file API (models/files.py):
the training-set description round trip, fitting and reusing a set, the model checks, and
partition files with their hashes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from synergy_dagster.config import Budget, DomainTraining, Period, Profile
from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import file_sha256
from synergy_dagster.layout import Layout
from synergy_dagster.models.files import load_state, read_partition, save_models, write_partition
from synergy_dagster.models.fit import (
    FitPlace,
    TrainingSet,
    check_models,
    code_version,
    fit_set,
    load_plan,
    load_training_set,
    reusable_row,
)
from synergy_dagster.models.normalization import Normalizer
from synergy_dagster.sources.sitedata import make_site_dataset
from synergy_dagster.store import MetadataStore

TRAIN = Period("2001-01-01", "2001-05-20")  # 140 days; the last 30 are held out for validation
TEST = Period("2001-05-21", "2001-07-19")


def _dataset(n_site: int = 6, n_time: int = 200) -> xr.Dataset:
    rng = np.random.default_rng(0)
    time = pd.date_range("2001-01-01", periods=n_time, freq="D")
    prcp = rng.gamma(0.5, 4.0, size=(n_site, n_time))
    q = np.stack([np.convolve(p, np.ones(5) / 5)[:n_time] for p in prcp]) + rng.gamma(
        2.0, 0.2, (n_site, n_time)
    )
    return make_site_dataset(
        domain="streamflow", source="synthetic", site_ids=[f"s{i}" for i in range(n_site)], time=time,
        lat=np.linspace(30, 45, n_site), lon=np.linspace(-120, -80, n_site),
        target=("runoff", q, "mm/d"), dynamic={"prcp": (prcp, "mm/d")},
        static={"area": (rng.uniform(10.0, 1000.0, size=n_site), "km2")},
    )  # fmt: skip


def _training_set(ds: xr.Dataset) -> TrainingSet:
    norm = Normalizer.fit(ds, TRAIN.slice, method="p10p90", log_vars=[])
    sites = [str(s) for s in ds["site"].values]
    return TrainingSet(
        domain="streamflow", key="global:CONUS", scenario="global", region="CONUS", experiment="global_vs_local",
        site_ids=tuple(sites), sites_hash="abc", data_hash="def", train=TRAIN, test=TEST,
        normalizer=norm.to_dict(), n_train_samples=123,
    )  # fmt: skip


PROFILE = Profile(
    "tiny", hidden=8, epochs=2, dropconnect=0.0, seeds=(0, 1),
    domains={"streamflow": DomainTraining(rho=20, batch=4, warmup=10, validation_days=30)},
    budget=Budget("equal_updates", updates=10, eval_every=5),
)  # fmt: skip


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_set_round_trip_keeps_the_stored_dict() -> None:
    ts = _training_set(_dataset())
    d = ts.to_dict()
    # the JSON the training_set asset writes: periods as [start, end], the normaliser verbatim
    assert d["train"] == ["2001-01-01", "2001-05-20"] and d["site_ids"] == list(ts.site_ids)
    back = TrainingSet.from_dict(json.loads(json.dumps(d)))
    assert back == ts and back.to_dict() == d
    assert isinstance(back.norm, Normalizer)
    with pytest.raises(InputError) as err:
        TrainingSet.from_dict({k: v for k, v in d.items() if k != "data_hash"})
    assert err.value.where == "data_hash"
    with pytest.raises(InputError) as err:
        TrainingSet.from_dict({**d, "train": ["2001-01-01"]})
    assert err.value.where == "train"


def test_missing_plan_and_training_set_name_what_to_materialise(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    with pytest.raises(InputError, match="materialise streamflow_plan first"):
        load_plan(layout, "streamflow")
    with pytest.raises(InputError, match="materialise streamflow_training_set"):
        load_training_set(layout, "streamflow", "global:CONUS")
    ts = _training_set(_dataset())
    path = layout.training_set("streamflow", "global:CONUS")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(ts.to_dict()))
    assert load_training_set(layout, "streamflow", "global:CONUS") == ts


def test_code_version_names_package_and_commit() -> None:
    version, _, sha = code_version().partition("+")
    assert version and sha


def test_fit_set_trains_records_and_then_reuses(tmp_path: Path) -> None:
    ds, layout = _dataset(), Layout(tmp_path)
    store = MetadataStore(layout.database())
    ts = _training_set(ds)
    logs: list[str] = []
    fit = fit_set(
        ts, PROFILE, PROFILE.budget, ds, FitPlace(layout, store, torch.device("cpu"), logs.append, 1)
    )
    assert sorted(fit.seeds) == [0, 1] and fit.validation == "held out 2001-04-21..2001-05-20"
    assert {r["resumed_from_block"] for r in fit.rows} == {0} and {r["n_iterations"] for r in fit.rows} == {
        10
    }
    assert layout.checkpoint("streamflow", "equal_updates", "global:CONUS", 0).exists()
    checks = check_models(fit, PROFILE.hidden, PROFILE.dropconnect, torch.device("cpu"))
    assert checks.nan_sites == 0 and checks.losses_finite and set(checks.training_rmse) == {"0", "1"}
    index = save_models(
        layout, store, "streamflow", "global:CONUS", fit.budget, fit.seeds, fit.rows, fit.curves
    )
    assert Path(index["0"]["path"]) == layout.model_file("streamflow", "equal_updates", "global:CONUS", 0)
    assert store.count("models") == 2 and store.count("learning_curves") == 4
    # the same data and config: both seeds are reused from their files, no training
    logs.clear()
    again = fit_set(
        ts, PROFILE, PROFILE.budget, ds, FitPlace(layout, store, torch.device("cpu"), logs.append, 1)
    )
    assert sum("reusing the intact model" in m for m in logs) == 2
    assert all(_same(again.seeds[s], fit.seeds[s]) for s in (0, 1))
    # a damaged file is not reused: that seed trains again, to the same weights (same seed, CPU)
    f = Path(index["1"]["path"])
    f.write_bytes(f.read_bytes()[:-8] + b"\0" * 8)
    logs.clear()
    third = fit_set(
        ts, PROFILE, PROFILE.budget, ds, FitPlace(layout, store, torch.device("cpu"), logs.append, 1)
    )
    assert sum("reusing the intact model" in m for m in logs) == 1
    assert _same(third.seeds[1], fit.seeds[1])


def test_partition_files_round_trip_and_refuse_a_changed_file(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    seeds = {s: {"w": torch.full((2, 3), float(s))} for s in (0, 3)}
    index = write_partition(layout, "soil_moisture", "paper", "local+far:8.3.5", seeds)
    assert json.loads(layout.model_index("soil_moisture", "paper", "local+far:8.3.5").read_text()) == index
    got = read_partition(layout, "soil_moisture", "local+far:8.3.5")
    assert all(_same(got[s], seeds[s]) for s in seeds)
    assert all(
        _same(read_partition(layout, "soil_moisture", "local+far:8.3.5", "paper")[s], seeds[s]) for s in seeds
    )
    with pytest.raises(InputError, match="no trained model"):
        read_partition(layout, "soil_moisture", "local+far:8.3.5", "converge")
    path = Path(index["3"]["path"])
    torch.save({"w": torch.zeros(2, 3)}, path)  # replaced behind the index's back
    with pytest.raises(InputError, match="SHA-256"):
        load_state(path, index["3"]["sha256"])


def test_reuse_is_refused_when_the_data_the_inputs_or_a_setting_change(tmp_path: Path) -> None:
    """A stored model is reused only for the same data, inputs and settings: change any one and the
    model trains again, to other weights (issue 26: reuse was tested in the positive direction only)."""
    ds, layout = _dataset(), Layout(tmp_path)
    store = MetadataStore(layout.database())
    profile = PROFILE.replace(seeds=(0,))
    place = FitPlace(layout, store, torch.device("cpu"), lambda m: None, 1)

    def fit_and_save(data: xr.Dataset, prof: Profile) -> tuple[dict[str, torch.Tensor], list[str]]:
        logs: list[str] = []
        fit = fit_set(
            _training_set(data),
            prof,
            prof.budget,
            data,
            FitPlace(layout, store, place.device, logs.append, 1),
        )
        save_models(layout, store, "streamflow", "global:CONUS", fit.budget, fit.seeds, fit.rows, fit.curves)
        return fit.seeds[0], logs

    first, _ = fit_and_save(ds, profile)
    again, logs = fit_and_save(ds, profile)
    assert any("reusing the intact model" in m for m in logs) and _same(again, first)  # the control

    wetter = ds.copy(deep=True)
    wetter["runoff"] = wetter["runoff"] * 1.1
    no_area = ds.drop_vars("area")
    dom = profile.for_domain("streamflow")
    variants = {
        "data": (wetter, profile),
        "inputs": (no_area, profile),
        "recipe": (ds, profile.replace(domains={"streamflow": dom.with_recipe({"lr": 0.5})})),
        "budget": (ds, profile.replace(budget=profile.budget.replace(updates=12))),
        "window": (ds, profile.replace(domains={"streamflow": dom.replace(batch=3)})),
    }
    for name, (data, prof) in variants.items():
        weights, logs = fit_and_save(data, prof)
        assert not any("reusing" in m for m in logs), f"{name}: a changed {name} reused the stored model"
        assert not _same(weights, first), f"{name}: retrained to the very same weights"


def test_reuse_filter_takes_only_the_same_seed_data_and_fingerprint_with_an_intact_file(
    tmp_path: Path,
) -> None:
    """The reuse filter alone (no training): every condition is needed, each one refuses alone."""
    files = {}
    for name in ("a", "b"):
        files[name] = tmp_path / f"{name}.pt"
        files[name].write_bytes(name.encode() * 10)
    rows = [  # (seed, data hash, fingerprint, file)
        (0, "h1", "c1", "a"),
        (1, "h1", "c1", "b"),
        (0, "h2", "c1", "b"),
        (0, "h1", "c2", "b"),
    ]
    previous = pd.DataFrame(
        [
            {
                "seed": s,
                "data_hash": h,
                "config_json": c,
                "path": str(files[f]),
                "file_sha256": file_sha256(files[f]),
            }
            for s, h, c, f in rows
        ]
    )
    got = reusable_row(previous, 0, "h1", "c1")
    assert got is not None and got["path"] == str(files["a"])
    assert reusable_row(previous, 1, "h1", "c1")["path"] == str(files["b"])  # type: ignore[index]
    assert reusable_row(previous, 2, "h1", "c1") is None  # another seed
    assert reusable_row(previous, 1, "h2", "c1") is None  # other data
    assert reusable_row(previous, 1, "h1", "c2") is None  # another fingerprint
    assert reusable_row(previous, 0, "h3", "c1") is None and reusable_row(previous, 0, "h1", "c3") is None
    assert reusable_row(previous.iloc[:0], 0, "h1", "c1") is None  # nothing stored
    files["a"].write_bytes(b"changed")  # the file no longer has its recorded hash
    assert reusable_row(previous, 0, "h1", "c1") is None
    files["a"].unlink()  # the file is gone
    assert reusable_row(previous, 0, "h1", "c1") is None
