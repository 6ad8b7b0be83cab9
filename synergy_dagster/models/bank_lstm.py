"""The paper's network for a bank of M models at once: stacked weights, one recurrence for all.

:func:`stacked_forward` runs M :class:`~synergy_dagster.models.lstm.SynergyLSTM` networks of the
same shape (n_in, H) on M minibatches of the same size ``[B, T]`` (a member with fewer windows is
padded; its padded rows are computed and ignored). Every product is batched over the models
(``bmm``): the input layer and the input projection of all time steps are one product each,
outside the recurrence; the recurrence is a loop over time steps of one ``[M, B, H] x [M, H, 4H]``
product plus a few element-wise passes (:class:`_Recurrence`, a hand-written backward: autograd
through the loop would keep 10+ temporaries per step and build a graph of thousands of nodes).

Memory layout: per model, time-major ``[M, T, B, .]``, so the slice of one step is M contiguous
blocks and the weight gradients are single ``[4H, T*B] x [T*B, H]`` products per model. Gates are
reordered internally from torch's (i, f, g, o) to (i, f, o, g) so the three sigmoid gates are one
contiguous slice (one pass instead of two). Every per-step buffer is preallocated and written with
``out=`` / in-place ops: fresh allocations of a few MB per step are page-faulted by the C allocator
and cost more than the arithmetic (measured: docs/results.md, "Bank runs and the training kernel").

Speed (``bench/bench_training_kernel.py``, ``bench/bench_bank.py``): on CPU torch's fused oneDNN LSTM
is faster, so the bank uses this kernel by default on CUDA only, where one launch sequence for all
models replaces a cuDNN call per model. Weights and gradients match ``nn.LSTM`` within float rounding
(``synergy_dagster_tests/test_bank.py``).
"""

from __future__ import annotations

import torch
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.profiler import record_function

from synergy_dagster.errors import ConfigError

_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward = torch.ops.aten.tanh_backward.grad_input


def _reorder(w: torch.Tensor, hidden: int) -> torch.Tensor:
    """Gate blocks (dim 1) from torch's order (i, f, g, o) to the kernel's (i, f, o, g). Slices
    and a cat, not an index: their backward is deterministic on every device."""
    h = hidden
    return torch.cat([w[:, : 2 * h], w[:, 3 * h :], w[:, 2 * h : 3 * h]], dim=1)


