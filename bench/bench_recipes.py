"""Training recipes compared on the real global streamflow set: median validation NSE by wall time.

Usage: ``python bench/bench_recipes.py [--study studies/real.yaml] [--recipes adam-nse-q:20,paper,...]
[--minutes 6] [--parallel 2] [--threads 1] [--eval-every 100] [--seeds 0,1,2]`` (``--list`` names the
candidate recipes; ``name:minutes`` gives one recipe its own cap). Needs the study's working folder
(``sites/streamflow.nc``, ``plans/streamflow.json``: ``python -m synergy_dagster.cli study --config
studies/real.yaml`` writes them).

The data are those of the study's global streamflow model (the coverage-kept Caravan basins of the
plan's global set, 416 for ``studies/real.yaml``), built as ``fit_set`` builds them: statistics fitted
on the training period with :func:`normalizer_options` (the recipe's target transform), the last
``validation_days`` of the training period held out (:func:`validation_split`, warm-up of ``rho``
days before it). Each recipe trains in its own process (``--threads`` torch threads; ``--parallel``
processes at a time) under the ``converge`` budget (its stopping rule may end a run before the cap)
and is stopped after ``--minutes`` of wall time in ``train_model`` (training plus validation
checks). Printed per recipe: the best median validation NSE reached by 1, 2, 5, 10, 15 and 20
minutes (the weights ``converge`` keeps: the best check so far), the best value, its update, the
updates and seconds done, seconds per update, how the run ended, where the single-check rule of
before (``smooth`` 1) would have stopped on the same curve, and the machine's load average
(``os.getloadavg``) before, during (mean over the checks) and after. With several ``--seeds`` each
recipe trains once per seed, and last come the seed ensembles: each seed's kept weights scored alone
and the median validation NSE of their mean prediction (in flow units, as the evaluation's ``mean``
rows score a study's seeds).
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MARKS_MIN = (1, 2, 5, 10, 15, 20)


def _candidate(hidden: int, rho: int, batch: int, **settings: Any) -> tuple[int, int, int, dict[str, Any]]:
    return hidden, rho, batch, settings


ADAM = {"optimizer": "adam", "lr": 1e-3}
NSE_Q = {"loss": "nse", "target_transform": "none"}
# AdamW, the rate halved every 1500 updates, gradients clipped at norm 1
ADAMW_STEP = {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4, **NSE_Q, "schedule": "step",
              "step_every": 1500, "step_gamma": 0.5, "grad_clip": 1.0}  # fmt: skip
# name -> (hidden, rho, batch, Recipe settings). "paper" is the `cpu` profile's recipe before issue 14.
CANDIDATES: dict[str, tuple[int, int, int, dict[str, Any]]] = {
    "paper": _candidate(64, 270, 64),
    "adam-rmse-q": _candidate(64, 270, 64, **ADAM, target_transform="none"),
    "adam-nse-q": _candidate(64, 270, 64, **ADAM, **NSE_Q),
    "adam-nse-log": _candidate(64, 270, 64, **ADAM, loss="nse"),
    "adam-nse-q-365": _candidate(64, 365, 128, **ADAM, **NSE_Q, loss_days=275),
    "adamw-nse-q-step": _candidate(64, 270, 64, **ADAMW_STEP),
    "adam-nse-q-h128": _candidate(128, 270, 64, **ADAM, **NSE_Q),
    "adamw-nse-q-step-h128": _candidate(128, 270, 64, **ADAMW_STEP),
    # a 365-day window scoring its last 185 days: the first 180 spin the state up, as in a test pass
    "adamw-nse-q-step-spinup": _candidate(64, 365, 64, **ADAMW_STEP, loss_days=185),
    # the cpu recipe with the training forward pass in bfloat16 (float32 weights, optimiser, loss)
    "adamw-nse-q-step-bf16": _candidate(64, 270, 64, **ADAMW_STEP, precision="bf16"),
    # the paper's regulariser (DropConnect on the recurrent weights), off in the cpu profile, with
    # the capacity it was meant to tame: does it lift the plateau?
    "adamw-nse-q-step-dc03": _candidate(64, 270, 64, **ADAMW_STEP, dropconnect=0.3),
    "adamw-nse-q-step-h128-dc05": _candidate(128, 270, 64, **ADAMW_STEP, dropconnect=0.5),
    "adamw-nse-q-step-h256-dc05": _candidate(256, 270, 64, **ADAMW_STEP, dropconnect=0.5),
}


def load_average() -> float:
    return os.getloadavg()[0]


# --- one recipe (its own process) -------------------------------------------------------------------


def runner(args: argparse.Namespace) -> None:
    """Train one recipe; write its curve and outcome as JSON to ``args.out``."""
    import torch

    from synergy_dagster.config import Budget, DomainTraining, Recipe
    from synergy_dagster.models.fit import normalizer_options, validation_split
    from synergy_dagster.models.normalization import Normalizer
    from synergy_dagster.models.training import CurvePoint, TrainSpec, train_model, validation_series
    from synergy_dagster.study_file import load_study

    torch.set_num_threads(args.threads)
    hidden, rho, batch, settings = CANDIDATES[args.runner]
    settings = dict(settings)
    dropconnect = float(settings.pop("dropconnect", 0.0))  # a profile setting, not the recipe's
    recipe = Recipe(**settings)
    t0 = time.perf_counter()
    ds, sites, train = global_set(args.study, load_study)
    dom = DomainTraining(rho, batch, rho, validation_days=args.validation_days, recipe=recipe)
    norm = Normalizer.fit(
        ds, train.slice, **normalizer_options("streamflow", ds, True, recipe.target_transform)
    )
    arrays, validation, label = validation_split(ds, norm, train, sites, dom)
    setup_s = time.perf_counter() - t0
    cap = args.minutes * 60.0
    loads: list[float] = []

    def on_check(p: CurvePoint) -> bool:
        loads.append(load_average())
        print(
            f"{args.runner}: update {p.update} train {p.seconds:.0f} s val {p.val_seconds:.0f} s "
            f"loss {p.train_loss:.4f} median val NSE {p.val_nse:.3f} load {loads[-1]:.2f}",
            file=sys.stderr,
            flush=True,
        )
        return p.seconds + p.val_seconds >= cap

    budget = Budget(
        mode="converge",
        max_updates=args.max_updates,
        min_updates=args.min_updates,
        patience=args.patience,
        min_delta=args.min_delta,
        eval_every=args.eval_every,
        metric="nse",
        smooth=args.smooth,
    )
    spec = TrainSpec(
        hidden=hidden, epochs=1, rho=rho, batch=batch, dropconnect=dropconnect, seed=args.seed, budget=budget,
        recipe=recipe, loss_last_n=recipe.loss_days or None,
    )  # fmt: skip
    res = train_model(arrays, spec, validation=validation, device="cpu", progress=False, on_check=on_check)
    # the kept weights' validation series, in flow units, for the seed ensemble the parent scores
    obs, pred = validation_series(res.state_dict, validation)
    np.savez(Path(args.out).with_suffix(".npz"), pred=pred, obs=obs)
    out = {
        "recipe": args.runner,
        "seed": args.seed,
        "hidden": hidden,
        "rho": rho,
        "batch": batch,
        "dropconnect": dropconnect,
        "settings": recipe.to_dict(),
        "n_sites": arrays.n_sites,
        "validation": label,
        "setup_s": setup_s,
        "threads": args.threads,
        "curve": [[p.update, p.seconds, p.val_seconds, p.train_loss, p.val_nse] for p in res.curve],
        "stop_reason": res.stop_reason,
        "best_update": res.best_update,
        "loads": loads,
        "minutes": args.minutes,
    }
    Path(args.out).write_text(json.dumps(out))


def global_set(study_path: str, load_study: Any) -> tuple[Any, list[str], Any]:
    """The study's sites dataset, its global streamflow set's sites, and the training period."""
    import xarray as xr

    study = load_study(study_path)
    work = Path(study.data_dir)
    plan = json.loads((work / "plans" / "streamflow.json").read_text())
    rows = [s for s in plan["sets"] if s["scenario"] == "global"]
    if not rows:
        raise SystemExit(f"no global streamflow set in {work / 'plans' / 'streamflow.json'}")
    ds = xr.load_dataset(work / "sites" / "streamflow.nc")
    return ds, [str(s) for s in rows[0]["site_ids"]], study.periods("streamflow").train


# --- the parent -------------------------------------------------------------------------------------


def best_by(curve: list[list[float]], seconds: float) -> float | None:
    """The best median validation NSE of the checks done within ``seconds`` of wall time."""
    vals = [p[4] for p in curve if p[1] + p[2] <= seconds]
    return max(vals) if vals else None


def report(results: list[dict[str, Any]], args: argparse.Namespace, load0: float, load1: float) -> None:
    from synergy_dagster.config import Budget
    from synergy_dagster.models.training import replay_converge

    longest = max(r["minutes"] for r in results)
    marks = [m for m in MARKS_MIN if m <= longest] or [longest]
    head = f"{'recipe':>26} {'seed':>4} {'H':>4} {'rho':>4} {'batch':>5} " + " ".join(
        f"{f'{m} min':>7}" for m in marks
    )
    print(head + f" {'best':>6} {'at upd':>7} {'updates':>7} {'train s':>7} {'val s':>6} {'s/upd':>6} "
          f"{'end':>10} {'old rule stops':>16} {'load':>5}")  # fmt: skip
    old = Budget(mode="converge", max_updates=args.max_updates, min_updates=300, patience=5, min_delta=0.01)
    for r in results:
        c = r["curve"]
        cells = []
        for m in marks:
            v = best_by(c, m * 60.0) if m <= r["minutes"] else None
            cells.append(f"{v:>7.3f}" if v is not None else f"{'-':>7}")
        last = c[-1]
        best = max(c, key=lambda p: p[4])
        i = replay_converge([p[4] for p in c], [int(p[0]) for p in c], old, "nse")
        stop = "no" if i is None else f"{int(c[i][0])} ({max(p[4] for p in c[: i + 1]):.2f})"
        load = sum(r["loads"]) / len(r["loads"]) if r["loads"] else float("nan")
        print(f"{r['recipe']:>26} {r['seed']:>4} {r['hidden']:>4} {r['rho']:>4} {r['batch']:>5} {' '.join(cells)} "
              f"{best[4]:>6.3f} {int(best[0]):>7} {int(last[0]):>7} {last[1]:>7.0f} {last[2]:>6.0f} "
              f"{last[1] / last[0]:>6.3f} {r['stop_reason']:>10} {stop:>16} {load:>5.2f}")  # fmt: skip
    caps = ", ".join(f"{r['recipe']} {r['minutes']:g}" for r in results)
    print(f"{results[0]['n_sites']} basins, validation {results[0]['validation']}, caps (min of wall time in "
          f"train_model) {caps}, {args.threads} torch thread(s) per run, {args.parallel} run(s) at a time, "
          f"seeds {args.seeds}, check every {args.eval_every} updates; stopping rule: smooth {args.smooth}, "
          f"patience {args.patience}, min_delta {args.min_delta}; 'old rule': smooth 1, patience 5, min_delta "
          f"0.01, min_updates 300 (update where it stops, best NSE by then); load average {load0:.2f} "
          f"before, {load1:.2f} after")  # fmt: skip
    print("curves (update:minutes:median validation NSE):")
    for r in results:
        pts = " ".join(f"{int(p[0])}:{(p[1] + p[2]) / 60:.1f}:{p[4]:.2f}" for p in r["curve"])
        print(f"  {r['recipe']} seed {r['seed']}: {pts}")


def ensembles(results: list[dict[str, Any]]) -> None:
    """Per recipe with several seeds: each seed's kept weights scored alone and their mean
    prediction (in flow units, the ensemble the evaluation's ``mean`` rows score) scored once."""
    from synergy_dagster.evaluation.metrics import nse

    print("seed ensembles (median validation NSE of the kept weights; ensemble = the seed-mean series):")
    for name in dict.fromkeys(r["recipe"] for r in results):
        runs = [r for r in results if r["recipe"] == name]
        if len(runs) < 2:
            continue
        obs = runs[0]["series"][0]
        singles = [float(np.nanmedian(nse(obs, r["series"][1]))) for r in runs]
        mean_pred = np.mean([r["series"][1] for r in runs], axis=0)
        ens = float(np.nanmedian(nse(obs, mean_pred)))
        wall = max(r["curve"][-1][1] + r["curve"][-1][2] for r in runs) / 60.0
        print(
            f"  {name}: seeds {[r['seed'] for r in runs]} alone {', '.join(f'{v:.3f}' for v in singles)} "
            f"(mean {np.mean(singles):.3f}); ensemble of {len(runs)}: {ens:.3f} "
            f"(+{ens - np.mean(singles):.3f}); longest run {wall:.1f} min in train_model"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "studies" / "real.yaml"))
    ap.add_argument("--recipes", default="paper,adam-nse-q", help="comma-separated names (see --list)")
    ap.add_argument("--list", action="store_true", help="print the candidate recipes and exit")
    ap.add_argument("--minutes", type=float, default=6.0, help="wall-time cap of each run in train_model")
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--validation-days", type=int, default=730, help="as the cpu profile's streamflow")
    ap.add_argument("--max-updates", type=int, default=100000)
    ap.add_argument("--min-updates", type=int, default=300)
    ap.add_argument("--patience", type=int, default=8)
    ap.add_argument("--min-delta", type=float, default=0.005)
    ap.add_argument("--smooth", type=int, default=8)
    ap.add_argument(
        "--seeds",
        default="0",
        help="comma-separated; each recipe trains once per seed and "
        "with several the seed ensemble's validation NSE is printed too",
    )
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)  # one runner's
    ap.add_argument("--runner", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("SYNERGY_REAL_DATA", str(ROOT.parent / "shared" / "data"))
    if args.list:
        for name, (h, rho, batch, settings) in CANDIDATES.items():
            print(f"{name}: hidden {h}, rho {rho}, batch {batch}, {settings or 'the paper recipe'}")
        return 0
    if args.runner:
        runner(args)
        return 0
    caps = {}
    for item in (n.strip() for n in args.recipes.split(",") if n.strip()):
        name, _, minutes = item.partition(":")
        caps[name] = float(minutes) if minutes else args.minutes
    names = list(caps)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        print(f"unknown recipes {unknown}; known: {sorted(CANDIDATES)}", file=sys.stderr)
        return 2
    load0 = load_average()
    print(f"recipes {caps} (minutes), {args.parallel} at a time, {args.threads} thread(s) "
          f"each, load average {load0:.2f}", flush=True)  # fmt: skip
    try:
        seeds = [int(k) for k in args.seeds.split(",") if k.strip()]
    except ValueError:
        print(f"--seeds: expected comma-separated integers, got {args.seeds!r}", file=sys.stderr)
        return 2
    results: list[dict[str, Any]] = []
    forward = ["--study", args.study, "--threads", str(args.threads),
               "--eval-every", str(args.eval_every), "--validation-days", str(args.validation_days),
               "--max-updates", str(args.max_updates), "--min-updates", str(args.min_updates),
               "--patience", str(args.patience), "--min-delta", str(args.min_delta), "--smooth",
               str(args.smooth)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="recipes_") as work:
        pending = [(name, seed) for name in names for seed in seeds]
        running: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        while pending or running:
            while pending and len(running) < args.parallel:
                name, seed = pending.pop(0)
                out = Path(work) / f"{name}-{seed}.json"
                cmd = [sys.executable, __file__, "--runner", name, "--out", str(out), "--minutes",
                       str(caps[name]), "--seed", str(seed), *forward]  # fmt: skip
                running.append((f"{name} seed {seed}", subprocess.Popen(cmd), out))
            time.sleep(2.0)
            for item in list(running):
                label, proc, out = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                if proc.returncode != 0 or not out.exists():
                    print(f"{label}: the run failed (exit {proc.returncode})", file=sys.stderr)
                    continue
                result = json.loads(out.read_text())
                with np.load(out.with_suffix(".npz")) as series:
                    result["series"] = (series["obs"], series["pred"])
                results.append(result)
    if not results:
        return 1
    results.sort(key=lambda r: (names.index(r["recipe"]), r["seed"]))
    report(results, args, load0, load_average())
    if len(seeds) > 1:
        ensembles(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
