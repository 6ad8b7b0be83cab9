"""The experiment plan on a hand-built hierarchy: set membership by set algebra, thresholds,
size control, de-duplicated training and serialisation."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from synergy_dagster.config import PlanConfig
from synergy_dagster.errors import InputError
from synergy_dagster.experiments.plan import Plan, build_plan, sites_hash
from synergy_dagster.experiments.size_control import pick_added
from synergy_dagster.regions.subregions import subregions_of
from synergy_dagster.study_file import STUDIES_DIR, load_study

# l3 code -> number of sites. Level I 8 (8.1, 8.3), 9 (9.2, 9.4), 10 (10.1).
LAYOUT = {"8.1.1": 4, "8.1.2": 3, "8.3.5": 5, "8.3.4": 2, "9.2.3": 4, "9.4.2": 2, "10.1.5": 3}
CFG = PlanConfig(min_sites_subregion=4, min_sites_roi=3, size_control_seed=0)


def make_tagged() -> pd.DataFrame:
    rows = []
    for l3, n in LAYOUT.items():
        l1, b, _ = l3.split(".")
        rows += [
            {"site_id": f"s{l3.replace('.', '')}_{i}", "l1": l1, "l2": f"{l1}.{b}", "l3": l3}
            for i in range(n)
        ]
    df = pd.DataFrame(rows)
    df["subregion"] = subregions_of(df["l1"], df["l2"])
    return df


TAGGED = make_tagged()


def ids_where(mask: pd.Series) -> set[str]:
    return set(TAGGED.loc[mask, "site_id"])


def sets_by_key(plan: Plan) -> dict[str, set[str]]:
    return {k: set(v) for k, v in zip(plan.sets["key"], plan.sets["site_ids"], strict=True)}


def test_global_and_local_sets_with_threshold() -> None:
    plan = build_plan(TAGGED, "soil_moisture", CFG)
    sets = sets_by_key(plan)
    assert sets["global:CONUS"] == set(TAGGED["site_id"])
    # D = 8.1 (7 sites), F = 8.3 (7), I = 9.2 (4) reach N = 4; K = 9.4 (2) and M = 10.1 (3) do not
    local_keys = [k for k in plan.sets["key"] if k.startswith("local:") and k[6:].isalpha()]
    assert local_keys == ["local:D", "local:F", "local:I"]
    assert sets["local:D"] == ids_where(TAGGED["l2"] == "8.1")
    assert sets["local:F"] == ids_where(TAGGED["l2"] == "8.3")
    ex = plan.excluded[plan.excluded["experiment"] == "global_vs_local"].set_index("region")
    assert ex.loc["K", "n_sites"] == 2 and "min_sites_subregion=4" in ex.loc["K", "reason"]
    assert ex.loc["M", "n_sites"] == 3
    assert ex.loc["A", "reason"] == "no sites"
    assert len(ex) == 18 - 3
    gvl = plan.evaluations[plan.evaluations["experiment"] == "global_vs_local"]
    assert len(gvl) == 2 * 3
    for _, row in gvl.iterrows():
        assert set(row["eval_site_ids"]) == sets[f"local:{row['region']}"]
        assert row["model_key"] == (
            "global:CONUS" if row["scenario"] == "global" else f"local:{row['region']}"
        )


def test_close_far_dissimilar_membership() -> None:
    plan = build_plan(TAGGED, "soil_moisture", CFG)
    sets = sets_by_key(plan)
    assert plan.rois == ("8.1.1", "8.1.2", "8.3.5", "9.2.3", "10.1.5")  # >= 3 sites, numeric order
    roi = ids_where(TAGGED["l3"] == "8.3.5")
    l2 = ids_where(TAGGED["l2"] == "8.3")
    l1 = ids_where(TAGGED["l1"] == "8")
    everything = set(TAGGED["site_id"])
    assert sets["local:8.3.5"] == roi
    assert sets["local+close:8.3.5"] == l2
    assert sets["local+far:8.3.5"] == roi | (l1 - l2)
    assert sets["local+dissimilar:8.3.5"] == roi | (everything - l1)
    assert roi <= sets["local+far:8.3.5"] and not (sets["local+far:8.3.5"] & (l2 - roi))
    # 9.2.3 is alone in 9.2: close adds nothing and is skipped, far/dissimilar exist
    assert "local+close:9.2.3" not in sets
    assert sets["local+far:9.2.3"] == ids_where(TAGGED["l1"] == "9")
    # 10.1.5 is alone in Level I 10: only the dissimilar set adds sites
    assert "local+far:10.1.5" not in sets and "local+dissimilar:10.1.5" in sets
    ex = plan.excluded
    skipped = set(zip(ex["region"], ex["scenario"], strict=True))
    assert {("9.2.3", "local+close"), ("10.1.5", "local+close"), ("10.1.5", "local+far")} <= skipped
    assert ("9.2.3", "local+close_sized") in skipped  # no size control when one set adds nothing
    sim = plan.evaluations[
        (plan.evaluations["experiment"] == "similarity") & (plan.evaluations["region"] == "8.3.5")
    ]
    assert sim["scenario"].tolist() == ["local", "local+close", "local+far", "local+dissimilar"]
    assert all(set(e) == roi for e in sim["eval_site_ids"])


def test_size_control_equal_added_counts_and_roi_kept() -> None:
    plan = build_plan(TAGGED, "soil_moisture", CFG)
    sets = sets_by_key(plan)
    for roi in ("8.3.5", "8.1.1"):
        local = sets[f"local:{roi}"]
        added = [sets[f"{s}_sized:{roi}"] - local for s in ("local+close", "local+far", "local+dissimilar")]
        k = min(len(sets[f"{s}:{roi}"] - local) for s in ("local+close", "local+far", "local+dissimilar"))
        assert [len(a) for a in added] == [k, k, k]
        for s, a in zip(("local+close", "local+far", "local+dissimilar"), added, strict=True):
            assert local <= sets[f"{s}_sized:{roi}"]
            assert a <= sets[f"{s}:{roi}"] - local  # picks come from that scenario's candidates
    assert len(sets["local+far_sized:8.3.5"] - sets["local:8.3.5"]) == 2  # k = |8.3.4| = 2
    rules = plan.sets.set_index("key")["added_rule"]
    assert "added 2 of 7 candidate sites" in rules["local+far_sized:8.3.5"]
    assert pd.isna(rules["local+far:8.3.5"])
    sized_eval = plan.evaluations[plan.evaluations["experiment"] == "similarity_sized"]
    assert set(sized_eval["region"]) == {"8.1.1", "8.1.2", "8.3.5"}
    none = build_plan(TAGGED, "streamflow", CFG, size_controlled=False)
    assert not none.sets["scenario"].str.endswith("_sized").any()


def test_size_control_is_deterministic_and_seeded() -> None:
    a = build_plan(TAGGED, "soil_moisture", CFG)
    b = build_plan(TAGGED.sample(frac=1.0, random_state=3), "soil_moisture", CFG)
    pd.testing.assert_frame_equal(a.sets, b.sets)
    draws = {
        build_plan(TAGGED, "soil_moisture", PlanConfig(4, 3, 0.9, seed)).sites_of(
            "local+dissimilar_sized:8.3.5"
        )
        for seed in range(5)
    }
    assert len(draws) > 1
    pool = [f"c{i:03d}" for i in range(60)]
    assert pick_added(pool, 10, 0, "8.3.5") == pick_added(list(reversed(pool)), 10, 0, "8.3.5")
    assert pick_added(pool, 10, 0, "8.3.5") != pick_added(pool, 10, 1, "8.3.5")
    assert pick_added(pool, 10, 0, "8.3.5") != pick_added(pool, 10, 0, "9.4.2")
    assert len(set(pick_added(pool, 10, 0, "8.3.5"))) == 10
    assert pick_added(pool, 60, 7, "x") == tuple(pool)
    with pytest.raises(InputError):
        pick_added(pool, 61, 0, "x")


def test_identical_site_lists_are_trained_once() -> None:
    plan = build_plan(TAGGED, "soil_moisture", CFG)
    s = plan.sets.set_index("key")
    # 8.3.5's whole Level II region is sub-region F: same sites, trained once as local:F
    assert s.loc["local+close:8.3.5", "sites_hash"] == s.loc["local:F", "sites_hash"]
    assert s.loc["local+close:8.3.5", "trained_as"] == "local:F"
    # the sized close set takes all 2 close candidates (k = 2): identical to local+close
    assert s.loc["local+close_sized:8.3.5", "trained_as"] == "local:F"
    assert s.loc["local:F", "trained_as"] == "local:F"
    ev = plan.evaluations.set_index(["experiment", "region", "scenario"])
    assert ev.loc[("similarity", "8.3.5", "local+close"), "model_key"] == "local:F"
    assert ev.loc[("similarity", "8.3.5", "local+close"), "set_key"] == "local+close:8.3.5"
    assert len(plan.training_keys) == plan.sets["sites_hash"].nunique()
    assert "local+close:8.3.5" not in plan.training_keys
    for key, h in zip(plan.sets["key"], plan.sets["sites_hash"], strict=True):
        assert h == sites_hash(plan.sites_of(key))


def test_keys_columns_and_periods() -> None:
    periods = load_study(STUDIES_DIR / "virtual.yaml").periods("soil_moisture")
    plan = build_plan(TAGGED, "soil_moisture", CFG, periods=periods)
    assert plan.sets["key"].is_unique
    assert (plan.sets["key"] == plan.sets["scenario"] + ":" + plan.sets["region"]).all()
    assert set(plan.sets["scenario"]) == {
        "global",
        "local",
        "local+close",
        "local+far",
        "local+dissimilar",
        "local+close_sized",
        "local+far_sized",
        "local+dissimilar_sized",
    }
    assert (plan.sets["n_sites"] == plan.sets["site_ids"].map(len)).all()
    assert all(list(ids) == sorted(ids) for ids in plan.sets["site_ids"])
    assert set(plan.sets["experiment"]) == {"global_vs_local", "similarity"}
    assert (plan.sets["train_period"] == "2015-04-01/2016-03-31").all()
    assert (plan.sets["test_period"] == "2016-04-01/2017-03-31").all()
    assert (plan.sets["domain"] == "soil_moisture").all()


def test_preferred_rois() -> None:
    plan = build_plan(TAGGED, "streamflow", CFG, rois_preferred=["8.3.5", "9.4.2", "5.3.1"])
    assert plan.rois == ("8.3.5",)
    ex = plan.excluded[plan.excluded["experiment"] == "similarity"].set_index("region")
    assert ex.loc["9.4.2", "n_sites"] == 2 and ex.loc["5.3.1", "n_sites"] == 0
    assert not any(k.endswith(":9.2.3") for k in plan.sets["key"])
    fallback = build_plan(TAGGED, "streamflow", CFG, rois_preferred=["9.4.2"])
    assert fallback.rois == ("8.1.1", "8.1.2", "8.3.5", "9.2.3", "10.1.5")


def test_json_round_trip() -> None:
    plan = build_plan(
        TAGGED,
        "soil_moisture",
        CFG,
        periods=load_study(STUDIES_DIR / "virtual.yaml").periods("soil_moisture"),
    )
    back = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    pd.testing.assert_frame_equal(back.sets, plan.sets)
    pd.testing.assert_frame_equal(back.evaluations, plan.evaluations)
    pd.testing.assert_frame_equal(back.excluded, plan.excluded)
    assert back.config == plan.config and back.rois == plan.rois and back.domain == plan.domain
    with pytest.raises(InputError, match="serialised plan"):
        Plan.from_dict({"domain": "streamflow"})


def test_bad_input_is_named() -> None:
    with pytest.raises(InputError, match="subregion"):
        build_plan(TAGGED.drop(columns="subregion"), "soil_moisture", CFG)
    with pytest.raises(InputError, match="duplicate"):
        build_plan(pd.concat([TAGGED, TAGGED.iloc[:1]]), "soil_moisture", CFG)
    with pytest.raises(InputError, match="domain"):
        build_plan(TAGGED, "snow", CFG)
