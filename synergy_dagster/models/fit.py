"""Training orchestration, free of Dagster: from a training set to trained (or reused) seeds.

A :class:`TrainingSet` is one partition's description (sites, periods, normalisation, data hash);
:func:`fit_sets` trains every seed of several sets under one training budget as one bank, reusing an intact model of the
same data and configuration from the metadata store and resuming a killed run from its checkpoint;
:func:`check_models` computes what the model asset's checks judge. The Dagster assets
(``defs/assets/training.py``, ``defs/assets/budget.py``) only call these and report the results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from synergy_dagster.config import Budget, DomainPeriods, DomainTraining, Period, Profile
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.experiments.plan import Plan, parse_set_key
from synergy_dagster.experiments.spatial import SPATIAL_SCENARIOS
from synergy_dagster.io_utils import file_sha256, read_json_output
from synergy_dagster.layout import Layout
from synergy_dagster.models.files import load_state
from synergy_dagster.models.fingerprint import reuse_fingerprint
from synergy_dagster.models.holdout import held_out_mask, mask_targets
from synergy_dagster.models.normalization import (
    Arrays,
    Normalizer,
    default_method,
    log_variables,
    prepare_arrays,
    target_transform_of,
)
from synergy_dagster.models.predict import predict, warmup_window
from synergy_dagster.models.training import TrainSpec, Validation, initial_state, training_rmse
from synergy_dagster.sources.usgs_masks import training_view
from synergy_dagster.sources.usgs_spec import UsgsSpec
from synergy_dagster.store import MetadataStore

_TRAINING_SET_FIELDS = (
    "domain",
    "key",
    "scenario",
    "region",
    "experiment",
    "site_ids",
    "sites_hash",
    "data_hash",
    "train",
    "test",
    "normalizer",
    "n_train_samples",
)


@dataclass(frozen=True)
class TrainingSet:
    """One training set (a partition ``scenario:region``): its sites, periods, normalisation
    statistics (fitted on training data only) and the hash of its exact training tensors.

    ``normalizer`` is kept as the stored dict, verbatim: it enters each model's recorded config, so
    re-serialising it must not change a byte (or intact models would no longer be reused).
    """

    domain: str
    key: str
    scenario: str
    region: str
    experiment: str
    site_ids: tuple[str, ...]
    sites_hash: str
    data_hash: str
    train: Period
    test: Period
    normalizer: dict[str, Any]
    n_train_samples: int

    @property
    def norm(self) -> Normalizer:
        return Normalizer.from_dict(self.normalizer, source=f"training set {self.domain} [{self.key}]")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by the ``<domain>_training_set`` asset (periods as [start, end])."""
        return {
            "domain": self.domain,
            "key": self.key,
            "scenario": self.scenario,
            "region": self.region,
            "experiment": self.experiment,
            "site_ids": list(self.site_ids),
            "sites_hash": self.sites_hash,
            "data_hash": self.data_hash,
            "train": [self.train.start, self.train.end],
            "test": [self.test.start, self.test.end],
            "normalizer": self.normalizer,
            "n_train_samples": self.n_train_samples,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "training set") -> TrainingSet:
        """Inverse of :meth:`to_dict`; a missing or malformed field is an InputError naming it."""
        if not isinstance(data, dict):
            raise InputError(source, f"expected a JSON object, got {type(data).__name__}")
        for name in _TRAINING_SET_FIELDS:
            if name not in data:
                raise InputError(source, "missing field", name)
        for name in ("train", "test"):
            if not isinstance(data[name], list | tuple) or len(data[name]) != 2:
                raise InputError(source, f"expected [start, end], got {data[name]!r}", name)
        if not isinstance(data["normalizer"], dict):
            raise InputError(source, "expected the normalisation statistics as an object", "normalizer")
        return cls(
            domain=str(data["domain"]),
            key=str(data["key"]),
            scenario=str(data["scenario"]),
            region=str(data["region"]),
            experiment=str(data["experiment"]),
            site_ids=tuple(str(s) for s in data["site_ids"]),
            sites_hash=str(data["sites_hash"]),
            data_hash=str(data["data_hash"]),
            train=Period(*data["train"]),
            test=Period(*data["test"]),
            normalizer=data["normalizer"],
            n_train_samples=int(data["n_train_samples"]),
        )