def _forward_steps(acts: torch.Tensor, w_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The recurrence, in place: ``acts`` ``[M, T, B, 4H]`` holds each step's input projection and
    leaves holding the gate activations. Returns cells, tanh(cells) and hidden states ``[M, T, B, H]``."""
    m, steps, b, h4 = acts.shape
    hid = h4 // 4
    cells = torch.empty(m, steps, b, hid, dtype=acts.dtype, device=acts.device)
    tcs = torch.empty_like(cells)
    hs = torch.empty_like(cells)
    w_hh_t = w_hh.transpose(1, 2)
    for t in range(steps):
        z = acts[:, t]
        if t > 0:
            z.baddbmm_(hs[:, t - 1], w_hh_t)
        z[..., : 3 * hid].sigmoid_()
        z[..., 3 * hid :].tanh_()
        i, f, o, g = z.split(hid, dim=-1)
        c = cells[:, t]
        if t > 0:
            torch.mul(f, cells[:, t - 1], out=c)
            c.addcmul_(i, g)
        else:
            torch.mul(i, g, out=c)
        torch.tanh(c, out=tcs[:, t])
        torch.mul(o, tcs[:, t], out=hs[:, t])
    return cells, tcs, hs


def _backward_steps(
    g_hs: torch.Tensor, acts: torch.Tensor, cells: torch.Tensor, tcs: torch.Tensor, w_hh: torch.Tensor
) -> torch.Tensor:
    """Back through the recurrence: the gradient of every step's gate pre-activations
    ``[M, T, B, 4H]`` from the gradient of the hidden states ``g_hs`` ``[M, T, B, H]``."""
    m, steps, b, hid = cells.shape
    dz_all = torch.empty_like(acts)
    dh = torch.empty(m, b, hid, dtype=cells.dtype, device=cells.device)
    dc = torch.zeros_like(dh)
    tmp = torch.empty_like(dh)
    for t in range(steps - 1, -1, -1):
        i, f, o, g = acts[:, t].split(hid, dim=-1)
        tc = tcs[:, t]
        if t == steps - 1:
            dh.copy_(g_hs[:, t])
        else:  # dh_t = dL/dh_t (direct) + dz_{t+1} W_hh (through the next step)
            torch.baddbmm(g_hs[:, t], dz_all[:, t + 1], w_hh, out=dh)
        # dc_t = dc_{t+1} f_{t+1} + dh o (1 - tanh(c)^2)
        torch.mul(dh, o, out=tmp)
        _tanh_backward(tmp, tc, grad_input=tmp)
        dc.add_(tmp)
        dz = dz_all[:, t]
        dzi, dzf, dzo, dzg = dz.split(hid, dim=-1)
        torch.mul(dc, g, out=dzi)
        if t > 0:
            torch.mul(dc, cells[:, t - 1], out=dzf)
        else:
            dzf.zero_()
        torch.mul(dh, tc, out=dzo)
        sig = dz[..., : 3 * hid]  # i, f, o: one sigmoid derivative pass
        _sigmoid_backward(sig, acts[:, t, :, : 3 * hid], grad_input=sig)
        torch.mul(dc, i, out=dzg)
        _tanh_backward(dzg, g, grad_input=dzg)
        dc.mul_(f)
    return dz_all


class _Recurrence(torch.autograd.Function):
    """``hs = LSTM(x)`` for M models: x ``[M, T*B, H_in]`` (time-major per model), w_ih
    ``[M, 4H, H_in]``, bias ``[M, 4H]`` (b_ih + b_hh), w_hh ``[M, 4H, H]``, gates in (i, f, o, g)
    order; returns hs ``[M, T*B, H]``. Zero initial state. The profiler labels name the phases
    that ``bench/bench_training_kernel.py`` reports."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        bias: torch.Tensor,
        w_hh: torch.Tensor,
        steps: int,
    ) -> torch.Tensor:
        m, tb, _ = x.shape
        hid = w_hh.shape[-1]
        with record_function("bank_lstm.input_projection"):  # every time step in one product
            acts = torch.baddbmm(bias.unsqueeze(1), x, w_ih.transpose(1, 2)).view(
                m, steps, tb // steps, 4 * hid
            )
        with record_function("bank_lstm.recurrence_forward"):
            cells, tcs, hs = _forward_steps(acts, w_hh)
        ctx.save_for_backward(x, w_ih, w_hh, acts, cells, tcs, hs)
        ctx.steps = steps
        return hs.view(m, tb, hid)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_hs: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, w_ih, w_hh, acts, cells, tcs, hs = ctx.saved_tensors
        steps: int = ctx.steps  # type: ignore[attr-defined]
        m, _, b, hid = hs.shape
        with record_function("bank_lstm.recurrence_backward"):
            dz_all = _backward_steps(grad_hs.contiguous().view(m, steps, b, hid), acts, cells, tcs, w_hh)
        with record_function("bank_lstm.weight_gradients"):  # each one product over all steps
            dz_flat = dz_all.view(m, steps * b, 4 * hid)
            d_x = torch.bmm(dz_flat, w_ih) if ctx.needs_input_grad[0] else None
            d_w_ih = torch.bmm(dz_flat.transpose(1, 2), x)
            d_bias = dz_flat.sum(dim=1)
            if steps > 1:  # h_{-1} = 0: the first step adds nothing to dW_hh
                d_w_hh = torch.bmm(
                    dz_all[:, 1:].reshape(m, (steps - 1) * b, 4 * hid).transpose(1, 2),
                    hs[:, :-1].reshape(m, (steps - 1) * b, hid),
                )
            else:
                d_w_hh = torch.zeros_like(w_hh)
        return d_x, d_w_ih, d_bias, d_w_hh, None


# Names of a SynergyLSTM state dict, in the order stacked_forward takes them.
PARAM_NAMES = (
    "linear_in.weight",
    "linear_in.bias",
    "lstm.weight_ih_l0",
    "lstm.weight_hh_l0",
    "lstm.bias_ih_l0",
    "lstm.bias_hh_l0",
    "linear_out.weight",
    "linear_out.bias",
)


def stacked_forward(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """M networks on M minibatches: x ``[M, B, T, n_in]`` -> ``[M, B, T, n_out]``.

    ``params`` maps each of :data:`PARAM_NAMES` to the M models' tensors stacked on a new first
    dimension (DropConnect already applied to the LSTM weights by the caller). Differentiable
    with respect to every parameter; the LSTM uses :class:`_Recurrence`.
    """
    if x.dim() != 4:
        raise ConfigError("bank input", f"expected [models, batch, time, n_in], got shape {tuple(x.shape)}")
    m, b, steps, n_in = x.shape
    w_in = params["linear_in.weight"]
    hid = w_in.shape[1]
    if w_in.shape != (m, hid, n_in):
        raise ConfigError(
            "bank weights", f"linear_in.weight {tuple(w_in.shape)} does not fit input {tuple(x.shape)}"
        )
    w_ih = _reorder(params["lstm.weight_ih_l0"], hid)
    w_hh = _reorder(params["lstm.weight_hh_l0"], hid)
    bias = _reorder(params["lstm.bias_ih_l0"] + params["lstm.bias_hh_l0"], hid)
    # time-major per model: [M, T*B, n_in] (a copy of the small input, not of the activations)
    xt = x.transpose(1, 2).reshape(m, steps * b, n_in)
    h_in = torch.relu(torch.baddbmm(params["linear_in.bias"].unsqueeze(1), xt, w_in.transpose(1, 2)))
    hs = _Recurrence.apply(h_in, w_ih, bias, w_hh, steps)
    out = torch.baddbmm(
        params["linear_out.bias"].unsqueeze(1), hs, params["linear_out.weight"].transpose(1, 2)
    )
    return out.view(m, steps, b, -1).transpose(1, 2)
