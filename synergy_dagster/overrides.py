"""Overrides of a study's keys: one form for the CLI, the environment and Dagster run config.

An override is ``<dotted key>=<value>``, e.g. ``budget.max_updates=8000``, ``seeds=[0, 1, 2]`` or
``domains.streamflow.recipe.lr=0.001``. The value is read as YAML (numbers, booleans, lists and
mappings as in the study file). Overrides are applied to the study mapping before it is validated,
so an override is checked, and its error reported, exactly like a key written in the file.

``SYNERGY_OVERRIDES`` holds overrides separated by ``;`` or new lines.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from synergy_dagster.errors import ConfigError

OVERRIDES_VARIABLE = "SYNERGY_OVERRIDES"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


def split_overrides(text: str) -> list[str]:
    """The overrides in one text (``SYNERGY_OVERRIDES``): separated by ``;`` or new lines."""
    return [part.strip() for part in re.split(r"[;\n]", text) if part.strip()]


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value read as YAML)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ConfigError(
            f"override {item!r}", "expected <dotted key>=<value>, e.g. budget.max_updates=8000 or seeds=[0,1]"
        )
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}", f"the value is not valid YAML: {exc}") from None
    return key.split("."), value


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``raw`` with every override set (in order; a later one wins). A key that does not exist is
    created here and refused by the schema, which names it."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        path, value = parse_override(item)
        node: dict[str, Any] = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(path[: i + 1])
                raise ConfigError(f"override {item!r}", f"{where} is a value, not a block of keys")
            node = child
        node[path[-1]] = value
    return out


def blame(message: str, overrides: Iterable[str]) -> str:
    """``message`` with the overrides whose keys it names pointed out (an error the user made on
    the command line or in the environment, not in the file)."""
    named = [o for o in overrides if o.partition("=")[0].strip() in message]
    return message + (f" (set by override {', '.join(repr(o) for o in named)})" if named else "")
