"""Train the paper's LSTM on normalised :class:`Arrays`, with per-block checkpoints and exact resume.

What to train is a :class:`TrainSpec` (validated once); what a run carries between blocks, and
what a checkpoint holds, is a :class:`TrainState`.

Reproducibility: the initial weights come from ``torch.manual_seed(seed)`` (inside a forked RNG so
the caller's global state is untouched), minibatch indices from ``np.random.default_rng(seed)``,
DropConnect masks from a dedicated ``torch.Generator`` seeded with ``seed``. On CPU the same seed
gives bit-identical weights (deterministic algorithms are switched on for the duration of the call
and restored afterwards); a run resumed from a checkpoint ends with exactly the weights of an
uninterrupted run, because every piece of state (weights, optimiser accumulators, both generators)
is in the checkpoint; the learning rate of a schedule is a function of the update count, so it needs
no state of its own.

How a model is optimised (optimiser, schedule, loss, target transform) is its
:class:`~synergy_dagster.config.Recipe`; the default is the paper's (AdaDelta lr 1.0, RMSE).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from synergy_dagster.config import PAPER_RECIPE, Budget, DomainWindow, Profile, Recipe, Training
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.evaluation.metrics import nse, rmse
from synergy_dagster.models.checkpoint import load_checkpoint, save_checkpoint
from synergy_dagster.models.device import as_device, bf16_native, deterministic_algorithms
from synergy_dagster.models.lstm import SynergyLSTM, training_loss
from synergy_dagster.models.normalization import Arrays, Normalizer
from synergy_dagster.models.predict import predict
from synergy_dagster.models.sampling import (
    check_window,
    effective_batch,
    gather_windows,
    iterations_per_epoch,
    sample_indices,
)

LogFn = Callable[[int, float], Any]
STOP_REASONS = ("budget", "converged", "wall_clock", "callback")


@dataclass(frozen=True)
class Validation:
    """Data a model is checked on while it trains (the learning curve, early stopping).

    ``arrays`` start ``skip`` warm-up days before the first scored day (the warm-up feeds the LSTM's
    state, it is not scored). With ``normalizer`` the scores are in physical units.
    """

    arrays: Arrays
    skip: int = 0
    normalizer: Normalizer | None = None
    held_out: bool = True  # False: the curve is scored on the training period itself

    def __post_init__(self) -> None:
        if not 0 <= self.skip < self.arrays.n_days:
            raise ConfigError(
                "validation", f"warm-up of {self.skip} days leaves no day of {self.arrays.n_days} to score"
            )


@dataclass(frozen=True)
class CurvePoint:
    """One validation check: after ``update`` weight updates."""

    update: int
    seconds: float  # cumulative training wall time, validation checks excluded
    val_seconds: float  # cumulative wall time spent in validation checks
    train_loss: float  # mean minibatch loss of the updates since the previous check
    val_nse: float  # median over the validation sites (NaN without validation data)
    val_rmse: float  # median over the validation sites


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`. ``state_dict`` tensors are on CPU."""

    state_dict: dict[str, torch.Tensor]
    losses: list[float]  # mean minibatch loss of each block (all blocks, resumed ones included)
    n_iterations: int  # weight updates over all blocks
    iters_per_epoch: int  # the paper rule's epoch length (scaled, clipped) for these data
    seconds: float  # wall time of this call
    resumed_from_block: int  # blocks already done when this call started (0 = fresh)
    n_train_samples: int  # valid target cells in the training arrays
    n_in: int
    hidden: int
    batch: int  # effective batch (capped at n_sites)
    device: str
    budget: Budget = dataclasses.field(default_factory=Budget)
    curve: list[CurvePoint] = dataclasses.field(default_factory=list)
    stop_reason: str = "budget"  # one of STOP_REASONS
    best_update: int = 0  # update of the best validation check (the returned weights in converge)
    block: int = 0  # updates between checks
    resumed_from_update: int = 0
    recipe: Recipe = dataclasses.field(default_factory=Recipe)