def normalizer_options(
    domain: str, ds: xr.Dataset, log_transform: bool, target_transform: str = "log1p"
) -> dict[str, Any]:
    """Paper: z-scores for soil moisture; (x-p10)/(p90-p10) with log(x+1) for precipitation,
    runoff, area and contact time for streamflow (log optional). ``target_transform`` is the
    domain recipe's: ``none`` leaves the target out of the logged variables."""
    return {"method": default_method(domain), "log_vars": log_variables(ds, log_transform, target_transform)}


def load_plan(layout: Layout, domain: str) -> Plan:
    """The domain's experiment plan; an InputError naming the asset to materialise when absent,
    empty, truncated or malformed."""
    path = layout.plan(domain)
    if not path.exists():
        raise InputError(path, f"no experiment plan for {domain}: materialise {domain}_plan first")
    data = read_json_output(path, f"{domain}_plan")
    try:
        return Plan.from_dict(data)
    except InputError as exc:
        raise InputError(path, f"{exc.problem}: rematerialise {domain}_plan") from exc


def load_trained(
    models: pd.DataFrame, layout: Layout, domain: str, key: str
) -> tuple[dict[int, dict[str, torch.Tensor]], Normalizer]:
    """Every seed's weights of trained set ``key`` (rows of the ``models`` table; files hash-checked)
    and the normaliser of its training set: what a test pass needs."""
    rows = models[models["set_key"] == key]
    states = {int(r.seed): load_state(r.path, r.file_sha256) for r in rows.itertuples()}
    return states, load_training_set(layout, domain, key).norm


def load_training_set(layout: Layout, domain: str, key: str) -> TrainingSet:
    """The stored description of training set ``key`` (the ``<domain>_training_set`` asset's value)."""
    path = layout.training_set(domain, key)
    asset = f"{domain}_training_set [{key}]"
    if not path.exists():
        raise InputError(
            path, f"training set {domain} [{key}] was never materialised: materialise {domain}_training_set"
        )
    data = read_json_output(path, asset)
    try:
        return TrainingSet.from_dict(data, source=str(path))
    except InputError as exc:
        raise InputError(path, f"{exc.problem}: rematerialise {asset}", exc.where) from exc


def load_normalizer(layout: Layout, domain: str) -> Normalizer:
    """The domain's shared normalisation statistics (written with the plan by ``<domain>_plan``)."""
    path = layout.normalizer(domain)
    if not path.exists():
        raise InputError(path, f"no normalisation statistics for {domain}: materialise {domain}_plan first")
    data = read_json_output(path, f"{domain}_plan")
    try:
        return Normalizer.from_dict(data, source=str(path))
    except InputError as exc:
        raise InputError(path, f"{exc.problem}: rematerialise {domain}_plan", exc.where) from exc


def arrays_hash(arrays: Arrays) -> str:
    """SHA-256 of the exact training tensors (inputs, statics, targets) and their site order."""
    h = hashlib.sha256()
    for a in (arrays.x, arrays.c, arrays.y):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update("\n".join(map(str, arrays.site_ids)).encode())
    return h.hexdigest()


def build_training_set(
    layout: Layout,
    domain: str,
    key: str,
    periods: DomainPeriods,
    per_set_normalization: bool,
    log_transform: bool,
    target_transform: str = "log1p",
) -> TrainingSet:
    """Describe training set ``key`` of the current plan: its sites, periods and normalisation
    (the domain's shared statistics, or fitted on this set's sites with ``per_set_normalization``
    and always for a spatial holdout's set, whose held-out sites must not shape its scales)."""
    plan = load_plan(layout, domain)
    row = plan.sets[plan.sets["key"] == key]
    if row.empty:
        raise InputError(
            layout.plan(domain),
            f"{key!r} is not a training set of the current {domain} plan: materialise {domain}_plan",
        )
    row = row.iloc[0]
    ds = xr.load_dataset(layout.sites_nc(domain))
    site_ids = [str(s) for s in row["site_ids"]]
    scenario, region = parse_set_key(key)
    if per_set_normalization or scenario in SPATIAL_SCENARIOS:
        opts = normalizer_options(domain, ds, log_transform, target_transform)
        norm = Normalizer.fit(ds.sel(site=site_ids), periods.train.slice, **opts)
    else:
        norm = load_normalizer(layout, domain)
    arrays = prepare_arrays(ds, norm, periods.train.slice, site_ids)
    return TrainingSet(
        domain=domain,
        key=key,
        scenario=scenario,
        region=region,
        experiment=str(row["experiment"]),
        site_ids=tuple(site_ids),
        sites_hash=str(row["sites_hash"]),
        data_hash=arrays_hash(arrays),
        train=periods.train,
        test=periods.test,
        normalizer=norm.to_dict(),
        n_train_samples=int(np.isfinite(arrays.y).sum()),
    )


