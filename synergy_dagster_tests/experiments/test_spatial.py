"""Spatial holdouts (PUB folds, PUR regions): no held-out site in any of its models' training
sites, folds reproducible per seed and stratified per region, each site scored once per scenario,
partner regions, and the plan's rows and partition keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synergy_dagster.config import PlanConfig
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.experiments.plan import Plan, build_plan, parse_set_key
from synergy_dagster.experiments.spatial import (
    PUB,
    PUR,
    SPATIAL_SCENARIOS,
    pub_folds,
    pur_partners,
    pur_pool_sites,
    scored_region,
    site_places,
    spatial_comparisons,
    spatial_plan,
)
from synergy_dagster.experiments.spatial_spec import SpatialSpec
from synergy_dagster.sources.sitedata import make_site_dataset

# region -> (n sites, centroid lat, lon, attribute level): A and B lie close, C far away but
# with A's attributes; D has one site (below every minimum).
REGIONS = {
    "A": (13, 45.0, -120.0, 0.0),
    "B": (9, 45.0, -115.0, 5.0),
    "C": (11, 30.0, -80.0, 0.2),
    "D": (1, 40.0, -100.0, 9.0),
}


def make_sites() -> pd.DataFrame:
    rows = []
    for region, (n, lat, lon, level) in REGIONS.items():
        for i in range(n):
            rows.append(
                {
                    "site_id": f"{region.lower()}{i:02d}",
                    "region": region,
                    "lat": lat + 0.1 * i,
                    "lon": lon - 0.1 * i,
                    "aridity": level + 0.01 * i,
                }
            )
    return pd.DataFrame(rows)


SITES = make_sites()
PLACES = SITES.set_index("site_id")[["lat", "lon", "aridity"]]


def _training(sp_sets: list, key: str) -> set[str]:
    return next(set(s.site_ids) for s in sp_sets if s.key == key)


@pytest.mark.parametrize("spec", [SpatialSpec(pub_folds=3, seed=1), SpatialSpec(pur=True)])
def test_no_held_out_site_in_its_models_training_sites(spec: SpatialSpec) -> None:
    sp = spatial_plan(SITES, spec, min_sites=5, places=PLACES)
    assert sp.evaluations
    for ev in sp.evaluations:
        assert not set(ev.site_ids) & _training(sp.sets, ev.set_key), ev


@pytest.mark.parametrize("spec", [SpatialSpec(pub_folds=4, seed=3), SpatialSpec(pur=True)])
def test_each_site_of_the_regions_scored_once_per_scenario(spec: SpatialSpec) -> None:
    sp = spatial_plan(SITES, spec, min_sites=5, places=PLACES)
    eligible = set(SITES.loc[SITES["region"].isin(["A", "B", "C"]), "site_id"])
    for scenario in {ev.scenario for ev in sp.evaluations}:
        scored = [s for ev in sp.evaluations if ev.scenario == scenario for s in ev.site_ids]
        assert sorted(scored) == sorted(eligible), scenario


def test_folds_reproducible_per_seed_and_different_across_seeds() -> None:
    a = pub_folds(SITES, ["A", "B", "C"], 3, seed=0)
    assert a.equals(pub_folds(SITES.sample(frac=1, random_state=5), ["A", "B", "C"], 3, seed=0))
    assert not a.equals(pub_folds(SITES, ["A", "B", "C"], 3, seed=1))
    assert set(a.index) == set(SITES.loc[SITES["region"] != "D", "site_id"])


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_keep_each_regions_mix(k: int) -> None:
    folds = pub_folds(SITES, ["A", "B", "C"], k, seed=2)
    counts = pd.crosstab(SITES.set_index("site_id").loc[folds.index, "region"], folds)
    for region, row in counts.iterrows():
        n = REGIONS[str(region)][0]
        assert set(row.reindex(range(1, k + 1), fill_value=0)) <= {n // k, -(-n // k)}, region
    sizes = folds.value_counts()
    assert sizes.max() - sizes.min() <= 1


def test_pub_local_sets_are_the_other_sites_of_the_region() -> None:
    sp = spatial_plan(SITES, SpatialSpec(pub_folds=3), min_sites=5, places=PLACES)
    folds = pub_folds(SITES, ["A", "B", "C"], 3, seed=0)
    region = SITES.set_index("site_id")["region"]
    for ev in sp.evaluations:
        fold = int(ev.group.split("-")[0][1:])
        reg = scored_region(PUB, ev.group)
        assert set(ev.site_ids) == set(folds.index[(folds == fold) & (region[folds.index] == reg)])
        train = _training(sp.sets, ev.set_key)
        if ev.scenario == "local":
            assert train == set(region.index[region == reg]) - set(folds.index[folds == fold])
        else:  # unified: every other site, D's single site included
            assert train == set(region.index) - set(folds.index[folds == fold])


def test_pur_partners_nearest_and_similar() -> None:
    region = SITES.set_index("site_id")["region"]
    near = pur_partners(PLACES, region, ["A", "B", "C"], "nearest").set_index("region")["partner"]
    assert near.to_dict() == {"A": "B", "B": "A", "C": "B"}  # C lies east of B
    similar = pur_partners(PLACES, region, ["A", "B", "C"], "similar").set_index("region")["partner"]
    assert similar.to_dict() == {"A": "C", "B": "C", "C": "A"}


def test_pur_sets_and_recorded_rule() -> None:
    sp = spatial_plan(SITES, SpatialSpec(pur=True, pur_partner="nearest"), min_sites=5, places=PLACES)
    a_ids = set(SITES.loc[SITES["region"] == "A", "site_id"])
    b_ids = set(SITES.loc[SITES["region"] == "B", "site_id"])
    assert _training(sp.sets, "pur_partner:A") == b_ids
    assert _training(sp.sets, "pur_global:A") == set(SITES["site_id"]) - a_ids
    rule = next(s.rule for s in sp.sets if s.key == "pur_partner:A")
    assert rule.startswith("nearest region to A: B (") and "km" in rule


def test_off_by_default_and_bad_settings() -> None:
    assert not SpatialSpec().enabled
    assert spatial_plan(SITES, SpatialSpec(), min_sites=5).sets == []
    with pytest.raises(ConfigError, match="spatial.pub_folds"):
        SpatialSpec(pub_folds=1)
    with pytest.raises(InputError, match="spatial.pur"):
        spatial_plan(SITES, SpatialSpec(pur=True), min_sites=5, places=None)


def _tagged() -> pd.DataFrame:
    # the plan's tagged-sites frame: sub-regions D (8.1), F (8.3) and I (9.2)
    l2 = {"A": ("8", "8.1"), "B": ("8", "8.3"), "C": ("9", "9.2"), "D": ("10", "10.1")}
    letter = {"A": "D", "B": "F", "C": "I", "D": "M"}
    return SITES.assign(
        l1=SITES["region"].map(lambda r: l2[r][0]),
        l2=SITES["region"].map(lambda r: l2[r][1]),
        l3=SITES["region"].map(lambda r: l2[r][1] + ".1"),
        subregion=SITES["region"].map(letter),
    )


def test_plan_rows_keys_and_reuse() -> None:
    tagged = _tagged()
    cfg = PlanConfig(min_sites_subregion=5, min_sites_roi=50)
    spec = SpatialSpec(pub_folds=3, pur=True)
    plan = build_plan(tagged, "streamflow", cfg, spatial=spec, places=PLACES)
    for key in plan.sets["key"]:
        parse_set_key(key)  # every spatial key is a valid partition key
    sets = plan.sets.set_index("key")
    # a PUR partner's set has the sites of the partner's temporal local set, but is its own model
    # (its normaliser is fitted on its own sites: a strict holdout)
    assert sets.loc["pur_partner:D", "site_ids"] == sets.loc["local:F", "site_ids"]
    assert sets.loc["pur_partner:D", "trained_as"] == "pur_partner:D"
    spatial = sets[sets["scenario"].isin(SPATIAL_SCENARIOS)]
    assert spatial["trained_as"].isin(spatial.index).all()
    evals = plan.evaluations[plan.evaluations["experiment"].isin([PUB, PUR])]
    assert set(evals["experiment"]) == {PUB, PUR}
    for row in evals.itertuples():
        trained = set(sets.loc[row.model_key, "site_ids"])
        assert not trained & set(row.eval_site_ids)
    again = Plan.from_dict(plan.to_dict())
    assert again.evaluations.equals(plan.evaluations)
    # off: the temporal plan is unchanged
    base = build_plan(tagged, "streamflow", cfg)
    off = build_plan(tagged, "streamflow", cfg, spatial=SpatialSpec(), places=PLACES)
    assert off.sets.equals(base.sets) and off.evaluations.equals(base.evaluations)
    assert not np.isin(base.sets["scenario"], ["pub_global", "pur_global"]).any()


def test_site_places_join_coordinates_and_numeric_statics() -> None:
    ids = SITES["site_id"].tolist()
    n, days = len(ids), pd.date_range("2001-01-01", periods=3)
    ds = make_site_dataset(
        domain="streamflow",
        source="test",
        site_ids=ids,
        time=days,
        lat=SITES["lat"].to_numpy(),
        lon=SITES["lon"].to_numpy(),
        target=("q", np.ones((n, 3)), "mm/d"),
        dynamic={"p": (np.ones((n, 3)), "mm/d")},
        static={"aridity": (SITES["aridity"].to_numpy(), "-")},
    )
    places = site_places(SITES[["site_id", "lat", "lon"]], ds)
    assert list(places.columns) == ["lat", "lon", "aridity"]
    assert places.loc["b03", "aridity"] == pytest.approx(5.03)
    near = pur_partners(places, SITES.set_index("site_id")["region"], ["A", "B", "C"], "similar")
    assert near.set_index("region")["partner"].to_dict() == {"A": "C", "B": "C", "C": "A"}


def _pool_sites() -> pd.DataFrame:
    # A in Level II 8.1; B shares Level I 8, four of its sites in A's 8.1 (close to A), five in 8.3
    # (far from A); C (9.2) and D (10.1) are dissimilar to A
    l2 = SITES["region"].map({"A": "8.1", "B": "8.3", "C": "9.2", "D": "10.1"})
    l2 = l2.where(~SITES["site_id"].isin(["b00", "b01", "b02", "b03"]), "8.1")
    return SITES.assign(l2=l2, l1=l2.str.split(".").str[0])


POOL_SITES = _pool_sites()


def test_pur_pools_are_the_papers_pools_without_the_held_out_region() -> None:
    pools = pur_pool_sites(POOL_SITES, "A")
    others = set(POOL_SITES.loc[POOL_SITES["region"] != "A", "site_id"])
    assert set(pools["close"]) == {"b00", "b01", "b02", "b03"}
    assert set(pools["far"]) == {f"b0{i}" for i in range(4, 9)}
    assert set(pools["dissimilar"]) == others - set(pools["close"]) - set(pools["far"])
    assert sum(len(v) for v in pools.values()) == len(others)  # disjoint, nothing of A
    # B holds Level II 8.1 and 8.3: every A site is close to it, and nothing is far
    b_pools = pur_pool_sites(POOL_SITES, "B")
    assert set(b_pools["close"]) == set(POOL_SITES.loc[POOL_SITES["region"] == "A", "site_id"])
    assert b_pools["far"] == ()
    with pytest.raises(InputError, match="ecoregion columns"):
        pur_pool_sites(SITES, "A")


def test_pur_pool_sets_matched_in_size_seeded_and_never_the_held_out_sites() -> None:
    spec = SpatialSpec(pur=True, pur_pools=["dissimilar", "close", "far"], seed=4)
    sp = spatial_plan(POOL_SITES, spec, min_sites=5, places=PLACES)
    pool_sets = {s.key: s for s in sp.sets if s.scenario.startswith("pur_") and s.region == "A"}
    assert set(pool_sets) >= {"pur_close:A", "pur_far:A", "pur_dissimilar:A"}
    sizes = {
        k: len(s.site_ids)
        for k, s in pool_sets.items()
        if k.split(":")[0] in ("pur_close", "pur_far", "pur_dissimilar")
    }
    assert set(sizes.values()) == {4}  # every pool drawn down to the smallest (close: 4 sites)
    assert set(pool_sets["pur_dissimilar:A"].site_ids) <= set(pur_pool_sites(POOL_SITES, "A")["dissimilar"])
    assert "matched to 4 sites" in pool_sets["pur_dissimilar:A"].rule
    again = spatial_plan(POOL_SITES.sample(frac=1, random_state=2), spec, min_sites=5, places=PLACES)
    assert [s.site_ids for s in again.sets] == [s.site_ids for s in sp.sets]
    other = spatial_plan(POOL_SITES, spec.model_copy(update={"seed": 5}), min_sites=5, places=PLACES)
    assert _training(other.sets, "pur_dissimilar:A") != set(pool_sets["pur_dissimilar:A"].site_ids)
    pool_evals = [ev for ev in sp.evaluations if ev.scenario in ("close", "far", "dissimilar")]
    assert {ev.scenario for ev in pool_evals} == {"close", "far", "dissimilar"}
    for ev in sp.evaluations:
        assert not set(ev.site_ids) & _training(sp.sets, ev.set_key), ev
    for ev in pool_evals:  # each pool model predicts its held-out region's sites, all of them
        assert ev.site_ids == tuple(sorted(POOL_SITES.loc[POOL_SITES["region"] == ev.group, "site_id"]))
    for scenario in ("close", "far", "dissimilar"):
        scored = [s for ev in pool_evals if ev.scenario == scenario for s in ev.site_ids]
        assert len(scored) == len(set(scored)), scenario  # each site once per scenario


def test_pur_pools_that_cannot_be_formed_are_excluded_with_why() -> None:
    # B has no far pool: it is excluded with why, and the others are matched among themselves
    matched = spatial_plan(
        POOL_SITES, SpatialSpec(pur=True, pur_pools=["close", "far", "dissimilar"]), 5, PLACES
    )
    why = {(r, sc): reason for e, r, sc, _, reason in matched.excluded if e == PUR}
    assert set(why) == {("B", "far"), ("C", "close"), ("C", "far")}  # C: alone in Level I 9
    assert why[("B", "far")] == "the far pool of B holds no site"
    b_sets = {
        s.scenario: s.site_ids for s in matched.sets if s.region == "B" and s.scenario.startswith("pur_")
    }
    n_close = len(pur_pool_sites(POOL_SITES, "B")["close"])  # A's 13 sites; dissimilar: C and D, 12
    assert {k: len(v) for k, v in b_sets.items() if k not in ("pur_global", "pur_partner")} == {
        "pur_close": min(n_close, 12),
        "pur_dissimilar": min(n_close, 12),
    }
    whole = spatial_plan(
        POOL_SITES, SpatialSpec(pur=True, pur_pools=["close", "far"], pur_pool_size="all"), 5, PLACES
    )
    assert {(r, sc) for e, r, sc, _, _ in whole.excluded if r == "B"} == {("B", "far")}
    assert _training(whole.sets, "pur_close:B") == set(POOL_SITES.loc[POOL_SITES["region"] == "A", "site_id"])
    assert _training(whole.sets, "pur_far:A") == {f"b0{i}" for i in range(4, 9)}  # the whole pool


def test_pur_pool_settings_and_comparisons() -> None:
    with pytest.raises(ConfigError, match="spatial.pur_pools"):
        SpatialSpec(pur_pools=["close"])
    with pytest.raises(ConfigError, match="spatial.pur_pools"):
        SpatialSpec(pur=True, pur_pools=["close", "close"])
    with pytest.raises(ConfigError):
        SpatialSpec(pur=True, pur_pools=["near"])
    assert spatial_comparisons(PUR, {"global", "partner"}) == [("global vs partner", "global", "partner")]
    labels = [c[0] for c in spatial_comparisons(PUR, {"global", "partner", "close", "dissimilar"})]
    assert labels == ["global vs partner", "global vs close", "global vs dissimilar", "close vs dissimilar"]
    # the pool sets are plan rows with valid partition keys, each its own model
    plan = build_plan(
        _tagged().assign(l1=POOL_SITES["l1"], l2=POOL_SITES["l2"]),
        "streamflow",
        PlanConfig(min_sites_subregion=5, min_sites_roi=50),
        spatial=SpatialSpec(pur=True, pur_pools=["close", "far", "dissimilar"]),
        places=PLACES,
    )
    pools = plan.sets[plan.sets["scenario"].str.match(r"pur_(close|far|dissimilar)$")]
    regions = [parse_set_key(k)[1] for k in pools["key"]]
    assert regions.count("D") == 3
    # a pool set with another spatial set's sites shares that model, never a temporal one
    twins = plan.sets.set_index("key").loc[pools["trained_as"], "scenario"]
    assert twins.isin(SPATIAL_SCENARIOS).all()
