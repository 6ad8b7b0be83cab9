"""The paper's network: Linear + ReLU -> one LSTM layer with DropConnect -> Linear, and its losses.

DropConnect (Wan et al. 2013, as in the authors' code): in training mode, one Bernoulli keep-mask per
forward pass on the LSTM input-hidden and hidden-hidden weight matrices, shared by every time step,
scaled by 1/(1-p). The masked weights are handed to torch's fused LSTM kernel through
:func:`torch.func.functional_call`, so there is no Python loop over time steps. Evaluation mode uses
the unmasked weights (the expectation of the masked ones).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.func import functional_call

from synergy_dagster.errors import ConfigError

_MASKED = ("weight_ih_l0", "weight_hh_l0")


class SynergyLSTM(nn.Module):
    """Batch-first ``[batch, time, n_in] -> [batch, time, n_out]``."""

    def __init__(self, n_in: int, hidden: int, n_out: int = 1, dropconnect: float = 0.0) -> None:
        super().__init__()
        if n_in <= 0 or hidden <= 0 or n_out <= 0:
            raise ConfigError("model", f"n_in, hidden, n_out must be positive; got {n_in}, {hidden}, {n_out}")
        if not 0.0 <= dropconnect < 1.0:
            raise ConfigError("dropconnect", f"must be in [0, 1), got {dropconnect}")
        self.n_in, self.hidden, self.n_out, self.dropconnect = n_in, hidden, n_out, float(dropconnect)
        self.linear_in = nn.Linear(n_in, hidden)
        # time-major inside (see forward); the state dict is the same as with batch_first
        self.lstm = nn.LSTM(hidden, hidden, num_layers=1)
        self.linear_out = nn.Linear(hidden, n_out)
        # Draws the DropConnect masks; the trainer swaps in its own seeded generator so the masks are
        # reproducible and their state can be checkpointed. None = torch's global generator.
        self.mask_generator: torch.Generator | None = None
        self.reset_lstm()

    def reset_lstm(self) -> None:
        """LSTM weights and biases uniform in +-1/sqrt(H), as in the paper's code."""
        bound = 1.0 / math.sqrt(self.hidden)
        for p in self.lstm.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _masked_weights(self) -> dict[str, torch.Tensor]:
        keep = 1.0 - self.dropconnect
        out = {}
        for name in _MASKED:
            w = getattr(self.lstm, name)
            mask = torch.empty_like(w).bernoulli_(keep, generator=self.mask_generator)
            out[name] = w * mask / keep
        return out

    def lstm_weights(self) -> dict[str, torch.Tensor]:
        """The LSTM's ``weight_ih_l0`` and ``weight_hh_l0`` for one forward pass: in training mode
        with DropConnect a new masked draw (the draws :meth:`forward` makes), else the parameters.
        For a caller that runs the recurrence itself (the stacked kernel of a model bank)."""
        if self.training and self.dropconnect > 0.0:
            return self._masked_weights()
        return {name: getattr(self.lstm, name) for name in _MASKED}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Time-major inside: the input layer reads the small input transposed and writes the
        # [time, batch, H] layout the library LSTM computes in, so no copy of the big activations
        # is made on the way in or out (same outputs; the time saved: docs/results.md).
        h = torch.relu(self.linear_in(x.transpose(0, 1)))
        if self.training and self.dropconnect > 0.0:
            with warnings.catch_warnings():
                # cuDNN warns that the masked weights are not one contiguous chunk; compacting them
                # each call is inherent to DropConnect (new weights every forward).
                warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
                out, _ = functional_call(self.lstm, self._masked_weights(), (h,))
        else:
            out, _ = self.lstm(h)
        return self.linear_out(out).transpose(0, 1)


def masked_rmse(pred: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """RMSE over all non-NaN cells of the batch, per target (last dim), summed over targets.

    A target without any valid cell contributes 0, and the result still carries a gradient graph
    (zero gradients, never NaN), so a batch of missing windows is harmless.
    """
    if pred.shape != obs.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != obs shape {tuple(obs.shape)}")
    valid = ~torch.isnan(obs)
    diff = torch.where(valid, pred - torch.nan_to_num(obs), torch.zeros_like(pred))
    dims = tuple(range(pred.dim() - 1))
    sse = (diff * diff).sum(dim=dims)
    n = valid.sum(dim=dims)
    has = n > 0
    # Double where: the sqrt branch never sees 0/0, so its gradient is finite where it is unused.
    mse = torch.where(has, sse / n.clamp(min=1), torch.ones_like(sse))
    return torch.where(has, torch.sqrt(mse), torch.zeros_like(sse)).sum()


def _masked_sq(pred: torch.Tensor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared errors with missing cells set to 0 (no NaN reaches the graph), and the valid mask."""
    if pred.shape != obs.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != obs shape {tuple(obs.shape)}")
    valid = ~torch.isnan(obs)
    diff = torch.where(valid, pred - torch.nan_to_num(obs), torch.zeros_like(pred))
    return diff * diff, valid


def masked_mse(pred: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """``MSE = sum_valid (pred - obs)^2 / n_valid`` per target (last dim), summed over targets.

    A target without a valid cell contributes 0 (with a zero gradient), as in :func:`masked_rmse`.
    """
    sq, valid = _masked_sq(pred, obs)
    dims = tuple(range(pred.dim() - 1))
    return (sq.sum(dim=dims) / valid.sum(dim=dims).clamp(min=1)).sum()


def masked_nse(
    pred: torch.Tensor, obs: torch.Tensor, site_std: torch.Tensor, eps: float = 0.1
) -> torch.Tensor:
    """The basin-normalised squared error of Kratzert et al. (2019), "NSE*":

    ``NSE* = sum_valid (pred - obs)^2 / (s_b + eps)^2 / n_valid``

    where ``s_b`` (``site_std``, one value per window of the batch) is the standard deviation of the
    window's site's target over the training period, in the units the model is trained in. Each
    site's errors are weighted by the inverse of its variance, so a site counts by how well its own
    variability is explained (what its NSE measures) rather than by its flow volume; ``eps`` bounds
    the weight of near-constant sites. Summed over targets; 0 without a valid cell.
    """
    sq, valid = _masked_sq(pred, obs)
    weight = 1.0 / (site_std.reshape(-1, *([1] * (pred.dim() - 1))) + eps) ** 2
    dims = tuple(range(pred.dim() - 1))
    return ((sq * weight).sum(dim=dims) / valid.sum(dim=dims).clamp(min=1)).sum()


def training_loss(
    name: str, pred: torch.Tensor, obs: torch.Tensor, site_std: torch.Tensor | None = None, eps: float = 0.1
) -> torch.Tensor:
    """The recipe's loss ``name`` (``rmse``, ``mse``, ``nse``; see :class:`~synergy_dagster.config.Recipe`)."""
    if name == "rmse":
        return masked_rmse(pred, obs)
    if name == "mse":
        return masked_mse(pred, obs)
    if name == "nse":
        if site_std is None:
            raise ValueError("the nse loss needs each window's site standard deviation")
        return masked_nse(pred, obs, site_std, eps)
    raise ConfigError("recipe.loss", f"unknown loss {name!r}")