def code_version() -> str:
    """Package version plus the git commit when run from a checkout (recorded with each model)."""
    try:
        version = importlib.metadata.version("synergy_dagster")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was not installed
        version = "0+unknown"
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "nogit"
    return f"{version}+{sha}"


@dataclass
class FitOutcome:
    """What training one set under one budget produced (or reused)."""

    domain: str
    set_key: str
    budget: str  # the budget mode
    seeds: dict[int, dict[str, torch.Tensor]]
    rows: list[dict[str, Any]]  # one `models` row per seed
    curves: pd.DataFrame  # `learning_curves` rows of every seed
    losses: dict[int, list[float]]
    arrays: Arrays  # the training arrays (for the checks)
    n_in: int
    validation: str  # the validation period, in words


def validation_split(
    ds: xr.Dataset, norm: Normalizer, train: Period, sites: list[str], dom: DomainTraining
) -> tuple[Arrays, Validation, str]:
    """Training arrays and the validation data of the learning curve.

    With ``validation_days`` and split ``tail`` the last days of the training period are held out
    (their input window starts ``warmup`` days earlier, as in the test pass); with split ``blocks``
    they are evenly spaced blocks over the whole period (:mod:`~synergy_dagster.models.holdout`),
    masked as training targets and scored in one pass over the period (from ``warmup`` days before
    it); without, the curve is scored in-sample.
    """
    if dom.validation_days <= 0:
        arrays = prepare_arrays(ds, norm, train.slice, sites)
        return arrays, Validation(arrays, 0, norm, held_out=False), "training period (in-sample)"
    if dom.validation.split == "blocks":
        return _blocks_split(ds, norm, train, sites, dom)
    fit, val = train.carve_validation(dom.validation_days)
    arrays = prepare_arrays(ds, norm, fit.slice, sites)
    window, _ = warmup_window(ds, val.slice, dom.warmup)
    val_arrays = prepare_arrays(ds, norm, window, sites)
    skip = int((val_arrays.time < pd.Timestamp(val.start)).sum())
    return arrays, Validation(val_arrays, skip, norm), f"held out {val.start}..{val.end}"


def _blocks_split(
    ds: xr.Dataset, norm: Normalizer, train: Period, sites: list[str], dom: DomainTraining
) -> tuple[Arrays, Validation, str]:
    """The ``blocks`` split of :func:`validation_split`."""
    full = prepare_arrays(ds, norm, train.slice, sites)
    held = held_out_mask(full.n_days, dom.validation_days, dom.validation.block_days)
    window, _ = warmup_window(ds, train.slice, dom.warmup)
    scored = prepare_arrays(ds, norm, window, sites)
    skip = int((scored.time < pd.Timestamp(train.start)).sum())
    val_arrays = mask_targets(scored, np.concatenate([np.zeros(skip, dtype=bool), held]))
    n_blocks = dom.validation_days // dom.validation.block_days
    label = (
        f"held out {n_blocks} blocks ({dom.validation_days} days, {dom.validation.block_days}+ each) "
        f"spread over {train.start}..{train.end}"
    )
    return mask_targets(full, ~held), Validation(val_arrays, skip, norm), label


