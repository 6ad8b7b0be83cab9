"""The import rules of the package (README, "Architecture"), read from the source with ``ast``.

Layers in pipeline order: the foundation modules at the top of the package (config, layout, env,
errors, io_utils, ...), then sources -> regions -> experiments -> models -> evaluation, with store
beside them; defs/ (the Dagster layer) and cli.py on top. A layer imports only itself, the layers
before it, store and the foundation; only defs/, cli.py and the package's lazy ``__getattr__``
import Dagster; the data layers never import torch. Imports inside functions count too: a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import synergy_dagster

PKG = Path(synergy_dagster.__file__).resolve().parent
PIPELINE = ("sources", "regions", "experiments", "models", "evaluation")
SCIENCE = ("foundation", *PIPELINE, "store")
# What each layer may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "foundation": set(),
    "store": {"foundation"},
    **{layer: {"foundation", "store", *PIPELINE[:i]} for i, layer in enumerate(PIPELINE)},
    "defs": {*SCIENCE},
    "cli": {*SCIENCE, "defs"},
    "entry": {"defs"},  # synergy_dagster/__init__.py: the Definitions for `dagster -m synergy_dagster`
}
# Deliberate exceptions, (importing layer, imported module), each with its reason.
EXCEPTIONS = {
    # Training scores its validation set with the same metric functions the evaluation reports;
    # metrics.py itself imports only the foundation (checked below), so this adds no cycle.
    ("models", "synergy_dagster.evaluation.metrics"),
    # The study file's schema composes each science package's own settings block (a *_spec module
    # importing only the foundation, checked below), so a setting is declared once, by its science.
    ("foundation", "synergy_dagster.sources.quality_spec"),
    ("foundation", "synergy_dagster.sources.usgs_spec"),
    ("foundation", "synergy_dagster.experiments.spatial_spec"),
}
DAGSTER_LAYERS = {"defs", "cli", "entry"}
# Folders that belong to the foundation: the presets are study settings, written in its schema.
FOUNDATION_PACKAGES = {"presets"}
NO_TORCH = {"foundation", "sources", "regions", "experiments", "store"}


def layer_of(module: str) -> str | None:
    """``synergy_dagster.models.lstm`` -> ``models``; top-level modules are the foundation."""
    parts = module.split(".")
    if parts[0] != "synergy_dagster":
        return None
    if len(parts) == 1:  # `import synergy_dagster` (for __version__): the lazy __init__ imports nothing
        return "foundation"
    if parts[1] == "__init__":
        return "entry"
    if parts[1] == "cli":
        return "cli"
    if (PKG / parts[1]).is_dir() and parts[1] not in FOUNDATION_PACKAGES:
        return parts[1]
    return "foundation"


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        yield ".".join(rel.parts), path


def imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "synergy_dagster":  # `from synergy_dagster import models`: the names are modules
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}"
            else:
                yield node.lineno, base


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(PKG.parent)}:{line}"


def test_every_module_is_in_a_known_layer() -> None:
    unknown = {layer_of(m) for m, _ in modules()} - set(ALLOWED)
    assert not unknown, f"new top-level folder(s) {unknown}: give them a place in ALLOWED and the README"


def test_layers_import_only_earlier_layers() -> None:
    bad = []
    for module, path in modules():
        src = layer_of(module)
        for line, name in imports(module, path):
            dst = layer_of(name)
            if dst is None or dst == src or dst in ALLOWED[src]:
                continue
            if any(src == s and (name == m or name.startswith(m + ".")) for s, m in EXCEPTIONS):
                continue
            bad.append(f"{where(path, line)}: {src} imports {name} ({dst})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_the_exceptions_stay_leaves() -> None:
    # An allowed back edge is harmless only while its target depends on nothing but the foundation.
    for _, target in EXCEPTIONS:
        path = PKG.parent / (target.replace(".", "/") + ".py")
        deps = {n for _, n in imports(target, path) if layer_of(n) not in (None, "foundation")}
        assert not deps, f"{target} is allowed to be imported against the layer order but imports {deps}"


def test_only_the_dagster_layer_imports_dagster() -> None:
    bad = [
        f"{where(path, line)}: {name}"
        for module, path in modules()
        if layer_of(module) not in DAGSTER_LAYERS
        for line, name in imports(module, path)
        if name.split(".")[0] == "dagster" or name.startswith("dagster_")
    ]
    assert not bad, "Dagster imported outside defs/ and cli.py:\n" + "\n".join(bad)


def test_data_layers_do_not_import_torch() -> None:
    bad = [
        f"{where(path, line)}: {name}"
        for module, path in modules()
        if layer_of(module) in NO_TORCH
        for line, name in imports(module, path)
        if name.split(".")[0] == "torch"
    ]
    assert not bad, "torch imported by a data layer (only models, evaluation and defs use it):\n" + "\n".join(
        bad
    )


def test_the_checker_sees_imports() -> None:
    # Guard against a checker that silently finds nothing (e.g. a wrong package path).
    found = {n for m, path in modules() if layer_of(m) == "models" for _, n in imports(m, path)}
    assert "synergy_dagster.models.lstm" in found and "torch" in found and "synergy_dagster.errors" in found
    assert layer_of("synergy_dagster.sources.virtual.conus") == "sources"
    assert layer_of("synergy_dagster.config") == "foundation"
