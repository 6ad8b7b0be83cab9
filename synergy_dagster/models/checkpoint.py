"""Atomic training checkpoints that resume bit-identically.

A checkpoint holds the model and optimiser state dicts, the number of completed epochs, the loss
history, the numpy Generator state (a dict of str/int: loadable with ``weights_only=True``), the
DropConnect generator state (a uint8 tensor) and a fingerprint of the run configuration. It is
written with ``torch.save`` to a temp file beside the target and renamed (never half-written) and
read with ``torch.load(weights_only=True)`` (no arbitrary code from pickles). A corrupt, unreadable
or mismatched checkpoint is reported with a warning and training starts over.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from synergy_dagster.io_utils import atomic_path

_REQUIRED = ("model_state", "optimizer_state", "epoch", "losses", "numpy_rng", "fingerprint")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors and plain containers only) atomically to ``path``."""
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, fingerprint: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Load a checkpoint; None (with a warning) if absent, corrupt or for another configuration."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file means "start over", never a crash
        warnings.warn(
            f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); starting over", stacklevel=2
        )
        return None
    if not isinstance(data, dict) or any(k not in data for k in _REQUIRED):
        warnings.warn(f"checkpoint {path} lacks required fields; starting over", stacklevel=2)
        return None
    if fingerprint is not None and data["fingerprint"] != fingerprint:
        diff = sorted(
            k
            for k in set(fingerprint) | set(data["fingerprint"])
            if fingerprint.get(k) != data["fingerprint"].get(k)
        )
        warnings.warn(
            f"checkpoint {path} was written for another configuration (differs in {diff}); starting over",
            stacklevel=2,
        )
        return None
    return data
