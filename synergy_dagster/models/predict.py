"""Full-sequence prediction with a trained network (model files: :mod:`synergy_dagster.models.files`).

As in the paper: one forward pass over the whole record from a zero state (no sliding window),
in evaluation mode (no DropConnect) under ``torch.inference_mode``. Sites are processed in chunks so
that a long streamflow record fits in memory; each chunk is still one full-sequence pass.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.models.device import as_device
from synergy_dagster.models.lstm import SynergyLSTM
from synergy_dagster.models.normalization import Arrays, Normalizer

__all__ = ["model_from_state", "predict", "warmup_window"]


def model_from_state(state: Mapping[str, torch.Tensor], n_in: int | None = None) -> SynergyLSTM:
    """Rebuild a :class:`SynergyLSTM` from a state dict, reading its sizes from the weight shapes."""
    try:
        hidden = int(state["lstm.weight_hh_l0"].shape[1])
        n_in_state = int(state["linear_in.weight"].shape[1])
        n_out = int(state["linear_out.weight"].shape[0])
    except (KeyError, AttributeError, IndexError) as exc:
        raise InputError("model state", f"not a SynergyLSTM state dict (missing {exc})") from exc
    if n_in is not None and n_in != n_in_state:
        raise InputError(
            "model state", f"model expects {n_in_state} inputs but the data have {n_in}", "linear_in.weight"
        )
    model = SynergyLSTM(n_in_state, hidden, n_out=n_out)
    model.load_state_dict(dict(state))
    return model


def predict(
    model_or_state: SynergyLSTM | Mapping[str, torch.Tensor],
    arrays: Arrays,
    hidden: int | None = None,
    device: torch.device | str | None = None,
    chunk_sites: int = 256,
    normalizer: Normalizer | None = None,
    max_chunk_bytes: int = 1 << 30,
) -> np.ndarray:
    """Simulate every site of ``arrays`` over its whole time axis.

    Returns float32 [site, time] (``[site, time, n_out]`` when n_out > 1) in normalised units, or in
    physical units when ``normalizer`` is given. ``hidden`` is only checked (it is read from the
    state). Chunks hold at most ``chunk_sites`` sites and about ``max_chunk_bytes`` of activations.
    """
    dev = as_device(device)
    if isinstance(model_or_state, SynergyLSTM):
        model = model_or_state
        if model.n_in != arrays.n_in:
            raise InputError("model", f"model expects {model.n_in} inputs but the data have {arrays.n_in}")
    else:
        model = model_from_state(model_or_state, arrays.n_in)
    if hidden is not None and hidden != model.hidden:
        raise InputError("model state", f"hidden size is {model.hidden}, caller expected {hidden}", "hidden")
    was_training, old_device = model.training, next(model.parameters()).device
    model.eval().to(dev)

    n_sites, n_days = arrays.n_sites, arrays.n_days
    # Per site: inputs, first-layer output (+ time-major copy), the fused kernel's precomputed gate
    # projections (4H) and LSTM output, float32: about n_in + 8H values per day.
    per_site = n_days * (arrays.n_in + 8 * model.hidden + model.n_out) * 4
    chunk = int(max(1, min(chunk_sites, n_sites, max_chunk_bytes // max(per_site, 1))))
    out = np.empty((n_sites, n_days, model.n_out), dtype=np.float32)
    x_all = torch.from_numpy(np.ascontiguousarray(arrays.x, dtype=np.float32))
    c_all = torch.from_numpy(np.ascontiguousarray(arrays.c, dtype=np.float32))
    try:
        with torch.inference_mode():
            for lo in range(0, n_sites, chunk):  # loop over site chunks, not samples or time steps
                x = x_all[lo : lo + chunk].to(dev)
                c = c_all[lo : lo + chunk].to(dev)
                inp = torch.cat([x, c[:, None, :].expand(-1, n_days, -1)], dim=2)
                out[lo : lo + chunk] = model(inp).float().cpu().numpy()
    finally:
        model.train(was_training).to(old_device)
    sim = out[:, :, 0] if model.n_out == 1 else out
    if normalizer is not None:
        sim = normalizer.inverse_target(sim).astype(np.float32)
    return sim


def warmup_window(ds: xr.Dataset, period: slice, warmup: int) -> tuple[slice, pd.DatetimeIndex]:
    """Input window starting ``warmup`` days before ``period`` (clipped at the record start), and the
    days of ``period`` itself: the warm-up feeds the LSTM's state and is never scored."""
    t = pd.DatetimeIndex(ds["time"].values)
    start = max(pd.Timestamp(period.start) - pd.Timedelta(days=warmup), t[0])
    days = t[(t >= pd.Timestamp(period.start)) & (t <= pd.Timestamp(period.stop))]
    return slice(start, pd.Timestamp(period.stop)), days
