"""Per-site metrics: hand-computed values, pairwise-valid NaN handling, agreement with hydroeval and
HydroErr on many random sites, and the common mask."""

from __future__ import annotations

import math

import HydroErr as hr
import hydroeval as he
import numpy as np
import pytest

from synergy_dagster.errors import InputError
from synergy_dagster.evaluation import metrics as M

OBS = np.array([1.0, 2.0, 3.0, 4.0])
SIM = np.array([2.0, 2.0, 4.0, 3.0])
# err = sim - obs = [1, 0, 1, -1]; sum err^2 = 3; mean obs = 2.5, mean sim = 2.75
# obs dev = [-1.5, -0.5, 0.5, 1.5] (sum sq 5), sim dev = [-0.75, -0.75, 1.25, 0.25] (sum sq 2.75)
# sum(obs dev * sim dev) = 1.125 + 0.375 + 0.625 + 0.375 = 2.5
HAND = {
    "rmse": math.sqrt(3 / 4),
    # (sim dev - obs dev) = [0.75, -0.25, 0.75, -1.25]; squares sum 2.75 -> mean 0.6875
    "ubrmse": math.sqrt(2.75 / 4),
    "bias": 1 / 4,
    "corr": 2.5 / math.sqrt(5 * 2.75),
    "nse": 1 - 3 / 5,
    "kge": 1
    - math.sqrt(
        (2.5 / math.sqrt(5 * 2.75) - 1) ** 2  # r
        + (math.sqrt(2.75 / 5) - 1) ** 2  # alpha = std sim / std obs
        + (2.75 / 2.5 - 1) ** 2  # beta = mean sim / mean obs
    ),
}


@pytest.mark.parametrize("name", list(HAND))
def test_hand_values(name: str) -> None:
    got = M.METRICS[name].func(OBS, SIM)
    assert got.shape == (1,) and got.dtype == np.float64
    assert got[0] == pytest.approx(HAND[name], rel=1e-12)


def test_known_numbers_written_out() -> None:
    # The same case with the arithmetic done: guards against a formula drifting with HAND.
    assert M.rmse(OBS, SIM)[0] == pytest.approx(0.8660254038)
    assert M.ubrmse(OBS, SIM)[0] == pytest.approx(0.8291561976)
    assert M.nse(OBS, SIM)[0] == pytest.approx(0.4)
    assert M.corr(OBS, SIM)[0] == pytest.approx(0.6741998625)
    assert M.kge(OBS, SIM)[0] == pytest.approx(0.5723249, abs=1e-6)  # 1 - sqrt(0.1061457 + 0.0667603 + 0.01)


def test_all_metrics_matches_single_functions() -> None:
    rng = np.random.default_rng(1)
    obs = rng.gamma(2.0, 1.0, (7, 40))
    sim = obs + rng.normal(0, 0.5, obs.shape)
    obs[rng.random(obs.shape) < 0.2] = np.nan
    got = M.all_metrics(obs, sim)
    assert set(got) == set(M.METRICS)
    for name, spec in M.METRICS.items():
        np.testing.assert_array_equal(got[name], spec.func(obs, sim))
    assert set(M.all_metrics(obs, sim, names=["nse"])) == {"nse"}
    with pytest.raises(InputError, match=r"^metrics: unknown metric\(s\) \['mae'\]"):
        M.all_metrics(obs, sim, names=["mae"])


