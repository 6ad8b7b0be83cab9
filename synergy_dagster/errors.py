"""Errors a user can act on: each names the input, the place inside it and the problem."""

from __future__ import annotations

from pathlib import Path


class SynergyError(Exception):
    """Base class of every error this project raises on purpose."""


class InputError(SynergyError, ValueError):
    """A user-provided file or value is wrong.

    ``source`` is a path or config field, ``where`` a line, column, variable or feature
    inside it (optional), ``problem`` what is wrong in words a hydrologist understands.
    """

    def __init__(self, source: str | Path, problem: str, where: str | None = None) -> None:
        self.source = str(source)
        self.where = where
        self.problem = problem
        loc = f"{self.source}" + (f" [{where}]" if where else "")
        super().__init__(f"{loc}: {problem}")


class ConfigError(InputError):
    """A configuration value is out of range or inconsistent (source = the field name)."""


class DiskFullError(SynergyError, OSError):
    """The disk (or the user's quota) filled up while writing ``path``.

    Still an :class:`OSError` with the original errno (ENOSPC or EDQUOT), so code that handles
    OS errors keeps working; its message names the file and the space left, which the bare
    ``[Errno 28] No space left on device`` does not.
    """

    def __init__(self, path: str | Path, free_bytes: int | None, errno_: int) -> None:
        self.path = str(path)
        self.free_bytes = free_bytes
        free = "unknown" if free_bytes is None else f"{free_bytes} bytes"
        super().__init__(errno_, f"no space left on device writing {self.path} ({free} free)")

    def __str__(self) -> str:
        return str(self.strerror)


class StoreConflictError(SynergyError):
    """A write to the metadata store kept meeting other writers' commits (a DuckLake catalog
    shared by many processes) until its bounded retries ran out; the message names the tables,
    the attempts and the last conflict. Nothing of the write was committed."""
