"""USGS approval status and qualifiers in a study: the flag bits, the study setting, the masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synergy_dagster.config import Period
from synergy_dagster.errors import ConfigError
from synergy_dagster.evaluation.study import evaluate_domain
from synergy_dagster.sources.sitedata import make_site_dataset, validate_site_dataset
from synergy_dagster.sources.usgs_flags import (
    ESTIMATED,
    FLAG_VAR,
    LANDED,
    NOT_APPROVED,
    QUALIFIED,
    flag_counts,
    row_flags,
    with_flags,
)
from synergy_dagster.sources.usgs_masks import evaluation_view, training_view
from synergy_dagster.sources.usgs_spec import UsgsSpec
from synergy_dagster.study_file import load_study

SITES = ["camels_01022500", "camels_01031500"]
DAYS = pd.date_range("2009-10-01", periods=20, freq="D")
TRAIN = Period(start="2009-10-01", end="2009-10-10")
TEST = Period(start="2009-10-11", end="2009-10-20")


def test_flag_bits_follow_status_and_qualifiers() -> None:
    ledger = pd.DataFrame(
        {
            "approval_status": ["Approved", "Provisional", "", "A", "approved", None],
            "qualifier": ["", "E", "ESTIMATED", "ICE", "E,EQUIP", None],
        }
    )
    assert row_flags(ledger).tolist() == [
        LANDED,
        LANDED | NOT_APPROVED | ESTIMATED,
        LANDED | NOT_APPROVED | ESTIMATED,  # a landed file without a status is not approved
        LANDED | QUALIFIED,  # the legacy RDB code 'A'
        LANDED | ESTIMATED | QUALIFIED,
        LANDED | NOT_APPROVED,
    ]
    # an older ledger (landed CSV/RDB files) has no status columns: landed, not approved
    assert row_flags(pd.DataFrame({"site_id": ["x"]})).tolist() == [LANDED | NOT_APPROVED]


def _flagged() -> object:
    """Two sites, 20 days, q = 1 mm/d everywhere; flags from a ledger on four days of site 0."""
    ds = make_site_dataset(
        domain="streamflow", source="test", site_ids=SITES, time=DAYS, lat=np.full(2, 44.0),
        lon=np.full(2, -69.0), target=("streamflow", np.ones((2, 20)), "mm/d"),
        dynamic={"prcp": (np.ones((2, 20)), "mm/d")},
    )  # fmt: skip
    ledger = pd.DataFrame(
        {
            "site_id": [SITES[0]] * 4 + ["gone_site"],
            "date": pd.to_datetime(["2009-10-03", "2009-10-05", "2009-10-12", "2009-10-14", "2009-10-12"]),
            "approval_status": ["Approved", "Provisional", "Provisional", "Approved", "Provisional"],
            "qualifier": ["E", "ICE", "E", "", ""],
        }
    )
    return with_flags(ds, ledger)


def test_flags_rebuilt_from_the_ledger_and_counted() -> None:
    ds = _flagged()
    validate_site_dataset(ds, "test")  # a flag variable keeps the contract
    flags = ds[FLAG_VAR].sel(site=SITES[0]).to_series()
    assert (
        flags["2009-10-03"] == LANDED | ESTIMATED and flags["2009-10-12"] == LANDED | NOT_APPROVED | ESTIMATED
    )
    assert float(ds[FLAG_VAR].sel(site=SITES[1]).sum()) == 0  # archive days; unknown sites ignored
    assert flag_counts(ds) == {"landed": 4, "not_approved": 2, "estimated": 2, "qualified": 1}


def test_training_mask_leaves_out_estimated_and_qualified_days_of_the_train_period_only() -> None:
    ds = _flagged()
    same, n = training_view(ds, UsgsSpec(), TRAIN)
    assert n == 0 and same is ds
    out, n = training_view(ds, UsgsSpec(train="exclude_estimated"), TRAIN)
    q = out["streamflow"].sel(site=SITES[0]).to_series()
    assert n == 2 and np.isnan(q["2009-10-03"]) and np.isnan(q["2009-10-05"])
    assert q["2009-10-12"] == 1.0  # estimated, but a test day: not the training mask's business
    assert int(np.isnan(out["streamflow"].values).sum()) == 2
    assert np.array_equal(out["prcp"].values, ds["prcp"].values)  # inputs untouched
    assert np.isfinite(ds["streamflow"].values).all()  # the dataset read is not changed in place


def test_evaluation_mask_scores_approved_days_of_the_test_period_only() -> None:
    ds = _flagged()
    assert evaluation_view(ds, UsgsSpec(), TEST)[1] == 0
    out, n = evaluation_view(ds, UsgsSpec(evaluate="approved"), TEST)
    q = out["streamflow"].sel(site=SITES[0]).to_series()
    assert n == 1 and np.isnan(q["2009-10-12"]) and q["2009-10-14"] == 1.0
    assert q["2009-10-05"] == 1.0  # provisional, but a training day
    # The scores then count one day fewer at that site, none fewer at the other.
    evaluations = pd.DataFrame(
        {
            "experiment": ["e"],
            "region": ["r"],
            "scenario": ["global"],
            "model_key": ["global:CONUS"],
            "eval_site_ids": [SITES],
        }
    )
    sim = {0: np.full((2, 10), 1.1, dtype=np.float32)}
    preds = {"global:CONUS": (SITES, sim)}
    rows = [
        evaluate_domain(d, evaluations, None, 0, TEST.slice, 0, predictions=preds)  # type: ignore[arg-type]
        for d in (ds, out)
    ]
    assert rows[0].loc[rows[0]["seed"] == "0", "n_days"].tolist() == [10, 10]
    assert rows[1].loc[rows[1]["seed"] == "0", "n_days"].tolist() == [9, 10]


def test_the_study_file_setting(tmp_path: Path) -> None:
    study = yaml.safe_load((Path(__file__).parents[1] / "studies" / "tiny.yaml").read_text())
    study["domains"]["streamflow"]["usgs"] = {"evaluate": "approved", "train": "exclude_estimated"}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    spec = load_study(path).domain("streamflow").usgs
    assert (spec.evaluate, spec.train) == ("approved", "exclude_estimated")
    study["domains"]["streamflow"]["usgs"] = {"evaluate": "approved_only"}
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(ConfigError, match=r"domains\.streamflow\.usgs\.evaluate"):
        load_study(path)
    with pytest.raises(ConfigError, match="usgs.train"):
        UsgsSpec(train="no_ice")
