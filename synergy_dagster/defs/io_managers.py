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
    """One ``seed<k>.pt`` state_dict per seed under ``base_dir/<domain>/<set_key>/``.

    The asset returns ``{"domain": ..., "set_key": ..., "seeds": {seed: state_dict}, ...}``; this
    writes the weights atomically and records their SHA-256 next to them, and loads them back with
    ``torch.load(weights_only=True)``, refusing a file whose hash no longer matches.
    """

    base_dir: str = "data/models"

    def model_path(self, domain: str, set_key: str, seed: int) -> Path:
        return Path(self.base_dir) / domain / _safe(set_key) / f"seed{seed}.pt"

    def handle_output(self, context: dg.OutputContext, obj: dict[str, Any]) -> None:
        paths = {}
        for seed, state in obj["seeds"].items():
            path = self.model_path(obj["domain"], obj["set_key"], int(seed))
            with atomic_path(path) as tmp:
                torch.save(state, tmp)
            paths[str(seed)] = {"path": str(path), "sha256": file_sha256(path)}
        index = self.model_path(obj["domain"], obj["set_key"], 0).parent / "index.json"
        atomic_write_text(index, json.dumps(paths, indent=1))
        # The catalogue row is written only once the weights are safely on disk.
        rows = pd.DataFrame(obj["rows"])
        rows["path"] = [paths[str(s)]["path"] for s in rows["seed"]]
        rows["file_sha256"] = [paths[str(s)]["sha256"] for s in rows["seed"]]
        MetadataStore(obj["db_path"]).replace_rows(
            "models", rows, {"domain": obj["domain"], "set_key": obj["set_key"]}
        )
        context.add_output_metadata({"files": dg.MetadataValue.json(paths)})

    def load_input(self, context: dg.InputContext) -> dict[str, Any]:
        domain = context.asset_key.path[-1].removesuffix("_model")
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        return {key: self.load_partition(domain, key) for key in keys}

    def load_partition(self, domain: str, set_key: str) -> dict[int, dict[str, torch.Tensor]]:
        index = self.model_path(domain, set_key, 0).parent / "index.json"
        if not index.exists():
            raise dg.Failure(f"no trained model for {domain} [{set_key}] ({index} missing)")
        entries = json.loads(index.read_text())
        return {int(seed): load_state_dict(e["path"], e["sha256"]) for seed, e in entries.items()}


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
