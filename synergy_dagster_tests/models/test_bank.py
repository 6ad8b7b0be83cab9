"""A bank of models trained at once (models/bank.py) and its stacked LSTM kernel (models/bank_lstm.py).

Tolerance of the stacked kernel against single runs: the same weights within ``ATOL`` after
``N_UPDATES`` updates. Not 0: the stacked kernel and torch's fused LSTM (oneDNN) sum the gate
products and the weight gradients in other orders, so each gradient differs in its last bits
(measured: 1e-8 after one update, at most 1.2e-7 after 100 with AdaDelta or AdamW, float32) and
those differences are carried along. The ``fused`` kernel runs train_model's own code, so it must
give exactly train_model's weights.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from synergy_dagster.config import Budget, Recipe
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.models.bank import BankMember, bank_compatible, bank_groups, train_bank
from synergy_dagster.models.bank_lstm import PARAM_NAMES, stacked_forward
from synergy_dagster.models.checkpoint import load_checkpoint
from synergy_dagster.models.device import bf16_native
from synergy_dagster.models.lstm import SynergyLSTM
from synergy_dagster.models.normalization import Arrays
from synergy_dagster.models.training import TrainResult, TrainSpec, Validation, train_model

ROOT = Path(__file__).resolve().parents[2]

ATOL = 1e-5
N_UPDATES = 60
RECIPE = Recipe(
    optimizer="adamw",
    lr=5e-3,
    grad_clip=1.0,
    schedule="step",
    step_every=30,
    loss="nse",
    target_transform="none",
)
# (sites, batch, seed, patience, smooth): effective batches 8, 5, 16; converge stops at 55, 165, 150
SHAPES = [(12, 8, 3, 2, 1), (5, 8, 4, 3, 2), (20, 16, 5, 4, 1)]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _members(
    make: Callable[..., Arrays],
    mode: str = "equal_updates",
    ckpt_dir: Path | None = None,
    log: Callable[[int, int, float], object] | None = None,
) -> list[BankMember]:
    """Three members: other seeds, site counts and batches, DropConnect on, AdamW with a step
    schedule and clipping, the basin-normalised loss on the last 20 days."""
    out = []
    for k, (sites, batch, seed, patience, smooth) in enumerate(SHAPES):
        budget = (
            Budget(mode="equal_updates", updates=N_UPDATES, eval_every=10)
            if mode == "equal_updates"
            else Budget(
                mode="converge",
                max_updates=300,
                eval_every=5,
                patience=patience,
                smooth=smooth,
                min_delta=0.01,
                min_updates=10,
            )
        )
        spec = TrainSpec(
            hidden=8,
            epochs=1,
            rho=30,
            batch=batch,
            dropconnect=0.3,
            seed=seed,
            recipe=RECIPE,
            loss_last_n=20,
            budget=budget,
        )
        out.append(
            BankMember(
                make(sites, 200, seed=k),
                spec,
                Validation(make(sites, 100, seed=10 + k), 10),
                None if ckpt_dir is None else ckpt_dir / f"m{k}.pt",
                None if log is None else (lambda b, v, k=k: log(k, b, v)),
                name=f"m{k}",
            )
        )
    return out


def _single(m: BankMember, **kw: object) -> TrainResult:
    return train_model(m.arrays, m.spec, validation=m.validation, device="cpu", progress=False, **kw)  # type: ignore[arg-type]


# --- the stacked kernel ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_stacked_kernel_matches_nn_lstm(dtype: torch.dtype) -> None:
    """Forward and every parameter gradient of M stacked models against each model's nn.LSTM."""
    torch.manual_seed(0)
    m, b, t, n_in, h = 3, 5, 17, 4, 8
    models = [SynergyLSTM(n_in, h).to(dtype) for _ in range(m)]
    x = torch.randn(m, b, t, n_in, dtype=dtype)
    leaves = {
        k: torch.stack([dict(mod.named_parameters())[k].detach() for mod in models]).requires_grad_()
        for k in PARAM_NAMES
    }
    out = stacked_forward(x, leaves)
    ref = torch.stack([mod(x[i]) for i, mod in enumerate(models)])
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert out.shape == (m, b, t, 1) and torch.allclose(out, ref, atol=tol, rtol=0)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    for k in PARAM_NAMES:
        g = torch.stack([dict(mod.named_parameters())[k].grad for mod in models])  # type: ignore[misc]
        assert leaves[k].grad is not None
        assert torch.allclose(leaves[k].grad, g, atol=tol, rtol=0), k


