"""Time to accuracy against neuralhydrology on the same Caravan basins, and the evaluation pass.

Usage: ``python bench/bench_time_to_accuracy.py [--quick] [--level 0.5] [--basins 50] [--seeds 2]
[--eval-every 50] [--max-train-s 900] [--threads 1] [--nh-python /work/nh-venv/bin/python]
[--data $SYNERGY_REAL_DATA/caravan]`` (~18 min on 2 cores; ``--quick``: 20 basins, ~4 min).

Three training runs on the same basins, inputs (the three Caravan forcings, no static attributes),
hidden size, window length (``--seq``) and batch size, each until the median validation NSE over
the basins first reaches ``--level`` (or a cap: ``--max-train-s`` seconds of training or
``--max-updates`` updates):

* ``nh``: neuralhydrology ``cudalstm`` (in its own venv: not a dependency of this project), Adam
  lr 1e-3, RMSE loss on the last day of each window (``predict_last_n: 1``, its standard
  many-to-one setup); its trainer runs ``--eval-every`` updates per "epoch" (``_max_updates_per_epoch``).
* ``ours all days``: ``train_model`` with the paper's loss over every day of each window, AdaDelta.
* ``ours last day``: the same with ``loss_last_n=1`` (the many-to-one loss).

Every ``--eval-every`` updates each run is scored on the validation period the same way: one
full-sequence pass per basin over the period plus ``seq - 1`` warm-up days (ours: ``Validation``;
neuralhydrology's network: the same pass over its own normalised validation data, its outputs
rescaled and clipped at zero as its tester does). ``--nh-validate tester`` scores nh with its own
validator instead (one window per day: ~``seq`` times the work, wall time only). Only training time
counts (validation, data loading and model setup excluded); the time to the level is the training
time at the first check whose median NSE is >= the level.

The machine this was written on is shared, and its load moves by several times within minutes. So
the three runs are *interleaved*: each is its own process, and they take turns, one block of
``--eval-every`` updates at a time (round robin; the others wait idle), so that all three see the
same load over the same minutes. Besides the measured seconds the table gives each run's fastest
block rate (training s per update) and the time to the level at that rate. Each run uses one torch
thread by default: with the machine's cores shared, two threads per process made every sequential
LSTM step wait on the other thread's time slice (3-10x slower steps, measured). ``--seeds N`` repeats
the interleaved triple with seeds ``--seed``..``--seed + N - 1`` (the median ratio is the headline);
the evaluation runs once, with the first seed's models.

Then the evaluation pass over the test period with the trained models: neuralhydrology's tester
(what ``nh-run evaluate`` runs after loading the saved weights: one forward of ``seq`` days per test
day) against our ``predict`` (one full-sequence pass per basin, test period plus ``seq - 1`` warm-up
days), each also with reading the files and scoring.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

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

MARK = "@@tta "  # prefix of the protocol lines on a runner's stdout (neuralhydrology logs there too)
RUNS = ("nh last day (Adam)", "ours all days", "ours last day")
KINDS = dict(zip(RUNS, ("nh", "ours-all", "ours-last"), strict=True))
FORWARD = ("data", "hidden", "seq", "batch", "train_start", "train_end", "val_start", "val_end", "test_start",
           "test_end", "threads", "eval_every", "max_updates", "seed", "nh_loss", "nh_eval_batch", "nh_validate")  # fmt: skip


def emit(event: str, **data: Any) -> None:
    print(MARK + json.dumps({"event": event, **data}), flush=True)


def command() -> str:
    """The parent's next command (``go``, ``stop``, ``eval``); end of input reads as ``stop``."""
    return sys.stdin.readline().strip() or "stop"


# --- neuralhydrology runner (its venv) ------------------------------------------------------------------


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
    center, scale = _nh_target_scaling(tester)
    return x, np.asarray(y, dtype=np.float64) * scale + center


