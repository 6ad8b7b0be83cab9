"""The experiment plan: which training sets exist, which model is evaluated on which sites.

Two experiments (Fang et al. 2022, section 2.3):

- ``global_vs_local``: one global set (every tagged site of the domain) and one local set per
  sub-region A-R holding at least ``cfg.min_sites_subregion`` sites; both models are evaluated on
  the sub-region's sites.
- ``global_vs_local@<scheme>`` for every further regionalisation of the study (HUC-2, climate
  classes, k-means, random; :mod:`synergy_dagster.regions.schemes`): the same global set against
  one local set per scheme region holding at least ``cfg.min_sites_subregion`` sites, keyed
  ``local@<scheme>:<region>`` (e.g. ``local@kmeans:3``, ``local@huc2:07``) so keys stay unique
  across schemes; the ecoregion keys stay ``local:<letter>``. Evaluation rows keep the scenario
  names ``global`` and ``local`` so the comparison is the paper's.
- ``similarity`` per region of interest (ROI, a Level III region with at least
  ``cfg.min_sites_roi`` sites): local (the ROI), local+close (its Level II region), local+far (ROI
  plus the rest of its Level I region outside its Level II region), local+dissimilar (ROI plus every
  site outside its Level I region); and, size-controlled, the same three with k added sites each,
  k = the smallest of their added counts (see :mod:`size_control`). All are evaluated on the ROI.

Sets with identical site lists are trained once: ``trained_as`` names the first set with the same
``sites_hash`` (a spatial holdout's set only among spatial sets: its normaliser is its own), and
evaluations point at that model. The plan lists sites only; periods come
from config and are copied in as text when given, so no set depends on test-period data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from synergy_dagster.config import DOMAINS, DomainPeriods, PlanConfig
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.experiments.size_control import pick_added, rule_text
from synergy_dagster.experiments.spatial import SPATIAL_SCENARIOS, spatial_plan
from synergy_dagster.experiments.spatial_spec import SpatialSpec
from synergy_dagster.experiments.synergy import (
    CURVE_EXPERIMENT,
    CurveConfig,
    curve_sets,
    parse_curve_scenario,
)
from synergy_dagster.regions.subregions import LETTERS

NEIGHBOUR_SCENARIOS = ("local+close", "local+far", "local+dissimilar")
SIZED = {s: f"{s}_sized" for s in NEIGHBOUR_SCENARIOS}
SET_COLUMNS = (
    "domain",
    "key",
    "scenario",
    "region",
    "experiment",
    "site_ids",
    "n_sites",
    "sites_hash",
    "trained_as",
    "added_rule",
)
EVAL_COLUMNS = (
    "domain",
    "experiment",
    "region",
    "scenario",
    "set_key",
    "model_key",
    "eval_site_ids",
    "n_eval",
)
EXCLUDED_COLUMNS = ("domain", "experiment", "region", "scenario", "n_sites", "reason")
TUPLE_COLUMNS = {"sets": ("site_ids",), "evaluations": ("eval_site_ids",)}


def sites_hash(site_ids: Sequence[str]) -> str:
    """sha256 of the sorted ids joined by newlines, first 16 hex digits."""
    return hashlib.sha256("\n".join(sorted(str(s) for s in site_ids)).encode()).hexdigest()[:16]


def set_key(scenario: str, region: str) -> str:
    """Partition key of a training set: ``<scenario>:<region>``."""
    return f"{scenario}:{region}"


# Every scenario a plan can derive (the partition keys' first part).
SCENARIOS = ("global", "local", *NEIGHBOUR_SCENARIOS, *SIZED.values(), *SPATIAL_SCENARIOS)


SCHEME_SEP = "@"
_SCHEME_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # study_file.SCHEME_NAME


def scheme_experiment(scheme: str) -> str:
    """The experiment name of global vs local under a scheme (``ecoregions``: the paper's)."""
    return "global_vs_local" if scheme == "ecoregions" else f"global_vs_local{SCHEME_SEP}{scheme}"


def scheme_of_experiment(experiment: str) -> str | None:
    """Inverse of :func:`scheme_experiment`; None for experiments that are not global vs local."""
    if experiment == "global_vs_local":
        return "ecoregions"
    base, sep, scheme = str(experiment).partition(SCHEME_SEP)
    return scheme if base == "global_vs_local" and sep and _SCHEME_LABEL.match(scheme) else None


def _is_scheme_scenario(scenario: str) -> bool:
    base, sep, scheme = scenario.partition(SCHEME_SEP)
    return base == "local" and bool(sep) and bool(_SCHEME_LABEL.match(scheme))


def parse_set_key(key: str) -> tuple[str, str]:
    """``"local+far:8.3.5"`` -> ``("local+far", "8.3.5")``; :class:`InputError` naming the key for an
    unknown scenario, a missing region or a global set outside CONUS (a typo in a partition key
    must not silently create a training set no plan can derive)."""
    scenario, sep, region = str(key).partition(":")
    if not sep or not region.strip():
        raise InputError("partition key", f"{key!r} is not '<scenario>:<region>'", key)
    known = scenario in SCENARIOS or _is_scheme_scenario(scenario)
    if not known and parse_curve_scenario(scenario) is None:  # curve keys: synergy.py
        raise InputError("partition key", f"unknown scenario {scenario!r}; expected one of {SCENARIOS}", key)
    if scenario == "global" and region != "CONUS":
        raise InputError("partition key", f"the global set's region is 'CONUS', not {region!r}", key)
    return scenario, region


def _code_order(code: str) -> tuple[int, ...]:
    # "10.1.5" after "9.4.2": compare numerically, not as text
    return tuple(int(p) if p.isdigit() else 0 for p in str(code).split("."))


@dataclass
class Plan:
    """Training sets, evaluations and exclusions of one domain (see module docstring)."""

    domain: str
    sets: pd.DataFrame
    evaluations: pd.DataFrame
    excluded: pd.DataFrame
    config: PlanConfig
    rois: tuple[str, ...]
    # An experiment left empty by a threshold: which setting to lower, and to what (see
    # :func:`threshold_advice`).
    advice: tuple[str, ...] = ()

    @property
    def training_keys(self) -> list[str]:
        """Keys of the sets that are actually trained (one per distinct site list), in plan order."""
        return [k for k, t in zip(self.sets["key"], self.sets["trained_as"], strict=True) if k == t]

    def sites_of(self, key: str) -> tuple[str, ...]:
        row = self.sets[self.sets["key"] == key]
        if row.empty:
            raise InputError("plan", f"no training set {key!r}", self.domain)
        return row["site_ids"].iloc[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists, missing values None)."""

        def records(df: pd.DataFrame, tuple_cols: Sequence[str]) -> list[dict[str, Any]]:
            out = []
            for rec in df.astype(object).where(df.notna(), None).to_dict("records"):
                for c in tuple_cols:
                    rec[c] = list(rec[c])
                out.append(
                    {k: (int(v) if k.startswith("n_") and v is not None else v) for k, v in rec.items()}
                )
            return out

        return {
            "domain": self.domain,
            "config": self.config.model_dump(),
            "rois": list(self.rois),
            "sets": records(self.sets, TUPLE_COLUMNS["sets"]),
            "evaluations": records(self.evaluations, TUPLE_COLUMNS["evaluations"]),
            "excluded": records(self.excluded, ()),
            "set_columns": list(self.sets.columns),
            "evaluation_columns": list(self.evaluations.columns),
            "advice": list(self.advice),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Inverse of :meth:`to_dict`."""
        try:
            sets = pd.DataFrame(data["sets"], columns=data.get("set_columns", list(SET_COLUMNS)))
            evals = pd.DataFrame(
                data["evaluations"], columns=data.get("evaluation_columns", list(EVAL_COLUMNS))
            )
            excluded = pd.DataFrame(data["excluded"], columns=list(EXCLUDED_COLUMNS))
            config = PlanConfig(**data["config"])
            domain, rois = data["domain"], tuple(data["rois"])
            advice = tuple(str(a) for a in data.get("advice", ()))
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError("plan", f"not a serialised plan: {exc!r}") from exc
        sets["site_ids"] = [tuple(v) for v in sets["site_ids"]]
        evals["eval_site_ids"] = [tuple(v) for v in evals["eval_site_ids"]]
        return cls(domain, _typed(sets), _typed(evals), _typed(excluded), config, rois, advice)


def _lower_hint(name: str, value: int, largest: tuple[str, int] | None, what: str) -> str:
    """'no <what> reaches <name>=<value> (largest: X with n sites): lower <name> to n ...'."""
    if largest is None:
        return f"no site lies in any {what}, so no threshold helps: check the sites' ecoregion tags"
    region, n = largest
    return (
        f"no {what} reaches {name}={value} (largest: {region} with {n} sites): lower {name} to {n} "
        f"or less (study file `thresholds: {{{name}: {n}}}`, or the override `thresholds.{name}={n}`)"
    )


def _largest(counts: pd.Series) -> tuple[str, int] | None:
    counts = counts[counts > 0]
    if counts.empty:
        return None
    top = counts.sort_values(ascending=False, kind="stable")
    return str(top.index[0]), int(top.iloc[0])


def threshold_advice(plan: Plan) -> list[str]:
    """Messages for experiments a threshold left without any set (empty when both have sets)."""
    return list(plan.advice)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    for c in df.columns:
        if c.startswith("n_"):
            df[c] = df[c].astype("int64")
    return df


def _check_tagged(tagged: pd.DataFrame) -> pd.DataFrame:
    need = ("site_id", "l1", "l2", "l3", "subregion")
    missing = [c for c in need if c not in tagged.columns]
    if missing:
        raise InputError("tagged sites", f"missing columns {missing}; have {list(tagged.columns)}")
    df = tagged[list(need)].copy()
    df["site_id"] = df["site_id"].astype(str)
    for c in ("l1", "l2", "l3"):
        df[c] = df[c].astype(str).str.strip()
    dup = df["site_id"].duplicated()
    if dup.any():
        raise InputError(
            "tagged sites", f"duplicate site ids: {df.loc[dup, 'site_id'].unique()[:5].tolist()}", "site_id"
        )
    if df.empty:
        raise InputError("tagged sites", "no sites to plan with")
    return df.reset_index(drop=True)


def build_plan(
    tagged: pd.DataFrame,
    domain: str,
    cfg: PlanConfig,
    rois_preferred: Sequence[str] | None = None,
    periods: DomainPeriods | None = None,
    size_controlled: bool = True,
    curves: CurveConfig | None = None,
    scheme_regions: pd.DataFrame | None = None,
    ecoregions: bool = True,
    spatial: SpatialSpec | None = None,
    places: pd.DataFrame | None = None,
) -> Plan:
    """Build the plan from tagged sites (columns site_id, l1, l2, l3, subregion).

    ``rois_preferred``: ROIs to use where they hold at least ``cfg.min_sites_roi`` sites (the
    paper's are in :data:`synergy_dagster.config.PAPER_ROIS`); if none qualifies, or None is given,
    every Level III region with enough sites is an ROI. ``size_controlled=False`` skips the sized
    sets (the paper ran them for soil moisture only). ``periods`` adds train_period/test_period
    text columns to the sets. ``scheme_regions`` (columns scheme, site_id, region; from
    :func:`synergy_dagster.regions.schemes.assign_schemes`) adds global vs local under each further
    scheme; ``ecoregions=False`` leaves out the ecoregion sub-regions' local sets (a study whose
    stratification does not list them). ``spatial`` adds the PUB / PUR holdouts over the
    sub-regions (:mod:`synergy_dagster.experiments.spatial`; ``places``: lat, lon and static
    attributes indexed by site id, for PUR's partner regions)."""
    if domain not in DOMAINS:
        raise InputError("domain", f"unknown domain {domain!r}; expected one of {DOMAINS}")
    df = _check_tagged(tagged)
    sets: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []

    def add_set(
        scenario: str, region: str, experiment: str, ids: Sequence[str], rule: str | None = None
    ) -> str:
        ids_t = tuple(sorted(str(s) for s in ids))
        key = set_key(scenario, region)
        sets.append(
            {
                "domain": domain,
                "key": key,
                "scenario": scenario,
                "region": region,
                "experiment": experiment,
                "site_ids": ids_t,
                "n_sites": len(ids_t),
                "sites_hash": sites_hash(ids_t),
                "trained_as": None,
                "added_rule": rule,
            }
        )
        return key

    def exclude(experiment: str, region: str, scenario: str | None, n: int, reason: str) -> None:
        excluded.append(
            {
                "domain": domain,
                "experiment": experiment,
                "region": region,
                "scenario": scenario,
                "n_sites": int(n),
                "reason": reason,
            }
        )

    def evaluate(experiment: str, region: str, scenario: str, key: str, ids: Sequence[str]) -> None:
        eval_ids = tuple(sorted(str(s) for s in ids))
        evals.append(
            {
                "domain": domain,
                "experiment": experiment,
                "region": region,
                "scenario": scenario,
                "set_key": key,
                "model_key": None,
                "eval_site_ids": eval_ids,
                "n_eval": len(eval_ids),
            }
        )

    # --- global vs local -------------------------------------------------------------------------
    global_key = add_set("global", "CONUS", "global_vs_local", df["site_id"])
    n_min = cfg.min_sites_subregion
    for letter in LETTERS if ecoregions else ():
        ids = df.loc[df["subregion"] == letter, "site_id"].tolist()
        if len(ids) < n_min:
            exclude(
                "global_vs_local",
                letter,
                "local",
                len(ids),
                "no sites" if not ids else f"{len(ids)} sites < min_sites_subregion={n_min}",
            )
            continue
        key = add_set("local", letter, "global_vs_local", ids)
        evaluate("global_vs_local", letter, "global", global_key, ids)
        evaluate("global_vs_local", letter, "local", key, ids)

    # --- global vs local under further schemes ------------------------------------------------------
    if scheme_regions is not None and len(scheme_regions):
        known = df[["site_id"]]
        regs = scheme_regions.assign(site_id=scheme_regions["site_id"].astype(str)).merge(known, on="site_id")
        regs = regs[regs["scheme"] != "ecoregions"]  # the ecoregion sets are the ones above
        for (scheme, region), group in regs.groupby(["scheme", "region"], sort=True):
            experiment = scheme_experiment(str(scheme))
            ids = group["site_id"].tolist()
            if len(ids) < n_min:
                exclude(
                    experiment,
                    str(region),
                    "local",
                    len(ids),
                    f"{len(ids)} sites < min_sites_subregion={n_min}",
                )
                continue
            key = add_set(f"local{SCHEME_SEP}{scheme}", str(region), experiment, ids)
            evaluate(experiment, str(region), "global", global_key, ids)
            evaluate(experiment, str(region), "local", key, ids)

    # --- similar vs dissimilar ---------------------------------------------------------------------
    l3_counts = df["l3"].value_counts()
    eligible = [c for c in sorted(l3_counts.index, key=_code_order) if l3_counts[c] >= cfg.min_sites_roi]
    rois: list[str] = []
    if rois_preferred is not None:
        for code in rois_preferred:
            code = str(code).strip()
            n = int(l3_counts.get(code, 0))
            if code in eligible:
                rois.append(code)
            else:
                exclude(
                    "similarity",
                    code,
                    "local",
                    n,
                    f"preferred ROI has {n} sites < min_sites_roi={cfg.min_sites_roi}",
                )
    if not rois:
        rois = eligible
    rois = sorted(dict.fromkeys(rois), key=_code_order)

    # A threshold that leaves an experiment empty says which setting to lower and to what; when
    # both are empty the plan holds the global set only and compares nothing: refuse it.
    advice: list[str] = []
    if ecoregions and not any(s["scenario"] == "local" for s in sets):
        in_letters = df["subregion"].where(df["subregion"].isin(LETTERS)).dropna()
        advice.append(
            _lower_hint("min_sites_subregion", n_min, _largest(in_letters.value_counts()), "sub-region")
        )
    if not rois:
        advice.append(
            _lower_hint("min_sites_roi", cfg.min_sites_roi, _largest(l3_counts), "Level III region")
        )
    if len(advice) == 2:
        raise ConfigError(
            "study thresholds",
            "the plan would hold the global set only and compare nothing: " + "; ".join(advice),
            domain,
        )

    for roi in rois:
        in_roi = df["l3"] == roi
        l2, l1 = df.loc[in_roi, "l2"].iloc[0], df.loc[in_roi, "l1"].iloc[0]
        roi_ids = df.loc[in_roi, "site_id"].tolist()
        added = {
            "local+close": df.loc[(df["l2"] == l2) & ~in_roi, "site_id"].tolist(),
            "local+far": df.loc[(df["l1"] == l1) & (df["l2"] != l2), "site_id"].tolist(),
            "local+dissimilar": df.loc[df["l1"] != l1, "site_id"].tolist(),
        }
        local_key = add_set("local", roi, "similarity", roi_ids)
        evaluate("similarity", roi, "local", local_key, roi_ids)
        for scenario in NEIGHBOUR_SCENARIOS:
            if not added[scenario]:
                exclude("similarity", roi, scenario, len(roi_ids), "adds no sites to the ROI")
                continue
            key = add_set(scenario, roi, "similarity", roi_ids + added[scenario])
            evaluate("similarity", roi, scenario, key, roi_ids)
        if curves is not None:  # synergy curves (experiments/synergy.py), when the study asks
            curve, no_curve = curve_sets(roi, roi_ids, added, curves)
            for c in curve:
                add_set(c.scenario, roi, CURVE_EXPERIMENT, c.site_ids, c.rule)
            for pool, reason in no_curve:
                exclude(CURVE_EXPERIMENT, roi, f"curve+{pool}", len(roi_ids), reason)
        if not size_controlled:
            continue
        k = min(len(v) for v in added.values())
        if k == 0:
            empty = [s for s, v in added.items() if not v]
            for scenario in NEIGHBOUR_SCENARIOS:
                exclude(
                    "similarity_sized",
                    roi,
                    SIZED[scenario],
                    len(roi_ids),
                    f"size control impossible: {', '.join(empty)} adds no sites",
                )
            continue
        evaluate("similarity_sized", roi, "local", local_key, roi_ids)
        for scenario in NEIGHBOUR_SCENARIOS:
            picks = pick_added(added[scenario], k, cfg.size_control_seed, roi)
            rule = rule_text(cfg.size_control_seed, roi, len(added[scenario]), k)
            key = add_set(SIZED[scenario], roi, "similarity", list(roi_ids) + list(picks), rule)
            evaluate("similarity_sized", roi, SIZED[scenario], key, roi_ids)

    if spatial is not None and spatial.enabled:  # spatial holdouts (experiments/spatial.py)
        sp = spatial_plan(df.rename(columns={"subregion": "region"}), spatial, n_min, places)
        for s in sp.sets:
            add_set(s.scenario, s.region, s.experiment, s.site_ids, s.rule)
        for e in sp.evaluations:
            evaluate(e.experiment, e.group, e.scenario, e.set_key, e.site_ids)
        for experiment, region, scenario, n, reason in sp.excluded:
            exclude(experiment, region, scenario, n, reason)

    sets_df = pd.DataFrame(sets, columns=list(SET_COLUMNS))
    # a spatial set shares a model only with another spatial set: its normaliser is fitted on its own
    # sites (a strict holdout), so a temporal set's model is never its twin
    twin = sets_df["sites_hash"] + sets_df["scenario"].isin(SPATIAL_SCENARIOS).map(
        {True: ":spatial", False: ""}
    )
    first_by_hash: dict[str, str] = {}
    for key, h in zip(sets_df["key"], twin, strict=True):
        first_by_hash.setdefault(h, key)
    sets_df["trained_as"] = twin.map(first_by_hash)
    if periods is not None:
        sets_df["train_period"] = f"{periods.train.start}/{periods.train.end}"
        sets_df["test_period"] = f"{periods.test.start}/{periods.test.end}"
    evals_df = pd.DataFrame(evals, columns=list(EVAL_COLUMNS))
    evals_df["model_key"] = evals_df["set_key"].map(
        dict(zip(sets_df["key"], sets_df["trained_as"], strict=True))
    )
    excluded_df = pd.DataFrame(excluded, columns=list(EXCLUDED_COLUMNS))
    return Plan(
        domain, _typed(sets_df), _typed(evals_df), _typed(excluded_df), cfg, tuple(rois), tuple(advice)
    )
