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
from synergy_dagster.evaluation.every_region import every_region_rule, region_status
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


# --------------------------------------------------------------------------- exact outputs
# Each function of the rules is called on one hand-made case per branch and its whole output is
# compared with values worked out by hand: the numbers, the verdict and the exact reason text.


def _named(claim_id: str) -> R.Claim:
    return next(c for c in R.CLAIMS if c.claim_id == claim_id)


def _series(claim: str, p: float, median_a: float, median_b: float, **kw: object) -> pd.Series:
    return pd.Series(_row(claim, p, median_a, median_b, **kw))  # type: ignore[arg-type]


def _same_dict(got: dict, want: dict) -> None:
    assert set(got) == set(want), sorted(set(got) ^ set(want))
    for k, v in want.items():
        if isinstance(v, float) and np.isnan(v):
            assert isinstance(got[k], float) and np.isnan(got[k]), (k, got[k])
        else:
            assert got[k] == v and type(got[k]) is type(v), (k, got[k], v)


def test_pooled_verdict_from_the_significance_row_alone() -> None:
    c = _named("q_gvl_corr")  # corr, global better, significant, 84 % of sites in the paper
    row = _series("q_gvl_corr", p=0.03, median_a=0.8, median_b=0.7, share=0.8, n=100)
    got = R._pooled_verdict(c, row, None, 0.05)
    _same_dict(
        got,
        {
            "n": 100,
            "run_a": 0.8,
            "run_b": 0.7,
            "run_share": 0.8,
            "p_value": 0.03,
            "run": "median 0.8 vs 0.7; 80% of sites; p = 0.030; n = 100",
            "verdict": R.HOLDS,
            "reason": "median global better (0.8 vs 0.7); p = 0.030 < 0.05",
        },
    )
    # the claim names side b: the row's share of a is not b's share, so no share is shown
    b = _named("q_sim_corr_local_vs_local+close")
    row = _series("q_sim_corr_local_vs_local+close", p=1e-4, median_a=0.6, median_b=0.7, share=0.3, n=50)
    got = R._pooled_verdict(b, row, None, 0.05)
    _same_dict(
        got,
        {
            "n": 50,
            "run_a": 0.6,
            "run_b": 0.7,
            "run_share": float("nan"),
            "p_value": 1e-4,
            "run": "median 0.6 vs 0.7; p = 1.00e-04; n = 50",
            "verdict": R.HOLDS,
            "reason": "median local+close better (0.6 vs 0.7); p = 1.00e-04 < 0.05",
        },
    )


def test_pooled_verdict_pairs_the_sites_when_given() -> None:
    # rmse (lower is better), the paper's side b; the row's medians and share are decoys
    c = _named("sm_sim_rmse_local_vs_local+close")
    row = _series(
        "sm_sim_rmse_local_vs_local+close",
        p=0.002,
        median_a=9.0,
        median_b=9.0,
        share=0.1,
        n=4,
        ci=(-0.2, -0.05),
    )
    x, y = np.array([0.3, 0.2, 0.4, 0.5]), np.array([0.25, 0.1, 0.45, 0.3])  # b lower at 3 of 4
    got = R._pooled_verdict(c, row, (x, y), 0.05)
    _same_dict(
        got,
        {
            "n": 4,
            "run_a": 0.35,
            "run_b": 0.275,
            "run_share": 0.75,
            "p_value": 0.002,
            "run": "median 0.35 vs 0.275; 75% of sites; p = 0.002; n = 4",
            "verdict": R.HOLDS,
            "reason": "median local+close better (0.35 vs 0.275); p = 0.002 < 0.05",
        },
    )
    # side a, higher is better, a claim on means: a's share and a's mean
    m = R.Claim(
        "t",
        "soil_moisture",
        "global_vs_local",
        "global vs local",
        "corr",
        "a",
        True,
        "test",
        statistic="mean",
    )
    got = R._pooled_verdict(m, row, (np.array([0.9, 0.5, 0.7, 0.8]), np.array([0.1, 0.6, 0.6, 0.7])), 0.05)
    assert (got["run_a"], got["run_b"], got["run_share"]) == (pytest.approx(0.725), pytest.approx(0.5), 0.75)
    assert got["run"] == "mean 0.725 vs 0.5; 75% of sites; p = 0.002; n = 4"
    # an empty pair falls back on the row: its medians, named as medians
    got = R._pooled_verdict(m, row, (np.array([]), np.array([])), 0.05)
    assert (got["run_a"], got["run_b"], got["run_share"]) == (9.0, 9.0, 0.1)
    assert got["run"] == "median 9 vs 9; 10% of sites; p = 0.002; n = 4"


