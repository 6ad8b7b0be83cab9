"""Training (seeding, checkpoint resume, corrupt checkpoints) and full-sequence prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.models.lstm import build_model
from synergy_dagster.models.normalization import Arrays, Normalizer
from synergy_dagster.models.predict import load_state, predict, save_state
from synergy_dagster.models.training import train_model

FAST = {"hidden": 12, "rho": 20, "batch": 8, "max_iters_per_epoch": 8}


def _arrays(n_site: int = 10, n_time: int = 120, seed: int = 0) -> Arrays:
    """y = 5-day trailing mean of x0 plus a site offset from the static attribute; some NaN targets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_site, n_time, 2)).astype(np.float32)
    c = rng.normal(size=(n_site, 1)).astype(np.float32)
    kernel = np.ones(5) / 5
    smooth = np.stack([np.convolve(x[i, :, 0], kernel)[:n_time] for i in range(n_site)])
    y = (2.0 * smooth + 0.5 * c).astype(np.float32)[:, :, None]
    y[rng.random(y.shape) < 0.2] = np.nan
    return Arrays(
        x=x, c=c, y=y, site_ids=np.array([f"s{i}" for i in range(n_site)]),
        time=pd.date_range("2000-01-01", periods=n_time), dynamic_names=("a", "b"), static_names=("k",),
        target_name="y",
    )  # fmt: skip


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_falls_on_learnable_problem() -> None:
    arr = _arrays()
    logged: list[tuple[int, float]] = []
    res = train_model(arr, hidden=16, epochs=10, rho=30, batch=10, dropconnect=0.0, seed=0,
                      max_iters_per_epoch=15, log=lambda e, v: logged.append((e, v)), progress=False)  # fmt: skip
    assert len(res.losses) == 10 and [e for e, _ in logged] == list(range(1, 11))
    assert res.losses[-1] < 0.5 * res.losses[0], res.losses
    assert res.n_iterations == 150 and res.iters_per_epoch == 15
    assert res.n_train_samples == int(np.isfinite(arr.y).sum())
    assert all(v.device.type == "cpu" for v in res.state_dict.values())
    # uncapped, the epoch length follows the paper's formula
    full = train_model(_arrays(n_site=4, n_time=60), hidden=4, epochs=1, rho=30, batch=8, dropconnect=0.0,
                       seed=0, progress=False)  # fmt: skip
    # batch capped at 4 sites: 4 * 30 / (4 * 60) = 0.5 -> ceil(log(0.01) / log(0.5)) = ceil(6.64) = 7
    assert full.batch == 4 and full.iters_per_epoch == 7 and full.n_iterations == 7


def test_seed_reproducibility_and_rng_isolation() -> None:
    arr = _arrays()
    before = torch.get_rng_state()
    det_before = torch.are_deterministic_algorithms_enabled()
    a = train_model(arr, epochs=2, dropconnect=0.5, seed=3, progress=False, **FAST)
    assert torch.equal(before, torch.get_rng_state())  # caller's global RNG untouched
    assert torch.are_deterministic_algorithms_enabled() == det_before
    b = train_model(arr, epochs=2, dropconnect=0.5, seed=3, progress=False, **FAST)
    c = train_model(arr, epochs=2, dropconnect=0.5, seed=4, progress=False, **FAST)
    assert _same(a.state_dict, b.state_dict) and a.losses == b.losses
    assert not _same(a.state_dict, c.state_dict)


def test_checkpoint_resume_is_exact(tmp_path: Path) -> None:
    arr = _arrays()
    whole = train_model(arr, epochs=4, dropconnect=0.5, seed=1, progress=False, **FAST)
    ckpt = tmp_path / "run" / "ckpt.pt"
    first = train_model(arr, epochs=2, dropconnect=0.5, seed=1, checkpoint_path=ckpt, progress=False, **FAST)
    assert ckpt.exists() and first.resumed_from_epoch == 0
    assert not list(ckpt.parent.glob("*.tmp"))  # atomic write left no temp file
    logged: list[int] = []
    second = train_model(arr, epochs=4, dropconnect=0.5, seed=1, checkpoint_path=ckpt, progress=False,
                         log=lambda e, v: logged.append(e), **FAST)  # fmt: skip
    assert second.resumed_from_epoch == 2 and logged == [3, 4]
    assert _same(whole.state_dict, second.state_dict)
    assert second.losses == whole.losses
    # a finished checkpoint is returned as is
    again = train_model(arr, epochs=4, dropconnect=0.5, seed=1, checkpoint_path=ckpt, progress=False, **FAST)
    assert again.resumed_from_epoch == 4 and _same(again.state_dict, whole.state_dict)


def test_corrupt_or_foreign_checkpoint_starts_over(tmp_path: Path) -> None:
    arr = _arrays()
    fresh = train_model(arr, epochs=2, dropconnect=0.0, seed=2, progress=False, **FAST)
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"\x80\x02 definitely not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        res = train_model(
            arr, epochs=2, dropconnect=0.0, seed=2, checkpoint_path=ckpt, progress=False, **FAST
        )
    assert res.resumed_from_epoch == 0 and _same(res.state_dict, fresh.state_dict)
    # the checkpoint now belongs to seed 2; another seed must not resume it
    with pytest.warns(UserWarning, match="another configuration"):
        other = train_model(arr, epochs=2, dropconnect=0.0, seed=9, checkpoint_path=ckpt, progress=False,
                            **FAST)  # fmt: skip
    assert other.resumed_from_epoch == 0
    with pytest.raises(ConfigError):
        train_model(arr, epochs=1, dropconnect=0.0, seed=0, hidden=4, rho=500, batch=4, progress=False)
    empty = _arrays()
    empty.y[:] = np.nan
    with pytest.raises(InputError):
        train_model(empty, epochs=1, dropconnect=0.0, seed=0, progress=False, **FAST)


def test_predict_full_sequence(tmp_path: Path) -> None:
    arr = _arrays(n_site=5, n_time=40)
    res = train_model(arr, epochs=1, dropconnect=0.5, seed=0, progress=False, **FAST)
    sim = predict(res.state_dict, arr, hidden=FAST["hidden"])
    assert sim.shape == (5, 40) and sim.dtype == np.float32 and np.isfinite(sim).all()
    # a full-sequence pass from a zero state: step t equals the last output of a run on days 0..t
    model = build_model(arr.n_in, FAST["hidden"], dropconnect=0.5)
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
    norm = Normalizer(method="zscore", target="y", dynamic=("a", "b"), static=("k",),
                      center={"y": 3.0, "a": 0, "b": 0, "k": 0}, scale={"y": 2.0, "a": 1, "b": 1, "k": 1})  # fmt: skip
    np.testing.assert_allclose(predict(res.state_dict, arr, normalizer=norm), sim * 2.0 + 3.0, rtol=1e-6)
    # state files round trip with weights_only loading; bad files raise InputError
    path = save_state(tmp_path / "m.pt", res.state_dict)
    assert _same(load_state(path), res.state_dict)
    (tmp_path / "bad.pt").write_text("garbage")
    with pytest.raises(InputError):
        load_state(tmp_path / "bad.pt")
    wider = _arrays(n_site=2, n_time=30)
    wider.x = np.zeros((2, 30, 3), np.float32)  # one input more than the model was trained with
    with pytest.raises(InputError, match="inputs"):
        predict(res.state_dict, wider)
