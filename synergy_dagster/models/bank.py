"""A bank of models trained at once: every member with its own data, minibatch sampling, seed,
DropConnect masks, optimiser, schedule, budget, validation checks, stopping and checkpoint.

:func:`train_bank` gives member ``i`` what ``train_model(member.arrays, member.spec,
validation=..., checkpoint_path=..., device=..., log=...)`` would give it. Each member is a
:class:`~synergy_dagster.models.training.ModelRun`, the very object ``train_model`` drives: the
same seeded initial weights (``TrainState.fresh``), the same ``np.random.default_rng(seed)``
minibatch stream, the same mask generator, its own optimiser instance (so per-model gradient
clipping, learning-rate schedules and optimiser state need no emulation), the same block,
validation, early-stopping and best-weights logic, and the same checkpoint payload and fingerprint:
a bank checkpoint resumes in a single run and the other way round. A member that stops leaves
the bank; the others go on.

How the members' forward and backward passes run is the kernel:

* ``stacked``: one computation for all members (:func:`~synergy_dagster.models.bank_lstm.stacked_forward`:
  their weights stacked, every product batched over the models). Members with a smaller effective
  batch are padded to the bank's largest; a member's loss is computed on its own rows only, so it
  is exactly its own, and the padded rows get no gradient. The bank's largest batch is fixed when
  the bank starts, so a member's padding never changes while it trains.
* ``fused``: each member's update through torch's fused LSTM (oneDNN on CPU, cuDNN on CUDA),
  exactly ``train_model``'s code; on CPU the members are spread over ``torch.get_num_threads()``
  worker threads running one intra-op thread each (like that many single-thread processes, without
  the processes).
* ``auto``: ``stacked`` on CUDA (many small models fill the device together), ``fused`` on CPU,
  where both ways use the same cores on the same arithmetic and oneDNN's LSTM does it faster than
  the stacked kernel, whose products go through torch's BLAS and whose gate arithmetic takes
  separate element-wise passes (measured with ``bench/bench_bank.py``: docs/results.md, "Bank runs
  and the training kernel").

Members that may not share a stacked computation (:func:`bank_compatible`: another hidden size,
window length or input width) go into separate banks, run one after another, so callers may pass
any list.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.models.bank_lstm import PARAM_NAMES, stacked_forward
from synergy_dagster.models.device import as_device, deterministic_algorithms
from synergy_dagster.models.normalization import Arrays
from synergy_dagster.models.training import (
    CurvePoint,
    LogFn,
    ModelRun,
    TrainResult,
    TrainSpec,
    Validation,
)

__all__ = ["KERNELS", "BankMember", "bank_compatible", "bank_groups", "choose_kernel", "train_bank"]

KERNELS = ("auto", "stacked", "fused")


@dataclass(frozen=True)
class BankMember:
    """One model of a bank: what ``train_model`` takes for it."""

    arrays: Arrays  # normalised training arrays of this model
    spec: TrainSpec  # its hyper-parameters, seed, budget, recipe
    validation: Validation | None = None
    checkpoint_path: str | Path | None = None
    log: LogFn | None = None  # log(block, loss) per check, as train_model's
    name: str = ""  # for messages

    def __post_init__(self) -> None:
        label = f"bank member {self.name!r}" if self.name else "bank member"
        if not isinstance(self.arrays, Arrays):
            raise ConfigError(label, f"arrays must be Arrays, got {type(self.arrays).__name__}")
        if not isinstance(self.spec, TrainSpec):
            raise ConfigError(label, f"spec must be a TrainSpec, got {type(self.spec).__name__}")
        if self.validation is not None and not isinstance(self.validation, Validation):
            raise ConfigError(label, f"validation must be a Validation, got {type(self.validation).__name__}")


def bank_compatible(a: TrainSpec, b: TrainSpec, n_in_a: int, n_in_b: int) -> bool:
    """Whether models of specs ``a`` and ``b`` (input widths ``n_in_a``, ``n_in_b``) may share a
    bank: the stacked computation needs the same hidden size, window length and input width.
    Everything else (seed, batch, data, DropConnect rate, optimiser, schedule, loss, budget) is
    per member."""
    return a.hidden == b.hidden and a.rho == b.rho and int(n_in_a) == int(n_in_b)


def bank_groups(members: Sequence[BankMember]) -> list[list[int]]:
    """Indices of ``members`` grouped into banks of compatible members, in order of first
    appearance (compatibility is an equivalence: equal hidden size, window and input width)."""
    groups: list[list[int]] = []
    for i, m in enumerate(members):
        for g in groups:
            first = members[g[0]]
            if bank_compatible(first.spec, m.spec, first.arrays.n_in, m.arrays.n_in):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def choose_kernel(device: torch.device, n_members: int) -> str:
    """The ``auto`` kernel: ``stacked`` for several models on CUDA, else ``fused`` (on CPU torch's
    oneDNN LSTM per model is faster than the stacked recurrence at the study's sizes, see
    ``bench/bench_bank.py``; a single model has nothing to stack)."""
    return "stacked" if device.type == "cuda" and n_members > 1 else "fused"


def _bytes_per_member(spec: TrainSpec, n_in: int, batch: int) -> int:
    """Activation memory of one member's stacked forward and backward (float32): per window-day the
    gates and their gradients (8H), cell, tanh(cell), hidden state, the input layer's output and
    gradients (~6H) and the inputs; twice over for the autograd temporaries around the kernel."""
    return 4 * spec.rho * batch * (16 * spec.hidden + 2 * n_in)


def _memory_limit(dev: torch.device) -> int:
    """Bytes a stacked bank may use for activations: 60 % of the free memory of a CUDA device, a
    quarter of the RAM on CPU (other processes and the data live there too)."""
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(0.6 * free)
    try:
        return int(0.25 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


class _Member:
    """A member's run inside a bank, with its bank-side bookkeeping."""

    def __init__(self, index: int, member: BankMember, run: ModelRun) -> None:
        self.index, self.member, self.run = index, member, run
        self.block_s = 0.0  # training seconds of the current block
        self.seconds = 0.0  # wall time from the bank's start until the member left

    def after_check(self, point: CurvePoint) -> None:
        """What ``train_model`` does after a check, in its order: log, stopping decision,
        checkpoint."""
        run = self.run
        if self.member.log is not None:
            self.member.log(run.st.blocks, point.train_loss)
        run.decide(point)
        run.save_if_due()