def training_data(layout: Layout, domain: str, usgs: UsgsSpec, train: Period) -> tuple[xr.Dataset, int]:
    """The domain's sites as its models train from them: the study's ``usgs.train`` rule applied
    (:func:`~synergy_dagster.sources.usgs_masks.training_view`), and how many target days it left out."""
    return training_view(xr.load_dataset(layout.sites_nc(domain)), usgs, train)


@dataclass(frozen=True)
class TrainingTensors:
    """What the models of one training set train on: the arrays (validation targets masked or
    carved off), the validation data, the validation period in words, and ``data_hash``, the hash
    of the arrays that each of its ``models`` rows records."""

    arrays: Arrays
    validation: Validation
    val_label: str
    data_hash: str


def training_tensors(training_set: TrainingSet, ds: xr.Dataset, dom: DomainTraining) -> TrainingTensors:
    """The exact training tensors of ``training_set`` (its sites, period and stored normaliser) from
    ``ds`` (:func:`training_data`) under the domain's training settings ``dom``. Training builds
    them with this call, so a stored training set rebuilt with it reproduces its models' recorded
    ``data_hash`` (the leakage audit of the spatial holdouts relies on that)."""
    arrays, validation, label = validation_split(
        ds, training_set.norm, training_set.train, list(training_set.site_ids), dom
    )
    return TrainingTensors(arrays, validation, label, arrays_hash(arrays))


@dataclass
class _Prepared:
    """One training set made ready: its arrays, validation, recorded config, and which seeds are
    reused from the store (with their rows) and which must train."""

    training_set: TrainingSet
    arrays: Arrays
    validation: Validation
    val_label: str
    n_in: int
    data_hash: str
    config_json: str
    outcome: FitOutcome
    reused_curves: dict[int, pd.DataFrame]
    to_train: list[int]


def _prepare(
    training_set: TrainingSet,
    profile: Profile,
    budget: Budget,
    store: MetadataStore,
    ds: xr.Dataset,
    log: Callable[[str], None],
) -> _Prepared:
    """Arrays, config and the reuse decision of every seed of one set (reads the store once)."""
    domain, key = training_set.domain, training_set.key
    dom = profile.for_domain(domain)
    recipe = dom.recipe
    if recipe.target_transform == "none" and target_transform_of(training_set.norm) != "none":
        # the statistics were fitted for another recipe (e.g. the plan of another profile)
        raise ConfigError(
            "recipe.target_transform",
            f"profile {profile.name!r} trains {domain} on the untransformed target, but training set "
            f"{key} was normalised with a log target: rematerialise {domain}_plan with this profile",
        )
    t = training_tensors(training_set, ds, dom)
    arrays, validation, val_label, data_hash = t.arrays, t.validation, t.val_label, t.data_hash
    n_in = arrays.x.shape[-1] + arrays.c.shape[-1]
    config_json = reuse_fingerprint(
        profile,
        domain,
        budget,
        n_in=n_in,
        inputs=list(arrays.dynamic_names) + list(arrays.static_names),
        normalizer=training_set.normalizer,
        train=training_set.train,
        validation=val_label,
    )
    where = "domain=? AND set_key=? AND budget=?"
    previous = store.query(f"SELECT * FROM models WHERE {where}", [domain, key, budget.mode])
    old_curves = store.query(f"SELECT * FROM learning_curves WHERE {where}", [domain, key, budget.mode])
    out = FitOutcome(domain, key, budget.mode, {}, [], pd.DataFrame(), {}, arrays, n_in, val_label)
    prep = _Prepared(training_set, arrays, validation, val_label, n_in, data_hash, config_json, out, {}, [])
    for seed in profile.seeds:
        stored = reusable_row(previous, seed, data_hash, config_json)
        if stored is not None:
            log(
                f"{key} seed {seed} [{budget.mode}]: reusing the intact model trained on the same data and config"
            )
            row = stored.to_dict()
            out.seeds[seed] = load_state(row["path"], row["file_sha256"])
            out.rows.append(row)
            out.losses[seed] = [float(row["first_loss"]), float(row["final_loss"])]
            prep.reused_curves[seed] = old_curves[old_curves["seed"] == seed]
        else:
            prep.to_train.append(seed)
    return prep


