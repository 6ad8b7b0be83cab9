"""The reproduction report: the paper's headline claims, as data, next to this run's numbers, with a
verdict per claim (holds / does not hold / inconclusive / not testable here) and what differs in the
setup.

The claims come from Fang et al. (WRR 2022): the global vs local numbers of section 3.1 and
Table 2, and the direction of each similarity comparison pooled over the ROIs (Tables 3-5 and the
text of section 3.2). A claim that ``a`` beats ``b`` **holds** when this run agrees on the direction
(the paper's statistic, mean or median, of ``a`` better than ``b``'s and, where the paper gives a
share of sites, ``a`` better at more than half of them) and, where the paper reports significance,
the run's Wilcoxon p-value is below ``alpha``. It **does not hold** when the run has a significant
difference the claim does not describe, or when the bootstrap interval of the median paired
difference lies within the equivalence margin (no effect); otherwise the run is **inconclusive**.
A claim of no difference holds only when p >= ``alpha`` and that interval lies within the margin
(so an underpowered run is inconclusive, not a pass), and does not hold when p < ``alpha``. An
every-region claim holds when every region holds, does not hold when a region is reversed
(significantly, or at all where the paper gave only the direction), else is inconclusive. A
comparison the run does not have (domain absent, experiment empty, no pair) is "not testable
here". The seed rows judged follow the ``seed_aggregation`` setting
(:func:`~synergy_dagster.evaluation.statistics.judged_seed_label`); with several seeds every claim
is also judged per seed and the report lists the claims whose verdict changes with the seed.
Free of Dagster: the ``reproduction_report`` asset gathers the inputs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from synergy_dagster.config import Profile
from synergy_dagster.domains import DOMAIN_RECORDS
from synergy_dagster.evaluation.every_region import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_HOLDS,
    REGION_HOLDS,
    every_region_rule,
    region_status,
)
from synergy_dagster.evaluation.metrics import METRICS
from synergy_dagster.evaluation.statistics import (
    SEED_MEAN,
    judged_seed_label,
    paired_valid,
    per_site_seed_means,
)
from synergy_dagster.evaluation.study import COMPARISONS
from synergy_dagster.evaluation.summary import markdown_table, spatial_section
from synergy_dagster.study_file import StudyFile

if TYPE_CHECKING:
    from synergy_dagster.evaluation.spatial import SpatialResults

__all__ = [
    "CLAIMS",
    "HOLDS",
    "INCONCLUSIVE",
    "NOT_HOLDS",
    "NOT_TESTABLE",
    "PAPER_SETUP",
    "PAPER_TABLE2",
    "VERDICTS",
    "VERDICT_COLUMNS",
    "Claim",
    "Report",
    "RunSetup",
    "build_report",
    "claims_table",
    "run_setup",
    "verdicts",
]

NOT_TESTABLE = "not testable here"
VERDICTS = (HOLDS, NOT_HOLDS, INCONCLUSIVE, NOT_TESTABLE)
ALL = "All"
# The metrics the paper reports per domain (the similarity overview shows these).
_PAPER_METRICS = {d: r.paper_metrics for d, r in DOMAIN_RECORDS.items()}


@dataclass(frozen=True)
class Claim:
    """One claim of the paper about one comparison and metric.

    ``better``: the side the paper found better (``"a"`` / ``"b"`` of the comparison in
    :data:`~synergy_dagster.evaluation.study.COMPARISONS`), or ``"none"`` for "no significant
    difference". ``scope``: ``"pooled"`` (all sites of the experiment) or ``"every_region"``
    (the direction in each region; significance where Table 2 reports p < 0.05 for the region).
    ``paper_a`` / ``paper_b`` aggregate the sites by ``statistic``; ``paper_share`` is the share of
    sites where the better side wins; ``paper_p`` and ``paper_n`` are the pooled test.
    """

    claim_id: str
    domain: Literal["soil_moisture", "streamflow"]
    experiment: str
    comparison: str
    metric: str
    better: Literal["a", "b", "none"]
    significant: bool
    source: str
    scope: Literal["pooled", "every_region"] = "pooled"
    statistic: Literal["mean", "median"] = "median"
    paper_a: float | None = None
    paper_b: float | None = None
    paper_share: float | None = None
    paper_p: float | None = None
    paper_n: int | None = None
    note: str = ""

    @property
    def scenarios(self) -> tuple[str, str]:
        for label, a, b in COMPARISONS[self.experiment]:
            if label == self.comparison:
                return a, b
        raise KeyError(f"{self.claim_id}: no comparison {self.comparison!r} in {self.experiment}")


_GVL = "global vs local"
_SIM = [c[0] for c in COMPARISONS["similarity"]]
_SIZED = [c[0] for c in COMPARISONS["similarity_sized"]]


def _similarity_claims() -> list[Claim]:
    out: list[Claim] = []
    # Table 3 (soil moisture, size not controlled), "All" rows, N = 429: every comparison
    # significant, the more diverse set better ("monotonically improved", section 3.2.1).
    for metric, ps in (
        ("rmse", (2.44e-44, 1.09e-42, 9.94e-52, 4.56e-67)),
        ("corr", (7.05e-41, 7.08e-34, 1.36e-35, 5.38e-58)),
    ):
        for comp, p in zip(_SIM, ps, strict=True):
            out.append(
                Claim(
                    f"sm_sim_{metric}_{comp.replace(' ', '_')}",
                    "soil_moisture",
                    "similarity",
                    comp,
                    metric,
                    "b",
                    True,
                    "Table 3, section 3.2.1",
                    paper_p=p,
                    paper_n=429,
                )
            )
    # Table 4 (streamflow, size not controlled), "All" rows, N = 1101: diversity helped, but NSE
    # local+close vs local+far was not significant pooled (p = 0.185; NSE dropped in some ROIs).
    for metric, ps in (
        ("corr", (1.70e-63, 4.19e-32, 1.34e-24, 1.54e-66)),
        ("nse", (7.35e-69, 1.85e-01, 2.23e-36, 1.27e-14)),
    ):
        for comp, p in zip(_SIM, ps, strict=True):
            none = p >= 0.05
            out.append(
                Claim(
                    f"q_sim_{metric}_{comp.replace(' ', '_')}",
                    "streamflow",
                    "similarity",
                    comp,
                    metric,
                    "none" if none else "b",
                    not none,
                    "Table 4, section 3.2.1",
                    paper_p=p,
                    paper_n=1101,
                    note="NSE dropped from local+close to local+far in 8.4.1, 8.4.2, 9.2.3" if none else "",
                )
            )
    # Table 5 / Figure 6 (soil moisture, size controlled), pooled, as the text states them: far and
    # dissimilar significantly better than close, no meaningful difference far vs dissimilar. The
    # p-values are Panel B's (labelled correlation); Panel A repeats Table 3 Panel B verbatim.
    sized_p = {"corr": (2.44e-44, 3.32e-14, 0.836737, 4.61e-14), "rmse": (None, None, None, None)}
    for metric in ("rmse", "corr"):
        for comp, p in zip(_SIZED, sized_p[metric], strict=True):
            none = comp == _SIZED[2]
            out.append(
                Claim(
                    f"sm_sized_{metric}_{comp.replace(' ', '_')}",
                    "soil_moisture",
                    "similarity_sized",
                    comp,
                    metric,
                    "none" if none else "b",
                    not none,
                    "Table 5, section 3.2.2",
                    paper_p=p,
                    paper_n=429,
                    note=(
                        "Table 5's Panel A repeats Table 3 Panel B verbatim; direction from the text"
                        if metric == "rmse"
                        else "Panel B, labelled correlation (its first column equals Table 3's RMSE)"
                    ),
                )
            )
    return out


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "sm_gvl_rmse",
        "soil_moisture",
        "global_vs_local",
        _GVL,
        "rmse",
        "a",
        True,
        "section 3.1, Table 2",
        statistic="mean",
        paper_a=0.32,
        paper_b=0.38,
        paper_share=0.87,
        paper_p=1.08e-201,
        paper_n=1577,
        note="RMSE as printed; in m3/m3 most likely 0.032 vs 0.038",
    ),
    Claim(
        "sm_gvl_corr",
        "soil_moisture",
        "global_vs_local",
        _GVL,
        "corr",
        "a",
        True,
        "section 3.1, Table 2",
        statistic="mean",
        paper_a=0.82,
        paper_b=0.75,
        paper_share=0.95,
        paper_p=2.39e-244,
        paper_n=1577,
    ),
    Claim(
        "q_gvl_corr",
        "streamflow",
        "global_vs_local",
        _GVL,
        "corr",
        "a",
        True,
        "section 3.1, Table 2",
        paper_a=0.84,
        paper_b=0.79,
        paper_share=0.84,
        paper_p=4.34e-58,
        paper_n=525,
    ),
    Claim(
        "q_gvl_nse",
        "streamflow",
        "global_vs_local",
        _GVL,
        "nse",
        "a",
        True,
        "section 3.1, Table 2",
        paper_a=0.73,
        paper_b=0.65,
        paper_share=0.81,
        paper_p=3.18e-45,
        paper_n=525,
    ),
    Claim(
        "sm_gvl_rmse_regions",
        "soil_moisture",
        "global_vs_local",
        _GVL,
        "rmse",
        "a",
        True,
        "section 3.1, Figure 2, Table 2",
        scope="every_region",
        note="median RMSE smaller for the global model in each region",
    ),
    Claim(
        "sm_gvl_corr_regions",
        "soil_moisture",
        "global_vs_local",
        _GVL,
        "corr",
        "a",
        True,
        "section 3.1, Figure 2, Table 2",
        scope="every_region",
        note="median correlation larger for the global model in each region",
    ),
    Claim(
        "q_gvl_nse_regions",
        "streamflow",
        "global_vs_local",
        _GVL,
        "nse",
        "a",
        True,
        "section 3.1, Figure 3, Table 2",
        scope="every_region",
        note="median NSE larger for the global model in each region (K and Q: p > 0.01)",
    ),
    *_similarity_claims(),
)


def _table2() -> pd.DataFrame:
    """Table 2 per sub-region: N and the p-values of global vs local ("No pixels/basins" left out)."""
    regions = [*"ABCDEFGHIJKLMNOPQR", ALL]
    sm_rmse = "3.87E-04 6.74E-03 - 7.27E-10 1.83E-08 2.21E-29 6.64E-18 3.34E-08 1.26E-19 4.91E-24 2.18E-33 "
    sm_rmse += "1.94E-06 4.05E-17 3.75E-17 4.12E-05 3.79E-06 7.27E-07 8.90E-03 1.08E-201"
    sm_corr = "1.68E-10 1.19E-16 - 2.43E-13 6.76E-08 8.39E-32 6.24E-18 7.76E-09 2.41E-21 4.60E-24 2.02E-33 "
    sm_corr += "1.34E-07 9.00E-27 1.72E-23 5.91E-06 3.79E-06 6.14E-08 2.50E-04 2.39E-244"
    sm_n = "65 105 0 71 43 192 99 45 120 136 193 37 194 158 33 28 39 19 1577"
    q_corr = "1.00E-09 9.78E-14 6.55E-04 1.82E-05 1.82E-04 8.84E-07 8.29E-06 1.68E-07 1.26E-04 4.38E-04 "
    q_corr += "9.03E-02 - 3.70E-03 - 7.65E-03 - 1.80E-02 - 4.34E-58"
    q_nse = "8.33E-08 3.55E-12 8.05E-04 3.18E-04 2.90E-03 3.78E-03 5.99E-11 1.31E-06 4.75E-03 7.17E-03 "
    q_nse += "9.57E-01 - 2.22E-03 - 4.44E-03 - 1.80E-02 - 3.18E-45"
    q_n = "54 96 15 24 19 74 89 36 32 16 40 0 12 0 11 0 7 0 525"
    rows = []
    for domain, n_text, by_metric in (
        ("soil_moisture", sm_n, {"rmse": sm_rmse, "corr": sm_corr}),
        ("streamflow", q_n, {"corr": q_corr, "nse": q_nse}),
    ):
        ns = [int(v) for v in n_text.split()]
        for metric, text in by_metric.items():
            for region, n, p in zip(regions, ns, text.split(), strict=True):
                if p != "-":
                    rows.append({"domain": domain, "region": region, "metric": metric, "n": n, "p": float(p)})
    return pd.DataFrame(rows)


# The paper's Table 2 (global vs local p-values per sub-region A-R and "All", with N).
PAPER_TABLE2 = _table2()

# What the paper used, per domain and for the study, to set beside this run's (section 2).
PAPER_SETUP: dict[str, dict[str, str]] = {
    "study": {
        "network": "Linear(256)+ReLU, LSTM(256), Linear; DropConnect 0.5",
        "training": "AdaDelta, 500 epochs of the paper's rule, no validation split, last epoch tested",
        "seeds": "1 model per training set",
        "Wilcoxon p-values": "scipy normal approximation (two-sided, zeros dropped)",
        "code": "the authors' scripts (2021)",
    },
    "soil_moisture": {
        "data": "SMAP L3SMP v6 (36 km EASE-Grid), CONUS",
        "sites tested, global vs local": "1577 pixels (17 sub-regions)",
        "sites tested, similarity": "429 pixels (7 ROIs)",
        "dynamic inputs": "NLDAS-2: precipitation, temperature, long/short-wave radiation, humidity, wind",
        "static inputs": "SMAP flags (land cover, roughness, vegetation), ISRIC-WISE soils, GIMMS NDVI",
        "training period": "2015-04-01..2016-03-31 (section 2.3.3: 2015-04-01..2017-04-01)",
        "test period": "2016-04-01..2018-03-31 (section 2.3.3: 2017-04-01..2018-04-01)",
    },
    "streamflow": {
        "data": "USGS NWIS runoff, 576 GAGES-II reference basins (>90% complete)",
        "sites tested, global vs local": "525 basins (14 sub-regions)",
        "sites tested, similarity": "1101 basins (12 ROIs with >= 60 basins)",
        "dynamic inputs": "gridMET: pr, sph, srad, tmmn, tmmx, pet, etr",
        "static inputs": "17 GAGES-II attributes",
        "training period": "1979-01-01..2009-12-31",
        "test period": "2010-01-01..2019-12-31",
    },
}


@dataclass
class RunSetup:
    """This run's setup, as text per aspect, beside :data:`PAPER_SETUP` (same keys where they match)."""

    study: dict[str, str] = field(default_factory=dict)
    domains: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Report:
    markdown: str
    verdicts: pd.DataFrame


