"""Train the paper's LSTM on normalised :class:`Arrays`, with per-epoch checkpoints and exact resume.

Reproducibility: the initial weights come from ``torch.manual_seed(seed)`` (inside a forked RNG so
the caller's global state is untouched), minibatch indices from ``np.random.default_rng(seed)``,
DropConnect masks from a dedicated ``torch.Generator`` seeded with ``seed``. On CPU the same seed
gives bit-identical weights (deterministic algorithms are switched on for the duration of the call
and restored afterwards); a run resumed from a checkpoint ends with exactly the weights of an
uninterrupted run, because every piece of state (weights, AdaDelta accumulators, both generators)
is in the checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from synergy_dagster.config import Budget
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.evaluation.metrics import nse, rmse
from synergy_dagster.models.checkpoint import load_checkpoint, save_checkpoint
from synergy_dagster.models.device import as_device
from synergy_dagster.models.lstm import SynergyLSTM, build_model, masked_rmse
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
    resumed_from_epoch: int  # blocks already done when this call started (0 = fresh)
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


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Switch on torch's deterministic algorithms for the block, restoring the caller's setting."""
    if not enabled:
        yield
        return
    was, was_warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=was_warn)


def _data_digest(arrays: Arrays) -> str:
    """Cheap identity of the training data, so a checkpoint of other data is not resumed."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(arrays.y).tobytes())
    h.update(np.ascontiguousarray(arrays.c).tobytes())
    h.update(repr((arrays.x.shape, float(arrays.x.sum(dtype=np.float64)))).encode())
    return h.hexdigest()


def _fresh_state(
    n_in: int, hidden: int, dropconnect: float, seed: int, dev: torch.device
) -> tuple[SynergyLSTM, torch.Generator, torch.optim.Optimizer, np.random.Generator]:
    """Seeded model, DropConnect generator, AdaDelta optimiser and minibatch generator."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(seed)
        model = build_model(n_in, hidden, dropconnect)
    model.to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    model.mask_generator = gen
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.9, eps=1e-6)
    return model, gen, opt, np.random.default_rng(seed)


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


def validation_scores(
    model: SynergyLSTM, validation: Validation, device: torch.device
) -> tuple[float, float]:
    """Median NSE and median RMSE over the validation sites (one full-sequence pass, no dropout)."""
    pred = predict(model, validation.arrays, device=device)
    obs = validation.arrays.y[..., 0]
    if validation.normalizer is not None:
        pred = validation.normalizer.inverse_target(pred)
        obs = validation.normalizer.inverse_target(obs)
    obs, pred = obs[:, validation.skip :], pred[:, validation.skip :]
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


