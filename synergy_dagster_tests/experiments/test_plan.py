"""The experiment plan on a hand-built hierarchy: set membership by set algebra, thresholds,
size control, de-duplicated training and serialisation."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from synergy_dagster.config import PlanConfig
from synergy_dagster.errors import ConfigError, InputError
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


# --- every exclusion, evaluation and message of one plan, worked out by hand (issue 26) ------------


def test_every_exclusion_with_its_count_and_reason() -> None:
    from synergy_dagster.regions.subregions import LETTERS

    plan = build_plan(TAGGED, "soil_moisture", CFG)
    got = [tuple(r) for r in plan.excluded.itertuples(index=False)]
    n_of = {"K": 2, "M": 3}  # sub-regions below 4 sites; D, F and I are planned, the rest are empty
    gvl = [
        (
            "soil_moisture",
            "global_vs_local",
            letter,
            "local",
            n_of.get(letter, 0),
            f"{n_of[letter]} sites < min_sites_subregion=4" if letter in n_of else "no sites",
        )
        for letter in LETTERS
        if letter not in "DFI"
    ]
    # ROIs 9.2.3 and 10.1.5 are alone in their Level II region; 10.1.5 alone in its Level I region too
    sized = ("local+close_sized", "local+far_sized", "local+dissimilar_sized")
    sim = [
        ("soil_moisture", "similarity", "9.2.3", "local+close", 4, "adds no sites to the ROI"),
        *[
            (
                "soil_moisture",
                "similarity_sized",
                "9.2.3",
                s,
                4,
                "size control impossible: local+close adds no sites",
            )
            for s in sized
        ],
        ("soil_moisture", "similarity", "10.1.5", "local+close", 3, "adds no sites to the ROI"),
        ("soil_moisture", "similarity", "10.1.5", "local+far", 3, "adds no sites to the ROI"),
        *[
            (
                "soil_moisture",
                "similarity_sized",
                "10.1.5",
                s,
                3,
                "size control impossible: local+close, local+far adds no sites",
            )
            for s in sized
        ],
    ]
    assert got == gvl + sim
    assert plan.excluded["n_sites"].dtype == "int64" and plan.advice == ()
    # without size control no sized set or exclusion
    plain = build_plan(TAGGED, "soil_moisture", CFG, size_controlled=False)
    assert "similarity_sized" not in set(plain.excluded["experiment"]) | set(plain.evaluations["experiment"])
    assert not plain.sets["scenario"].str.endswith("_sized").any()


def test_every_evaluation_names_its_set_and_sites() -> None:
    plan = build_plan(TAGGED, "soil_moisture", CFG)
    ev = plan.evaluations
    assert list(ev.columns) == [
        "domain", "experiment", "region", "scenario", "set_key", "model_key", "eval_site_ids", "n_eval"
    ]  # fmt: skip
    assert (ev["domain"] == "soil_moisture").all() and ev["n_eval"].dtype == "int64"
    rows = {(r.experiment, r.region, r.scenario): r for r in ev.itertuples(index=False)}
    subs = {"D": TAGGED["l2"] == "8.1", "F": TAGGED["l2"] == "8.3", "I": TAGGED["l2"] == "9.2"}
    for letter, mask in subs.items():
        ids = tuple(sorted(ids_where(mask)))
        g, loc = rows[("global_vs_local", letter, "global")], rows[("global_vs_local", letter, "local")]
        assert (g.set_key, g.model_key, g.eval_site_ids, g.n_eval) == (
            "global:CONUS",
            "global:CONUS",
            ids,
            len(ids),
        )
        assert (loc.set_key, loc.eval_site_ids) == (f"local:{letter}", ids)
    expected_keys = (
        [
            ("similarity", roi, s)
            for roi in ("8.1.1", "8.1.2", "8.3.5")
            for s in ("local", "local+close", "local+far", "local+dissimilar")
        ]
        + [("similarity", "9.2.3", s) for s in ("local", "local+far", "local+dissimilar")]
        + [("similarity", "10.1.5", s) for s in ("local", "local+dissimilar")]
    )
    sized = [
        ("similarity_sized", roi, s)
        for roi in ("8.1.1", "8.1.2", "8.3.5")
        for s in ("local", "local+close_sized", "local+far_sized", "local+dissimilar_sized")
    ]
    assert sorted(k for k in rows if k[0] != "global_vs_local") == sorted(expected_keys + sized)
    for exp, roi, s in expected_keys + sized:
        r = rows[(exp, roi, s)]
        roi_ids = tuple(sorted(ids_where(TAGGED["l3"] == roi)))
        assert r.eval_site_ids == roi_ids and r.n_eval == len(roi_ids)  # every scenario is scored on the ROI
        assert r.set_key == (f"local:{roi}" if s == "local" else f"{s}:{roi}")
    # the sized sets record their draw; the others no rule
    s = plan.sets.set_index("key")
    assert s.loc["local+far_sized:8.1.1", "added_rule"].startswith("added 3 of 7 candidate sites: ")
    assert s.loc["local+far_sized:8.1.1", "n_sites"] == 4 + 3
    assert pd.isna(s.loc["local+far:8.1.1", "added_rule"]) and pd.isna(s.loc["global:CONUS", "added_rule"])
    assert (plan.sets["domain"] == "soil_moisture").all() and plan.sets["n_sites"].dtype == "int64"
    assert plan.rois == ("8.1.1", "8.1.2", "8.3.5", "9.2.3", "10.1.5")


def test_threshold_advice_and_the_plan_that_compares_nothing() -> None:
    from synergy_dagster.experiments.plan import threshold_advice

    roi_hint = (
        "no Level III region reaches min_sites_roi=6 (largest: 8.3.5 with 5 sites): lower min_sites_roi to 5 "
        "or less (study file `thresholds: {min_sites_roi: 5}`, or the override `thresholds.min_sites_roi=5`)"
    )
    plan = build_plan(TAGGED, "soil_moisture", CFG.model_copy(update={"min_sites_roi": 6}))
    assert threshold_advice(plan) == [roi_hint] and plan.rois == ()
    # one site fewer in F: D (7 sites) is the largest sub-region
    fewer = TAGGED[TAGGED["site_id"] != "s834_0"]
    sub_hint = (
        "no sub-region reaches min_sites_subregion=8 (largest: D with 7 sites): lower min_sites_subregion to 7 "
        "or less (study file `thresholds: {min_sites_subregion: 7}`, or the override `thresholds.min_sites_subregion=7`)"
    )
    plan = build_plan(fewer, "soil_moisture", CFG.model_copy(update={"min_sites_subregion": 8}))
    assert threshold_advice(plan) == [sub_hint]
    with pytest.raises(ConfigError) as err:
        build_plan(
            fewer, "soil_moisture", CFG.model_copy(update={"min_sites_subregion": 8, "min_sites_roi": 6})
        )
    assert str(err.value) == (
        "study thresholds [soil_moisture]: the plan would hold the global set only and compare nothing: "
        f"{sub_hint}; {roi_hint}"
    )
    # no site in any sub-region: no threshold helps; without the ecoregion sets no advice about them
    untagged = TAGGED.assign(subregion=None)
    plan = build_plan(untagged, "soil_moisture", CFG)
    assert threshold_advice(plan) == [
        "no site lies in any sub-region, so no threshold helps: check the sites' ecoregion tags"
    ]
    assert build_plan(untagged, "soil_moisture", CFG, ecoregions=False).advice == ()


def test_input_messages_are_exact() -> None:
    with pytest.raises(
        InputError,
        match=r"^tagged sites: missing columns \['l1', 'subregion'\]; have \['site_id', 'l2', 'l3'\]$",
    ):
        build_plan(TAGGED.drop(columns=["l1", "subregion"]), "soil_moisture", CFG)
    with pytest.raises(InputError, match=r"^tagged sites \[site_id\]: duplicate site ids: \['s811_0'\]$"):
        build_plan(pd.concat([TAGGED, TAGGED.iloc[:1]]), "soil_moisture", CFG)
    with pytest.raises(InputError, match=r"^tagged sites: no sites to plan with$"):
        build_plan(TAGGED.iloc[:0], "soil_moisture", CFG)
    with pytest.raises(
        InputError,
        match=r"^domain: unknown domain 'snow'; expected one of \('soil_moisture', 'streamflow'\)$",
    ):
        build_plan(TAGGED, "snow", CFG)
    plan = build_plan(TAGGED, "soil_moisture", CFG)
    with pytest.raises(InputError, match=r"^plan \[soil_moisture\]: no training set 'local:Z'$"):
        plan.sites_of("local:Z")
    with pytest.raises(InputError, match=r"^plan: not a serialised plan: KeyError\('sets'\)$"):
        Plan.from_dict({"domain": "streamflow"})
    # padded tags and numeric ids plan as their clean text
    padded = TAGGED.assign(l3=" " + TAGGED["l3"] + " ", l2=TAGGED["l2"] + " ", l1=" " + TAGGED["l1"])
    assert build_plan(padded, "soil_moisture", CFG).rois == plan.rois
    numeric = TAGGED.assign(site_id=range(len(TAGGED)))
    assert build_plan(numeric, "soil_moisture", CFG).sites_of("global:CONUS")[:3] == ("0", "1", "10")


def test_from_dict_defaults_of_an_older_plan() -> None:
    plan = build_plan(TAGGED, "soil_moisture", CFG.model_copy(update={"min_sites_roi": 6}))
    d = json.loads(json.dumps(plan.to_dict()))
    assert d["advice"] == list(plan.advice) and d["rois"] == [] and d["domain"] == "soil_moisture"
    assert plan.advice and Plan.from_dict(d).advice == plan.advice  # the advice travels
    assert list(Plan.from_dict({**d, "excluded": []}).excluded.columns) == list(plan.excluded.columns)
    for key in ("set_columns", "evaluation_columns", "advice"):
        del d[key]
    back = Plan.from_dict(d)
    assert back.advice == () and list(back.sets.columns) == list(plan.sets.columns)
    assert list(back.evaluations.columns) == list(plan.evaluations.columns)
    assert back.sets["n_sites"].dtype == "int64" and isinstance(back.sets["site_ids"].iloc[0], tuple)
    assert isinstance(back.evaluations["eval_site_ids"].iloc[0], tuple)


def test_partition_keys_parse_or_name_the_key() -> None:
    import re

    from synergy_dagster.experiments.plan import SCENARIOS, parse_set_key, set_key

    assert set_key("local+far", "8.3.5") == "local+far:8.3.5"
    assert parse_set_key("local+far:8.3.5") == ("local+far", "8.3.5")
    assert parse_set_key("global:CONUS") == ("global", "CONUS")
    assert parse_set_key("local@huc2:03") == ("local@huc2", "03")  # a further scheme's local set
    assert parse_set_key("curve+far@20_d1:8.3.5") == ("curve+far@20_d1", "8.3.5")  # a synergy-curve set
    assert parse_set_key("local:a:b") == ("local", "a:b")
    with pytest.raises(InputError, match="unknown scenario 'local@huc2@x'"):
        parse_set_key("local@huc2@x:A")  # the first "@" splits
    for key in ("global", "local:", "local: "):
        with pytest.raises(
            InputError,
            match=rf"^partition key \[{re.escape(key)}\]: '{re.escape(key)}' is not '<scenario>:<region>'$",
        ):
            parse_set_key(key)
    unknown = rf"unknown scenario '{{}}'; expected one of {re.escape(str(SCENARIOS))}$"
    for scenario in ("local+nearby", "local@", "local@Huc", "global@huc2", "remote@huc2", ""):
        with pytest.raises(
            InputError,
            match="^partition key \\["
            + re.escape(f"{scenario}:A")
            + r"\]: "
            + unknown.format(re.escape(scenario)),
        ):
            parse_set_key(f"{scenario}:A")
    with pytest.raises(
        InputError, match=r"^partition key \[global:A\]: the global set's region is 'CONUS', not 'A'$"
    ):
        parse_set_key("global:A")


def test_scheme_experiment_names_both_ways() -> None:
    from synergy_dagster.experiments.plan import scheme_experiment, scheme_of_experiment

    assert scheme_experiment("ecoregions") == "global_vs_local"
    assert scheme_experiment("huc2") == "global_vs_local@huc2"
    assert scheme_of_experiment("global_vs_local") == "ecoregions"
    assert scheme_of_experiment("global_vs_local@huc2") == "huc2"
    assert scheme_of_experiment("global_vs_local@k_means_8") == "k_means_8"
    for other in (
        "similarity",
        "global_vs_local@",
        "global_vs_local@Huc2",
        "similarity@huc2",
        "global_vs_local@" + "a" * 33,
        "global_vs_localx",
    ):
        assert scheme_of_experiment(other) is None, other
    assert scheme_of_experiment("global_vs_local@" + "a" * 32) == "a" * 32
    assert scheme_of_experiment("global_vs_local@huc2@x") is None  # the first "@" splits


def test_serialised_plan_missing_values_and_an_empty_evaluation_table() -> None:
    # no ROI and no ecoregion sets: the plan holds the global set alone, and no evaluation
    plan = build_plan(TAGGED, "soil_moisture", CFG.model_copy(update={"min_sites_roi": 6}), ecoregions=False)
    assert plan.evaluations.empty and plan.training_keys == ["global:CONUS"]
    d = plan.to_dict()
    assert d["sets"][0]["added_rule"] is None and d["evaluations"] == []
    assert type(d["sets"][0]["n_sites"]) is int
    for key in ("set_columns", "evaluation_columns"):
        del d[key]
    back = Plan.from_dict(json.loads(json.dumps(d)))
    assert list(back.evaluations.columns) == list(plan.evaluations.columns) and back.evaluations.empty


def test_the_largest_region_and_its_ties() -> None:
    import numpy as np

    from synergy_dagster.experiments.plan import _largest

    assert _largest(pd.Series({"A": 0, "B": 0}, dtype="int64")) is None
    assert _largest(pd.Series({"A": 1, "B": 0})) == ("A", 1)
    # many ties: the first of the largest in the order given (a stable sort)
    counts = pd.Series(np.random.default_rng(0).integers(1, 4, 300), index=[f"r{i}" for i in range(300)])
    first = counts.index[int(np.argmax(counts.to_numpy()))]
    assert _largest(counts) == (first, 3)


def test_further_schemes_add_their_own_global_vs_local() -> None:
    """Regions of another scheme (here "huc2") plan a local set each; ecoregion rows and sites the
    plan does not hold are ignored; ids read as numbers match the tagged sites' text ids."""
    tagged = TAGGED.assign(site_id=range(len(TAGGED)))  # numeric ids
    ids = list(range(len(TAGGED)))
    regions = pd.DataFrame(
        {
            "scheme": ["huc2"] * len(ids) + ["ecoregions"] * 4 + ["huc2"],
            "site_id": [str(i) for i in ids] + [0, 1, 2, 3] + ["nowhere"],
            "region": ["02"] * 10
            + ["01"] * 6
            + ["04"] * 4
            + ["03"] * 3
            + ["E"] * 4
            + ["01"],  # 02 first: sorted
        }
    )
    plan = build_plan(tagged, "soil_moisture", CFG, scheme_regions=regions)
    s = plan.sets.set_index("key")
    assert s.loc["local@huc2:01", "site_ids"] == tuple(sorted(str(i) for i in range(10, 16)))
    assert s.loc["local@huc2:04", "n_sites"] == 4  # exactly min_sites_subregion
    assert s.loc["local@huc2:02", "experiment"] == "global_vs_local@huc2"
    assert "local@huc2:03" not in s.index and not s.index.str.contains("ecoregions").any()
    ex = plan.excluded[plan.excluded["experiment"] == "global_vs_local@huc2"]
    assert [tuple(r) for r in ex.itertuples(index=False)] == [
        ("soil_moisture", "global_vs_local@huc2", "03", "local", 3, "3 sites < min_sites_subregion=4")
    ]
    ev = plan.evaluations[plan.evaluations["experiment"] == "global_vs_local@huc2"]
    assert [(r.region, r.scenario, r.set_key, r.n_eval) for r in ev.itertuples(index=False)] == [
        ("01", "global", "global:CONUS", 6),
        ("01", "local", "local@huc2:01", 6),
        ("02", "global", "global:CONUS", 10),
        ("02", "local", "local@huc2:02", 10),
        ("04", "global", "global:CONUS", 4),
        ("04", "local", "local@huc2:04", 4),
    ]


