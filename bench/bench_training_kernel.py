"""Benchmark of the training kernel: weight updates per second and achieved GFLOP/s of the paper's
network (forward + backward + AdaDelta step, DropConnect on) against an fp32 matmul peak measured in
the same run, for two LSTM kernels, plus where the step time goes.

Usage: ``python bench/bench_training_kernel.py [--quick] [--device auto|cpu|cuda] [--budget SECONDS]
[--kernels fused,stacked]``. The headline (the paper's streamflow setting H=256, rho=365, batch=500)
is printed last.

Kernels: ``fused`` is torch's library LSTM (``nn.LSTM``: oneDNN on CPU, cuDNN on CUDA), what
``SynergyLSTM`` and ``train_model`` use; ``stacked`` is the model bank's kernel
(``models/bank_lstm.py``) for one model: the input projection of all time steps as one product,
a loop over time steps of one recurrent product plus element-wise passes, a hand-written backward;
``fused-bf16`` is ``fused`` under bfloat16 autocast (the ``bf16`` recipe precision: float32 weights,
optimiser and loss, the layers' arithmetic in bfloat16). Its "of peak" is useful work against the
fp32 peak, printed beside the fp32 kernels, never taken as the fp32 headline. The ``cpu`` profile's
streamflow step (H=64, rho=270, batch=64, no DropConnect) is a case of its own.

FLOP model per (sample, time step), forward: 2*n_in*H (input layer) + 16*H^2 (LSTM input and recurrent
projections, 4 gates) + 2*H*n_out; forward + backward counted as 3x forward (the usual estimate; the
gate non-linearities are ignored). So the percentages are of useful matmul work. The peak is the best
of the BLAS matmul (``a @ b``, MKL on CPU) and, on CPU, oneDNN's (``mkldnn_linear``; on AMD CPUs MKL
takes a slower path and oneDNN is up to 2x faster), 2048^2 (8192^2 on CUDA), re-measured before every
case, the best of all counting.

The profile (headline case, each kernel) splits one step's wall time into batch building, forward,
backward and optimiser (device-synchronised), and on CPU the forward and backward further by the
torch profiler: the kernel's input projection, recurrence forward, recurrence backward and weight
gradients (the fused kernel's oneDNN LSTM layer computes its input projection inside: one figure).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from synergy_dagster.models.bank_lstm import PARAM_NAMES, stacked_forward  # noqa: E402
from synergy_dagster.models.device import pick_device  # noqa: E402
from synergy_dagster.models.lstm import SynergyLSTM, masked_rmse  # noqa: E402
from synergy_dagster.models.sampling import gather_windows, sample_indices  # noqa: E402

N_DYN, N_STATIC = 7, 17  # the paper's streamflow inputs: 7 forcings, 17 attributes
N_SITES, N_DAYS = 482, 10000  # about the size of the real streamflow training arrays
KERNELS = ("fused", "stacked", "fused-bf16")
FP32_KERNELS = ("fused", "stacked")


@dataclass
class Case:
    hidden: int
    rho: int
    batch: int


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timeit(
    fn: Callable[[], object],
    dev: torch.device,
    warmup: int,
    budget_s: float,
    max_reps: int,
    best: bool = False,
) -> float:
    """Median (or best) seconds per call: ``warmup`` untimed calls, then as many as fit in ``budget_s``."""
    for _ in range(warmup):
        fn()
    _sync(dev)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return float(np.min(times) if best else np.median(times))


def matmul_peaks(dev: torch.device, n: int, budget_s: float) -> dict[str, float]:
    """fp32 GFLOP/s of a big square matmul, best run (TF32 stays off: torch's default for matmul):
    the BLAS one, and on CPU oneDNN's."""
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    flop = 2 * n**3 / 1e9
    out = {"blas": flop / _timeit(lambda: a @ b, dev, warmup=2, budget_s=budget_s, max_reps=50, best=True)}
    if dev.type == "cpu" and torch.backends.mkldnn.is_available():
        am, bm = a.to_mkldnn(), b.to_mkldnn()
        fn = torch._C._nn.mkldnn_linear  # oneDNN inner product: y = a @ b^T, the same FLOPs
        out["onednn"] = flop / _timeit(
            lambda: fn(am, bm), dev, warmup=2, budget_s=budget_s, max_reps=50, best=True
        )
    return out


def step_flops(case: Case, n_in: int) -> float:
    per_cell = 2 * n_in * case.hidden + 16 * case.hidden**2 + 2 * case.hidden
    return 3.0 * case.batch * case.rho * per_cell


class Step:
    """One training step of the paper's network with either kernel, phases labelled for the profiler."""

    def __init__(
        self, case: Case, dev: torch.device, data: tuple[torch.Tensor, ...], kernel: str, dropconnect: float
    ) -> None:
        self.case, self.dev, self.data, self.kernel = case, dev, data, kernel
        torch.manual_seed(0)
        self.model = SynergyLSTM(N_DYN + N_STATIC, case.hidden, dropconnect=dropconnect).to(dev).train()
        self.opt = torch.optim.Adadelta(self.model.parameters(), lr=1.0, rho=0.9, eps=1e-6)
        self.rng = np.random.default_rng(0)
        self.xb, self.yb = self.batch()

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = sample_indices(self.rng, N_SITES, N_DAYS, self.case.batch, self.case.rho)
        return gather_windows(*self.data, s, t, self.case.rho)  # type: ignore[return-value]

    def forward(self) -> torch.Tensor:
        if self.kernel == "fused":
            return self.model(self.xb)
        if self.kernel == "fused-bf16":
            with torch.autocast(self.dev.type, dtype=torch.bfloat16):
                out = self.model(self.xb)
            return out.float()
        params = dict(self.model.named_parameters())
        params.update({f"lstm.{k}": w for k, w in self.model.lstm_weights().items()})
        return stacked_forward(self.xb[None], {k: params[k][None] for k in PARAM_NAMES})[0]

    def __call__(self, phases: dict[str, float] | None = None) -> None:
        """One step on the fixed minibatch; with ``phases``, also build a batch and add each phase's
        synchronised wall time."""
        marks = [time.perf_counter()]

        def mark() -> None:
            if phases is not None:
                _sync(self.dev)
                marks.append(time.perf_counter())

        if phases is not None:
            with record_function("bench.batch"):
                self.batch()
            mark()
        self.opt.zero_grad(set_to_none=True)
        with record_function("bench.forward"):
            loss = masked_rmse(self.forward(), self.yb)
        mark()
        with record_function("bench.backward"):
            loss.backward()
        mark()
        with record_function("bench.optimizer"):
            self.opt.step()
        mark()
        if phases is not None:
            for name, a, b in zip(
                ("batch", "forward", "backward", "optimizer"), marks[:-1], marks[1:], strict=True
            ):
                phases[name] = phases.get(name, 0.0) + b - a


def bench_case(
    case: Case,
    dev: torch.device,
    data: tuple[torch.Tensor, ...],
    budget_s: float,
    kernel: str = "fused",
    dropconnect: float = 0.5,
) -> dict[str, float]:
    step = Step(case, dev, data, kernel, dropconnect)

    def build() -> None:
        step.batch()

    # Best of the timed steps, like the matmul peak: on a shared machine the best run is the one least
    # disturbed by other processes, so best-vs-best is the fair ratio (the median is printed too).
    step_s = _timeit(step, dev, warmup=1, budget_s=budget_s, max_reps=200, best=True)
    step_med = _timeit(step, dev, warmup=0, budget_s=budget_s, max_reps=200)
    build_s = _timeit(build, dev, warmup=2, budget_s=min(1.0, budget_s), max_reps=200)
    return {
        "step_s": step_s, "step_med_s": step_med, "updates_per_s": 1.0 / step_s,
        "gflops": step_flops(case, N_DYN + N_STATIC) / step_s / 1e9,
        "build_s": build_s, "build_share": build_s / (build_s + step_s),
    }  # fmt: skip


# Profiler events (CPU time, children included) that split the forward and the backward.
_KERNEL_EVENTS = {
    "stacked": [
        ("input projection (all steps, one product)", "bank_lstm.input_projection"),
        ("recurrence forward", "bank_lstm.recurrence_forward"),
        ("recurrence backward", "bank_lstm.recurrence_backward"),
        ("weight gradients (one product each)", "bank_lstm.weight_gradients"),
    ],
    "fused": [
        ("oneDNN LSTM forward (incl. input projection)", "aten::mkldnn_rnn_layer"),
        ("oneDNN LSTM backward (incl. weight gradients)", "aten::mkldnn_rnn_layer_backward"),
    ],
}
_KERNEL_EVENTS["fused-bf16"] = _KERNEL_EVENTS["fused"]


def profile_step(case: Case, dev: torch.device, data: tuple[torch.Tensor, ...], kernel: str) -> str:
    """Where one step's time goes (text): phases by synchronised wall time, on CPU the kernel's
    parts by the torch profiler (best of 2 profiled steps after a warm-up)."""
    step = Step(case, dev, data, kernel, dropconnect=0.5)
    step()
    runs = []
    for _ in range(2):
        phases: dict[str, float] = {}
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(phases)
        runs.append((sum(phases.values()), phases, prof))
    total, phases, prof = min(runs, key=lambda r: r[0])
    lines = [
        f"  [{kernel}] one step {total:.3f} s: "
        + ", ".join(f"{k} {v / total:.1%}" for k, v in phases.items())
    ]
    if dev.type == "cpu":
        times = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()}
        parts = [(label, times.get(key, 0.0)) for label, key in _KERNEL_EVENTS[kernel]]
        inside = sum(v for _, v in parts)
        fwd_bwd = phases["forward"] + phases["backward"]
        parts.append(
            (
                "rest of forward + backward (input/output layers, loss, masks, autograd)",
                max(0.0, fwd_bwd - inside),
            )
        )
        lines += [f"      {label}: {v:.3f} s = {v / total:.1%}" for label, v in parts]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter timing budgets, no H=64 rho=365 case")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--budget", type=float, default=None, help="timing seconds per case (after warm-up)")
    ap.add_argument("--kernels", default=",".join(KERNELS), help="comma-separated: " + ", ".join(KERNELS))
    ap.add_argument("--no-profile", action="store_true", help="skip the headline step's profile")
    args = ap.parse_args()
    kernels = [k for k in args.kernels.split(",") if k]
    if any(k not in KERNELS for k in kernels):
        ap.error(f"--kernels: choose from {KERNELS}")
    dev = pick_device(args.device)
    budget = args.budget if args.budget is not None else (1.0 if args.quick else 5.0)
    n_mat = 2048 if dev.type == "cpu" else 8192
    cases = [Case(256, 365, 500), Case(256, 30, 100), Case(64, 30, 100), Case(64, 270, 64)]
    if not args.quick:
        cases.insert(2, Case(64, 365, 500))

    print(f"device: {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    peaks = matmul_peaks(dev, n_mat, budget_s=min(2.0, budget))
    print(f"fp32 matmul peak ({n_mat}x{n_mat}, {torch.get_num_threads()} threads): "
          + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()) + " GFLOP/s", flush=True)  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    data = (
        torch.randn(N_SITES, N_DAYS, N_DYN, generator=gen).to(dev),
        torch.randn(N_SITES, N_STATIC, generator=gen).to(dev),
        torch.randn(N_SITES, N_DAYS, 1, generator=gen).to(dev),
    )
    print(f"{'kernel':>8} {'H':>4} {'rho':>4} {'batch':>5} {'step ms':>9} {'median':>9} {'upd/s':>8} "
          f"{'GFLOP/s':>8} {'of peak':>8} {'DC=0 ms':>8} {'build ms':>9} {'build %':>8} {'load':>5}")  # fmt: skip
    results: dict[tuple[str, int, int, int], dict[str, float]] = {}
    peak = max(peaks.values())
    for case in cases:
        for kernel in kernels:
            # The peak again right before each case, the best of all measurements counting: under load
            # a single early measurement can be low and flatter every ratio.
            peak = max(peak, *matmul_peaks(dev, n_mat, budget_s=min(2.0, budget)).values())
            r = bench_case(case, dev, data, budget, kernel)
            r0 = bench_case(case, dev, data, budget, kernel, dropconnect=0.0)  # DropConnect's own cost
            results[(kernel, case.hidden, case.rho, case.batch)] = r
            print(f"{kernel:>8} {case.hidden:>4} {case.rho:>4} {case.batch:>5} {r['step_s'] * 1e3:>9.1f} "
                  f"{r['step_med_s'] * 1e3:>9.1f} {r['updates_per_s']:>8.2f} {r['gflops']:>8.1f} "
                  f"{r['gflops'] / peak:>8.1%} {r0['step_s'] * 1e3:>8.1f} {r['build_s'] * 1e3:>9.2f} "
                  f"{r['build_share']:>8.2%} {os.getloadavg()[0]:>5.2f}", flush=True)  # fmt: skip
    peak = max(peak, *matmul_peaks(dev, n_mat, budget_s=min(2.0, budget)).values())
    print(f"fp32 matmul peak, best of all measurements: {peak:.1f} GFLOP/s; 1-min load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")  # fmt: skip
    head = Case(256, 365, 500)
    if not args.no_profile:
        print(f"profile of one step, H={head.hidden} rho={head.rho} batch={head.batch} (DropConnect 0.5):")
        for kernel in kernels:
            print(profile_step(head, dev, data, kernel), flush=True)
    fp32 = [k for k in kernels if k in FP32_KERNELS] or kernels
    best_kernel = max(fp32, key=lambda k: results[(k, 256, 365, 500)]["updates_per_s"])
    h = results[(best_kernel, 256, 365, 500)]
    sm = results[(best_kernel, 256, 30, 100)]
    others = ", ".join(
        f"{k} {results[(k, 256, 365, 500)]['gflops'] / peak:.1%}" for k in kernels if k != best_kernel
    )
    study = [(k, results[(k, 64, 270, 64)]) for k in kernels]
    print("the cpu profile's streamflow step (H=64, rho=270, batch=64; DropConnect-free column 'DC=0 ms'): "
          + ", ".join(f"{k} {1e3 * r['step_s']:.1f} ms" for k, r in study))  # fmt: skip
    if "fused" in kernels and "fused-bf16" in kernels:
        for c in cases:
            f, b = (
                results[("fused", c.hidden, c.rho, c.batch)],
                results[("fused-bf16", c.hidden, c.rho, c.batch)],
            )
            print(f"  bf16 autocast vs fp32, H={c.hidden} rho={c.rho} batch={c.batch}: "
                  f"{f['step_s'] / b['step_s']:.2f}x the updates per second")  # fmt: skip
    paper_iters = math.ceil(math.log(0.01) / math.log(1 - 500 * 365 / (N_SITES * N_DAYS)))
    print(
        f"HEADLINE [{dev.type}] paper streamflow kernel (H=256, rho=365, batch=500, DropConnect 0.5), "
        f"{best_kernel} kernel: {h['updates_per_s']:.2f} updates/s, {h['gflops']:.1f} GFLOP/s = "
        f"{h['gflops'] / peak:.1%} of the {peak:.0f} GFLOP/s fp32 matmul peak"
        + (f" (other kernels: {others})" if others else "")
        + f"; minibatch building {h['build_share']:.2%} of step time; one paper epoch ({paper_iters} "
        f"iterations, {N_SITES} sites x {N_DAYS} days) ~ {paper_iters * h['step_s']:.0f} s; soil-moisture "
        f"kernel (H=256, rho=30, batch=100) {sm['updates_per_s']:.1f} updates/s, {sm['gflops'] / peak:.1%} "
        f"of peak; load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