def _data_digest(arrays: Arrays) -> str:
    """Cheap identity of the training data, so a checkpoint of other data is not resumed."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(arrays.y).tobytes())
    h.update(np.ascontiguousarray(arrays.c).tobytes())
    h.update(repr((arrays.x.shape, float(arrays.x.sum(dtype=np.float64)))).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class TrainSpec:
    """What one model is trained with: its hyper-parameters, seed and training budget.

    Validated once, here; :func:`train_model` takes the data and the runtime hooks (checkpoint file,
    device, logging) separately. A paper epoch is :func:`iterations_per_epoch` updates, times
    ``epoch_scale`` (a budget knob that keeps the paper's "more data, more updates" proportion),
    clipped to [``min_iters_per_epoch``, ``max_iters_per_epoch``]. ``checkpoint_every`` counts
    blocks (the updates between two validation checks). ``loss_last_n`` scores only the last n days
    of each window (1 = the last-day loss of many-to-one setups); default every day, as the paper.
    ``deterministic`` defaults to True on CPU. ``recipe``: optimiser, schedule and loss (the target
    transform is the normaliser's, applied before the arrays get here).
    """

    hidden: int
    epochs: int
    rho: int
    batch: int
    dropconnect: float
    seed: int
    max_iters_per_epoch: int | None = None
    epoch_scale: float = 1.0
    min_iters_per_epoch: int = 1
    checkpoint_every: int = 1
    budget: Budget = dataclasses.field(default_factory=Budget)
    loss_last_n: int | None = None
    deterministic: bool | None = None
    recipe: Recipe = dataclasses.field(default_factory=Recipe)

    def __post_init__(self) -> None:
        # The study's settings classes hold each rule once: a spec is checked by building them.
        try:
            Training(**{k: getattr(self, k) for k in Training.model_fields})
            DomainWindow(rho=self.rho, batch=self.batch, warmup=0)
        except ConfigError as exc:  # named as the spec's own field
            raise ConfigError(exc.source.partition(".")[2] or exc.source, exc.problem) from None
        # numpy's generators reject negative seeds deep inside training; say so here
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise ConfigError("seed", f"must be an integer >= 0, got {self.seed!r}")
        if self.loss_last_n is not None and not 1 <= self.loss_last_n <= self.rho:
            raise ConfigError("loss_last_n", f"must be in [1, rho={self.rho}], got {self.loss_last_n}")
        if not isinstance(self.recipe, Recipe):
            raise ConfigError("recipe", f"expected a Recipe, got {type(self.recipe).__name__}")

    @classmethod
    def from_profile(
        cls, profile: Profile, domain: str, seed: int, budget: Budget | None = None
    ) -> TrainSpec:
        """The spec of one seed of a ``domain`` model under ``profile`` (default: its own budget)."""
        dom = profile.for_domain(domain)
        return cls(
            hidden=profile.hidden,
            epochs=profile.epochs,
            rho=dom.rho,
            batch=dom.batch,
            dropconnect=profile.dropconnect,
            seed=seed,
            max_iters_per_epoch=profile.max_iters_per_epoch,
            epoch_scale=profile.epoch_scale,
            min_iters_per_epoch=profile.min_iters_per_epoch,
            checkpoint_every=profile.checkpoint_every,
            budget=(budget or profile.budget).for_domain(domain),
            recipe=dom.recipe,
            loss_last_n=dom.recipe.loss_days or None,
        )

    def replace(self, **changes: Any) -> TrainSpec:
        return dataclasses.replace(self, **changes)

    def schedule(self, n_sites: int, n_days: int) -> Schedule:
        """How many updates of which batch this spec gives data of ``n_sites`` x ``n_days``."""
        iters = max(
            int(self.min_iters_per_epoch),
            math.ceil(self.epoch_scale * iterations_per_epoch(self.batch, self.rho, n_sites, n_days)),
        )
        if self.max_iters_per_epoch is not None:
            iters = min(iters, int(self.max_iters_per_epoch))
        total, block = budget_updates(
            self.budget,
            epochs=self.epochs,
            iters_per_epoch=iters,
            batch=self.batch,
            rho=self.rho,
            n_sites=n_sites,
            n_days=n_days,
        )
        return Schedule(iters, effective_batch(self.batch, n_sites), total, block)


@dataclass(frozen=True)
class Schedule:
    """A spec applied to a data size."""

    iters_per_epoch: int  # the paper rule's epoch length (scaled, clipped)
    batch: int  # effective batch (capped at n_sites)
    total: int | None  # updates in all; None: open-ended (wall clock without a cap)
    block: int  # updates between validation checks


@dataclass
class TrainState:
    """Everything a run carries from one block to the next, i.e. everything a checkpoint holds, so
    that a resumed run ends with exactly the weights of an uninterrupted one."""

    model: SynergyLSTM
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator  # minibatch indices
    mask_rng: torch.Generator  # DropConnect masks
    losses: list[float] = dataclasses.field(default_factory=list)  # mean minibatch loss per block
    curve: list[CurvePoint] = dataclasses.field(default_factory=list)
    blocks: int = 0  # blocks done
    updates: int = 0  # weight updates done
    bad: int = 0  # checks since the last improvement (of the smoothed metric, see Budget.smooth)
    best: float | None = None  # best validation metric so far (a single check: its weights are kept)
    stop_best: float | None = None  # best smoothed validation metric so far (the stopping rule's)
    best_update: int = 0
    best_state: dict[str, torch.Tensor] | None = None  # weights of the best check (converge only)
    train_s: float = 0.0  # training wall time, checks excluded
    val_s: float = 0.0  # wall time of the validation checks

    @classmethod
    def fresh(
        cls,
        n_in: int,
        hidden: int,
        dropconnect: float,
        seed: int,
        device: torch.device,
        recipe: Recipe = PAPER_RECIPE,
    ) -> TrainState:
        """Seeded model, the recipe's optimiser (the paper's: AdaDelta lr 1.0, rho 0.9, eps 1e-6)
        and both generators."""
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            torch.manual_seed(seed)
            model = SynergyLSTM(n_in, hidden, dropconnect=dropconnect)
        model.to(device)
        gen = torch.Generator(device=device)
        gen.manual_seed(int(seed))
        model.mask_generator = gen
        return cls(model, make_optimizer(model, recipe), np.random.default_rng(seed), gen)

    @classmethod
    def from_checkpoint(
        cls,
        ckpt: dict[str, Any],
        n_in: int,
        hidden: int,
        dropconnect: float,
        seed: int,
        device: torch.device,
        recipe: Recipe = PAPER_RECIPE,
    ) -> TrainState:
        """A fresh state with the checkpoint loaded into it; raises (RuntimeError, KeyError,
        ValueError, TypeError) when the checkpoint does not fit the model."""
        state = cls.fresh(n_in, hidden, dropconnect, seed, device, recipe)
        state.model.load_state_dict(ckpt["model_state"])
        state.optimizer.load_state_dict(ckpt["optimizer_state"])
        state.rng.bit_generator.state = ckpt["numpy_rng"]
        state.mask_rng.set_state(ckpt["mask_rng"])
        state.losses = [float(v) for v in ckpt["losses"]]
        state.curve = [CurvePoint(**p) for p in ckpt["curve"]]
        state.blocks, state.updates, state.bad = int(ckpt["blocks"]), int(ckpt["updates"]), int(ckpt["bad"])
        state.best = None if ckpt["best"] is None else float(ckpt["best"])
        stop_best = ckpt.get("stop_best", ckpt["best"])  # checkpoints from before smoothing: the same
        state.stop_best = None if stop_best is None else float(stop_best)
        state.best_update = int(ckpt["best_update"])
        state.best_state = ckpt["best_state"]
        state.train_s, state.val_s = float(ckpt["train_s"]), float(ckpt["val_s"])
        return state

    def to_checkpoint(self, fingerprint: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint payload (tensors and plain containers: loadable with weights_only=True)."""
        return {
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "blocks": self.blocks,
            "updates": self.updates,
            "losses": list(self.losses),
            "curve": [dataclasses.asdict(p) for p in self.curve],
            "bad": self.bad,
            "best": self.best,
            "stop_best": self.stop_best,
            "best_update": self.best_update,
            "best_state": self.best_state,
            "train_s": self.train_s,
            "val_s": self.val_s,
            "numpy_rng": self.rng.bit_generator.state,
            "mask_rng": self.mask_rng.get_state(),
            "fingerprint": fingerprint,
        }

    def weights(self) -> dict[str, torch.Tensor]:
        """CPU copies of the current weights."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}


def _fingerprint(
    spec: TrainSpec, sched: Schedule, arrays: Arrays, validation: Validation | None
) -> dict[str, Any]:
    """What a checkpoint must have been written for to be resumed."""
    return {
        "hidden": int(spec.hidden),
        "rho": int(spec.rho),
        "batch": int(sched.batch),
        "dropconnect": float(spec.dropconnect),
        "seed": int(spec.seed),
        "n_in": int(arrays.n_in),
        "n_sites": arrays.n_sites,
        "n_days": arrays.n_days,
        "iters_per_epoch": int(sched.iters_per_epoch),
        "data": _data_digest(arrays),
        "budget": spec.budget.to_dict(),
        "block": int(sched.block),
        "loss_last_n": spec.loss_last_n,
        "validation": None if validation is None else _data_digest(validation.arrays),
        # only when not the paper's, so checkpoints written before recipes existed still resume
        **({} if spec.recipe.is_paper else {"recipe": spec.recipe.to_dict()}),
    }


def _resume(
    path: str | Path | None,
    fingerprint: dict[str, Any],
    spec: TrainSpec,
    sched: Schedule,
    arrays: Arrays,
    dev: torch.device,
) -> TrainState:
    """The state of a checkpoint of this configuration, else a fresh one (with a warning when a
    checkpoint was there but could not be used)."""
    args = (arrays.n_in, spec.hidden, spec.dropconnect, spec.seed, dev, spec.recipe)
    ckpt = load_checkpoint(path, fingerprint) if path is not None else None
    if ckpt is not None and sched.total is not None and int(ckpt.get("updates", 0)) > sched.total:
        warnings.warn(
            f"checkpoint {path} is at update {ckpt.get('updates')}, beyond the {sched.total} requested; "
            "starting over",
            stacklevel=3,
        )
        ckpt = None
    if ckpt is None:
        return TrainState.fresh(*args)
    try:
        return TrainState.from_checkpoint(ckpt, *args)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        warnings.warn(f"checkpoint {path} does not fit this model ({exc}); starting over", stacklevel=3)
        return TrainState.fresh(*args)


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``model``'s parameters, at the recipe's base learning rate."""
    params = model.parameters()
    if recipe.optimizer == "adadelta":  # the paper's (rho 0.9, eps 1e-6 as in its code)
        return torch.optim.Adadelta(params, lr=recipe.lr, rho=0.9, eps=1e-6, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ConfigError("recipe.optimizer", f"unknown optimizer {recipe.optimizer!r}")


def learning_rate(recipe: Recipe, update: int, total: int | None) -> float:
    """The rate of weight update number ``update`` (0-based) of ``total``: linear warm-up over
    ``warmup_updates``, then ``constant``; ``cosine``: ``lr * (f + (1 - f) * (1 + cos(pi * p)) / 2)``
    with ``f = lr_min_frac`` and ``p`` the share of the post-warm-up updates done; ``step``:
    ``lr * step_gamma ** (update // step_every)``. A pure function of the update count, so a resumed
    run follows exactly the schedule of an uninterrupted one."""
    lr, warm = recipe.lr, recipe.warmup_updates
    if update < warm:
        return lr * (update + 1) / warm
    if recipe.schedule == "cosine":
        if total is None:
            raise ConfigError("recipe.schedule", "'cosine' needs a known number of updates (set max_updates)")
        share = min(1.0, (update - warm) / max(1, total - warm))
        f = recipe.lr_min_frac
        return lr * (f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * share)))
    if recipe.schedule == "step":
        return lr * recipe.step_gamma ** (update // recipe.step_every)
    return lr


def site_stds(arrays: Arrays) -> np.ndarray:
    """Standard deviation of each site's training target (0 where it has fewer than two valid
    days): the ``s_b`` of the ``nse`` loss."""
    y = arrays.y[..., 0].astype(np.float64)
    n = np.isfinite(y).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(y, axis=1)
    return np.where(n >= 2, sd, 0.0).astype(np.float32)


def judge_check(
    values: Sequence[float], budget: Budget, metric: str, stop_best: float | None, bad: int
) -> tuple[float | None, int]:
    """The stopping rule's counters after a check; ``values``: the metric of every check so far,
    this one last. Returns the new (best trend, checks without a gain).

    The trend is the check's value (``budget.smooth`` 1) or the mean of the last ``smooth`` finite
    values; a check counts as a gain when the trend beats the best trend so far by more than
    ``min_delta``. Checks before the window is full are not judged (a mean of fewer is noisier).
    """
    smooth = budget.smooth
    if len(values) < smooth:
        return stop_best, bad
    if smooth == 1:
        trend = values[-1]
    else:
        window = [v for v in values[-smooth:] if math.isfinite(v)]
        trend = float(np.mean(window)) if window else math.nan
    if improved(metric, trend, stop_best, budget.min_delta):
        return trend, 0
    return stop_best, bad + 1


def stops(budget: Budget, bad: int, updates: int) -> bool:
    """Whether ``converge`` ends the run: ``patience`` checks without a gain, ``min_updates`` done."""
    return bad >= budget.patience and updates >= budget.min_updates


def replay_converge(values: list[float], updates: list[int], budget: Budget, metric: str) -> int | None:
    """The index of the check at which ``converge`` would stop a run whose checks (after
    ``updates`` updates) scored ``values``, or None if it would not have stopped by the last one:
    the trainer's own rule (:func:`judge_check`, :func:`stops`) replayed, to compare stopping rules
    on a recorded curve (``bench/bench_recipes.py``)."""
    if len(values) != len(updates):
        raise ValueError(f"{len(values)} values for {len(updates)} checks")
    best: float | None = None
    bad = 0
    for i, update in enumerate(updates):
        best, bad = judge_check(values[: i + 1], budget, metric, best, bad)
        if stops(budget, bad, update):
            return i
    return None


def passes_to_updates(passes: float, batch: int, rho: int, n_sites: int, n_days: int) -> int:
    """Updates for ``passes`` passes over the data: one pass = n_sites * n_days cells, one update
    covers ``batch * rho`` cells (batch capped at n_sites)."""
    b = effective_batch(batch, n_sites)
    return max(1, math.ceil(passes * n_sites * n_days / (b * rho)))


def budget_updates(
    budget: Budget, *, epochs: int, iters_per_epoch: int, batch: int, rho: int, n_sites: int, n_days: int
) -> tuple[int | None, int]:
    """(total updates, or None for open-ended wall-clock training; updates between checks)."""
    total: int | None
    if budget.mode == "paper":
        total = epochs * iters_per_epoch
    elif budget.mode == "equal_updates":
        total = budget.updates
    elif budget.mode == "equal_passes":
        total = passes_to_updates(budget.passes, batch, rho, n_sites, n_days)
    elif budget.mode == "converge":
        total = budget.max_updates
    else:  # wall_clock
        total = budget.max_updates or None
    block = budget.eval_every or iters_per_epoch
    if total is not None:
        block = min(block, total)
    return total, max(1, block)


def validation_series(
    model: SynergyLSTM | dict[str, torch.Tensor],
    validation: Validation,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Observed and simulated series [site, day] of the scored validation days (warm-up cut), in
    physical units when the validation has a normalizer."""
    pred = predict(model, validation.arrays, device=device)
    obs = validation.arrays.y[..., 0]
    if validation.normalizer is not None:
        pred = validation.normalizer.inverse_target(pred)
        obs = validation.normalizer.inverse_target(obs)
    return obs[:, validation.skip :], pred[:, validation.skip :]


def validation_scores(
    model: SynergyLSTM, validation: Validation, device: torch.device
) -> tuple[float, float]:
    """Median NSE and median RMSE over the validation sites (one full-sequence pass, no dropout)."""
    obs, pred = validation_series(model, validation, device)
    with warnings.catch_warnings():  # a site with no valid day is NaN: nanmedian skips it
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmedian(nse(obs, pred))), float(np.nanmedian(rmse(obs, pred)))


def improved(metric: str, value: float, best: float | None, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (NSE points; for RMSE a
    fraction of ``best``)."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    if metric == "nse":
        return value > best + min_delta
    return value < best * (1.0 - min_delta)


class ModelRun:
    """One model's training run, update by update and block by block: what :func:`train_model`
    drives for one model and :func:`~synergy_dagster.models.bank.train_bank` for many at once.

    The steps of one update are separate methods (:meth:`draw`, :meth:`loss_of`, :meth:`step`) so
    that a bank can run the forward and backward passes of all its members as one stacked
    computation in between; :meth:`update` is the single-model update. After a block of updates,
    :meth:`close_block` scores the validation data and applies the stopping rule,
    :meth:`decide` (after the caller's ``log``) says whether to stop, :meth:`save_if_due`
    writes the checkpoint. Construction validates the inputs; :meth:`start` resumes (or seeds)
    the state and moves the data to the device.
    """

    def __init__(
        self,
        arrays: Arrays,
        spec: TrainSpec,
        validation: Validation | None,
        checkpoint_path: str | Path | None,
        device: torch.device | str | None,
    ) -> None:
        budget, recipe = spec.budget, spec.recipe
        if budget.mode == "converge" and validation is None:
            raise ConfigError("budget.mode", "'converge' needs validation data to stop on")
        check_window(spec.rho, arrays.n_days)
        self.n_valid = arrays.n_valid_targets
        if self.n_valid == 0:
            raise InputError(
                "training data", "no valid target value in the training period", arrays.target_name
            )
        self.arrays, self.spec, self.validation = arrays, spec, validation
        self.checkpoint_path = checkpoint_path
        self.dev = dev = as_device(device)
        self.deterministic = dev.type == "cpu" if spec.deterministic is None else spec.deterministic
        self.sched = spec.schedule(arrays.n_sites, arrays.n_days)
        if recipe.precision == "bf16" and not bf16_native(dev):
            warnings.warn(
                f"recipe precision 'bf16' on {dev}, which has no native bfloat16 (no AVX512-BF16/AMX): "
                "emulated, slower than 'fp32' here",
                stacklevel=2,
            )
        if recipe.schedule == "cosine" and self.sched.total is None:
            raise ConfigError("recipe.schedule", "'cosine' needs a known number of updates (set max_updates)")
        self.scheduled = recipe.schedule != "constant" or recipe.warmup_updates > 0
        self.keep_best = budget.mode == "converge"
        self.metric = "nse" if budget.metric == "auto" else budget.metric  # callers resolve auto per domain
        self.stop_reason = ""
        self.block_n = 0  # updates of the current block
        self.ran = 0  # updates done in the current block
        self.acc: torch.Tensor | None = None  # summed minibatch loss of the current block

    @property
    def total(self) -> int | None:
        return self.sched.total

    def start(self) -> None:
        """Resume this configuration's checkpoint (else a seeded fresh state); data to the device."""
        spec, arrays, dev, budget = self.spec, self.arrays, self.dev, self.spec.budget
        self.fingerprint = _fingerprint(spec, self.sched, arrays, self.validation)
        self.st = st = _resume(self.checkpoint_path, self.fingerprint, spec, self.sched, arrays, dev)
        self.start_blocks, self.start_update = st.blocks, st.updates
        if self.keep_best and stops(budget, st.bad, st.updates):
            self.stop_reason = "converged"
        self.x_t = torch.from_numpy(np.ascontiguousarray(arrays.x, dtype=np.float32)).to(dev)
        self.c_t = torch.from_numpy(np.ascontiguousarray(arrays.c, dtype=np.float32)).to(dev)
        self.y_t = torch.from_numpy(np.ascontiguousarray(arrays.y, dtype=np.float32)).to(dev)
        self.std_t = torch.from_numpy(site_stds(arrays)).to(dev) if spec.recipe.loss == "nse" else None
        st.model.train()

    def next_block(self) -> int:
        """Updates of the next block (0 when the run ends here, with its ``stop_reason`` set)."""
        st, budget, total = self.st, self.spec.budget, self.sched.total
        if self.stop_reason:
            return 0
        if total is not None and st.updates >= total:
            self.stop_reason = "budget"
            return 0
        if budget.mode == "wall_clock" and st.train_s + st.val_s >= budget.seconds:
            self.stop_reason = "wall_clock"
            return 0
        block = self.sched.block
        self.block_n = block if total is None else min(block, total - st.updates)
        self.ran = 0
        self.acc = torch.zeros((), device=self.dev)
        return self.block_n

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """The next minibatch from this run's generator: windows, targets, site indices."""
        s_idx, t_idx = sample_indices(
            self.st.rng, self.arrays.n_sites, self.arrays.n_days, self.sched.batch, self.spec.rho
        )
        xb, yb = gather_windows(self.x_t, self.c_t, self.y_t, s_idx, t_idx, self.spec.rho)
        return xb, yb, s_idx  # type: ignore[return-value]

    def loss_of(self, out: torch.Tensor, yb: torch.Tensor, s_idx: np.ndarray) -> torch.Tensor:
        """The recipe's loss of predictions ``out`` for the minibatch ``(yb, s_idx)``."""
        recipe, n = self.spec.recipe, self.spec.loss_last_n
        if n is not None:
            out, yb = out[:, -n:], yb[:, -n:]
        s_std = None if self.std_t is None else self.std_t[torch.as_tensor(s_idx, device=self.dev)]
        return training_loss(recipe.loss, out, yb, s_std, recipe.nse_eps)

    def step(self, loss: torch.Tensor) -> None:
        """The optimiser step after ``loss.backward()``: clipping, scheduled rate, update."""
        st, recipe = self.st, self.spec.recipe
        if recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(st.model.parameters(), recipe.grad_clip)
        if self.scheduled:
            rate = learning_rate(recipe, st.updates + self.ran, self.sched.total)
            for group in st.optimizer.param_groups:
                group["lr"] = rate
        st.optimizer.step()
        assert self.acc is not None
        self.acc += loss.detach()
        self.ran += 1

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        """The model's training forward pass in the recipe's ``precision``; float32 out, so the
        loss and its reduction are float32 either way."""
        if self.spec.recipe.precision == "bf16":
            with torch.autocast(self.dev.type, dtype=torch.bfloat16):
                out = self.st.model(xb)
            return out.float()
        return self.st.model(xb)

    def update(self) -> None:
        """One weight update of this model alone (the library's fused LSTM kernel)."""
        xb, yb, s_idx = self.draw()
        self.st.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_of(self.forward(xb), yb, s_idx)
        loss.backward()
        self.step(loss)

    def block_done(self, seconds: float) -> bool:
        """Whether the current block is complete after ``seconds`` of it (a wall-clock budget may
        end inside a block)."""
        st, budget = self.st, self.spec.budget
        if self.ran >= self.block_n:
            return True
        return budget.mode == "wall_clock" and st.train_s + st.val_s + seconds >= budget.seconds

    def close_block(self, seconds: float) -> CurvePoint:
        """Book the block that took ``seconds`` of training; score the validation data and update
        the best check and the stopping rule's counters."""
        st, budget = self.st, self.spec.budget
        assert self.acc is not None
        block_loss = float(self.acc) / self.ran  # one device sync per block
        st.train_s += seconds
        st.updates += self.ran
        st.blocks += 1
        st.losses.append(block_loss)
        t1 = time.perf_counter()
        v_nse, v_rmse = (math.nan, math.nan)
        if self.validation is not None:
            v_nse, v_rmse = validation_scores(st.model, self.validation, self.dev)
            st.model.train()
        st.val_s += time.perf_counter() - t1
        point = CurvePoint(st.updates, st.train_s, st.val_s, block_loss, v_nse, v_rmse)
        st.curve.append(point)
        value = v_nse if self.metric == "nse" else v_rmse
        # Kept weights: the best single check. Stopping: the best (smoothed) value; with
        # smooth == 1 both are the one rule of before (a gain of more than min_delta).
        smooth = budget.smooth
        if improved(self.metric, value, st.best, budget.min_delta if smooth == 1 else 0.0):
            st.best, st.best_update = value, st.updates
            if self.keep_best:
                st.best_state = st.weights()
        values = [p.val_nse if self.metric == "nse" else p.val_rmse for p in st.curve[-smooth:]]
        st.stop_best, st.bad = judge_check(values, budget, self.metric, st.stop_best, st.bad)
        return point

    def decide(self, point: CurvePoint, on_check: Callable[[CurvePoint], bool | None] | None = None) -> None:
        """The stopping decision after a check (``on_check`` returning True stops the run)."""
        st, budget = self.st, self.spec.budget
        if on_check is not None and on_check(point):
            self.stop_reason = "callback"
        elif self.keep_best and stops(budget, st.bad, st.updates):
            self.stop_reason = "converged"

    @property
    def finished(self) -> bool:
        total = self.sched.total
        return bool(self.stop_reason) or (total is not None and self.st.updates >= total)

    def save_if_due(self) -> None:
        """Checkpoint every ``checkpoint_every`` blocks and when the run is finished."""
        if self.checkpoint_path is not None and (
            self.st.blocks % self.spec.checkpoint_every == 0 or self.finished
        ):
            save_checkpoint(self.checkpoint_path, self.st.to_checkpoint(self.fingerprint))

    def result(self, seconds: float) -> TrainResult:
        """The outcome; ``seconds``: wall time of the call that trained it."""
        st, spec, sched = self.st, self.spec, self.sched
        if self.keep_best and st.best_state is not None:
            state = {k: v.clone() for k, v in st.best_state.items()}
        else:
            state = st.weights()
        return TrainResult(
            state_dict=state,
            losses=st.losses,
            n_iterations=st.updates,
            iters_per_epoch=sched.iters_per_epoch,
            seconds=seconds,
            resumed_from_block=self.start_blocks,
            n_train_samples=self.n_valid,
            n_in=self.arrays.n_in,
            hidden=spec.hidden,
            batch=sched.batch,
            device=str(self.dev),
            budget=spec.budget,
            curve=st.curve,
            stop_reason=self.stop_reason,
            best_update=st.best_update,
            block=sched.block,
            resumed_from_update=self.start_update,
            recipe=spec.recipe,
        )


def train_model(
    arrays: Arrays,
    spec: TrainSpec,
    *,
    validation: Validation | None = None,
    checkpoint_path: str | Path | None = None,
    device: torch.device | str | None = None,
    log: LogFn | None = None,
    progress: bool = True,
    on_check: Callable[[CurvePoint], bool | None] | None = None,
) -> TrainResult:
    """Train under ``spec``'s recipe (default: the paper's AdaDelta and RMSE) and training budget
    (default: the paper's epoch rule).

    Budget modes are described in :class:`~synergy_dagster.config.Budget`. Updates run in blocks of
    ``budget.eval_every`` (default one paper epoch); after each block the validation metrics are
    computed on ``validation`` (a :class:`CurvePoint` of the learning curve) and ``log(block, loss)``
    and ``on_check(point)`` are called (``on_check`` returning True stops). ``converge`` returns the
    weights of the best check; every other mode the last weights.

    With ``checkpoint_path`` the state is saved atomically every ``spec.checkpoint_every`` blocks
    and at the end; an existing checkpoint of the same configuration is resumed exactly (a corrupt
    or foreign one is ignored with a warning).
    """
    run = ModelRun(arrays, spec, validation, checkpoint_path, device)
    t_start = time.perf_counter()
    with deterministic_algorithms(run.deterministic):
        run.start()
        show = progress and sys.stderr.isatty()
        bar = tqdm(
            total=run.total,
            initial=run.st.updates,
            disable=not show,
            desc=f"train ({spec.budget.mode})",
            unit="upd",
            leave=False,
        )
        while run.next_block():
            t0 = time.perf_counter()
            while True:
                run.update()
                if run.block_done(time.perf_counter() - t0):
                    break
            point = run.close_block(time.perf_counter() - t0)
            bar.update(run.ran)
            bar.set_postfix(loss=f"{point.train_loss:.4f}")
            if log is not None:
                log(run.st.blocks, point.train_loss)
            run.decide(point, on_check)
            run.save_if_due()
        bar.close()
    return run.result(time.perf_counter() - t_start)


def initial_state(n_in: int, hidden: int, seed: int, dropconnect: float = 0.0) -> dict[str, torch.Tensor]:
    """The weights :func:`train_model` starts from for ``seed`` (to measure what training gained)."""
    model = TrainState.fresh(n_in, hidden, dropconnect, seed, torch.device("cpu")).model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def training_rmse(pred: np.ndarray, arrays: Arrays) -> float:
    """RMSE of normalised predictions [site, time] against the training targets, valid cells only."""
    y = arrays.y[..., 0]
    ok = np.isfinite(y) & np.isfinite(pred)
    return float(np.sqrt(np.mean((pred[ok] - y[ok]) ** 2))) if ok.any() else float("nan")
