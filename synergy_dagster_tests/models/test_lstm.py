"""The paper's network (DropConnect LSTM) and the masked RMSE loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synergy_dagster.errors import ConfigError
from synergy_dagster.models.device import pick_device
from synergy_dagster.models.lstm import SynergyLSTM, masked_rmse


def _model(p: float = 0.0, n_in: int = 4, hidden: int = 8, seed: int = 0) -> SynergyLSTM:
    torch.manual_seed(seed)
    return SynergyLSTM(n_in, hidden, dropconnect=p)


def _reference_forward(
    m: SynergyLSTM, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor
) -> torch.Tensor:
    """Step-by-step LSTM (gate order i, f, g, o) with given weight matrices: tests only."""
    h_in = torch.relu(m.linear_in(x))
    b = m.lstm.bias_ih_l0 + m.lstm.bias_hh_l0
    h = torch.zeros(x.shape[0], m.hidden)
    c = torch.zeros_like(h)
    outs = []
    for t in range(x.shape[1]):
        gates = h_in[:, t] @ w_ih.T + h @ w_hh.T + b
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return m.linear_out(torch.stack(outs, dim=1))


def test_shapes_and_init() -> None:
    m = _model(n_in=5, hidden=16)
    assert m(torch.randn(3, 11, 5)).shape == (3, 11, 1)
    assert SynergyLSTM(5, 16, n_out=2)(torch.randn(2, 4, 5)).shape == (2, 4, 2)
    bound = 1 / math.sqrt(16)
    for p in m.lstm.parameters():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.8 * bound  # really uniform over the whole range, not a smaller default
    with pytest.raises(ConfigError):
        SynergyLSTM(5, 16, dropconnect=1.0)


def test_dropconnect_masks_train_vs_eval() -> None:
    m = _model(p=0.5)
    x = torch.randn(2, 9, 4)
    m.train()
    a, b = m(x), m(x)
    assert not torch.allclose(a, b)  # a new mask each forward pass
    m.eval()
    e1, e2 = m(x), m(x)
    assert torch.equal(e1, e2)
    plain = _model(p=0.0)
    plain.load_state_dict(m.state_dict())
    plain.train()  # p = 0: training mode is the plain network
    assert torch.allclose(e1, plain(x), atol=1e-6)
    assert torch.allclose(e1, _reference_forward(m, x, m.lstm.weight_ih_l0, m.lstm.weight_hh_l0), atol=1e-5)


def test_dropconnect_one_mask_shared_by_all_steps() -> None:
    p = 0.3
    m = _model(p=p)
    gen = torch.Generator().manual_seed(11)
    m.mask_generator = gen
    state = gen.get_state()
    x = torch.randn(3, 12, 4)
    m.train()
    out = m(x)
    replay = torch.Generator()
    replay.set_state(state)
    w_ih, w_hh = m.lstm.weight_ih_l0, m.lstm.weight_hh_l0
    mask_ih = torch.empty_like(w_ih).bernoulli_(1 - p, generator=replay)
    mask_hh = torch.empty_like(w_hh).bernoulli_(1 - p, generator=replay)
    assert 0.5 < mask_ih.mean() < 0.9  # about 70 % kept
    ref = _reference_forward(m, x, w_ih * mask_ih / (1 - p), w_hh * mask_hh / (1 - p))
    assert torch.allclose(out, ref, atol=1e-5)
    # gradients reach the unmasked parameters, and only through kept weights
    out.sum().backward()
    assert torch.all(w_ih.grad[mask_ih == 0] == 0)
    assert w_ih.grad.abs().sum() > 0 and w_hh.grad.abs().sum() > 0


def test_masked_rmse_matches_manual() -> None:
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(4, 6, 2))
    obs = rng.normal(size=(4, 6, 2))
    obs[0, :, 0] = np.nan
    obs[2, 1:4, 1] = np.nan
    expect = 0.0
    for k in range(2):
        ok = ~np.isnan(obs[..., k])
        expect += np.sqrt(np.mean((pred[..., k][ok] - obs[..., k][ok]) ** 2))
    got = masked_rmse(torch.tensor(pred), torch.tensor(obs))
    assert got.item() == pytest.approx(expect, rel=1e-10)
    # NaN cells do not influence the value, whatever the prediction there
    pred2 = pred.copy()
    pred2[0, :, 0] = 1e9
    assert masked_rmse(torch.tensor(pred2), torch.tensor(obs)).item() == pytest.approx(expect, rel=1e-10)
    with pytest.raises(ValueError):
        masked_rmse(torch.zeros(2, 3, 1), torch.zeros(2, 3, 2))


def test_all_nan_targets_give_zero_loss_and_finite_grads() -> None:
    m = _model()
    x = torch.randn(2, 5, 4)
    obs = torch.full((2, 5, 1), float("nan"))
    loss = masked_rmse(m(x), obs)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    for p in m.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() == 0
    # one target missing entirely, the other valid: finite grads, value from the valid one only
    pred = torch.randn(2, 5, 2, requires_grad=True)
    obs2 = torch.randn(2, 5, 2)
    obs2[..., 0] = float("nan")
    val = masked_rmse(pred, obs2)
    val.backward()
    assert torch.isfinite(pred.grad).all() and torch.all(pred.grad[..., 0] == 0)
    assert val.item() == pytest.approx(
        torch.sqrt(((pred[..., 1] - obs2[..., 1]) ** 2).mean()).item(), rel=1e-6
    )


def test_pick_device() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            pick_device("cuda")
