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


# --- exact messages, bounds and pass-through of every setting (issue 26: mutation testing) -------


def test_input_errors_name_the_input_exactly() -> None:
    with pytest.raises(
        InputError, match=r"^wilcoxon_method: must be one of \['paper', 'exact', 'auto', 'approx'\], got 'z'$"
    ):
        S.check_method("z")
    assert [S.check_method(m) for m in S.WILCOXON_METHODS] == list(S.WILCOXON_METHODS)
    with pytest.raises(InputError, match=r"^b: length 1 does not match length 2 of a \(pairs by site\)$"):
        S.paired_valid([1.0, 2.0], [1.0])
    with pytest.raises(InputError, match=r"^n_boot: must be >= 1, got 0$"):
        S.median_diff_ci([1.0], [0.0], n_boot=0)
    for alpha in (0.0, 1.0):
        with pytest.raises(InputError, match=rf"^alpha: must be in \(0, 1\), got {alpha}$"):
            S.median_diff_ci([1.0], [0.0], alpha=alpha)
    assert S.median_diff_ci([1.0], [0.0], n_boot=1, alpha=0.999) == (1.0, 1.0, 1.0)  # the bounds are open
    df = _site_metrics()
    comps = [("x", "global", "local")]
    with pytest.raises(
        InputError,
        match=r"^site_metrics: missing column\(s\) \['site_id'\]; have \['region', 'scenario', 'rmse', 'corr'\]$",
    ):
        S.significance_table(df.drop(columns="site_id"), comps, ["rmse"])
    with pytest.raises(InputError, match=r"^site_metrics: missing column\(s\) \['nse'\]"):
        S.significance_table(df, comps, ["nse"])
    with pytest.raises(
        InputError, match=r"^comparisons \[x\]: scenario 'regional' has no rows in site_metrics$"
    ):
        S.significance_table(df, [("x", "global", "regional")], ["rmse"])
    with pytest.raises(InputError, match=r"^comparisons \[y\]: scenario 'nowhere' has no rows"):
        S.significance_table(df, [("y", "nowhere", "local")], ["rmse"])
    with pytest.raises(
        InputError,
        match=r"^site_metrics: duplicate row for \(region, scenario, site_id\) = \['A', 'local', 'A00'\]$",
    ):
        S.significance_table(pd.concat([df, df.iloc[1:2]]), comps, ["rmse"])
    with pytest.raises(
        InputError,
        match=r"^metrics: no direction known for \['mae'\]; pass directions=\{name: higher_is_better\}$",
    ):
        S.significance_table(df.assign(mae=1.0), comps, ["mae"])
    with pytest.raises(InputError, match=r"^site_metrics: missing column\(s\) \['seed', 'nse'\]$"):
        S.per_site_seed_means(df, ["nse"])
    with pytest.raises(
        InputError,
        match=r"^significance: missing column\(s\) \['seed', 'median_diff', 'share_a_better', 'p_value'\]$",
    ):
        S.seed_spread(df, ["region"])
    with pytest.raises(
        InputError, match=r"^seed_aggregation: must be one of \['seed_mean', 'ensemble'\], got 'best'$"
    ):
        S.judged_rows(df, "best", ["rmse"])


def test_paired_valid_drops_every_non_finite_pair_as_float64() -> None:
    x, y = S.paired_valid([[np.inf, 1], [2, 5]], [[0, 3], [1, -np.inf]])  # 2-D input is flattened
    assert x.dtype == np.float64 and y.dtype == np.float64
    assert x.tolist() == [1.0, 2.0] and y.tolist() == [3.0, 1.0]


def test_paired_wilcoxon_of_one_pair_is_the_normal_approximation() -> None:
    # m = 1: W+ = 1, z = (1 - 1/2) / sqrt(1 x 2 x 3 / 24) = 1, p = 2 (1 - Phi(1))
    got = S.paired_wilcoxon([2.0], [1.0])
    assert (got.n, got.statistic) == (1, 0.0)
    assert got.p_value == pytest.approx(2 * (1 - scipy.stats.norm.cdf(1.0)), rel=1e-12)
    # two pairs, exact: both differences positive, p = 2 x 1/4
    assert S.paired_wilcoxon([2.0, 3.0], [1.0, 1.0], "exact").p_value == pytest.approx(0.5)
    # one non-zero difference among zeros is still a test (zeros dropped: m = 1)
    assert S.paired_wilcoxon([1.0, 1.0, 2.0], [1.0, 1.0, 1.0]).p_value == pytest.approx(got.p_value)


