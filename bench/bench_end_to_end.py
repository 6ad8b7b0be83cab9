"""End-to-end benchmark: the embedded demo study (``python -m synergy_dagster.cli study``), wall time
and peak memory of the whole process tree.

Usage: ``python bench/bench_end_to_end.py [--profile demo] [--keep DIR]``. The study runs in a fresh
temporary folder with its own ``DAGSTER_HOME`` and ``SYNERGY_DATA_DIR`` (nothing of the checkout's
``data/`` is reused, so every model is trained). Peak memory is ``ru_maxrss`` of the children (the
largest single process of the tree, the study's own). The load average before and after is printed
because other work on the machine inflates the wall time. The headline is printed last.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo", choices=["demo", "cpu", "paper"])
    ap.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder, removed)")
    ap.add_argument("--budget", help="training budget mode (default: the profile's; demo: converge)")
    ap.add_argument("--bank-size", type=int, help="partitions per bank run (default: the CLI's, 64)")
    args = ap.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="synergy_e2e_"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "dagster_home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNERGY_")}
    env.update(
        DAGSTER_HOME=str(work / "dagster_home"),
        SYNERGY_DATA_DIR=str(work / "data"),
        SYNERGY_OVERRIDES=f"profile={args.profile}",
        SYNERGY_STUDY="virtual",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    load0 = os.getloadavg()
    print(
        f"cpus {os.cpu_count()}, load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True
    )
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "synergy_dagster.cli", "study", "--profile", args.profile]
    cmd += ["--budget", args.budget] if args.budget else []
    cmd += ["--bank-size", str(args.bank_size)] if args.bank_size else []
    res = subprocess.run(
        cmd,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # KiB on Linux
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    load1 = os.getloadavg()
    print(res.stdout[-2000:])
    if res.returncode != 0:
        print(res.stderr[-4000:], file=sys.stderr)
        print(f"study failed with exit code {res.returncode} after {wall:.0f} s (folder {work})")
        return res.returncode
    stops = _stops(work / "data" / "synergy.duckdb")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; "
          f"CPU time of the tree {cpu.ru_utime + cpu.ru_stime:.0f} s")  # fmt: skip
    print(stops["table"])
    print(
        f"HEADLINE: demo study end to end ({args.profile} profile, budget {stops['budget']}, virtual CONUS) "
        f"in {wall:.0f} s ({wall / 60:.1f} min; target < 15 min) with peak RSS {peak_mb:.0f} MB on "
        f"{os.cpu_count()} cores; {stops['n']} models, {stops['converged']:.0%} stopped by convergence, "
        f"median {stops['median_updates']:.0f} updates (1-min load average {load0[0]:.1f} before, "
        f"{load1[0]:.1f} after)"
    )
    return 0


def _stops(db: Path) -> dict[str, object]:
    """How the study's models stopped (budget mode, share converged, updates per scenario)."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        df = con.execute(
            "SELECT domain, scenario, budget, stop_reason, n_iterations, train_seconds FROM models"
        ).df()
    table = (
        df.groupby(["domain", "scenario", "stop_reason"])
        .agg(models=("n_iterations", "size"), median_updates=("n_iterations", "median"),
             median_train_s=("train_seconds", "median"))
        .reset_index()
        .to_string(index=False)
    )  # fmt: skip
    return {
        "table": table,
        "budget": ",".join(sorted(df["budget"].unique())),
        "n": len(df),
        "converged": float((df["stop_reason"] == "converged").mean()),
        "median_updates": float(df["n_iterations"].median()),
    }


if __name__ == "__main__":
    sys.exit(main())
