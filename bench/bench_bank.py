"""Benchmark of a bank of models (``train_bank``) against one model per process, on the real study's
streamflow partitions: summed weight updates per second of all partitions.

Usage: ``python bench/bench_bank.py [--data data/real] [--updates 200] [--quick] [--kernels fused,stacked]``.

Members: every streamflow partition the real study trained (``<data>/models/streamflow/converge``;
without that folder, every set of the plan that trains its own model), as the ``cpu`` profile trains
them (H 64, rho 270, batch 64 capped at the partition's sites, its streamflow recipe, the last 730
days of the training period held out as validation with 270 days of warm-up), each for
``--updates`` updates with a validation check every 100 (the profile's ``eval_every``). Arrays are
built once (``validation_split`` with the plan's shared normaliser) and cached under ``--cache``,
so no contender pays for reading the NetCDF.

Contenders, one after another:

* ``per-process``: today's study with ``--workers 2``: two worker processes, one torch thread each,
  each training one partition at a time with ``train_model`` (largest partitions first).
* ``bank-<kernel>``: one process, 2 torch threads, ``train_bank`` on every partition at once.

Printed per contender: wall seconds, summed updates per second, the ratio to ``per-process``, and the
achieved GFLOP/s of the useful matmul work (``3 * batch * rho * (2*n_in*H + 16*H^2 + 2*H)`` per
update, validation checks not counted) against the fp32 matmul peak of 2 threads measured in the
same run (the best of MKL and oneDNN); the 1-minute load average before and after each contender.
The headline is printed last.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from synergy_dagster.config import Budget, Period  # noqa: E402
from synergy_dagster.models.normalization import Arrays  # noqa: E402
from synergy_dagster.models.training import TrainSpec, Validation, train_model  # noqa: E402
from synergy_dagster.study_file import preset_profile  # noqa: E402

DOMAIN = "streamflow"
PROFILE = preset_profile("cpu")
TRAIN = Period("1981-10-01", "2009-12-31")  # studies/real.yaml


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def partition_keys(data: Path) -> list[str]:
    plan = json.loads((data / "plans" / f"{DOMAIN}.json").read_text())
    own = [s["key"] for s in plan["sets"] if s["key"] == s["trained_as"]]
    trained = data / "models" / DOMAIN / "converge"
    if trained.is_dir():
        done = {p.name for p in trained.iterdir() if p.is_dir()}
        own = [k for k in own if k.replace(":", "__") in done]
    return own


def build_cache(data: Path, keys: list[str], cache: Path) -> None:
    """One npz per partition: training and validation arrays as the study builds them."""
    import xarray as xr

    from synergy_dagster.models.fit import validation_split
    from synergy_dagster.models.normalization import Normalizer

    missing = [k for k in keys if not (cache / f"{k.replace(':', '__')}.npz").exists()]
    if not missing:
        return
    cache.mkdir(parents=True, exist_ok=True)
    plan = json.loads((data / "plans" / f"{DOMAIN}.json").read_text())
    sites = {s["key"]: [str(x) for x in s["site_ids"]] for s in plan["sets"]}
    norm = Normalizer.from_dict(json.loads((data / "plans" / f"{DOMAIN}_normalizer.json").read_text()))
    ds = xr.load_dataset(data / "sites" / f"{DOMAIN}.nc")
    dom = PROFILE.for_domain(DOMAIN)
    for k in missing:
        arrays, val, _ = validation_split(ds, norm, TRAIN, sites[k], dom)
        np.savez(
            cache / f"{k.replace(':', '__')}.npz",
            x=arrays.x, c=arrays.c, y=arrays.y, vx=val.arrays.x, vc=val.arrays.c, vy=val.arrays.y,
            skip=val.skip,
        )  # fmt: skip
        print(f"  cached {k}: {arrays.n_sites} sites x {arrays.n_days} days", flush=True)


def _arrays(x: np.ndarray, c: np.ndarray, y: np.ndarray) -> Arrays:
    n_sites, n_days = x.shape[:2]
    return Arrays(
        x=x, c=c, y=y, site_ids=np.array([f"s{i}" for i in range(n_sites)]),
        time=pd.date_range("2000-01-01", periods=n_days),
        dynamic_names=tuple(f"d{i}" for i in range(x.shape[2])),
        static_names=tuple(f"s{i}" for i in range(c.shape[1])), target_name="q",
    )  # fmt: skip


def load_member(cache: Path, key: str, updates: int) -> tuple[Arrays, TrainSpec, Validation]:
    z = np.load(cache / f"{key.replace(':', '__')}.npz")
    budget = Budget(mode="equal_updates", updates=updates, eval_every=PROFILE.budget.eval_every, metric="nse")
    spec = TrainSpec.from_profile(PROFILE, DOMAIN, seed=0, budget=budget)
    return (
        _arrays(z["x"], z["c"], z["y"]),
        spec,
        Validation(_arrays(z["vx"], z["vc"], z["vy"]), int(z["skip"])),
    )


def update_flops(spec: TrainSpec, n_in: int, batch: int) -> float:
    h = spec.hidden
    return 3.0 * batch * spec.rho * (2 * n_in * h + 16 * h * h + 2 * h)


def _one(job: tuple[str, str, int, str]) -> tuple[str, int, float]:
    """A worker process's job: one partition, one torch thread, train_model."""
    cache, key, updates, device = job
    torch.set_num_threads(1)
    arrays, spec, val = load_member(Path(cache), key, updates)
    r = train_model(arrays, spec, validation=val, device=device, progress=False)
    return key, r.n_iterations, r.seconds