def test_stacked_kernel_input_gradient() -> None:
    torch.manual_seed(1)
    params = {
        k: torch.stack([dict(SynergyLSTM(3, 4).double().named_parameters())[k].detach() for _ in range(2)])
        for k in PARAM_NAMES
    }
    x = torch.randn(2, 3, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: stacked_forward(v, params), (x,))


def test_lstm_weights_are_the_forward_draws() -> None:
    """The masks a bank draws for a member are the ones its own forward pass would draw."""
    a, b = SynergyLSTM(4, 8, dropconnect=0.4), SynergyLSTM(4, 8, dropconnect=0.4)
    b.load_state_dict(a.state_dict())
    a.mask_generator, b.mask_generator = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = torch.randn(2, 9, 4)
    ref = a(x)
    w = b.lstm_weights()
    params = {k: v[None] for k, v in dict(b.named_parameters()).items()}
    params.update({f"lstm.{k}": v[None] for k, v in w.items()})
    assert torch.allclose(stacked_forward(x[None], params)[0], ref, atol=1e-6)
    b.eval()
    assert b.lstm_weights()["weight_ih_l0"] is b.lstm.weight_ih_l0  # no mask outside training


# --- the bank -------------------------------------------------------------------------------------


def test_bank_equals_single_runs(synthetic_arrays: Callable[..., Arrays]) -> None:
    members = _members(synthetic_arrays)
    single = [_single(m) for m in members]
    stacked = train_bank(members, device="cpu", kernel="stacked", progress=False)
    fused = train_bank(members, device="cpu", kernel="fused", progress=False)
    assert len(stacked) == len(fused) == 3
    for s, r, f in zip(single, stacked, fused, strict=True):
        assert r.n_iterations == s.n_iterations == N_UPDATES and r.stop_reason == s.stop_reason == "budget"
        assert r.batch == s.batch and r.block == s.block and len(r.curve) == len(s.curve)
        assert _diff(r.state_dict, s.state_dict) < ATOL
        assert _same(f.state_dict, s.state_dict) and f.losses == s.losses  # the same code: exact
    assert [r.batch for r in stacked] == [8, 5, 16]


def test_bank_converge_stops_as_single_runs(synthetic_arrays: Callable[..., Arrays]) -> None:
    """Members stop at different updates by the smoothed early-stopping rule; each leaves the bank
    with the decisions, best check and kept weights of its single run."""
    members = _members(synthetic_arrays, "converge")
    single = [_single(m) for m in members]
    bank = train_bank(members, device="cpu", kernel="stacked", progress=False)
    assert len({s.n_iterations for s in single}) == 3  # three different stopping points
    for s, r in zip(single, bank, strict=True):
        assert r.stop_reason == s.stop_reason == "converged"
        assert (r.n_iterations, r.best_update) == (s.n_iterations, s.best_update)
        assert [p.update for p in r.curve] == [p.update for p in s.curve]
        assert max(abs(p.val_nse - q.val_nse) for p, q in zip(r.curve, s.curve, strict=True)) < 1e-5
        assert _diff(r.state_dict, s.state_dict) < ATOL


def test_bank_is_deterministic(synthetic_arrays: Callable[..., Arrays]) -> None:
    members = _members(synthetic_arrays)
    a = train_bank(members, device="cpu", kernel="stacked", progress=False)
    b = train_bank(members, device="cpu", kernel="stacked", progress=False)
    assert all(_same(x.state_dict, y.state_dict) and x.losses == y.losses for x, y in zip(a, b, strict=True))


class _Killed(Exception):
    pass


@pytest.mark.parametrize("kernel", ["stacked", "fused"])
def test_killed_bank_resumes_exactly(
    tmp_path: Path, synthetic_arrays: Callable[..., Arrays], kernel: str
) -> None:
    """Member 1's log raises at its 6th check: member 0 has checkpointed 6 blocks, members 1 and 2
    five. The rerun resumes each from its own checkpoint and ends bit-identical to a bank that was
    never stopped (stopping decisions included)."""
    whole = train_bank(_members(synthetic_arrays, "converge"), device="cpu", kernel=kernel, progress=False)

    def killer(k: int, block: int, loss: float) -> None:
        if k == 1 and block == 6:
            raise _Killed

    with pytest.raises(_Killed):
        train_bank(
            _members(synthetic_arrays, "converge", tmp_path, killer),
            device="cpu",
            kernel=kernel,
            progress=False,
        )
    done = [load_checkpoint(tmp_path / f"m{k}.pt")["blocks"] for k in range(3)]  # type: ignore[index]
    if kernel == "stacked":
        assert done == [6, 5, 5]
    logged: list[tuple[int, int]] = []
    again = train_bank(
        _members(synthetic_arrays, "converge", tmp_path, lambda k, b, v: logged.append((k, b))),
        device="cpu",
        kernel=kernel,
        progress=False,
    )
    assert [r.resumed_from_block for r in again] == done
    assert min(b for k, b in logged if k == 1) == 6  # member 1 redoes its 6th block
    for w, r in zip(whole, again, strict=True):
        assert _same(w.state_dict, r.state_dict) and w.losses == r.losses
        assert (w.stop_reason, w.n_iterations, w.best_update) == (
            r.stop_reason,
            r.n_iterations,
            r.best_update,
        )


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from synergy_dagster.models.bank import train_bank
from synergy_dagster_tests.conftest import make_arrays
from synergy_dagster_tests.models.test_bank import _members

