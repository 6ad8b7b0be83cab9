"""IO managers with explicit folders in the working folder (never Dagster's temp instance folder).

Both depend on the ``study`` resource and take their folders from its :class:`Layout`
(``assets/`` and ``models/`` under ``study.data_dir``), so run config that moves ``data_dir``
moves their files too.

Small asset values (site lists, plans, set descriptions) are JSON; models are ``state_dict``
files loaded with ``weights_only=True``. Nothing is pickled, so nothing a user drops in ``data/``
can execute code when loaded.
"""

# No `from __future__ import annotations`: Dagster reads the ResourceDependency annotation at
# class creation, and a string annotation fails validation against a configure_at_launch resource.
import json
from typing import Any

import dagster as dg
import torch

from synergy_dagster.defs.resources import StudyResource
from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import atomic_write_text, read_json_output, staged_outputs
from synergy_dagster.models.files import PartitionModels, read_partition, save_partitions
from synergy_dagster.store import MetadataStore


class JsonIOManager(dg.ConfigurableIOManager):
    """JSON files per asset and partition (``Layout.asset_json``), written atomically."""

    study: dg.ResourceDependency[StudyResource]

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        layout = self.study.layout
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            # A run over several partitions (a bank run) returns {partition: value}: all land or none.
            keys = list(context.asset_partition_keys)
            if not isinstance(obj, dict) or set(obj) != set(keys):
                raise dg.Failure(
                    f"{context.asset_key.to_user_string()}: expected one value per partition {keys}"
                )
            with staged_outputs() as out:
                for key in keys:
                    text = json.dumps(obj[key], indent=1, sort_keys=True, default=str)
                    out.write_text(layout.asset_json(context.asset_key.path, key), text)
            return
        part = context.partition_key if context.has_partition_key else None
        path = layout.asset_json(context.asset_key.path, part)
        atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            return {k: self._read(context, k) for k in context.asset_partition_keys}
        return self._read(context, context.asset_partition_key if context.has_asset_partitions else None)

    def _read(self, context: dg.InputContext, part: str | None) -> Any:
        path = self.study.layout.asset_json(context.asset_key.path, part)
        if not path.exists():
            raise dg.Failure(f"{context.asset_key.to_user_string()} [{part}] was never materialised ({path})")
        try:
            return read_json_output(path, f"{context.asset_key.to_user_string()} [{part}]")
        except InputError as exc:  # empty or truncated: say which partition to rematerialise
            raise dg.Failure(str(exc)) from exc


class ModelIOManager(dg.ConfigurableIOManager):
    """One ``seed<k>.pt`` state_dict per seed under ``models/<domain>/<budget>/<set_key>/``.

    The asset returns ``{"domain", "budget", "db_path", "partitions": {set_key: {"seeds": {seed:
    state_dict}, "rows", "curves"}}}`` (one partition, or every partition of a bank run); this
    writes the weights, each partition's ``index.json``, the ``models`` rows (with each file's
    SHA-256) and the ``learning_curves`` rows as one unit
    (:func:`~synergy_dagster.models.files.save_partitions`, ``staged_outputs``): a failure anywhere,
    the database included, leaves the previous files and rows. Loading uses
    ``torch.load(weights_only=True)`` and refuses a file whose hash no longer matches. The files
    themselves are :mod:`synergy_dagster.models.files`'s; this only adapts it to Dagster.
    """

    study: dg.ResourceDependency[StudyResource]

    def handle_output(self, context: dg.OutputContext, obj: dict[str, Any]) -> None:
        store = MetadataStore(obj["db_path"])
        # Every partition of a bank run in one unit: files, index.json files and rows land together.
        parts = [
            PartitionModels(key, p["seeds"], p["rows"], p["curves"]) for key, p in obj["partitions"].items()
        ]
        indexes = save_partitions(self.study.layout, store, obj["domain"], obj["budget"], parts)
        # (an output's metadata goes to every partition of the run: the files of each, by partition)
        files = next(iter(indexes.values())) if len(indexes) == 1 else indexes
        context.add_output_metadata({"files": dg.MetadataValue.json(files)})

    def load_input(self, context: dg.InputContext) -> dict[str, Any]:
        domain = context.asset_key.path[-1].removesuffix("_model")
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        return {key: self.load_partition(domain, key) for key in keys}

    def load_partition(
        self, domain: str, set_key: str, budget: str | None = None
    ) -> dict[int, dict[str, torch.Tensor]]:
        """The weights of one partition under ``budget`` (default: the latest materialisation)."""
        try:
            return read_partition(self.study.layout, domain, set_key, budget)
        except InputError as exc:
            raise dg.Failure(str(exc)) from exc
