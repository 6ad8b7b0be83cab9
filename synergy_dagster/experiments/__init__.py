"""The experiment plan: global-vs-local and similar-vs-dissimilar training sets and evaluations."""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Imported on first use: the study file's schema imports experiments.spatial_spec, and the plan
# imports the schema, so an eager import here would be circular.
_EXPORTS = {
    "Plan": "plan",
    "build_plan": "plan",
    "set_key": "plan",
    "sites_hash": "plan",
    "pick_added": "size_control",
    "stable_seed": "size_control",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
