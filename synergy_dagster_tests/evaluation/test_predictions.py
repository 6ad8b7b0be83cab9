"""The predictions file: every evaluated model's test-period series and the observations round-trip
through CF NetCDF (dims, units, time encoding, NaN outside a model's sites) in physical units
(checked against an independent inverse transform); the observed vs simulated figure picks its
sites deterministically and draws the stored series."""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation import figures as F
from synergy_dagster.evaluation.predictions import (
    evaluation_models,
    predictions_dataset,
    write_predictions,
)
from synergy_dagster.evaluation.study import evaluate_domain, predict_models, predict_test
from synergy_dagster.layout import Layout
from synergy_dagster.models.normalization import Normalizer, log_variables
from synergy_dagster_tests.evaluation.test_evaluation_study import (
    TEST,
    TRAIN,
    _ds,
    _states,
    constant_states,
    expected_physical,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _evals() -> pd.DataFrame:
    """global:CONUS judged on regions A (s0-s2) and B (s3-s5); local:A only on A (two seeds)."""
    a, b = ("s0", "s1", "s2"), ("s3", "s4", "s5")
    rows = [
        ("global_vs_local", "A", "global", "global:CONUS", a),
        ("global_vs_local", "A", "local", "local:A", a),
        ("global_vs_local", "B", "global", "global:CONUS", b),
    ]
    return pd.DataFrame(rows, columns=["experiment", "region", "scenario", "model_key", "eval_site_ids"])


def _study(tmp_path: Path):
    ds = _ds(n_sites=6)
    norm = Normalizer.fit(ds, slice("2000-01-01", "2000-12-31"))
    models = {"global:CONUS": _states(2, 8, [0]), "local:A": _states(2, 8, [1, 2])}
    evals = _evals()
    preds = predict_models(ds, evals, lambda k: (models[k], norm), hidden=8, test=TEST, warmup=30)
    tags = pd.DataFrame(
        {"subregion": ["A"] * 3 + ["B"] * 3, "l3": [None] + ["8.1.1"] * 5}, index=ds["site"].values
    )
    cube = predictions_dataset(ds, evals, preds, TEST, 30, tags=tags, budget="converge")
    path = write_predictions(cube, Layout(tmp_path).predictions("streamflow"))
    return ds, norm, models, evals, preds, cube, path


def test_predictions_file_round_trips_with_xarray(tmp_path: Path) -> None:
    ds, norm, models, evals, _, _, path = _study(tmp_path)
    assert path == tmp_path.resolve() / "evaluation" / "predictions" / "streamflow.nc"
    assert not list(path.parent.glob(".*.tmp"))  # written through a temp file, nothing left
    with xr.open_dataset(path) as p:
        assert p["simulated"].dims == ("site", "time", "model")
        assert p["observed"].dims == ("site", "time")
        assert list(p["site"].values) == [f"s{i}" for i in range(6)]  # each site once
        # the scored series per set; with an ensemble also each seed
        assert list(p["model"].values) == ["global:CONUS", "local:A", "local:A/seed1", "local:A/seed2"]
        assert list(p["seed"].values) == ["0", "mean", "1", "2"]
        assert list(p["scenario"].values) == ["global", "local", "local", "local"]
        assert set(p["budget"].values) == {"converge"}
        assert p.attrs["Conventions"] == "CF-1.8" and p.attrs["domain"] == "streamflow"
        for v in ("simulated", "observed"):
            assert p[v].attrs["units"] == "mm/d" and p[v].attrs["long_name"]
        assert p["lat"].attrs["units"] == "degrees_north" and p["lon"].attrs["units"] == "degrees_east"
        assert list(p["subregion"].values) == ["A", "A", "A", "B", "B", "B"]
        assert list(p["l3"].values) == ["", "8.1.1", "8.1.1", "8.1.1", "8.1.1", "8.1.1"]
        np.testing.assert_array_equal(p["lon"].values, ds["lon"].values)
        assert pd.DatetimeIndex(p["time"].values).equals(pd.date_range(TEST.start, TEST.stop, freq="D"))
        # one model's series is exactly what predict_test returned for it
        want = predict_test(ds, models["global:CONUS"], norm, [f"s{i}" for i in range(6)], 8, TEST, 30)[0]
        np.testing.assert_array_equal(p["simulated"].sel(model="global:CONUS").values, want)
        seed2 = predict_test(ds, models["local:A"], norm, ["s0", "s1", "s2"], 8, TEST, 30)
        local = p["simulated"].sel(site=["s0", "s1", "s2"])
        np.testing.assert_array_equal(local.sel(model="local:A/seed2").values, seed2[2])
        np.testing.assert_array_equal(local.sel(model="local:A").values, (seed2[1] + seed2[2]) / 2)
        # NaN where a model did not predict a site (local:A is not judged on region B)
        assert np.isnan(p["simulated"].sel(site=["s3", "s4", "s5"], model="local:A").values).all()
        assert np.isfinite(p["simulated"].sel(model="global:CONUS").values).all()
        # observations: the dataset's target on the test days (NaN gaps kept)
        obs = ds["streamflow"].sel(time=slice(TEST.start, TEST.stop)).values
        np.testing.assert_array_equal(p["observed"].values, obs)
        assert evaluation_models(p)["model"].tolist() == ["global:CONUS", "local:A", "global:CONUS"]
    with netCDF4.Dataset(path) as nc:  # CF time encoding on disk
        assert nc["time"].units == "days since 1970-01-01" and nc.Conventions == "CF-1.8"


def test_scoring_given_predictions_matches_scoring_that_predicts(tmp_path: Path) -> None:
    ds, norm, models, evals, preds, _, _ = _study(tmp_path)

    def refuse(key: str):
        raise AssertionError("no second prediction pass")

    given = evaluate_domain(ds, evals, refuse, 8, TEST, 30, predictions=preds)
    own = evaluate_domain(ds, evals, lambda k: (models[k], norm), 8, TEST, 30)
    pd.testing.assert_frame_equal(given, own)


def _metrics() -> pd.DataFrame:
    rows = []
    for region, scores in (("A", [0.9, 0.5, 0.7, 0.1, 0.6]), ("B", [0.3])):
        for i, s in enumerate(scores):
            for scenario, d in (("global", 0.0), ("local", -0.05)):
                rows.append(("global_vs_local", region, scenario, f"{region}{i}", "mean", s + d))
                rows.append(("global_vs_local", region, scenario, f"{region}{i}", "0", 0.0))
    return pd.DataFrame(rows, columns=["experiment", "region", "scenario", "site_id", "seed", "nse"])


def test_sites_are_picked_deterministically() -> None:
    m = _metrics()
    picks = F.pick_sites(m)
    # A: median score 0.575 -> A4 (0.575); 10th percentile 0.235 -> A3 (0.075); B: one site, one pick
    assert picks[["region", "pick", "site_id"]].values.tolist() == [
        ["A", "median", "A4"],
        ["A", "low", "A3"],
        ["B", "median", "B0"],
    ]
    shuffled = m.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(F.pick_sites(shuffled), picks)


def test_predictions_file_holds_physical_units(tmp_path: Path) -> None:
    """The stored series of a constant network equal the inverse transform of its constant,
    computed independently of the code that writes them (log1p target, p10/p90 scaling)."""
    ds = _ds(n_sites=6)
    norm = Normalizer.fit(ds, TRAIN, method="p10p90", log_vars=log_variables(ds, True, "log1p"))
    evals = _evals()
    models = {"global:CONUS": constant_states(2, 8, [0]), "local:A": constant_states(2, 8, [1, 2])}
    preds = predict_models(ds, evals, lambda k: (models[k], norm), hidden=8, test=TEST, warmup=30)
    cube = predictions_dataset(ds, evals, preds, TEST, 30, budget="converge")
    path = write_predictions(cube, Layout(tmp_path).predictions("streamflow"))
    want = expected_physical(ds, "log1p", "p10p90")
    with xr.open_dataset(path) as p:
        np.testing.assert_allclose(p["simulated"].sel(model="global:CONUS").values, want, rtol=2e-6)
        local = p["simulated"].sel(site=["s0", "s1", "s2"], model=["local:A", "local:A/seed2"]).values
        np.testing.assert_allclose(local, want, rtol=2e-6)


def test_observed_vs_simulated_figure(tmp_path: Path, drawn_figures: list[Figure]) -> None:
    _, _, _, _, _, cube, path = _study(tmp_path)
    picks = pd.DataFrame(
        {
            "experiment": ["global_vs_local"] * 3,
            "region": ["A", "A", "B"],
            "pick": ["median", "low", "median"],
            "site_id": ["s1", "s0", "s4"],
            "score": [0.5, 0.1, 0.3],
        }
    )
    with xr.open_dataset(path) as p:
        pngs = F.observed_vs_simulated(p, picks, title="streamflow")
    assert len(pngs) == 1 and pngs[0].startswith(PNG)
    fig = drawn_figures[0]
    assert fig.get_suptitle() == "streamflow"
    axes = fig.axes
    assert len(axes) == 4 and not axes[3].get_visible()  # B has one pick: its second panel is hidden
    assert [ax.get_title() for ax in axes[:3]] == [
        "A (global_vs_local): s1, median, score 0.50",
        "A (global_vs_local): s0, low, score 0.10",
        "B (global_vs_local): s4, median, score 0.30",
    ]
    assert axes[0].get_ylabel() == "mm/d" and axes[1].get_ylabel() == ""
    # panel s1 of A: the observation, then global and local, each the stored series
    obs, glob, loc = axes[0].lines
    assert [ln.get_label() for ln in axes[0].lines] == ["observed", "global", "local"]
    np.testing.assert_array_equal(obs.get_ydata(), cube["observed"].sel(site="s1").values)
    np.testing.assert_array_equal(glob.get_ydata(), cube["simulated"].sel(site="s1", model="global:CONUS"))
    np.testing.assert_array_equal(loc.get_ydata(), cube["simulated"].sel(site="s1", model="local:A"))
    assert obs.get_color() == "black" and glob.get_color() != loc.get_color()
    # region B is judged by the global model only
    assert [ln.get_label() for ln in axes[2].lines] == ["observed", "global"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["observed", "global", "local"]
    x0, x1 = axes[0].get_xlim()
    assert x0 <= mdates.date2num(TEST.start) and x1 >= mdates.date2num(TEST.stop)
    parts = F.observed_vs_simulated(cube, picks, title="streamflow", max_rows=1)
    assert len(parts) == 2  # one region per part
    assert [f.get_suptitle() for f in drawn_figures[1:]] == ["streamflow (1/2)", "streamflow (2/2)"]
    assert F.observed_vs_simulated(cube, picks.iloc[:0], title="none") == []
    with pytest.raises(InputError, match="global_vs_local/A: a site or model is not in the predictions"):
        F.observed_vs_simulated(cube, picks.assign(site_id="nowhere"), title="x")
    with pytest.raises(InputError, match="max_rows: must be at least 1, got 0"):
        F.observed_vs_simulated(cube, picks, title="x", max_rows=0)
