"""Time to accuracy against neuralhydrology on the same Caravan basins, and the evaluation pass.

Usage: ``python bench/bench_time_to_accuracy.py [--quick] [--level 0.5] [--basins 50] [--eval-every 50]
[--max-train-s 420] [--nh-python /work/nh-venv/bin/python] [--data $SYNERGY_REAL_DATA/caravan]``.

Three training runs on the same basins, inputs (the three Caravan forcings, no static attributes),
hidden size, window length and batch size, each until the median validation NSE over the basins
first reaches ``--level`` (or the caps ``--max-train-s`` seconds of training / ``--max-updates``):

* ``nh``: neuralhydrology ``cudalstm`` (in its own venv, a subprocess: not a dependency of this
  project), Adam lr 1e-3, RMSE loss on the last day of each window (``predict_last_n: 1``, its
  standard many-to-one setup). Its trainer runs ``--eval-every`` updates per "epoch"
  (``_max_updates_per_epoch``); after each, its validator (its tester on the validation period, the
  sliding window it validates with) scores the model, timed separately.
* ``ours all days``: ``train_model`` with the paper's loss over every day of each window, AdaDelta.
* ``ours last day``: the same with ``loss_last_n=1`` (the many-to-one loss).

Ours validates every ``--eval-every`` updates with a full-sequence pass (``Validation``). Only
training time counts on every side (validation passes, data loading and model setup excluded);
the time to the level is the training time at the first check whose median NSE is >= the level.

Then the evaluation pass over the test period with the trained models: neuralhydrology's tester
(what ``nh-run evaluate`` runs: one forward of ``seq`` days per test day) against our ``predict``
(one full-sequence pass per basin, test period plus ``seq - 1`` warm-up days).
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
from typing import Any

from _nh_common import (
    NH_PYTHON,
    ROOT,
    caravan_gauges,
    days_before,
    default_data,
    load_average,
    median,
    nh_config,
    nh_nses,
    patch_caravan_csv,
    read_ours,
    time_model_passes,
)


def nh_period(tester: Any, basins: list[str]) -> tuple[Any, Any]:
    """One period of every basin from a neuralhydrology tester's own per-basin datasets (its scaler, its
    warm-up days): the normalised inputs {feature: [basin, day, 1]} and the observations [basin, day]
    in physical units (NaN on the warm-up days, which are not scored)."""
    import numpy as np
    import torch

    dss = {b: tester._get_dataset(b) for b in basins}
    freq = dss[basins[0]].frequencies[0]
    feats = list(dss[basins[0]]._x_d[basins[0]][freq])
    x = {k: torch.nan_to_num(torch.stack([dss[b]._x_d[b][freq][k] for b in basins])) for k in feats}
    y = torch.stack([dss[b]._y[b][freq][:, 0] for b in basins]).numpy()
    center = float(tester.scaler["xarray_feature_center"][tester.cfg.target_variables[0]].values)
    scale = float(tester.scaler["xarray_feature_scale"][tester.cfg.target_variables[0]].values)
    return x, np.asarray(y, dtype=np.float64) * scale + center


def nh_sequence_nses(model: Any, tester: Any, x: Any, obs: Any) -> list[float]:
    """Per-basin NSE of a full-sequence pass of neuralhydrology's network (one forward per basin over
    warm-up + period, the way ours validates), its outputs rescaled and clipped at zero as its tester does."""
    import numpy as np
    import torch

    was = model.training
    model.eval()
    with torch.no_grad():
        y_hat = model({"x_d": x})["y_hat"][..., 0].numpy().astype(np.float64)
    model.train(was)
    center = float(tester.scaler["xarray_feature_center"][tester.cfg.target_variables[0]].values)
    scale = float(tester.scaler["xarray_feature_scale"][tester.cfg.target_variables[0]].values)
    sim = np.maximum(y_hat * scale + center, 0.0)
    out = []
    for s, o in zip(sim, obs, strict=True):
        ok = np.isfinite(o)
        den = float(((o[ok] - o[ok].mean()) ** 2).sum()) if ok.sum() > 1 else 0.0
        out.append(1.0 - float(((s[ok] - o[ok]) ** 2).sum()) / den if den > 0 else float("nan"))
    return out


def nh_child(args: argparse.Namespace) -> None:
    """neuralhydrology's side (imports only neuralhydrology); progress on stderr, one JSON line last."""
    import torch
    from neuralhydrology.evaluation import get_tester
    from neuralhydrology.training.basetrainer import BaseTrainer
    from neuralhydrology.utils.config import Config

    patch_caravan_csv()
    torch.set_num_threads(args.threads)
    gauges = args.gauges.split(",")
    cfg = nh_config(
        work=Path(args.workdir), gauges=gauges, data=args.data, hidden=args.hidden, seq=args.seq,
        batch=args.batch, predict_last_n=1, loss=args.nh_loss, seed=args.seed,
        periods={"train": (args.train_start, args.train_end), "validation": (args.val_start, args.val_end),
                 "test": (args.test_start, args.test_end)},
        validate_every=1, validate_n_random_basins=len(gauges), save_weights_every=10**9,
    )  # fmt: skip
    config = Config(cfg)
    t0 = time.perf_counter()
    trainer = BaseTrainer(config)
    trainer.initialize_training()
    setup_s = time.perf_counter() - t0
    validator = trainer.validator
    # Its tester batches the sliding windows by ``batch_size``; the training loader is built already, so
    # this only sets the inference batch (validation and test), where a larger batch is faster.
    config.update_config({"batch_size": args.nh_eval_batch})
    val_x, val_obs = nh_period(validator, gauges) if args.nh_validate == "sequence" else (None, None)
    per_epoch = min(args.eval_every, len(trainer.loader))
    trainer._max_updates_per_epoch = per_epoch
    curve: list[list[float]] = []
    train_s = val_s = 0.0
    updates, epoch = 0, 0
    while True:
        epoch += 1
        t = time.perf_counter()
        trainer._train_epoch(epoch=epoch)
        train_s += time.perf_counter() - t
        updates += per_epoch
        loss = float(trainer.experiment_logger.summarise()["avg_total_loss"])
        t = time.perf_counter()
        if args.nh_validate == "sequence":
            nses = nh_sequence_nses(trainer.model, validator, val_x, val_obs)
        else:  # its own validator: one sliding window of seq days per validation day
            res = validator.evaluate(epoch=epoch, save_results=False, metrics=["NSE"], model=trainer.model)
            nses = nh_nses(res)
        val_s += time.perf_counter() - t
        med = median(nses)
        curve.append([updates, train_s, val_s, loss, med])
        print(f"  nh update {updates}: train {train_s:.1f} s, val {val_s:.1f} s, loss {loss:.4f}, "
              f"median val NSE {med:.3f}, load {load_average():.2f}", file=sys.stderr, flush=True)  # fmt: skip
        if med >= args.level or train_s >= args.max_train_s or updates >= args.max_updates:
            break
    trainer._save_weights_and_optimizer(epoch)
    # The evaluation as `nh-run evaluate` does it: load the saved weights, run the tester on the test
    # period (reading the basins, the sliding-window passes, the metrics).
    t2 = time.perf_counter()
    tester = get_tester(cfg=config, run_dir=config.run_dir, period="test", init_model=True)
    pass_s = time_model_passes(tester)
    results = tester.evaluate(epoch=epoch, save_results=False, metrics=["NSE"])
    eval_s = time.perf_counter() - t2
    # The same model scored by a full-sequence pass over the test period (untimed): how far the two ways
    # of evaluating agree.
    test_x, test_obs = nh_period(tester, gauges)
    seq_nse = median(nh_sequence_nses(tester.model, tester, test_x, test_obs))
    print(json.dumps({"n_samples": len(trainer.loader.dataset), "setup_s": setup_s, "curve": curve,
                      "eval_s": eval_s, "pass_s": pass_s[0], "n_test_basins": len(results),
                      "test_nse": median(nh_nses(results)), "test_nse_sequence": seq_nse}))  # fmt: skip