def test_a_claim_on_means_judged_without_sites_says_median() -> None:
    """Issue 24: without the per-site values a claim stated on means is judged on the significance
    row's medians, and its run text and reason must say so (they said "mean")."""
    c = _named("sm_gvl_rmse")
    assert c.statistic == "mean"
    row = _series("sm_gvl_rmse", p=0.001, median_a=0.036, median_b=0.039, share=0.7)
    for pair in (None, (np.array([]), np.array([]))):
        got = R._pooled_verdict(c, row, pair, 0.05)
        assert got["verdict"] == R.HOLDS
        assert got["run"].startswith("median 0.036 vs 0.039;")
        assert got["reason"] == "median global better (0.036 vs 0.039); p = 0.001 < 0.05"
    # with the sites, the claim's own statistic, named as such
    x, y = np.array([0.030, 0.040, 0.035]), np.array([0.040, 0.041, 0.036])
    got = R._pooled_verdict(c, row, (x, y), 0.05)
    assert got["reason"].startswith("mean global better (0.035 vs 0.039)")


def test_pooled_verdict_not_testable_cases() -> None:
    c = _named("q_gvl_corr")
    nothing = _series(
        "q_gvl_corr", p=float("nan"), median_a=float("nan"), median_b=float("nan"), share=float("nan"), n=0
    )
    _same_dict(
        R._pooled_verdict(c, nothing, None, 0.05),
        {
            "n": 0,
            "run_a": float("nan"),
            "run_b": float("nan"),
            "run_share": float("nan"),
            "p_value": float("nan"),
            "run": "median n/a vs n/a; p = n/a; n = 0",
            "verdict": R.NOT_TESTABLE,
            "reason": "no paired site in this run",
        },
    )
    zero = _series("q_gvl_corr", p=float("nan"), median_a=0.5, median_b=0.5, share=0.0, n=7)
    got = R._pooled_verdict(c, zero, None, 0.05)
    assert (
        got["verdict"] == R.NOT_TESTABLE and got["reason"] == "the test is undefined (every difference zero)"
    )
    assert got["run"] == "median 0.5 vs 0.5; 0% of sites; p = n/a; n = 7"


def test_pooled_verdict_reasons_of_a_claimed_difference() -> None:
    c = _named("q_gvl_corr")
    margin = "CI [-0.004, 0.005] vs +/-0.016"  # 0.02 x |0.80|
    flat = _series("q_gvl_corr", p=0.6, median_a=0.801, median_b=0.80, ci=(-0.004, 0.005))
    got = R._pooled_verdict(c, flat, None, 0.05)
    assert got["verdict"] == R.NOT_HOLDS
    assert got["reason"] == f"median global better (0.801 vs 0.8); p = 0.600 >= 0.05 and {margin}: no effect"
    wide = _series("q_gvl_corr", p=0.2, median_a=0.80, median_b=0.78, ci=(-0.05, 0.1))
    got = R._pooled_verdict(c, wide, None, 0.05)
    assert got["verdict"] == R.INCONCLUSIVE
    assert got["reason"] == (
        "median global better (0.8 vs 0.78) but p = 0.200 >= 0.05 and CI [-0.05, 0.1] vs +/-0.0156"
    )
    back = _series("q_gvl_corr", p=1e-6, median_a=0.70, median_b=0.80, share=0.1, ci=(-0.15, -0.05))
    got = R._pooled_verdict(c, back, None, 0.05)
    assert got["verdict"] == R.NOT_HOLDS
    assert got["reason"] == "median global not better (0.7 vs 0.8); p = 1.00e-06 < 0.05"
    # p exactly alpha is not significant
    edge = _series("q_gvl_corr", p=0.05, median_a=0.80, median_b=0.70, ci=(0.05, 0.15))
    assert R._pooled_verdict(c, edge, None, 0.05)["verdict"] == R.INCONCLUSIVE
    # a claim of a direction only (no significance in the paper): the direction alone holds it
    d = R.Claim("t", "streamflow", "global_vs_local", "global vs local", "corr", "a", False, "test")
    got = R._pooled_verdict(d, wide, None, 0.05)
    assert got["verdict"] == R.HOLDS and got["reason"] == "median global better (0.8 vs 0.78)"
    # ... but a significant difference the other way still refutes it
    got = R._pooled_verdict(d, back, None, 0.05)
    assert got["verdict"] == R.NOT_HOLDS
    assert got["reason"] == "median global not better (0.7 vs 0.8); p = 1.00e-06 < 0.05"


