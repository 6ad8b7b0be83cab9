"""The torch device and how torch computes on it: CUDA when present, else CPU (every other module
takes a device argument); threads, native bfloat16, deterministic algorithms."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from synergy_dagster.errors import ConfigError


def pick_device(prefer: str = "auto") -> torch.device:
    """Return the device to use.

    ``prefer`` is ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    Asking for CUDA on a machine without it raises :class:`ConfigError` rather than failing later
    inside torch.
    """
    choice = (prefer or "auto").strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device", f"{prefer!r} requested but CUDA is not available on this machine")
        try:
            dev = torch.device(choice)
        except RuntimeError as exc:
            raise ConfigError("device", f"not a device: {prefer!r} ({exc})") from exc
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                "device", f"{prefer!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        return dev
    raise ConfigError("device", f"unknown device {prefer!r}; expected 'auto', 'cpu' or 'cuda[:N]'")


def as_device(device: torch.device | str | None) -> torch.device:
    """Normalise a device argument (None means ``pick_device("auto")``)."""
    if device is None:
        return pick_device("auto")
    if isinstance(device, torch.device):
        return device
    return pick_device(device)


def configure_threads(requested: int, hidden: int) -> int:
    """Set torch's intra-op thread count and return it.

    ``requested`` > 0 is used as given. With 0 ("auto"), small networks (H < 128) run on one
    thread: their kernels are too small to split, and with several processes per machine (a
    multiprocess executor, parallel tests) OpenMP threads that spin-wait for a busy core slow a
    demo-size step down many times over (docs/results.md). Larger networks use every core.
    """
    if requested < 0:
        raise ConfigError("torch_threads", f"must be >= 0 (0 = auto), got {requested}")
    n = requested or (1 if hidden < 128 else max(1, os.cpu_count() or 1))
    torch.set_num_threads(n)
    return n


def bank_threads(requested: int) -> int:
    """CPU threads a bank of models may use: ``requested`` (``torch_threads``) when > 0, else every
    core this process may run on. The bank's ``fused`` kernel runs that many single-thread model
    updates at once, as that many one-model processes would, without the processes."""
    if requested < 0:
        raise ConfigError("torch_threads", f"must be >= 0 (0 = auto), got {requested}")
    if requested:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (CUDA; a CPU whose oneDNN has bf16 kernels:
    AVX512-BF16 or AMX). Elsewhere bfloat16 is emulated and slower than float32."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
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
