"""The evaluation run: warm-up is cut before scoring, scenarios share one mask, ensembles give
per-seed, seed-mean and spread rows, and each model predicts once."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch

from synergy_dagster.config import Period
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.evaluation.metrics import all_metrics
from synergy_dagster.evaluation.statistics import median_diff_ci
from synergy_dagster.evaluation.study import evaluate_domain, predict_evaluations, predict_test
from synergy_dagster.layout import Layout
from synergy_dagster.models.lstm import SynergyLSTM
from synergy_dagster.models.normalization import Normalizer, log_variables, target_transform_of
from synergy_dagster.models.predict import warmup_window as window_of
from synergy_dagster.sources.sitedata import make_site_dataset, target_name
from synergy_dagster.sources.usgs_spec import UsgsSpec
from synergy_dagster_tests.runconfig import SMALL_STUDY, study_cli, tiny_study_with

TEST = slice(pd.Timestamp("2001-03-01"), pd.Timestamp("2001-04-30"))
# Variables that would steer a study run in a test away from its study file.
STUDY_ENV = ("DAGSTER_HOME", "SYNERGY_STUDY", "SYNERGY_DATA_DIR", "SYNERGY_PROFILE", "SYNERGY_BUDGET")


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


def test_predictions_cover_exactly_the_test_days() -> None:
    ds = _ds()
    norm = Normalizer.fit(ds, slice("2000-01-01", "2000-12-31"))
    preds = predict_test(ds, _states(2, 8, [0]), norm, ["s1", "s2"], 8, TEST, warmup=30)
    assert preds[0].shape == (2, 61) and np.isfinite(preds[0]).all()


# A network whose output layer has zero weights and bias 0.75 (exact in float32) predicts 0.75 in
# normalised units on every day, whatever its inputs: its physical-unit prediction is known in closed form.
CONSTANT = 0.75
TRAIN = slice("2000-01-01", "2000-12-31")


def constant_states(n_in: int, hidden: int, seeds: list[int], value: float = CONSTANT) -> dict:
    """Per seed, a :class:`SynergyLSTM` state whose output is ``value`` at every step."""
    out = {}
    for s in seeds:
        torch.manual_seed(s)
        state = SynergyLSTM(n_in, hidden).state_dict()
        state["linear_out.weight"] = torch.zeros_like(state["linear_out.weight"])
        state["linear_out.bias"] = torch.full_like(state["linear_out.bias"], value)
        out[s] = state
    return out


def _sm_ds(n_sites: int = 4, seed: int = 1):
    """A soil-moisture dataset (m3/m3, zscore in the paper), same calendar as :func:`_ds`."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2000-01-01", "2001-04-30", freq="D")
    sm = 0.25 + 0.05 * np.sin(np.arange(len(time)) / 30.0) + rng.normal(0, 0.02, (n_sites, len(time)))
    sm[1, ::3] = np.nan  # SMAP revisits: gaps in the target
    return make_site_dataset(
        domain="soil_moisture",
        source="test",
        site_ids=[f"p{i}" for i in range(n_sites)],
        time=time,
        lat=np.full(n_sites, 35.0),
        lon=np.linspace(-100, -95, n_sites),
        target=("SMAP_AM", sm, "m3/m3"),
        dynamic={"APCP": (rng.gamma(0.6, 4.0, (n_sites, len(time))), "mm/d")},
        static={"Clay": (rng.uniform(0.1, 0.4, n_sites), "1")},
    )


def expected_physical(ds, transform: str, method: str) -> float:
    """The inverse of :data:`CONSTANT` computed here from the raw training targets with numpy
    alone (not with :class:`Normalizer`): ``f^-1(CONSTANT * scale + center)``."""
    raw = ds[target_name(ds)].sel(time=TRAIN).values.astype(np.float64).ravel()
    raw = raw[np.isfinite(raw)]
    f = np.log1p(np.clip(raw, 0.0, None)) if transform == "log1p" else raw
    if method == "p10p90":
        center, scale = np.percentile(f, 10), np.percentile(f, 90) - np.percentile(f, 10)
    else:
        center, scale = f.mean(), f.std()
    value = CONSTANT * scale + center
    return float(np.expm1(value) if transform == "log1p" else value)


def test_inverse_computes_in_float64_and_keeps_the_dtype() -> None:
    """``Normalizer.inverse``: float64 in, float64 out; float32 in, float32 out, computed in
    float64 and rounded once (float32 arithmetic would be off by an ulp on some values)."""
    ds = _ds()
    norm = Normalizer.fit(ds, TRAIN, method="p10p90", log_vars=log_variables(ds, True, "log1p"))
    center, scale = norm.center["streamflow"], norm.scale["streamflow"]
    z = np.linspace(-3.0, 3.0, 10_001)
    got = norm.inverse_target(z)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.expm1(z * scale + center))
    z32 = z.astype(np.float32)
    got32 = norm.inverse_target(z32)
    assert got32.dtype == np.float32
    np.testing.assert_array_equal(got32, np.expm1(z32.astype(np.float64) * scale + center).astype(np.float32))
    assert norm.inverse_target(0.5) == np.expm1(0.5 * scale + center)  # a scalar too