def test_pooled_verdict_reasons_of_no_difference() -> None:
    c = _named("q_sim_nse_local+close_vs_local+far")
    got = R._pooled_verdict(
        c, _series(c.claim_id, p=0.6, median_a=0.7, median_b=0.7, ci=(-0.005, 0.006)), None, 0.05
    )
    _same_dict(
        got,
        {
            "n": 100,
            "run_a": 0.7,
            "run_b": 0.7,
            "run_share": 0.8,
            "p_value": 0.6,
            "run": "median 0.7 vs 0.7; p = 0.600; n = 100",
            "verdict": R.HOLDS,
            "reason": "no significant difference (p = 0.600 >= 0.05) and CI [-0.005, 0.006] vs +/-0.014: equivalent",
        },
    )
    got = R._pooled_verdict(
        c, _series(c.claim_id, p=0.4, median_a=0.7, median_b=0.66, ci=(-0.1, 0.15)), None, 0.05
    )
    assert got["verdict"] == R.INCONCLUSIVE
    assert got["reason"] == (
        "p = 0.400 >= 0.05 but CI [-0.1, 0.15] vs +/-0.0132: a difference beyond the margin is not ruled out"
    )
    # a significant difference names the better side: higher NSE is a, lower RMSE is b
    got = R._pooled_verdict(c, _series(c.claim_id, p=0.01, median_a=0.8, median_b=0.7), None, 0.05)
    assert (
        got["verdict"] == R.NOT_HOLDS
        and got["reason"] == "local+close significantly better (p = 0.010 < 0.05)"
    )
    r = _named("sm_sized_rmse_local+far_sized_vs_local+dissimilar_sized")
    got = R._pooled_verdict(r, _series(r.claim_id, p=0.01, median_a=0.03, median_b=0.02), None, 0.05)
    assert got["reason"] == "local+dissimilar_sized significantly better (p = 0.010 < 0.05)"
    got = R._pooled_verdict(r, _series(r.claim_id, p=0.01, median_a=0.02, median_b=0.03), None, 0.05)
    assert got["reason"] == "local+far_sized significantly better (p = 0.010 < 0.05)"
    # the study's alpha appears in the reason as given
    got = R._pooled_verdict(
        c, _series(c.claim_id, p=0.6, median_a=0.7, median_b=0.7, ci=(0.0, 0.0)), None, 0.1
    )
    assert got["reason"].startswith("no significant difference (p = 0.600 >= 0.1) and ")


def test_within_margin_bounds_are_inclusive_and_relative_to_b() -> None:
    def row(lo: float, hi: float, median_b: float) -> pd.Series:
        return pd.Series({"ci_low": lo, "ci_high": hi, "median_b": median_b})

    # 0.02 x |-0.5| = 0.01 (exact in binary): an interval touching the bound is inside
    assert R._within_margin(row(-0.01, 0.01, -0.5), 0.02) == (True, "CI [-0.01, 0.01] vs +/-0.01")
    assert R._within_margin(row(-0.0101, 0.0, 0.5), 0.02)[0] is False
    assert R._within_margin(row(0.0, 0.0101, 0.5), 0.02)[0] is False
    assert R._within_margin(row(-0.02, 0.02, 0.5), 0.04)[0] is True
    assert R._within_margin(row(float("nan"), 0.0, 0.5), 0.02) == (False, "CI [n/a, 0] vs +/-0.01")
    assert R._within_margin(row(0.0, float("inf"), 0.5), 0.02)[0] is False
    assert R._within_margin(row(-float("inf"), 0.0, 0.5), 0.02)[0] is False


