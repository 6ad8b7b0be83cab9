"""Minibatch sampling, the epoch-length rule, normalisation and the dense training arrays."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.models.normalization import Normalizer, default_method, log_candidates, prepare_arrays
from synergy_dagster.models.sampling import (
    effective_batch,
    full_inputs,
    gather_windows,
    iterations_per_epoch,
    sample_indices,
)
from synergy_dagster.sources.sitedata import make_site_dataset

TRAIN = slice(pd.Timestamp("2001-01-01"), pd.Timestamp("2001-04-10"))  # 100 days
TEST = slice(pd.Timestamp("2001-04-11"), pd.Timestamp("2001-07-19"))  # 100 days


def _dataset(domain: str = "streamflow", n_site: int = 6, n_time: int = 200, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    time = pd.date_range("2001-01-01", periods=n_time, freq="D")
    q = rng.gamma(2.0, 1.5, size=(n_site, n_time))
    prcp = rng.gamma(0.5, 4.0, size=(n_site, n_time))
    temp = rng.normal(10.0, 5.0, size=(n_site, n_time))
    area = rng.uniform(10.0, 1000.0, size=n_site)
    return make_site_dataset(
        domain=domain, source="synthetic", site_ids=[f"s{i}" for i in range(n_site)], time=time,
        lat=np.linspace(30, 45, n_site), lon=np.linspace(-120, -80, n_site),
        target=("runoff", q, "mm/d"), dynamic={"prcp": (prcp, "mm/d"), "temp": (temp, "degC")},
        static={"area": (area, "km2")},
    )  # fmt: skip


# --- epoch length -----------------------------------------------------------------------------------
def test_iterations_per_epoch_hand_computed() -> None:
    # frac = 100*30 / (1000*365) = 0.0082192; log(0.01)/log(1-frac) = 557.99 -> 558
    assert iterations_per_epoch(100, 30, 1000, 365) == 558
    # batch 500 > 10 sites is capped at 10: frac = 300/3650; 53.69 -> 54
    assert iterations_per_epoch(500, 30, 10, 365) == 54
    assert iterations_per_epoch(500, 30, 10, 365) == iterations_per_epoch(10, 30, 10, 365)
    # independent form of the same rule: smallest k with (1-frac)^k <= 0.01
    frac = 100 * 365 / (482 * 10000)
    k = iterations_per_epoch(100, 365, 482, 10000)
    assert (1 - frac) ** k <= 0.01 < (1 - frac) ** (k - 1)


def test_iterations_per_epoch_degenerate_and_invalid() -> None:
    assert iterations_per_epoch(10, 100, 5, 100) == 1  # batch*rho == n_sites*n_days
    assert iterations_per_epoch(50, 100, 5, 100) == 1  # capped batch still covers everything
    assert iterations_per_epoch(4, 90, 5, 100) > 1
    with pytest.raises(ConfigError):
        iterations_per_epoch(0, 30, 10, 100)
    assert effective_batch(500, 7) == 7


# --- index sampling ---------------------------------------------------------------------------------
def test_sample_indices_ranges_and_uniformity() -> None:
    rng = np.random.default_rng(1)
    n_sites, n_days, rho = 7, 40, 30
    sites, starts = [], []
    for _ in range(400):
        s, t = sample_indices(rng, n_sites, n_days, 50, rho)
        assert s.shape == t.shape == (7,)  # batch capped at n_sites
        sites.append(s)
        starts.append(t)
    s, t = np.concatenate(sites), np.concatenate(starts)
    assert s.min() == 0 and s.max() == n_sites - 1
    assert t.min() == 0 and t.max() == n_days - rho  # both ends of [0, n_days - rho] reachable
    # uniform-ish: 2800 draws over 11 starts (~255 each) and 7 sites (400 each)
    assert np.bincount(t, minlength=11).min() > 180
    assert np.bincount(s, minlength=7).min() > 320
    # with replacement: a batch of 7 from 7 sites repeats a site most of the time
    assert np.mean([len(np.unique(x)) < 7 for x in sites]) > 0.9
    with pytest.raises(ConfigError):
        sample_indices(rng, 3, 20, 2, 21)


def test_sample_indices_reproducible() -> None:
    a = sample_indices(np.random.default_rng(5), 100, 365, 20, 30)
    b = sample_indices(np.random.default_rng(5), 100, 365, 20, 30)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


# --- window gathering -------------------------------------------------------------------------------
def _naive_windows(x, c, y, s_idx, t_idx, rho):  # reference loop: tests only
    xs, ys = [], []
    for s, t in zip(s_idx, t_idx, strict=True):
        stat = np.repeat(c[s][None, :], rho, axis=0)
        xs.append(np.concatenate([x[s, t : t + rho], stat], axis=1))
        ys.append(y[s, t : t + rho])
    return np.stack(xs), np.stack(ys)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_gather_windows_matches_reference(kind: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 50, 3)).astype(np.float32)
    c = rng.normal(size=(5, 2)).astype(np.float32)
    y = rng.normal(size=(5, 50, 1)).astype(np.float32)
    y[0, 10:20] = np.nan
    s_idx, t_idx = sample_indices(rng, 5, 50, 4, 12)
    s_idx = np.append(s_idx, [0, 4])
    t_idx = np.append(t_idx, [0, 50 - 12])  # first and last valid windows
    ref_x, ref_y = _naive_windows(x, c, y, s_idx, t_idx, 12)
    if kind == "torch":
        xb, yb = gather_windows(*(torch.from_numpy(a) for a in (x, c, y)), s_idx, t_idx, 12)
        xb, yb = xb.numpy(), yb.numpy()
    else:
        xb, yb = gather_windows(x, c, y, s_idx, t_idx, 12)
    assert xb.shape == (6, 12, 5) and yb.shape == (6, 12, 1)
    np.testing.assert_array_equal(xb, ref_x)
    np.testing.assert_array_equal(yb, ref_y)  # NaN positions equal too
    # statics repeated along time
    assert np.all(xb[:, :, 3:] == xb[:, :1, 3:])
    full = full_inputs(x, c)
    assert full.shape == (5, 50, 5)
    np.testing.assert_array_equal(full[2, 7], np.concatenate([x[2, 7], c[2]]))


# --- normalisation ----------------------------------------------------------------------------------
def test_normalizer_uses_training_period_only() -> None:
    ds = _dataset()
    norm = Normalizer.fit(ds, TRAIN, method="zscore")
    train = ds.sel(time=TRAIN)
    for name in ("runoff", "prcp", "temp"):
        vals = train[name].values.ravel()
        assert norm.center[name] == pytest.approx(vals.mean(), rel=1e-6)
        assert norm.scale[name] == pytest.approx(vals.std(), rel=1e-6)
    # extreme values in the test period must not move the statistics
    ds2 = ds.copy(deep=True)
    for name in ("runoff", "prcp", "temp"):
        ds2[name].loc[dict(time=TEST)] = 1e6
    norm2 = Normalizer.fit(ds2, TRAIN, method="zscore")
    assert norm2.center == norm.center and norm2.scale == norm.scale
    # ... while fitting on the full record would see them
    assert Normalizer.fit(ds2, None).center["runoff"] > 1e5


def test_normalizer_p10p90_nan_aware_and_sites() -> None:
    ds = _dataset()
    ds["temp"][0, :50] = np.nan
    norm = Normalizer.fit(ds, TRAIN, method="p10p90", sites=["s1", "s3", "s0"])
    sub = ds.sel(time=TRAIN, site=["s1", "s3", "s0"])
    v = sub["temp"].values.ravel()
    v = v[np.isfinite(v)]
    p10, p90 = np.percentile(v, [10, 90])
    assert norm.center["temp"] == pytest.approx(p10) and norm.scale["temp"] == pytest.approx(p90 - p10)
    a = sub["area"].values
    assert norm.center["area"] == pytest.approx(np.percentile(a, 10), rel=1e-6)
    assert norm.n_sites == 3
    with pytest.raises(ConfigError):
        Normalizer.fit(ds, TRAIN, method="minmax")
    with pytest.raises(ConfigError):
        Normalizer.fit(ds, TRAIN, log_vars=["nope"])


def test_log_transform_round_trip_and_json() -> None:
    ds = _dataset()
    assert default_method("streamflow") == "p10p90" and default_method("soil_moisture") == "zscore"
    logs = log_candidates(ds)
    assert set(logs) == {"runoff", "prcp", "area"}
    norm = Normalizer.fit(ds, TRAIN, method="p10p90", log_vars=logs)
    q = ds["runoff"].values
    z = norm.transform("runoff", q)
    expect = (np.log1p(q.astype(np.float64)) - norm.center["runoff"]) / norm.scale["runoff"]
    np.testing.assert_allclose(z, expect, rtol=1e-5)
    np.testing.assert_allclose(norm.inverse_target(z), q, rtol=1e-4, atol=1e-5)
    # negative precipitation is clipped at 0 before the log (no NaN)
    assert np.isfinite(norm.transform("prcp", np.array([-0.5]))).all()
    # JSON round trip gives the same transforms
    back = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert back == norm
    np.testing.assert_array_equal(
        back.transform("temp", ds["temp"].values), norm.transform("temp", ds["temp"].values)
    )
    bad = norm.to_dict()
    del bad["scale"]["temp"]
    with pytest.raises(InputError, match="temp"):
        Normalizer.from_dict(bad)
    with pytest.raises(InputError, match="method"):
        Normalizer.from_dict({**norm.to_dict(), "method": "x"})


def test_prepare_arrays_masking() -> None:
    ds = _dataset(domain="soil_moisture")
    ds["prcp"][1, 5] = np.nan
    ds["area"][2] = np.nan
    ds["runoff"][0, 3:8] = np.nan
    norm = Normalizer.fit(ds, TRAIN, method="zscore")
    arr = prepare_arrays(ds, norm, TRAIN, sites=["s0", "s1", "s2"])
    assert arr.x.dtype == arr.c.dtype == arr.y.dtype == np.float32
    assert arr.x.shape == (3, 100, 2) and arr.c.shape == (3, 1) and arr.y.shape == (3, 100, 1)
    assert arr.n_in == 3 and list(arr.site_ids) == ["s0", "s1", "s2"]
    assert np.isfinite(arr.x).all() and np.isfinite(arr.c).all()
    assert arr.x[1, 5, 0] == 0.0 and arr.c[2, 0] == 0.0  # missing inputs -> 0 after normalising
    assert np.isnan(arr.y[0, 3:8, 0]).all() and np.isfinite(arr.y[0, 8:, 0]).all()
    assert arr.n_valid_targets == 300 - 5
    np.testing.assert_allclose(arr.x[0, :, 1], norm.transform("temp", ds["temp"].values[0, :100]), rtol=1e-6)
    # normalised training target has ~zero mean / unit spread over the fitted sites
    full = prepare_arrays(ds, norm, TRAIN)
    assert abs(np.nanmean(full.y)) < 1e-5 and abs(np.nanstd(full.y) - 1) < 1e-4
    with pytest.raises(InputError, match="zz"):
        prepare_arrays(ds, norm, TRAIN, sites=["zz"])
    with pytest.raises(InputError, match="temp"):
        prepare_arrays(ds.drop_vars("temp"), norm, TRAIN)
    with pytest.raises(InputError):
        prepare_arrays(ds, norm, slice(pd.Timestamp("1990-01-01"), pd.Timestamp("1990-02-01")))


# --- normalisation: degenerate cases, provenance, exact messages (issue 26: mutation testing) ------


def test_normalizer_fit_refuses_bad_settings_by_name() -> None:
    ds = _dataset()
    with pytest.raises(
        ConfigError,
        match=r"^normalization.method: unknown method 'minmax'; expected one of \('zscore', 'p10p90'\)$",
    ):
        Normalizer.fit(ds, TRAIN, method="minmax")
    with pytest.raises(
        ConfigError, match=r"^normalization.log_vars: not variables of the dataset: \['nope'\]$"
    ):
        Normalizer.fit(ds, TRAIN, log_vars=["runoff", "nope"])
    empty = ds.copy(deep=True)
    empty["runoff"].loc[dict(time=TRAIN)] = np.nan
    with pytest.raises(
        InputError,
        match=r"^synthetic \[runoff\]: target has no valid value in the training period \['2001-01-01', '2001-04-10'\]$",
    ):
        Normalizer.fit(empty, TRAIN)


def test_normalizer_fit_degenerate_inputs() -> None:
    ds = _dataset()
    ds["temp"].loc[dict(time=TRAIN)] = np.inf  # no finite value in the training period
    ds["area"][:] = 7.0  # constant
    ds["prcp"][:] = 0.0
    ds["prcp"][0, :3] = [1.0, 2.0, 3.0]  # p10 = p90 = 0, a spread nonetheless
    with pytest.warns(
        UserWarning,
        match=r"^normalizer: input 'temp' has no valid value in the training data; it will be all zeros$",
    ):
        z = Normalizer.fit(ds, TRAIN, method="zscore")
    assert (z.center["temp"], z.scale["temp"]) == (0.0, 1.0)
    assert (z.center["area"], z.scale["area"]) == (7.0, 1.0)  # constant: scale 1, not 0
    with pytest.warns(UserWarning):
        p = Normalizer.fit(ds, TRAIN, method="p10p90")
    assert (p.center["temp"], p.scale["temp"]) == (0.0, 1.0)
    assert (p.center["area"], p.scale["area"]) == (7.0, 1.0)
    cells = ds["prcp"].sel(time=TRAIN).values.ravel().astype(np.float64)
    assert p.center["prcp"] == 0.0 and p.scale["prcp"] == pytest.approx(cells.std(), rel=1e-12)
    # a spread below 1e-12 counts as none
    tiny = _dataset()
    tiny["area"][:] = np.float32(5.0)
    tiny["temp"][:] = 3.0
    tiny["temp"][0, 0] = 3.0 + 1e-6  # float32: a spread of about 2.4e-7 is kept
    t = Normalizer.fit(tiny, TRAIN, method="zscore")
    assert t.scale["area"] == 1.0 and 0.0 < t.scale["temp"] < 1e-6


def test_normalizer_records_its_provenance() -> None:
    ds = _dataset(domain="soil_moisture")
    n = Normalizer.fit(ds, TRAIN, method="p10p90", log_vars=["prcp"], sites=["s4", "s1"])
    assert (n.method, n.target, n.dynamic, n.static, n.log_vars) == (
        "p10p90",
        "runoff",
        ("prcp", "temp"),
        ("area",),
        ("prcp",),
    )
    assert (n.period, n.n_sites, n.domain, n.extra) == (["2001-01-01", "2001-04-10"], 2, "soil_moisture", {})
    assert Normalizer.fit(ds, None).period is None
    assert Normalizer.fit(ds, slice(None, pd.Timestamp("2001-04-10"))).period == [None, "2001-04-10"]
    assert Normalizer.fit(ds, slice(pd.Timestamp("2001-02-01"), None)).period == ["2001-02-01", None]
    assert n.to_dict() == {
        "format_version": 1,
        "method": "p10p90",
        "target": "runoff",
        "dynamic": ["prcp", "temp"],
        "static": ["area"],
        "log_vars": ["prcp"],
        "center": n.center,
        "scale": n.scale,
        "period": ["2001-01-01", "2001-04-10"],
        "n_sites": 2,
        "domain": "soil_moisture",
        "extra": {},
    }


def _norm() -> Normalizer:
    return Normalizer(
        "zscore",
        "q",
        ("p",),
        ("a",),
        {"q": 1.0, "p": 2.0, "a": 3.0},
        {"q": 2.0, "p": 4.0, "a": 0.5},
        ("q", "p"),
    )


def test_transform_and_inverse_by_hand() -> None:
    n = _norm()
    # p is logged: (log1p(max(x, 0)) - 2) / 4; a is not: (x - 3) / 0.5
    x = np.array([-1.0, 0.0, np.e - 1.0, np.nan])
    np.testing.assert_allclose(n.transform("p", x), [-0.5, -0.5, -0.25, np.nan], rtol=0, atol=1e-15)
    assert n.transform("a", 4.0) == 2.0 and n.transform("a", np.float64(4.0)).dtype == np.float64
    assert n.transform("a", np.array([4.0], dtype=np.float32)).dtype == np.float32
    # inverse: expm1(z * 2 + 1) for the logged target, z * 0.5 + 3 otherwise
    assert n.inverse_target(0.0) == pytest.approx(np.e - 1.0, rel=1e-15)
    assert n.inverse("a", 2.0) == 4.0
    with pytest.raises(InputError, match=r"^normalizer \[zz\]: no statistics for variable 'zz'$"):
        n.transform("zz", 1.0)
    with pytest.raises(InputError, match=r"^normalizer \[zz\]: no statistics for variable 'zz'$"):
        n.inverse("zz", 1.0)


def test_from_dict_names_each_malformed_field() -> None:
    good = _norm().to_dict()
    with pytest.raises(InputError, match=r"^normalizer: expected a JSON object, got list$"):
        Normalizer.from_dict([good])  # type: ignore[arg-type]
    for key in ("method", "target", "dynamic", "static", "center", "scale"):
        bad = {k: v for k, v in good.items() if k != key}
        with pytest.raises(InputError, match=rf"^m.json \[{key}\]: missing field$"):
            Normalizer.from_dict(bad, source="m.json")
    with pytest.raises(InputError, match=r"^normalizer \[method\]: unknown method 'minmax'$"):
        Normalizer.from_dict({**good, "method": "minmax"})
    for center in (["q"], {"q": "abc"}, {"q": None}):
        with pytest.raises(
            InputError, match=r"^normalizer \[center\]: center/scale must map names to numbers \("
        ):
            Normalizer.from_dict({**good, "center": center})
    with pytest.raises(
        InputError, match=r"^normalizer \[center\]: center/scale must map names to numbers \("
    ):
        Normalizer.from_dict({**good, "scale": {"q": "x"}})
    for field_ in ("center", "scale"):
        missing = {**good, field_: {k: v for k, v in good[field_].items() if k != "a"}}
        with pytest.raises(InputError, match=r"^normalizer \[center\]: no center/scale for variable 'a'$"):
            Normalizer.from_dict(missing)
    for field_, value in (("scale", 0.0), ("scale", np.inf), ("center", np.nan), ("center", -np.inf)):
        broken = {**good, field_: {**good[field_], "p": value}}
        with pytest.raises(
            InputError, match=r"^normalizer \[scale\]: non-finite or zero statistics for 'p'$"
        ):
            Normalizer.from_dict(broken)
    # the optional fields default when absent (an older file)
    core = {k: good[k] for k in ("method", "target", "dynamic", "static", "center", "scale")}
    old = Normalizer.from_dict(core)
    assert (old.log_vars, old.period, old.n_sites, old.domain, old.extra) == ((), None, 0, None, {})
    assert Normalizer.from_dict({**core, "extra": None}).extra == {}
    full = Normalizer.from_dict(
        {**good, "period": ["2001-01-01", None], "n_sites": "4", "domain": "streamflow", "extra": {"k": 1}}
    )
    assert (full.period, full.n_sites, full.domain, full.extra) == (
        ["2001-01-01", None],
        4,
        "streamflow",
        {"k": 1},
    )
    assert Normalizer.from_dict(good) == _norm()


def test_prepare_arrays_selection_messages_and_non_finite_values() -> None:
    ds = _dataset()
    norm = Normalizer.fit(ds, TRAIN)
    with pytest.raises(
        InputError,
        match=r"^synthetic \[site\]: prepare_arrays: sites not in the dataset: \['z0', 'z1', 'z2', 'z3', 'z4'\]$",
    ):
        prepare_arrays(ds, norm, TRAIN, sites=["s0", *[f"z{i}" for i in range(7)]])
    with pytest.raises(InputError, match=r"^synthetic \[site\]: normalizer fit: empty site list$"):
        Normalizer.fit(ds, TRAIN, sites=[])
    with pytest.raises(
        InputError,
        match=r"^synthetic \[time\]: prepare_arrays: no days in period \['1990-01-01', '1990-02-01'\]$",
    ):
        prepare_arrays(ds, norm, slice(pd.Timestamp("1990-01-01"), pd.Timestamp("1990-02-01")))
    with pytest.raises(
        InputError,
        match=r"^synthetic \[temp\]: variable expected by the normalizer is missing from the dataset$",
    ):
        prepare_arrays(ds.drop_vars("temp"), norm, TRAIN)
    anon = ds.copy()
    anon.attrs = {k: v for k, v in ds.attrs.items() if k != "source"}
    with pytest.raises(
        InputError, match=r"^dataset \[site\]: normalizer fit: sites not in the dataset: \['zz'\]$"
    ):
        Normalizer.fit(anon, TRAIN, sites=["zz"])
    with pytest.raises(InputError, match=r"^dataset \[temp\]: variable expected"):
        prepare_arrays(anon.drop_vars("temp"), norm, TRAIN)
    ds["prcp"][0, 0] = np.inf
    ds["temp"][0, 1] = -np.inf
    ds["area"][1] = np.inf
    ds["runoff"][0, 2] = np.inf
    arr = prepare_arrays(ds, norm, TRAIN, sites=["s1", "s0"])
    assert list(arr.site_ids) == ["s1", "s0"] and arr.site_ids.dtype.kind == "U"
    assert arr.x[1, 0, 0] == 0.0 and arr.x[1, 1, 1] == 0.0 and arr.c[0, 0] == 0.0
    assert np.isnan(arr.y[1, 2, 0]) and arr.n_valid_targets == 2 * 100 - 1
    assert (arr.dynamic_names, arr.static_names, arr.target_name) == (("prcp", "temp"), ("area",), "runoff")
    assert (arr.n_sites, arr.n_days) == (2, 100) and arr.time[0] == pd.Timestamp("2001-01-01")
    assert arr.time[-1] == pd.Timestamp("2001-04-10") and isinstance(arr.time, pd.DatetimeIndex)
    np.testing.assert_allclose(arr.c[1, 0], norm.transform("area", ds["area"].values[0]), rtol=1e-6)


def test_periods_start_where_asked_and_an_anonymous_dataset_is_named() -> None:
    ds = _dataset()
    later = slice(pd.Timestamp("2001-02-01"), pd.Timestamp("2001-04-10"))
    norm = Normalizer.fit(ds, later, method="zscore")
    cells = ds["temp"].sel(time=later).values.astype(np.float64)
    assert norm.center["temp"] == pytest.approx(cells.mean(), rel=1e-12)
    arr = prepare_arrays(ds, norm, later)
    assert arr.n_days == 69 and arr.time[0] == pd.Timestamp("2001-02-01")
    # the target's error names "dataset" when the dataset has no source
    anon = ds.copy()
    anon.attrs = {k: v for k, v in ds.attrs.items() if k != "source"}
    anon["runoff"].loc[dict(time=TRAIN)] = np.nan
    with pytest.raises(InputError, match=r"^dataset \[runoff\]: target has no valid value"):
        Normalizer.fit(anon, TRAIN)


def test_minus_infinity_in_a_static_attribute_becomes_zero() -> None:
    ds = _dataset()
    norm = Normalizer.fit(ds, TRAIN)
    ds["area"][0] = -np.inf
    assert prepare_arrays(ds, norm, TRAIN).c[0, 0] == 0.0