def test_log_variables_choose_what_is_logged() -> None:
    """Which variables get log(x + 1), so which transform the inverse undoes: the paper's
    candidates by name only with ``log_inputs``, the target only under ``log1p``."""
    rng = np.random.default_rng(0)
    n, time = 3, pd.date_range("2000-01-01", periods=30)
    ds = make_site_dataset(
        domain="streamflow", source="test", site_ids=["a", "b", "c"], time=time,
        lat=np.zeros(n), lon=np.zeros(n), target=("streamflow", rng.gamma(1.0, 1.0, (n, 30)), "mm/d"),
        dynamic={name: (rng.gamma(1.0, 1.0, (n, 30)), "mm/d") for name in ("pr", "pr_sum", "spring", "tmax")},
        static={"area": (np.ones(n), "km2"), "elev": (np.ones(n), "m")},
    )  # fmt: skip
    assert log_variables(ds, True, "log1p") == ["streamflow", "pr", "pr_sum", "area"]
    assert log_variables(ds, True, "none") == ["pr", "pr_sum", "area"]
    assert log_variables(ds, False, "log1p") == []
    assert log_variables(ds, True) == ["streamflow", "pr", "pr_sum", "area"]  # log1p is the default
    with pytest.raises(ConfigError, match=r"^recipe\.target_transform: must be one of .*got 'log'$"):
        log_variables(ds, True, "log")


@pytest.mark.parametrize(
    ("domain", "transform", "method"),
    [
        ("streamflow", "log1p", "p10p90"),
        ("streamflow", "none", "p10p90"),
        ("soil_moisture", "none", "zscore"),
    ],
)
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning")  # a constant has no spread
def test_predictions_and_metrics_are_in_physical_units(domain: str, transform: str, method: str) -> None:
    """A constant network's predictions equal the inverse transform of its constant, computed
    independently; the stored metrics (RMSE, bias) are those of that constant against the observations."""
    ds = _ds() if domain == "streamflow" else _sm_ds()
    sites = [str(s) for s in ds["site"].values[:3]]
    norm = Normalizer.fit(ds, TRAIN, method=method, log_vars=log_variables(ds, True, transform))
    assert norm.method == method and target_transform_of(norm) == transform
    want = expected_physical(ds, transform, method)
    # far from the normalised constant, so a missing inverse cannot pass by accident
    assert abs(want - CONSTANT) > 0.1
    states = constant_states(2, 8, [0, 1])
    preds = predict_test(ds, states, norm, sites, 8, TEST, warmup=30)
    for seed in (0, 1):
        np.testing.assert_allclose(preds[seed], np.full((3, 61), want), rtol=2e-6)
    evals = pd.DataFrame(
        [{"experiment": "global_vs_local", "region": "D", "scenario": "global",
          "model_key": "global:CONUS", "eval_site_ids": tuple(sites)}]
    )  # fmt: skip
    rows = evaluate_domain(ds, evals, lambda _: (states, norm), hidden=8, test=TEST, warmup=30)
    mean = rows[rows["seed"] == "mean"].set_index("site_id").loc[sites]
    obs = ds[target_name(ds)].sel(site=sites, time=slice(TEST.start, TEST.stop)).values.astype(np.float64)
    ok = np.isfinite(obs)
    err = np.where(ok, want - obs, np.nan)
    np.testing.assert_allclose(mean["rmse"], np.sqrt(np.nanmean(err**2, axis=1)), rtol=1e-5)
    np.testing.assert_allclose(mean["bias"], np.nanmean(err, axis=1), rtol=1e-5)
    assert mean["n_days"].tolist() == ok.sum(axis=1).tolist()


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