@pytest.mark.parametrize(
    ("agree", "need_sig", "p", "status"),
    [
        (True, True, 0.01, "holds"),
        (True, True, 0.05, R.INCONCLUSIVE),  # p exactly alpha is not significant
        (True, True, float("nan"), R.INCONCLUSIVE),
        (True, False, 0.9, "holds"),
        (True, False, float("nan"), "holds"),
        (False, True, 0.01, "fails"),
        (False, True, 0.3, R.INCONCLUSIVE),  # a reversal that is not significant where it had to be
        (False, True, float("nan"), R.INCONCLUSIVE),
        (False, False, 0.9, "fails"),
    ],
)
def test_region_status(agree: bool, need_sig: bool, p: float, status: str) -> None:
    assert region_status(agree, need_sig, p, 0.05) == status


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        (["holds"], R.HOLDS),
        (["holds", "holds", "holds"], R.HOLDS),
        (["holds", R.INCONCLUSIVE], R.INCONCLUSIVE),
        ([R.INCONCLUSIVE, R.INCONCLUSIVE], R.INCONCLUSIVE),
        (["holds", "fails"], R.NOT_HOLDS),
        (["fails", R.INCONCLUSIVE], R.NOT_HOLDS),  # one reversal refutes, whatever the rest
        (["fails"], R.NOT_HOLDS),
    ],
)
def test_every_region_rule(statuses: list[str], verdict: str) -> None:
    assert every_region_rule(statuses) == verdict


def test_every_region_rule_refuses_no_region_and_unknown_status() -> None:
    """The whole message: the rule it comes from, then what is wrong (the unknown statuses named)."""
    with pytest.raises(InputError) as empty:
        every_region_rule([])
    assert str(empty.value) == "every-region rule: no region to judge"
    with pytest.raises(InputError) as unknown:
        every_region_rule(["holds", "maybe", "fails", "perhaps"])
    assert str(unknown.value) == "every-region rule: unknown region status(es) ['maybe', 'perhaps']"


def test_region_rows_table() -> None:
    # streamflow NSE (Table 2: A p = 8.33e-08 n = 54, K p = 0.957 n = 40; no region Z); All is left out
    c = _named("q_gvl_nse_regions")
    sig = pd.DataFrame(
        [
            _row(c.claim_id, p=0.3, median_a=0.6, median_b=0.5, region="A", share=0.7, n=50),
            _row(c.claim_id, p=0.3, median_a=0.4, median_b=0.5, region="K", share=0.2, n=30),
            _row(c.claim_id, p=0.001, median_a=0.5, median_b=0.4, region="Z", share=0.9, n=9),
            _row(c.claim_id, p=1e-9, median_a=0.6, median_b=0.5, region="All", n=89),
        ]
    )
    got = R._region_rows(c, sig, 0.05)
    want = pd.DataFrame(
        {
            "region": ["A", "K", "Z"],
            "paper_n": [54, 40, 0],
            "paper_p": [8.33e-08, 0.957, float("nan")],
            "n": [50, 30, 9],
            "median_global": [0.6, 0.4, 0.5],
            "median_local": [0.5, 0.5, 0.4],
            "share_global_better": [0.7, 0.2, 0.9],
            "p_value": [0.3, 0.3, 0.001],
            "status": [R.INCONCLUSIVE, "fails", "holds"],
        }
    )
    pd.testing.assert_frame_equal(got, want)
    # soil-moisture RMSE: lower is better, and the table's own metric (A: rmse p = 3.87e-04, corr 1.68e-10)
    s = _named("sm_gvl_rmse_regions")
    sig = pd.DataFrame([_row(s.claim_id, p=0.01, median_a=0.03, median_b=0.04, region="A")])
    got = R._region_rows(s, sig, 0.05).iloc[0]
    assert (got["paper_p"], got["paper_n"], got["status"]) == (3.87e-04, 65, "holds")
    assert R._region_rows(s, sig, 0.001).iloc[0]["status"] == R.INCONCLUSIVE  # the study's alpha
    sig = pd.DataFrame([_row(s.claim_id, p=0.01, median_a=0.04, median_b=0.03, region="A")])
    assert R._region_rows(s, sig, 0.05).iloc[0]["status"] == "fails"
    # a claim of a direction only needs no significance in any region
    d = R.Claim(
        "t",
        "streamflow",
        "global_vs_local",
        "global vs local",
        "nse",
        "a",
        False,
        "test",
        scope="every_region",
    )
    sig = pd.DataFrame([_row(c.claim_id, p=0.3, median_a=0.6, median_b=0.5, region="A")])
    assert R._region_rows(d, sig, 0.05).iloc[0]["status"] == "holds"


