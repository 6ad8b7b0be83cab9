"""The whole real study on this machine, timed: ``python -m synergy_dagster.cli study`` on a study
file (default ``studies/real.yaml``: both domains, every scenario, each model to its plateau under
the profile's ``converge`` budget) in a fresh folder with its own ``DAGSTER_HOME``.

Usage: ``SYNERGY_REAL_DATA=../shared/data python bench/bench_real_study.py [--config FILE]
[--profile cpu] [--bank-size N] [--precision bf16] [--seeds 0,1,2] [--keep DIR]``. ``--precision`` and
``--seeds`` run a copy of the study file (written beside it, removed afterwards) whose every domain's
recipe has that precision / whose models are trained once per seed. ``--keep`` on a folder of an
earlier run continues it: models already trained (same data, configuration and seed) are reused, so
``--seeds 0,1,2`` after a one-seed run trains seeds 1 and 2 only.

Prints the wall time, the share of it spent in the training runs (the bank runs' durations from the
Dagster instance), the models trained, how each stopped, and each global model's best validation
NSE (from the ``models`` table); the machine's load before and after; the headline last.
Target (issue 14): <= 20 minutes wall on 2 cores.
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
sys.path.insert(0, str(ROOT))
from synergy_dagster.presets import preset_names  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "studies" / "real.yaml"))
    ap.add_argument("--profile", default="cpu", choices=preset_names())
    ap.add_argument("--bank-size", type=int, help="partitions per bank run (default: the CLI's)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], help="every domain's recipe precision")
    ap.add_argument("--seeds", help="comma-separated seeds of every model (default: the study file's)")
    ap.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder, removed)")
    args = ap.parse_args(argv)
    if not os.environ.get("SYNERGY_REAL_DATA"):
        print("set SYNERGY_REAL_DATA to the real data folder (e.g. ../shared/data)", file=sys.stderr)
        return 2
    work = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="synergy_real_"))
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNERGY_") or k == "SYNERGY_REAL_DATA"}
    env.update(DAGSTER_HOME=str(home), PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    config = Path(args.config).resolve()
    try:
        seeds = [int(k) for k in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        print(f"--seeds: expected comma-separated integers, got {args.seeds!r}", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "synergy_dagster.cli", "study", "--config", str(config)]
    cmd += ["--profile", args.profile, "--data-dir", str(work / "data")]
    cmd += ["--bank-size", str(args.bank_size)] if args.bank_size else []
    for item in _overrides(config, args.precision, seeds):
        cmd += ["--set", item]
    load0 = os.getloadavg()
    print(f"cpus {os.cpu_count()}, load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    print("running:", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=work, env=env, text=True, check=False)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if res.returncode != 0:
        print(f"study failed with exit code {res.returncode} after {wall:.0f} s (folder {work})")
        return res.returncode
    train_s = _training_seconds(home, since=time.time() - wall)
    models = _models(work / "data" / "synergy.duckdb")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(models["table"])
    print(f"load average after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; peak RSS {peak_mb:.0f} MB")
    print(
        f"HEADLINE: whole real study ({Path(args.config).name}, {args.profile} profile"
        + (f", {args.precision}" if args.precision else "")
        + (f", seeds {args.seeds}" if args.seeds else "")
        + f") in {wall:.0f} s "
        f"({wall / 60:.1f} min; target <= 20 min) on {os.cpu_count()} cores; training runs "
        f"{train_s:.0f} s ({train_s / wall:.0%} of the wall time); {models['n']} models; global "
        f"best validation NSE {models['global']} (1-min load {load0[0]:.1f} before, {load1[0]:.1f} after)"
    )
    return 0


def _overrides(config: Path, precision: str | None, seeds: list[int] | None) -> list[str]:
    """The study overrides (``--set``) giving every domain's recipe ``precision`` and every model
    ``seeds`` (each when given)."""
    import yaml

    out = [f"seeds={seeds}"] if seeds else []
    if precision:
        domains = (yaml.safe_load(config.read_text()) or {}).get("domains") or {}
        out += [f"domains.{d}.recipe.precision={precision}" for d in domains]
    return out


def _training_seconds(home: Path, since: float) -> float:
    """Summed wall time of this run's training runs (``train_<domain>_job``, started after the
    ``since`` epoch second) on the study's instance (a kept folder also holds earlier ones)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        runs = [r for r in instance.get_runs() if r.job_name.startswith("train_")]
        stats = [instance.get_run_stats(r.run_id) for r in runs]
        return float(
            sum((s.end_time or 0) - (s.start_time or 0) for s in stats if (s.start_time or 0) >= since)
        )
    finally:
        instance.dispose()


def _models(db: Path) -> dict[str, object]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        table = con.execute(
            "SELECT domain, stop_reason, count(*) AS n, median(n_iterations) AS median_updates, "
            "median(best_val_nse) AS median_best_val_nse FROM models GROUP BY ALL ORDER BY ALL"
        ).df()
        glob = con.execute(
            "SELECT domain, best_val_nse, n_iterations, stop_reason FROM models "
            "WHERE scenario = 'global' ORDER BY domain, seed"
        ).fetchall()
    return {
        "table": table.to_string(index=False),
        "n": int(table["n"].sum()),
        "global": "; ".join(f"{d} {v:.3f} ({u} updates, {r})" for d, v, u, r in glob),
    }


if __name__ == "__main__":
    sys.exit(main())
