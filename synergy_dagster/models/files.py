"""Model files: the one place that writes and reads trained weights.

A model is a ``state_dict`` saved with ``torch.save`` (CPU tensors only) to a temp file and renamed
(never half-written); its SHA-256 is recorded in the ``models`` table. Reading checks that hash
first and then uses ``torch.load(weights_only=True)``, so neither a damaged file nor a pickle that
someone dropped into ``data/`` is ever executed or silently used.

One partition of a model asset (a training set under one budget) keeps one ``seed<k>.pt`` per seed
in ``Layout.model_dir`` plus an ``index.json`` naming each file and its hash. :func:`save_models`
writes those files and the partition's ``models`` / ``learning_curves`` rows as one unit
(:func:`save_partitions` several partitions' as one unit)
(``staged_outputs``): a failure anywhere, the database included, leaves the previous files and
rows. Free of Dagster: the model IO manager and the budget assets only call these functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from synergy_dagster.errors import InputError
from synergy_dagster.io_utils import StagedOutputs, atomic_path, file_sha256, staged_outputs
from synergy_dagster.layout import Layout

if TYPE_CHECKING:  # only the annotation: reading model files needs no database driver
    from synergy_dagster.store import MetadataStore

StateDict = dict[str, torch.Tensor]
# {"<seed>": {"path": ..., "sha256": ...}}: the index of one partition, as written to index.json
FileIndex = dict[str, dict[str, str]]


def save_state(path: str | Path, state_dict: Mapping[str, torch.Tensor]) -> str:
    """Write a state dict atomically (CPU copies, tensors only); return the file's SHA-256."""
    cpu = {k: v.detach().to("cpu") for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        torch.save(cpu, tmp)
    return file_sha256(path)


def load_state(path: str | Path, expected_sha256: str | None = None) -> StateDict:
    """Read a state dict: the recorded hash first (when given), then ``weights_only=True``.

    A training checkpoint is accepted too (its model weights are returned). Every failure is an
    :class:`InputError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found")
    if expected_sha256 and file_sha256(path) != expected_sha256:
        raise InputError(
            path, "does not match its recorded SHA-256 (corrupted or replaced); it is not loaded"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors vary by torch version; all mean a bad file
        raise InputError(path, f"not a readable model file ({type(exc).__name__}: {exc})") from exc
    if isinstance(data, dict) and "model_state" in data:
        data = data["model_state"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise InputError(path, "file does not hold a state dict of tensors")
    return dict(data)


def _stage_partition(
    out: StagedOutputs, layout: Layout, domain: str, budget: str, set_key: str, seeds: Mapping[int, StateDict]
) -> FileIndex:
    """Every seed's weights and the partition's ``index.json`` as staged temp files; their index."""
    index: FileIndex = {}
    for seed, state in seeds.items():
        path = layout.model_file(domain, budget, set_key, int(seed))
        tmp = out.path(path)
        torch.save({k: v.detach().to("cpu") for k, v in state.items()}, tmp)
        index[str(seed)] = {"path": str(path), "sha256": file_sha256(tmp)}  # the bytes that land
    out.write_text(layout.model_index(domain, budget, set_key), json.dumps(index, indent=1))
    return index


def write_partition(
    layout: Layout, domain: str, budget: str, set_key: str, seeds: Mapping[int, StateDict]
) -> FileIndex:
    """Write every seed's weights and the partition's ``index.json`` together; return that index."""
    with staged_outputs() as out:
        index = _stage_partition(out, layout, domain, budget, set_key, seeds)
    return index


def read_partition(
    layout: Layout, domain: str, set_key: str, budget: str | None = None
) -> dict[int, StateDict]:
    """The weights of one partition under ``budget`` (default: the most recently written one)."""
    if budget:
        found = [p for p in [layout.model_index(domain, budget, set_key)] if p.exists()]
    else:
        found = sorted(layout.model_indexes(domain, set_key), key=lambda p: p.stat().st_mtime, reverse=True)
    if not found:
        where = f" under the {budget!r} budget" if budget else ""
        raise InputError(layout.models_dir() / domain, f"no trained model for [{set_key}]{where}")
    entries = json.loads(found[0].read_text())
    return {int(seed): load_state(e["path"], e["sha256"]) for seed, e in entries.items()}


def save_models(
    layout: Layout,
    store: MetadataStore,
    domain: str,
    set_key: str,
    budget: str,
    seeds: Mapping[int, StateDict],
    rows: list[dict[str, Any]],
    curves: pd.DataFrame,
) -> FileIndex:
    """Write the seeds' weights, the partition's ``index.json``, their ``models`` rows and the
    learning curves as one unit (:func:`save_partitions` of one partition)."""
    return save_partitions(layout, store, domain, budget, [PartitionModels(set_key, seeds, rows, curves)])[
        set_key
    ]


@dataclass(frozen=True)
class PartitionModels:
    """What one partition's training produced: every seed's weights, ``models`` rows and curves."""

    set_key: str
    seeds: Mapping[int, StateDict]
    rows: list[dict[str, Any]]
    curves: pd.DataFrame


def save_partitions(
    layout: Layout, store: MetadataStore, domain: str, budget: str, parts: Sequence[PartitionModels]
) -> dict[str, FileIndex]:
    """Write several partitions' weights, ``index.json`` files, ``models`` rows and learning curves
    as ONE unit (a bank run materialises several partitions at once: all of them land or none).

    The files are staged beside their targets; the rows are written in one DuckDB transaction and
    the files renamed inside it, then COMMIT (``staged_outputs``). A failing write, rename or
    commit leaves the previous weights, indexes and rows (or none), so a row never points at a
    missing, half-written or newer file.
    """
    indexes: dict[str, FileIndex] = {}
    with staged_outputs() as out:
        writes = []
        for part in parts:
            index = _stage_partition(out, layout, domain, budget, part.set_key, part.seeds)
            table = pd.DataFrame(part.rows)
            table["path"] = [index[str(s)]["path"] for s in table["seed"]]
            table["file_sha256"] = [index[str(s)]["sha256"] for s in table["seed"]]
            where = {"domain": domain, "set_key": part.set_key, "budget": budget}
            writes += [("models", table, where), ("learning_curves", pd.DataFrame(part.curves), where)]
            indexes[part.set_key] = index
        out.transaction(store.transaction(writes), store.path)
    return indexes