def test_every_region_verdict_outputs() -> None:
    c = _named("q_gvl_nse_regions")

    def rows(*spec: tuple[str, float, float]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                _row(c.claim_id, p=p, median_a=a, median_b=0.5, region=r, n=10 + i)
                for i, (r, p, a) in enumerate(spec)
            ]
        )

    out, table = R._every_region_verdict(c, rows(("A", 0.001, 0.6), ("K", 0.9, 0.6)), 0.01)
    _same_dict(
        out,
        {
            "n": 21,
            "run_share": 1.0,
            "run": "holds in 2 of 2 regions",
            "verdict": R.HOLDS,
            "reason": "direction (and p < 0.01 where the paper had significance) in all 2",
        },
    )
    assert list(table["region"]) == ["A", "K"]
    out, _ = R._every_region_verdict(c, rows(("A", 0.3, 0.6), ("B", 0.001, 0.4), ("K", 0.9, 0.6)), 0.05)
    _same_dict(
        out,
        {
            "n": 33,
            "run_share": 1 / 3,
            "run": "holds in 1 of 3 regions",
            "verdict": R.NOT_HOLDS,
            "reason": "fails in B; inconclusive in A",
        },
    )
    out, _ = R._every_region_verdict(c, rows(("A", 0.001, 0.6), ("B", 0.001, 0.4)), 0.05)
    assert out["reason"] == "fails in B" and out["verdict"] == R.NOT_HOLDS
    out, _ = R._every_region_verdict(c, rows(("A", 0.3, 0.6), ("B", 0.3, 0.4), ("K", 0.9, 0.6)), 0.01)
    _same_dict(
        out,
        {
            "n": 33,
            "run_share": 1 / 3,
            "run": "holds in 1 of 3 regions",
            "verdict": R.INCONCLUSIVE,
            "reason": "inconclusive in A, B (direction without p < 0.01, or a non-significant reversal)",
        },
    )
    out, table = R._every_region_verdict(c, rows(("All", 0.001, 0.6)), 0.05)
    assert out == {"verdict": R.NOT_TESTABLE, "reason": "no region with both models", "run": "", "n": 0}
    assert table.empty


def test_judge_reads_only_its_claims_rows() -> None:
    c = _named("q_gvl_corr")
    good = _row(c.claim_id, p=0.01, median_a=0.8, median_b=0.7)
    decoys = [
        {**good, "p_value": 0.9, "experiment": "similarity"},
        {**good, "p_value": 0.9, "comparison": "local vs global"},
        {**good, "p_value": 0.9, "metric": "nse"},
        {**good, "p_value": 0.9, "seed": "0"},
        {**good, "p_value": 0.9, "region": "A"},
    ]
    for order in ([good, *decoys], [*decoys, good]):
        res, table = R._judge(c, pd.DataFrame(order), None, "mean", 0.05, 0.02)
        assert table is None and res["verdict"] == R.HOLDS and res["p_value"] == 0.01
    res, _ = R._judge(c, pd.DataFrame(decoys[:4]), None, "mean", 0.05, 0.02)
    assert res == {
        "verdict": R.NOT_TESTABLE,
        "reason": "no global_vs_local comparison 'global vs local' in this run (experiment empty or not run)",
    }
    res, _ = R._judge(c, pd.DataFrame([decoys[4]]), None, "mean", 0.05, 0.02)
    assert res == {"verdict": R.NOT_TESTABLE, "reason": "no pooled (All) test in this run"}
    # the margin is passed on: an interval of +/-0.015 is inside 2 % of 0.8 only with a wider margin
    flat = _row(c.claim_id, p=0.6, median_a=0.8, median_b=0.8, ci=(-0.017, 0.017))
    assert R._judge(c, pd.DataFrame([flat]), None, "mean", 0.05, 0.02)[0]["verdict"] == R.INCONCLUSIVE
    assert R._judge(c, pd.DataFrame([flat]), None, "mean", 0.05, 0.03)[0]["verdict"] == R.NOT_HOLDS
    # an every-region claim returns its region table
    r = _named("q_gvl_nse_regions")
    res, table = R._judge(
        r,
        pd.DataFrame([_row(r.claim_id, p=0.01, median_a=0.6, median_b=0.5, region="A")]),
        None,
        "mean",
        0.05,
        0.02,
    )
    assert res["verdict"] == R.HOLDS and list(table["region"]) == ["A"]  # type: ignore[index]


