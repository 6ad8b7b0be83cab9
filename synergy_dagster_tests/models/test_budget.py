"""Training budgets (issue 8): the five modes, validation checks and learning curves, early stopping
with the best weights kept, exact resume, the last-day loss, and the sign-change table."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch

from synergy_dagster.config import Budget, DomainTraining, Period
from synergy_dagster.errors import ConfigError
from synergy_dagster.evaluation.budget import sensitivity_matrix, sign_changes, winner
from synergy_dagster.models.normalization import Arrays
from synergy_dagster.models.predict import predict
from synergy_dagster.models.sampling import iterations_per_epoch
from synergy_dagster.models.training import (
    TrainSpec,
    Validation,
    budget_updates,
    passes_to_updates,
    train_model,
    validation_scores,
)
from synergy_dagster.store import MetadataStore
from synergy_dagster.study_file import preset_profile
from synergy_dagster_tests.conftest import make_arrays
from synergy_dagster_tests.models.test_training import _same

KW = {"hidden": 12, "epochs": 3, "rho": 20, "batch": 8, "dropconnect": 0.0, "seed": 1}  # a TrainSpec


def _split(n_site: int = 10) -> tuple[Arrays, Validation]:
    """Training arrays = first 120 days, validation = the next 60 (same generating process)."""
    full = make_arrays(n_site, 180)
    cut = lambda a, s: dataclasses.replace(  # noqa: E731
        a, x=a.x[:, s], y=a.y[:, s], time=a.time[s]
    )
    return cut(full, slice(0, 120)), Validation(cut(full, slice(110, 180)), skip=10)


def test_paper_mode_keeps_the_epoch_rule_and_records_a_curve() -> None:
    train, val = _split()
    res = train_model(train, TrainSpec(max_iters_per_epoch=6, **KW), validation=val)
    assert res.budget.mode == "paper" and res.stop_reason == "budget"
    assert res.n_iterations == 3 * 6 and len(res.losses) == 3 and res.block == 6
    assert [p.update for p in res.curve] == [6, 12, 18]
    assert all(math.isfinite(p.val_nse) and math.isfinite(p.val_rmse) for p in res.curve)
    seconds = [p.seconds for p in res.curve]
    assert seconds == sorted(seconds) and res.curve[-1].val_seconds > 0
    # the recorded point is the score of the returned (last) weights
    model_nse, model_rmse = validation_scores(_model(res.state_dict, train), val, torch.device("cpu"))
    assert model_nse == pytest.approx(res.curve[-1].val_nse) and model_rmse == pytest.approx(
        res.curve[-1].val_rmse
    )


def _model(state: dict[str, torch.Tensor], arrays: Arrays) -> torch.nn.Module:
    from synergy_dagster.models.predict import model_from_state

    return model_from_state(state, arrays.n_in)


def test_equal_updates_and_equal_passes_set_the_update_count() -> None:
    train, val = _split()
    eq = train_model(
        train, TrainSpec(budget=Budget("equal_updates", updates=25, eval_every=10), **KW), validation=val
    )
    assert eq.n_iterations == 25 and [p.update for p in eq.curve] == [10, 20, 25]
    # one pass = n_sites * n_days / (batch * rho) updates: 10 * 120 / (8 * 20) = 7.5 -> 2 passes = 15
    assert passes_to_updates(2.0, 8, 20, 10, 120) == 15
    assert passes_to_updates(1.0, 50, 20, 10, 120) == 6  # the batch is capped at the 10 sites
    ps = train_model(
        train, TrainSpec(budget=Budget("equal_passes", passes=2.0, eval_every=4), **KW), validation=val
    )
    assert ps.n_iterations == 15 and ps.curve[-1].update == 15
    # the budget decides the count whatever the data size: a 4-site set gets the same 25 updates
    small, sval = _split(n_site=4)
    eq4 = train_model(
        small, TrainSpec(budget=Budget("equal_updates", updates=25, eval_every=10), **KW), validation=sval
    )
    assert eq4.n_iterations == 25
    # while the paper rule gives the bigger set more updates per epoch
    assert iterations_per_epoch(8, 20, 10, 120) > iterations_per_epoch(8, 20, 4, 120)
    total, block = budget_updates(
        Budget("paper"), epochs=3, iters_per_epoch=7, batch=8, rho=20, n_sites=10, n_days=120
    )
    assert (total, block) == (21, 7)
    assert budget_updates(
        Budget("wall_clock", seconds=1.0),
        epochs=3,
        iters_per_epoch=7,
        batch=8,
        rho=20,
        n_sites=10,
        n_days=120,
    ) == (None, 7)


def test_converge_stops_on_patience_and_keeps_the_best_weights() -> None:
    train, val = _split()
    budget = Budget("converge", max_updates=400, min_updates=10, patience=2, eval_every=5)
    res = train_model(train, TrainSpec(budget=budget, **{**KW, "hidden": 8}), validation=val)
    nses = [p.val_nse for p in res.curve]
    best_i = int(np.nanargmax(nses))
    assert res.best_update == res.curve[best_i].update
    if res.stop_reason == "converged":
        assert len(res.curve) - 1 - best_i == 2  # stopped after `patience` checks without improvement
    else:
        assert res.stop_reason == "budget" and res.n_iterations == 400
    # the returned weights are the best check's, not the last ones
    got, _ = validation_scores(_model(res.state_dict, train), val, torch.device("cpu"))
    assert got == pytest.approx(max(nses), abs=1e-5)


def test_converge_stops_early_when_validation_cannot_improve() -> None:
    """Validation targets that are pure noise: the best check comes early and training stops long
    before the cap (the stopping rule itself, independent of how fast the net learns)."""
    train, val = _split()
    rng = np.random.default_rng(5)
    noise = dataclasses.replace(val.arrays, y=rng.normal(size=val.arrays.y.shape).astype(np.float32))
    budget = Budget("converge", max_updates=2000, min_updates=5, patience=3, eval_every=5)
    res = train_model(train, TrainSpec(budget=budget, **KW), validation=Validation(noise, skip=10))
    assert res.stop_reason == "converged" and res.n_iterations < 2000
    assert res.curve[-1].update - res.best_update == 3 * 5


def test_converge_needs_validation_and_min_updates_is_respected() -> None:
    train, val = _split()
    with pytest.raises(ConfigError, match="needs validation"):
        train_model(train, TrainSpec(budget=Budget("converge", max_updates=50), **KW))
    rng = np.random.default_rng(5)
    noise = Validation(
        dataclasses.replace(val.arrays, y=rng.normal(size=val.arrays.y.shape).astype(np.float32))
    )
    spec = TrainSpec(
        budget=Budget("converge", max_updates=200, min_updates=60, patience=1, eval_every=5), **KW
    )
    res = train_model(train, spec, validation=noise)
    assert res.n_iterations >= 60


def test_wall_clock_stops_on_time() -> None:
    train, val = _split()
    res = train_model(
        train, TrainSpec(budget=Budget("wall_clock", seconds=0.3, eval_every=3), **KW), validation=val
    )
    assert res.stop_reason == "wall_clock" and res.n_iterations > 0
    last = res.curve[-1]
    assert last.seconds + last.val_seconds >= 0.3
    capped = train_model(
        train, TrainSpec(budget=Budget("wall_clock", seconds=60, max_updates=7, eval_every=3), **KW)
    )
    assert capped.stop_reason == "budget" and capped.n_iterations == 7


def test_on_check_can_stop_and_curve_without_validation_is_nan() -> None:
    train, _ = _split()
    res = train_model(
        train,
        TrainSpec(budget=Budget("equal_updates", updates=100, eval_every=5), **KW),
        on_check=lambda p: p.update >= 15,
    )
    assert res.stop_reason == "callback" and res.n_iterations == 15
    assert all(math.isnan(p.val_nse) for p in res.curve) and all(
        math.isfinite(p.train_loss) for p in res.curve
    )


def test_converge_resume_is_exact(tmp_path: Path) -> None:
    train, val = _split()
    budget = Budget("converge", max_updates=60, min_updates=5, patience=50, eval_every=5)
    fresh = train_model(train, TrainSpec(budget=budget, **KW), validation=val)
    ckpt = tmp_path / "m.ckpt"
    # a run stopped after 4 checks (as if killed), then resumed from its checkpoint
    part = train_model(
        train,
        TrainSpec(budget=budget, **KW),
        validation=val,
        checkpoint_path=ckpt,
        on_check=lambda p: p.update >= 20,
    )
    assert part.stop_reason == "callback"
    # a stopped-by-callback checkpoint is a normal checkpoint: resuming continues to the cap
    resumed = train_model(train, TrainSpec(budget=budget, **KW), validation=val, checkpoint_path=ckpt)
    assert resumed.resumed_from_update == 20
    assert _same(resumed.state_dict, fresh.state_dict) and resumed.losses == fresh.losses
    assert [p.val_nse for p in resumed.curve] == [p.val_nse for p in fresh.curve]
    assert resumed.best_update == fresh.best_update
    # a different budget does not resume the checkpoint of another
    with pytest.warns(UserWarning, match="another configuration"):
        other = train_model(
            train, TrainSpec(budget=budget.replace(eval_every=10), **KW), validation=val, checkpoint_path=ckpt
        )
    assert other.resumed_from_update == 0


def test_last_day_loss_trains_on_the_window_end_only() -> None:
    train, val = _split()
    b = Budget("equal_updates", updates=12, eval_every=6)
    all_days = train_model(train, TrainSpec(budget=b, **KW), validation=val)
    last = train_model(train, TrainSpec(budget=b, loss_last_n=1, **KW), validation=val)
    assert not _same(all_days.state_dict, last.state_dict)
    assert last.n_iterations == 12
    with pytest.raises(ConfigError, match="loss_last_n"):
        train_model(train, TrainSpec(budget=b, loss_last_n=21, **KW))


def test_validation_scores_in_physical_units() -> None:
    train, val = _split()
    res = train_model(train, TrainSpec(budget=Budget("equal_updates", updates=5), **KW))
    model = _model(res.state_dict, train)
    pred = predict(model, val.arrays)[:, val.skip :]
    obs = val.arrays.y[:, val.skip :, 0]
    sse = np.nansum((pred - obs) ** 2, axis=1)
    sst = np.nansum((obs - np.nanmean(obs, axis=1, keepdims=True)) ** 2, axis=1)
    nse, _ = validation_scores(model, val, torch.device("cpu"))
    assert nse == pytest.approx(float(np.median(1 - sse / sst)), abs=1e-5)
    with pytest.raises(ConfigError, match="warm-up"):
        Validation(val.arrays, skip=val.arrays.n_days)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "fastest"}, "budget.mode"),
        ({"mode": "equal_updates"}, "budget.updates"),
        ({"mode": "equal_passes"}, "budget.passes"),
        ({"mode": "wall_clock"}, "budget.seconds"),
        ({"mode": "converge"}, "budget.max_updates"),
        ({"mode": "paper", "patience": 0}, "budget.patience"),
        ({"mode": "paper", "metric": "kge"}, "budget.metric"),
        ({"mode": "paper", "eval_every": -1}, "budget.eval_every"),
        ({"mode": "converge", "max_updates": 10, "min_updates": 20}, "budget.min_updates"),
    ],
)
def test_bad_budgets_are_named(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        Budget(**kwargs)
    assert err.value.source == field


def test_profiles_budgets_and_validation_periods() -> None:
    for name in ("cpu", "demo"):
        p = preset_profile(name)
        assert p.budget.mode == "converge" and all(d.validation_days > 0 for d in p.domains.values())
    paper = preset_profile("paper")
    assert paper.budget.mode == "paper"
    with pytest.raises(ConfigError, match="holds out no days"):
        paper.check_budget(paper.budget.replace(mode="converge"))
    paper.check_budget(paper.budget.replace(mode="equal_updates"))  # the profile carries its parameters
    fit, val = Period("2001-10-01", "2007-09-30").carve_validation(365)
    assert (fit.end, val.start, val.end) == ("2006-09-30", "2006-10-01", "2007-09-30")
    with pytest.raises(ConfigError, match="less than half"):
        Period("2015-04-01", "2015-06-30").carve_validation(61)
    with pytest.raises(ConfigError, match="validation_days"):
        DomainTraining(30, 10, 0, validation_days=-1)


def _sig(budget: str, region: str, diff: float, metric: str = "nse", p: float = 0.01) -> dict:
    return {"budget": budget, "domain": "streamflow", "comparison": "global vs local", "region": region,
            "metric": metric, "n": 12, "median_a": 0.6, "median_b": 0.6 - diff, "median_diff": diff,
            "p_value": p, "share_a_better": 0.5 + diff, "seed": "mean"}  # fmt: skip


def test_sign_changes_per_region() -> None:
    rows = [
        _sig("paper", "A", 0.1), _sig("equal_updates", "A", -0.05),  # flips
        _sig("paper", "B", 0.1), _sig("equal_updates", "B", 0.02),  # global both times
        _sig("paper", "C", 0.0), _sig("equal_updates", "C", -0.1),  # a tie is not a flip
        _sig("paper", "A", 0.1, "rmse"), _sig("equal_updates", "A", 0.2, "rmse"),  # rmse: lower is better
    ]  # fmt: skip
    t = sign_changes(pd.DataFrame(rows))
    get = lambda r, m, b: t[(t.region == r) & (t.metric == m) & (t.budget == b)].iloc[0]  # noqa: E731
    assert get("A", "nse", "paper").winner == "global" and get("A", "nse", "equal_updates").winner == "local"
    assert get("A", "nse", "paper").sign_changed and not get("B", "nse", "paper").sign_changed
    assert get("C", "nse", "paper").winner == "tie" and not get("C", "nse", "paper").sign_changed
    assert get("A", "rmse", "paper").winner == "local" and not get("A", "rmse", "paper").sign_changed
    grid = sensitivity_matrix(t, "nse")
    assert set(grid.columns) >= {"paper", "equal_updates", "sign_changed"}
    assert grid.set_index("region").loc["A", "paper"] == "global*"
    assert winner(float("nan"), True) == "tie"
    assert sign_changes(pd.DataFrame(rows).iloc[:0]).empty


def test_store_migrates_an_old_models_table(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE models (domain VARCHAR, set_key VARCHAR, seed INTEGER, n_sites INTEGER, "
                "PRIMARY KEY (domain, set_key, seed))")  # fmt: skip
    con.execute("INSERT INTO models VALUES ('streamflow', 'global:CONUS', 0, 300)")
    con.close()
    store = MetadataStore(path)
    old = store.query("SELECT set_key, n_sites, budget, stop_reason FROM models")
    assert old.to_dict("records") == [
        {"set_key": "global:CONUS", "n_sites": 300, "budget": "paper", "stop_reason": None}
    ]
    # the new key lets the same set hold a model per budget
    row = pd.DataFrame([{"domain": "streamflow", "set_key": "global:CONUS", "seed": 0, "budget": "converge"}])
    store.replace_many(
        [("models", row, {"domain": "streamflow", "set_key": "global:CONUS", "budget": "converge"})]
    )
    assert sorted(store.query("SELECT budget FROM models")["budget"]) == ["converge", "paper"]


def test_replace_many_is_all_or_nothing(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "s.duckdb")
    good = pd.DataFrame([{"domain": "d", "set_key": "k", "seed": 0, "budget": "paper", "update": 5}])
    store.replace_many([("learning_curves", good, {"domain": "d"})])
    bad_model = pd.DataFrame(
        [{"domain": "d", "set_key": "k", "seed": 0, "budget": "paper"}] * 2
    )  # duplicate key
    with pytest.raises(duckdb.ConstraintException, match='duplicate key "d, k, 0, paper"'):
        store.replace_many(
            [("learning_curves", good.iloc[:0], {"domain": "d"}), ("models", bad_model, {"domain": "d"})]
        )
    assert store.count("learning_curves") == 1  # the first write was rolled back with the second


def test_improvement_threshold_and_auto_metric() -> None:
    from synergy_dagster.models.training import improved

    assert improved("nse", 0.50, None) and not improved("nse", float("nan"), 0.1)
    assert improved("nse", 0.52, 0.50, min_delta=0.01) and not improved("nse", 0.505, 0.50, min_delta=0.01)
    # for RMSE the threshold is a fraction of the best value (units differ between domains)
    assert improved("rmse", 0.0440, 0.0450, min_delta=0.01) and not improved(
        "rmse", 0.0448, 0.0450, min_delta=0.01
    )
    b = Budget("converge", max_updates=10)
    assert b.for_domain("soil_moisture").metric == "rmse" and b.for_domain("streamflow").metric == "nse"
    assert b.replace(metric="nse").for_domain("soil_moisture").metric == "nse"
    with pytest.raises(ConfigError, match="min_delta"):
        Budget(min_delta=1.5)


# --- the stopping rule, its pieces one by one (issue 26: mutation testing) ---------------------------


def test_improved_needs_a_finite_value_and_a_gain_beyond_min_delta() -> None:
    from synergy_dagster.models.training import improved

    # the first finite value is a gain; a non-finite one never is, not even the first
    assert improved("nse", -5.0, None) is True
    assert improved("nse", math.inf, None) is False and improved("rmse", math.nan, None) is False
    assert improved("nse", math.inf, 0.1) is False and improved("rmse", -math.inf, 0.1) is False
    # the default min_delta is 0: any strict gain counts, a tie does not
    assert improved("nse", 0.5000001, 0.5) is True and improved("nse", 0.5, 0.5) is False
    assert improved("rmse", 0.4999999, 0.5) is True and improved("rmse", 0.5, 0.5) is False
    # exactly at the threshold (0.5 + 0.25; 0.5 x (1 - 0.25), both exact in binary) is no gain
    assert improved("nse", 0.75, 0.5, min_delta=0.25) is False
    assert improved("nse", 0.7500001, 0.5, min_delta=0.25) is True
    assert improved("rmse", 0.375, 0.5, min_delta=0.25) is False
    assert improved("rmse", 0.3749999, 0.5, min_delta=0.25) is True
    # rmse: lower is better, nse higher
    assert improved("rmse", 0.6, 0.5) is False and improved("nse", 0.4, 0.5) is False


def test_judge_check_counts_checks_without_a_gain() -> None:
    from synergy_dagster.models.training import judge_check

    one = Budget("converge", max_updates=100, min_delta=0.25)
    # a gain resets the count and becomes the best; no gain keeps the best and counts one more
    assert judge_check([0.1], one, "nse", None, 4) == (0.1, 0)
    assert judge_check([0.1, 0.2], one, "nse", 0.1, 2) == (0.1, 3)
    assert judge_check([0.1, 0.6], one, "nse", 0.1, 2) == (0.6, 0)
    assert judge_check([0.6, 0.1], one, "rmse", 0.6, 0) == (0.1, 0)  # rmse: lower wins
    # smooth 1 judges the last value alone, not a mean of the values so far
    assert judge_check([0.9, 0.0, 0.3], one, "nse", 0.0, 0) == (0.3, 0)


def test_judge_check_smooths_over_the_last_finite_values() -> None:
    from synergy_dagster.models.training import judge_check

    three = Budget("converge", max_updates=100, smooth=3)
    # fewer values than the window: not judged at all, the counters pass through
    assert judge_check([0.1, 0.2], three, "nse", 0.05, 2) == (0.05, 2)
    assert judge_check([0.1, 0.2], three, "nse", None, 0) == (None, 0)
    # a full window: the mean of the last three (not of all values, not the last one)
    best, bad = judge_check([5.0, 0.1, 0.2, 0.6], three, "nse", None, 7)
    assert best == pytest.approx(0.3, abs=1e-15) and bad == 0
    # non-finite values are left out of the mean (0.2, 0.4: 0.3)
    best, bad = judge_check([0.2, math.nan, 0.4], three, "nse", 0.25, 1)
    assert best == pytest.approx(0.3, abs=1e-15) and bad == 0
    # a window with no finite value is no gain
    assert judge_check([0.9, math.nan, math.nan, math.nan], three, "nse", 0.25, 1) == (0.25, 2)


def test_stops_after_patience_checks_and_min_updates() -> None:
    from synergy_dagster.models.training import stops

    b = Budget("converge", max_updates=1000, min_updates=300, patience=4)
    assert stops(b, 4, 300) is True  # both bounds are inclusive
    assert stops(b, 3, 10**6) is False and stops(b, 10**6, 299) is False


def test_replay_converge_returns_the_index_of_the_stopping_check() -> None:
    from synergy_dagster.models.training import replay_converge

    b = Budget("converge", max_updates=1000, min_updates=300, patience=2)
    # best at check 1; checks 2 and 3 do not beat it: patience is reached at check 3 (update 400)
    assert replay_converge([0.1, 0.5, 0.4, 0.3, 0.2], [100, 200, 300, 400, 500], b, "nse") == 3
    # the same curve, but min_updates not reached before the last check: no stop
    assert replay_converge([0.1, 0.5, 0.4, 0.3, 0.2], [10, 20, 30, 40, 50], b, "nse") is None
    # rmse falling all along never stops
    assert replay_converge([0.5, 0.4, 0.3, 0.2], [300, 400, 500, 600], b, "rmse") is None
    with pytest.raises(ValueError, match=r"^3 values for 2 checks$"):
        replay_converge([0.1, 0.2, 0.3], [1, 2], b, "nse")


def test_smooth_two_averages_the_last_two_and_unjudged_checks_count_nothing() -> None:
    from synergy_dagster.models.training import judge_check, replay_converge

    two = Budget("converge", max_updates=100, smooth=2)
    best, bad = judge_check([0.9, 0.1, 0.5], two, "nse", None, 3)
    assert best == pytest.approx(0.3, abs=1e-15) and bad == 0  # (0.1 + 0.5) / 2, not 0.5
    # the first checks of a smoothed rule are not judged: no count of checks without a gain yet
    eager = Budget("converge", max_updates=100, patience=1, smooth=3)
    assert replay_converge([0.5, 0.4, 0.3], [1, 2, 3], eager, "nse") is None
    assert replay_converge([0.5, 0.4, 0.3, 0.1], [1, 2, 3, 4], eager, "nse") == 3