def _nh_target_scaling(tester: Any) -> tuple[float, float]:
    target = tester.cfg.target_variables[0]
    return (
        float(tester.scaler["xarray_feature_center"][target].values),
        float(tester.scaler["xarray_feature_scale"][target].values),
    )


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
    center, scale = _nh_target_scaling(tester)
    sim = np.maximum(y_hat * scale + center, 0.0)
    out = []
    for s, o in zip(sim, obs, strict=True):
        ok = np.isfinite(o)
        den = float(((o[ok] - o[ok].mean()) ** 2).sum()) if ok.sum() > 1 else 0.0
        out.append(1.0 - float(((s[ok] - o[ok]) ** 2).sum()) / den if den > 0 else float("nan"))
    return out


def nh_runner(args: argparse.Namespace) -> None:
    import torch
    from neuralhydrology.evaluation import get_tester
    from neuralhydrology.training.basetrainer import BaseTrainer
    from neuralhydrology.utils.config import Config

    patch_caravan_csv()
    torch.set_num_threads(args.threads)
    gauges = args.gauges.split(",")
    config = Config(nh_config(
        work=Path(args.workdir), gauges=gauges, data=args.data, hidden=args.hidden, seq=args.seq,
        batch=args.batch, predict_last_n=1, loss=args.nh_loss, seed=args.seed,
        periods={"train": (args.train_start, args.train_end), "validation": (args.val_start, args.val_end),
                 "test": (args.test_start, args.test_end)},
        validate_every=1, validate_n_random_basins=len(gauges), save_weights_every=10**9,
    ))  # fmt: skip
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
    emit("ready", setup_s=setup_s, n_samples=len(trainer.loader.dataset))
    train_s = val_s = 0.0
    updates, epoch = 0, 0
    while command() == "go":
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
        emit("check", point=[updates, train_s, val_s, loss, median(nses)])
    trainer._save_weights_and_optimizer(epoch)
    if command() != "eval":
        return
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
    emit("eval", eval_s=eval_s, pass_s=pass_s[0], n_basins=len(results), test_nse=median(nh_nses(results)),
         test_nse_sequence=seq_nse)  # fmt: skip


# --- our runner (the project venv) ----------------------------------------------------------------------


def ours_runner(args: argparse.Namespace, loss_last_n: int | None) -> None:
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from synergy_dagster.config import Budget
    from synergy_dagster.evaluation.metrics import nse
    from synergy_dagster.models.normalization import Normalizer, prepare_arrays
    from synergy_dagster.models.predict import predict
    from synergy_dagster.models.training import CurvePoint, TrainSpec, Validation, train_model

    torch.set_num_threads(args.threads)
    gauges = args.gauges.split(",")
    warm = args.seq - 1  # the window's history before the first scored day, as neuralhydrology reads
    t0 = time.perf_counter()
    ds = read_ours(args.data, gauges)
    norm = Normalizer.fit(ds, slice(args.train_start, args.train_end))
    arr = prepare_arrays(ds, norm, slice(days_before(args.train_start, warm), args.train_end))
    val_arr = prepare_arrays(ds, norm, slice(days_before(args.val_start, warm), args.val_end))
    val = Validation(val_arr, skip=warm, normalizer=norm)
    emit("ready", setup_s=time.perf_counter() - t0, n_samples=arr.n_valid_targets)
    if command() != "go":
        return

    def on_check(p: CurvePoint) -> bool:
        emit("check", point=[p.update, p.seconds, p.val_seconds, p.train_loss, p.val_nse])
        return command() != "go"

    spec = TrainSpec(
        hidden=args.hidden, epochs=1, rho=args.seq, batch=args.batch, dropconnect=0.0, seed=args.seed,
        budget=Budget(mode="equal_updates", updates=args.max_updates, eval_every=args.eval_every),
        loss_last_n=loss_last_n,
    )  # fmt: skip
    res = train_model(arr, spec, validation=val, on_check=on_check, device="cpu", progress=False)
    if command() != "eval":
        return
    # Evaluation as a user runs it: read the basins, normalise, one pass per basin, score.
    t1 = time.perf_counter()
    test = prepare_arrays(
        read_ours(args.data, gauges), norm, slice(days_before(args.test_start, warm), args.test_end)
    )
    t2 = time.perf_counter()
    sim = predict(res.state_dict, test, device="cpu", normalizer=norm)[:, warm:]
    pass_s = time.perf_counter() - t2
    obs = norm.inverse_target(test.y[:, warm:, 0])
    test_nse = float(np.nanmedian(nse(obs, sim)))
    emit("eval", eval_s=time.perf_counter() - t1, pass_s=pass_s, n_basins=test.n_sites, test_nse=test_nse)


