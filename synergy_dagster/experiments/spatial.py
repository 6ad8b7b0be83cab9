"""Spatial holdouts: the training sets and evaluations of PUB and PUR (study file ``spatial:``).

The temporal experiments of the plan score each site on a later period of a site its model trained
on. Here the gauge is taken away, so the synergy question is asked where it matters most:

- **PUB** (prediction in ungauged basins; Kratzert et al. 2019): the sites of the sub-regions that
  reach ``thresholds.min_sites_subregion`` are split into ``k`` folds, drawn **per region**: the
  sorted ids of a region are permuted with ``np.random.default_rng(stable_seed(seed, "pub:<region>"))``
  and dealt round the folds starting at the fold after the previous region's last, so every fold
  holds floor or ceil of n/k sites of every region (the regions' mix) and the folds' sizes differ by
  at most one. For fold ``f``: the unified set ``pub_global:f<f>`` (every site of the domain outside
  the fold: sites of smaller regions always train, as in the temporal global set) and, per region
  ``r`` with held-out sites, the regional set ``pub_local:f<f>-<r>`` (the other sites of ``r``).
  Both predict the fold's sites of ``r`` (evaluation group ``f<f>-<r>``, scenarios ``global`` and
  ``local``).
- **PUR** (prediction in ungauged regions; Feng, Lawson and Shen 2021): each such sub-region ``r``
  is left out once: the unified set ``pur_global:<r>`` (every site outside ``r``) and the partner
  set ``pur_partner:<r>`` (every site of the partner region: the nearest by great-circle distance
  between site centroids, or the most similar by Euclidean distance between mean z-scored static
  attributes) predict the sites of ``r`` (group ``<r>``, scenarios ``global`` and ``partner``).
  With ``pur_pools``, the paper's similarity pools of ``r`` with ``r`` itself taken away add one
  set each, ``pur_<pool>:<r>`` (scenario ``<pool>``): ``close`` the sites outside ``r`` that share
  a Level II ecoregion with a site of ``r``, ``far`` those that share a Level I but no Level II,
  ``dissimilar`` those that share no Level I. Under ``pur_pool_size: matched`` each non-empty pool
  is drawn down to the smallest non-empty pool of ``r`` by :func:`~synergy_dagster.experiments.size_control.pick_added`
  (seed ``spatial.seed``, key ``pur:<r>:<pool>``), so pools differ in similarity, not in size.

Each site of those regions is thus predicted exactly once per scenario, on the test period, by a
model that never saw it. The fold of every site is recorded in the plan (the evaluations' site
lists and each set's ``added_rule``). A spatial set's normaliser is fitted on its own training
sites (``models.fit.build_training_set``), so nothing of a held-out site, not even its share of the
input and target scales, reaches its model; spatial sets with equal site lists are trained once
through the plan's ``trained_as``, never as a temporal set's twin. Free of Dagster and torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.errors import InputError
from synergy_dagster.experiments.size_control import pick_added, rule_text, stable_seed
from synergy_dagster.experiments.spatial_spec import SpatialSpec
from synergy_dagster.sources.sitedata import static_names

PUB = "pub"
PUR = "pur"
SPATIAL_EXPERIMENTS = (PUB, PUR)
PUB_GLOBAL, PUB_LOCAL = "pub_global", "pub_local"
PUR_GLOBAL, PUR_PARTNER = "pur_global", "pur_partner"
# The paper's similarity pools as PUR training sets (spatial.pur_pools), in the paper's order.
POOLS = ("close", "far", "dissimilar")
PUR_POOL_SCENARIOS = {pool: f"pur_{pool}" for pool in POOLS}
# The set scenarios (partition keys' first part) spatial holdouts add to the plan's.
SPATIAL_SCENARIOS = (PUB_GLOBAL, PUB_LOCAL, PUR_GLOBAL, PUR_PARTNER, *PUR_POOL_SCENARIOS.values())
# (comparison, scenario a, scenario b) of each spatial experiment, as evaluation.study.COMPARISONS:
# the unified model against the regional stand-in, then against each pool, then pool against pool
# (the more similar pool first, as the paper's +close vs +dissimilar).
SPATIAL_COMPARISONS: dict[str, list[tuple[str, str, str]]] = {
    PUB: [("global vs local", "global", "local")],
    PUR: [
        ("global vs partner", "global", "partner"),
        *((f"global vs {p}", "global", p) for p in POOLS),
        *((f"{a} vs {b}", a, b) for i, a in enumerate(POOLS) for b in POOLS[i + 1 :]),
    ],
}


def spatial_comparisons(experiment: str, scenarios: set[str]) -> list[tuple[str, str, str]]:
    """The comparisons of ``experiment`` whose two scenarios both have rows (a study without pools
    compares the unified model with the partner only)."""
    return [c for c in SPATIAL_COMPARISONS[experiment] if c[1] in scenarios and c[2] in scenarios]


EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class SpatialSet:
    """One training set of a holdout: plan scenario, the key's region part, its sites and how drawn."""

    scenario: str
    region: str
    experiment: str
    site_ids: tuple[str, ...]
    rule: str

    @property
    def key(self) -> str:
        return f"{self.scenario}:{self.region}"


