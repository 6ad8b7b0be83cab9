"""The evaluation run: warm-up is cut before scoring, scenarios share one mask, ensembles give
per-seed, seed-mean and spread rows, and each model predicts once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from synergy_dagster.evaluation.metrics import all_metrics
from synergy_dagster.evaluation.study import evaluate_domain, predict_test
from synergy_dagster.models.lstm import SynergyLSTM
from synergy_dagster.models.normalization import Normalizer
from synergy_dagster.models.predict import warmup_window as window_of
from synergy_dagster.sources.sitedata import make_site_dataset

TEST = slice(pd.Timestamp("2001-03-01"), pd.Timestamp("2001-04-30"))


def _ds(n_sites: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    time = pd.date_range("2000-01-01", "2001-04-30", freq="D")
    p = rng.gamma(0.6, 4.0, (n_sites, len(time)))
    q = 0.3 * p + rng.normal(0, 0.2, p.shape).clip(-0.1) + 0.5
    q[0, -20:] = np.nan  # a gap in one site's test period
    return make_site_dataset(
        domain="streamflow",
        source="test",
        site_ids=[f"s{i}" for i in range(n_sites)],
        time=time,
        lat=np.full(n_sites, 40.0),
        lon=np.linspace(-100, -90, n_sites),
        target=("streamflow", q, "mm/d"),
        dynamic={"prcp": (p, "mm/d")},
        static={"area": (rng.uniform(10, 100, n_sites), "km2")},
    )


def _states(n_in: int, hidden: int, seeds: list[int]) -> dict[int, dict[str, torch.Tensor]]:
    out = {}
    for s in seeds:
        torch.manual_seed(s)
        out[s] = SynergyLSTM(n_in, hidden).state_dict()
    return out


def test_window_starts_warmup_days_before_the_test_period() -> None:
    ds = _ds()
    window, days = window_of(ds, TEST, warmup=30)
    assert window.start == pd.Timestamp("2001-01-30") and len(days) == 61
    window, _ = window_of(ds, slice(pd.Timestamp("2000-01-10"), TEST.stop), warmup=30)
    assert window.start == pd.Timestamp("2000-01-01")  # clipped at the record start


def test_predictions_cover_exactly_the_test_days_in_physical_units() -> None:
    ds = _ds()
    norm = Normalizer.fit(ds, slice("2000-01-01", "2000-12-31"))
    preds = predict_test(ds, _states(2, 8, [0]), norm, ["s1", "s2"], 8, TEST, warmup=30)
    assert preds[0].shape == (2, 61) and np.isfinite(preds[0]).all()


def test_ensembles_share_a_mask_and_give_seed_mean_and_spread_rows() -> None:
    ds = _ds()
    norm = Normalizer.fit(ds, slice("2000-01-01", "2000-12-31"))
    models = {"global:CONUS": _states(2, 8, [0, 1]), "local:D": _states(2, 8, [2, 3])}
    calls: list[str] = []

    def load(key: str):
        calls.append(key)
        return models[key], norm

    sites = ("s0", "s1", "s2")
    evals = pd.DataFrame(
        [
            {
                "experiment": "global_vs_local",
                "region": "D",
                "scenario": "global",
                "model_key": "global:CONUS",
                "eval_site_ids": sites,
            },
            {
                "experiment": "global_vs_local",
                "region": "D",
                "scenario": "local",
                "model_key": "local:D",
                "eval_site_ids": sites,
            },
        ]
    )
    out = evaluate_domain(ds, evals, load, hidden=8, test=TEST, warmup=30)
    assert sorted(calls) == ["global:CONUS", "local:D"]  # each model predicted once
    assert set(out["seed"]) == {"0", "1", "2", "3", "mean", "std"}
    g = out[(out["scenario"] == "global")]
    assert set(g["seed"]) == {"0", "1", "mean", "std"}
    # The same mask for every scenario: site s0 lost its last 20 test days in both.
    n_days = out[out["seed"] == "mean"].set_index(["scenario", "site_id"])["n_days"]
    assert n_days[("global", "s0")] == n_days[("local", "s0")] == 41
    assert n_days[("global", "s1")] == 61
    # The seed-mean row is the metric of the mean prediction, not the mean of metrics.
    preds = predict_test(ds, models["global:CONUS"], norm, list(sites), 8, TEST, warmup=30)
    obs = ds["streamflow"].sel(site=list(sites), time=slice(TEST.start, TEST.stop)).values
    want = all_metrics(obs, (preds[0] + preds[1]) / 2)["rmse"]
    got = g[g["seed"] == "mean"].set_index("site_id").loc[list(sites), "rmse"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    spread = g[g["seed"] == "std"].set_index("site_id")["rmse"]
    per_seed = g[g["seed"].isin(["0", "1"])].pivot(index="site_id", columns="seed", values="rmse")
    np.testing.assert_allclose(spread.loc[per_seed.index], per_seed.std(axis=1, ddof=0), rtol=1e-6)
