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
    scored_region,
    site_places,
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