def reusable_row(previous: pd.DataFrame, seed: int, data_hash: str, config_json: str) -> pd.Series | None:
    """The stored ``models`` row that ``seed`` may reuse instead of training, or None: the reuse
    filter. A row qualifies only with the same seed, the same data hash (the training arrays) and
    the same reuse fingerprint (inputs and every setting that shapes the weights), and only while
    its model file is intact; kept apart from :func:`_prepare` so that a fast test guards it."""
    same = previous[
        (previous["seed"] == seed)
        & (previous["data_hash"] == data_hash)
        & (previous["config_json"] == config_json)
    ]
    if len(same) and _intact(same.iloc[0]):
        return same.iloc[0]
    return None


@dataclass(frozen=True)
class FitPlace:
    """Where and how models train: checkpoints under ``layout``, rows in ``store``, on ``device``
    with ``threads`` recorded per model and ``bank_threads`` CPU threads for the bank (None: torch's
    current count); ``log`` takes progress lines."""

    layout: Layout
    store: MetadataStore
    device: torch.device
    log: Callable[[str], None]
    threads: int
    bank_threads: int | None = None


def fit_sets(
    training_sets: Sequence[TrainingSet],
    profile: Profile,
    budget: Budget,
    ds: xr.Dataset,
    place: FitPlace,
) -> list[FitOutcome]:
    """Train (or reuse) every seed of every set under ``budget``: one :class:`FitOutcome` per set,
    in order.

    A seed is reused when an intact model of the same data hash and config (budget included) is in
    the store. The seeds that must train (of every set of one domain) train together as one bank
    (:func:`~synergy_dagster.models.bank.train_bank`: stacked weights, each model with its own data,
    sampling, optimiser, validation and stopping), each resuming its checkpoint if a run was killed.
    A bank of one trains exactly as :func:`train_model` would. No DuckDB connection is
    open while models train. ``ds`` is the domain's sites; ``place`` says where they train.
    """
    if not training_sets:
        return []
    domains = {ts.domain for ts in training_sets}
    if len(domains) != 1:
        raise ConfigError("training sets", f"one bank trains one domain's sets, got {sorted(domains)}")
    profile.check_budget(budget)
    budget = budget.for_domain(training_sets[0].domain)
    layout, store, device, log = place.layout, place.store, place.device, place.log
    threads, bank_threads = place.threads, place.bank_threads
    preps = [_prepare(ts, profile, budget, store, ds, log) for ts in training_sets]
    members: list[tuple[_Prepared, int]] = [(p, seed) for p in preps for seed in p.to_train]
    specs = [TrainSpec.from_profile(profile, p.training_set.domain, seed, budget) for p, seed in members]

    def log_for(key: str, seed: int) -> Callable[[int, float], None]:
        def log_block(block: int, loss: float) -> None:
            log(f"{key} seed {seed} [{budget.mode}] check {block}: loss {loss:.4f}")

        return log_block

    # One path for one model or many: a bank of one trains exactly as train_model (fused kernel).
    from synergy_dagster.models.bank import BankMember, train_bank

    if len(members) > 1:
        log(
            f"training {len(members)} models as one bank: "
            + ", ".join(f"{p.training_set.key}/{s}" for p, s in members)
        )
    bank = [
        BankMember(
            arrays=p.arrays,
            spec=spec,
            validation=p.validation,
            checkpoint_path=layout.checkpoint(p.training_set.domain, budget.mode, p.training_set.key, seed),
            log=log_for(p.training_set.key, seed),
            name=f"{p.training_set.key} seed {seed}",
        )
        for (p, seed), spec in zip(members, specs, strict=True)
    ]
    # results come in the order of `members`: preps in order, each set's seeds to train in order
    results = iter(train_bank(bank, device=device, progress=True, threads=bank_threads))
    outcomes = []
    for p in preps:
        ts, out = p.training_set, p.outcome
        curves = [p.reused_curves[s] for s in p.reused_curves]
        for seed in p.to_train:
            result = next(results)
            best = next((pt for pt in result.curve if pt.update == result.best_update), None)
            out.seeds[seed] = result.state_dict
            out.losses[seed] = list(result.losses)
            out.rows.append(
                {
                    "domain": ts.domain,
                    "scenario": ts.scenario,
                    "region": ts.region,
                    "set_key": ts.key,
                    "seed": seed,
                    "profile": profile.name,
                    "n_sites": len(p.arrays.site_ids),
                    "n_train_samples": int(result.n_train_samples),
                    "data_hash": p.data_hash,
                    "config_json": p.config_json,
                    # in a bank: the wall time from the bank's start until this model left it
                    "train_seconds": float(result.seconds),
                    "final_loss": float(result.losses[-1]),
                    "first_loss": float(result.losses[0]),
                    "n_iterations": int(result.n_iterations),
                    "resumed_from_block": int(result.resumed_from_block or 0),
                    "device": str(device),
                    "torch_threads": threads,
                    "code_version": code_version(),
                    "created_at": datetime.now(),
                    "budget": budget.mode,
                    "budget_json": json.dumps(budget.to_dict(), sort_keys=True),
                    "stop_reason": result.stop_reason,
                    "best_update": int(result.best_update),
                    "best_val_nse": None if best is None else best.val_nse,
                    "best_val_rmse": None if best is None else best.val_rmse,
                    "validation": p.val_label,
                    "bank_size": len(members),
                }
            )
            curve = pd.DataFrame([dataclasses.asdict(pt) for pt in result.curve])
            curves.append(
                curve.assign(
                    domain=ts.domain,
                    set_key=ts.key,
                    scenario=ts.scenario,
                    region=ts.region,
                    seed=seed,
                    budget=budget.mode,
                    validation=p.val_label,
                )
            )
        # rows and curves in seed order, reused or trained
        order = {seed: i for i, seed in enumerate(profile.seeds)}
        out.rows.sort(key=lambda r: order.get(int(r["seed"]), 0))
        out.seeds = dict(sorted(out.seeds.items(), key=lambda kv: order.get(kv[0], 0)))
        curves = [c for c in curves if len(c)]
        out.curves = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
        if len(out.curves):
            out.curves = out.curves.sort_values(["seed", "update"], kind="stable", ignore_index=True)
        outcomes.append(out)
    return outcomes


