"""The reproduction report's verdict rules, one synthetic case per rule (issue 26): significance at
the study's alpha, the share of sites, "no difference" refuted by a significant difference, the
per-region significance requirement, the inconclusive verdict, and verdicts that differ by seed.

The significance rows are written by hand so that each case sits exactly where one rule decides:
a p between 0.01 and 0.05, a share below one half, an interval inside or outside the margin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation import report as R
from synergy_dagster.evaluation.statistics import SEED_MEAN

_GVL = "global vs local"
_CLOSE_FAR = "local+close vs local+far"


def _row(
    claim: str,
    p: float,
    median_a: float,
    median_b: float,
    *,
    region: str = "All",
    share: float = 0.8,
    ci: tuple[float, float] = (0.05, 0.15),
    seed: str = "mean",
    n: int = 100,
) -> dict[str, object]:
    c = next(c for c in R.CLAIMS if c.claim_id == claim)
    a, b = c.scenarios
    return {
        "domain": c.domain,
        "experiment": c.experiment,
        "comparison": c.comparison,
        "scenario_a": a,
        "scenario_b": b,
        "region": region,
        "metric": c.metric,
        "seed": seed,
        "n": n,
        "p_value": p,
        "p_holm": p,
        "median_a": median_a,
        "median_b": median_b,
        "median_diff": median_a - median_b,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "share_a_better": share,
    }


def _verdict(rows: list[dict[str, object]], claim: str, alpha: float = 0.05, **kw: object) -> pd.Series:
    claims = [c for c in R.CLAIMS if c.claim_id == claim]
    table, regions = R.verdicts(pd.DataFrame(rows), None, alpha, claims, **kw)  # type: ignore[arg-type]
    row = table.set_index("claim_id").loc[claim]
    if claim in regions:
        row = row.copy()
        row["regions"] = regions[claim].set_index("region")
    return row


# --------------------------------------------------------------------------- alpha


def test_pooled_claim_is_judged_at_the_studys_alpha() -> None:
    rows = [_row("q_gvl_corr", p=0.03, median_a=0.80, median_b=0.70)]
    assert _verdict(rows, "q_gvl_corr", alpha=0.05)["verdict"] == R.HOLDS
    strict = _verdict(rows, "q_gvl_corr", alpha=0.01)
    assert strict["verdict"] == R.INCONCLUSIVE
    assert "p = 0.030 >= 0.01" in strict["reason"]


def test_no_difference_claim_is_judged_at_the_studys_alpha() -> None:
    # p = 0.03 with a narrow interval: a difference at 0.05, none at 0.01
    rows = [
        _row("q_sim_nse_local+close_vs_local+far", p=0.03, median_a=0.70, median_b=0.70, ci=(-0.004, 0.001))
    ]
    assert _verdict(rows, "q_sim_nse_local+close_vs_local+far", alpha=0.05)["verdict"] == R.NOT_HOLDS
    assert _verdict(rows, "q_sim_nse_local+close_vs_local+far", alpha=0.01)["verdict"] == R.HOLDS


def test_every_region_claim_is_judged_at_the_studys_alpha() -> None:
    # A and B: Table 2 has p < 0.05 there, so each needs p < alpha
    rows = [
        _row("q_gvl_nse_regions", p=0.03, median_a=0.7, median_b=0.6, region=r, share=0.8) for r in ("A", "B")
    ]
    assert _verdict(rows, "q_gvl_nse_regions", alpha=0.05)["verdict"] == R.HOLDS
    strict = _verdict(rows, "q_gvl_nse_regions", alpha=0.01)
    assert strict["verdict"] == R.INCONCLUSIVE
    assert list(strict["regions"]["status"]) == [R.INCONCLUSIVE, R.INCONCLUSIVE]


# --------------------------------------------------------------------------- share of sites


def test_better_at_more_than_half_the_sites_is_required() -> None:
    # the median and the test agree with the paper, but the global model wins at 40 % of the sites
    rows = [_row("q_gvl_corr", p=1e-4, median_a=0.80, median_b=0.70, share=0.40)]
    v = _verdict(rows, "q_gvl_corr")
    assert v["verdict"] == R.NOT_HOLDS
    assert "better at only 40% of sites" in v["reason"]
    # at 60 % it holds: the share rule, not the rest, decided above
    rows = [_row("q_gvl_corr", p=1e-4, median_a=0.80, median_b=0.70, share=0.60)]
    assert _verdict(rows, "q_gvl_corr")["verdict"] == R.HOLDS


def test_share_of_exactly_half_is_not_more_than_half() -> None:
    rows = [_row("q_gvl_nse", p=1e-4, median_a=0.70, median_b=0.60, share=0.50)]
    assert _verdict(rows, "q_gvl_nse")["verdict"] == R.NOT_HOLDS


# --------------------------------------------------------------------------- no difference


def test_no_difference_claim_fails_under_a_strong_significant_effect() -> None:
    rows = [
        _row("q_sim_nse_local+close_vs_local+far", p=1e-12, median_a=0.55, median_b=0.70, ci=(-0.2, -0.1))
    ]
    v = _verdict(rows, "q_sim_nse_local+close_vs_local+far")
    assert v["verdict"] == R.NOT_HOLDS
    assert v["reason"] == "local+far significantly better (p = 1.00e-12 < 0.05)"


def test_no_difference_claim_fails_under_a_tiny_significant_effect() -> None:
    # significant but inside the equivalence margin: the claim of no significant difference is still refuted
    rows = [
        _row("q_sim_nse_local+close_vs_local+far", p=1e-3, median_a=0.70, median_b=0.701, ci=(-0.004, -0.001))
    ]
    assert _verdict(rows, "q_sim_nse_local+close_vs_local+far")["verdict"] == R.NOT_HOLDS


def test_no_difference_claim_holds_only_within_the_margin() -> None:
    claim = "q_sim_nse_local+close_vs_local+far"
    narrow = [_row(claim, p=0.6, median_a=0.70, median_b=0.70, ci=(-0.005, 0.006))]
    v = _verdict(narrow, claim)
    assert v["verdict"] == R.HOLDS and "equivalent" in v["reason"]
    # the margin is relative to |median b| = 0.70: 0.02 x 0.70 = 0.014
    edge = [_row(claim, p=0.6, median_a=0.70, median_b=0.70, ci=(-0.015, 0.005))]
    assert _verdict(edge, claim)["verdict"] == R.INCONCLUSIVE
    assert _verdict(edge, claim, margin=0.05)["verdict"] == R.HOLDS


# --------------------------------------------------------------------------- inconclusive


def test_underpowered_no_difference_is_inconclusive_not_a_pass() -> None:
    claim = "q_sim_nse_local+close_vs_local+far"
    rows = [_row(claim, p=0.4, median_a=0.70, median_b=0.66, ci=(-0.1, 0.15), n=6)]
    v = _verdict(rows, claim)
    assert v["verdict"] == R.INCONCLUSIVE
    assert "a difference beyond the margin is not ruled out" in v["reason"]


def test_right_direction_without_significance_is_inconclusive() -> None:
    rows = [_row("q_gvl_corr", p=0.2, median_a=0.80, median_b=0.78, ci=(-0.05, 0.1))]
    v = _verdict(rows, "q_gvl_corr")
    assert v["verdict"] == R.INCONCLUSIVE
    assert "p = 0.200 >= 0.05" in v["reason"]


def test_no_effect_within_the_margin_refutes_a_claimed_difference() -> None:
    rows = [_row("q_gvl_corr", p=0.6, median_a=0.801, median_b=0.80, ci=(-0.004, 0.005))]
    v = _verdict(rows, "q_gvl_corr")
    assert v["verdict"] == R.NOT_HOLDS and "no effect" in v["reason"]


def test_significant_reversal_does_not_hold() -> None:
    rows = [_row("q_gvl_corr", p=1e-6, median_a=0.70, median_b=0.80, share=0.1, ci=(-0.15, -0.05))]
    v = _verdict(rows, "q_gvl_corr")
    assert v["verdict"] == R.NOT_HOLDS and "global not better" in v["reason"]


# --------------------------------------------------------------------------- per region


def test_each_region_needs_the_significance_the_paper_had_there() -> None:
    # Table 2 (streamflow NSE): A p = 8.33e-08 and B p = 3.55e-12 (significant), K p = 0.957 (not)
    rows = [
        _row("q_gvl_nse_regions", p=1e-3, median_a=0.7, median_b=0.6, region="A"),
        _row("q_gvl_nse_regions", p=0.30, median_a=0.7, median_b=0.6, region="B"),
        _row("q_gvl_nse_regions", p=0.50, median_a=0.7, median_b=0.6, region="K"),
    ]
    v = _verdict(rows, "q_gvl_nse_regions")
    assert v["verdict"] == R.INCONCLUSIVE
    assert v["reason"].startswith("inconclusive in B ")
    assert v["regions"]["status"].to_dict() == {"A": "holds", "B": R.INCONCLUSIVE, "K": "holds"}
    assert v["run"] == "holds in 2 of 3 regions"


def test_a_reversed_region_fails_the_every_region_claim() -> None:
    rows = [
        _row("q_gvl_nse_regions", p=1e-3, median_a=0.7, median_b=0.6, region="A"),
        _row("q_gvl_nse_regions", p=1e-3, median_a=0.5, median_b=0.6, region="B"),  # significant reversal
        _row("q_gvl_nse_regions", p=0.50, median_a=0.5, median_b=0.6, region="K"),  # direction-only region
    ]
    v = _verdict(rows, "q_gvl_nse_regions")
    assert v["verdict"] == R.NOT_HOLDS
    assert v["reason"] == "fails in B, K"


# --------------------------------------------------------------------------- seeds


def _seed_rows(claim: str, p0: float, p1: float) -> list[dict[str, object]]:
    return [
        _row(claim, p=p0, median_a=0.80, median_b=0.70, seed="0"),
        _row(claim, p=p1, median_a=0.80, median_b=0.70, seed="1"),
        _row(claim, p=1e-4, median_a=0.80, median_b=0.70, seed=SEED_MEAN),
        _row(claim, p=0.2, median_a=0.80, median_b=0.78, seed="mean", ci=(-0.05, 0.1)),
    ]


def test_verdicts_per_seed_and_their_disagreement() -> None:
    v = _verdict(_seed_rows("q_gvl_corr", 1e-3, 0.3), "q_gvl_corr")
    assert v["seed"] == SEED_MEAN and v["verdict"] == R.HOLDS
    assert v["seed_verdicts"] == f"0: {R.HOLDS}; 1: {R.INCONCLUSIVE}"
    assert bool(v["seeds_differ"]) is True
    same = _verdict(_seed_rows("q_gvl_corr", 1e-3, 1e-3), "q_gvl_corr")
    assert bool(same["seeds_differ"]) is False


def test_the_seed_aggregation_setting_picks_the_judged_rows() -> None:
    rows = _seed_rows("q_gvl_corr", 1e-3, 1e-3)
    ens = _verdict(rows, "q_gvl_corr", aggregation="ensemble")
    assert ens["seed"] == "mean" and ens["verdict"] == R.INCONCLUSIVE
    with pytest.raises(InputError, match="seed_aggregation: must be one of"):
        _verdict(rows, "q_gvl_corr", aggregation="median")


def test_report_states_the_aggregation_and_lists_seed_disagreements() -> None:
    sig = pd.DataFrame(_seed_rows("q_gvl_corr", 1e-3, 0.3))
    claims = [c for c in R.CLAIMS if c.claim_id == "q_gvl_corr"]
    md = R.build_report(sig, None, R.RunSetup(), claims=claims).markdown
    assert "seed aggregation `seed_mean`, rows judged: `seed_mean`" in md
    assert "1 claim(s) get a different verdict under different seeds" in md
    assert f"0: {R.HOLDS}; 1: {R.INCONCLUSIVE}" in md
    assert "1 holds, 0 does not hold, 0 inconclusive, 0 not testable here" in md


def _claim(metric: str, better: str, statistic: str = "median") -> R.Claim:
    return R.Claim(
        "t", "soil_moisture", "global_vs_local", "global vs local", metric, better, True, "test",
        statistic=statistic,
    )  # fmt: skip


def test_the_claims_statistic_is_the_one_aggregated() -> None:
    """A claim stated on means is judged on means, one stated on medians on medians."""
    values = np.array([1.0, 2.0, 10.0])
    assert R._aggregate(values, "median") == 2.0
    assert R._aggregate(values, "mean") == pytest.approx(13.0 / 3.0)


@pytest.mark.parametrize(
    ("metric", "better", "agg_a", "agg_b", "ok"),
    [
        ("rmse", "a", 0.4, 0.5, True),  # lower is better: a's lower rmse wins
        ("rmse", "a", 0.5, 0.4, False),
        ("rmse", "b", 0.5, 0.4, True),  # the paper found b better: b's lower rmse agrees
        ("rmse", "b", 0.4, 0.5, False),
        ("corr", "a", 0.8, 0.7, True),  # higher is better
        ("corr", "b", 0.8, 0.7, False),
        ("corr", "b", 0.7, 0.8, True),
        ("rmse", "a", 0.5, 0.5, False),  # a tie agrees with no direction
        ("rmse", "b", 0.5, 0.5, False),
        ("corr", "a", 0.8, 0.8, False),
        ("corr", "b", 0.8, 0.8, False),
    ],
)
def test_direction_follows_the_metric_and_the_claimed_side(
    metric: str, better: str, agg_a: float, agg_b: float, ok: bool
) -> None:
    got, why = R._direction(_claim(metric, better), agg_a, agg_b, None)
    assert got is ok
    winner = "global" if better == "a" else "local"
    assert why == f"median {winner} {'better' if ok else 'not better'} ({agg_a:.3g} vs {agg_b:.3g})"
