"""Atomic training checkpoints that resume bit-identically.

A checkpoint holds the model and optimiser state dicts, the number of completed blocks (updates
between validation checks), the loss history, the numpy Generator state (a dict of str/int: loadable
with ``weights_only=True``), the DropConnect generator state (a uint8 tensor) and a fingerprint of
the run configuration. It is written with ``torch.save`` to a temp file beside the target and
renamed (never half-written) and read with ``torch.load(weights_only=True)`` (no arbitrary code from
pickles). It also holds a SHA-256 digest of its own contents: a flipped bit in the tensor data still
unpickles fine, so only the digest tells a damaged checkpoint from a good one. A corrupt,
unreadable, undigested or mismatched checkpoint is reported with a warning and training starts over.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import torch

from synergy_dagster.io_utils import atomic_path

# "blocks" (updates between validation checks) was "epoch" before: such older checkpoints are
# refused as lacking a field, and training starts over.
_REQUIRED = ("model_state", "optimizer_state", "blocks", "losses", "numpy_rng", "fingerprint")


def _digest(obj: Any, h: Any = None) -> str:
    """SHA-256 over a payload's structure and values: tensors by dtype, shape and raw bytes, other
    leaves by ``repr`` (dict keys sorted, so the digest does not depend on insertion order)."""
    h = hashlib.sha256() if h is None else h
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(b"D")
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _digest(obj[k], h)
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _digest(v, h)
    else:
        h.update(repr(obj).encode())
    return h.hexdigest()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors and plain containers only) atomically to ``path``, with its digest."""
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    body = {k: v for k, v in payload.items() if k != "digest"}
    with atomic_path(path) as tmp:
        torch.save({**body, "digest": _digest(body)}, tmp)
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
    digest = data.pop("digest", None)
    if digest != _digest(data):
        warnings.warn(
            f"checkpoint {path} does not match its recorded digest (damaged, or written by an older "
            "version); starting over",
            stacklevel=2,
        )
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