def test_pairwise_valid_nan_handling() -> None:
    # Site 0: the hand case padded with a day missing in obs and a day missing (inf) in sim.
    # Site 1: only one valid pair -> NaN everywhere (min_valid = 2).
    # Site 2: constant obs -> rmse/bias defined, corr/nse/kge undefined.
    obs = np.array(
        [
            [1.0, np.nan, 2.0, 3.0, 9.0, 4.0],
            [1.0, np.nan, np.nan, 5.0, np.nan, np.nan],
            [2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
        ]
    )
    sim = np.array(
        [
            [2.0, 7.0, 2.0, 4.0, np.inf, 3.0],
            [np.nan, 1.0, 3.0, 6.0, 1.0, np.nan],
            [1.0, 2.0, 3.0, 2.0, 2.0, 2.0],
        ]
    )
    got = M.all_metrics(obs, sim)
    for name, v in HAND.items():
        assert got[name][0] == pytest.approx(v, rel=1e-12), name
        assert np.isnan(got[name][1]), name
    assert got["rmse"][2] == pytest.approx(math.sqrt(2 / 6))
    assert got["bias"][2] == pytest.approx(0.0)
    for name in ("corr", "nse", "kge"):
        assert np.isnan(got[name][2]), name
    # min_valid=1 makes the single pair of site 1 count: error 6 - 5 = 1.
    assert M.rmse(obs, sim, min_valid=1)[1] == pytest.approx(1.0)


def test_constant_sim_and_zero_mean_obs_give_nan() -> None:
    obs = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
    sim = np.array([[2.0, 2.0, 2.0], [-1.0, 0.5, 0.5]])
    assert np.isnan(M.corr(obs, sim)[0]) and np.isnan(M.kge(obs, sim)[0])
    assert M.nse(obs, sim)[0] == pytest.approx(1 - 2 / 2)  # sum err^2 = 2, sum obs dev^2 = 2
    assert np.isnan(M.kge(obs, sim)[1])  # mean obs = 0 -> beta undefined
    assert np.isfinite(M.corr(obs, sim)[1])


def test_shape_errors() -> None:
    with pytest.raises(InputError, match=r"^sim: shape \(2, 4\) does not match obs shape \(2, 3\)$"):
        M.rmse(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(InputError, match=r"^obs: expected an array \[site, time\] or \[time\], got shape"):
        M.rmse(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)))
    with pytest.raises(InputError, match=r"^sim: expected an array \[site, time\] or \[time\], got shape"):
        M.rmse(np.zeros((2, 3)), np.zeros((2, 3, 1)))
    with pytest.raises(InputError, match=r"^min_valid: must be >= 1, got 0$"):
        M.rmse(np.zeros((2, 3)), np.zeros((2, 3)), min_valid=0)


@pytest.fixture(scope="module")
def random_sites() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    n_site, n_time = 60, 300
    obs = rng.gamma(2.0, 1.5, (n_site, n_time)) + rng.uniform(0, 3, (n_site, 1))
    sim = 0.8 * obs + rng.normal(0.3, rng.uniform(0.2, 2.0, (n_site, 1)), (n_site, n_time))
    obs[rng.random(obs.shape) < 0.15] = np.nan  # gaps in the observations only (what hydroeval drops)
    return obs, sim


def test_against_hydroeval(random_sites: tuple[np.ndarray, np.ndarray]) -> None:
    obs, sim = random_sites
    got_nse, got_kge = M.nse(obs, sim), M.kge(obs, sim)
    for i in range(obs.shape[0]):
        ref_nse = he.evaluator(he.nse, sim[i], obs[i])
        ref_kge = he.evaluator(he.kge, sim[i], obs[i])  # rows: kge, r, alpha, beta
        assert got_nse[i] == pytest.approx(float(ref_nse[0]), rel=1e-9, abs=1e-12)
        assert got_kge[i] == pytest.approx(float(ref_kge[0, 0]), rel=1e-9, abs=1e-12)


@pytest.mark.filterwarnings("ignore:Row:UserWarning")  # HydroErr reports the NaN rows it drops
def test_against_hydroerr(random_sites: tuple[np.ndarray, np.ndarray]) -> None:
    obs, sim = random_sites
    sim = sim.copy()
    sim[:, ::17] = np.nan  # gaps in the simulations too: HydroErr drops NaN in either array
    got = M.all_metrics(obs, sim)
    for i in range(obs.shape[0]):
        ok = np.isfinite(obs[i]) & np.isfinite(sim[i])
        s, o = sim[i][ok], obs[i][ok]
        assert got["rmse"][i] == pytest.approx(hr.rmse(s, o), rel=1e-9)
        assert got["corr"][i] == pytest.approx(hr.pearson_r(s, o), rel=1e-9)
        assert got["nse"][i] == pytest.approx(hr.nse(s, o), rel=1e-9)
        assert got["kge"][i] == pytest.approx(hr.kge_2009(s, o), rel=1e-9)
        # HydroErr's NaN removal gives the same answer as our pairwise mask.
        assert got["rmse"][i] == pytest.approx(hr.rmse(sim[i], obs[i]), rel=1e-9)


def test_ubrmse_identity(random_sites: tuple[np.ndarray, np.ndarray]) -> None:
    obs, sim = random_sites
    # ubRMSE^2 = RMSE^2 - bias^2 (population moments)
    np.testing.assert_allclose(
        M.ubrmse(obs, sim) ** 2, M.rmse(obs, sim) ** 2 - M.bias(obs, sim) ** 2, rtol=1e-9
    )


def test_directions() -> None:
    assert not M.METRICS["rmse"].higher_is_better and not M.METRICS["ubrmse"].higher_is_better
    assert M.METRICS["bias"].absolute and not M.METRICS["bias"].higher_is_better
    assert all(M.METRICS[k].higher_is_better for k in ("corr", "nse", "kge"))
    np.testing.assert_array_equal(M.METRICS["bias"].better_values(np.array([-2.0, 1.0])), [2.0, 1.0])


