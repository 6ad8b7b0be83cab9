"""What the soil-moisture validation split does to the answer: the ``cpu`` profile's early stopping
on the last 61 days of a one-year training period (``tail``), on 61 days held out as evenly spaced
blocks over the whole year (``blocks``), and the whole year trained for a fixed number of updates.

Usage: ``python bench/bench_validation_split.py [--study virtual|PATH] [--pixels 400]
[--max-updates N] [--keep DIR [--done]]``. ``--study studies/real.yaml`` runs the real SMAP pixels
(set ``SYNERGY_REAL_DATA``); the default is the virtual CONUS. ``--done`` reads the runs a kept
folder already finished instead of running them again.

The ``cpu`` soil-moisture models train on 2015-04-01..2016-03-31. Run ``held_out`` is the split
``tail``: it trains on 2015-04-01..2016-01-30 and stops early on the held-out 2016-01-31..2016-03-31
(two late-winter months never trained on; issue 24, item 7). Run ``blocks`` holds out the same 61
days as 12 blocks of 5-6 days, one a month (``training.validation.split: blocks``), and stops early
on them. Run ``full_year`` trains on the whole year (``validation_days: 0``) for a fixed number of
updates, the median number the ``held_out`` models stopped at, so it differs from ``held_out`` in
the held-out months (and early stopping), not in training length. Every run uses the same data and
seed. Printed per run: per sub-region and ``All``, the global and local median RMSE and
correlation, the winner (``*`` where Wilcoxon p < 0.05), and how many regions change winner
against ``held_out``; the headline last. Each run is the CLI in a fresh folder (``DAGSTER_HOME`` and
data of its own), so nothing is reused between them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("rmse", "corr")
HIGHER_IS_BETTER = {"rmse": False, "corr": True}


def run_study(work: Path, study: str, overrides: list[str], done: bool = False) -> Path:
    """The study's soil-moisture domain through the CLI in ``work``; its data folder. With
    ``done``, a folder whose run already finished is read as it is (its command is printed)."""
    if done and (work / "data" / "synergy.duckdb").exists():
        print(f"  {work.name}: read as run before (--set {' --set '.join(overrides)})", flush=True)
        return work / "data"
    (work / "dagster_home").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNERGY_") or k == "SYNERGY_REAL_DATA"}
    env.update(
        DAGSTER_HOME=str(work / "dagster_home"),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    cmd = [sys.executable, "-m", "synergy_dagster.cli", "study", "--domains", "soil_moisture"]
    cmd += ["--data-dir", str(work / "data")]
    if study == "virtual":
        env["SYNERGY_STUDY"] = "virtual"
    else:
        cmd += ["--config", str(Path(study).resolve())]
    for o in overrides:
        cmd += ["--set", o]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"study failed in {work}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    print(f"  {work.name}: {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.2f}", flush=True)
    return work / "data"


def read(data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The global-vs-local significance rows (of the seed label the study judges) and the models of
    one run."""
    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        sig = con.execute(
            "SELECT region, metric, seed, median_a AS g, median_b AS l, p_value FROM significance "
            "WHERE domain = 'soil_moisture' AND comparison = 'global vs local'"
        ).df()
        models = con.execute(
            "SELECT set_key, n_iterations, best_update, stop_reason FROM models WHERE domain = 'soil_moisture'"
        ).df()
    label = next(s for s in ("mean", "seed_mean", "0") if (sig["seed"].astype(str) == s).any())
    sig = sig[sig["seed"].astype(str) == label].drop(columns="seed")
    return sig[sig["metric"].isin(METRICS)], models


def winners(sig: pd.DataFrame) -> pd.DataFrame:
    """``sig`` with each row's winner."""
    return sig.assign(winner=[winner(r) for _, r in sig.iterrows()])


