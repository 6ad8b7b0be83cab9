"""``make mutate`` (scripts/mutate.py): every target names a module, test files and functions that
exist (a renamed module or test would otherwise make the mutation run fail after minutes), and the
mutmut settings it writes into the throw-away copy are valid TOML with the target's selection."""

from __future__ import annotations

import ast
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate_script", ROOT / "scripts" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


MUTATE = _script()


def _function_names(path: Path) -> set[str]:
    """mutmut's mangled names of the functions and methods of a module."""
    tree = ast.parse(path.read_text())
    names = {f"x_{n.name}" for n in tree.body if isinstance(n, ast.FunctionDef)}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        names |= {f"xǁ{cls.name}ǁ{f.name}" for f in cls.body if isinstance(f, ast.FunctionDef)}
    return names


@pytest.mark.parametrize("target", MUTATE.TARGETS, ids=lambda t: t.name)
def test_targets_name_what_exists(target: Any) -> None:  # the script's Target
    assert (ROOT / target.path).is_file(), target.path
    for test in target.tests:
        assert (ROOT / "synergy_dagster_tests" / test).is_file(), test
    missing = set(target.functions) - _function_names(ROOT / target.path)
    assert not missing, f"{target.path} has no function(s) {sorted(missing)}"


def test_settings_select_the_target(tmp_path: Path) -> None:
    mutate = MUTATE
    target = next(t for t in mutate.TARGETS if t.name == "stopping")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    mutate._configure(tmp_path, target)
    cfg = tomllib.loads((tmp_path / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert cfg["only_mutate"] == ["synergy_dagster/models/training.py"]
    assert cfg["pytest_add_cli_args_test_selection"] == ["synergy_dagster_tests/models/test_budget.py"]
    assert cfg["pytest_add_cli_args"][:2] == ["-m", mutate.FAST] and "not slow" in mutate.FAST
    assert target.mutant_globs()[0] == "synergy_dagster.models.training.x_judge_check__mutmut_*"
    with pytest.raises(SystemExit) as exit_:
        mutate.main(["nowhere"])  # an unknown target is a usage error (argparse exits 2)
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        mutate.main(["report", "--recheck"])  # re-running survivors needs the kept run's folder
    assert exit_.value.code == 2
    with pytest.raises(SystemExit, match="no earlier run of report kept in"):
        mutate.main(["report", "--recheck", "--keep", str(tmp_path / "none")])
