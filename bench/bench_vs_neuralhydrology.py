"""Training and test-period evaluation against neuralhydrology on the same Caravan basins.

Usage: ``python bench/bench_vs_neuralhydrology.py [--quick] [--nh-python /work/nh-venv/bin/python]
[--data $SYNERGY_REAL_DATA/caravan] [--basins 128] [--hidden 64] [--seq 365] [--batch N_BASINS]``.

One invocation runs both sides and prints both times and the ratios (headline last):

* neuralhydrology (in its own virtual environment, a subprocess: it is not a dependency of this
  project) reads the basins through its ``caravan`` dataset (CSV files), trains ``cudalstm`` on the
  CPU for one epoch capped at ``floor(samples / batch)`` weight updates, then evaluates the test
  period with its tester (one forward pass of ``seq`` days per test day: a sliding window).
* synergy_dagster reads the same basins with ``read_caravan``, normalises them, trains with
  ``train_model`` for exactly the same number of updates of the same batch size and window length,
  and evaluates with ``predict`` (one full-sequence pass per basin over the test period plus the
  ``seq - 1`` warm-up days neuralhydrology also reads).

Same inputs (the Caravan forcing columns), target (streamflow), no static attributes, same hidden
size, window, batch and number of updates. Differences, by design of each library: neuralhydrology
feeds the forcings straight into the LSTM and uses Adam; ours has the paper's input layer
(Linear + ReLU, so its LSTM input projection is H x H, more work) and AdaDelta.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _nh_common import (
    NH_PYTHON,
    ROOT,
    caravan_gauges,
    default_data,
    nh_config,
    patch_caravan_csv,
    read_ours,
    time_model_passes,
)


def nh_child(args: argparse.Namespace) -> None:
    """Run neuralhydrology's side (imports only neuralhydrology); print one JSON line."""
    import torch
    from neuralhydrology.evaluation import get_tester
    from neuralhydrology.training.basetrainer import BaseTrainer
    from neuralhydrology.utils.config import Config

    patch_caravan_csv()
    torch.set_num_threads(args.threads)
    cfg = nh_config(
        work=Path(args.workdir), gauges=args.gauges.split(","), data=args.data, hidden=args.hidden,
        seq=args.seq, batch=args.batch, predict_last_n=args.seq,  # loss over the whole window, as ours
        periods={"train": (args.train_start, args.train_end), "validation": (args.test_start, args.test_end),
                 "test": (args.test_start, args.test_end)},
    )  # fmt: skip
    config = Config(cfg)
    t0 = time.perf_counter()
    trainer = BaseTrainer(config)
    trainer.initialize_training()
    t_setup = time.perf_counter() - t0
    n_samples = len(trainer.loader.dataset)
    n_updates = n_samples // args.batch  # full batches only: the same count ours runs
    trainer._max_updates_per_epoch = n_updates
    t1 = time.perf_counter()
    trainer.train_and_validate()
    t_train = time.perf_counter() - t1
    trainer.experiment_logger.stop_tb()
    run_dir = config.run_dir
    t2 = time.perf_counter()
    tester = get_tester(cfg=config, run_dir=run_dir, period="test", init_model=True)
    # Time its model passes alone (the sliding-window forwards of each basin), as ours are timed.
    pass_s = time_model_passes(tester)
    results = tester.evaluate(save_results=False, metrics=["NSE"])
    t_eval = time.perf_counter() - t2
    nse = [v["1D"].get("NSE", float("nan")) for v in results.values()]
    print(json.dumps({"n_samples": n_samples, "n_updates": n_updates, "setup_s": t_setup, "train_s": t_train,
                      "eval_s": t_eval, "pass_s": pass_s[0], "n_test_basins": len(results),
                      "median_nse": float(sorted(nse)[len(nse) // 2]) if nse else None}))  # fmt: skip


def ours(args: argparse.Namespace, gauges: list[str], n_updates: int) -> dict[str, float]:
    """Our side: read, normalise, train ``n_updates`` updates, full-sequence predict the test period."""
    import numpy as np
    import pandas as pd
    import torch

    sys.path.insert(0, str(ROOT))
    from synergy_dagster.evaluation.metrics import all_metrics
    from synergy_dagster.models.normalization import Normalizer, prepare_arrays
    from synergy_dagster.models.predict import predict
    from synergy_dagster.models.training import TrainSpec, train_model

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ds = read_ours(args.data, gauges)  # forcings and target: statics and other columns dropped
    train = slice(args.train_start, args.train_end)
    norm = Normalizer.fit(ds, train)
    # The same window neuralhydrology reads: seq - 1 warm-up days before the first training target.
    warm0 = (pd.Timestamp(args.train_start) - pd.Timedelta(days=args.seq - 1)).strftime("%Y-%m-%d")
    arr = prepare_arrays(ds, norm, slice(warm0, args.train_end))
    t_setup = time.perf_counter() - t0
    spec = TrainSpec(
        hidden=args.hidden, epochs=1, rho=args.seq, batch=args.batch, dropconnect=0.0, seed=0,
        min_iters_per_epoch=n_updates, max_iters_per_epoch=n_updates, epoch_scale=1e-6,
    )  # fmt: skip
    res = train_model(arr, spec, device="cpu", progress=False)
    assert res.n_iterations == n_updates, (res.n_iterations, n_updates)
    t_train = res.seconds
    # Evaluation as a user runs it: read the basins, normalise, one pass per basin, score.
    t1 = time.perf_counter()
    ds_e = read_ours(args.data, gauges)
    e0 = (pd.Timestamp(args.test_start) - pd.Timedelta(days=args.seq - 1)).strftime("%Y-%m-%d")
    test = prepare_arrays(ds_e, norm, slice(e0, args.test_end))
    t2 = time.perf_counter()
    sim = predict(res.state_dict, test, device="cpu", normalizer=norm)[:, args.seq - 1 :]
    t_pass = time.perf_counter() - t2
    obs = norm.inverse_target(test.y[:, args.seq - 1 :, 0])
    nse = all_metrics(obs, sim)["nse"]
    t_eval = time.perf_counter() - t1
    return {"setup_s": t_setup, "train_s": t_train, "eval_s": t_eval, "pass_s": t_pass,
            "median_nse": float(np.nanmedian(nse))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default_data(), help="Caravan root (CSV layout)")
    ap.add_argument("--nh-python", default=NH_PYTHON, help="python of the neuralhydrology venv")
    ap.add_argument("--quick", action="store_true", help="64 basins, half a training year, one test year")
    ap.add_argument("--basins", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seq", type=int, default=365)
    ap.add_argument("--batch", type=int, default=None, help="default: the number of basins")
    ap.add_argument("--train-start", default="2000-10-01")
    ap.add_argument("--train-end", default=None)
    ap.add_argument("--test-start", default="2010-01-01")
    ap.add_argument("--test-end", default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--nh-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gauges", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.basins is None:
        args.basins = 64 if args.quick else 128
    if args.batch is None:
        args.batch = args.basins
    if args.train_end is None:
        args.train_end = "2001-03-31" if args.quick else "2001-09-30"
    if args.test_end is None:
        args.test_end = "2010-12-31" if args.quick else "2011-12-31"
    if args.nh_child:
        nh_child(args)
        return 0

    gauges = caravan_gauges(args.data, args.basins)
    if not gauges:
        print(f"no Caravan CSV files under {args.data}/timeseries/csv/camels", file=sys.stderr)
        return 2
    if args.batch > len(gauges):
        # Ours draws each minibatch's sites with replacement but caps the batch at the number of sites
        # (the paper's rule), so the batch sizes only match up to that.
        print(
            f"--batch {args.batch} is larger than the {len(gauges)} basins; use at most that", file=sys.stderr
        )
        return 2
    load0 = os.getloadavg()
    print(f"{len(gauges)} basins, H={args.hidden}, seq={args.seq}, batch={args.batch}, train "
          f"{args.train_start}..{args.train_end}, test {args.test_start}..{args.test_end}, threads {args.threads}, "
          f"load average {load0[0]:.2f}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="nh_bench_") as work:
        cmd = [args.nh_python, __file__, "--nh-child", "--gauges", ",".join(gauges), "--workdir", work,
               "--data", args.data, "--hidden", str(args.hidden), "--seq", str(args.seq), "--batch",
               str(args.batch), "--train-start", args.train_start, "--train-end", args.train_end,
               "--test-start", args.test_start, "--test-end", args.test_end, "--threads", str(args.threads)]  # fmt: skip
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        t_nh_total = time.perf_counter() - t0
    if res.returncode != 0:
        print(res.stdout[-2000:], res.stderr[-4000:], file=sys.stderr)
        print(
            f"neuralhydrology side failed (exit {res.returncode}); is {args.nh_python} set up (bench/README.md)?"
        )
        return res.returncode
    nh = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"neuralhydrology: {json.dumps(nh)}", flush=True)
    us = ours(args, gauges, nh["n_updates"])
    load1 = os.getloadavg()
    print(f"{'':>18} {'neuralhydrology':>16} {'synergy_dagster':>16} {'ratio nh/ours':>14}")
    for label, a, b in (
        ("data setup s", nh["setup_s"], us["setup_s"]),
        ("training s", nh["train_s"], us["train_s"]),
        ("evaluation s", nh["eval_s"], us["eval_s"]),
    ):
        print(f"{label:>18} {a:>16.2f} {b:>16.2f} {a / b:>14.1f}")
    print(
        f"{'model passes s':>18} {nh['pass_s']:>16.2f} {us['pass_s']:>16.3f} {nh['pass_s'] / us['pass_s']:>14.0f}"
    )
    print(f"updates {nh['n_updates']} of batch {args.batch} ({nh['n_samples']} nh training samples); "
          f"median test NSE nh {nh['median_nse']:.3f}, ours {us['median_nse']:.3f} (one short epoch: not a "
          f"skill comparison); nh subprocess wall {t_nh_total:.1f} s; load average after {load1[0]:.2f}")  # fmt: skip
    print(
        f"HEADLINE: vs neuralhydrology ({len(gauges)} Caravan basins, H={args.hidden}, seq {args.seq}, batch "
        f"{args.batch}, {nh['n_updates']} updates, CPU): training {nh['train_s'] / us['train_s']:.2f}x "
        f"(nh {nh['train_s']:.1f} s / ours {us['train_s']:.1f} s; target >= 1), test-period evaluation "
        f"{nh['eval_s'] / us['eval_s']:.0f}x faster (nh {nh['eval_s']:.1f} s / ours {us['eval_s']:.2f} s incl. "
        f"reading and scoring; model passes alone {nh['pass_s'] / us['pass_s']:.0f}x; target >= 20)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