def _bootstrap_by_hand(d: np.ndarray, n_boot: int, alpha: float, seed: int) -> tuple[float, float]:
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    meds = np.median(d[idx], axis=1)
    return float(np.quantile(meds, alpha / 2)), float(np.quantile(meds, 1 - alpha / 2))


def test_bootstrap_ci_is_the_percentile_interval_of_the_resampled_medians(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.2, 1.0, 30), rng.normal(0.0, 1.0, 30)
    d = a - b
    for n_boot, alpha, seed in ((2000, 0.05, 0), (300, 0.2, 5)):
        med, lo, hi = S.median_diff_ci(a, b, n_boot=n_boot, alpha=alpha, seed=seed)
        assert med == float(np.median(d))
        assert (lo, hi) == pytest.approx(_bootstrap_by_hand(d, n_boot, alpha, seed), abs=0, rel=1e-15)
    assert S.median_diff_ci(a, b) == S.median_diff_ci(a, b, n_boot=2000, alpha=0.05, seed=0)  # the defaults
    # drawn in chunks of 7 resamples (210 elements / 30 sites), the draws are the same stream
    monkeypatch.setattr(S, "_BOOT_CHUNK_ELEMENTS", 210)
    med, lo, hi = S.median_diff_ci(a, b, n_boot=300, alpha=0.2, seed=5)
    assert (lo, hi) == pytest.approx(_bootstrap_by_hand(d, 300, 0.2, 5), abs=0, rel=1e-15)


def test_compare_returns_every_statistic_of_the_pair() -> None:
    # d = [0.5, -0.5, 3]: W+ = 1.5 + 3, W- = 1.5; medians 2 and 1; a higher at 2 of 3 sites
    got = S.compare([1.0, 2.0, 4.0, np.nan], [0.5, 2.5, 1.0, 3.0], "corr", True, n_boot=50, alpha=0.1, seed=3)
    ref = scipy.stats.wilcoxon([1.0, 2.0, 4.0], [0.5, 2.5, 1.0], correction=False, method="asymptotic")
    med, lo, hi = S.median_diff_ci([1.0, 2.0, 4.0], [0.5, 2.5, 1.0], n_boot=50, alpha=0.1, seed=3)
    assert got == {
        "metric": "corr",
        "n": 3,
        "statistic": 1.5,
        "p_value": pytest.approx(ref.pvalue, rel=1e-12),
        "effect": 0.5,
        "median_diff": 0.5,
        "ci_low": lo,
        "ci_high": hi,
        "median_a": 2.0,
        "median_b": 1.0,
        "share_a_better": pytest.approx(2 / 3),
        "method": "paper",
    }
    assert S.compare([1.0, 2.0, 4.0], [0.5, 2.5, 1.0], "rmse", False, n_boot=50)[
        "share_a_better"
    ] == pytest.approx(1 / 3)
    assert S.compare([1.0, 2.0], [0.5, 2.5], "corr", True, n_boot=5, method="exact")["method"] == "exact"
    # absolute values: by the registry (bias), or when asked for a metric outside it
    neg = S.compare([-3.0, -2.0, -1.0], [1.0, 1.5, 0.5], "skill", True, n_boot=5)
    assert neg["median_a"] == -2.0 and neg["share_a_better"] == 0.0  # not in the registry: as they are
    absn = S.compare([-3.0, -2.0, -1.0], [1.0, 1.5, 0.5], "skill", True, absolute=True, n_boot=5)
    assert absn["median_a"] == 2.0 and absn["share_a_better"] == 1.0
    off = S.compare([-3.0, -2.0, -1.0], [1.0, 1.5, 0.5], "bias", False, absolute=False, n_boot=5)
    assert off["median_a"] == -2.0
    empty = S.compare([np.nan], [1.0], "corr", True, n_boot=5)
    assert empty["n"] == 0 and np.isnan(empty["median_a"]) and np.isnan(empty["median_b"])


