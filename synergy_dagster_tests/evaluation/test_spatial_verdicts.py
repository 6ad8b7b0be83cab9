"""The spatial holdouts' verdicts (issue 27): a verdict for every row of the spatial significance
table (each region by its Holm-corrected p, and All), the every-region verdict by the reproduction
report's every-region rule, and their sections in the study summary and the reproduction report
(present with spatial results, the texts unchanged without).

The significance rows are written by hand so each case sits where one rule decides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synergy_dagster.evaluation import report as R
from synergy_dagster.evaluation.spatial import (
    EVERY_REGION_COLUMNS,
    SpatialResults,
    every_region_verdicts,
    row_verdicts,
)
from synergy_dagster.evaluation.statistics import significance_table
from synergy_dagster.evaluation.summary import study_summary

NARROW = (-0.001, 0.001)  # inside a 2 % margin of a median of 0.5
WIDE = (-0.2, 0.2)


def _sig(
    region: str,
    p_holm: float,
    diff: float,
    ci: tuple[float, float] = (0.05, 0.15),
    *,
    metric: str = "nse",
    seed: str = "mean",
    experiment: str = "pub",
    p_value: float | None = None,
    effect: float | None = None,
) -> dict[str, object]:
    partner = experiment == "pur"
    return {
        "domain": "streamflow",
        "experiment": experiment,
        "comparison": "global vs partner" if partner else "global vs local",
        "scenario_a": "global",
        "scenario_b": "partner" if partner else "local",
        "region": region,
        "metric": metric,
        "seed": seed,
        "n": 20,
        "p_value": p_holm if p_value is None else p_value,
        "p_holm": p_holm,
        "median_diff": diff,
        "effect": float(np.sign(diff)) * 0.5 if effect is None else effect,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "median_a": 0.5 + diff,
        "median_b": 0.5,
        "share_a_better": 0.7,
        "budget": "equal_epochs",
    }


def test_every_row_gets_its_verdict_by_its_holm_p() -> None:
    table = pd.DataFrame(
        [
            _sig("A", 0.001, 0.1),
            _sig("B", 0.001, -0.1, (-0.15, -0.05)),
            _sig("C", 0.5, 0.0, NARROW),
            _sig("D", 0.5, 0.05, WIDE),
            _sig("E", 0.2, 0.1, p_value=0.001),  # significant alone, not after Holm
            _sig("All", 0.001, 0.05),
            _sig("A", 0.001, 0.01, metric="rmse"),  # a larger error: the regional model wins
        ]
    )
    judged = row_verdicts(table, alpha=0.05, margin=0.02)
    keys = judged["region"] + "/" + judged["metric"]
    got = dict(zip(keys, zip(judged["verdict"], judged["winner"], strict=True), strict=True))
    assert got == {
        "A/nse": ("difference", "global"),
        "B/nse": ("difference", "local"),
        "C/nse": ("equivalent", "tie"),
        "D/nse": ("inconclusive", "none"),
        "E/nse": ("inconclusive", "none"),
        "All/nse": ("difference", "global"),
        "A/rmse": ("difference", "local"),
    }
    assert len(judged) == len(table)  # every row, none dropped
    assert judged.loc[0, "margin"] == pytest.approx(0.01)


def _groups(*cases: tuple[str, list[tuple[str, float, float, tuple[float, float]]]]) -> pd.DataFrame:
    """One (seed-labelled) group per case: its regions' rows and an All row."""
    rows = []
    for seed, regions in cases:
        rows += [_sig(r, p, d, ci, seed=seed) for r, p, d, ci in regions]
        rows.append(_sig("All", 0.001, 0.05, seed=seed))
    return row_verdicts(pd.DataFrame(rows), alpha=0.05, margin=0.02)


A_WINS = (0.001, 0.1, (0.05, 0.15))
B_WINS = (0.001, -0.1, (-0.15, -0.05))
TIED = (0.5, 0.0, NARROW)
UNSURE = (0.5, 0.05, WIDE)


@pytest.mark.parametrize(
    ("regions", "counts", "word", "winner"),
    [
        ([A_WINS, A_WINS, A_WINS], (3, 0, 0, 0), "difference", "global"),
        ([B_WINS, B_WINS], (0, 2, 0, 0), "difference", "local"),
        ([TIED, TIED], (0, 0, 2, 0), "equivalent", "tie"),
        ([A_WINS, B_WINS, TIED], (1, 1, 1, 0), "mixed", "none"),
        ([A_WINS, A_WINS, UNSURE], (2, 0, 0, 1), "inconclusive", "none"),
        ([A_WINS, TIED], (1, 0, 1, 0), "inconclusive", "none"),  # equivalent is not a win
        ([B_WINS, UNSURE], (0, 1, 0, 1), "inconclusive", "none"),
        ([TIED, UNSURE], (0, 0, 1, 1), "inconclusive", "none"),
    ],
)
def test_every_region_verdict(
    regions: list[tuple[float, float, tuple[float, float]]],
    counts: tuple[int, int, int, int],
    word: str,
    winner: str,
) -> None:
    verdicts = _groups(("mean", [(f"R{i}", *r) for i, r in enumerate(regions)]))
    out = every_region_verdicts(verdicts, alpha=0.05)
    assert len(out) == 1
    row = out.iloc[0]
    assert row["regions"] == len(regions)
    assert (row["difference_a"], row["difference_b"], row["equivalent"], row["inconclusive"]) == counts
    assert (row["every_region"], row["winner"]) == (word, winner)


