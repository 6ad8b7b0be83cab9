"""DuckDB extensions loaded from their PyPI packages, offline.

``duckdb-extension-ducklake`` and ``duckdb-extension-postgres`` hold the extension binaries built
for one DuckDB release (``extensions/v<version>/<name>.duckdb_extension``). ``INSTALL`` would
download them, which a cluster node without internet cannot do; ``LOAD '<file>'`` needs none.
DuckDB finds an extension's entry point from the file name, and the postgres extension's entry
point is ``postgres_scanner``: that file is loaded through a link of that name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import duckdb

from synergy_dagster.errors import ConfigError

# Extension name -> the name its entry point function is derived from (the file must be called so).
_ENTRY_NAMES = {"ducklake": "ducklake", "postgres": "postgres_scanner"}


def extension_file(name: str) -> Path:
    """The binary of extension ``name`` shipped by ``duckdb-extension-<name>`` for this DuckDB."""
    package = f"duckdb_extension_{name}"
    pin = f"pip install 'duckdb=={duckdb.__version__}' 'duckdb-extension-{name}=={duckdb.__version__}'"
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ConfigError(f"duckdb-extension-{name}", f"package not installed ({pin})")
    files = sorted(Path(spec.origin).parent.glob(f"extensions/v*/{name}.duckdb_extension"))
    want = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if want not in files:
        built = ", ".join(f.parent.name for f in files) or "none"
        # A binary of another DuckDB release refuses to load (or crashes): say which pin to fix.
        raise ConfigError(
            f"duckdb-extension-{name}",
            f"holds extensions for DuckDB {built}, but duckdb {duckdb.__version__} is installed ({pin})",
        )
    return want


def _loadable(name: str) -> Path:
    """A path to the extension whose file name matches its entry point (a cached link if needed)."""
    source = extension_file(name)
    entry = _ENTRY_NAMES.get(name, name)
    if source.name == f"{entry}.duckdb_extension":
        return source
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(tempfile.gettempdir()) / f"synergy_duckdb_extensions_{uid}" / f"v{duckdb.__version__}"
    target = folder / f"{entry}.duckdb_extension"
    with contextlib.suppress(OSError):
        if target.is_symlink() and Path(os.readlink(target)) == source:
            return target
    folder.mkdir(parents=True, exist_ok=True)
    # Made beside the target and renamed over it: processes starting together never see half a link.
    tmp = folder / f".{entry}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(source)
    except OSError:  # a file system without links: a copy does the same
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def load_extensions(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    """``LOAD`` each extension from its package file; never downloads one."""
    # Off, so that a missing extension fails at once instead of waiting on a download.
    con.execute("SET autoinstall_known_extensions = false")
    for name in names:
        path = str(_loadable(name)).replace("'", "''")
        con.execute(f"LOAD '{path}'")