def fit_set(
    training_set: TrainingSet, profile: Profile, budget: Budget, ds: xr.Dataset, place: FitPlace
) -> FitOutcome:
    """Train (or reuse) every seed of one training set under ``budget`` (:func:`fit_sets` of one;
    its seeds train as one bank when more than one must train)."""
    return fit_sets([training_set], profile, budget, ds, place)[0]


@dataclass(frozen=True)
class ModelChecks:
    """What the model asset's blocking checks judge, per seed."""

    training_rmse: dict[str, dict[str, float]]  # seed -> {"initial", "trained"} full-sequence RMSE
    losses_finite: bool  # every block loss is finite
    nan_sites: int  # sites with a NaN anywhere in a full-sequence prediction (all seeds)

    @property
    def fell(self) -> bool:
        return all(r["trained"] < r["initial"] for r in self.training_rmse.values())

    @property
    def loss_ok(self) -> bool:
        return self.losses_finite and self.fell


def check_models(fit: FitOutcome, hidden: int, dropconnect: float, device: torch.device) -> ModelChecks:
    """Full-sequence training RMSE of each seed's trained weights against its initial weights, and
    NaN predictions. Block means of random windows are too noisy for short runs to say "fell"."""
    arrays, nan_sites, rmse = fit.arrays, 0, {}
    for seed, state in fit.seeds.items():
        pred = predict(state, arrays, hidden=hidden, device=device)
        nan_sites += int((~np.isfinite(pred)).any(axis=1).sum())
        start = predict(initial_state(fit.n_in, hidden, seed, dropconnect), arrays, device=device)
        rmse[str(seed)] = {"initial": training_rmse(start, arrays), "trained": training_rmse(pred, arrays)}
    finite = all(np.isfinite(v).all() for v in fit.losses.values())
    return ModelChecks(rmse, bool(finite), nan_sites)


def _intact(row: pd.Series) -> bool:
    """The model file of a ``models`` row exists and still has its recorded hash."""
    p = Path(row["path"])
    return p.exists() and file_sha256(p) == row["file_sha256"]
