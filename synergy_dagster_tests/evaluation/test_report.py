"""The reproduction report: the paper's claims as data (consistent with COMPARISONS and Table 2),
the verdict rules (holds / does not hold / not testable here) on synthetic runs, the Markdown, and
the run's setup read from a study file and the store's rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synergy_dagster.evaluation import report as R
from synergy_dagster.evaluation.statistics import (
    SEED_MEAN,
    paired_wilcoxon,
    per_site_seed_means,
    significance_table,
)
from synergy_dagster.evaluation.study import COMPARISONS
from synergy_dagster.study_file import load_study

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def test_claims_are_consistent_with_the_comparisons_and_table2() -> None:
    table = R.claims_table()
    assert table["claim_id"].is_unique
    for c in R.CLAIMS:
        assert c.metric in ("rmse", "corr", "nse")
        a, b = c.scenarios  # raises if the comparison is not one the evaluation runs
        assert (c.comparison, a, b) in COMPARISONS[c.experiment]
    # the headline numbers of section 3.1
    by_id = {c.claim_id: c for c in R.CLAIMS}
    assert (by_id["sm_gvl_rmse"].paper_a, by_id["sm_gvl_rmse"].paper_b) == (0.32, 0.38)
    assert (by_id["sm_gvl_corr"].paper_share, by_id["q_gvl_nse"].paper_share) == (0.95, 0.81)
    assert (by_id["q_gvl_corr"].paper_a, by_id["q_gvl_corr"].paper_b) == (0.84, 0.79)
    # pooled p-values of the claims are Table 2's "All" row
    t2 = R.PAPER_TABLE2.set_index(["domain", "metric", "region"])
    for cid in ("sm_gvl_rmse", "sm_gvl_corr", "q_gvl_corr", "q_gvl_nse"):
        c = by_id[cid]
        assert t2.loc[(c.domain, c.metric, "All"), "p"] == c.paper_p
        assert t2.loc[(c.domain, c.metric, "All"), "n"] == c.paper_n
    # 17 soil-moisture and 14 streamflow sub-regions had sites; N adds up to "All"
    for domain, regions in (("soil_moisture", 17), ("streamflow", 14)):
        d = R.PAPER_TABLE2[(R.PAPER_TABLE2["domain"] == domain) & (R.PAPER_TABLE2["region"] != "All")]
        per_metric = d.groupby("metric")
        assert (per_metric.size() == regions).all()
        assert (per_metric["n"].sum() == d[d["metric"] == d["metric"].iloc[0]]["n"].sum()).all()


def test_table2_region_q_is_the_normal_approximation() -> None:
    # Region Q: 7 basins, the paper's p = 1.80E-02 is every pair one way under the normal
    # approximation (the default "paper" method); the exact test would print 1.56E-02.
    q = R.PAPER_TABLE2[(R.PAPER_TABLE2["domain"] == "streamflow") & (R.PAPER_TABLE2["region"] == "Q")]
    assert set(q["n"]) == {7} and set(q["p"]) == {1.80e-02}
    a = np.linspace(0.5, 0.8, 7)
    b = a - np.linspace(0.01, 0.07, 7)
    assert float(f"{paired_wilcoxon(a, b).p_value:.2e}") == 1.80e-02
    assert float(f"{paired_wilcoxon(a, b, 'exact').p_value:.2e}") == 1.56e-02


def _site_metrics(
    effects: dict[tuple[str, str], float], n: int = 40, seeds: tuple[str, ...] = ("mean",)
) -> pd.DataFrame:
    """Per-site metrics of the paper's experiments: for (domain, experiment) an ``effect``, the
    improvement of each comparison's second... as the paper's direction: global over local, and
    each more diverse set over the less diverse one (negative = the other way)."""
    rng = np.random.default_rng(0)
    rows = []
    for (domain, experiment), effect in effects.items():
        regions = ["A", "B", "C"] if experiment == "global_vs_local" else ["8.3.5", "9.4.2"]
        scenarios = list(dict.fromkeys(s for _, a, b in COMPARISONS[experiment] for s in (a, b)))
        rank = {"global": 1, "local": 0}
        rank |= {s: i for i, s in enumerate(scenarios)} if experiment != "global_vs_local" else {}
        for seed in seeds:
            for region in regions:
                for i in range(n):
                    base = rng.uniform(0.4, 0.8)
                    for s in scenarios:
                        gain = effect * rank[s] + rng.normal(0.0, 0.005)
                        rows.append(
                            {
                                "domain": domain,
                                "experiment": experiment,
                                "scenario": s,
                                "region": region,
                                "seed": seed,
                                "site_id": f"{region}-{i}",
                                "rmse": 0.06 - base / 20 - gain / 10,
                                "corr": base + gain,
                                "nse": base + gain,
                            }
                        )
    return pd.DataFrame(rows)


def _significance(sm: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (domain, experiment, seed), g in sm.groupby(["domain", "experiment", "seed"]):
        t = significance_table(g, COMPARISONS[experiment], ["rmse", "corr", "nse"], n_boot=20)
        t.insert(0, "experiment", experiment)
        t.insert(0, "domain", domain)
        t["seed"] = seed
        out.append(t)
    return pd.concat(out, ignore_index=True)


def _verdicts(sm: pd.DataFrame) -> pd.DataFrame:
    table, _ = R.verdicts(_significance(sm), sm)
    return table.set_index("claim_id")


def test_verdicts_hold_when_the_run_agrees() -> None:
    sm = _site_metrics({("soil_moisture", "global_vs_local"): 0.05, ("soil_moisture", "similarity"): 0.05})
    v = _verdicts(sm)
    assert list(v.reset_index().columns) == R.VERDICT_COLUMNS
    for cid in ("sm_gvl_rmse", "sm_gvl_corr", "sm_gvl_rmse_regions", "sm_sim_corr_local_vs_local+close"):
        assert v.loc[cid, "verdict"] == R.HOLDS, v.loc[cid, "reason"]
    assert v.loc["sm_gvl_rmse", "n"] == 120 and v.loc["sm_gvl_rmse", "run_share"] > 0.5
    assert "mean" in v.loc["sm_gvl_rmse", "run"]  # the paper's statistic for soil moisture
    assert v.loc["sm_gvl_corr_regions", "run"] == "holds in 3 of 3 regions"
    # the paper found no difference (size-controlled far vs dissimilar): not run here
    assert v.loc["sm_sized_corr_local+far_sized_vs_local+dissimilar_sized", "verdict"] == R.NOT_TESTABLE
    # no streamflow in this run: every streamflow claim is not testable, with the reason
    q = v[v["domain"] == "streamflow"]
    assert len(q) and (q["verdict"] == R.NOT_TESTABLE).all()
    assert q["reason"].str.contains("no streamflow domain").all()


def test_verdicts_do_not_hold_when_reversed_or_not_significant() -> None:
    sm = _site_metrics({("streamflow", "global_vs_local"): -0.05, ("streamflow", "similarity"): 0.0})
    v = _verdicts(sm)
    assert v.loc["q_gvl_nse", "verdict"] == R.NOT_HOLDS
    assert "not better" in v.loc["q_gvl_nse", "reason"]
    assert v.loc["q_gvl_nse_regions", "verdict"] == R.NOT_HOLDS
    assert v.loc["q_gvl_nse_regions", "reason"].startswith("fails in A, B, C")
    # no effect in the similarity experiment: claimed differences fail (direction or p), the
    # claim of no difference (NSE close vs far, p = 0.185 in the paper) holds
    none = v.loc["q_sim_nse_local+close_vs_local+far"]
    assert none["verdict"] == R.HOLDS and "no significant difference" in none["reason"]
    assert "equivalent" in none["reason"]
    # a claimed difference with no effect: the interval lies inside the margin, so it does not hold
    claimed = v.loc["q_sim_corr_local+far_vs_local+dissimilar"]
    assert claimed["verdict"] == R.NOT_HOLDS and claimed["reason"].endswith(": no effect")


def test_small_effect_right_direction_but_not_significant() -> None:
    # 12 sites (4 per region), an effect below the noise: the right direction without significance.
    # The interval of the median difference lies inside the 2 % margin: no effect of that size, so
    # the claimed difference does not hold; with a margin too small to decide, it is inconclusive.
    sm = _site_metrics({("streamflow", "global_vs_local"): 0.0015}, n=4)
    sig = _significance(sm)
    row = _verdicts(sm).loc["q_gvl_corr"]
    assert row["run_a"] > row["run_b"] and row["p_value"] >= 0.05, row["run"]
    assert row["verdict"] == R.NOT_HOLDS and row["reason"].endswith(": no effect")
    table, _ = R.verdicts(sig, sm, margin=0.001)
    assert table.set_index("claim_id").loc["q_gvl_corr", "verdict"] == R.INCONCLUSIVE
    # a site table is optional: the significance row's medians and share give the same verdict
    table, _ = R.verdicts(sig, None)
    alone = table.set_index("claim_id").loc["q_gvl_corr"]
    assert alone["verdict"] == R.NOT_HOLDS and alone["run"].startswith("median ")


def test_several_seeds_use_the_per_site_seed_means() -> None:
    sm = _site_metrics({("soil_moisture", "global_vs_local"): 0.05}, seeds=("0", "1", "mean", SEED_MEAN))
    v = _verdicts(sm)
    assert v.loc["sm_gvl_rmse", "seed"] == SEED_MEAN and v.loc["sm_gvl_rmse", "verdict"] == R.HOLDS


def test_seed_mean_verdicts_pair_the_sites_of_a_stored_site_metrics_table() -> None:
    # as stored by the evaluation asset: per-seed and ensemble rows, no seed_mean rows; the
    # significance asset adds the seed_mean tests, the report must pair the same per-site means
    sm = _site_metrics({("soil_moisture", "global_vs_local"): 0.05}, seeds=("0", "1", "mean"))
    means = per_site_seed_means(sm, ["rmse", "corr", "nse"])
    sig = _significance(pd.concat([sm, means], ignore_index=True))
    table, _ = R.verdicts(sig, sm)
    row = table.set_index("claim_id").loc["sm_gvl_rmse"]
    assert row["seed"] == SEED_MEAN and row["run"].startswith("mean ")  # the paper's statistic
    glob = sm[(sm["scenario"] == "global") & sm["seed"].isin(["0", "1"])].groupby("site_id")["rmse"].mean()
    assert row["run_a"] == pytest.approx(glob.mean())
    assert row["n"] == 120 and row["verdict"] == R.HOLDS
    assert row["seed_verdicts"] == f"0: {R.HOLDS}; 1: {R.HOLDS}" and not row["seeds_differ"]


def _setup() -> R.RunSetup:
    study = load_study(STUDIES / "virtual.yaml")
    models = pd.DataFrame(
        {
            "seed": [0, 0],
            "code_version": ["0.1.0+abc1234", "0.1.0+abc1234"],
            "stop_reason": ["converged", "budget"],
            "n_iterations": [500, 900],
            "config_json": [
                json.dumps({"inputs": ["APCP", "TMP", "PET", "DSWRF", "sand", "clay"], "n_in": 6})
            ]
            * 2,
        }
    )
    sources = pd.DataFrame(
        {
            "source_name": ["soil_moisture"],
            "format": ["netcdf"],
            "path": ["/data/sm.nc"],
            "n_sites": [1200],
            "period_start": ["2015-04-01"],
            "period_end": ["2017-03-31"],
        }
    )
    sets = {"soil_moisture": pd.DataFrame({"scenario": ["global", "local"], "n_sites": [1100, 60]})}
    sm = _site_metrics({("soil_moisture", "global_vs_local"): 0.05})
    return R.run_setup(
        study, study.training_profile(), _significance(sm), {"soil_moisture": models}, sources, sets, "paper"
    )


def test_run_setup_reads_the_study_and_the_store_rows() -> None:
    setup = _setup()
    assert setup.study["code"] == "0.1.0+abc1234"
    assert setup.study["seeds"].startswith("1 per training set")
    assert "converge" in setup.study["training"] and "profile demo" in setup.study["training"]
    sm = setup.domains["soil_moisture"]
    assert sm["dynamic inputs"] == "APCP, TMP, PET, DSWRF"
    assert "2 columns fed (sand, clay)" in sm["static inputs"]
    assert sm["training period"] == "2015-04-01..2016-03-31"
    assert "1200 sites" in sm["data"] and "global training set 1100 sites" in sm["data"]
    assert sm["sites tested, global vs local"] == "120 sites (3 sub-regions)"
    assert sm["sites tested, similarity"] == "not run"


def test_build_report_markdown() -> None:
    sm = _site_metrics({("soil_moisture", "global_vs_local"): 0.05, ("soil_moisture", "similarity"): 0.05})
    rep = R.build_report(_significance(sm), sm, _setup(), alpha=0.05)
    md = rep.markdown
    assert md.startswith("# Reproduction report")
    counts = rep.verdicts["verdict"].value_counts()
    assert f"{counts[R.HOLDS]} holds" in md and f"{counts[R.NOT_TESTABLE]} not testable here" in md
    for text in (
        "## What differs from the paper",
        "NLDAS-2",  # the paper's forcing beside this run's
        "APCP, TMP, PET, DSWRF",
        "## Global vs local per region: soil_moisture",
        "## Similarity experiments per ROI",
        "0.032 vs 0.038",
        "1.80E-02",
    ):
        assert text in md, text
    # one verdict per claim, each of the three values allowed
    assert len(rep.verdicts) == len(R.CLAIMS)
    assert set(rep.verdicts["verdict"]) <= set(R.VERDICTS)


@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_alpha_is_used(alpha: float) -> None:
    sm = _site_metrics({("soil_moisture", "global_vs_local"): 0.05})
    rep = R.build_report(_significance(sm), sm, R.RunSetup(), alpha=alpha)
    assert f"alpha = {alpha:g}" in rep.markdown
    assert "**streamflow**: not in this run" in rep.markdown


def test_seed_spread_figure_draws_every_seed() -> None:
    from synergy_dagster.evaluation.figures import seed_spread_figure

    sm = _site_metrics({("soil_moisture", "global_vs_local"): 0.05}, n=12, seeds=("0", "1", SEED_MEAN))
    png = seed_spread_figure(_significance(sm), "rmse", title="soil moisture: rmse across seeds")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
