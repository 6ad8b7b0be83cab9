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

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.models.checkpoint import load_checkpoint, save_checkpoint
from synergy_dagster.models.device import as_device
from synergy_dagster.models.lstm import SynergyLSTM, build_model, masked_rmse
from synergy_dagster.models.normalization import Arrays
from synergy_dagster.models.sampling import (
    check_window,
    effective_batch,
    gather_windows,
    iterations_per_epoch,
    sample_indices,
)

LogFn = Callable[[int, float], Any]


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`. ``state_dict`` tensors are on CPU."""

    state_dict: dict[str, torch.Tensor]
    losses: list[float]  # mean minibatch loss of each epoch (all epochs, resumed ones included)
    n_iterations: int  # weight updates over all epochs
    iters_per_epoch: int
    seconds: float  # wall time of this call
    resumed_from_epoch: int  # epochs already done when this call started (0 = fresh)
    n_train_samples: int  # valid target cells in the training arrays
    n_in: int
    hidden: int
    batch: int  # effective batch (capped at n_sites)
    device: str


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
) -> TrainResult:
    """Train with AdaDelta (lr 1.0, rho 0.9, eps 1e-6) for ``epochs`` paper epochs.

    Each epoch runs :func:`iterations_per_epoch` updates, times ``epoch_scale`` (a budget knob that
    keeps the paper's "more data, more updates" proportion), clipped to
    [``min_iters_per_epoch``, ``max_iters_per_epoch``], of
    ``batch`` random windows of ``rho`` days. With ``checkpoint_path`` the state is saved atomically
    every ``checkpoint_every`` epochs and after the last; an existing checkpoint of the same
    configuration is resumed (a corrupt or foreign one is ignored with a warning). ``log(epoch, loss)``
    is called after each epoch. ``deterministic`` defaults to True on CPU, False on CUDA.
    """
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
    }
    t_start = time.perf_counter()

    with _deterministic(deterministic):
        model, gen, opt, rng = _fresh_state(arrays.n_in, hidden, dropconnect, seed, dev)
        losses: list[float] = []
        start_epoch = 0
        ckpt = load_checkpoint(checkpoint_path, fingerprint) if checkpoint_path is not None else None
        if ckpt is not None and int(ckpt["epoch"]) > epochs:
            warnings.warn(
                f"checkpoint {checkpoint_path} is at epoch {ckpt['epoch']}, beyond the {epochs} "
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
                start_epoch = int(ckpt["epoch"])
            except (RuntimeError, KeyError, ValueError, TypeError) as exc:
                warnings.warn(
                    f"checkpoint {checkpoint_path} does not fit this model ({exc}); starting over",
                    stacklevel=2,
                )
                model, gen, opt, rng = _fresh_state(arrays.n_in, hidden, dropconnect, seed, dev)
                losses, start_epoch = [], 0

        x_t = torch.from_numpy(np.ascontiguousarray(arrays.x, dtype=np.float32)).to(dev)
        c_t = torch.from_numpy(np.ascontiguousarray(arrays.c, dtype=np.float32)).to(dev)
        y_t = torch.from_numpy(np.ascontiguousarray(arrays.y, dtype=np.float32)).to(dev)
        model.train()
        show = progress and sys.stderr.isatty()
        bar = tqdm(
            range(start_epoch, epochs),
            initial=start_epoch,
            total=epochs,
            disable=not show,
            desc="train",
            unit="epoch",
            leave=False,
        )
        for epoch in bar:
            total = torch.zeros((), device=dev)
            for _ in range(iters):
                s_idx, t_idx = sample_indices(rng, n_sites, n_days, b, rho)
                xb, yb = gather_windows(x_t, c_t, y_t, s_idx, t_idx, rho)
                opt.zero_grad(set_to_none=True)
                loss = masked_rmse(model(xb), yb)
                loss.backward()
                opt.step()
                total += loss.detach()
            ep_loss = float(total) / iters  # one device sync per epoch
            losses.append(ep_loss)
            bar.set_postfix(loss=f"{ep_loss:.4f}")
            if log is not None:
                log(epoch + 1, ep_loss)
            done = epoch + 1
            if checkpoint_path is not None and (done % checkpoint_every == 0 or done == epochs):
                save_checkpoint(
                    checkpoint_path,
                    {
                        "model_state": model.state_dict(),
                        "optimizer_state": opt.state_dict(),
                        "epoch": done,
                        "losses": list(losses),
                        "numpy_rng": rng.bit_generator.state,
                        "mask_rng": gen.get_state(),
                        "fingerprint": fingerprint,
                    },
                )
        bar.close()

    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return TrainResult(
        state_dict=state,
        losses=losses,
        n_iterations=iters * epochs,
        iters_per_epoch=iters,
        seconds=time.perf_counter() - t_start,
        resumed_from_epoch=start_epoch,
        n_train_samples=n_valid,
        n_in=arrays.n_in,
        hidden=hidden,
        batch=b,
        device=str(dev),
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