@dataclass(frozen=True)
class SpatialEvaluation:
    """Sites ``site_ids`` scored under ``scenario`` with the model of ``set_key`` (group ``group``)."""

    experiment: str
    group: str
    scenario: str
    set_key: str
    site_ids: tuple[str, ...]


@dataclass
class SpatialPlan:
    """What the holdouts add to a plan, and the holdouts that could not be formed (with why)."""

    sets: list[SpatialSet] = field(default_factory=list)
    evaluations: list[SpatialEvaluation] = field(default_factory=list)
    excluded: list[tuple[str, str, str | None, int, str]] = field(default_factory=list)


def _regions(sites: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("site_id", "region") if c not in sites.columns]
    if missing:
        raise InputError("spatial holdout sites", f"missing columns {missing}; have {list(sites.columns)}")
    df = sites[["site_id", "region"]].assign(site_id=sites["site_id"].astype(str))
    if df["site_id"].duplicated().any():
        raise InputError("spatial holdout sites", "duplicate site ids", "site_id")
    return df.sort_values(["site_id"], kind="stable").reset_index(drop=True)


def eligible_regions(sites: pd.DataFrame, min_sites: int) -> list[str]:
    """The regions (non-missing ``region`` values) holding at least ``min_sites`` sites, sorted."""
    counts = _regions(sites)["region"].dropna().astype(str).value_counts()
    return sorted(str(r) for r in counts.index[counts >= min_sites])


def pub_folds(sites: pd.DataFrame, regions: list[str], k: int, seed: int) -> pd.Series:
    """Fold (1..k) of every site of ``regions``, indexed by site id (see module docstring)."""
    if k < 2:
        raise InputError("spatial.pub_folds", f"needs k >= 2, got {k}")
    df = _regions(sites)
    df = df[df["region"].astype(str).isin(regions)]
    out = []
    start = 0
    for region in sorted(regions):
        ids = df.loc[df["region"].astype(str) == region, "site_id"].to_numpy(dtype=object)
        perm = np.random.default_rng(stable_seed(seed, f"pub:{region}")).permutation(len(ids))
        folds = (start + np.arange(len(ids))) % k + 1
        out.append(pd.Series(folds, index=ids[perm], dtype="int64"))
        start = (start + len(ids)) % k
    if not out:
        return pd.Series([], dtype="int64", name="fold")
    return pd.concat(out).sort_index().rename("fold")


