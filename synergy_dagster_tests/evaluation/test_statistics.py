"""Paired statistics: Wilcoxon against scipy and the paper (the method setting), Holm by hand,
rank-biserial by hand, bootstrap CI, the significance table (shape, pairing by site id, the pooled
"All" row, the method column), per-site seed means and the spread across seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation import statistics as S


def test_paired_wilcoxon_equals_scipy_after_nan_removal() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(0.3, 1.0, 80)
    b = rng.normal(0.0, 1.0, 80)
    a[[2, 10]] = np.nan
    b[[5, 10, 40]] = np.nan
    keep = ~(np.isnan(a) | np.isnan(b))
    ref = scipy.stats.wilcoxon(a[keep], b[keep])
    got = S.paired_wilcoxon(a, b)
    assert got.n == 76
    assert got.statistic == pytest.approx(float(ref.statistic))
    assert got.p_value == pytest.approx(float(ref.pvalue))
    # Small sample with zero differences: scipy's default drops zeros ("wilcox"); "auto" is exactly
    # scipy's default, "paper" its normal approximation.
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    y = np.array([1.0, 1.5, 3.5, 2.0, 5.0, 4.0, 3.0])
    ref = scipy.stats.wilcoxon(x, y)
    got = S.paired_wilcoxon(x, y, method="auto")
    assert (got.n, got.statistic, got.p_value) == (7, pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    ref = scipy.stats.wilcoxon(x, y, method="asymptotic")
    got = S.paired_wilcoxon(x, y)
    assert (got.n, got.statistic, got.p_value) == (7, pytest.approx(ref.statistic), pytest.approx(ref.pvalue))


def test_paired_wilcoxon_degenerate_cases() -> None:
    got = S.paired_wilcoxon([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert got.n == 3 and np.isnan(got.p_value) and np.isnan(got.statistic)
    got = S.paired_wilcoxon([np.nan, 1.0], [2.0, np.nan])
    assert got.n == 0 and np.isnan(got.p_value)
    with pytest.raises(InputError, match="length"):
        S.paired_wilcoxon([1.0, 2.0], [1.0])


def test_holm_hand_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    p = [0.01, np.nan, 0.04, 0.03, 0.005]
    got = S.holm(p)
    np.testing.assert_allclose(got, [0.03, np.nan, 0.06, 0.06, 0.02])
    # capped at 1: 0.5*2 = 1.0, then max(1.0, 0.6*1) = 1.0
    np.testing.assert_allclose(S.holm([0.6, 0.5]), [1.0, 1.0])
    assert S.holm([]).size == 0
    assert np.isnan(S.holm([np.nan])).all()


def test_rank_biserial_hand_example() -> None:
    a = np.array([2.0, 0.0, 6.0, 5.0, 9.0, np.nan])
    b = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 1.0])
    # d = [1, -2, 3, 0, 4] (NaN pair dropped, zero dropped); ranks of |d| = 1, 2, 3, 4
    # W+ = 1 + 3 + 4 = 8, W- = 2 -> r = (8 - 2) / 10
    assert S.rank_biserial(a, b) == pytest.approx(0.6)
    assert S.rank_biserial(b, a) == pytest.approx(-0.6)
    # ties: d = [1, -1, 2] -> ranks 1.5, 1.5, 3 -> (4.5 - 1.5) / 6
    assert S.rank_biserial([1.0, 0.0, 2.0], [0.0, 1.0, 0.0]) == pytest.approx(0.5)
    assert np.isnan(S.rank_biserial([1.0], [1.0]))


def test_share_better_directions() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    b = np.array([2.0, 2.0, 1.0, 1.0, 0.0])
    assert S.share_better(a, b, higher_is_better=True) == pytest.approx(2 / 4)  # ties are not wins
    assert S.share_better(a, b, higher_is_better=False) == pytest.approx(1 / 4)


def test_bootstrap_ci_contains_true_shift_and_is_deterministic() -> None:
    rng = np.random.default_rng(11)
    b = rng.normal(0.0, 1.0, 400)
    a = b + 0.5 + rng.normal(0.0, 0.3, 400)  # true median of a - b is 0.5
    med, lo, hi = S.median_diff_ci(a, b, n_boot=1000, seed=7)
    assert lo < 0.5 < hi
    assert lo <= med <= hi
    assert hi - lo < 0.2  # 400 pairs with sd 0.3: the CI is narrow
    assert med == pytest.approx(float(np.median(a - b)))
    assert S.median_diff_ci(a, b, n_boot=1000, seed=7) == (med, lo, hi)
    assert S.median_diff_ci(a, b, n_boot=1000, seed=8) != (med, lo, hi)
    assert all(np.isnan(S.median_diff_ci([np.nan], [1.0])))


def test_bootstrap_chunking_gives_a_valid_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force many small chunks: the CI must still be a sane percentile interval of the medians.
    monkeypatch.setattr(S, "_BOOT_CHUNK_ELEMENTS", 50)
    d = np.arange(20, dtype=float)
    med, lo, hi = S.median_diff_ci(d, np.zeros(20), n_boot=300, seed=0)
    assert med == 9.5 and 3 < lo < 9.5 < hi < 16


def test_compare_uses_absolute_bias() -> None:
    a = np.array([-0.1, 0.1, -0.2, 0.05])
    b = np.array([-0.5, 0.4, 0.3, -0.6])
    res = S.compare(a, b, "bias", higher_is_better=False)
    assert res["share_a_better"] == 1.0  # |a| < |b| at every site although a > b at some
    assert res["median_a"] == pytest.approx(np.median(np.abs(a)))
    assert res["effect"] == pytest.approx(-1.0)
    assert set(res) >= {
        "n",
        "statistic",
        "p_value",
        "effect",
        "median_diff",
        "ci_low",
        "ci_high",
        "median_a",
        "median_b",
        "share_a_better",
    }


def _site_metrics(seed: int = 0) -> pd.DataFrame:
    """3 regions (8, 10, 12 sites); 'global' beats 'local' on rmse and corr; one NaN site."""
    rng = np.random.default_rng(seed)
    rows = []
    for region, n in (("A", 8), ("B", 10), ("C", 12)):
        for i in range(n):
            sid = f"{region}{i:02d}"
            base_rmse, base_corr = rng.uniform(0.02, 0.06), rng.uniform(0.5, 0.9)
            rows.append((region, "global", sid, base_rmse, base_corr))
            rows.append(
                (region, "local", sid, base_rmse + rng.uniform(0.0, 0.01), base_corr - rng.uniform(0, 0.1))
            )
    df = pd.DataFrame(rows, columns=["region", "scenario", "site_id", "rmse", "corr"])
    df.loc[(df.site_id == "C03") & (df.scenario == "local"), "corr"] = np.nan
    return df


def test_significance_table_shape_and_all_row() -> None:
    df = _site_metrics()
    tab = S.significance_table(df, [("global vs local", "global", "local")], ["rmse", "corr"], n_boot=200)
    assert list(tab.columns) == S.SIGNIFICANCE_COLUMNS
    assert len(tab) == 1 * (3 + 1) * 2
    for metric, sizes in (("rmse", (8, 10, 12)), ("corr", (8, 10, 11))):
        t = tab[tab.metric == metric].set_index("region")
        assert tuple(t.loc[["A", "B", "C"], "n"]) == sizes
        assert t.loc["All", "n"] == sum(sizes)
        assert (t["share_a_better"] == 1.0).all()  # global is better at every site
        assert t.loc["All", "p_holm"] == t.loc["All", "p_value"]
        regional = t.loc[["A", "B", "C"]]
        np.testing.assert_allclose(regional["p_holm"], S.holm(regional["p_value"].to_numpy()))
        assert (regional["p_holm"] >= regional["p_value"]).all()
    # The pooled row is the Wilcoxon test of the concatenated paired vectors.
    g = df[df.scenario == "global"].set_index("site_id")["rmse"]
    loc = df[df.scenario == "local"].set_index("site_id")["rmse"].reindex(g.index)
    ref = scipy.stats.wilcoxon(g.to_numpy(), loc.to_numpy(), method="asymptotic")  # the paper's method
    all_rmse = tab[(tab.metric == "rmse") & (tab.region == "All")].iloc[0]
    assert all_rmse["p_value"] == pytest.approx(ref.pvalue)
    assert all_rmse["median_a"] < all_rmse["median_b"]
    assert all_rmse["effect"] == pytest.approx(-1.0)


def test_significance_table_pairs_by_site_id() -> None:
    df = _site_metrics(seed=5)
    comps = [("global vs local", "global", "local")]
    ref = S.significance_table(df, comps, ["rmse", "corr"], n_boot=200)
    shuffled = df.sample(frac=1.0, random_state=1).reset_index(drop=True)
    got = S.significance_table(shuffled, comps, ["rmse", "corr"], n_boot=200)
    pd.testing.assert_frame_equal(ref, got)
    # The median difference of region B equals the one from an explicit join on site_id.
    b = df[df.region == "B"].pivot(index="site_id", columns="scenario", values="rmse")
    row = ref[(ref.region == "B") & (ref.metric == "rmse")].iloc[0]
    assert row["median_diff"] == pytest.approx(float(np.median(b["global"] - b["local"])))
    # Pairing by position instead of id would change it: the shuffle really permutes the pairs.
    sg = shuffled[(shuffled.region == "B") & (shuffled.scenario == "global")]["rmse"].to_numpy()
    sl = shuffled[(shuffled.region == "B") & (shuffled.scenario == "local")]["rmse"].to_numpy()
    assert float(np.median(sg - sl)) != pytest.approx(row["median_diff"])


def test_significance_table_input_errors() -> None:
    df = _site_metrics()
    with pytest.raises(InputError, match="missing column"):
        S.significance_table(df.drop(columns="site_id"), [("x", "global", "local")], ["rmse"])
    with pytest.raises(InputError, match="'regional'"):
        S.significance_table(df, [("x", "global", "regional")], ["rmse"])
    with pytest.raises(InputError, match="duplicate"):
        S.significance_table(pd.concat([df, df.iloc[:1]]), [("x", "global", "local")], ["rmse"])
    with pytest.raises(InputError, match="direction"):
        S.significance_table(df.assign(mae=1.0), [("x", "global", "local")], ["mae"])
    tab = S.significance_table(
        df.assign(mae=df["rmse"]),
        [("x", "global", "local")],
        ["mae"],
        directions={"mae": False},
        include_all=False,
        n_boot=50,
    )
    assert len(tab) == 3 and (tab.share_a_better == 1.0).all()


def test_wilcoxon_method_reproduces_the_papers_p_values() -> None:
    # Table 2, region Q (streamflow): n = 7 basins, the global model better at every one. The paper
    # prints 1.80E-02 for both metrics: scipy's normal approximation; the exact test, which scipy
    # now picks by default below n = 50, gives 2/2^7 = 0.0156.
    a = np.array([0.9, 0.8, 0.85, 0.7, 0.75, 0.6, 0.95])
    b = a - np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07])
    paper = S.paired_wilcoxon(a, b)
    assert paper.n == 7 and paper.statistic == 0.0
    assert f"{paper.p_value:.2E}" == "1.80E-02"
    assert paper.p_value == pytest.approx(0.0180, abs=5e-5)
    assert S.paired_wilcoxon(a, b, "approx").p_value == paper.p_value
    assert S.paired_wilcoxon(a, b, "exact").p_value == pytest.approx(2 / 2**7)
    assert S.paired_wilcoxon(a, b, "auto").p_value == pytest.approx(0.015625)
    with pytest.raises(InputError, match="wilcoxon_method"):
        S.paired_wilcoxon(a, b, "normal")


def test_paper_method_is_the_normal_approximation_formula() -> None:
    # With ties and a zero: z = (W+ - m(m+1)/4) / sqrt(m(m+1)(2m+1)/24 - sum(t^3 - t)/48), m non-zero.
    d = np.array([0.0, 1.0, -2.0, 3.0, 3.0, 4.0, 5.0, -1.0, 6.0, 7.0, 8.0, 2.0])
    nz = d[d != 0]
    m = nz.size
    ranks = scipy.stats.rankdata(np.abs(nz))
    w_plus = ranks[nz > 0].sum()
    _, t = np.unique(np.abs(nz), return_counts=True)
    se = np.sqrt(m * (m + 1) * (2 * m + 1) / 24 - np.sum(t**3 - t) / 48)
    z = (w_plus - m * (m + 1) / 4) / se
    expected = 2 * scipy.stats.norm.sf(abs(z))
    got = S.paired_wilcoxon(d, np.zeros_like(d))
    assert got.n == 12
    assert got.statistic == pytest.approx(min(w_plus, ranks[nz < 0].sum()))
    assert got.p_value == pytest.approx(expected, rel=1e-12)


def test_significance_table_records_the_method() -> None:
    df = _site_metrics()
    comps = [("global vs local", "global", "local")]
    paper = S.significance_table(df, comps, ["rmse"], n_boot=50)
    exact = S.significance_table(df, comps, ["rmse"], n_boot=50, method="exact")
    assert set(paper["method"]) == {"paper"} and set(exact["method"]) == {"exact"}
    assert list(paper.columns) == S.SIGNIFICANCE_COLUMNS
    # small regions differ between the methods; the statistic and medians do not
    small = paper["n"] < 50
    assert small.any()
    assert not np.allclose(paper.loc[small, "p_value"], exact.loc[small, "p_value"])
    np.testing.assert_allclose(paper["statistic"], exact["statistic"])
    with pytest.raises(InputError, match="wilcoxon_method"):
        S.significance_table(df, comps, ["rmse"], method="z")


def test_per_site_seed_means() -> None:
    rows = []
    for seed, shift in (("0", 0.0), ("1", 0.2), ("mean", 9.0), ("std", 9.0)):
        for site, v in (("s1", 1.0), ("s2", np.nan if seed == "1" else 2.0)):
            rows.append(
                {
                    "domain": "q",
                    "scenario": "global",
                    "region": "A",
                    "site_id": site,
                    "seed": seed,
                    "nse": v + shift,
                }
            )
    df = pd.DataFrame(rows)
    out = S.per_site_seed_means(df, ["nse"]).set_index("site_id")
    assert set(out["seed"]) == {S.SEED_MEAN}
    assert out.loc["s1", "nse"] == pytest.approx(1.1)  # (1.0 + 1.2) / 2; "mean"/"std" rows ignored
    assert out.loc["s2", "nse"] == pytest.approx(2.0)  # the NaN seed left out
    assert S.per_site_seed_means(df[df["seed"] != "1"], ["nse"]).empty  # one seed: nothing to add


def test_seed_spread_hand_example() -> None:
    t = pd.DataFrame(
        {
            "seed": ["0", "1", "2", "mean", S.SEED_MEAN, "0"],
            "region": ["A", "A", "A", "A", "A", "B"],
            "median_diff": [0.1, -0.05, 0.2, 0.08, 0.09, 0.3],
            "share_a_better": [0.6, 0.4, 0.7, 0.62, 0.61, 0.9],
            "p_value": [0.01, 0.3, 0.001, 0.005, 0.004, 0.02],
        }
    )
    out = S.seed_spread(t, ["region"])
    for i in (3, 4):
        r = out.loc[i]
        assert r["n_seeds"] == 3
        assert r["seed_sd_median_diff"] == pytest.approx(np.std([0.1, -0.05, 0.2]))
        assert (r["seed_min_share"], r["seed_max_share"], r["seed_max_p"]) == (0.4, 0.7, 0.3)
        assert r["seeds_agree"] == 2  # -0.05 points the other way
    assert out.loc[[0, 1, 2, 5], "n_seeds"].isna().all()  # per-seed rows; B has one seed


def test_older_significance_table_gains_method_and_seed_spread(tmp_path: Path) -> None:
    import duckdb

    from synergy_dagster.store import MetadataStore

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE significance (domain VARCHAR, region VARCHAR, p_value DOUBLE, budget VARCHAR)")
    con.execute("INSERT INTO significance VALUES ('streamflow', 'Q', 0.0156, 'converge')")
    con.close()
    store = MetadataStore(db)
    store.init_schema()
    row = store.query("SELECT * FROM significance").iloc[0]
    # rows written before the setting used scipy's default; the spread columns are unknown
    assert (row["region"], row["p_value"], row["method"]) == ("Q", 0.0156, "auto")
    assert pd.isna(row["n_seeds"]) and pd.isna(row["seed_sd_median_diff"])
    new = pd.DataFrame({"domain": ["streamflow"], "region": ["Q"], "method": ["paper"], "n_seeds": [3]})
    store.replace_rows("significance", new.astype({"n_seeds": "Int64"}), {"domain": "streamflow"})
    assert store.query("SELECT method, n_seeds FROM significance").iloc[0].tolist() == ["paper", 3]


# --------------------------------------------------------------------------- one seed aggregation


def _three_seed_rows() -> pd.DataFrame:
    """Two sites, seeds 0 and 1, and the ensemble ("mean") rows whose values differ from the mean
    of the per-seed values (an ensemble scores better than its members)."""
    return pd.DataFrame(
        {
            "domain": "streamflow",
            "experiment": "global_vs_local",
            "scenario": "global",
            "region": "A",
            "site_id": ["s1", "s2"] * 3,
            "seed": ["0", "0", "1", "1", "mean", "mean"],
            "nse": [0.5, 0.6, 0.7, 0.2, 0.65, 0.5],
        }
    )


def test_judged_rows_follow_the_seed_aggregation() -> None:
    sm = _three_seed_rows()
    mean = S.judged_rows(sm, "seed_mean", ["nse"]).set_index("site_id")
    assert set(mean["seed"]) == {S.SEED_MEAN}
    assert mean.loc["s1", "nse"] == pytest.approx(0.6) and mean.loc["s2", "nse"] == pytest.approx(0.4)
    ens = S.judged_rows(sm, "ensemble", ["nse"]).set_index("site_id")
    assert set(ens["seed"]) == {S.ENSEMBLE} and ens.loc["s2", "nse"] == 0.5
    # seed_mean rows already in the table are used as they are, not recomputed
    stored = pd.concat([sm, S.per_site_seed_means(sm, ["nse"])], ignore_index=True)
    assert S.judged_rows(stored, "seed_mean", ["nse"]).set_index("site_id")["nse"].to_dict() == pytest.approx(
        {"s1": 0.6, "s2": 0.4}
    )
    # one seed: the ensemble of one model is that model, so both settings judge the "mean" rows
    one = sm[sm["seed"].isin(["0", "mean"])]
    assert set(S.judged_rows(one, "seed_mean", ["nse"])["seed"]) == {S.ENSEMBLE}
    assert S.judged_seed_label(one["seed"], "seed_mean") == S.ENSEMBLE
    assert S.judged_seed_label(stored["seed"], "seed_mean") == S.SEED_MEAN
    assert S.judged_seed_label(stored["seed"], "ensemble") == S.ENSEMBLE


def test_an_unknown_seed_aggregation_is_refused() -> None:
    with pytest.raises(InputError, match=r"seed_aggregation: must be one of \['seed_mean', 'ensemble'\]"):
        S.judged_rows(_three_seed_rows(), "median", ["nse"])
    with pytest.raises(InputError, match="got 'best'"):
        S.judged_seed_label(_three_seed_rows()["seed"], "best")


def test_statistics_settings_have_one_default_and_refuse_bad_values() -> None:
    from synergy_dagster.errors import ConfigError
    from synergy_dagster.study_file import StatisticsSpec

    spec = StatisticsSpec()
    assert (spec.seed_aggregation, spec.equivalence_margin, spec.null_draws, spec.curve_min_draws) == (
        "seed_mean",
        0.02,
        20,
        3,
    )
    for bad in ({"seed_aggregation": "median"}, {"equivalence_margin": 0.0}, {"null_draws": 100}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            StatisticsSpec(**bad)
    with pytest.raises(ConfigError, match="curve_min_draws"):
        StatisticsSpec(curve_min_draws=1)