VERDICT_COLUMNS = [
    "claim_id",
    "domain",
    "experiment",
    "comparison",
    "metric",
    "scope",
    "claim",
    "paper",
    "run",
    "seed",
    "n",
    "run_a",
    "run_b",
    "run_share",
    "p_value",
    "verdict",
    "reason",
    "seed_verdicts",
    "seeds_differ",
]


def claims_table(claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """The claims as one table (one row per claim, the :class:`Claim` fields as columns)."""
    return pd.DataFrame([dataclasses.asdict(c) for c in claims])


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


def _p(v: float | None) -> str:
    return "n/a" if v is None or np.isnan(v) else (f"{v:.2e}" if v < 1e-3 else f"{v:.3f}")


def _claim_text(c: Claim) -> str:
    a, b = c.scenarios
    if c.better == "none":
        return f"{c.metric}: no significant difference between {a} and {b}"
    win, lose = (a, b) if c.better == "a" else (b, a)
    where = "in every region" if c.scope == "every_region" else "pooled"
    sig = ", significant" if c.significant else ""
    return f"{c.metric}: {win} better than {lose} {where}{sig}"


def _paper_text(c: Claim) -> str:
    parts = []
    if c.paper_a is not None and c.paper_b is not None:
        parts.append(f"{c.statistic} {c.paper_a:g} vs {c.paper_b:g}")
    if c.paper_share is not None:
        parts.append(f"{c.paper_share:.0%} of sites")
    if c.paper_p is not None:
        parts.append(f"p = {_p(c.paper_p)}")
    if c.paper_n is not None:
        parts.append(f"N = {c.paper_n}")
    if c.scope == "every_region":
        parts.append("Table 2 per region")
    return "; ".join(parts) or "direction only"


def _paired(
    site_metrics: pd.DataFrame | None, c: Claim, seed: str, region: str | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's per-site values of ``a`` and ``b`` paired by (region, site), or None."""
    if site_metrics is None or site_metrics.empty:
        return None
    a, b = c.scenarios
    sm = site_metrics[
        (site_metrics["domain"] == c.domain)
        & (site_metrics["experiment"] == c.experiment)
        & (site_metrics["seed"].astype(str) == seed)
    ]
    if region is not None:
        sm = sm[sm["region"].astype(str) == region]
    left = sm[sm["scenario"] == a][["region", "site_id", c.metric]]
    right = sm[sm["scenario"] == b][["region", "site_id", c.metric]]
    pair = left.merge(right, on=["region", "site_id"], suffixes=("_a", "_b"))
    if pair.empty:
        return None
    return paired_valid(pair[f"{c.metric}_a"].to_numpy(float), pair[f"{c.metric}_b"].to_numpy(float))


def _direction(
    c: Claim, agg_a: float, agg_b: float, share_win: float | None, statistic: str | None = None
) -> tuple[bool, str]:
    """Whether the run's direction agrees with the claim's ``better`` side, and why; ``statistic``
    names what ``agg_a``/``agg_b`` are (default the claim's own)."""
    higher = METRICS[c.metric].higher_is_better
    a, b = c.scenarios
    a_better = agg_a > agg_b if higher else agg_a < agg_b
    b_better = agg_b > agg_a if higher else agg_b < agg_a
    ok = a_better if c.better == "a" else b_better
    winner = a if c.better == "a" else b
    stat = statistic or c.statistic
    why = f"{stat} {winner} {'better' if ok else 'not better'} ({_fmt(agg_a)} vs {_fmt(agg_b)})"
    if ok and c.paper_share is not None and share_win is not None and not share_win > 0.5:
        return False, f"{why} but {winner} better at only {share_win:.0%} of sites"
    return ok, why


def _aggregate(values: np.ndarray, statistic: str) -> float:
    return float(np.mean(values)) if statistic == "mean" else float(np.median(values))


def _within_margin(row: pd.Series, margin: float) -> tuple[bool, str]:
    """Whether the row's interval of the median paired difference lies within +/- ``margin`` x
    |median of b| (no difference larger than the margin), and the interval as text."""
    lo, hi = float(row["ci_low"]), float(row["ci_high"])
    bound = margin * abs(float(row["median_b"]))
    text = f"CI [{_fmt(lo)}, {_fmt(hi)}] vs +/-{_fmt(bound)}"
    inside = bool(np.isfinite(lo) and np.isfinite(hi) and -bound <= lo and hi <= bound)
    return inside, text


def _pooled_verdict(
    c: Claim,
    row: pd.Series,
    pair: tuple[np.ndarray, np.ndarray] | None,
    alpha: float,
    margin: float = 0.02,
) -> dict:
    """The verdict of a pooled claim from its significance row (and the sites, when given)."""
    n = int(row["n"])
    p = float(row["p_value"])
    higher = METRICS[c.metric].higher_is_better
    by_site = pair is not None and pair[0].size > 0
    if by_site:
        x, y = pair
        agg_a, agg_b = _aggregate(x, c.statistic), _aggregate(y, c.statistic)
        win = (x > y if higher else x < y) if c.better != "b" else (y > x if higher else y < x)
        share_win = float(np.mean(win))
    else:  # no site table: the significance row's medians and share
        agg_a, agg_b = float(row["median_a"]), float(row["median_b"])
        share_a = float(row["share_a_better"])
        share_win = share_a if c.better != "b" else float("nan")
    out = {"n": n, "run_a": agg_a, "run_b": agg_b, "run_share": share_win, "p_value": p}
    # without the sites the row's medians are judged, whatever the claim's statistic: say so
    stat = c.statistic if by_site else "median"
    run = f"{stat} {_fmt(agg_a)} vs {_fmt(agg_b)}"
    if c.better != "none" and not np.isnan(share_win):
        run += f"; {share_win:.0%} of sites"
    run += f"; p = {_p(p)}; n = {n}"
    out["run"] = run
    if n == 0:
        return out | {"verdict": NOT_TESTABLE, "reason": "no paired site in this run"}
    if np.isnan(p):
        return out | {"verdict": NOT_TESTABLE, "reason": "the test is undefined (every difference zero)"}
    significant = p < alpha
    inside, ci = _within_margin(row, margin)
    if c.better == "none":
        if significant:
            a, b = c.scenarios
            better = a if (agg_a > agg_b) == higher else b
            return out | {
                "verdict": NOT_HOLDS,
                "reason": f"{better} significantly better (p = {_p(p)} < {alpha:g})",
            }
        if inside:
            why = f"no significant difference (p = {_p(p)} >= {alpha:g}) and {ci}: equivalent"
            return out | {"verdict": HOLDS, "reason": why}
        why = f"p = {_p(p)} >= {alpha:g} but {ci}: a difference beyond the margin is not ruled out"
        return out | {"verdict": INCONCLUSIVE, "reason": why}
    ok, why = _direction(c, agg_a, agg_b, None if np.isnan(share_win) else share_win, stat)
    if ok and (significant or not c.significant):
        if c.significant:
            why += f"; p = {_p(p)} < {alpha:g}"
        return out | {"verdict": HOLDS, "reason": why}
    if significant:  # a significant difference the claim does not describe
        return out | {"verdict": NOT_HOLDS, "reason": f"{why}; p = {_p(p)} < {alpha:g}"}
    if inside:
        return out | {"verdict": NOT_HOLDS, "reason": f"{why}; p = {_p(p)} >= {alpha:g} and {ci}: no effect"}
    return out | {"verdict": INCONCLUSIVE, "reason": f"{why} but p = {_p(p)} >= {alpha:g} and {ci}"}


def _region_rows(c: Claim, sig: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per region of a global vs local claim: the run's medians, p and its status there
    (:func:`~synergy_dagster.evaluation.every_region.region_status`; significance required where
    Table 2 has p < 0.05 for the region)."""
    paper = PAPER_TABLE2[(PAPER_TABLE2["domain"] == c.domain) & (PAPER_TABLE2["metric"] == c.metric)]
    paper = paper.set_index("region")
    higher = METRICS[c.metric].higher_is_better
    rows = []
    for r in sig[sig["region"].astype(str) != ALL].itertuples():
        region = str(r.region)
        p_paper = float(paper.loc[region, "p"]) if region in paper.index else float("nan")
        agree = bool(r.median_a > r.median_b if higher else r.median_a < r.median_b)
        need_sig = bool(c.significant and p_paper < 0.05)
        rows.append(
            {
                "region": region,
                "paper_n": int(paper.loc[region, "n"]) if region in paper.index else 0,
                "paper_p": p_paper,
                "n": int(r.n),
                "median_global": float(r.median_a),
                "median_local": float(r.median_b),
                "share_global_better": float(r.share_a_better),
                "p_value": float(r.p_value),
                "status": region_status(agree, need_sig, float(r.p_value), alpha),
            }
        )
    return pd.DataFrame(rows)


def _every_region_verdict(c: Claim, sig: pd.DataFrame, alpha: float) -> tuple[dict, pd.DataFrame]:
    regions = _region_rows(c, sig, alpha)
    if regions.empty:
        return {"verdict": NOT_TESTABLE, "reason": "no region with both models", "run": "", "n": 0}, regions
    status = regions["status"]
    held = int((status == REGION_HOLDS).sum())
    n_reg = len(regions)
    out = {
        "n": int(regions["n"].sum()),
        "run_share": held / n_reg,
        "run": f"holds in {held} of {n_reg} regions",
    }
    verdict = every_region_rule(status)
    if verdict == HOLDS:
        why = f"direction (and p < {alpha:g} where the paper had significance) in all {n_reg}"
        return out | {"verdict": HOLDS, "reason": why}, regions
    failed = ", ".join(regions.loc[status == FAILS, "region"].astype(str))
    unsure = ", ".join(regions.loc[status == INCONCLUSIVE, "region"].astype(str))
    if verdict == NOT_HOLDS:
        why = f"fails in {failed}" + (f"; inconclusive in {unsure}" if unsure else "")
        return out | {"verdict": NOT_HOLDS, "reason": why}, regions
    why = f"inconclusive in {unsure} (direction without p < {alpha:g}, or a non-significant reversal)"
    return out | {"verdict": INCONCLUSIVE, "reason": why}, regions


def _judge(
    c: Claim,
    dom: pd.DataFrame,
    site_metrics: pd.DataFrame | None,
    seed: str,
    alpha: float,
    margin: float,
) -> tuple[dict, pd.DataFrame | None]:
    """One claim judged on the ``seed`` rows of its domain's significance rows ``dom``."""
    sig = dom[
        (dom["experiment"] == c.experiment)
        & (dom["comparison"] == c.comparison)
        & (dom["metric"] == c.metric)
        & (dom["seed"].astype(str) == seed)
    ]
    if sig.empty:
        why = f"no {c.experiment} comparison '{c.comparison}' in this run (experiment empty or not run)"
        return {"verdict": NOT_TESTABLE, "reason": why}, None
    if c.scope == "every_region":
        return _every_region_verdict(c, sig, alpha)
    pooled = sig[sig["region"].astype(str) == ALL]
    if pooled.empty:
        return {"verdict": NOT_TESTABLE, "reason": "no pooled (All) test in this run"}, None
    return _pooled_verdict(c, pooled.iloc[0], _paired(site_metrics, c, seed), alpha, margin), None


def verdicts(
    significance: pd.DataFrame,
    site_metrics: pd.DataFrame | None = None,
    alpha: float = 0.05,
    claims: Sequence[Claim] = CLAIMS,
    *,
    aggregation: str = "seed_mean",
    margin: float = 0.02,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """One row per claim (:data:`VERDICT_COLUMNS`), and per every-region claim its region table.

    ``significance``: the rows of the significance asset (columns domain, experiment, comparison,
    region, metric, seed, n, p_value, ci_low, ci_high, median_a, median_b, share_a_better);
    ``site_metrics``, when given, supplies the means the paper reports for soil moisture and the
    shares of sites. ``aggregation`` picks the seed rows judged (:func:`judged_seed_label`);
    ``margin``: the relative equivalence margin of "no difference". With several seeds each claim
    is also judged per seed (``seed_verdicts``) and ``seeds_differ`` says whether they disagree.
    """
    rows: list[dict[str, object]] = []
    regions: dict[str, pd.DataFrame] = {}
    if site_metrics is not None and "seed" in site_metrics.columns:
        # the stored site_metrics hold no seed_mean rows: add them, so seed-mean claims pair sites
        has = (site_metrics["seed"].astype(str) == SEED_MEAN).any()
        metrics = [m for m in METRICS if m in site_metrics.columns]
        if not has and metrics:
            means = per_site_seed_means(site_metrics, metrics)
            site_metrics = pd.concat([site_metrics, means], ignore_index=True) if len(means) else site_metrics
    for c in claims:
        base: dict[str, object] = {
            "claim_id": c.claim_id,
            "domain": c.domain,
            "experiment": c.experiment,
            "comparison": c.comparison,
            "metric": c.metric,
            "scope": c.scope,
            "claim": _claim_text(c),
            "paper": _paper_text(c),
            "seeds_differ": False,
        }
        dom = significance[significance["domain"] == c.domain]
        if dom.empty:
            rows.append(base | {"verdict": NOT_TESTABLE, "reason": f"no {c.domain} domain in this run"})
            continue
        seed = judged_seed_label(dom["seed"], aggregation)
        base["seed"] = seed
        res, table = _judge(c, dom, site_metrics, seed, alpha, margin)
        if table is not None:
            regions[c.claim_id] = table
        labels = dom["seed"].astype(str)
        per_seed = sorted(set(labels[labels.str.fullmatch(r"\d+")]), key=int)
        if len(per_seed) > 1:
            each = {s: _judge(c, dom, site_metrics, s, alpha, margin)[0]["verdict"] for s in per_seed}
            base["seed_verdicts"] = "; ".join(f"{s}: {v}" for s, v in each.items())
            base["seeds_differ"] = len(set(each.values())) > 1
        rows.append(base | res)
    return pd.DataFrame(rows).reindex(columns=VERDICT_COLUMNS), regions


def _similarity_overview(significance: pd.DataFrame, alpha: float, aggregation: str) -> pd.DataFrame:
    """Per domain, experiment, comparison and metric: in how many ROIs the more diverse set (b) had
    the better median, and in how many significantly (Holm-adjusted p < alpha)."""
    rows = []
    sim = significance[significance["experiment"].isin(["similarity", "similarity_sized"])]
    for (domain, exp, comp, metric), g in sim.groupby(
        ["domain", "experiment", "comparison", "metric"], sort=False
    ):
        if metric not in _PAPER_METRICS.get(str(domain), ()):
            continue
        g = g[
            g["seed"].astype(str)
            == judged_seed_label(significance[significance["domain"] == domain]["seed"], aggregation)
        ]
        rois = g[g["region"].astype(str) != ALL]
        if rois.empty:
            continue
        higher = METRICS[metric].higher_is_better
        b_better = rois["median_b"] > rois["median_a"] if higher else rois["median_b"] < rois["median_a"]
        pooled = g[g["region"].astype(str) == ALL]
        rows.append(
            {
                "domain": domain,
                "experiment": exp,
                "comparison": comp,
                "metric": metric,
                "ROIs": len(rois),
                "b better (median)": int(b_better.sum()),
                f"b better, p_holm<{alpha:g}": int((b_better & (rois["p_holm"] < alpha)).sum()),
                "All: median a": float(pooled["median_a"].iloc[0]) if len(pooled) else float("nan"),
                "All: median b": float(pooled["median_b"].iloc[0]) if len(pooled) else float("nan"),
                "All: p": float(pooled["p_value"].iloc[0]) if len(pooled) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def _setup_table(setup: RunSetup) -> str:
    parts = []
    study_rows = [
        {"aspect": k, "paper": v, "this run": setup.study.get(k, "")} for k, v in PAPER_SETUP["study"].items()
    ]
    study_rows += [
        {"aspect": k, "paper": "", "this run": v}
        for k, v in setup.study.items()
        if k not in PAPER_SETUP["study"]
    ]
    parts.append(markdown_table(pd.DataFrame(study_rows)))
    for domain, paper in PAPER_SETUP.items():
        if domain == "study":
            continue
        run = setup.domains.get(domain)
        parts.append(f"\n**{domain}**" + ("" if run else ": not in this run") + "\n")
        run = run or {}
        rows = [{"aspect": k, "paper": v, "this run": run.get(k, "")} for k, v in paper.items()]
        rows += [{"aspect": k, "paper": "", "this run": v} for k, v in run.items() if k not in paper]
        parts.append(markdown_table(pd.DataFrame(rows)))
    return "\n".join(parts)


def build_report(
    significance: pd.DataFrame,
    site_metrics: pd.DataFrame | None,
    setup: RunSetup,
    alpha: float = 0.05,
    claims: Sequence[Claim] = CLAIMS,
    title: str = "Reproduction report: Fang et al. (WRR 2022) against this run",
    *,
    aggregation: str = "seed_mean",
    margin: float = 0.02,
    spatial: SpatialResults | None = None,
) -> Report:
    """The report's Markdown and its verdict table (see the module docstring for the rules).

    ``spatial``: the study's spatial holdouts, shown last as this study's own results ("Beyond the
    paper"); they judge no claim, so the verdict table is the same with or without them, and
    without them (a study with no ``spatial:`` block) the Markdown is too."""
    table, regions = verdicts(
        significance, site_metrics, alpha, claims, aggregation=aggregation, margin=margin
    )
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS)
    judged = sorted(set(table["seed"].dropna().astype(str)))
    parts = [
        f"# {title}\n",
        f"{len(table)} claims of the paper: **{summary}** (alpha = {alpha:g}; seed aggregation "
        f"`{aggregation}`, rows judged: {', '.join(f'`{j}`' for j in judged) or 'none'}).\n",
        "A claim **holds** when this run agrees on the direction (the paper's statistic of the better "
        "side better and, where the paper gives a share, that side better at more than half the "
        f"sites) and, where the paper reports significance, Wilcoxon p < {alpha:g}. It **does not "
        f"hold** when the run shows a significant difference (p < {alpha:g}) the claim does not "
        "describe, or when the confidence interval of the median paired difference lies within the "
        f"equivalence margin (+/- {margin:g} x |median of the second model|: no effect). Otherwise "
        "the run is **inconclusive** (too little evidence either way). A claim of no difference "
        f"holds only when p >= {alpha:g} and that interval lies within the margin; a significant "
        "difference refutes it; a wide interval is inconclusive. Not testable here: the run has no "
        "such comparison. Seed aggregation `seed_mean`: per-site means of the per-seed metrics "
        "(seed `seed_mean`, the expected single model, as the paper trained one); `ensemble`: the "
        "seed-averaged prediction (seed `mean`); with one seed both are the `mean` rows.\n",
        "## What differs from the paper\n",
        _setup_table(setup),
        "\n## Claims and verdicts\n",
        markdown_table(table[["claim_id", "claim", "paper", "run", "verdict", "reason"]]),
    ]
    differ = table[table["seeds_differ"].astype(bool)]
    if "seed_verdicts" in table and table["seed_verdicts"].notna().any():
        parts.append("\n## Verdicts per seed\n")
        if differ.empty:
            parts.append("Every claim gets the same verdict under each seed.\n")
        else:
            parts.append(
                f"{len(differ)} claim(s) get a different verdict under different seeds; the "
                "aggregate verdict above is the one to quote, with this caveat:\n"
            )
            parts.append(markdown_table(differ[["claim_id", "verdict", "seed_verdicts"]]))
    for domain in ("soil_moisture", "streamflow"):
        dom_claims = [c for c in claims if c.domain == domain and c.scope == "every_region"]
        tables = [(c, regions[c.claim_id]) for c in dom_claims if c.claim_id in regions]
        if not tables:
            continue
        parts.append(f"\n## Global vs local per region: {domain}\n")
        for c, t in tables:
            parts.append(f"{c.metric} ({c.note}); paper: Table 2:\n")
            parts.append(markdown_table(t))
    overview = _similarity_overview(significance, alpha, aggregation)
    if not overview.empty:
        parts.append("\n## Similarity experiments per ROI (b = the more diverse training set)\n")
        parts.append(markdown_table(overview))
    notes: dict[str, list[str]] = {}
    for c in claims:
        if c.note:
            notes.setdefault(c.note, []).append(c.claim_id)
    parts.append("\n## Notes on the paper's numbers\n")
    parts.append("\n".join(f"- {note} ({', '.join(ids)})" for note, ids in notes.items()) + "\n")
    parts.append(
        "- The paper gives two sets of periods (section 2.1 and section 2.3.3); both are listed above.\n"
        "- The paper's p-values come from scipy's normal approximation (Table 2, region Q, n = 7, every "
        "basin one way: 1.80E-02; the exact test gives 0.0156).\n"
    )
    if spatial is not None:
        parts.append(
            "\n"
            + spatial_section(spatial, "## Beyond the paper: where there is no gauge", _beyond(alpha, margin))
        )
    return Report("\n".join(parts), table)


def _beyond(alpha: float, margin: float) -> str:
    """The opening of the report's spatial section: what it is and how its verdicts are read."""
    return (
        "The paper has no spatial holdout: nothing below is a claim of the paper, and no verdict above "
        "depends on it. These are this study's own results: PUB (k-fold over sites) and PUR (a whole "
        "region left out) predict each site, on the test period, by a model that never saw it "
        "(docs/spatial.md); a is the unified model, b the regional one (PUB: local, PUR: the partner "
        f"region). A comparison's verdict is `difference` (Holm-corrected p < {alpha:g}; `winner` the "
        "better model), `equivalent` (not significant and the interval of the median paired "
        f"difference within +/- {margin:g} x |median of b|) or `inconclusive`. In every region: "
        "`difference` when every region shows a significant difference for the same model (the "
        "every-region rule of the claims above), `equivalent` when every region is equivalent, "
        "`mixed` when regions differ significantly in both directions, else `inconclusive`.\n"
    )


def _inputs(models: pd.DataFrame) -> tuple[list[str], int]:
    """The inputs the models were fed (from ``config_json``) and the network's input width."""
    for text in models.get("config_json", pd.Series(dtype=str)).dropna():
        cfg = json.loads(text)
        return list(cfg.get("inputs", [])), int(cfg.get("n_in", 0))
    return [], 0


def _join(values: Sequence[object], limit: int = 12) -> str:
    vals = [str(v) for v in values]
    more = f" ... (+{len(vals) - limit})" if len(vals) > limit else ""
    return ", ".join(vals[:limit]) + more


def run_setup(
    study: StudyFile,
    profile: Profile,
    significance: pd.DataFrame,
    models: Mapping[str, pd.DataFrame],
    sources: pd.DataFrame | None = None,
    training_sets: Mapping[str, pd.DataFrame] | None = None,
    method: str = "paper",
) -> RunSetup:
    """This run's setup for the report from the study file (``StudyFile``), the resolved profile
    (``config.Profile``), the significance rows, and the store's ``models`` / ``sources`` /
    ``training_sets`` rows (per domain where a mapping)."""
    budget = getattr(profile, "budget", None)
    all_models = (
        pd.concat([m for m in models.values() if len(m)], ignore_index=True) if models else pd.DataFrame()
    )
    versions = (
        sorted(all_models["code_version"].dropna().astype(str).unique())
        if "code_version" in all_models
        else []
    )
    seeds = sorted(all_models["seed"].dropna().astype(int).unique()) if "seed" in all_models else []
    out = RunSetup()
    out.study = {
        "network": (
            f"Linear({profile.hidden})+ReLU, LSTM({profile.hidden}), Linear; "
            f"DropConnect {profile.dropconnect:g}"
        ),
        "training": (
            f"profile {profile.name}, budget {budget.mode}: "
            + ", ".join(f"{k}={v}" for k, v in budget.to_dict().items() if k != "mode" and v)
        ),
        "seeds": f"{len(seeds)} per training set ({_join(seeds)})" if seeds else "none trained",
        "Wilcoxon p-values": f"method {method}",
        "code": _join(versions) or "unknown",
        "study file": f"{study.name}" + (f" ({study.description})" if study.description else ""),
    }
    if len(all_models):
        stops = (
            all_models["stop_reason"].fillna("?").value_counts().to_dict()
            if "stop_reason" in all_models
            else {}
        )
        upd = all_models["n_iterations"].dropna() if "n_iterations" in all_models else pd.Series(dtype=float)
        out.study["models"] = (
            f"{len(all_models)} trained; stopped: {stops}; updates median {_fmt(upd.median(), '.0f')}"
        )
    for domain, spec in study.domains.items():
        inputs, n_in = _inputs(models.get(domain, pd.DataFrame()))
        dom_sig = significance[
            (significance["domain"] == domain) & (significance["region"].astype(str) == ALL)
        ]
        tested = {}
        for exp in ("global_vs_local", "similarity"):
            rows = dom_sig[dom_sig["experiment"] == exp]
            if len(rows):
                n_reg = significance[
                    (significance["domain"] == domain)
                    & (significance["experiment"] == exp)
                    & (significance["region"].astype(str) != ALL)
                ]["region"].nunique()
                kind = "sub-regions" if exp == "global_vs_local" else "ROIs"
                tested[exp] = f"{int(rows['n'].max())} sites ({n_reg} {kind})"
        src = ""
        if sources is not None and len(sources):
            s = sources[sources["source_name"] == domain]
            if len(s):
                r = s.iloc[0]
                src = f"{r['format']} at {r['path']}; {int(r['n_sites'])} sites, {str(r['period_start'])[:10]}..{str(r['period_end'])[:10]}"
        ts = (training_sets or {}).get(domain)
        n_global = ""
        if ts is not None and len(ts):
            g = ts[ts["scenario"] == "global"]
            if len(g):
                n_global = f"; global training set {int(g['n_sites'].iloc[0])} sites"
        static = spec.static if isinstance(spec.static, str) else _join(spec.static)
        dyn = set(spec.dynamic)
        used_static = [i for i in inputs if i not in dyn]
        p = spec.periods
        out.domains[domain] = {
            "data": f"reader {spec.reader}: {src or spec.path or 'virtual'}{n_global}",
            "sites tested, global vs local": tested.get("global_vs_local", "not run"),
            "sites tested, similarity": tested.get("similarity", "not run"),
            "dynamic inputs": _join(spec.dynamic),
            "static inputs": f"{static}"
            + (f" -> {len(used_static)} columns fed ({_join(used_static, 8)})" if inputs else ""),
            "training period": f"{p.train.start}..{p.train.end}",
            "test period": f"{p.test.start}..{p.test.end}",
            "target": spec.target,
        }
        if n_in:
            out.domains[domain]["network input width"] = str(n_in)
    return out