def region_centroids(places: pd.DataFrame, regions: pd.Series) -> pd.DataFrame:
    """Per region, the site centroid (lat, lon in degrees): the normalised mean of unit vectors, so
    regions across the antimeridian are not averaged through the other side of the globe."""
    lat, lon = np.radians(places["lat"].to_numpy(float)), np.radians(places["lon"].to_numpy(float))
    xyz = pd.DataFrame(
        {"x": np.cos(lat) * np.cos(lon), "y": np.cos(lat) * np.sin(lon), "z": np.sin(lat)},
        index=places.index,
    )
    mean = xyz.groupby(regions.reindex(places.index).to_numpy()).mean()
    norm = np.sqrt((mean**2).sum(axis=1))
    return pd.DataFrame(
        {
            "lat": np.degrees(np.arcsin(mean["z"] / norm)),
            "lon": np.degrees(np.arctan2(mean["y"], mean["x"])),
        }
    )


def _great_circle_km(a: pd.DataFrame) -> np.ndarray:
    lat, lon = np.radians(a["lat"].to_numpy()), np.radians(a["lon"].to_numpy())
    dlat, dlon = lat[:, None] - lat[None, :], lon[:, None] - lon[None, :]
    h = np.sin(dlat / 2) ** 2 + np.cos(lat[:, None]) * np.cos(lat[None, :]) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _attribute_distance(features: pd.DataFrame, regions: pd.Series) -> pd.DataFrame:
    x = features.astype(float)
    sd = x.std(ddof=0).replace(0.0, 1.0)
    z = ((x - x.mean()) / sd).fillna(0.0)  # a missing attribute counts as the domain's mean
    means = z.groupby(regions.reindex(z.index).to_numpy()).mean()
    d = np.sqrt(((means.to_numpy()[:, None, :] - means.to_numpy()[None, :, :]) ** 2).sum(axis=2))
    return pd.DataFrame(d, index=means.index, columns=means.index)


def pur_partners(places: pd.DataFrame, regions: pd.Series, candidates: list[str], mode: str) -> pd.DataFrame:
    """Partner of each candidate region among the other candidates: columns region, partner,
    distance and unit. ``places`` indexed by site id: ``lat``, ``lon`` (nearest) and the static
    attributes (similar: every other column); ``regions`` maps site id -> region."""
    if len(candidates) < 2:
        return pd.DataFrame(columns=["region", "partner", "distance", "unit"])
    regions = regions.astype(str)
    if mode == "nearest":
        missing = [c for c in ("lat", "lon") if c not in places.columns]
        if missing:
            raise InputError("spatial.pur_partner=nearest", f"site places lack {missing}")
        cent = region_centroids(places, regions).loc[candidates]
        dist = pd.DataFrame(_great_circle_km(cent), index=candidates, columns=candidates)
        unit = "km"
    elif mode == "similar":
        attrs = places.drop(columns=[c for c in ("lat", "lon") if c in places.columns])
        if attrs.shape[1] == 0:
            raise InputError("spatial.pur_partner=similar", "the sites have no static attributes to compare")
        dist = _attribute_distance(attrs, regions).loc[candidates, candidates]
        unit = "z"
    else:
        raise InputError("spatial.pur_partner", f"unknown mode {mode!r}; expected nearest or similar")
    d = dist.to_numpy(dtype=float).copy()
    np.fill_diagonal(d, np.inf)
    best = np.argmin(d, axis=1)  # ties: the first in sorted order
    return pd.DataFrame(
        {
            "region": candidates,
            "partner": [candidates[j] for j in best],
            "distance": d[np.arange(len(candidates)), best],
            "unit": unit,
        }
    )


def site_places(sites: pd.DataFrame, ds: xr.Dataset) -> pd.DataFrame:
    """Lat, lon (the sites table) and the numeric static attributes (the sites' dataset: the
    model's static inputs) of every site, indexed by site id: what PUR picks partners from."""
    places = sites.assign(site_id=sites["site_id"].astype(str)).set_index("site_id")[["lat", "lon"]]
    names = [n for n in static_names(ds) if ds[n].dims == ("site",) and np.issubdtype(ds[n].dtype, np.number)]
    if names:
        statics = ds[names].to_dataframe()
        statics.index = statics.index.astype(str)
        places = places.join(statics.drop(columns=["lat", "lon"], errors="ignore"))
    return places