def test_judge_pairs_the_sites_of_the_judged_seed() -> None:
    c = _named("q_gvl_corr")
    sig = pd.DataFrame([_row(c.claim_id, p=0.01, median_a=0.8, median_b=0.7, seed="0")])
    sites = pd.DataFrame(
        [
            {"domain": "streamflow", "experiment": "global_vs_local", "seed": s, "scenario": sc, "region": "A",
             "site_id": f"g{i}", "corr": v}
            for s, base in (("0", 0.9), ("1", 0.1))
            for sc, shift in (("global", 0.0), ("local", -0.2))
            for i, v in enumerate([base + shift, base + shift - 0.1, base + shift + 0.05])
        ]
    )  # fmt: skip
    res, _ = R._judge(c, sig, sites, "0", 0.05, 0.02)
    assert (res["run_a"], res["run_b"], res["run_share"]) == (0.9, pytest.approx(0.7), 1.0)


def test_verdicts_table_of_a_claim_and_a_missing_domain() -> None:
    claims = [_named("q_gvl_corr"), _named("sm_gvl_rmse")]
    table, regions = R.verdicts(
        pd.DataFrame([_row("q_gvl_corr", p=0.03, median_a=0.8, median_b=0.7)]), None, claims=claims
    )
    assert list(table.columns) == R.VERDICT_COLUMNS and regions == {}
    q = table.iloc[0].to_dict()
    assert q == {
        "claim_id": "q_gvl_corr",
        "domain": "streamflow",
        "experiment": "global_vs_local",
        "comparison": "global vs local",
        "metric": "corr",
        "scope": "pooled",
        "claim": R._claim_text(claims[0]),
        "paper": R._paper_text(claims[0]),
        "run": "median 0.8 vs 0.7; 80% of sites; p = 0.030; n = 100",
        "seed": "mean",
        "n": 100,
        "run_a": 0.8,
        "run_b": 0.7,
        "run_share": 0.8,
        "p_value": 0.03,
        "verdict": R.HOLDS,
        "reason": "median global better (0.8 vs 0.7); p = 0.030 < 0.05",
        "seed_verdicts": q["seed_verdicts"],
        "seeds_differ": False,
    }
    assert pd.isna(q["seed_verdicts"])  # one seed: nothing to compare
    sm = table.iloc[1]
    assert (sm["verdict"], sm["reason"]) == (R.NOT_TESTABLE, "no soil_moisture domain in this run")
    assert pd.isna(sm["seed"]) and not sm["seeds_differ"]
    # the default alpha is 0.05 and the default margin 2 %
    p = pd.DataFrame([_row("q_gvl_corr", p=0.04, median_a=0.8, median_b=0.8, ci=(-0.015, 0.015))])
    assert R.verdicts(p, None, claims=claims[:1])[0].iloc[0]["reason"].endswith("p = 0.040 < 0.05")
    flat = pd.DataFrame([_row("q_gvl_corr", p=0.6, median_a=0.8, median_b=0.8, ci=(-0.015, 0.015))])
    assert R.verdicts(flat, None, claims=claims[:1])[0].iloc[0]["verdict"] == R.NOT_HOLDS
    # every-region claims give their region tables by claim id
    r = _named("q_gvl_nse_regions")
    _, regions = R.verdicts(
        pd.DataFrame([_row(r.claim_id, p=0.01, median_a=0.6, median_b=0.5, region="A")]), None, claims=[r]
    )
    assert list(regions) == ["q_gvl_nse_regions"] and list(regions["q_gvl_nse_regions"]["region"]) == ["A"]


def test_verdicts_per_seed_in_numeric_order_and_only_with_several_seeds() -> None:
    c = "q_gvl_corr"
    rows = [
        _row(c, p=0.3, median_a=0.8, median_b=0.78, seed="10", ci=(-0.05, 0.1)),
        _row(c, p=1e-3, median_a=0.8, median_b=0.7, seed="2"),
        _row(c, p=1e-3, median_a=0.8, median_b=0.7, seed="mean"),
        _row(c, p=1e-3, median_a=0.8, median_b=0.7, seed="x1"),  # not a seed number
    ]
    v = _verdict(rows, c)
    assert v["seed_verdicts"] == f"2: {R.HOLDS}; 10: {R.INCONCLUSIVE}" and bool(v["seeds_differ"]) is True
    one = _verdict([rows[1], rows[2]], c)
    assert pd.isna(one["seed_verdicts"]) and bool(one["seeds_differ"]) is False