def test_common_mask() -> None:
    obs = np.array([[1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    s1 = np.array([[1.0, 2.0, np.nan, 4.0], [1.0, 2.0, 3.0, 4.0]])
    s2 = np.array([[1.0, 2.0, 3.0, np.inf], [np.nan, 2.0, 3.0, 4.0]])
    mask = M.common_mask(obs, [s1, s2])
    np.testing.assert_array_equal(mask, [[True, False, False, False], [False, True, True, True]])
    # Masked, both scenarios are scored on the same days: site 0 has one day left -> NaN for both.
    r1 = M.rmse(M.apply_mask(obs, mask), M.apply_mask(s1, mask))
    r2 = M.rmse(M.apply_mask(obs, mask), M.apply_mask(s2, mask))
    assert np.isnan(r1[0]) and np.isnan(r2[0])
    assert r1[1] == 0.0 and r2[1] == 0.0
    with pytest.raises(InputError, match=r"^sims\[1\]: shape \(2, 3\) does not match obs shape \(2, 4\)$"):
        M.common_mask(obs, [s1, s2[:, :3]])
    with pytest.raises(InputError, match=r"^obs: expected an array"):
        M.common_mask(obs[:, :, None], [s1])
    with pytest.raises(InputError, match=r"^sims\[0\]: expected an array"):
        M.common_mask(obs, [s1[:, :, None]])
    with pytest.raises(InputError, match=r"^mask: shape \(2, 3\) does not match array shape \(2, 4\)$"):
        M.apply_mask(obs, mask[:, :3])
    with pytest.raises(InputError, match=r"^x: expected an array"):
        M.apply_mask(obs[:, :, None], mask)
    masked = M.apply_mask(obs, mask)  # a float array, NaN where masked out
    assert masked.dtype == np.float64 and np.isnan(masked[0, 1:]).all() and masked[1, 3] == 4.0


def test_min_valid_boundary_ranking_and_clipping() -> None:
    """Rules mutation testing found unguarded: two valid pairs suffice by default and
    ``min_valid`` reaches every metric; ranking takes |value| only for bias; the correlation is
    clipped to 1 where rounding would push it above; KGE is defined for any nonzero obs mean."""
    obs = np.array([[1.0, 3.0, np.nan]])
    sim = np.array([[2.0, 5.0, 4.0]])
    every = M.all_metrics(obs, sim)
    stricter = M.all_metrics(obs, sim, min_valid=3)
    for name, spec in M.METRICS.items():
        assert np.isfinite(spec.func(obs, sim)[0]) and np.isfinite(every[name][0]), name
        assert np.isnan(spec.func(obs, sim, min_valid=3)[0]) and np.isnan(stricter[name][0]), name
    np.testing.assert_array_equal(M.METRICS["nse"].better_values(np.array([-2.0, 1.0])), [-2.0, 1.0])
    x = np.random.default_rng(0).gamma(2.0, 1.0, (1, 7))
    assert M.corr(x, 3.1 * x + 0.7)[0] == 1.0  # unclipped: 1.0000000000000002
    assert M.kge(np.array([[0.5, 1.5]]), np.array([[0.6, 1.4]]))[0] == pytest.approx(0.8)


def test_float32_input_is_scored_in_float64_and_the_lower_clip() -> None:
    """Model output is float32: the moments must still be taken in float64 (a float32 pass gives
    other digits); the correlation is clipped at -1 as at 1 (issue 26: mutation testing)."""
    rng = np.random.default_rng(2)
    obs = rng.gamma(2.0, 1.0, (3, 50)).astype(np.float32)
    sim = (obs * 0.9 + rng.normal(0.0, 0.3, obs.shape)).astype(np.float32)
    wide = M.all_metrics(obs.astype(np.float64), sim.astype(np.float64))
    for name, values in M.all_metrics(obs, sim).items():
        assert values.dtype == np.float64
        np.testing.assert_array_equal(values, wide[name], err_msg=name)
    x = np.random.default_rng(0).gamma(2.0, 1.0, (1, 7))
    assert M.corr(x, -1.3 * x + 0.7)[0] == -1.0  # unclipped: -1.0000000000000002


def test_pair_stats_counts_and_its_default_minimum() -> None:
    p = M.pair_stats(
        np.array([[1.0, 3.0, np.nan], [1.0, np.nan, np.nan]]), np.array([[2.0, 5.0, 4.0], [1.0, 2.0, 3.0]])
    )
    assert p.n.tolist() == [2, 1] and p.ok.tolist() == [True, False]  # two valid pairs suffice
    assert M.pair_stats(np.array([[1.0, 2.0]]), np.array([[1.0, 2.0]]), min_valid=3).ok.tolist() == [False]
