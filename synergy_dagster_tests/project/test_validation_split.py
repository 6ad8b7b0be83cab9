"""The validation-split setting (``domains.<d>.training.validation``): bad values are refused by
their dotted key, and each preset's default is the documented one (docs/user-guide.md)."""

from __future__ import annotations

import pytest

from synergy_dagster.config import DomainWindow, ValidationSplit, settings_record
from synergy_dagster.errors import ConfigError
from synergy_dagster.study_file import STUDIES_DIR, load_study, preset_profile

VIRTUAL = STUDIES_DIR / "virtual.yaml"
KEY = "domains.soil_moisture.training.validation"


@pytest.mark.parametrize(
    ("overrides", "named", "problem"),
    [
        ([f"{KEY}.block_days=0"], f"{KEY}.block_days", "must be an integer >= 1"),
        ([f"{KEY}.split=blocks", f"{KEY}.block_days=62"], f"{KEY}.block_days", "longer than the 61"),
        ([f"{KEY}.split=weekly"], f"{KEY}.split", "'tail' or 'blocks'"),
        ([f"{KEY}.split=blocks", "domains.soil_moisture.training.validation_days=0"], f"{KEY}.split", "> 0"),
        ([f"{KEY}.blocks=3"], f"{KEY}.blocks", "unknown key"),
    ],
)
def test_a_bad_validation_split_is_named_by_its_key(overrides: list[str], named: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_study(VIRTUAL, overrides=["profile=cpu", *overrides])
    assert f"{named}: " in str(err.value) and problem in str(err.value)


def test_constructed_in_code_a_bad_value_names_the_setting() -> None:
    with pytest.raises(ConfigError) as err:
        ValidationSplit(split="blocks", block_days=-1)
    assert err.value.source == "validation.block_days"
    with pytest.raises(ConfigError) as err:
        DomainWindow(30, 8, 0, 4, validation=ValidationSplit(split="blocks", block_days=5))
    assert err.value.source == "training.validation.block_days"


def test_each_preset_has_its_documented_split_and_tail_is_never_recorded() -> None:
    expected = {
        ("demo", "soil_moisture"): "tail",
        ("demo", "streamflow"): "tail",
        ("cpu", "soil_moisture"): "blocks",
        ("cpu", "streamflow"): "tail",
        ("paper", "soil_moisture"): "tail",
        ("paper", "streamflow"): "tail",
    }
    for (preset, domain), split in expected.items():
        dom = preset_profile(preset).for_domain(domain)
        assert dom.validation.split == split, (preset, domain)
        # the split is recorded by the validation period's label only, never as a setting
        assert "validation" not in settings_record(dom, DomainWindow)
    # a study's own key wins over the preset's, key by key
    study = load_study(VIRTUAL, overrides=["profile=cpu", f"{KEY}.block_days=10"])
    dom = study.training_profile().for_domain("soil_moisture")
    assert (dom.validation.split, dom.validation.block_days) == ("blocks", 10)
