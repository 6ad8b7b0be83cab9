"""IO managers with explicit folders under ``data/`` (never Dagster's temp instance folder).

Small asset values (site lists, plans, set descriptions) are JSON; models are ``state_dict``
files loaded with ``weights_only=True``. Nothing is pickled, so nothing a user drops in ``data/``
can execute code when loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import torch

from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import atomic_path, atomic_write_text, file_sha256
from synergy_dagster.store import MetadataStore


def _asset_path(base: Path, context: dg.OutputContext | dg.InputContext, suffix: str) -> Path:
    key = context.asset_key.path
    part = context.partition_key if context.has_partition_key else "__all__"
    return base.joinpath(*key) / f"{_safe(part)}{suffix}"


def _safe(key: str) -> str:
    """Partition keys hold ':' and '+'; keep them readable but path-safe."""
    return key.replace("/", "_").replace(":", "__")


class JsonIOManager(dg.ConfigurableIOManager):
    """JSON files per asset and partition under ``base_dir``, written atomically."""

    base_dir: str = "data/assets"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        path = _asset_path(Path(self.base_dir), context, ".json")
        atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            return {k: self._read(context, k) for k in context.asset_partition_keys}
        return self._read(context, context.asset_partition_key if context.has_asset_partitions else None)

    def _read(self, context: dg.InputContext, part: str | None) -> Any:
        path = Path(self.base_dir).joinpath(*context.asset_key.path) / f"{_safe(part or '__all__')}.json"
        if not path.exists():
            raise dg.Failure(f"{context.asset_key.to_user_string()} [{part}] was never materialised ({path})")
        return json.loads(path.read_text())


class ModelIOManager(dg.ConfigurableIOManager):
    """One ``seed<k>.pt`` state_dict per seed under ``base_dir/<domain>/<budget>/<set_key>/``.

    The asset returns ``{"domain", "set_key", "budget", "seeds": {seed: state_dict}, "rows",
    "curves", "db_path"}``; this writes the weights atomically, then the ``models`` rows (with each
    file's SHA-256) and the ``learning_curves`` rows in one DuckDB transaction. Loading uses
    ``torch.load(weights_only=True)`` and refuses a file whose hash no longer matches.
    """

    base_dir: str = "data/models"

    def handle_output(self, context: dg.OutputContext, obj: dict[str, Any]) -> None:
        paths = store_models(Path(self.base_dir), obj)
        context.add_output_metadata({"files": dg.MetadataValue.json(paths)})

    def load_input(self, context: dg.InputContext) -> dict[str, Any]:
        domain = context.asset_key.path[-1].removesuffix("_model")
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        return {key: self.load_partition(domain, key) for key in keys}

    def load_partition(
        self, domain: str, set_key: str, budget: str | None = None
    ) -> dict[int, dict[str, torch.Tensor]]:
        """The weights of one partition under ``budget`` (default: the latest materialisation)."""
        pattern = f"{budget or '*'}/{_safe(set_key)}/index.json"
        found = sorted(
            (Path(self.base_dir) / domain).glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True
        )
        if not found:
            raise dg.Failure(f"no trained model for {domain} [{set_key}] under {self.base_dir}/{domain}")
        entries = json.loads(found[0].read_text())
        return {int(seed): load_state_dict(e["path"], e["sha256"]) for seed, e in entries.items()}


def model_path(base_dir: Path, domain: str, budget: str, set_key: str, seed: int) -> Path:
    return Path(base_dir) / domain / budget / _safe(set_key) / f"seed{seed}.pt"


def store_models(base_dir: Path, obj: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Write the seeds' weights, then their catalogue rows and learning curves (one transaction).

    The rows are written only once the weights are safely on disk, so a row never points at a
    missing or half-written file.
    """
    domain, key, budget = obj["domain"], obj["set_key"], obj["budget"]
    paths = {}
    for seed, state in obj["seeds"].items():
        path = model_path(base_dir, domain, budget, key, int(seed))
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        paths[str(seed)] = {"path": str(path), "sha256": file_sha256(path)}
    index = model_path(base_dir, domain, budget, key, 0).parent / "index.json"
    atomic_write_text(index, json.dumps(paths, indent=1))
    rows = pd.DataFrame(obj["rows"])
    rows["path"] = [paths[str(s)]["path"] for s in rows["seed"]]
    rows["file_sha256"] = [paths[str(s)]["sha256"] for s in rows["seed"]]
    where = {"domain": domain, "set_key": key, "budget": budget}
    MetadataStore(obj["db_path"]).replace_many(
        [("models", rows, where), ("learning_curves", pd.DataFrame(obj["curves"]), where)]
    )
    return paths


def load_state_dict(path: str | Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a model file safely: hash check first, then ``weights_only=True``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file missing: {path}")
    if expected_sha256 and file_sha256(path) != expected_sha256:
        raise InputError(
            path, "does not match its recorded SHA-256 (corrupted or replaced); it is not loaded"
        )
    return torch.load(path, map_location="cpu", weights_only=True)