def run_per_process(
    cache: Path, keys: list[str], updates: int, workers: int, device: str
) -> tuple[float, int]:
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(workers) as pool:
        done = list(pool.imap_unordered(_one, [(str(cache), k, updates, device) for k in keys]))
    return time.perf_counter() - t0, sum(n for _, n, _ in done)


def run_bank(
    cache: Path, keys: list[str], updates: int, threads: int, kernel: str, device: str
) -> tuple[float, int]:
    from synergy_dagster.models.bank import BankMember, train_bank

    members = []
    for k in keys:
        arrays, spec, val = load_member(cache, k, updates)
        members.append(BankMember(arrays, spec, val, name=k))
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    results = train_bank(members, device=device, kernel=kernel, progress=False)
    return time.perf_counter() - t0, sum(r.n_iterations for r in results)


def matmul_peak(threads: int, n: int = 2048) -> float:
    """Best fp32 GFLOP/s of a square matmul with ``threads`` threads: the best of MKL (``a @ b``) and
    oneDNN (``mkldnn_linear``; on AMD CPUs MKL takes a slower path and oneDNN is up to 2x faster)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    fns = [lambda: a @ b]
    if torch.backends.mkldnn.is_available():
        am, bm = a.to_mkldnn(), b.to_mkldnn()
        fns.append(lambda: torch._C._nn.mkldnn_linear(am, bm))
    best = math.inf
    for fn in fns:
        for _ in range(2):
            fn()
        best = min(best, *(_timed(fn) for _ in range(8)))
    return 2 * n**3 / best / 1e9


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "real")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/synergy_bench_bank"))
    ap.add_argument("--updates", type=int, default=200, help="updates per partition (a check every 100)")
    ap.add_argument("--kernels", default="fused,stacked")
    ap.add_argument("--quick", action="store_true", help="100 updates, every 4th partition")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the matmul peak is measured on CPU only)")
    args = ap.parse_args()
    keys = partition_keys(args.data)
    if args.quick:
        keys, args.updates = keys[::4], 100
    print(
        f"{len(keys)} streamflow partitions of {args.data}; building arrays (cached in {args.cache})",
        flush=True,
    )
    build_cache(args.data, keys, args.cache)
    specs = [load_member(args.cache, k, args.updates) for k in keys]
    # largest first: the per-process pool then ends with small jobs (its best order)
    order = sorted(range(len(keys)), key=lambda i: -specs[i][0].n_sites)
    keys = [keys[i] for i in order]
    specs = [specs[i] for i in order]
    flops = sum(
        update_flops(s, a.n_in, s.schedule(a.n_sites, a.n_days).batch) * args.updates for a, s, _ in specs
    )
    sizes = [a.n_sites for a, _, _ in specs]
    print(f"sites per partition: {min(sizes)}-{max(sizes)} (median {int(np.median(sizes))}); "
          f"H {PROFILE.hidden}, rho {specs[0][1].rho}, batch {specs[0][1].batch} (capped at the sites); "
          f"{args.updates} updates each; {flops / 1e12:.2f} TFLOP of useful matmul work in all", flush=True)  # fmt: skip
    peak1, peak2 = matmul_peak(1), matmul_peak(2)
    print(
        f"fp32 matmul peak (2048^2, best of MKL and oneDNN): {peak1:.0f} GFLOP/s on 1 thread, {peak2:.0f} on 2; load {_load()}"
    )

    rows: list[tuple[str, float, int, str, str]] = []
    before = _load()
    wall, n = run_per_process(args.cache, keys, args.updates, workers=2, device=args.device)
    rows.append(("per-process (2 x 1 thread)", wall, n, before, _load()))
    print(f"  per-process: {wall:.1f} s, {n} updates", flush=True)
    for kernel in [k for k in args.kernels.split(",") if k]:
        before = _load()
        wall, n = run_bank(args.cache, keys, args.updates, threads=2, kernel=kernel, device=args.device)
        rows.append((f"bank, {kernel} kernel (1 process, 2 threads)", wall, n, before, _load()))
        print(f"  bank {kernel}: {wall:.1f} s, {n} updates", flush=True)

    base = rows[0][2] / rows[0][1]
    print(f"\n{'contender':<44} {'wall s':>8} {'updates':>8} {'upd/s':>8} {'vs per-proc':>11} "
          f"{'GFLOP/s':>8} {'of 2-thr peak':>13} {'load':>11}")  # fmt: skip
    for name, wall, n, l0, l1 in rows:
        rate = n / wall
        print(f"{name:<44} {wall:>8.1f} {n:>8d} {rate:>8.2f} {rate / base:>10.2f}x "
              f"{flops / wall / 1e9:>8.1f} {flops / wall / 1e9 / peak2:>12.0%} {l0:>5}->{l1:<5}")  # fmt: skip
    best = max(rows[1:], key=lambda r: r[2] / r[1], default=rows[0])
    print(
        f"HEADLINE [{args.device}] bank of {len(keys)} real streamflow partitions (H 64): {best[0]}: "
        f"{best[2] / best[1]:.1f} summed updates/s = {best[2] / best[1] / base:.2f}x today's one model per "
        f"process ({base:.1f} updates/s, 2 processes x 1 thread); useful work {flops / best[1] / 1e9:.0f} "
        f"GFLOP/s vs the {peak2:.0f} GFLOP/s 2-thread matmul peak; load {best[3]}->{best[4]}"
    )


if __name__ == "__main__":
    main()