def test_verdicts_add_the_seed_means_to_a_site_table_with_seeds() -> None:
    """Site rows of two seeds and no seed_mean rows: the judged seed_mean claim pairs the per-site
    means over the seeds (0.5 and 0.3 at each site: 0.4 vs 0.2)."""
    c = _named("q_gvl_corr")
    sig = pd.DataFrame([_row(c.claim_id, p=0.01, median_a=9.0, median_b=9.0, seed=SEED_MEAN)])
    sites = pd.DataFrame(
        [
            {"domain": "streamflow", "experiment": "global_vs_local", "seed": s, "scenario": sc, "region": "A",
             "site_id": f"g{i}", "corr": v + (0.0 if sc == "global" else -0.2)}
            for s, v in (("0", 0.5), ("1", 0.3))
            for sc in ("global", "local")
            for i in range(3)
        ]
    )  # fmt: skip
    row = R.verdicts(sig, sites, claims=[c])[0].iloc[0]
    assert (row["run_a"], row["run_b"], row["n"]) == (pytest.approx(0.4), pytest.approx(0.2), 100)
    assert row["run"].startswith("median 0.4 vs 0.2; 100% of sites")


def test_region_rows_ties_and_the_papers_significance_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    # a tie of the medians agrees with no direction, for a higher- and a lower-is-better metric
    c, s = _named("q_gvl_nse_regions"), _named("sm_gvl_rmse_regions")
    tie = pd.DataFrame([_row(c.claim_id, p=0.9, median_a=0.5, median_b=0.5, region="K")])  # K: direction only
    assert R._region_rows(c, tie, 0.05).iloc[0]["status"] == "fails"
    tie = pd.DataFrame([_row(s.claim_id, p=0.9, median_a=0.04, median_b=0.04, region="Z")])  # not in Table 2
    assert R._region_rows(s, tie, 0.05).iloc[0]["status"] == "fails"
    # Table 2's "p < 0.05": a region at exactly 0.05 needs no significance
    table = pd.DataFrame([{"domain": "streamflow", "region": "A", "metric": "nse", "n": 10, "p": 0.05}])
    monkeypatch.setattr(R, "PAPER_TABLE2", table)
    row = pd.DataFrame([_row(c.claim_id, p=0.9, median_a=0.6, median_b=0.5, region="A")])
    assert R._region_rows(c, row, 0.05).iloc[0]["status"] == "holds"


