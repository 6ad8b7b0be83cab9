"""Pick the torch device: CUDA when present, else CPU. Every other module takes a device argument."""

from __future__ import annotations

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