def winner(row: pd.Series) -> str:
    better_global = (row["g"] > row["l"]) == HIGHER_IS_BETTER[str(row["metric"])]
    side = "global" if row["g"] != row["l"] and better_global else "local" if row["g"] != row["l"] else "tie"
    return side + ("*" if row["p_value"] < 0.05 else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--study", default="virtual", help="virtual (default) or a study file (studies/real.yaml)"
    )
    ap.add_argument("--pixels", type=int, default=400, help="virtual pixels (default 400)")
    ap.add_argument(
        "--max-updates",
        type=int,
        help="cap of the early-stopped runs (default: 1500 virtual, the preset's real)",
    )
    ap.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder)")
    ap.add_argument("--done", action="store_true", help="read the runs already finished in --keep")
    args = ap.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="synergy_valsplit_"))
    common = ["profile=cpu"]
    if args.study == "virtual":
        common += [
            f"virtual.pixels={args.pixels}",
            "virtual.basins=20",
            "thresholds.min_sites_subregion=10",
            "thresholds.min_sites_roi=10",
        ]
    cap = args.max_updates or (1500 if args.study == "virtual" else None)
    stopped = [*common, *([f"budget.max_updates={cap}"] if cap else [])]
    print(
        f"study {args.study}; cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; folder {work}", flush=True
    )
    tail = "domains.soil_moisture.training.validation.split=tail"
    held = run_study(work / "held_out", args.study, [*stopped, tail], args.done)
    sig_h, models_h = read(held)
    updates = int(np.median(models_h["best_update"].fillna(models_h["n_iterations"])))
    blocks = run_study(
        work / "blocks",
        args.study,
        [*stopped, "domains.soil_moisture.training.validation.split=blocks"],
        args.done,
    )
    sig_b, models_b = read(blocks)
    full = run_study(
        work / "full_year",
        args.study,
        [
            *common,
            "budget.mode=equal_updates",
            f"budget.updates={updates}",
            "domains.soil_moisture.training.validation_days=0",
            tail,
        ],
        args.done,
    )
    sig_f, models_f = read(full)
    if (models_f["n_iterations"] != updates).any():  # a run read as it was must be the one asked for
        raise SystemExit(
            f"full_year models ran {sorted(set(models_f['n_iterations']))} updates, not {updates}"
        )
    for name, models in (("held_out", models_h), ("blocks", models_b)):
        kept = models["best_update"].fillna(models["n_iterations"])
        print(
            f"\n{name}: {len(models)} models, updates at the kept weights median {int(np.median(kept))} "
            f"(range {int(kept.min())}-{int(kept.max())}; stop reasons "
            f"{models['stop_reason'].value_counts().to_dict()})"
        )
    print(f"full_year: {len(models_f)} models, {int(models_f['n_iterations'].median())} updates each")
    runs = {"held_out": winners(sig_h), "blocks": winners(sig_b), "full_year": winners(sig_f)}
    both = runs["held_out"]
    for name in ("blocks", "full_year"):
        both = both.merge(runs[name], on=["region", "metric"], suffixes=("", f"_{name}"))
    both = both.rename(columns={"g": "g_held_out", "l": "l_held_out", "winner": "winner_held_out"})
    lines, changed = [], {}
    order = both["region"].map(lambda x: (x == "All", x))
    for _, r in both.assign(_o=order).sort_values(["metric", "_o"]).iterrows():
        cells = []
        for name in runs:
            w = r[f"winner_{name}"]
            cells.append(f"{name} g {r[f'g_{name}']:.4f} l {r[f'l_{name}']:.4f} {w:8s}")
            if r["region"] != "All" and name != "held_out":
                key = (name, str(r["metric"]))
                changed[key] = changed.get(key, 0) + int(w.rstrip("*") != r["winner_held_out"].rstrip("*"))
        lines.append(f"{r['metric']:5s} {r['region']:4s} " + " | ".join(cells))
    print("\n".join(lines))
    n_regions = int((sig_h["region"] != "All").sum() // len(METRICS))
    for name in ("blocks", "full_year"):
        print(
            f"{name} vs held_out: winner changes in {changed.get((name, 'rmse'), 0)}/{n_regions} regions "
            f"(rmse), {changed.get((name, 'corr'), 0)}/{n_regions} (corr)"
        )
    heads = []
    for metric in METRICS:
        row = both[(both["region"] == "All") & (both["metric"] == metric)].iloc[0]
        heads.append(
            f"All {metric} global/local "
            + ", ".join(f"{n} {row[f'g_{n}']:.4f}/{row[f'l_{n}']:.4f} {row[f'winner_{n}']}" for n in runs)
        )
    print("\nheadline: " + "; ".join(heads) + f"; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