def _sites(values: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Streamflow global vs local site rows: per seed label, (global, local) corr at three sites."""
    return pd.DataFrame(
        [
            {"domain": "streamflow", "experiment": "global_vs_local", "seed": s, "scenario": sc, "region": "A",
             "site_id": f"g{i}", "corr": v + 0.01 * i}
            for s, (g, loc) in values.items()
            for sc, v in (("global", g), ("local", loc))
            for i in range(3)
        ]
    )  # fmt: skip


def test_stored_seed_means_are_used_as_they_are() -> None:
    # the table already holds seed_mean rows (0.9 vs 0.1): they are paired, not recomputed (0.4 vs 0.2)
    sites = _sites({"0": (0.5, 0.3), "1": (0.3, 0.1), SEED_MEAN: (0.9, 0.1)})
    sig = pd.DataFrame([_row("q_gvl_corr", p=0.01, median_a=9.0, median_b=9.0, seed=SEED_MEAN)])
    row = R.verdicts(sig, sites, claims=[_named("q_gvl_corr")])[0].iloc[0]
    assert (row["run_a"], row["run_b"]) == (pytest.approx(0.91), pytest.approx(0.11))


def test_each_seeds_verdict_pairs_that_seeds_sites() -> None:
    # every significance row says global is better; the sites of seed 0 say the opposite
    sites = _sites({"0": (0.3, 0.5), "1": (0.5, 0.3)})
    sig = pd.DataFrame(
        [_row("q_gvl_corr", p=1e-3, median_a=0.8, median_b=0.7, seed=s) for s in ("0", "1", SEED_MEAN)]
    )
    row = R.verdicts(sig, sites, claims=[_named("q_gvl_corr")])[0].iloc[0]
    assert row["seed_verdicts"] == f"0: {R.NOT_HOLDS}; 1: {R.HOLDS}" and bool(row["seeds_differ"]) is True


@pytest.mark.parametrize(
    ("metric", "better", "x", "y", "share"),
    [
        # a tied site is a win for neither side; four sites, one tie
        ("corr", "a", [0.9, 0.5, 0.7, 0.2], [0.1, 0.5, 0.6, 0.3], 0.5),
        ("rmse", "a", [0.1, 0.5, 0.7, 0.2], [0.9, 0.5, 0.6, 0.3], 0.5),
        ("corr", "b", [0.1, 0.5, 0.6, 0.3], [0.9, 0.5, 0.7, 0.2], 0.5),  # higher b wins
        ("rmse", "b", [0.9, 0.5, 0.6, 0.3], [0.1, 0.5, 0.7, 0.2], 0.5),  # lower b wins
        ("corr", "b", [0.9, 0.5, 0.8, 0.1], [0.1, 0.5, 0.7, 0.2], 0.25),
    ],
)
def test_share_of_sites_won_by_the_claimed_side(
    metric: str, better: str, x: list, y: list, share: float
) -> None:
    c = R.Claim("t", "soil_moisture", "global_vs_local", "global vs local", metric, better, True, "test")  # type: ignore[arg-type]
    row = _series("q_gvl_corr", p=0.01, median_a=0.5, median_b=0.5)
    got = R._pooled_verdict(c, row, (np.array(x), np.array(y)), 0.05)
    assert got["run_share"] == share


def test_row_medians_are_labelled_median_whatever_the_claims_statistic() -> None:
    c = _named("sm_gvl_rmse")  # a claim on means
    assert c.statistic == "mean"
    row = _series("sm_gvl_rmse", p=0.01, median_a=0.03, median_b=0.04, share=0.9)
    got = R._pooled_verdict(c, row, None, 0.05)
    assert got["run"].startswith("median 0.03 vs 0.04; 90% of sites")


def test_a_paper_share_without_a_run_share_is_not_held_against_the_claim() -> None:
    # side b with the paper's share: the row gives no share of b, so only the direction is judged
    c = R.Claim(
        "t", "streamflow", "global_vs_local", "global vs local", "corr", "b", True, "test", paper_share=0.8
    )
    got = R._pooled_verdict(
        c, _series("q_gvl_corr", p=0.01, median_a=0.6, median_b=0.7, share=0.1), None, 0.05
    )
    assert got["verdict"] == R.HOLDS and got["reason"] == "median local better (0.6 vs 0.7); p = 0.010 < 0.05"


def test_no_difference_refuted_with_tied_medians_names_a_side_by_the_fixed_rule() -> None:
    """Significant with equal medians (the test sees the other sites): the reason names b for a
    higher-is-better metric and a for a lower-is-better one, the rule ``(a > b) == higher``."""
    c = _named("q_sim_nse_local+close_vs_local+far")
    got = R._pooled_verdict(c, _series(c.claim_id, p=0.01, median_a=0.7, median_b=0.7), None, 0.05)
    assert got["reason"] == "local+far significantly better (p = 0.010 < 0.05)"
    r = _named("sm_sized_rmse_local+far_sized_vs_local+dissimilar_sized")
    got = R._pooled_verdict(r, _series(r.claim_id, p=0.01, median_a=0.02, median_b=0.02), None, 0.05)
    assert got["reason"] == "local+far_sized significantly better (p = 0.010 < 0.05)"


def test_one_paired_site_is_judged_by_its_own_values() -> None:
    """A single paired site is a site table (its values, not the significance row's medians)."""
    c = _named("sm_gvl_rmse")
    row = _series("sm_gvl_rmse", p=0.5, median_a=0.9, median_b=0.8, share=0.2, n=1)
    got = R._pooled_verdict(c, row, (np.array([0.03]), np.array([0.04])), 0.05)
    assert (got["run_a"], got["run_b"], got["run_share"]) == (0.03, 0.04, 1.0)
    assert got["run"] == "mean 0.03 vs 0.04; 100% of sites; p = 0.500; n = 1"