def run_nh(args: argparse.Namespace, gauges: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nh_tta_") as work:
        cmd = [args.nh_python, __file__, "--nh-child", "--gauges", ",".join(gauges), "--workdir", work]
        for name in ("data", "hidden", "seq", "batch", "train_start", "train_end", "val_start", "val_end",
                     "test_start", "test_end", "threads", "level", "eval_every", "max_train_s",
                     "max_updates", "seed", "nh_loss", "nh_eval_batch", "nh_validate"):  # fmt: skip
            cmd += ["--" + name.replace("_", "-"), str(getattr(args, name))]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)  # stderr: progress
        wall = time.perf_counter() - t0
    if res.returncode != 0:
        print(res.stdout[-2000:], file=sys.stderr)
        raise SystemExit(
            f"neuralhydrology side failed (exit {res.returncode}); is {args.nh_python} set up (bench/README.md)?"
        )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


def ours(args: argparse.Namespace, gauges: list[str]) -> dict[str, Any]:
    """Our two runs (all-days and last-day loss) and the test-period evaluation of the all-days model."""
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from synergy_dagster.config import Budget
    from synergy_dagster.evaluation.metrics import all_metrics
    from synergy_dagster.models.normalization import Normalizer, prepare_arrays
    from synergy_dagster.models.predict import predict
    from synergy_dagster.models.training import CurvePoint, Validation, train_model

    torch.set_num_threads(args.threads)
    warm = args.seq - 1  # the window's history before the first scored day, as neuralhydrology reads
    t0 = time.perf_counter()
    ds = read_ours(args.data, gauges)
    norm = Normalizer.fit(ds, slice(args.train_start, args.train_end))
    arr = prepare_arrays(ds, norm, slice(days_before(args.train_start, warm), args.train_end))
    val = Validation(
        prepare_arrays(ds, norm, slice(days_before(args.val_start, warm), args.val_end)),
        skip=warm,
        normalizer=norm,
    )
    out: dict[str, Any] = {"setup_s": time.perf_counter() - t0}

    def stop(point: CurvePoint) -> bool:
        print(f"  {label} update {point.update}: train {point.seconds:.1f} s, val {point.val_seconds:.1f} s, "
              f"loss {point.train_loss:.4f}, median val NSE {point.val_nse:.3f}, load {load_average():.2f}",
              file=sys.stderr, flush=True)  # fmt: skip
        return point.val_nse >= args.level or point.seconds >= args.max_train_s

    states = {}
    for label, last_n in (("ours all days", None), ("ours last day", 1)):
        res = train_model(
            arr, hidden=args.hidden, epochs=1, rho=args.seq, batch=args.batch, dropconnect=0.0, seed=args.seed,
            budget=Budget(mode="equal_updates", updates=args.max_updates, eval_every=args.eval_every),
            validation=val, loss_last_n=last_n, on_check=stop, device="cpu", progress=False,
        )  # fmt: skip
        out[label] = {
            "curve": [[p.update, p.seconds, p.val_seconds, p.train_loss, p.val_nse] for p in res.curve]
        }
        states[label] = res.state_dict
    # Evaluation as a user runs it: read the basins, normalise, one pass per basin, score.
    t1 = time.perf_counter()
    test = prepare_arrays(
        read_ours(args.data, gauges), norm, slice(days_before(args.test_start, warm), args.test_end)
    )
    t2 = time.perf_counter()
    sim = predict(states["ours all days"], test, device="cpu", normalizer=norm)[:, warm:]
    out["pass_s"] = time.perf_counter() - t2
    obs = norm.inverse_target(test.y[:, warm:, 0])
    out["test_nse"] = float(np.nanmedian(all_metrics(obs, sim)["nse"]))
    out["eval_s"] = time.perf_counter() - t1
    sim_last = predict(states["ours last day"], test, device="cpu", normalizer=norm)[:, warm:]
    out["test_nse_last"] = float(np.nanmedian(all_metrics(obs, sim_last)["nse"]))
    return out