def die(k, block, loss):
    if k == 1 and block == 6:  # a deterministic point: member 1's 6th check, before its checkpoint
        os.kill(os.getpid(), signal.SIGKILL)

train_bank(_members(make_arrays, "converge", Path(sys.argv[1]), die), device="cpu", kernel="stacked", progress=False)
print("FINISHED", flush=True)
"""


@pytest.mark.fault
def test_sigkilled_bank_resumes_exactly(tmp_path: Path, synthetic_arrays: Callable[..., Arrays]) -> None:
    """The same as above with a real process death (SIGKILL) instead of an exception."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNERGY_", "DAGSTER_"))}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert [load_checkpoint(tmp_path / f"m{k}.pt")["blocks"] for k in range(3)] == [6, 5, 5]  # type: ignore[index]
    again = train_bank(
        _members(synthetic_arrays, "converge", tmp_path), device="cpu", kernel="stacked", progress=False
    )
    whole = train_bank(_members(synthetic_arrays, "converge"), device="cpu", kernel="stacked", progress=False)
    assert [r.resumed_from_block for r in again] == [6, 5, 5]
    assert all(_same(w.state_dict, r.state_dict) for w, r in zip(whole, again, strict=True))


def test_checkpoints_shared_with_single_runs(tmp_path: Path, synthetic_arrays: Callable[..., Arrays]) -> None:
    """A bank resumes a killed single run's checkpoint, and a single run a killed bank's: same
    payload, same fingerprint."""
    members = _members(synthetic_arrays, "equal_updates", tmp_path)
    whole = [_single(m) for m in members]

    def stop_at(block: int, member: int | None = None) -> Callable[..., None]:
        """A log callback raising at check ``block`` (of ``member``, for a bank's log)."""

        def log(*args: float) -> None:
            k, b = (None, args[0]) if len(args) == 2 else (args[0], args[1])
            if b == block and k == member:
                raise _Killed

        return log

    with pytest.raises(_Killed):  # single run of member 0 killed after checkpointing 2 blocks
        _single(members[0], checkpoint_path=members[0].checkpoint_path, log=stop_at(3))
    bank = train_bank(members, device="cpu", kernel="stacked", progress=False)
    assert [r.resumed_from_block for r in bank] == [2, 0, 0]
    assert all(_diff(r.state_dict, w.state_dict) < ATOL for r, w in zip(bank, whole, strict=True))

    for p in tmp_path.glob("*.pt"):
        p.unlink()
    with pytest.raises(_Killed):  # the bank killed when member 2 logs its 4th check
        train_bank(
            _members(
                synthetic_arrays,
                "equal_updates",
                tmp_path,
                stop_at(4, member=2),
            ),
            device="cpu",
            kernel="stacked",
            progress=False,
        )
    for m, w in zip(members, whole, strict=True):
        r = _single(m, checkpoint_path=m.checkpoint_path)
        assert r.resumed_from_block >= 3 and r.n_iterations == N_UPDATES
        assert _diff(r.state_dict, w.state_dict) < ATOL