def train_model(
    arrays: Arrays,
    *,
    hidden: int,
    epochs: int,
    rho: int,
    batch: int,
    dropconnect: float,
    seed: int,
    max_iters_per_epoch: int | None = None,
    epoch_scale: float = 1.0,
    min_iters_per_epoch: int = 1,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 1,
    device: torch.device | str | None = None,
    log: LogFn | None = None,
    progress: bool = True,
    deterministic: bool | None = None,
    budget: Budget | None = None,
    validation: Validation | None = None,
    loss_last_n: int | None = None,
    on_check: Callable[[CurvePoint], bool | None] | None = None,
) -> TrainResult:
    """Train with AdaDelta (lr 1.0, rho 0.9, eps 1e-6) under a training ``budget`` (default: the
    paper's epoch rule for ``epochs`` epochs).

    A paper epoch is :func:`iterations_per_epoch` updates, times ``epoch_scale`` (a budget knob that
    keeps the paper's "more data, more updates" proportion), clipped to
    [``min_iters_per_epoch``, ``max_iters_per_epoch``], of ``batch`` random windows of ``rho`` days.
    Other budget modes are described in :class:`~synergy_dagster.config.Budget`. Updates run in
    blocks of ``budget.eval_every`` (default one paper epoch); after each block the validation
    metrics are computed on ``validation`` (a :class:`CurvePoint` of the learning curve) and
    ``log(block, loss)`` and ``on_check(point)`` are called (``on_check`` returning True stops).
    ``converge`` returns the weights of the best check; every other mode the last weights.

    ``loss_last_n`` scores only the last n days of each window (1 = the last-day loss of
    many-to-one setups); default: every day of the window, as the paper.

    With ``checkpoint_path`` the state is saved atomically every ``checkpoint_every`` blocks and at
    the end; an existing checkpoint of the same configuration is resumed exactly (a corrupt or
    foreign one is ignored with a warning). ``deterministic`` defaults to True on CPU.
    """
    budget = budget or Budget()
    if epochs <= 0:
        raise ConfigError("epochs", f"must be positive, got {epochs}")
    if hidden <= 0:
        raise ConfigError("hidden", f"must be positive, got {hidden}")
    if batch <= 0:
        raise ConfigError("batch", f"must be positive, got {batch}")
    if max_iters_per_epoch is not None and max_iters_per_epoch <= 0:
        raise ConfigError("max_iters_per_epoch", f"must be positive, got {max_iters_per_epoch}")
    if not 0.0 < epoch_scale <= 1e6:
        raise ConfigError("epoch_scale", f"must be positive, got {epoch_scale}")
    if min_iters_per_epoch <= 0:
        raise ConfigError("min_iters_per_epoch", f"must be positive, got {min_iters_per_epoch}")
    if checkpoint_every <= 0:
        raise ConfigError("checkpoint_every", f"must be positive, got {checkpoint_every}")
    if loss_last_n is not None and not 1 <= loss_last_n <= rho:
        raise ConfigError("loss_last_n", f"must be in [1, rho={rho}], got {loss_last_n}")
    if budget.mode == "converge" and validation is None:
        raise ConfigError("budget.mode", "'converge' needs validation data to stop on")
    n_sites, n_days = arrays.n_sites, arrays.n_days
    check_window(rho, n_days)
    n_valid = arrays.n_valid_targets
    if n_valid == 0:
        raise InputError("training data", "no valid target value in the training period", arrays.target_name)

    dev = as_device(device)
    if deterministic is None:
        deterministic = dev.type == "cpu"
    iters = max(
        int(min_iters_per_epoch), math.ceil(epoch_scale * iterations_per_epoch(batch, rho, n_sites, n_days))
    )
    if max_iters_per_epoch is not None:
        iters = min(iters, int(max_iters_per_epoch))
    b = effective_batch(batch, n_sites)
    total, block = budget_updates(
        budget, epochs=epochs, iters_per_epoch=iters, batch=batch, rho=rho, n_sites=n_sites, n_days=n_days
    )
    fingerprint = {
        "hidden": int(hidden),
        "rho": int(rho),
        "batch": int(b),
        "dropconnect": float(dropconnect),
        "seed": int(seed),
        "n_in": int(arrays.n_in),
        "n_sites": n_sites,
        "n_days": n_days,
        "iters_per_epoch": int(iters),
        "data": _data_digest(arrays),
        "budget": budget.to_dict(),
        "block": int(block),
        "loss_last_n": loss_last_n,
        "validation": None if validation is None else _data_digest(validation.arrays),
    }
    t_start = time.perf_counter()
    keep_best = budget.mode == "converge"
    metric = "nse" if budget.metric == "auto" else budget.metric  # callers resolve auto per domain

    with _deterministic(deterministic):
        model, gen, opt, rng = _fresh_state(arrays.n_in, hidden, dropconnect, seed, dev)
        losses: list[float] = []
        curve: list[CurvePoint] = []
        done, blocks_done, bad = 0, 0, 0
        best: float | None = None
        best_update = 0
        best_state: dict[str, torch.Tensor] | None = None
        train_s = val_s = 0.0
        ckpt = load_checkpoint(checkpoint_path, fingerprint) if checkpoint_path is not None else None
        if ckpt is not None and total is not None and int(ckpt.get("updates", 0)) > total:
            warnings.warn(
                f"checkpoint {checkpoint_path} is at update {ckpt.get('updates')}, beyond the {total} "
                "requested; starting over",
                stacklevel=2,
            )
            ckpt = None
        if ckpt is not None:
            try:
                model.load_state_dict(ckpt["model_state"])
                opt.load_state_dict(ckpt["optimizer_state"])
                rng.bit_generator.state = ckpt["numpy_rng"]
                gen.set_state(ckpt["mask_rng"])
                losses = [float(v) for v in ckpt["losses"]]
                curve = [CurvePoint(**p) for p in ckpt["curve"]]
                blocks_done, done, bad = int(ckpt["epoch"]), int(ckpt["updates"]), int(ckpt["bad"])
                best = None if ckpt["best"] is None else float(ckpt["best"])
                best_update = int(ckpt["best_update"])
                best_state = ckpt["best_state"]
                train_s, val_s = float(ckpt["train_s"]), float(ckpt["val_s"])
            except (RuntimeError, KeyError, ValueError, TypeError) as exc:
                warnings.warn(
                    f"checkpoint {checkpoint_path} does not fit this model ({exc}); starting over",
                    stacklevel=2,
                )
                model, gen, opt, rng = _fresh_state(arrays.n_in, hidden, dropconnect, seed, dev)
                losses, curve, blocks_done, done, bad = [], [], 0, 0, 0
                best, best_update, best_state, train_s, val_s = None, 0, None, 0.0, 0.0
        start_blocks, start_update = blocks_done, done
        stop_reason = (
            "converged" if (keep_best and bad >= budget.patience and done >= budget.min_updates) else ""
        )

        x_t = torch.from_numpy(np.ascontiguousarray(arrays.x, dtype=np.float32)).to(dev)
        c_t = torch.from_numpy(np.ascontiguousarray(arrays.c, dtype=np.float32)).to(dev)
        y_t = torch.from_numpy(np.ascontiguousarray(arrays.y, dtype=np.float32)).to(dev)
        model.train()
        show = progress and sys.stderr.isatty()
        bar = tqdm(
            total=total,
            initial=done,
            disable=not show,
            desc=f"train ({budget.mode})",
            unit="upd",
            leave=False,
        )

        def save() -> None:
            if checkpoint_path is None:
                return
            save_checkpoint(
                checkpoint_path,
                {
                    "model_state": model.state_dict(),
                    "optimizer_state": opt.state_dict(),
                    "epoch": blocks_done,
                    "updates": done,
                    "losses": list(losses),
                    "curve": [dataclasses.asdict(p) for p in curve],
                    "bad": bad,
                    "best": best,
                    "best_update": best_update,
                    "best_state": best_state,
                    "train_s": train_s,
                    "val_s": val_s,
                    "numpy_rng": rng.bit_generator.state,
                    "mask_rng": gen.get_state(),
                    "fingerprint": fingerprint,
                },
            )

        while not stop_reason:
            if total is not None and done >= total:
                stop_reason = "budget"
                break
            if budget.mode == "wall_clock" and train_s + val_s >= budget.seconds:
                stop_reason = "wall_clock"
                break
            n = block if total is None else min(block, total - done)
            t0 = time.perf_counter()
            acc = torch.zeros((), device=dev)
            ran = 0
            for _ in range(n):
                s_idx, t_idx = sample_indices(rng, n_sites, n_days, b, rho)
                xb, yb = gather_windows(x_t, c_t, y_t, s_idx, t_idx, rho)
                opt.zero_grad(set_to_none=True)
                out = model(xb)
                if loss_last_n is not None:
                    out, yb = out[:, -loss_last_n:], yb[:, -loss_last_n:]
                loss = masked_rmse(out, yb)
                loss.backward()
                opt.step()
                acc += loss.detach()
                ran += 1
                # a wall-clock budget may end inside a block
                if (
                    budget.mode == "wall_clock"
                    and train_s + val_s + time.perf_counter() - t0 >= budget.seconds
                ):
                    break
            block_loss = float(acc) / ran  # one device sync per block
            train_s += time.perf_counter() - t0
            done += ran
            blocks_done += 1
            losses.append(block_loss)
            bar.update(ran)
            bar.set_postfix(loss=f"{block_loss:.4f}")
            t1 = time.perf_counter()
            v_nse, v_rmse = (math.nan, math.nan)
            if validation is not None:
                v_nse, v_rmse = validation_scores(model, validation, dev)
                model.train()
            val_s += time.perf_counter() - t1
            point = CurvePoint(done, train_s, val_s, block_loss, v_nse, v_rmse)
            curve.append(point)
            value = v_nse if metric == "nse" else v_rmse
            if improved(metric, value, best, budget.min_delta):
                best, best_update, bad = value, done, 0
                if keep_best:
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            else:
                bad += 1
            if log is not None:
                log(blocks_done, block_loss)
            if on_check is not None and on_check(point):
                stop_reason = "callback"
            elif keep_best and bad >= budget.patience and done >= budget.min_updates:
                stop_reason = "converged"
            finished = bool(stop_reason) or (total is not None and done >= total)
            if blocks_done % checkpoint_every == 0 or finished:
                save()
        bar.close()

    if keep_best and best_state is not None:
        state = {k: v.clone() for k, v in best_state.items()}
    else:
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return TrainResult(
        state_dict=state,
        losses=losses,
        n_iterations=done,
        iters_per_epoch=iters,
        seconds=time.perf_counter() - t_start,
        resumed_from_epoch=start_blocks,
        n_train_samples=n_valid,
        n_in=arrays.n_in,
        hidden=hidden,
        batch=b,
        device=str(dev),
        budget=budget,
        curve=curve,
        stop_reason=stop_reason,
        best_update=best_update,
        block=block,
        resumed_from_update=start_update,
    )


def initial_state(n_in: int, hidden: int, seed: int, dropconnect: float = 0.0) -> dict[str, torch.Tensor]:
    """The weights :func:`train_model` starts from for ``seed`` (to measure what training gained)."""
    model, *_ = _fresh_state(n_in, hidden, dropconnect, seed, torch.device("cpu"))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def training_rmse(pred: np.ndarray, arrays: Arrays) -> float:
    """RMSE of normalised predictions [site, time] against the training targets, valid cells only."""
    y = arrays.y[..., 0]
    ok = np.isfinite(y) & np.isfinite(pred)
    return float(np.sqrt(np.mean((pred[ok] - y[ok]) ** 2))) if ok.any() else float("nan")
