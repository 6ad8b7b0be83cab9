"""How many models a study plans, by kind, without training any: the study's ``prepare_job``
(sources -> regions -> plans) in a fresh folder, then each domain's plan counted.

Usage: ``SYNERGY_REAL_DATA=../shared/data python bench/bench_plan_size.py --config
studies/real_beyond.yaml [--set KEY=VALUE ...] [--seconds soil_moisture=19,streamflow=109]
[--keep DIR [--counted]]`` (``--counted``: count the plans a kept folder already holds).

Printed per domain: the models trained (distinct training sets times seeds), split into the
paper's experiments, the schemes' own local sets, the size-matched null draws
(``statistics.null_draws`` per scheme) and the synergy-curve sets, with their mean sites; and, with
``--seconds`` (seconds per model of each domain, measured elsewhere: docs/results.md), the
estimated training time of each kind.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def kind_of(key: str) -> str:
    """Which part of the study a training set belongs to, from its partition key."""
    from synergy_dagster.experiments.plan import parse_set_key
    from synergy_dagster.experiments.synergy import parse_curve_scenario
    from synergy_dagster.regions.schemes import null_of

    scenario, _ = parse_set_key(key)
    if parse_curve_scenario(scenario) is not None:
        return "synergy curves"
    if "@" in scenario:
        scheme = scenario.partition("@")[2]
        return "null draws" if null_of(scheme) is not None else "scheme regions"
    return "paper experiments"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="the study file")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seconds", default="", help="seconds per model by domain: d=s,d=s")
    ap.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder)")
    ap.add_argument(
        "--counted", action="store_true", help="count the plans already in --keep (no prepare_job)"
    )
    args = ap.parse_args(argv)
    seconds = {d: float(s) for d, _, s in (p.partition("=") for p in args.seconds.split(",") if p)}
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="synergy_plan_"))
    os.environ["DAGSTER_HOME"] = str(work / "dagster_home")
    (work / "dagster_home").mkdir(parents=True, exist_ok=True)

    import dagster as dg

    from synergy_dagster.defs.definitions import defs
    from synergy_dagster.defs.resources import StudyResource
    from synergy_dagster.models.fit import load_plan

    config = {
        "study_file": str(Path(args.config).resolve()),
        "data_dir": str((work / "data").resolve()),
        "overrides": args.overrides,
    }
    study = StudyResource(**config)
    if not args.counted:
        t0 = time.perf_counter()
        defs.resolve_job_def("prepare_job").execute_in_process(
            run_config={"resources": {"study": {"config": config}}}, instance=dg.DagsterInstance.get()
        )
        print(f"prepare_job {time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.2f}")
    seeds = len(study.spec.seeds)
    print(f"seeds {seeds}; null draws per scheme {study.spec.statistics.null_draws}")
    for domain in study.domains():
        plan = load_plan(study.layout, domain)
        trained = plan.sets[plan.sets["key"] == plan.sets["trained_as"]].copy()
        trained["kind"] = trained["key"].map(kind_of)
        trained["n_sites"] = trained["site_ids"].map(len)
        table = trained.groupby("kind").agg(sets=("key", "size"), mean_sites=("n_sites", "mean"))
        table["models"] = table["sets"] * seeds
        if domain in seconds:
            table["est_hours"] = table["models"] * seconds[domain] / 3600.0
        total = table.sum(numeric_only=True)
        print(f"\n{domain}: {int(total['models'])} models")
        print(table.to_string(float_format=lambda v: f"{v:.1f}"))
        if domain in seconds:
            print(f"estimated training: {total['est_hours']:.1f} h at {seconds[domain]:.0f} s per model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