class _Aborted(Exception):
    """A fused worker stops because the bank is being torn down."""


def train_bank(
    members: Sequence[BankMember],
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
    kernel: str = "auto",
    memory_limit: int | None = None,
    threads: int | None = None,
) -> list[TrainResult]:
    """Train every member at once as stacked weights; result i is member i's, with the semantics of
    ``train_model(member.arrays, member.spec, validation=..., checkpoint_path=..., device=...,
    log=...)``.

    Incompatible members (:func:`bank_compatible`) train in separate banks, one after another.
    ``kernel``: ``auto``, ``stacked`` or ``fused`` (module docstring). ``memory_limit``: bytes of
    activations a stacked bank may hold (default: see :func:`_memory_limit`); a larger group is
    split into banks that run one after another. ``threads``: the CPU threads the bank may use
    (default ``torch.get_num_threads()``, restored afterwards); the ``fused`` kernel runs
    ``min(threads, members)`` worker threads sharing them, so a CPU bank given 1 thread trains its
    members one after another. Every member's inputs are checked before any trains (an error names
    the member). On CPU the same seeds give bit-identical weights run to run; ``fused`` gives
    exactly the weights of ``train_model`` run with the torch threads each member gets (one as soon
    as there are as many members as threads), ``stacked`` the same within float rounding (another
    kernel, other summation orders: ``synergy_dagster_tests/test_bank.py`` states the tolerance).
    A result's ``seconds`` is the wall time from its bank's start until the member left it.
    """
    if kernel not in KERNELS:
        raise ConfigError("kernel", f"must be one of {KERNELS}, got {kernel!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError("threads", f"must be a positive integer, got {threads!r}")
    members = list(members)
    for i, m in enumerate(members):
        if not isinstance(m, BankMember):
            raise ConfigError("bank members", f"item {i} is a {type(m).__name__}, not a BankMember")
    paths = [Path(m.checkpoint_path).resolve() for m in members if m.checkpoint_path is not None]
    if len(set(paths)) != len(paths):
        dup = sorted({str(p) for p in paths if paths.count(p) > 1})
        raise ConfigError("bank members", f"two members share a checkpoint file: {dup}")
    dev = as_device(device)
    # Build every run first: a bad member fails the call before hours of training the others.
    runs = []
    for i, m in enumerate(members):
        try:
            runs.append(ModelRun(m.arrays, m.spec, m.validation, m.checkpoint_path, dev))
        except InputError as exc:  # ConfigError included: the same class, naming the member
            who = f"bank member {i}" + (f" ({m.name})" if m.name else "")
            raise type(exc)(exc.source, f"{who}: {exc.problem}", exc.where) from exc
    groups = bank_groups(members)
    kernels = [_group_kernel(kernel, dev, [members[i] for i in group]) for group in groups]
    results: list[TrainResult | None] = [None] * len(members)
    for group, chosen in zip(groups, kernels, strict=True):
        for part in _split(group, members, runs, dev, chosen, memory_limit):
            bank = [_Member(i, members[i], runs[i]) for i in part]
            for m, result in zip(bank, _train_one_bank(bank, dev, chosen, progress, threads), strict=True):
                results[m.index] = result
    return [r for r in results if r is not None]


def _group_kernel(kernel: str, dev: torch.device, group: list[BankMember]) -> str:
    """The kernel a group of compatible members trains with. The stacked kernel computes in float32
    only: ``auto`` gives a group with a ``bf16`` member the fused kernel, an explicit ``stacked``
    is refused naming the members."""
    low = [m.name or f"#{i}" for i, m in enumerate(group) if m.spec.recipe.precision != "fp32"]
    if kernel == "auto":
        return "fused" if low else choose_kernel(dev, len(group))
    if kernel == "stacked" and low:
        raise ConfigError(
            "kernel",
            f"the stacked kernel computes in float32 only, but bank members {low} have recipe "
            "precision 'bf16': use kernel 'fused' or 'auto'",
        )
    return kernel


def _split(
    group: list[int],
    members: list[BankMember],
    runs: list[ModelRun],
    dev: torch.device,
    kernel: str,
    memory_limit: int | None,
) -> list[list[int]]:
    """``group`` cut into banks whose stacked activations fit ``memory_limit`` (the fused kernel
    holds one member's at a time per worker: one bank)."""
    if kernel != "stacked":
        return [group]
    limit = _memory_limit(dev) if memory_limit is None else int(memory_limit)
    bmax = max(runs[i].sched.batch for i in group)
    first = members[group[0]]
    per = _bytes_per_member(first.spec, first.arrays.n_in, bmax)
    size = max(1, limit // max(per, 1))
    return [group[k : k + size] for k in range(0, len(group), size)]


def _train_one_bank(
    bank: list[_Member], dev: torch.device, kernel: str, progress: bool, threads: int | None
) -> list[TrainResult]:
    t_start = time.perf_counter()
    runs = [m.run for m in bank]
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with deterministic_algorithms(any(r.deterministic for r in runs)):
            for r in runs:
                r.start()
            totals = [r.total for r in runs]
            names = ", ".join(m.member.name for m in bank if m.member.name)
            bar = tqdm(
                total=None if any(t is None for t in totals) else sum(t or 0 for t in totals),
                initial=sum(r.st.updates for r in runs),
                disable=not (progress and sys.stderr.isatty()),
                desc=f"bank of {len(bank)}" + (f" ({names[:60]})" if names else ""),
                unit="upd",
                leave=False,
            )
            try:
                if kernel == "stacked":
                    _run_stacked(bank, bar, t_start)
                else:
                    _run_fused(bank, dev, bar, t_start)
            finally:
                bar.close()
    finally:
        torch.set_num_threads(before)
    return [m.run.result(m.seconds) for m in bank]


def _run_stacked(bank: list[_Member], bar: tqdm, t_start: float) -> None:
    """Every active member does one update per step, all in one stacked forward and backward."""
    active = []
    for m in bank:
        if m.run.next_block():
            active.append(m)
        else:
            m.seconds = time.perf_counter() - t_start
    if not active:
        return
    # Fixed for the bank's life: a member's padding, hence its arithmetic, does not depend on
    # which members are still in the bank (so a resumed bank repeats an uninterrupted one).
    bmax = max(m.run.sched.batch for m in bank)
    while active:
        t0 = time.perf_counter()
        draws = [m.run.draw() for m in active]
        params: dict[str, list[torch.Tensor]] = {name: [] for name in PARAM_NAMES}
        for m in active:
            model = m.run.st.model
            m.run.st.optimizer.zero_grad(set_to_none=True)
            own = dict(model.named_parameters())
            own.update({f"lstm.{k}": w for k, w in model.lstm_weights().items()})  # DropConnect draws
            for name in PARAM_NAMES:
                params[name].append(own[name])
        xb0 = draws[0][0]
        x = xb0.new_zeros((len(active), bmax, *xb0.shape[1:]))
        for j, (xb, _, _) in enumerate(draws):
            x[j, : xb.shape[0]] = xb
        out = stacked_forward(x, {name: torch.stack(ps) for name, ps in params.items()})
        losses = [
            m.run.loss_of(out[j, : yb.shape[0]], yb, s_idx)
            for j, (m, (_, yb, s_idx)) in enumerate(zip(active, draws, strict=True))
        ]
        # Members share no parameter: the gradient of the sum is each member's own loss gradient.
        torch.stack(losses).sum().backward()
        for m, loss in zip(active, losses, strict=True):
            # The grads arrive as views of the stacked gradients, and b_ih's and b_hh's as views of
            # one tensor (their sum entered the kernel): in-place clipping would scale that storage
            # twice. A private copy per parameter (a few KB) makes each grad what a single run has.
            for p in m.run.st.model.parameters():
                if p.grad is not None:
                    p.grad = p.grad.clone()
            m.run.step(loss)
        dt = time.perf_counter() - t0
        bar.update(len(active))
        still = []
        for m in active:
            m.block_s += dt
            if not m.run.block_done(m.block_s):
                still.append(m)
                continue
            point = m.run.close_block(m.block_s)
            m.block_s = 0.0
            m.after_check(point)
            if m.run.next_block():
                still.append(m)
            else:
                m.seconds = time.perf_counter() - t_start
        active = still


def _run_fused(bank: list[_Member], dev: torch.device, bar: tqdm, t_start: float) -> None:
    """Members' blocks as jobs of a thread pool (on CPU one worker per torch thread, each running
    single-threaded ops); each member's updates are ``train_model``'s. The caller's callbacks,
    stopping decisions and checkpoints run in this thread, in ``train_model``'s order."""
    threads = torch.get_num_threads()
    workers = max(1, min(threads, len(bank))) if dev.type == "cpu" else 1
    intra = max(1, threads // workers)
    abort = threading.Event()

    def block(m: _Member) -> CurvePoint:
        run = m.run
        t0 = time.perf_counter()
        while True:
            if abort.is_set():
                raise _Aborted
            run.update()
            if run.block_done(time.perf_counter() - t0):
                break
        return run.close_block(time.perf_counter() - t0)

    torch.set_num_threads(intra)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bank")
    pending: dict[Future[CurvePoint], _Member] = {}
    try:
        for m in bank:
            if m.run.next_block():
                pending[pool.submit(block, m)] = m
            else:
                m.seconds = time.perf_counter() - t_start
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f].index):
                m = pending.pop(fut)
                point = fut.result()
                bar.update(m.run.ran)
                m.after_check(point)
                if m.run.next_block():
                    pending[pool.submit(block, m)] = m
                else:
                    m.seconds = time.perf_counter() - t_start
    finally:
        abort.set()
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
