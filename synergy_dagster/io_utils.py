"""Atomic file writes: a reader never sees a half-written file, a crash leaves none behind.

:func:`atomic_path` makes one file atomic; :func:`staged_outputs` makes several files and one
database transaction atomic together (an asset's outputs are all new or all old). A full disk
(ENOSPC, EDQUOT) during either becomes a :class:`~synergy_dagster.errors.DiskFullError` naming
the file and the space left. :func:`read_json_output` reads an asset's JSON file back and names
the asset to rematerialise when it is empty or truncated.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synergy_dagster.errors import DiskFullError, InputError

if TYPE_CHECKING:  # only for the annotation: io_utils itself needs no xarray
    import xarray as xr

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Writers that wrap the OS error (pyarrow, some C libraries) keep only its text.
_DISK_FULL_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))


def _free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing folder)."""
    for p in (path, *path.parents):
        if p.exists():
            with contextlib.suppress(OSError):
                return shutil.disk_usage(p).free
            return None
    return None


def disk_full_error(exc: BaseException, target: str | Path) -> DiskFullError | None:
    """The :class:`DiskFullError` for ``exc`` when it is a full disk or quota, else None."""
    if isinstance(exc, DiskFullError) or not isinstance(exc, Exception):
        return None
    code = getattr(exc, "errno", None)
    if code not in _DISK_FULL_ERRNOS:
        if not any(t in str(exc) for t in _DISK_FULL_TEXTS):
            return None
        code = errno.EDQUOT if os.strerror(errno.EDQUOT) in str(exc) else errno.ENOSPC
    return DiskFullError(target, _free_bytes(Path(target)), code)


def _temp_beside(target: Path, suffix: str = ".tmp") -> Path:
    """A new empty file ``.<name>.<random><suffix>`` in ``target``'s folder (same file system, so
    ``os.replace`` onto ``target`` is atomic; the pattern is what :func:`sweep_stale_temps` removes)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temp file lives in the same folder so the final ``os.replace`` is atomic on POSIX.
    On any exception the temp file is removed and ``target`` is untouched.
    A full disk or quota raises :class:`DiskFullError` naming ``target`` instead.
    """
    target = Path(target)
    try:
        tmp_path = _temp_beside(target)
    except OSError as exc:
        full = disk_full_error(exc, target)
        if full is not None:
            raise full from exc
        raise
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        full = disk_full_error(exc, target)  # measured after the temp is gone
        if full is not None:
            raise full from exc
        raise


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | Path, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