def reached(curve: list[list[float]], level: float) -> list[float] | None:
    """The first check [update, train_s, val_s, loss, nse] at or above ``level``."""
    return next((p for p in curve if p[4] >= level), None)


def best_rate(curve: list[list[float]]) -> float:
    """The fastest block's training seconds per update (the least slowed by the machine's other load)."""
    rates, prev_u, prev_s = [], 0.0, 0.0
    for u, sec, *_ in curve:
        if u > prev_u:
            rates.append((sec - prev_s) / (u - prev_u))
        prev_u, prev_s = u, sec
    return min(rates)


def compact(curve: list[list[float]]) -> str:
    return " ".join(f"{int(p[0])}:{p[1]:.0f}s:{p[4]:.2f}" for p in curve)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default_data(), help="Caravan root (CSV layout)")
    ap.add_argument("--nh-python", default=NH_PYTHON, help="python of the neuralhydrology venv")
    ap.add_argument("--quick", action="store_true", help="fewer basins, a lower level and shorter caps")
    ap.add_argument("--level", type=float, default=None, help="median validation NSE to reach")
    ap.add_argument("--basins", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seq", type=int, default=365)
    ap.add_argument("--batch", type=int, default=None, help="default: the number of basins")
    ap.add_argument("--eval-every", type=int, default=None, help="updates between validation checks")
    ap.add_argument("--max-train-s", type=float, default=None, help="cap on each run's training seconds")
    ap.add_argument("--max-updates", type=int, default=20000)
    ap.add_argument("--train-start", default="1999-10-01")
    ap.add_argument("--train-end", default="2008-09-30")
    ap.add_argument("--val-start", default="2008-10-01")
    ap.add_argument("--val-end", default="2010-09-30")
    ap.add_argument("--test-start", default=None)
    ap.add_argument("--test-end", default="1999-09-30")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nh-loss", default="RMSE", help="neuralhydrology's loss (RMSE, as ours; or NSE, MSE)")
    ap.add_argument("--nh-eval-batch", type=int, default=256, help="neuralhydrology's inference batch")
    ap.add_argument("--nh-validate", choices=("sequence", "tester"), default="sequence",
                    help="how nh's checks score: a full-sequence pass of its network (as ours), or its own "
                    "validator (sliding windows, ~seq times the work; wall time only, not counted)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--nh-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gauges", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    q = args.quick
    defaults = {"basins": (20, 50), "level": (0.5, 0.6), "eval_every": (25, 50), "max_train_s": (150, 600),
                "test_start": ("1994-10-01", "1984-10-01")}  # fmt: skip
    for name, pair in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, pair[0] if q else pair[1])
    if args.batch is None:
        args.batch = args.basins
    if args.nh_child:
        nh_child(args)
        return 0

    gauges = caravan_gauges(args.data, args.basins)
    if not gauges:
        print(f"no Caravan CSV files under {args.data}/timeseries/csv/camels", file=sys.stderr)
        return 2
    if args.batch > len(gauges):
        print(
            f"--batch {args.batch} is larger than the {len(gauges)} basins (ours caps it there)",
            file=sys.stderr,
        )
        return 2
    load0 = load_average()
    print(f"{len(gauges)} basins, H={args.hidden}, seq={args.seq}, batch={args.batch}, train {args.train_start}.."
          f"{args.train_end}, validation {args.val_start}..{args.val_end}, test {args.test_start}..{args.test_end}, "
          f"check every {args.eval_every} updates, level median NSE >= {args.level}, cap {args.max_train_s:.0f} s "
          f"training, threads {args.threads}, load average {load0:.2f}", flush=True)  # fmt: skip
    nh = run_nh(args, gauges)
    us = ours(args, gauges)
    load1 = load_average()
    runs = {
        "nh last day (Adam)": nh,
        "ours all days": us["ours all days"],
        "ours last day": us["ours last day"],
    }
    print(f"{'run':>20} {'reached at':>11} {'train s':>8} {'val s':>7} {'s/update':>9} {'best s/upd':>10} "
          f"{'at best rate s':>14} {'best NSE':>9} {'checks':>6}")  # fmt: skip
    at: dict[str, list[float] | None] = {}
    rate: dict[str, float] = {}
    for name, r in runs.items():
        c = r["curve"]
        hit = at[name] = reached(c, args.level)
        rate[name] = best_rate(c)
        last = hit or c[-1]
        where = f"{int(hit[0])} upd" if hit else "not reached"
        print(f"{name:>20} {where:>11} {last[1]:>8.1f} {last[2]:>7.1f} {last[1] / last[0]:>9.3f} {rate[name]:>10.3f} "
              f"{last[0] * rate[name]:>14.1f} {max(p[4] for p in c):>9.3f} {len(c):>6}")  # fmt: skip
    levels = sorted({round(x / 10, 1) for x in range(1, 10) if x / 10 < args.level} | {args.level})
    print("training s (updates) to each median validation NSE level:")
    print(f"{'level':>8} " + " ".join(f"{name:>20}" for name in runs))
    for lv in levels:
        cells = [reached(r["curve"], lv) for r in runs.values()]
        print(f"{lv:>8.2f} " + " ".join(f"{f'{c[1]:.1f} ({int(c[0])})' if c else '-':>20}" for c in cells))
    print("curves (update:training s:median validation NSE):")
    for name, r in runs.items():
        print(f"  {name}: {compact(r['curve'])}")
    print(f"{'test-period evaluation':>24} {'neuralhydrology':>16} {'synergy_dagster':>16} {'ratio':>8}")
    for label, a, b in (("whole evaluation s", nh["eval_s"], us["eval_s"]), ("model passes s", nh["pass_s"], us["pass_s"]),
                        ("nh whole / our pass", nh["eval_s"], us["pass_s"])):  # fmt: skip
        print(f"{label:>24} {a:>16.2f} {b:>16.3f} {a / b:>8.0f}")
    print(f"median test NSE: nh {nh['test_nse']:.3f} (its tester; full-sequence pass of its network "
          f"{nh['test_nse_sequence']:.3f}), ours all days {us['test_nse']:.3f}, ours last day "
          f"{us['test_nse_last']:.3f}; data setup nh {nh['setup_s']:.1f} s, ours {us['setup_s']:.1f} s; nh subprocess "
          f"wall {nh['wall_s']:.0f} s; load average {load0:.2f} before, {load1:.2f} after")  # fmt: skip

    def when(name: str) -> str:
        hit = at[name]
        if hit is None:
            best = max(p[4] for p in runs[name]["curve"])
            return f"not reached in {runs[name]['curve'][-1][1]:.0f} s (best {best:.3f})"
        return f"{hit[1]:.1f} s / {int(hit[0])} updates"

    def ratio(slow: str, fast: str) -> str:
        a, b = at[slow], at[fast]
        if b is None:
            return "n/a"
        c = runs[slow]["curve"][-1]
        if a is None:  # a lower bound: the slow run stopped at its cap without reaching the level
            return f">= {c[1] / b[1]:.2f}x (>= {c[0] / b[0]:.1f}x the updates)"
        return (f"{a[1] / b[1]:.2f}x ({a[0] / b[0]:.1f}x the updates; at each run's best s/update "
                f"{a[0] * rate[slow] / (b[0] * rate[fast]):.2f}x)")  # fmt: skip

    print(
        f"HEADLINE: time to median validation NSE >= {args.level} ({len(gauges)} Caravan basins, H={args.hidden}, "
        f"seq {args.seq}, batch {args.batch}, CPU): nh {when('nh last day (Adam)')}, ours all-days "
        f"{when('ours all days')}, ours last-day {when('ours last day')}; nh/ours "
        f"{ratio('nh last day (Adam)', 'ours all days')} (target >= 2), last-day/all-days "
        f"{ratio('ours last day', 'ours all days')}; evaluation {nh['eval_s'] / us['pass_s']:.0f}x (nh tester "
        f"{nh['eval_s']:.1f} s / our full-sequence pass {us['pass_s']:.3f} s; passes alone "
        f"{nh['pass_s'] / us['pass_s']:.0f}x, incl. our reading {nh['eval_s'] / us['eval_s']:.0f}x; target >= 100)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