def test_significance_table_passes_every_setting_on() -> None:
    df = _site_metrics(seed=2).rename(columns={"region": "huc"})
    comps = [("global vs local", "global", "local")]
    tab = S.significance_table(
        df, comps, ["rmse"], region_col="huc", all_label="CONUS", n_boot=40, alpha=0.3, seed=9, method="exact"
    )
    assert list(tab["region"]) == ["A", "B", "C", "CONUS"]
    assert list(tab.columns) == S.SIGNIFICANCE_COLUMNS and tab["n"].dtype == np.int64
    for region, row in tab.set_index("region").iterrows():
        sub = df if region == "CONUS" else df[df["huc"] == region]
        a = sub[sub.scenario == "global"].sort_values("site_id")["rmse"].to_numpy()
        b = sub[sub.scenario == "local"].sort_values("site_id")["rmse"].to_numpy()
        want = S.compare(a, b, "rmse", False, n_boot=40, alpha=0.3, seed=9, method="exact")
        for k, v in want.items():
            assert row[k] == v, (region, k)
        assert (row["comparison"], row["scenario_a"], row["scenario_b"]) == (
            "global vs local",
            "global",
            "local",
        )
    assert tab.iloc[-1]["p_holm"] == tab.iloc[-1]["p_value"]
    np.testing.assert_array_equal(tab["p_holm"].iloc[:3], S.holm(tab["p_value"].iloc[:3].to_numpy()))
    alone = S.significance_table(df, comps, ["rmse"], region_col="huc", include_all=False, n_boot=40)
    assert list(alone["region"]) == ["A", "B", "C"]
    assert S.significance_table(df, [], ["rmse"], region_col="huc").empty


def test_per_site_seed_means_keys_and_columns() -> None:
    rows = [
        {"seed": s, "scenario": sc, "region": "A", "site_id": "s1", "budget": "paper", "nse": v}
        for s, sc, v in (("0", "global", 0.1), ("1", "global", 0.3), ("0", "local", 0.5), ("1", "local", 0.9))
    ]
    out = S.per_site_seed_means(pd.DataFrame(rows), ["nse"])
    assert list(out.columns) == ["seed", "scenario", "region", "site_id", "budget", "nse"]
    assert out["nse"].tolist() == pytest.approx([0.2, 0.7]) and out["scenario"].tolist() == [
        "global",
        "local",
    ]
    one = S.per_site_seed_means(pd.DataFrame(rows[:1]), ["nse"])
    assert one.empty and list(one.columns) == ["seed", "scenario", "region", "site_id", "budget", "nse"]


def test_seed_spread_edge_cases() -> None:
    cols = {"seed": [], "region": [], "median_diff": [], "share_a_better": [], "p_value": []}
    empty = S.seed_spread(pd.DataFrame(cols), ["region"])
    assert (
        empty.empty and str(empty["n_seeds"].dtype) == "Int64" and str(empty["seeds_agree"].dtype) == "Int64"
    )
    only = S.seed_spread(
        pd.DataFrame({k: [v] for k, v in zip(cols, ["mean", "A", 0.1, 0.5, 0.2], strict=True)}), ["region"]
    )
    assert only["n_seeds"].isna().all() and str(only["seeds_agree"].dtype) == "Int64"
    # a zero aggregate difference agrees with no seed
    t = pd.DataFrame(
        {
            "seed": ["0", "1", "mean"],
            "region": ["A", "A", "A"],
            "median_diff": [0.1, -0.1, 0.0],
            "share_a_better": [0.5, 0.5, 0.5],
            "p_value": [0.5, 0.5, 0.5],
        }
    )
    assert S.seed_spread(t, ["region"]).loc[2, "seeds_agree"] == 0


def test_judged_rows_without_seeds_or_seed_means() -> None:
    plain = pd.DataFrame({"site_id": ["a"], "nse": [0.5]})
    assert S.judged_rows(plain, "seed_mean", ["nse"]) is plain
    one = pd.DataFrame({"seed": ["0", "mean"], "site_id": ["a", "a"], "nse": [0.5, 0.6]})
    assert S.judged_rows(one, "seed_mean", ["nse"])["nse"].tolist() == [0.6]  # one seed: the ensemble rows
    assert S.judged_seed_label(pd.Series(["0", "mean"]), "seed_mean") == S.ENSEMBLE
    assert S.judged_seed_label(pd.Series(["0", S.SEED_MEAN]), "seed_mean") == S.SEED_MEAN
    assert S.judged_seed_label(pd.Series(["0", S.SEED_MEAN]), "ensemble") == S.ENSEMBLE