def test_every_region_verdicts_per_group_and_rule_shared_with_the_report() -> None:
    verdicts = _groups(("0", [("A", *A_WINS), ("B", *A_WINS)]), ("1", [("A", *A_WINS), ("B", *B_WINS)]))
    only_all = row_verdicts(pd.DataFrame([_sig("All", 0.001, 0.1, experiment="pur")]), 0.05, 0.02)
    out = every_region_verdicts(pd.concat([verdicts, only_all], ignore_index=True), alpha=0.05)
    assert list(out.columns[-len(EVERY_REGION_COLUMNS) :]) == list(EVERY_REGION_COLUMNS)
    assert out.set_index("seed")["every_region"].to_dict() == {"0": "difference", "1": "mixed"}
    assert "pur" not in set(out["experiment"])  # no region row: no every-region verdict
    # the report's every-region claim "global better in every region" on the same regions: the
    # spatial "difference for global" is exactly its "holds", "mixed" one of its "does not hold"
    claim = next(c for c in R.CLAIMS if c.claim_id == "q_gvl_nse_regions")
    for seed, expected in (("0", R.HOLDS), ("1", R.NOT_HOLDS)):
        rows = verdicts[(verdicts["seed"] == seed)].assign(
            experiment="global_vs_local", p_value=lambda d: d["p_holm"]
        )
        assert R._every_region_verdict(claim, rows, 0.05)[0]["verdict"] == expected
    assert every_region_verdicts(verdicts.iloc[0:0], 0.05).empty


def _results(aggregation: str = "seed_mean") -> SpatialResults:
    verdicts = pd.concat(
        [
            _groups(("mean", [("A", *A_WINS), ("B", *A_WINS)])),
            _groups(("seed_mean", [("A", *A_WINS), ("B", *B_WINS)])),
        ],
        ignore_index=True,
    )
    loss = pd.DataFrame(
        [
            {
                "domain": "streamflow",
                "model": model,
                "setting": setting,
                "metric": metric,
                "n_sites": 20,
                "median": 0.6,
                "median_temporal": 0.7,
                "median_loss": 0.1,
                "share_worse": 0.8,
                "budget": "equal_epochs",
            }
            for model in ("unified", "regional")
            for setting in ("temporal", "pub")
            for metric in ("corr", "nse")
        ]
    )
    return SpatialResults.judged(verdicts, every_region_verdicts(verdicts, 0.05), loss, aggregation)


def test_judged_results_keep_the_aggregations_rows() -> None:
    assert set(_results("seed_mean").verdicts["seed"]) == {"seed_mean"}
    ensemble = _results("ensemble")
    assert set(ensemble.verdicts["seed"]) == {"mean"} and set(ensemble.every_region["seed"]) == {"mean"}
    assert ensemble.seed == "mean"


def _temporal() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.8, 30)
    sm = pd.DataFrame(
        {
            "domain": "streamflow",
            "experiment": "global_vs_local",
            "region": np.repeat(["A", "B", "C"], 10).tolist() * 2,
            "scenario": ["global"] * 30 + ["local"] * 30,
            "seed": "mean",
            "site_id": [f"s{i}" for i in range(30)] * 2,
            "corr": np.concatenate([base + 0.05, base]),
            "nse": np.concatenate([base + 0.05, base]),
        }
    )
    sig = significance_table(sm, [("global vs local", "global", "local")], ["corr", "nse"], n_boot=50)
    return sm, sig.assign(domain="streamflow", experiment="global_vs_local", seed="mean")


def test_summary_section_only_appends_and_only_with_spatial_results() -> None:
    sm, sig = _temporal()
    without = study_summary(sm, sig)
    assert "no gauge" not in without and "spatial" not in without.lower()
    with_spatial = study_summary(sm, sig, spatial=_results())
    head, sep, section = with_spatial.partition("\n## Where there is no gauge: spatial holdouts\n")
    assert sep and head == without  # the temporal summary unchanged, the section after it
    assert "| streamflow | unified | temporal | corr | 20 |" in section  # the headline metric ...
    assert "| temporal | nse |" not in section  # ... only, in the gauge-loss table
    assert "seed rows `seed_mean`" in section
    # pooled: the paper's metrics (corr, nse) of the judged seed rows; every region: mixed (A: a, B: b)
    assert (
        "| streamflow | pub | global vs local | nse | 20 | 0.55 | 0.5 | 0.001 | difference | global |"
        in section
    )
    assert "| streamflow | pub | global vs local | nse | 2 | 1 | 1 | 0 | 0 | mixed | none |" in section
    empty = SpatialResults.judged(*(pd.DataFrame(columns=["seed"]) for _ in range(3)), "seed_mean")
    assert "No spatial results are stored" in study_summary(sm, sig, spatial=empty)


