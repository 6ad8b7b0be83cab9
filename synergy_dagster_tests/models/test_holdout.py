"""The season-covering validation split (``training.validation.split: blocks``): where its blocks
lie, that no held-out day is ever a training target, and that ``tail`` is what it always was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from synergy_dagster.config import Budget, DomainTraining, ValidationSplit
from synergy_dagster.errors import ConfigError
from synergy_dagster.layout import Layout
from synergy_dagster.models.fit import FitPlace, arrays_hash, fit_set, validation_split
from synergy_dagster.models.holdout import block_layout, held_out_mask, mask_targets
from synergy_dagster.models.normalization import Normalizer, prepare_arrays
from synergy_dagster.models.predict import warmup_window
from synergy_dagster.models.training import ModelRun, TrainSpec, train_model
from synergy_dagster.store import MetadataStore
from synergy_dagster_tests.models.test_fit import PROFILE, TRAIN, _dataset, _same, _training_set

BLOCKS = DomainTraining(
    rho=20, batch=4, warmup=10, validation_days=30, validation=ValidationSplit(split="blocks", block_days=5)
)
TRAIN_DAYS = 140  # 2001-01-01..2001-05-20, the first days of the test data
EQUAL = Budget("equal_updates", updates=12, eval_every=6)


def test_blocks_are_evenly_spaced_and_cover_every_month_of_a_year() -> None:
    # the cpu soil-moisture setting: 61 of the 366 days of 2015-04-01..2016-03-31, blocks of 5
    days = pd.date_range("2015-04-01", "2016-03-31", freq="D")
    starts, lengths = block_layout(len(days), 61, 5)
    assert len(starts) == 12 and lengths.sum() == 61 and set(lengths) == {5, 6}
    assert set(np.diff(starts)) <= {30, 31}  # evenly spaced: one segment of 366 / 12 days apart
    held = held_out_mask(len(days), 61, 5)
    assert held.sum() == 61 and not held[0] and not held[-1]
    assert sorted(set(days[held].month)) == list(range(1, 13))
    # blocks never overlap and each is one run of consecutive days
    assert np.all(starts[1:] >= starts[:-1] + lengths[:-1])
    assert int(np.diff(held.astype(int)).clip(min=0).sum()) == 12


@pytest.mark.parametrize(
    ("n_days", "total", "block_days", "source"),
    [
        (366, 61, 0, "validation.block_days"),
        (366, 4, 5, "validation.block_days"),
        (100, 61, 5, "validation_days"),
    ],
)
def test_a_layout_that_cannot_be_cut_is_refused_by_name(
    n_days: int, total: int, block_days: int, source: str
) -> None:
    with pytest.raises(ConfigError) as err:
        block_layout(n_days, total, block_days)
    assert err.value.source == source


def _days_of(y: np.ndarray, norm: Normalizer) -> np.ndarray:
    """The day indices the finite targets ``y`` encode (the test data's target is day index + 1)."""
    obs = norm.inverse_target(y)
    return np.rint(obs[np.isfinite(obs)]).astype(int) - 1


def test_no_held_out_day_is_ever_a_training_target() -> None:
    ds = _dataset()
    n_days = len(ds["time"])
    ds["runoff"] = ds["runoff"].copy(
        data=np.broadcast_to(np.arange(n_days, dtype=float) + 1.0, ds["runoff"].shape)
    )
    ts = _training_set(ds)
    arrays, val, label = validation_split(ds, ts.norm, TRAIN, list(ts.site_ids), BLOCKS)
    held = held_out_mask(arrays.n_days, 30, 5)
    assert label == "held out 6 blocks (30 days, 5+ each) spread over 2001-01-01..2001-05-20"
    # the arrays: held-out days are no target of training and the only targets of validation
    assert np.isnan(arrays.y[:, held]).all() and np.isfinite(arrays.y[:, ~held]).all()
    scored = val.arrays.y[:, val.skip :]
    assert np.isfinite(scored[:, held]).all() and np.isnan(scored[:, ~held]).all()
    assert np.array_equal(val.arrays.x[:, val.skip :], arrays.x)  # inputs of every day are read
    # the sampled minibatches: 300 draws of the trainer's own sampler reach every trained day, no other
    spec = TrainSpec(hidden=4, epochs=1, rho=20, batch=4, dropconnect=0.0, seed=0)
    run = ModelRun(arrays, spec, val, None, "cpu")
    run.start()
    seen = np.concatenate([_days_of(run.draw()[1].numpy()[..., 0], ts.norm) for _ in range(300)])
    assert not held[seen].any()
    assert set(seen) == set(np.flatnonzero(~held))


def test_the_held_out_targets_cannot_change_the_trained_weights() -> None:
    # the loss never sees a held-out target: garbage there gives the same data hash and weights
    ds = _dataset()
    ts = _training_set(ds)
    held = np.zeros(len(ds["time"]), dtype=bool)
    held[:TRAIN_DAYS] = held_out_mask(TRAIN_DAYS, 30, 5)
    bad = ds.copy(deep=True)
    bad["runoff"].values[:, held] = 1e3
    spec = TrainSpec(hidden=6, epochs=1, rho=20, batch=4, dropconnect=0.0, seed=3, budget=EQUAL)
    weights, hashes = [], []
    for data in (ds, bad):
        arrays, val, _ = validation_split(data, ts.norm, TRAIN, list(ts.site_ids), BLOCKS)
        hashes.append(arrays_hash(arrays))
        weights.append(train_model(arrays, spec, validation=val, progress=False).state_dict)
    assert hashes[0] == hashes[1] and _same(weights[0], weights[1])
    # and the validation data do see them (so the test above could see a leak)
    vals = [validation_split(d, ts.norm, TRAIN, list(ts.site_ids), BLOCKS)[1] for d in (ds, bad)]
    assert not np.array_equal(vals[0].arrays.y, vals[1].arrays.y, equal_nan=True)


def test_mask_targets_keeps_inputs_and_refuses_a_wrong_length() -> None:
    ds = _dataset()
    ts = _training_set(ds)
    arrays = prepare_arrays(ds, ts.norm, TRAIN.slice, list(ts.site_ids))
    keep = np.arange(arrays.n_days) % 2 == 0
    masked = mask_targets(arrays, keep)
    assert masked.x is arrays.x and np.isnan(masked.y[:, ~keep]).all()
    assert np.array_equal(masked.y[:, keep], arrays.y[:, keep])
    with pytest.raises(ValueError, match="a mask of"):
        mask_targets(arrays, keep[:-1])


def test_tail_is_the_split_of_before_arrays_label_fingerprint_and_weights(tmp_path: Path) -> None:
    ds = _dataset()
    ts = _training_set(ds)
    sites = list(ts.site_ids)
    default = PROFILE.for_domain("streamflow")
    explicit = default.replace(validation=ValidationSplit(split="tail", block_days=9))
    # the arrays of the code before the setting: carve the last days, warm-up before them
    fit, held = TRAIN.carve_validation(30)
    window, _ = warmup_window(ds, held.slice, default.warmup)
    for dom in (default, explicit):
        arrays, val, label = validation_split(ds, ts.norm, TRAIN, sites, dom)
        assert label == "held out 2001-04-21..2001-05-20"
        assert arrays_hash(arrays) == arrays_hash(prepare_arrays(ds, ts.norm, fit.slice, sites))
        assert arrays_hash(val.arrays) == arrays_hash(prepare_arrays(ds, ts.norm, window, sites))
        assert val.skip == 10
    # one fit per profile: the same recorded config (no trace of the new setting) and weights
    outs = []
    for i, dom in enumerate((default, explicit)):
        profile = PROFILE.replace(domains={"streamflow": dom})
        layout = Layout(tmp_path / str(i))
        place = FitPlace(layout, MetadataStore(layout.database()), torch.device("cpu"), lambda _: None, 1)
        outs.append(fit_set(ts, profile, profile.budget, ds, place))
    assert outs[0].rows[0]["config_json"] == outs[1].rows[0]["config_json"]
    assert "block" not in outs[0].rows[0]["config_json"] and "split" not in outs[0].rows[0]["config_json"]
    assert all(_same(outs[0].seeds[s], outs[1].seeds[s]) for s in (0, 1))


def test_blocks_models_are_recorded_apart_from_tail_models(tmp_path: Path) -> None:
    ds = _dataset()
    ts = _training_set(ds)
    configs = []
    for i, dom in enumerate((PROFILE.for_domain("streamflow"), BLOCKS)):
        profile = PROFILE.replace(domains={"streamflow": dom}, seeds=(0,))
        layout = Layout(tmp_path / str(i))
        place = FitPlace(layout, MetadataStore(layout.database()), torch.device("cpu"), lambda _: None, 1)
        out = fit_set(ts, profile, profile.budget, ds, place)
        configs.append(out.rows[0]["config_json"])
        assert out.validation in configs[-1]
    assert configs[0] != configs[1]