def test_per_site_seed_means_keep_domains_experiments_models_apart_in_input_order() -> None:
    rows = []
    for domain, experiment, model_key, region, base in (
        ("q", "gvl", "m1", "A", 0.0),
        ("q", "gvl", "m2", "A", 10.0),
        ("q", "sim", "m1", "A", 20.0),
        ("sm", "gvl", "m1", "A", 30.0),
        ("q", "gvl", "m1", None, 40.0),  # a missing region is a group of its own
    ):
        for site, shift in (("s2", 0.0), ("s1", 1.0)):  # s2 first: the output keeps that order
            for seed, v in (("0", 0.0), ("1", 2.0)):
                rows.append(
                    {"seed": seed, "domain": domain, "experiment": experiment, "scenario": "global",
                     "region": region, "site_id": site, "model_key": model_key, "nse": base + shift + v}
                )  # fmt: skip
    out = S.per_site_seed_means(pd.DataFrame(rows), ["nse"])
    assert out["nse"].tolist() == [1.0, 2.0, 11.0, 12.0, 21.0, 22.0, 31.0, 32.0, 41.0, 42.0]
    assert out["site_id"].tolist() == ["s2", "s1"] * 5 and out["region"].isna().sum() == 2


def test_seed_spread_columns_missing_keys_and_zero_differences() -> None:
    t = pd.DataFrame(
        {
            "seed": ["0", "1", "2", "mean", "0", "1", "mean"],
            "region": ["A", "A", "A", "A", None, None, None],
            "median_diff": pd.Series([0.0, 0.1, -0.1, 0.0, 0.2, None, 0.1], dtype=object),
            "share_a_better": [0.5, 0.6, 0.4, 0.5, 0.7, 0.8, 0.75],
            "p_value": [0.9, 0.5, 0.5, 0.6, 0.01, 0.02, 0.01],
        }
    )
    out = S.seed_spread(t, ["region"])
    # a zero aggregate difference agrees with no seed, not even a seed whose difference is zero
    assert out.loc[3, "seeds_agree"] == 0 and out.loc[3, "n_seeds"] == 3
    assert out.loc[3, "seed_sd_median_diff"] == pytest.approx(np.std([0.0, 0.1, -0.1]))
    # the rows of a missing region are a group too; a missing seed difference is left out
    assert out.loc[6, "n_seeds"] == 2 and out.loc[6, "seeds_agree"] == 1
    assert out.loc[6, "seed_sd_median_diff"] == 0.0 and out.loc[6, "seed_max_p"] == 0.02
    for c in ("seed_sd_median_diff", "seed_min_share", "seed_max_share", "seed_max_p"):
        assert out[c].dtype == np.float64, c
        assert out.loc[[0, 1, 2, 4, 5], c].isna().all()


def test_judged_seed_label_names_a_bad_aggregation() -> None:
    with pytest.raises(
        InputError, match=r"^seed_aggregation: must be one of \['seed_mean', 'ensemble'\], got 'x'$"
    ):
        S.judged_seed_label(pd.Series(["0"]), "x")


def test_defaults_are_2000_resamples_seed_0_and_the_papers_method() -> None:
    # 200 sites: enough distinct resampled medians that one more resample moves the upper bound
    rng = np.random.default_rng(8)
    a, b = rng.normal(0.1, 1.0, 200), rng.normal(0.0, 1.0, 200)
    explicit = S.compare(a, b, "corr", True, n_boot=2000, alpha=0.05, seed=0, method="paper")
    assert S.compare(a, b, "corr", True) == explicit
    assert S.compare(a, b, "corr", True, n_boot=2001)["ci_high"] != explicit["ci_high"]  # the settings matter
    assert S.compare(a, b, "corr", True, seed=1)["ci_high"] != explicit["ci_high"]
    ids = [f"s{i:03d}" for i in range(200)]
    df = pd.DataFrame(
        {
            "region": "A",
            "scenario": ["global"] * 200 + ["local"] * 200,
            "site_id": ids * 2,
            "corr": np.r_[a, b],
        }
    )
    row = S.significance_table(df, [("g vs l", "global", "local")], ["corr"], include_all=False).iloc[0]
    assert (row["ci_low"], row["ci_high"], row["method"]) == (
        explicit["ci_low"],
        explicit["ci_high"],
        "paper",
    )


def test_duplicates_are_judged_on_region_scenario_and_site_only() -> None:
    df = _site_metrics()
    twin = df.iloc[1:2].assign(rmse=0.5)  # same site and scenario, another value
    with pytest.raises(
        InputError, match=r"duplicate row for \(region, scenario, site_id\) = \['A', 'local', 'A00'\]"
    ):
        S.significance_table(pd.concat([df, twin]), [("x", "global", "local")], ["rmse"])