def test_small_helpers_of_the_plan() -> None:
    import hashlib

    from synergy_dagster.experiments.plan import _code_order, _typed

    assert sites_hash(["b", "a", "c"]) == hashlib.sha256(b"a\nb\nc").hexdigest()[:16]
    assert len(sites_hash(["a"])) == 16
    assert _code_order("10.1.5") == (10, 1, 5) and _code_order("8.A.1") == (8, 0, 1)
    empty = _typed(
        pd.DataFrame({"n_sites": pd.Series([], dtype=object), "name": pd.Series([], dtype=object)})
    )
    assert empty["n_sites"].dtype == "int64" and empty["name"].dtype == object
    six = pd.concat([TAGGED, TAGGED.iloc[:6]])
    with pytest.raises(
        InputError, match=r"duplicate site ids: \['s811_0', 's811_1', 's811_2', 's811_3', 's812_0'\]$"
    ):
        build_plan(six, "soil_moisture", CFG)


def test_synergy_curve_sets_are_planned_per_roi_with_their_exclusions() -> None:
    """The plan adds what :func:`curve_sets` draws for each ROI from that ROI's close, far and
    dissimilar pools (the set algebra above), and records the pools it skips."""
    from synergy_dagster.experiments.synergy import CURVE_EXPERIMENT, CurveConfig, curve_sets

    curves = CurveConfig(grid=(2,), draws=2, seed=3, rois=("8.1.1", "10.1.5"))
    plan = build_plan(TAGGED, "soil_moisture", CFG, curves=curves, size_controlled=False)
    got = plan.sets[plan.sets["experiment"] == CURVE_EXPERIMENT]
    want_sets, want_excluded = [], []
    for roi, l2, l1 in (("8.1.1", "8.1", "8"), ("10.1.5", "10.1", "10")):
        in_roi = TAGGED["l3"] == roi
        roi_ids = TAGGED.loc[in_roi, "site_id"].tolist()
        added = {
            "local+close": TAGGED.loc[(TAGGED["l2"] == l2) & ~in_roi, "site_id"].tolist(),
            "local+far": TAGGED.loc[(TAGGED["l1"] == l1) & (TAGGED["l2"] != l2), "site_id"].tolist(),
            "local+dissimilar": TAGGED.loc[TAGGED["l1"] != l1, "site_id"].tolist(),
        }
        drawn, skipped = curve_sets(roi, roi_ids, added, curves)
        want_sets += [(c.scenario, roi, tuple(sorted(c.site_ids)), c.rule) for c in drawn]
        want_excluded += [
            (CURVE_EXPERIMENT, roi, f"curve+{pool}", len(roi_ids), why) for pool, why in skipped
        ]
    assert want_sets and want_excluded  # both happen here: 10.1.5 has no close and no far pool
    assert [
        (r.scenario, r.region, r.site_ids, r.added_rule) for r in got.itertuples(index=False)
    ] == want_sets
    ex = plan.excluded[plan.excluded["experiment"] == CURVE_EXPERIMENT]
    assert [tuple(r)[1:] for r in ex.itertuples(index=False)] == want_excluded