def test_incompatible_members_train_in_separate_banks(synthetic_arrays: Callable[..., Arrays]) -> None:
    base = TrainSpec(hidden=6, epochs=1, rho=20, batch=4, dropconnect=0.0, seed=0, max_iters_per_epoch=5)
    a = synthetic_arrays(6, 80)  # n_in 3
    wide = synthetic_arrays(6, 80, target="drift")  # n_in 5
    assert bank_compatible(base, base.replace(seed=1, batch=9, dropconnect=0.5), 3, 3)
    assert not bank_compatible(base, base.replace(hidden=7), 3, 3)
    assert not bank_compatible(base, base.replace(rho=21), 3, 3)
    assert not bank_compatible(base, base, 3, 5)
    members = [
        BankMember(a, base, name="a"),
        BankMember(a, base.replace(hidden=7, seed=1), name="wider net"),
        BankMember(wide, base.replace(seed=2), name="more inputs"),
        BankMember(a, base.replace(seed=3, recipe=RECIPE.replace(loss="rmse")), name="same shape"),
        BankMember(a, base.replace(rho=25, seed=4), name="longer window"),
    ]
    assert bank_groups(members) == [[0, 3], [1], [2], [4]]
    results = train_bank(members, device="cpu", kernel="stacked", progress=False)
    assert [r.hidden for r in results] == [6, 7, 6, 6, 6] and [r.n_in for r in results] == [3, 3, 5, 3, 3]
    for m, r in zip(members, results, strict=True):
        assert _diff(r.state_dict, _single(m).state_dict) < ATOL


def test_fused_bank_with_two_workers(synthetic_arrays: Callable[..., Arrays]) -> None:
    """Two threads: members run on two worker threads of one intra-op thread each, and still give
    exactly the single runs' weights (with one thread); the caller's thread count is restored."""
    members = _members(synthetic_arrays)
    single = [_single(m) for m in members]
    before = torch.get_num_threads()
    fused = train_bank(members, device="cpu", kernel="fused", progress=False, threads=2)
    assert torch.get_num_threads() == before
    assert all(_same(f.state_dict, s.state_dict) for f, s in zip(fused, single, strict=True))


def test_bank_refuses_bad_members(tmp_path: Path, synthetic_arrays: Callable[..., Arrays]) -> None:
    a = synthetic_arrays(6, 80)
    spec = TrainSpec(hidden=4, epochs=1, rho=20, batch=4, dropconnect=0.0, seed=0, max_iters_per_epoch=2)
    with pytest.raises(ConfigError, match="share a checkpoint"):
        train_bank([BankMember(a, spec, checkpoint_path=tmp_path / "x.pt")] * 2, device="cpu")
    converge = spec.replace(budget=Budget(mode="converge", max_updates=10))
    with pytest.raises(ConfigError, match="validation"):  # before the first member trains
        train_bank(
            [BankMember(a, spec, checkpoint_path=tmp_path / "y.pt"), BankMember(a, converge)], device="cpu"
        )
    assert not (tmp_path / "y.pt").exists()
    with pytest.raises(ConfigError, match="kernel"):
        train_bank([BankMember(a, spec)], kernel="fast")
    with pytest.raises(ConfigError, match="threads"):
        train_bank([BankMember(a, spec)], threads=0)
    with pytest.raises(InputError, match="bank member 1 \\(empty\\)"):
        train_bank(
            [BankMember(a, spec), BankMember(synthetic_arrays(6, 80, all_nan=True), spec, name="empty")]
        )
    with pytest.raises(ConfigError, match="TrainSpec"):
        BankMember(a, {"hidden": 4})  # type: ignore[arg-type]
    assert train_bank([], device="cpu") == []


def test_a_bf16_bank_is_fused_and_equals_single_runs(synthetic_arrays: Callable[..., Arrays]) -> None:
    """The stacked kernel computes in float32 only: ``auto`` trains bf16 members with the fused
    kernel (on two worker threads: autocast is per thread), which gives the single runs' weights
    exactly; an explicit ``stacked`` is refused before anything trains."""
    members = [
        dataclasses.replace(m, spec=m.spec.replace(recipe=m.spec.recipe.replace(precision="bf16")))
        for m in _members(synthetic_arrays)
    ]
    single = [_single(m) for m in members]
    bank = train_bank(members, device="cpu", kernel="auto", progress=False, threads=2)
    pairs = list(zip(bank, single, strict=True))
    if bf16_native(torch.device("cpu")):
        assert all(_same(b.state_dict, s.state_dict) for b, s in pairs)
    else:
        # Emulated bfloat16 (an AVX2-only CPU) rounds differently in a worker thread than in the
        # main one: the bank then agrees with the single runs closely, not bit for bit (float32
        # members stay exact everywhere: the tests above).
        assert all(_diff(b.state_dict, s.state_dict) < 5e-3 for b, s in pairs)
    with pytest.raises(ConfigError, match="stacked kernel computes in float32 only") as err:
        train_bank(members, device="cpu", kernel="stacked", progress=False)
    assert err.value.source == "kernel" and "'m0'" in str(err.value)