def write_netcdf(ds: xr.Dataset, path: str | Path) -> None:
    """Atomic NetCDF write (a crash never leaves a truncated cache behind)."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")


class StagedOutputs:
    """The outputs of one :func:`staged_outputs` block: temp files waiting to replace their targets,
    and at most one database transaction that commits with them."""

    def __init__(self) -> None:
        self._staged: dict[Path, Path] = {}  # target -> its temp file
        self._removed: list[Path] = []  # targets to delete with the publish (e.g. stale figure parts)
        self._transaction: AbstractContextManager[object] | None = None
        self._transaction_path: Path | None = None
        self.current: Path | None = None  # the target being written or renamed (for error messages)

    @property
    def targets(self) -> list[Path]:
        return list(self._staged)

    def path(self, target: str | Path) -> Path:
        """A temp path to write ``target``'s new content to (any writer: Parquet, NetCDF, JSON)."""
        target = Path(target)
        if target in self._staged or target in self._removed:
            raise ValueError(f"{target} is staged twice in one staged_outputs block")
        self.current = target
        self._staged[target] = _temp_beside(target)
        return self._staged[target]

    def write_bytes(self, target: str | Path, data: bytes) -> Path:
        self.path(target).write_bytes(data)
        return Path(target)

    def write_text(self, target: str | Path, text: str) -> Path:
        return self.write_bytes(target, text.encode("utf-8"))

    def write_netcdf(self, target: str | Path, ds: xr.Dataset) -> Path:
        ds.to_netcdf(self.path(target), engine="netcdf4")
        return Path(target)

    def remove(self, target: str | Path) -> None:
        """Delete ``target`` (if it exists) as part of the publish, not now: an output of an earlier
        run that this one no longer writes (a figure part of a larger study) goes only when the new
        outputs land, and comes back if the publish fails."""
        target = Path(target)
        if target in self._staged or target in self._removed:
            raise ValueError(f"{target} is staged twice in one staged_outputs block")
        self._removed.append(target)

    def transaction(self, tx: AbstractContextManager[object], path: str | Path | None = None) -> None:
        """The database writes that go with the files, as a context manager that does them on
        enter and commits on a clean exit (e.g. :meth:`MetadataStore.transaction`). Entered only
        after every file is written; the files replace their targets inside it, so a failing
        rename rolls it back and a failing commit restores the files. One per block: two
        transactions cannot commit atomically together (put several tables in one). ``path``, the
        database file, is what a full-disk error names when the database write fails."""
        if self._transaction is not None:
            raise ValueError("one database transaction per staged_outputs block")
        self._transaction = tx
        self._transaction_path = None if path is None else Path(path)

    def _publish(self) -> None:
        swapped: list[tuple[Path, Path | None]] = []  # target, hard link to its old content
        try:
            with contextlib.ExitStack() as stack:
                if self._transaction is not None:
                    self.current = self._transaction_path
                    stack.enter_context(self._transaction)  # writes run here, COMMIT on exit
                for target, tmp in self._staged.items():
                    self.current = target
                    swapped.append((target, _backup(target)))
                    os.replace(tmp, target)
                for target in self._removed:
                    self.current = target
                    backup = _backup(target)
                    swapped.append((target, backup))  # restored like a replaced target on failure
                    if backup is not None:
                        target.unlink()
                self.current = self._transaction_path
        except BaseException:
            for target, backup in reversed(swapped):
                # one target that cannot be restored must not stop the others; the first error
                # (why the publish failed) is the one raised
                with contextlib.suppress(OSError):
                    if backup is None:  # the target did not exist before: remove the new one
                        target.unlink(missing_ok=True)
                    else:
                        os.replace(backup, target)
                        # rename onto a hard link of the same file is a no-op: drop the link
                        backup.unlink(missing_ok=True)
            raise
        for _, backup in swapped:
            if backup is not None:
                with contextlib.suppress(FileNotFoundError):
                    backup.unlink()

    def _discard(self) -> None:
        for tmp in self._staged.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _backup(target: Path) -> Path | None:
    """A second name for ``target``'s current content (a hard link: no copy, and ``target`` itself
    is never missing), or None when there is no ``target`` yet."""
    if not target.exists():
        return None
    backup = _temp_beside(target, suffix=".bak.tmp")
    backup.unlink()
    try:
        os.link(target, backup)
    except OSError:  # a file system without hard links
        shutil.copy2(target, backup)
    return backup


@contextlib.contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """All-or-nothing outputs of one asset: several files and one database transaction.

    Write each output to ``out.path(target)`` (or ``out.write_text`` ...) inside the block and
    register the database writes with ``out.transaction(...)``; ``out.remove(target)`` deletes an
    old output with them. On a clean exit, and only then, the transaction runs, every temp file
    replaces its target, the removed targets go and the transaction commits. If anything
    fails (a writer, the database, a rename, the commit) the temp files are removed, targets
    already replaced get their old content back and the transaction rolls back: all old, no
    temp left. A full disk raises :class:`DiskFullError` naming the file being written.

    Known limit: a SIGKILL during the renames (microseconds) can leave some targets new and
    ``.<name>.*.bak.tmp`` backups of the others; :func:`sweep_stale_temps` removes those later.
    """
    out = StagedOutputs()
    try:
        yield out
        out._publish()
    except BaseException as exc:
        out._discard()
        full = disk_full_error(exc, out.current) if out.current is not None else None
        if full is not None:
            raise full from exc
        raise


def read_json_output(path: str | Path, asset: str) -> Any:
    """An asset's JSON file; empty, truncated or not JSON is an InputError naming ``asset`` to
    rematerialise (a file cut short by a full disk or a copy, not something to edit by hand)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not a text file ({exc.reason}): rematerialise {asset}") from exc
    if not text.strip():
        raise InputError(path, f"empty file: rematerialise {asset}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            path, f"truncated or not JSON ({exc.msg}): rematerialise {asset}", f"line {exc.lineno}"
        ) from exc


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (files may be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tree_sha256(paths: list[Path]) -> str:
    """One hash over many files: their relative order and contents."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(file_sha256(p).encode())
    return h.hexdigest()


def sweep_stale_temps(root: str | Path, older_than_s: float = 3600.0) -> list[Path]:
    """Remove temp files :func:`atomic_path` left behind when its process was killed mid-write.

    Only names of that pattern (``.<name>.<random>.tmp``) older than ``older_than_s`` are removed,
    so a write in progress in another process is never touched. Returns what was removed.
    """
    import time

    root = Path(root)
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed = []
    for p in root.rglob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink()
                removed.append(p)
    return removed