def test_predict_evaluations_is_the_scored_prediction_pass_of_both_assets(tmp_path: Path) -> None:
    """The one set-up of the evaluation, spatial and synergy-curve assets: the sites file under
    the study's ``usgs`` rule, the hidden size the models recorded, each model loaded once and run
    without autograd, scored as :func:`evaluate_domain` scores it."""
    ds, layout = _ds(), Layout(tmp_path)
    layout.sites_nc("streamflow").parent.mkdir(parents=True)
    ds.to_netcdf(layout.sites_nc("streamflow"))
    norm = Normalizer.fit(ds, TRAIN)
    states = {"global:CONUS": _states(2, 8, [0, 1]), "local:D": _states(2, 8, [2])}
    inference: list[bool] = []

    def load(key: str):
        inference.append(torch.is_inference_mode_enabled())
        return states[key], norm

    evals = pd.DataFrame(
        [
            {"experiment": "pub", "region": "D", "scenario": s, "model_key": k, "eval_site_ids": ("s0", "s2")}
            for s, k in (("global", "global:CONUS"), ("local", "local:D"))
        ]
    )
    models = pd.DataFrame({"set_key": list(states), "config_json": ['{"hidden": 8}', '{"hidden": 8}']})
    period = Period(str(TEST.start.date()), str(TEST.stop.date()))
    got = predict_evaluations(layout, "streamflow", UsgsSpec(), period, 30, evals, models, load)
    assert inference == [True, True] and got.n_masked == 0
    assert sorted(got.predictions) == ["global:CONUS", "local:D"]
    want = evaluate_domain(ds, evals, lambda k: (states[k], norm), hidden=8, test=TEST, warmup=30)
    pd.testing.assert_frame_equal(got.metrics, want)
    with pytest.raises(InputError, match="caller expected 4"):  # the recorded hidden size is used
        wrong = models.assign(config_json='{"hidden": 4}')
        predict_evaluations(layout, "streamflow", UsgsSpec(), period, 30, evals, wrong, load)


# the subject: the statistics block, read from a study file (tiny.yaml with the block added)
STATISTICS = {"statistics": {"wilcoxon_method": "exact", "alpha": 0.2, "n_boot": 150}}


@pytest.mark.slow
def test_statistics_settings_reach_the_stored_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The study file's Wilcoxon method, bootstrap size and alpha, through a whole (tiny) study on
    the virtual CONUS: the stored significance rows carry the method's p-values (scipy's exact
    test on the stored per-site metrics, not the default normal approximation) and the CI of
    ``n_boot`` replicates at level 1 - alpha; the report and the summary judge at the study's alpha."""
    from synergy_dagster import cli

    for var in (*STUDY_ENV, "SYNERGY_WILCOXON_METHOD"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    study = tiny_study_with(tmp_path / "stats.yaml", STATISTICS)
    assert cli.main(study_cli(data, *SMALL_STUDY, study_file=study)) == 0
    check_statistics_rows(data)


def check_statistics_rows(data: Path) -> None:
    """The assertions of :func:`test_statistics_settings_reach_the_stored_rows` on a study's folder."""
    from scipy import stats

    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        sig = con.execute("SELECT * FROM significance WHERE seed = 'mean'").df()
        sm = con.execute("SELECT * FROM site_metrics WHERE seed = 'mean'").df()
    assert len(sig) and set(sig["method"]) == {"exact"}
    regional = sig[(sig["metric"] == "rmse") & (sig["region"] != "All")]
    assert len(regional)
    # with few sites many intervals coincide across settings; some must differ, or nothing is shown
    other_n_boot, other_alpha = [], []
    for row in regional.itertuples():
        rows = sm[(sm["experiment"] == row.experiment) & (sm["region"] == row.region)]
        pairs = rows.pivot(index="site_id", columns="scenario", values="rmse")
        x, y = pairs[row.scenario_a].to_numpy(), pairs[row.scenario_b].to_numpy()
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        exact = stats.wilcoxon(x, y, zero_method="wilcox", correction=False, method="exact").pvalue
        approx = stats.wilcoxon(x, y, zero_method="wilcox", correction=False, method="asymptotic").pvalue
        assert row.p_value == pytest.approx(exact, rel=1e-9) and exact != pytest.approx(approx, rel=1e-6)
        # the interval: n_boot replicates at level 1 - alpha, both from the study file
        ci = median_diff_ci(x, y, n_boot=150, alpha=0.2, seed=0)[1:]
        assert (row.ci_low, row.ci_high) == pytest.approx(ci, rel=1e-12)
        other_n_boot.append(ci != pytest.approx(median_diff_ci(x, y, n_boot=2000, alpha=0.2, seed=0)[1:]))
        other_alpha.append(ci != pytest.approx(median_diff_ci(x, y, n_boot=150, alpha=0.05, seed=0)[1:]))
    assert any(other_n_boot) and any(other_alpha)
    report = (data / "evaluation" / "reproduction_report.md").read_text()
    assert re.search(r"\(alpha = 0\.2[;)]", report) and "alpha = 0.05" not in report
    verdicts = pd.read_parquet(data / "evaluation" / "reproduction_verdicts.parquet")
    judged = verdicts["reason"].astype(str).str.extract(r"p = ([0-9.e-]+) ([<>]=?) ([0-9.]+)").dropna()
    assert len(judged) and set(judged[2]) == {"0.2"}
    # and each comparison it states is true of the p it prints (3 significant digits)
    p = judged[0].astype(float)
    assert ((p < 0.2) == (judged[1] == "<"))[(p - 0.2).abs() > 1e-3].all(), judged
    summary = (data / "evaluation" / "summary.md").read_text()
    assert "p_holm<0.2" in summary and "p_holm<0.05" not in summary