def _sorted(ids: np.ndarray | list[str]) -> tuple[str, ...]:
    return tuple(sorted(str(s) for s in ids))


def pur_pool_sites(sites: pd.DataFrame, region: str) -> dict[str, tuple[str, ...]]:
    """The paper's similarity pools of a held-out region, its own sites taken away (sorted ids):
    ``close`` the other sites whose Level II ecoregion is one of the region's, ``far`` those whose
    Level I is one of the region's but not their Level II, ``dissimilar`` the rest. ``sites``:
    site_id, region, l1, l2 (the plan's tagged sites)."""
    missing = [c for c in ("site_id", "region", "l1", "l2") if c not in sites.columns]
    if missing:
        raise InputError("spatial.pur_pools", f"the sites lack the ecoregion columns {missing}")
    df = sites.assign(site_id=sites["site_id"].astype(str))
    inside = df["region"].astype(str) == region
    l1s, l2s = set(df.loc[inside, "l1"].dropna()), set(df.loc[inside, "l2"].dropna())
    out = df[~inside]
    close = out["l2"].isin(l2s)
    far = out["l1"].isin(l1s) & ~close
    masks = {"close": close, "far": far, "dissimilar": ~close & ~far}
    return {pool: _sorted(out.loc[mask, "site_id"].to_numpy()) for pool, mask in masks.items()}


def pur_pool_sets(
    sites: pd.DataFrame, region: str, spec: SpatialSpec
) -> tuple[list[SpatialSet], list[tuple[str, str]]]:
    """The pool sets of held-out ``region`` (``spec.pur_pools``; under ``matched`` each non-empty
    pool drawn down to the smallest non-empty one) and ``(pool, reason)`` for each pool that holds
    no site. The paper's sub-regions are whole Level II (or Level I) units, so their close pool is
    empty by construction and their pools compare far with dissimilar data."""
    pools = pur_pool_sites(sites, region)
    wanted = [p for p in POOLS if p in spec.pur_pools]
    formed = [p for p in wanted if pools[p]]
    reasons = [(p, f"the {p} pool of {region} holds no site") for p in wanted if not pools[p]]
    k = min((len(pools[p]) for p in formed), default=0)
    sets = []
    for pool in formed:
        ids = pools[pool]
        if spec.pur_pool_size == "matched":
            draw_key = f"pur:{region}:{pool}"
            picked = pick_added(ids, k, spec.seed, draw_key)
            rule = f"{pool} pool of {region} matched to {k} sites; " + rule_text(
                spec.seed, draw_key, len(ids), k
            )
        else:
            picked, rule = ids, f"{pool} pool of {region}: all {len(ids)} sites"
        sets.append(SpatialSet(PUR_POOL_SCENARIOS[pool], region, PUR, picked, rule))
    return sets, reasons


