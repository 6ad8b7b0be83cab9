"""What the soil-moisture validation split does to the answer: the ``cpu`` profile's early stopping
on the last 61 days of a one-year training period, against the whole year trained for the same
number of updates, on the virtual CONUS.

Usage: ``python bench/bench_validation_split.py [--pixels 400] [--max-updates 1500] [--keep DIR]``.

The ``cpu`` soil-moisture models train on 2015-04-01..2016-01-30 and stop early on the held-out
2016-01-31..2016-03-31 (two late-winter months never trained on; issue 24, item 7). Run ``held_out``
is that setting; run ``full_year`` trains on the whole year (``validation_days: 0``) for a fixed
number of updates, the median number the ``held_out`` models stopped at, so the two differ in the
held-out months (and early stopping), not in training length. Both runs use the same virtual CONUS
(seeded) and the same seed. Printed: per sub-region and ``All``, the global and local median RMSE
and correlation of each run, the winner (``*`` where Wilcoxon p < 0.05), and how many regions
change winner; the headline last. Each run is the CLI in a fresh folder (``DAGSTER_HOME`` and
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


def run_study(work: Path, overrides: list[str]) -> Path:
    """The virtual study's soil-moisture domain through the CLI in ``work``; its data folder."""
    (work / "dagster_home").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNERGY_")}
    env.update(
        DAGSTER_HOME=str(work / "dagster_home"),
        SYNERGY_DATA_DIR=str(work / "data"),
        SYNERGY_STUDY="virtual",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    cmd = [sys.executable, "-m", "synergy_dagster.cli", "study", "--domains", "soil_moisture"]
    for o in overrides:
        cmd += ["--set", o]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"study failed in {work}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    print(f"  {work.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return work / "data"


def read(data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The global-vs-local significance rows and the models of one run."""
    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        sig = con.execute(
            "SELECT region, metric, median_a AS g, median_b AS l, p_value FROM significance "
            "WHERE domain = 'soil_moisture' AND comparison = 'global vs local' AND seed = 'mean'"
        ).df()
        models = con.execute(
            "SELECT set_key, n_iterations, best_update, stop_reason FROM models WHERE domain = 'soil_moisture'"
        ).df()
    return sig[sig["metric"].isin(METRICS)], models


def winner(row: pd.Series) -> str:
    better_global = (row["g"] > row["l"]) == HIGHER_IS_BETTER[str(row["metric"])]
    side = "global" if row["g"] != row["l"] and better_global else "local" if row["g"] != row["l"] else "tie"
    return side + ("*" if row["p_value"] < 0.05 else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=400, help="virtual pixels (default 400)")
    ap.add_argument("--max-updates", type=int, default=1500, help="cap of the early-stopped run")
    ap.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder)")
    args = ap.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="synergy_valsplit_"))
    common = [
        "profile=cpu",
        f"virtual.pixels={args.pixels}",
        "virtual.basins=20",
        "thresholds.min_sites_subregion=10",
        "thresholds.min_sites_roi=10",
    ]
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; folder {work}", flush=True)
    held = run_study(work / "held_out", [*common, f"budget.max_updates={args.max_updates}"])
    sig_h, models_h = read(held)
    updates = int(np.median(models_h["best_update"].fillna(models_h["n_iterations"])))
    full = run_study(
        work / "full_year",
        [
            *common,
            "budget.mode=equal_updates",
            f"budget.updates={updates}",
            "domains.soil_moisture.training.validation_days=0",
        ],
    )
    sig_f, models_f = read(full)
    print(
        f"\nheld_out: {len(models_h)} models, updates at the kept weights median {updates} "
        f"(stop reasons {models_h['stop_reason'].value_counts().to_dict()}); "
        f"full_year: {len(models_f)} models, {int(models_f['n_iterations'].median())} updates each"
    )
    both = sig_h.merge(sig_f, on=["region", "metric"], suffixes=("_h", "_f"))
    lines, changed = [], {}
    for metric in METRICS:
        m = both[both["metric"] == metric]
        for _, r in m.sort_values("region", key=lambda s: s.map(lambda x: (x == "All", x))).iterrows():
            wh = winner(
                pd.Series({"g": r["g_h"], "l": r["l_h"], "p_value": r["p_value_h"], "metric": metric})
            )
            wf = winner(
                pd.Series({"g": r["g_f"], "l": r["l_f"], "p_value": r["p_value_f"], "metric": metric})
            )
            if r["region"] != "All":
                changed[metric] = changed.get(metric, 0) + int(wh.rstrip("*") != wf.rstrip("*"))
            lines.append(
                f"{metric:5s} {r['region']:4s} held_out g {r['g_h']:.4f} l {r['l_h']:.4f} {wh:8s} | "
                f"full_year g {r['g_f']:.4f} l {r['l_f']:.4f} {wf:8s}"
            )
    print("\n".join(lines))
    n_regions = int((sig_h["region"] != "All").sum() // len(METRICS))
    all_h = sig_h[(sig_h["region"] == "All") & (sig_h["metric"] == "rmse")].iloc[0]
    all_f = sig_f[(sig_f["region"] == "All") & (sig_f["metric"] == "rmse")].iloc[0]
    print(
        f"\nheadline: winner changes in {changed.get('rmse', 0)}/{n_regions} regions (rmse), "
        f"{changed.get('corr', 0)}/{n_regions} (corr); All median rmse global/local "
        f"held_out {all_h['g']:.4f}/{all_h['l']:.4f}, full_year {all_f['g']:.4f}/{all_f['l']:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
