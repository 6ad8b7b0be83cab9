"""``python -m synergy_dagster.cli study``: the whole study in one command.

Runs, on the Dagster instance in ``$DAGSTER_HOME`` (so every run shows in the UI): the prepare job
(sources -> regions -> plans), one training run per planned partition of each domain (a model
already trained on the same data and config is reused, not retrained), and the evaluation job.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

from synergy_dagster.config import DOMAINS
from synergy_dagster.env import env_int, env_str
from synergy_dagster.errors import SynergyError


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m synergy_dagster.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    st = sub.add_parser("study", help="run the whole study (sources to summary)")
    st.add_argument(
        "--config",
        metavar="FILE",
        help="the study file (YAML; default $SYNERGY_STUDY, else the shipped study of --source)",
    )
    st.add_argument(
        "--source",
        choices=["virtual", "real"],
        help="without --config: the shipped study studies/virtual.yaml (default) or studies/real.yaml",
    )
    st.add_argument("--real-data", help="folder with the real data layout (default $SYNERGY_REAL_DATA)")
    st.add_argument(
        "--profile", choices=["demo", "cpu", "paper"], help="training profile (default: the study file's)"
    )
    st.add_argument("--data-dir", help="working folder (default: the study file's data_dir)")
    st.add_argument("--domains", help=f"comma-separated domains (default all: {','.join(DOMAINS)})")
    st.add_argument(
        "--budget",
        choices=["paper", "equal_updates", "equal_passes", "converge", "wall_clock"],
        help="training budget mode (default: the profile's; demo and cpu: converge)",
    )
    st.add_argument(
        "--sensitivity",
        action="store_true",
        help="also run budget_sensitivity: global vs local under $SYNERGY_SENSITIVITY_MODES",
    )
    st.add_argument(
        "--workers",
        type=int,
        help="training partitions run at once, each in its own process (default $SYNERGY_STUDY_WORKERS, "
        "else one per core up to 4 for one-thread networks (H < 128), 1 otherwise)",
    )
    return ap.parse_args(argv)


def _workers(requested: int | None, hidden: int, persistent: bool) -> int:
    """Parallel training processes: small networks train on one thread each, so one process per
    core uses the machine; big ones already use every core. An in-memory instance (no
    DAGSTER_HOME) cannot be shared between processes."""
    n = requested or env_int("SYNERGY_STUDY_WORKERS", 0)
    if n < 0:
        raise SystemExit(f"--workers must be >= 1, got {n}")
    if not n:
        n = min(4, os.cpu_count() or 1) if hidden < 128 else 1
    return n if persistent else 1


def _resource_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``sources`` and ``study`` resource config the flags set; what no flag sets is left to
    the resources' environment defaults."""
    sources: dict[str, Any] = {}
    if args.config:
        sources["study_file"] = str(Path(args.config).resolve())
    if args.data_dir:
        sources["data_dir"] = str(Path(args.data_dir).resolve())
    if args.source:
        sources["kind"] = args.source
    if args.real_data:
        sources["real_data"] = str(Path(args.real_data).resolve())
    study: dict[str, Any] = {}
    if args.profile:
        study["profile"] = args.profile
    if args.domains:
        study["domains"] = [d.strip() for d in args.domains.split(",") if d.strip()]
    if args.budget:
        study["budget"] = args.budget
    return sources, study


def _run_config(sources: dict[str, Any], study: dict[str, Any]) -> dict[str, Any]:
    return {"resources": {"sources": {"config": sources}, "study": {"config": study}}}


def _train_partition(job_name: str, key: str, run_config: dict[str, Any]) -> tuple[str, str | None, float]:
    """Worker process: one training partition on the shared instance; (key, error or None, seconds)."""
    import dagster as dg

    from synergy_dagster.defs.definitions import defs

    t0 = time.perf_counter()
    result = defs.resolve_job_def(job_name).execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.get(), partition_key=key, raise_on_error=False
    )
    if result.success:
        return key, None, time.perf_counter() - t0
    failures = [_root_cause(e) for e in result.all_events if e.is_failure]
    return key, "\n".join(failures[-3:]), time.perf_counter() - t0