def test_report_section_beyond_the_paper_changes_no_claim() -> None:
    _, sig = _temporal()
    without = R.build_report(sig, None, R.RunSetup(), alpha=0.05)
    with_spatial = R.build_report(sig, None, R.RunSetup(), alpha=0.05, spatial=_results())
    pd.testing.assert_frame_equal(without.verdicts, with_spatial.verdicts)
    head, sep, section = with_spatial.markdown.partition("\n\n## Beyond the paper: where there is no gauge\n")
    assert sep and head == without.markdown
    assert "no gauge" not in without.markdown
    assert "nothing below is a claim of the paper" in section
    assert "Holm-corrected p < 0.05" in section and "+/- 0.02 x |median of b|" in section
    assert "| mixed | none |" in section and "| unified | pub | corr |" in section


def test_verdict_boundaries_the_margin_and_a_zero_median_difference() -> None:
    """Each rule at its edge: p_holm equal to alpha is not significant; an interval ending exactly
    on +/- the margin is within it; the margin is margin x |median of b|; a significant row whose
    median difference is exactly 0 names the side of its effect (the signed-rank test's)."""
    table = pd.DataFrame(
        [
            _sig("A", 0.05, 0.1, WIDE),  # p = alpha: not a difference
            _sig("B", 0.5, 0.0, (-0.01, 0.01)),  # the interval on the bound 0.02 x 0.5: a tie
            _sig("C", 0.5, 0.0, (-0.0101, 0.005)),  # just past it below: not a tie
            _sig("D", 0.5, 0.0, (-0.005, 0.0101)),  # just past it above
            _sig("E", 0.01, 0.0, effect=0.3),  # median 0, the ranks favour a
            _sig("F", 0.01, 0.0, effect=-0.3),  # and b
            _sig("G", 0.01, 0.0, effect=-0.3, metric="rmse"),  # a smaller error: a
            _sig("H", 0.01, 0.0, effect=0.0),  # no side at all: not a
        ]
    ).assign(median_b=[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, -4.0])
    judged = row_verdicts(table, alpha=0.05, margin=0.02)
    got = dict(zip(judged["region"], zip(judged["verdict"], judged["winner"], strict=True), strict=True))
    assert got == {
        "A": ("inconclusive", "none"),
        "B": ("equivalent", "tie"),
        "C": ("inconclusive", "none"),
        "D": ("inconclusive", "none"),
        "E": ("difference", "global"),
        "F": ("difference", "local"),
        "G": ("difference", "global"),
        "H": ("difference", "local"),
    }
    assert judged["margin"].tolist() == pytest.approx([0.01] * 7 + [0.08])
    # the every-region rule takes its sides from the same rule
    every = every_region_verdicts(judged[judged["region"].isin(["E", "G"])], alpha=0.05)
    assert every[["metric", "every_region", "winner", "difference_a"]].values.tolist() == [
        ["nse", "difference", "global", 1],
        ["rmse", "difference", "global", 1],
    ]


def test_every_region_rows_keep_the_order_of_their_groups_and_missing_keys() -> None:
    """One row per group, in the order the groups first appear (not sorted), and a group whose key
    holds a missing value (a seed label lost on the way) is still judged, not dropped."""
    verdicts = _groups(("1", [("A", *A_WINS), ("B", *A_WINS)]), ("0", [("A", *B_WINS), ("B", *B_WINS)]))
    lost = _groups(("x", [("A", *TIED), ("B", *TIED)])).assign(seed=None)
    out = every_region_verdicts(pd.concat([verdicts, lost], ignore_index=True), alpha=0.05)
    assert out["seed"].tolist()[:2] == ["1", "0"] and out["seed"].isna().tolist() == [False, False, True]
    assert out["every_region"].tolist() == ["difference", "difference", "equivalent"]
    assert out["winner"].tolist() == ["global", "local", "tie"]
    assert out.index.tolist() == [0, 1, 2]
    empty = every_region_verdicts(verdicts[verdicts["region"] == "All"], 0.05)
    keys = ["domain", "experiment", "comparison", "scenario_a", "scenario_b", "metric", "seed"]
    assert empty.empty and list(empty.columns) == [*keys, *EVERY_REGION_COLUMNS]