def spatial_plan(
    sites: pd.DataFrame, spec: SpatialSpec, min_sites: int, places: pd.DataFrame | None = None
) -> SpatialPlan:
    """The PUB and PUR sets and evaluations of one domain (see module docstring).

    ``sites``: site_id and region (the plan's sub-region letter; missing for sites outside every
    sub-region). ``min_sites``: the plan's ``min_sites_subregion``. ``places``: indexed by site id,
    lat, lon and static attributes (needed by PUR)."""
    df = _regions(sites)
    out = SpatialPlan()
    if not spec.enabled:
        return out
    regions = eligible_regions(df, min_sites)
    all_ids = df["site_id"].to_numpy(dtype=object)
    region_of = df.set_index("site_id")["region"]
    if spec.pub_folds >= 2:
        folds = pub_folds(df, regions, spec.pub_folds, spec.seed)
        rule = (
            f"fold drawn per region: sorted ids permuted by np.random.default_rng(stable_seed("
            f"{spec.seed}, 'pub:<region>')), dealt round {spec.pub_folds} folds"
        )
        fold_ids = folds.index.to_numpy(dtype=object)
        fold_no = folds.to_numpy()
        site_region = region_of.reindex(fold_ids).astype(str).to_numpy()
        for f in range(1, spec.pub_folds + 1):
            held = fold_ids[fold_no == f]
            if not len(held):
                out.excluded.append((PUB, f"f{f}", None, 0, "the fold holds no site"))
                continue
            unified = SpatialSet(PUB_GLOBAL, f"f{f}", PUB, _sorted(all_ids[~np.isin(all_ids, held)]), rule)
            out.sets.append(unified)
            for region in sorted(set(site_region[fold_no == f])):
                in_region = fold_ids[site_region == region]
                is_held = fold_no[site_region == region] == f
                test, train = _sorted(in_region[is_held]), _sorted(in_region[~is_held])
                group = f"f{f}-{region}"
                if not train:
                    out.excluded.append((PUB, group, "local", len(test), "no other site in the region"))
                    continue
                local = SpatialSet(PUB_LOCAL, group, PUB, train, rule)
                out.sets.append(local)
                out.evaluations.append(SpatialEvaluation(PUB, group, "global", unified.key, test))
                out.evaluations.append(SpatialEvaluation(PUB, group, "local", local.key, test))
    if spec.pur:
        if places is None:
            raise InputError("spatial.pur", "PUR needs the sites' places (lat, lon, attributes)")
        partners = pur_partners(places, region_of, regions, spec.pur_partner)
        labels = region_of.astype(str).to_numpy()
        for row in partners.itertuples():
            in_region = labels == row.region
            test = _sorted(all_ids[in_region])
            unified = SpatialSet(
                PUR_GLOBAL, row.region, PUR, _sorted(all_ids[~in_region]), f"every site outside {row.region}"
            )
            partner = SpatialSet(
                PUR_PARTNER,
                row.region,
                PUR,
                _sorted(all_ids[labels == row.partner]),
                f"{spec.pur_partner} region to {row.region}: {row.partner} ({row.distance:.3g} {row.unit})",
            )
            out.sets += [unified, partner]
            out.evaluations.append(SpatialEvaluation(PUR, row.region, "global", unified.key, test))
            out.evaluations.append(SpatialEvaluation(PUR, row.region, "partner", partner.key, test))
            if spec.pur_pools:
                pool_sets, reasons = pur_pool_sets(sites, row.region, spec)
                for ps in pool_sets:
                    out.sets.append(ps)
                    pool = ps.scenario.removeprefix("pur_")
                    out.evaluations.append(SpatialEvaluation(PUR, row.region, pool, ps.key, test))
                for pool, reason in reasons:
                    out.excluded.append((PUR, row.region, pool, len(test), reason))
        if len(regions) < 2:
            out.excluded.append(
                (
                    PUR,
                    ",".join(regions) or "-",
                    None,
                    len(regions),
                    "PUR needs two regions that reach the minimum",
                )
            )
    return out


def scored_region(experiment: str, group: str) -> str:
    """The region a spatial evaluation group reports under: ``f2-A`` -> ``A`` (PUB), ``A`` (PUR)."""
    if experiment == PUB:
        fold, sep, region = group.partition("-")
        if not sep or not fold.startswith("f"):
            raise InputError("spatial evaluation", f"PUB group {group!r} is not 'f<fold>-<region>'")
        return region
    return group


def fold_of_group(experiment: str, group: str) -> int | None:
    """The fold of a PUB group (``f2-A`` -> 2); None for PUR."""
    if experiment != PUB:
        return None
    return int(group.partition("-")[0][1:])
