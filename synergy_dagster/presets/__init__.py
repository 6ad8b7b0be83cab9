"""Presets: named training settings written in the study file's own schema, merged under a study.

A study names its preset with ``profile:`` (``demo``, ``cpu`` or ``paper``; the YAML files of this
folder). Its own keys win over the preset's, key by key (a nested mapping is merged, a list or a
value replaces), and the run's overrides win over both (:func:`synergy_dagster.study_file.resolve_study`).
A preset's domain blocks apply only to the domains the study has.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from synergy_dagster.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parent
DEFAULT_PRESET = "demo"


def preset_names() -> list[str]:
    """The presets shipped with the package, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The preset's keys as written (a mapping in the study file's schema)."""
    names = preset_names()
    if name not in names:
        raise ConfigError("profile", f"unknown profile {name!r}; expected one of {names}")
    raw = yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    return raw if isinstance(raw, dict) else {}


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base``: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def under_preset(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A study mapping with its preset merged under it (the preset's domains cut to the study's)."""
    name = raw.get("profile", DEFAULT_PRESET)
    if not isinstance(name, str):
        raise ConfigError("profile", f"must be a preset name, got {name!r}")
    preset = load_preset(name)
    domains = raw.get("domains")
    have = set(domains) if isinstance(domains, Mapping) else set()
    preset["domains"] = {d: v for d, v in (preset.get("domains") or {}).items() if d in have}
    if not preset["domains"]:
        del preset["domains"]
    return deep_merge({**preset, "profile": name}, raw)
