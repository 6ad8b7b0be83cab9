"""Evaluation of spatial holdouts on hand-made metric rows: folds pooled per region, each site once,
the gauge-loss table's medians and signs, the paired tests and the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.spatial import (
    LOSS_COLUMNS,
    gauge_figure,
    gauge_loss,
    pool_folds,
    row_verdicts,
    spatial_significance,
)


def pooled_verdicts(table: pd.DataFrame, alpha: float, margin: float) -> pd.DataFrame:
    """The pooled (All) rows of :func:`row_verdicts`."""
    judged = row_verdicts(table, alpha, margin)
    return judged[judged["region"] == "All"]


SITES = [f"s{i:02d}" for i in range(12)]


def _rows(experiment: str, scenario: str, region_of: dict[str, str], nse: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "domain": "streamflow",
            "experiment": experiment,
            "scenario": scenario,
            "region": [region_of[s] for s in SITES],
            "seed": "mean",
            "site_id": SITES,
            "nse": nse,
            "rmse": 1.0 - nse,
        }
    )


REGION = {s: "A" if i < 6 else "B" for i, s in enumerate(SITES)}
GROUP = {s: f"f{i % 3 + 1}-{REGION[s]}" for i, s in enumerate(SITES)}
BASE = np.linspace(0.5, 0.8, 12)


def _temporal() -> pd.DataFrame:
    return pd.concat(
        [
            _rows("global_vs_local", "global", REGION, BASE),
            _rows("global_vs_local", "local", REGION, BASE - 0.05),
        ]
    )


def _spatial() -> pd.DataFrame:
    return pd.concat(
        [
            _rows("pub", "global", GROUP, BASE - 0.1),
            _rows("pub", "local", GROUP, BASE - 0.3),
            _rows("pur", "global", REGION, BASE - 0.2),
            _rows("pur", "partner", REGION, BASE - 0.5),
        ]
    )


def test_pool_folds_reports_regions_and_folds() -> None:
    pooled = pool_folds(_spatial())
    pub = pooled[pooled["experiment"] == "pub"]
    assert set(pub["region"]) == {"A", "B"}
    assert pub.groupby("scenario")["site_id"].apply(lambda s: s.is_unique and len(s) == 12).all()
    assert pub.set_index(["scenario", "site_id"]).loc[("local", "s04"), "fold"] == 2
    assert pooled.loc[pooled["experiment"] == "pur", "fold"].isna().all()
    twice = pd.concat([_spatial(), _rows("pub", "global", {s: "f2-A" for s in SITES}, BASE)])
    with pytest.raises(InputError, match="sites scored twice"):
        pool_folds(twice)


def test_gauge_loss_medians_and_signs() -> None:
    loss = gauge_loss(_temporal(), pool_folds(_spatial()), "nse").set_index(["model", "setting"])
    assert loss.loc[("unified", "temporal"), "median_loss"] == pytest.approx(0.0)
    assert loss.loc[("unified", "pub"), "median_loss"] == pytest.approx(0.1)
    assert loss.loc[("regional", "pub"), "median_loss"] == pytest.approx(0.25)  # local was 0.05 lower
    assert loss.loc[("regional", "pur"), "median_loss"] == pytest.approx(0.45)
    assert loss.loc[("unified", "pur"), "share_worse"] == 1.0
    assert loss.loc[("unified", "pub"), "median"] == pytest.approx(np.median(BASE - 0.1))
    assert (loss["n_sites"] == 12).all()
    rmse = gauge_loss(_temporal(), pool_folds(_spatial()), "rmse").set_index(["model", "setting"])
    assert rmse.loc[("unified", "pub"), "median_loss"] == pytest.approx(-0.1)
    assert rmse.loc[("unified", "pub"), "share_worse"] == 1.0


def test_significance_and_figure() -> None:
    table = spatial_significance(pool_folds(_spatial()), ["nse"], n_boot=200)
    pooled = table[table["region"] == "All"].set_index("experiment")
    assert pooled.loc["pub", "comparison"] == "global vs local"
    assert pooled.loc["pur", "comparison"] == "global vs partner"
    assert pooled.loc["pub", "median_diff"] == pytest.approx(0.2)
    assert pooled.loc["pur", "p_value"] < 0.01
    png = gauge_figure(gauge_loss(_temporal(), pool_folds(_spatial()), "nse"), "streamflow")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_pooled_verdicts_difference_equivalent_or_inconclusive() -> None:
    table = spatial_significance(pool_folds(_spatial()), ["nse", "rmse"], n_boot=200)
    judged = pooled_verdicts(table, alpha=0.05, margin=0.02).set_index(["experiment", "metric"])
    assert (
        judged.loc[("pub", "nse"), "winner"] == "global" and judged.loc[("pub", "rmse"), "winner"] == "global"
    )
    assert judged.loc[("pur", "rmse"), "winner"] == "global"
    assert (judged["verdict"] == "difference").all()
    # no significant difference: a tie only where the interval lies within the margin
    noise = np.where(np.arange(12) % 2, 0.01, -0.01) * (1 + np.arange(12) % 3)
    even = pd.concat([_rows("pub", "global", GROUP, BASE), _rows("pub", "local", GROUP, BASE + noise)])
    table = spatial_significance(pool_folds(even), ["nse"], n_boot=200)
    row = table[table["region"] == "All"].iloc[0]
    assert row["p_holm"] >= 0.05 and max(abs(row["ci_low"]), abs(row["ci_high"])) < 0.05 * abs(
        row["median_b"]
    )
    wide = pooled_verdicts(table, alpha=0.05, margin=0.05)
    assert wide[["verdict", "winner"]].values.tolist() == [["equivalent", "tie"]]
    # the same run judged with a margin smaller than its interval: underpowered, not a tie
    narrow = pooled_verdicts(table, alpha=0.05, margin=1e-4)
    assert narrow[["verdict", "winner"]].values.tolist() == [["inconclusive", "none"]]
    # a significant difference stays a difference at any margin
    assert (pooled_verdicts(judged.reset_index(), alpha=0.05, margin=10.0)["verdict"] == "difference").all()


def test_gauge_loss_judges_bias_by_its_size() -> None:
    temporal = _temporal().assign(bias=-0.1)
    spatial = _spatial().assign(bias=0.05)  # smaller in size: not worse without the gauge
    loss = gauge_loss(temporal, pool_folds(spatial), "bias").set_index(["model", "setting"])
    assert loss.loc[("unified", "pub"), "share_worse"] == 0.0
    with pytest.raises(InputError, match="unknown metric"):
        gauge_loss(temporal.assign(foo=1.0), pool_folds(spatial.assign(foo=1.0)), "foo")


def test_pur_pools_are_compared_with_the_unified_model_and_with_each_other() -> None:
    pools = pd.concat(
        [
            _spatial(),
            _rows("pur", "far", REGION, BASE - 0.4),
            _rows("pur", "dissimilar", REGION, BASE - 0.3),
        ]
    )
    table = spatial_significance(pool_folds(pools), ["nse"], n_boot=200)
    pur = pooled_verdicts(table[table["experiment"] == "pur"], alpha=0.05, margin=0.02)
    assert list(pur["comparison"]) == [
        "global vs partner",
        "global vs far",
        "global vs dissimilar",
        "far vs dissimilar",
    ]
    # a pool absent from the rows (close) is not compared; dissimilar beats far at every site
    assert pur.set_index("comparison").loc["far vs dissimilar", "winner"] == "dissimilar"
    assert set(table.loc[table["experiment"] == "pub", "comparison"]) == {"global vs local"}


def test_gauge_loss_table_exactly_ties_and_the_rows_it_reads() -> None:
    """The whole table on hand rows: every column named and filled; a site as good without its
    gauge as with it is not worse (for either direction of metric); the temporal rows are the
    ``global_vs_local`` rows of the seed label compared, each site once per model kind, a site kept
    when a metric other than the one judged is missing."""
    spatial = _spatial()
    same = (
        (spatial["experiment"] == "pub") & (spatial["scenario"] == "global") & (spatial["site_id"] == "s00")
    )
    spatial.loc[same, ["nse", "rmse"]] = [BASE[0], 1.0 - BASE[0]]
    noise = pd.concat(
        [
            _rows("global_vs_local", "global", REGION, BASE - 0.4).assign(seed="0"),  # another seed
            _rows("similarity", "global", REGION, BASE - 0.4),  # another experiment
        ]
    )
    temporal = pd.concat([noise, _temporal(), _rows("global_vs_local", "global", REGION, BASE - 0.4)])
    temporal.loc[temporal.index == 0, "region"] = "All"  # the repeated site rows differ elsewhere
    temporal = temporal.reset_index(drop=True)
    temporal.loc[(temporal["site_id"] == "s03") & (temporal["seed"] == "mean"), "rmse"] = np.nan
    for metric in ("nse", "rmse"):
        loss = gauge_loss(temporal, pool_folds(spatial), metric)
        assert list(loss.columns) == list(LOSS_COLUMNS)
        assert (loss["domain"] == "streamflow").all() and (loss["metric"] == metric).all()
        by = loss.set_index(["model", "setting"])
        n_kept = 11 if metric == "rmse" else 12  # s03 has no temporal RMSE
        assert by.loc[("unified", "temporal"), "n_sites"] == n_kept
        assert by.loc[("unified", "pub"), "share_worse"] == pytest.approx((n_kept - 1) / n_kept)
        expected = np.median(BASE) if metric == "nse" else np.median(1.0 - np.delete(BASE, 3))
        assert by.loc[("unified", "pub"), "median_temporal"] == pytest.approx(expected)
    empty = gauge_loss(temporal[temporal["experiment"] == "similarity"], pool_folds(spatial), "nse")
    assert empty.empty and list(empty.columns) == list(LOSS_COLUMNS)


def test_gauge_loss_and_pool_folds_name_what_is_wrong() -> None:
    with pytest.raises(InputError) as temporal:
        gauge_loss(_temporal().drop(columns=["site_id"]), pool_folds(_spatial()), "nse")
    assert str(temporal.value) == "temporal site metrics: missing columns ['site_id']"
    with pytest.raises(InputError) as spatial:
        gauge_loss(_temporal(), pool_folds(_spatial()).drop(columns=["seed", "nse"]), "nse")
    assert str(spatial.value) == "spatial site metrics: missing columns ['seed', 'nse']"
    with pytest.raises(InputError) as unknown:
        gauge_loss(_temporal().assign(foo=1.0), pool_folds(_spatial()).assign(foo=1.0), "foo")
    assert str(unknown.value).startswith("gauge loss: unknown metric 'foo'; expected one of ['bias', ")
    twice = pd.concat([_spatial(), _rows("pub", "global", {s: "f2-A" for s in SITES}, BASE)])
    with pytest.raises(InputError) as scored:
        pool_folds(twice)
    assert str(scored.value) == "spatial metrics: sites scored twice: ['s00', 's01', 's02', 's03', 's04']"
    assert str(pool_folds(_spatial())["fold"].dtype) == "Int64"
    pur_only = pool_folds(_spatial().query("experiment == 'pur'"))
    assert str(pur_only["fold"].dtype) == "Int64" and pur_only["fold"].isna().all()


def test_significance_rows_per_seed_label_with_the_settings_given() -> None:
    """Tests on every seed label but the spread, with the method, bootstrap size and alpha given
    (the same rows as the statistics module's own table), ``domain`` and ``experiment`` first, a
    fresh index; metric rows without a fold column, and none at all, are accepted."""
    from synergy_dagster.evaluation.statistics import significance_table

    rows = _spatial()  # no fold column: not pooled
    local = (rows["experiment"] == "pub") & (rows["scenario"] == "local")
    rows.loc[local, "nse"] += np.random.default_rng(3).normal(0.0, 0.1, 12)  # an interval with a width
    spread = rows.assign(seed="std", nse=0.01, rmse=0.01)
    table = spatial_significance(pd.concat([rows, spread]), ["nse"], method="exact", n_boot=150, alpha=0.2)
    assert set(table["seed"]) == {"mean"} and list(table.columns[:2]) == ["domain", "experiment"]
    assert (table["domain"] == "streamflow").all()
    assert table.index.equals(pd.RangeIndex(len(table)))
    pub = rows[rows["experiment"] == "pub"]
    own = significance_table(
        pub, [("global vs local", "global", "local")], ["nse"], method="exact", n_boot=150, alpha=0.2
    )
    got = (
        table[table["experiment"] == "pub"]
        .drop(columns=["domain", "experiment", "seed"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(got, own.reset_index(drop=True), check_dtype=False)
    assert spatial_significance(rows.iloc[0:0], ["nse"]).empty
