"""Training (seeding, checkpoint resume, corrupt checkpoints) and full-sequence prediction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.models.files import load_state, save_state
from synergy_dagster.models.lstm import SynergyLSTM
from synergy_dagster.models.normalization import Arrays, Normalizer
from synergy_dagster.models.predict import predict
from synergy_dagster.models.training import TrainSpec, train_model

FAST = {"hidden": 12, "rho": 20, "batch": 8, "max_iters_per_epoch": 8}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_falls_on_learnable_problem(synthetic_arrays: Callable[..., Arrays]) -> None:
    arr = synthetic_arrays()
    logged: list[tuple[int, float]] = []
    res = train_model(
        arr,
        TrainSpec(hidden=16, epochs=10, rho=30, batch=10, dropconnect=0.0, seed=0, max_iters_per_epoch=15),
        log=lambda e, v: logged.append((e, v)),
        progress=False,
    )
    assert len(res.losses) == 10 and [e for e, _ in logged] == list(range(1, 11))
    assert res.losses[-1] < 0.5 * res.losses[0], res.losses
    assert res.n_iterations == 150 and res.iters_per_epoch == 15
    assert res.n_train_samples == int(np.isfinite(arr.y).sum())
    assert all(v.device.type == "cpu" for v in res.state_dict.values())
    # uncapped, the epoch length follows the paper's formula
    full = train_model(
        synthetic_arrays(4, 60),
        TrainSpec(hidden=4, epochs=1, rho=30, batch=8, dropconnect=0.0, seed=0),
        progress=False,
    )
    # batch capped at 4 sites: 4 * 30 / (4 * 60) = 0.5 -> ceil(log(0.01) / log(0.5)) = ceil(6.64) = 7
    assert full.batch == 4 and full.iters_per_epoch == 7 and full.n_iterations == 7


def test_seed_reproducibility_and_rng_isolation(synthetic_arrays: Callable[..., Arrays]) -> None:
    arr = synthetic_arrays()
    before = torch.get_rng_state()
    det_before = torch.are_deterministic_algorithms_enabled()
    a = train_model(arr, TrainSpec(epochs=2, dropconnect=0.5, seed=3, **FAST), progress=False)
    assert torch.equal(before, torch.get_rng_state())  # caller's global RNG untouched
    assert torch.are_deterministic_algorithms_enabled() == det_before
    b = train_model(arr, TrainSpec(epochs=2, dropconnect=0.5, seed=3, **FAST), progress=False)
    c = train_model(arr, TrainSpec(epochs=2, dropconnect=0.5, seed=4, **FAST), progress=False)
    assert _same(a.state_dict, b.state_dict) and a.losses == b.losses
    assert not _same(a.state_dict, c.state_dict)


def test_checkpoint_resume_is_exact(tmp_path: Path, synthetic_arrays: Callable[..., Arrays]) -> None:
    arr = synthetic_arrays()
    whole = train_model(arr, TrainSpec(epochs=4, dropconnect=0.5, seed=1, **FAST), progress=False)
    ckpt = tmp_path / "run" / "ckpt.pt"
    first = train_model(
        arr, TrainSpec(epochs=2, dropconnect=0.5, seed=1, **FAST), checkpoint_path=ckpt, progress=False
    )
    assert ckpt.exists() and first.resumed_from_block == 0
    assert not list(ckpt.parent.glob("*.tmp"))  # atomic write left no temp file
    logged: list[int] = []
    second = train_model(
        arr,
        TrainSpec(epochs=4, dropconnect=0.5, seed=1, **FAST),
        checkpoint_path=ckpt,
        progress=False,
        log=lambda e, v: logged.append(e),
    )
    assert second.resumed_from_block == 2 and logged == [3, 4]
    assert _same(whole.state_dict, second.state_dict)
    assert second.losses == whole.losses
    # a finished checkpoint is returned as is
    again = train_model(
        arr, TrainSpec(epochs=4, dropconnect=0.5, seed=1, **FAST), checkpoint_path=ckpt, progress=False
    )
    assert again.resumed_from_block == 4 and _same(again.state_dict, whole.state_dict)


def test_corrupt_or_foreign_checkpoint_starts_over(
    tmp_path: Path, synthetic_arrays: Callable[..., Arrays]
) -> None:
    arr = synthetic_arrays()
    fresh = train_model(arr, TrainSpec(epochs=2, dropconnect=0.0, seed=2, **FAST), progress=False)
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"\x80\x02 definitely not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        res = train_model(
            arr, TrainSpec(epochs=2, dropconnect=0.0, seed=2, **FAST), checkpoint_path=ckpt, progress=False
        )
    assert res.resumed_from_block == 0 and _same(res.state_dict, fresh.state_dict)
    # the checkpoint now belongs to seed 2; another seed must not resume it
    with pytest.warns(UserWarning, match="another configuration"):
        other = train_model(
            arr, TrainSpec(epochs=2, dropconnect=0.0, seed=9, **FAST), checkpoint_path=ckpt, progress=False
        )
    assert other.resumed_from_block == 0
    with pytest.raises(ConfigError):
        train_model(
            arr, TrainSpec(epochs=1, dropconnect=0.0, seed=0, hidden=4, rho=500, batch=4), progress=False
        )
    empty = synthetic_arrays()
    empty.y[:] = np.nan
    with pytest.raises(InputError):
        train_model(empty, TrainSpec(epochs=1, dropconnect=0.0, seed=0, **FAST), progress=False)


def test_predict_full_sequence(tmp_path: Path, synthetic_arrays: Callable[..., Arrays]) -> None:
    arr = synthetic_arrays(5, 40)
    res = train_model(arr, TrainSpec(epochs=1, dropconnect=0.5, seed=0, **FAST), progress=False)
    sim = predict(res.state_dict, arr, hidden=FAST["hidden"])
    assert sim.shape == (5, 40) and sim.dtype == np.float32 and np.isfinite(sim).all()
    # a full-sequence pass from a zero state: step t equals the last output of a run on days 0..t
    model = SynergyLSTM(arr.n_in, FAST["hidden"], dropconnect=0.5)
    model.load_state_dict(res.state_dict)
    model.eval()
    inp = torch.cat([torch.from_numpy(arr.x), torch.from_numpy(arr.c)[:, None, :].expand(-1, 40, -1)], dim=2)
    with torch.no_grad():
        for t in (0, 7, 39):
            last = model(inp[:, : t + 1])[:, -1, 0].numpy()
            np.testing.assert_allclose(sim[:, t], last, rtol=1e-5, atol=1e-6)
    # chunking over sites changes nothing beyond GEMM rounding; the model object itself is accepted too
    np.testing.assert_allclose(predict(model, arr, chunk_sites=2), sim, rtol=1e-6, atol=1e-6)
    assert model.training is False
    # physical units through the normalizer
    norm = Normalizer(
        method="zscore",
        target="y",
        dynamic=("a", "b"),
        static=("k",),
        center={"y": 3.0, "a": 0, "b": 0, "k": 0},
        scale={"y": 2.0, "a": 1, "b": 1, "k": 1},
    )
    np.testing.assert_allclose(predict(res.state_dict, arr, normalizer=norm), sim * 2.0 + 3.0, rtol=1e-6)
    # state files round trip with weights_only loading; bad files raise InputError
    path = tmp_path / "m.pt"
    sha = save_state(path, res.state_dict)
    assert _same(load_state(path), res.state_dict) and _same(load_state(path, sha), res.state_dict)
    with pytest.raises(InputError, match="SHA-256"):
        load_state(path, "0" * 64)
    with pytest.raises(InputError, match="not found"):
        load_state(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_text("garbage")
    with pytest.raises(InputError):
        load_state(tmp_path / "bad.pt")
    wider = synthetic_arrays(2, 30)
    wider.x = np.zeros((2, 30, 3), np.float32)  # one input more than the model was trained with
    with pytest.raises(InputError, match="inputs"):
        predict(res.state_dict, wider)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"hidden": 0}, "hidden"),
        ({"epochs": 0}, "epochs"),
        ({"rho": -1}, "rho"),
        ({"batch": 0}, "batch"),
        ({"max_iters_per_epoch": 0}, "max_iters_per_epoch"),
        ({"epoch_scale": 0.0}, "epoch_scale"),
        ({"min_iters_per_epoch": 0}, "min_iters_per_epoch"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"dropconnect": 1.0}, "dropconnect"),
        ({"seed": -1}, "seed"),
        ({"loss_last_n": 21}, "loss_last_n"),
    ],
)
def test_train_spec_names_the_bad_key(change: dict[str, object], key: str) -> None:
    good = {"epochs": 1, "dropconnect": 0.0, "seed": 0, **FAST}
    TrainSpec(**good)  # valid as is
    with pytest.raises(ConfigError) as err:
        TrainSpec(**{**good, **change})
    assert err.value.source == key


def test_train_spec_from_profile() -> None:
    from synergy_dagster.config import Budget
    from synergy_dagster.study_file import preset_profile

    profile = preset_profile("demo")
    spec = TrainSpec.from_profile(profile, "streamflow", seed=2, budget=Budget("equal_updates", updates=7))
    dom = profile.for_domain("streamflow")
    assert (spec.hidden, spec.epochs, spec.rho, spec.batch, spec.seed) == (
        profile.hidden,
        profile.epochs,
        dom.rho,
        dom.batch,
        2,
    )
    assert spec.budget.mode == "equal_updates" and spec.budget.metric == "nse"  # auto resolved
    assert TrainSpec.from_profile(profile, "soil_moisture", 0).budget == profile.budget.for_domain(
        "soil_moisture"
    )


def test_train_state_checkpoint_round_trip(tmp_path: Path, synthetic_arrays: Callable[..., Arrays]) -> None:
    """A state saved and loaded again continues exactly as the uninterrupted run."""
    from synergy_dagster.models.checkpoint import load_checkpoint, save_checkpoint
    from synergy_dagster.models.training import TrainState

    arr = synthetic_arrays()
    spec = TrainSpec(epochs=4, dropconnect=0.5, seed=5, **FAST)
    ckpt = tmp_path / "c.ckpt"
    half = train_model(arr, spec.replace(epochs=2), checkpoint_path=ckpt, progress=False)
    payload = load_checkpoint(ckpt)
    assert payload is not None and payload["blocks"] == 2 and payload["updates"] == half.n_iterations
    state = TrainState.from_checkpoint(
        payload, arr.n_in, spec.hidden, spec.dropconnect, spec.seed, torch.device("cpu")
    )
    assert state.blocks == 2 and state.losses == half.losses and _same(state.weights(), half.state_dict)
    # to_checkpoint -> from_checkpoint is the identity on every field
    again = state.to_checkpoint(payload["fingerprint"])
    save_checkpoint(tmp_path / "again.ckpt", again)
    back = TrainState.from_checkpoint(
        load_checkpoint(tmp_path / "again.ckpt"),
        arr.n_in,
        spec.hidden,
        spec.dropconnect,
        spec.seed,
        torch.device("cpu"),
    )
    assert back.rng.bit_generator.state == state.rng.bit_generator.state
    assert torch.equal(back.mask_rng.get_state(), state.mask_rng.get_state())
    assert (back.blocks, back.updates, back.bad, back.best, back.best_update) == (
        state.blocks,
        state.updates,
        state.bad,
        state.best,
        state.best_update,
    )
    resumed = train_model(arr, spec, checkpoint_path=tmp_path / "again.ckpt", progress=False)
    whole = train_model(arr, spec, progress=False)
    assert resumed.resumed_from_block == 2 and _same(resumed.state_dict, whole.state_dict)
    assert resumed.losses == whole.losses
    # a checkpoint written before blocks were called blocks ("epoch") is refused: training starts over
    old = {k: v for k, v in again.items() if k != "blocks"} | {"epoch": 2}
    save_checkpoint_raw = tmp_path / "old.ckpt"
    torch.save(old, save_checkpoint_raw)
    with pytest.warns(UserWarning, match="lacks required fields"):
        fresh = train_model(arr, spec, checkpoint_path=save_checkpoint_raw, progress=False)
    assert fresh.resumed_from_block == 0 and _same(fresh.state_dict, whole.state_dict)