def test_site_ids_pair_as_text_and_sort_as_text() -> None:
    """Ids read as numbers on one side and text on the other still pair; sites and regions are
    ordered by their text (so "10" before "2"), which fixes the bootstrap's resampling."""
    rng = np.random.default_rng(6)
    ids = list(range(1, 13))
    g, loc = rng.normal(0.6, 0.1, 12), rng.normal(0.5, 0.1, 12)
    df = pd.DataFrame(
        {
            "region": [7] * 12 + [7] * 12,
            "scenario": ["global"] * 12 + ["local"] * 12,
            "site_id": ids + [str(i) for i in ids],
            "corr": np.concatenate([g, loc]),
        }
    )
    tab = S.significance_table(
        df, [("x", "global", "local")], ["corr"], include_all=False, n_boot=200, seed=1
    )
    order = sorted(range(12), key=lambda i: str(ids[i]))
    want = S.compare(g[order], loc[order], "corr", True, n_boot=200, seed=1)
    assert tab.iloc[0]["n"] == 12 and (tab.iloc[0]["ci_low"], tab.iloc[0]["ci_high"]) == (
        want["ci_low"],
        want["ci_high"],
    )
    by_number = S.compare(g, loc, "corr", True, n_boot=200, seed=1)
    assert (by_number["ci_low"], by_number["ci_high"]) != (
        want["ci_low"],
        want["ci_high"],
    )  # the order matters
    # regions read as numbers: "10" before "7", and the pooled row concatenates them in that order
    two = pd.concat([df, df.assign(region=10, corr=df["corr"] * 0.5)])
    tab = S.significance_table(two, [("x", "global", "local")], ["corr"], n_boot=200, seed=1)
    assert list(tab["region"]) == [10, 7, "All"]
    pooled = S.compare(
        np.r_[g[order] * 0.5, g[order]], np.r_[loc[order] * 0.5, loc[order]], "corr", True, n_boot=200, seed=1
    )
    assert (tab.iloc[2]["ci_low"], tab.iloc[2]["ci_high"]) == (pooled["ci_low"], pooled["ci_high"])
    numeric = S.compare(
        np.r_[g[order], g[order] * 0.5], np.r_[loc[order], loc[order] * 0.5], "corr", True, n_boot=200, seed=1
    )
    assert (numeric["ci_low"], numeric["ci_high"]) != (pooled["ci_low"], pooled["ci_high"])


def test_single_values_and_the_holm_cap() -> None:
    np.testing.assert_array_equal(S.holm([0.03]), [0.03])  # one test: nothing to adjust
    np.testing.assert_array_equal(S.holm([0.9, 0.8]), [1.0, 1.0])  # 0.8 x 2 = 1.6 is capped at 1
    assert S.share_better([1.0], [0.0], True) == 1.0 and S.share_better([0.0], [1.0], True) == 0.0
    one = S.compare([0.7], [0.5], "corr", True, n_boot=10)
    assert (one["n"], one["median_a"], one["median_b"], one["median_diff"]) == (
        1,
        0.7,
        0.5,
        pytest.approx(0.2),
    )


def test_compare_passes_its_bootstrap_settings_on() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(0.1, 1.0, 200), rng.normal(0.0, 1.0, 200)
    got = S.compare(a, b, "corr", True, n_boot=300, alpha=0.2, seed=4)
    assert (got["median_diff"], got["ci_low"], got["ci_high"]) == S.median_diff_ci(
        a, b, n_boot=300, alpha=0.2, seed=4
    )
    for other in ({"n_boot": 2000}, {"alpha": 0.05}, {"seed": 0}):
        kw = {"n_boot": 300, "alpha": 0.2, "seed": 4} | other
        assert S.median_diff_ci(a, b, **kw)[1:] != (got["ci_low"], got["ci_high"]), other  # type: ignore[arg-type]
    assert S.median_diff_ci(a, b) == S.median_diff_ci(a, b, n_boot=2000, alpha=0.05, seed=0)
    assert S.median_diff_ci(a, b)[2] != S.median_diff_ci(a, b, n_boot=2001)[2]


def test_a_wilcoxon_that_scipy_refuses_is_undefined(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ValueError("refused")

    monkeypatch.setattr(S.scipy.stats, "wilcoxon", refuse)
    got = S.paired_wilcoxon([1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
    assert got.n == 3 and isinstance(got.n, int) and np.isnan(got.statistic) and np.isnan(got.p_value)
    assert isinstance(got.statistic, float) and isinstance(got.p_value, float)


def test_integer_pairs_become_float64() -> None:
    x, y = S.paired_valid([1, 2], [3, 4])
    assert x.dtype == np.float64 and y.dtype == np.float64