def test_preferred_rois_below_the_threshold_are_excluded_with_the_reason() -> None:
    plan = build_plan(TAGGED, "streamflow", CFG, rois_preferred=[" 9.4.2", "5.3.1", "8.3.5"])
    ex = plan.excluded[plan.excluded["experiment"] == "similarity"]
    rows = [tuple(r) for r in ex.itertuples(index=False) if r.region in ("9.4.2", "5.3.1")]
    assert rows == [
        ("streamflow", "similarity", "9.4.2", "local", 2, "preferred ROI has 2 sites < min_sites_roi=3"),
        ("streamflow", "similarity", "5.3.1", "local", 0, "preferred ROI has 0 sites < min_sites_roi=3"),
    ]
    # an ROI of one site (min_sites_roi 1) plans its sets too
    single = build_plan(
        TAGGED[TAGGED["site_id"] != "s834_1"], "streamflow", CFG.model_copy(update={"min_sites_roi": 1})
    )
    assert "local:8.3.4" in set(single.sets["key"]) and single.sites_of("local:8.3.4") == ("s834_0",)


def test_sized_sets_draw_with_the_roi_and_every_roi_is_planned_without_size_control() -> None:
    from synergy_dagster.experiments.size_control import rule_text

    plan = build_plan(TAGGED, "soil_moisture", CFG)
    s = plan.sets.set_index("key")
    roi = sorted(ids_where(TAGGED["l3"] == "8.1.1"))
    far = sorted(ids_where((TAGGED["l1"] == "8") & (TAGGED["l2"] != "8.1")))
    assert s.loc["local+far_sized:8.1.1", "added_rule"] == rule_text(0, "8.1.1", 7, 3)
    picks = pick_added(far, 3, 0, "8.1.1")
    assert s.loc["local+far_sized:8.1.1", "site_ids"] == tuple(sorted(roi + list(picks)))
    plain = build_plan(TAGGED, "soil_moisture", CFG, size_controlled=False)
    keys = set(plain.sets["key"])
    for key in (
        "local:8.1.1",
        "local+far:8.1.2",
        "local+dissimilar:8.3.5",
        "local+far:9.2.3",
        "local+dissimilar:10.1.5",
    ):
        assert key in keys, key
