"""Typed readers of environment variables (the defaults of the resources, the CLI and the executor).

Unset or blank means the default. A value that does not parse is a :class:`ConfigError` naming the
variable and the value, e.g. ``SYNERGY_MIN_SITES: expected an integer, got 'ten'``, instead of a
bare ``ValueError`` from deep inside Dagster's resource construction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from synergy_dagster.errors import ConfigError

T = TypeVar("T")
D = TypeVar("D")  # a default of any type (None: "not set")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _raw(name: str) -> str | None:
    """The variable's value stripped of blanks; None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def _parse(name: str, raw: str, parse: Callable[[str], T], expected: str, shown: str | None = None) -> T:
    try:
        return parse(raw)
    except ValueError:
        raise ConfigError(name, f"expected {expected}, got {(shown or raw)!r}") from None


def env_str(name: str, default: str) -> str:
    """The variable as text (surrounding blanks removed), ``default`` when unset or blank."""
    raw = _raw(name)
    return default if raw is None else raw


def env_int(name: str, default: D) -> int | D:
    raw = _raw(name)
    return default if raw is None else _parse(name, raw, int, "an integer")


def env_float(name: str, default: float) -> float:
    raw = _raw(name)
    return default if raw is None else _parse(name, raw, float, "a number")


def env_bool(name: str, default: bool) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case)."""
    raw = _raw(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE + _FALSE:
        return raw.lower() in _TRUE
    raise ConfigError(name, f"expected one of {'/'.join(_TRUE + _FALSE)}, got {raw!r}")


def env_list(name: str, default: Sequence[T], item: Callable[[str], T]) -> list[T]:
    """A comma-separated list (blank items dropped), each item parsed by ``item`` (``str``, ``int``)."""
    raw = _raw(name)
    if raw is None:
        return list(default)
    expected = "a comma-separated list of integers" if item is int else "a comma-separated list"
    # The whole value goes into the message: the user edits the variable, not one item.
    return [_parse(name, part.strip(), item, expected, shown=raw) for part in raw.split(",") if part.strip()]
