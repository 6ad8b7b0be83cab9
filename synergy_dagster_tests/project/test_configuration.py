"""One study, one configuration: the schema is the only model of a setting, and every way of
setting a key (file, preset, override from the CLI, the environment or run config) resolves the same.

Each test here guards a drift that the four copies of a setting (config dataclasses, study-file
schema, resource fields, training specs) once had.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from synergy_dagster.config import (
    BUDGET_MODES,
    RECORDED_BEFORE,
    Budget,
    DomainWindow,
    Period,
    Recipe,
    Training,
    ValidationSplit,
    settings_record,
)
from synergy_dagster.errors import ConfigError
from synergy_dagster.models.fingerprint import reuse_fingerprint
from synergy_dagster.presets import preset_names
from synergy_dagster.study_file import STUDIES_DIR, StudyFile, load_study, preset_profile

ROOT = Path(__file__).resolve().parents[2]
VIRTUAL = STUDIES_DIR / "virtual.yaml"


def _other(value: Any, annotation: Any) -> Any:
    """A valid value of the same type that differs from ``value`` (for a setting at ``value``)."""
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        return choices[(choices.index(value) + 1) % len(choices)]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int) or value is None:
        return (value or 0) + 1
    if isinstance(value, float):
        return (value + 1) / 2 if value < 1 else value + 1
    raise AssertionError(f"no rule for {value!r}")


def _leaves() -> list[tuple[str, str, type, str]]:
    """(dotted key, attribute, settings class, domain) for every training setting of a study."""
    out = [(f"training.{k}", k, Training, "") for k in Training.model_fields]
    out += [(f"budget.{k}", k, Budget, "") for k in Budget.model_fields]
    for d in ("soil_moisture", "streamflow"):
        window = [k for k in DomainWindow.model_fields if k != "validation"]  # a block: its own leaves
        out += [(f"domains.{d}.training.{k}", k, DomainWindow, d) for k in window]
        split = ValidationSplit.model_fields
        out += [(f"domains.{d}.training.validation.{k}", k, ValidationSplit, d) for k in split]
        out += [(f"domains.{d}.recipe.{k}", k, Recipe, d) for k in Recipe.model_fields]
    return out


@pytest.mark.parametrize(("key", "attr", "cls", "domain"), _leaves(), ids=lambda v: str(v))
def test_every_training_setting_is_a_study_key_and_reaches_the_models(
    key: str, attr: str, cls: type, domain: str
) -> None:
    """Set through an override, each key of the schema arrives in the trained-with profile (the
    budget once had no ``smooth`` in the file and no ``min_updates`` in the resource)."""
    base = load_study(VIRTUAL, overrides=["profile=cpu"]).training_profile()

    def read(profile: Any) -> Any:
        if cls is Budget:
            return getattr(profile.budget, attr)
        if cls is Recipe:
            return getattr(profile.for_domain(domain).recipe, attr)
        if cls is DomainWindow:
            return getattr(profile.for_domain(domain), attr)
        if cls is ValidationSplit:
            return getattr(profile.for_domain(domain).validation, attr)
        return getattr(profile, attr)

    value = _other(read(base), cls.model_fields[attr].annotation)
    got = load_study(VIRTUAL, overrides=["profile=cpu", f"{key}={json.dumps(value)}"]).training_profile()
    assert read(got) == value


def test_a_key_in_the_file_and_the_same_override_resolve_to_the_same_study(tmp_path: Path) -> None:
    raw = yaml.safe_load(VIRTUAL.read_text())
    raw["budget"] = {"max_updates": 800, "smooth": 3}
    raw["statistics"] = {"wilcoxon_method": "exact"}
    raw["data_dir"] = str(ROOT / "data")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    from_file = load_study(path)
    overrides = ["budget.max_updates=800", "budget.smooth=3", "statistics.wilcoxon_method=exact"]
    from_overrides = load_study(VIRTUAL, overrides=overrides)
    assert from_file.model_dump() == from_overrides.model_dump()
    assert from_overrides.overrides == tuple(overrides) and from_file.overrides == ()


def test_a_later_override_wins_and_the_file_wins_over_its_preset() -> None:
    study = load_study(VIRTUAL, overrides=["seeds=[0, 1]", "seeds=[3]"])
    assert study.seeds == (3,)
    # the study's own keys over the preset's, key by key: the cpu preset's recipe stays but lr
    study = load_study(VIRTUAL, overrides=["profile=cpu", "domains.streamflow.recipe.lr=0.01"])
    recipe = study.training_profile().for_domain("streamflow").recipe
    assert recipe.lr == 0.01 and recipe.optimizer == "adamw" and recipe.loss == "nse"


def test_presets_are_written_in_the_schema_and_refuse_unknown_keys(tmp_path: Path) -> None:
    assert preset_names() == ["cpu", "demo", "paper"]
    for name in preset_names():
        profile = preset_profile(name)
        assert profile.name == name and set(profile.domains) == {"soil_moisture", "streamflow"}
    with pytest.raises(ConfigError, match=r"budget\.smoth: unknown key"):
        load_study(VIRTUAL, overrides=["budget.smoth=3"])


def test_fingerprints_are_byte_stable_for_models_trained_before_the_schema() -> None:
    """The reuse fingerprint of every preset, byte for byte as the code before this schema wrote
    it (commit a2415d2): existing trained models are still reused."""
    lines = (Path(__file__).parents[1] / "data" / "fingerprints_v1.jsonl").read_text().splitlines()
    assert len(lines) == 6
    for line in lines:
        case = json.loads(line)
        profile = preset_profile(case["preset"])
        got = reuse_fingerprint(
            profile,
            case["domain"],
            profile.budget.for_domain(case["domain"]),
            n_in=7,
            inputs=["a", "b"],
            normalizer={"method": "x"},
            train=Period("2001-01-01", "2002-01-01"),
            validation="held out",
        )
        assert got == case["config_json"], (case["preset"], case["domain"])


def test_a_setting_added_later_is_recorded_only_off_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    class Later(Recipe):
        new_knob: float = 0.0

    monkeypatch.setitem(RECORDED_BEFORE, "Later", RECORDED_BEFORE["Recipe"])
    assert settings_record(Later()) == settings_record(Recipe())
    assert settings_record(Later(new_knob=0.5)) == {**settings_record(Recipe()), "new_knob": 0.5}
    # a setting that does not shape the weights is never recorded, whatever its value
    assert "checkpoint_every" not in settings_record(Training(checkpoint_every=3))
    # every setting that shapes the weights changes the fingerprint
    base = preset_profile("cpu")
    kwargs: dict[str, Any] = dict(
        n_in=7, inputs=["a"], normalizer={}, train=Period("2001-01-01", "2002-01-01"), validation="v"
    )
    first = reuse_fingerprint(base, "streamflow", base.budget, **kwargs)
    for changed in (
        base.replace(hidden=65),
        base.replace(domains={**base.domains, "streamflow": base.domains["streamflow"].replace(batch=7)}),
        base.replace(
            domains={
                **base.domains,
                "streamflow": base.domains["streamflow"].with_recipe({"precision": "bf16"}),
            }
        ),
    ):
        assert reuse_fingerprint(changed, "streamflow", changed.budget, **kwargs) != first
    assert reuse_fingerprint(base, "streamflow", base.budget.replace(smooth=2), **kwargs) != first
    assert reuse_fingerprint(base, "streamflow", base.budget, **{**kwargs, "inputs": ["b"]}) != first


def test_the_seeds_rule_is_checked_in_one_place() -> None:
    sources = [p.read_text() for p in (ROOT / "synergy_dagster").rglob("*.py")]
    assert sum("seeds must be distinct integers" in s for s in sources) == 1  # one module holds it
    from synergy_dagster.config import Profile, check_seeds

    for field in (StudyFile.model_fields["seeds"], Profile.model_fields["seeds"]):  # both use it
        assert any(getattr(m, "func", None) is check_seeds for m in field.metadata)
    with pytest.raises(ConfigError, match=r"seeds: seeds must be distinct"):
        load_study(VIRTUAL, overrides=["seeds=[1, 1]"])


def test_cli_choices_come_from_the_schema() -> None:
    from synergy_dagster.cli import _parse, _resource_config

    for mode in BUDGET_MODES:
        assert _parse(["study", "--budget", mode]).budget == mode
    for name in preset_names():
        assert _parse(["study", "--profile", name]).profile == name
    args = _parse(["study", "--profile", "cpu", "--domains", "streamflow", "--set", "budget.smooth=2"])
    overrides = _resource_config(args)["overrides"]
    assert overrides[-3:] == ["profile=cpu", "run.domains=[streamflow]", "budget.smooth=2"]
    with pytest.raises(ConfigError, match="expected <dotted key>=<value>"):
        _resource_config(_parse(["study", "--set", "budget.smooth"]))


def test_statistics_are_read_from_the_resolved_study_only() -> None:
    """No asset reads a study setting but through ``study.spec`` (``scheme_comparison`` once read
    the file's Wilcoxon method while ``significance`` honoured an environment variable)."""
    defs_dir = ROOT / "synergy_dagster" / "defs"
    for path in defs_dir.rglob("*.py"):
        text = path.read_text()
        assert "load_study(" not in text and "resolve_study(" not in text or path.name == "resources.py", path
        assert not re.search(r"\bStatisticsSpec\(", text), path


def test_the_schema_is_the_only_model_of_a_study() -> None:
    """The study file's blocks are the science's own settings classes (no twin)."""
    fields = StudyFile.model_fields
    assert fields["budget"].annotation is Budget and fields["training"].annotation is Training
    from synergy_dagster.config import PlanConfig
    from synergy_dagster.study_file import DomainSpec

    assert fields["thresholds"].annotation is PlanConfig
    assert DomainSpec.model_fields["recipe"].annotation is Recipe
    assert DomainSpec.model_fields["training"].annotation is DomainWindow


def test_every_environment_variable_the_package_reads_is_in_the_operations_table() -> None:
    """Deployment variables only, all in one table (docs/operations.md); study settings go through
    the one override variable."""
    read = set()
    for path in (ROOT / "synergy_dagster").rglob("*.py"):
        read |= set(
            re.findall(r"env_(?:str|int|float|bool|list)\(\s*\"(SYNERGY_[A-Z0-9_]+)\"", path.read_text())
        )
        read |= set(re.findall(r"os\.environ(?:\.get)?\(?\[?\s*\"(SYNERGY_[A-Z0-9_]+)\"", path.read_text()))
    assert {"SYNERGY_STUDY", "SYNERGY_DATA_DIR", "SYNERGY_STORE"} <= read  # the scan sees them
    table = (ROOT / "docs" / "operations.md").read_text()
    rows = set(re.findall(r"^\|\s*`(SYNERGY_[A-Z0-9_]+)`", table, flags=re.M))
    assert "SYNERGY_OVERRIDES" in rows
    assert read - rows == set(), f"read by the package but not in docs/operations.md: {sorted(read - rows)}"
    # and no study setting has an environment variable of its own any more
    retired = {"SYNERGY_PROFILE", "SYNERGY_EPOCHS", "SYNERGY_SEEDS", "SYNERGY_MIN_SITES", "SYNERGY_BUDGET"}
    assert not read & retired


def test_a_class_without_a_recorded_past_records_every_setting_that_shapes_the_weights() -> None:
    """Outside ``RECORDED_BEFORE`` every field counts, nested settings as JSON mappings, and a
    field that does not shape the weights is skipped wherever it stands."""
    from synergy_dagster.config import DomainTraining

    assert "DomainTraining" not in RECORDED_BEFORE
    record = settings_record(DomainTraining(30, 8, 5, validation_days=10, recipe=Recipe(lr=0.5)))
    assert set(record) == {"rho", "batch", "recipe"}  # warmup and validation_days: affects_model False
    assert record["recipe"] == Recipe(lr=0.5).model_dump()
    assert json.loads(json.dumps(record)) == record