def _root_cause(event: object) -> str:
    """The innermost error message of a failed step (what the user must fix), else the event's."""
    if not getattr(event, "is_step_failure", False):
        return str(getattr(event, "message", event))
    err = event.step_failure_data.error  # type: ignore[attr-defined]
    while err is not None and getattr(err, "cause", None) is not None:
        err = err.cause
    return err.message.strip() if err is not None else str(getattr(event, "message", event))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # The flags go to every run as resource config; the CLI builds the same resources from the same
    # values (environment variables fill what no flag sets, for the runs and for the CLI alike).
    source_config, study_config = _resource_config(args)

    import dagster as dg

    from synergy_dagster.defs.definitions import defs
    from synergy_dagster.defs.resources import SourceConfig, StudyConfig

    sources = SourceConfig(**source_config)
    study = StudyConfig(**study_config)
    # The folder, absolute, is always passed: every run and worker process then writes where the
    # CLI reports, whatever its working directory.
    run_config = _run_config({**source_config, "data_dir": str(sources.work_dir)}, study_config)
    # A bad study file or --domains fails here, before any run, with the key it names.
    try:
        study_file = sources.study()
        domains = study.resolved_domains(study_file)
    except SynergyError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"study {study_file.name!r} ({sources.study_path()}): {', '.join(domains)}", flush=True)
    persistent = bool(env_str("DAGSTER_HOME", ""))
    instance = dg.DagsterInstance.get() if persistent else dg.DagsterInstance.ephemeral()
    t0 = time.perf_counter()

    def run(job_name: str, partition_key: str | None = None) -> None:
        result = defs.resolve_job_def(job_name).execute_in_process(
            run_config=run_config, instance=instance, partition_key=partition_key, raise_on_error=False
        )
        if not result.success:
            failures = [_root_cause(e) for e in result.all_events if e.is_failure]
            raise SystemExit(
                f"{job_name}{f' [{partition_key}]' if partition_key else ''} failed:\n"
                + "\n".join(failures[-3:])
            )

    print("1/3 sources -> regions -> plans", flush=True)
    run("prepare_job")
    workers = _workers(args.workers, study.resolved_profile(study_file).hidden, persistent)
    jobs = [(f"train_{d}_job", key) for d in domains for key in instance.get_dynamic_partitions(f"{d}_sets")]
    for domain in domains:
        n = sum(1 for job, _ in jobs if job == f"train_{domain}_job")
        print(f"2/3 training {domain}: {n} partitions", flush=True)
    if workers == 1:
        for i, (job, key) in enumerate(jobs, 1):
            print(
                f"    [{i}/{len(jobs)}] {job.removeprefix('train_').removesuffix('_job')} {key}", flush=True
            )
            run(job, key)
    else:
        print(f"    {workers} partitions at a time, each in its own process", flush=True)
        # spawn, not fork: a forked child of a process that has started torch's threads can hang.
        # One pool for every domain, so each worker imports the definitions once.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_train_partition, job, key, run_config): job for job, key in jobs}
            for i, fut in enumerate(concurrent.futures.as_completed(futures), 1):
                key, error, seconds = fut.result()
                job = futures[fut]
                domain = job.removeprefix("train_").removesuffix("_job")
                print(f"    [{i}/{len(jobs)}] {domain} {key} ({seconds:.0f} s)", flush=True)
                if error is not None:
                    for other in futures:
                        other.cancel()
                    raise SystemExit(f"{job} [{key}] failed:\n{error}")
    print("3/3 evaluation: metrics, significance, figures, summary", flush=True)
    run("evaluation_job")
    if args.sensitivity:
        print("    budget sensitivity: global vs local under several training budgets", flush=True)
        run("budget_sensitivity_job")
    layout = sources.layout
    print(f"\nDone in {time.perf_counter() - t0:.0f} s.")
    print(f"  tables : {layout.site_metrics()}, {layout.significance()} (and DuckDB {layout.database()})")
    print(f"  figures: {layout.figures_dir()}")
    print(f"  summary: {layout.summary()}")
    print(f"  paper vs this run: {layout.reproduction_report()}")
    if args.sensitivity:
        print(f"  budget sensitivity: {layout.sensitivity_dir()} (DuckDB table budget_sensitivity)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