# --- the parent: starts the runners, interleaves them, reports ------------------------------------------


class Runner:
    """One run in its own process, driven line by line over its stdin/stdout."""

    def __init__(self, name: str, python: str, args: argparse.Namespace, gauges: list[str], workdir: str):
        cmd = [python, __file__, "--runner", KINDS[name], "--gauges", ",".join(gauges), "--workdir", workdir]
        for key in FORWARD:
            cmd += ["--" + key.replace("_", "-"), str(getattr(args, key))]
        self.name = name
        self.log = Path(workdir) / f"{KINDS[name]}.stderr"  # warnings and tracebacks, shown on failure
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1
            )
        self.curve: list[list[float]] = []
        self.ready: dict[str, Any] = {}
        self.eval: dict[str, Any] = {}

    def send(self, cmd: str) -> None:
        stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        stdin.write(cmd + "\n")
        stdin.flush()

    def recv(self) -> dict[str, Any]:
        stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        for line in stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])
        code = self.proc.wait()
        print(self.log.read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"{self.name}: the runner ended (exit {code}) without answering (its stderr above)")

    def finish(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        if self.proc.stdout:
            self.proc.stdout.read()
        self.proc.wait()


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


def interleave(args: argparse.Namespace, runners: dict[str, Runner]) -> None:
    """Round robin, one block per run per turn, until every run reached the level or a cap."""
    active = list(runners.values())
    while active:
        for r in list(active):
            r.send("go")
            t = time.perf_counter()
            msg = r.recv()
            p = msg["point"]
            r.curve.append(p)
            done = p[4] >= args.level or p[1] >= args.max_train_s or p[0] >= args.max_updates
            print(f"  {r.name:>18} update {int(p[0]):>5}: train {p[1]:7.1f} s, val {p[2]:6.1f} s, loss {p[3]:.4f}, "
                  f"median val NSE {p[4]:6.3f} (turn {time.perf_counter() - t:5.1f} s, load {load_average():.2f})"
                  + (" -> stop" if done else ""), flush=True)  # fmt: skip
            if done:
                r.send("stop")
                active.remove(r)


def run_seed(args: argparse.Namespace, gauges: list[str], seed: int, evaluate: bool) -> dict[str, Runner]:
    """The three runs of one seed, interleaved; then (``evaluate``) the test-period evaluations."""
    args = argparse.Namespace(**{**vars(args), "seed": seed})
    with tempfile.TemporaryDirectory(prefix="nh_tta_") as work:
        runners: dict[str, Runner] = {}
        try:
            for name in RUNS:  # set up one after the other (data loading untimed), then interleave
                python = args.nh_python if name == RUNS[0] else sys.executable
                r = runners[name] = Runner(name, python, args, gauges, work)
                r.ready = r.recv()
                print(f"  seed {seed}, {name}: set up in {r.ready['setup_s']:.1f} s ({r.ready['n_samples']} "
                      "training samples)", flush=True)  # fmt: skip
            interleave(args, runners)
            if evaluate:
                for r in runners.values():  # the test-period evaluations, one at a time
                    r.send("eval")
                    r.eval = r.recv()
        finally:
            for r in runners.values():
                r.finish()
    return runners


def report(
    args: argparse.Namespace, seeds: dict[int, dict[str, Runner]], n_basins: int, load0: float
) -> None:
    load1 = load_average()
    curves = {(seed, name): r.curve for seed, runners in seeds.items() for name, r in runners.items()}
    at = {key: reached(c, args.level) for key, c in curves.items()}
    rate = {key: best_rate(c) for key, c in curves.items()}
    print(f"{'seed':>4} {'run':>20} {'reached at':>11} {'train s':>8} {'val s':>7} {'s/update':>9} "
          f"{'best s/upd':>10} {'at best rate s':>14} {'best NSE':>9} {'checks':>6}")  # fmt: skip
    for (seed, name), c in curves.items():
        last = at[seed, name] or c[-1]
        where = f"{int(last[0])} upd" if at[seed, name] else "not reached"
        print(f"{seed:>4} {name:>20} {where:>11} {last[1]:>8.1f} {last[2]:>7.1f} {last[1] / last[0]:>9.3f} "
              f"{rate[seed, name]:>10.3f} {last[0] * rate[seed, name]:>14.1f} {max(p[4] for p in c):>9.3f} "
              f"{len(c):>6}")  # fmt: skip
    levels = sorted({round(x / 10, 1) for x in range(1, 10) if x / 10 < args.level} | {args.level})
    print(f"training s (updates) to each median validation NSE level, seed {' / '.join(map(str, seeds))}:")
    print(f"{'level':>6} " + " ".join(f"{name:>28}" for name in RUNS))
    for lv in levels:
        cells = []
        for name in RUNS:
            hits = [reached(curves[seed, name], lv) for seed in seeds]
            cells.append(" / ".join(f"{h[1]:.0f} ({int(h[0])})" if h else "-" for h in hits))
        print(f"{lv:>6.2f} " + " ".join(f"{c:>28}" for c in cells))
    print("curves (update:training s:median validation NSE):")
    for (seed, name), c in curves.items():
        print(f"  seed {seed}, {name}: {compact(c)}")
    first = next(iter(seeds.values()))
    nh, us = first[RUNS[0]].eval, first[RUNS[1]].eval
    print(f"test-period evaluation (seed {next(iter(seeds))}'s models):")
    print(f"{'':>24} {'neuralhydrology':>16} {'synergy_dagster':>16} {'ratio':>8}")
    for label, a, b in (("whole evaluation s", nh["eval_s"], us["eval_s"]), ("model passes s", nh["pass_s"], us["pass_s"]),
                        ("nh whole / our pass", nh["eval_s"], us["pass_s"])):  # fmt: skip
        print(f"{label:>24} {a:>16.2f} {b:>16.3f} {a / b:>8.0f}")
    print(f"median test NSE: nh {nh['test_nse']:.3f} (its tester; full-sequence pass of its network "
          f"{nh['test_nse_sequence']:.3f}), ours all days {us['test_nse']:.3f}, ours last day "
          f"{first[RUNS[2]].eval['test_nse']:.3f}; load average {load0:.2f} before, {load1:.2f} after")  # fmt: skip

    def when(name: str) -> str:
        out = []
        for seed in seeds:
            hit, c = at[seed, name], curves[seed, name]
            out.append(
                f"{hit[1]:.0f} s/{int(hit[0])} upd"
                if hit
                else f"not in {c[-1][1]:.0f} s (best {max(p[4] for p in c):.2f})"
            )
        return ", ".join(out)  # fmt: skip

    def ratio(slow: str, fast: str) -> str:
        """Per seed: time ratio (a lower bound '>=' where the slow run hit its cap); then the median."""
        vals, texts, upd = [], [], []
        for seed in seeds:
            a, b = at[seed, slow], at[seed, fast]
            if b is None:
                texts.append("n/a")
                continue
            c = a or curves[seed, slow][-1]
            vals.append(c[1] / b[1])
            upd.append(c[0] / b[0])
            texts.append(("" if a else ">=") + f"{c[1] / b[1]:.2f}x")
        if not vals:
            return "n/a"
        return f"{median(vals):.2f}x (seeds {', '.join(texts)}; {median(upd):.1f}x the updates)"

    print(
        f"HEADLINE: time to median validation NSE >= {args.level} ({n_basins} Caravan basins, H={args.hidden}, "
        f"seq {args.seq}, batch {args.batch}, CPU {args.threads} thread, {len(seeds)} seed(s), interleaved): "
        f"nh {when(RUNS[0])}; ours all-days {when(RUNS[1])}; ours last-day {when(RUNS[2])}; nh/ours "
        f"{ratio(RUNS[0], RUNS[1])} (target >= 2); last-day/all-days {ratio(RUNS[2], RUNS[1])}; evaluation "
        f"{nh['eval_s'] / us['pass_s']:.0f}x (nh tester {nh['eval_s']:.1f} s / our full-sequence pass "
        f"{us['pass_s']:.3f} s; passes alone {nh['pass_s'] / us['pass_s']:.0f}x, incl. our reading "
        f"{nh['eval_s'] / us['eval_s']:.0f}x; target >= 100)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default_data(), help="Caravan root (CSV layout)")
    ap.add_argument("--nh-python", default=NH_PYTHON, help="python of the neuralhydrology venv")
    ap.add_argument("--quick", action="store_true", help="20 basins, level 0.5, checks every 25 updates")
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
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, default=2, help="seeds (each one interleaved triple of runs)")
    ap.add_argument("--nh-loss", default="RMSE", help="neuralhydrology's loss (RMSE, as ours; or NSE, MSE)")
    ap.add_argument("--nh-eval-batch", type=int, default=256, help="neuralhydrology's inference batch")
    ap.add_argument("--nh-validate", choices=("sequence", "tester"), default="sequence",
                    help="how nh's checks score: a full-sequence pass of its network (as ours), or its own "
                    "validator (sliding windows, ~seq times the work; wall time only, not counted)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run (see bench/README.md)")
    ap.add_argument("--runner", choices=tuple(KINDS.values()), help=argparse.SUPPRESS)
    ap.add_argument("--gauges", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    q = args.quick
    defaults = {"basins": (20, 50), "level": (0.5, 0.5), "eval_every": (25, 50), "max_train_s": (240, 900),
                "test_start": ("1997-10-01", "1994-10-01")}  # fmt: skip
    for name, pair in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, pair[0] if q else pair[1])
    if args.batch is None:
        args.batch = args.basins
    if args.runner == "nh":
        nh_runner(args)
        return 0
    if args.runner:
        ours_runner(args, None if args.runner == "ours-all" else 1)
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
    if not Path(args.nh_python).exists():
        print(f"no {args.nh_python}: set up the neuralhydrology venv (bench/README.md)", file=sys.stderr)
        return 2
    load0 = load_average()
    print(f"{len(gauges)} basins, H={args.hidden}, seq={args.seq}, batch={args.batch}, train {args.train_start}.."
          f"{args.train_end}, validation {args.val_start}..{args.val_end}, test {args.test_start}..{args.test_end}, "
          f"check every {args.eval_every} updates, level median NSE >= {args.level}, cap {args.max_train_s:.0f} s "
          f"training, threads {args.threads}, seeds {args.seed}..{args.seed + args.seeds - 1}, load average "
          f"{load0:.2f}", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    seeds = {}
    for i, seed in enumerate(range(args.seed, args.seed + args.seeds)):
        seeds[seed] = run_seed(args, gauges, seed, evaluate=i == 0)
    print(f"wall time of the whole benchmark {time.perf_counter() - t0:.0f} s")
    report(args, seeds, len(gauges), load0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
