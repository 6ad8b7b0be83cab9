"""Evaluation of spatial holdouts on hand-made metric rows: folds pooled per region, each site once,
the gauge-loss table's medians and signs, the paired tests and the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation.spatial import (
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
