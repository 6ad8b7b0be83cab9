"""The leakage audit on a tiny synthetic dataset: the training tensors' hash is the one training
records, it changes when a held-out site joins the site list, and the target-row check finds a
held-out site exactly when its data are in the tensors (normalised as the model saw them)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from synergy_dagster.config import Budget, DomainTraining, Period, Profile, ValidationSplit
from synergy_dagster.layout import Layout
from synergy_dagster.models.fit import FitPlace, TrainingSet, fit_set, training_tensors
from synergy_dagster.models.leakage import shared_target_rows
from synergy_dagster.models.normalization import Normalizer, prepare_arrays
from synergy_dagster.sources.sitedata import make_site_dataset
from synergy_dagster.store import MetadataStore

TRAIN = Period("2001-01-01", "2001-04-30")
TEST = Period("2001-05-01", "2001-05-30")
TRAINED, HELD_OUT = ("s0", "s1", "s2", "s3"), ("s4", "s5")
# the blocks split masks validation targets inside the period: the audit must see the same masks
DOM = DomainTraining(
    rho=20, batch=2, warmup=10, validation_days=20, validation=ValidationSplit(split="blocks", block_days=5)
)
PROFILE = Profile(
    "tiny", hidden=4, epochs=1, dropconnect=0.0, seeds=(0,), domains={"soil_moisture": DOM},
    budget=Budget("equal_updates", updates=2, eval_every=2),
)  # fmt: skip


def _dataset() -> xr.Dataset:
    rng = np.random.default_rng(3)
    n_site, time = 6, pd.date_range("2001-01-01", "2001-05-30", freq="D")
    sm = rng.uniform(0.05, 0.45, (n_site, time.size))
    sm[:, ::7] = np.nan  # gaps, as SMAP has
    return make_site_dataset(
        domain="soil_moisture", source="synthetic", site_ids=[f"s{i}" for i in range(n_site)], time=time,
        lat=np.linspace(30, 45, n_site), lon=np.linspace(-120, -80, n_site),
        target=("sm", sm, "m3/m3"), dynamic={"prcp": (rng.gamma(0.5, 4.0, (n_site, time.size)), "mm/d")},
        static={"clay": (rng.uniform(0.0, 60.0, n_site), "%")},
    )  # fmt: skip


def _spatial_set(ds: xr.Dataset, sites: tuple[str, ...] = TRAINED) -> TrainingSet:
    """A PUB set: its normaliser fitted on its training sites only, as build_training_set fits it."""
    norm = Normalizer.fit(ds.sel(site=list(TRAINED)), TRAIN.slice, method="zscore", log_vars=[])
    return TrainingSet(
        domain="soil_moisture", key="pub_global:f0", scenario="pub_global", region="f0", experiment="pub",
        site_ids=sites, sites_hash="-", data_hash="-", train=TRAIN, test=TEST, normalizer=norm.to_dict(),
        n_train_samples=0,
    )  # fmt: skip


def test_training_records_the_hash_of_training_tensors(tmp_path: Path) -> None:
    """The hash the audit rebuilds is the one training stores (training calls training_tensors)."""
    ds, layout = _dataset(), Layout(tmp_path)
    ts = _spatial_set(ds)
    place = FitPlace(layout, MetadataStore(layout.database()), torch.device("cpu"), lambda _: None, 1)
    fit = fit_set(ts, PROFILE, PROFILE.budget, ds, place)
    assert [r["data_hash"] for r in fit.rows] == [training_tensors(ts, ds, DOM).data_hash]


def test_a_held_out_site_in_the_list_changes_the_hash_and_is_found() -> None:
    ds = _dataset()
    ts = _spatial_set(ds)
    clean = training_tensors(ts, ds, DOM)
    # the held-out sites exactly as they would enter these tensors: same normaliser, period, masks
    held = training_tensors(dataclasses.replace(ts, site_ids=HELD_OUT), ds, DOM).arrays
    assert np.isfinite(held.y).any(axis=(1, 2)).all()  # every candidate carries target data
    unmasked = prepare_arrays(ds, ts.norm, TRAIN.slice, list(TRAINED)).y
    assert (np.isnan(clean.arrays.y) & ~np.isnan(unmasked)).any(axis=(0, 2)).sum() > 12  # blocks on
    assert shared_target_rows(clean.arrays, held) == []
    # positive control: each training site, rebuilt alone, is found in the tensors
    for site in TRAINED:
        alone = training_tensors(dataclasses.replace(ts, site_ids=(site,)), ds, DOM).arrays
        assert shared_target_rows(clean.arrays, alone) == [site]
    leaky = training_tensors(dataclasses.replace(ts, site_ids=(*TRAINED, "s5")), ds, DOM)
    assert leaky.data_hash != clean.data_hash
    assert shared_target_rows(leaky.arrays, held) == ["s5"]
    # the site order is part of the hash too (the tensors' rows are in list order)
    assert (
        training_tensors(dataclasses.replace(ts, site_ids=TRAINED[::-1]), ds, DOM).data_hash
        != clean.data_hash
    )


def test_candidates_must_be_built_as_the_training_tensors_were() -> None:
    """Rows normalised otherwise never match (a vacuous pass), and other days are refused."""
    ds = _dataset()
    ts = _spatial_set(ds, (*TRAINED, "s4"))
    leaky = training_tensors(ts, ds, DOM).arrays
    shared = Normalizer.fit(ds, TRAIN.slice, method="zscore", log_vars=[])  # all sites' statistics
    other = training_tensors(dataclasses.replace(ts, normalizer=shared.to_dict()), ds, DOM).arrays
    assert shared_target_rows(leaky, other) == []  # s4 is in the tensors, yet not found this way
    with pytest.raises(ValueError, match="build both with one call"):
        shared_target_rows(leaky, prepare_arrays(ds, ts.norm, TEST.slice, list(HELD_OUT)))
