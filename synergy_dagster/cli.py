"""``python -m synergy_dagster.cli study``: the whole study in one command.

Runs, on the Dagster instance in ``$DAGSTER_HOME`` (so every run shows in the UI): the prepare job
(sources -> regions -> plans), per domain one bank run over its planned training partitions (at
most ``--bank-size`` partitions per run; the models of a run train at once in one process; a model
already trained on the same data and config is reused, not retrained), and the evaluation job. The
CLI keeps no process pool of its own: what runs where is Dagster's (executor, run launcher).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from synergy_dagster.config import BUDGET_MODES, DOMAINS
from synergy_dagster.env import env_int, env_str
from synergy_dagster.errors import SynergyError
from synergy_dagster.overrides import OVERRIDES_VARIABLE, parse_override, split_overrides
from synergy_dagster.presets import preset_names


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
    st.add_argument("--profile", choices=preset_names(), help="the preset (the same as --set profile=NAME)")
    st.add_argument("--data-dir", help="working folder (default: the study file's data_dir)")
    st.add_argument(
        "--domains",
        help=f"comma-separated domains (default all: {','.join(DOMAINS)}; the same as --set run.domains=[...])",
    )
    st.add_argument(
        "--budget", choices=BUDGET_MODES, help="training budget mode (the same as --set budget.mode=MODE)"
    )
    st.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a study key, e.g. --set budget.max_updates=800 --set seeds=[0,1] (after "
        f"${OVERRIDES_VARIABLE}; repeatable)",
    )
    st.add_argument(
        "--sensitivity",
        action="store_true",
        help="also run budget_sensitivity: global vs local under the study's run.sensitivity_modes",
    )
    st.add_argument(
        "--bank-size",
        type=int,
        help="training partitions per bank run, trained at once in one process (default "
        "$SYNERGY_BANK_SIZE, else 64: a domain's partitions in one run)",
    )
    return ap.parse_args(argv)


# The tags a backfill puts on a run over a partition range (dagster.core.storage.tags; no public name).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _bank_size(requested: int | None) -> int:
    """Partitions per bank run: the flag, else ``SYNERGY_BANK_SIZE`` (the model assets' backfill
    policy reads the same variable), else 64."""
    n = requested if requested is not None else env_int("SYNERGY_BANK_SIZE", 64)
    if n < 1:
        raise SystemExit(f"--bank-size must be >= 1, got {n}")
    return n


def _banks(keys: list[str], size: int) -> list[list[str]]:
    """Consecutive chunks of ``size`` partition keys (a run's partitions form a key range)."""
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def _resource_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ``study`` resource config the flags set; what no flag sets is left to the resource's
    environment defaults. The shortcut flags become overrides, after ``SYNERGY_OVERRIDES``."""
    config: dict[str, Any] = {}
    if args.config:
        config["study_file"] = str(Path(args.config).resolve())
    elif args.source:
        config["study_file"] = args.source
    if args.data_dir:
        config["data_dir"] = str(Path(args.data_dir).resolve())
    if args.real_data:
        config["real_data"] = str(Path(args.real_data).resolve())
    flags: list[str] = []
    if args.profile:
        flags.append(f"profile={args.profile}")
    if args.domains:
        flags.append(f"run.domains=[{', '.join(d.strip() for d in args.domains.split(',') if d.strip())}]")
    if args.budget:
        flags.append(f"budget.mode={args.budget}")
    flags += args.overrides
    for item in flags:
        parse_override(item)  # a malformed one fails here, before any run
    if flags:
        config["overrides"] = [*split_overrides(env_str(OVERRIDES_VARIABLE, "")), *flags]
    return config


def _run_config(study: dict[str, Any]) -> dict[str, Any]:
    return {"resources": {"study": {"config": study}}}


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
    try:
        study_config = _resource_config(args)
    except SynergyError as exc:
        raise SystemExit(f"error: {exc}") from None

    import dagster as dg

    from synergy_dagster.defs.definitions import defs
    from synergy_dagster.defs.resources import StudyResource

    study = StudyResource(**study_config)
    # A bad study file, key or override fails here, before any run, with the key it names.
    try:
        spec = study.spec
        domains = study.domains()
        # The folder, absolute, is always passed: every run and worker process then writes where
        # the CLI reports, whatever its working directory.
        run_config = _run_config({**study_config, "data_dir": str(study.work_dir)})
    except SynergyError as exc:
        raise SystemExit(f"error: {exc}") from None
    shown = f"; overrides: {', '.join(spec.overrides)}" if spec.overrides else ""
    print(f"study {spec.name!r} ({study.study_path()}): {', '.join(domains)}{shown}", flush=True)
    persistent = bool(env_str("DAGSTER_HOME", ""))
    instance = dg.DagsterInstance.get() if persistent else dg.DagsterInstance.ephemeral()
    t0 = time.perf_counter()

    def run(job_name: str, keys: list[str] | None = None) -> None:
        """One Dagster run of ``job_name``; with ``keys``, over that partition range (a bank run)."""
        tags: dict[str, str] = {}
        partition_key = None
        if keys and len(keys) == 1:
            partition_key = keys[0]
        elif keys:
            tags = {RANGE_START: keys[0], RANGE_END: keys[-1]}
        result = defs.resolve_job_def(job_name).execute_in_process(
            run_config=run_config,
            instance=instance,
            partition_key=partition_key,
            tags=tags,
            raise_on_error=False,
        )
        if not result.success:
            failures = [_root_cause(e) for e in result.all_events if e.is_failure]
            where = f" [{keys[0]}..{keys[-1]}]" if keys and len(keys) > 1 else f" [{keys[0]}]" if keys else ""
            raise SystemExit(f"{job_name}{where} failed:\n" + "\n".join(failures[-3:]))

    print("1/3 sources -> regions -> plans", flush=True)
    run("prepare_job")
    size = _bank_size(args.bank_size)
    for domain in domains:
        keys = list(instance.get_dynamic_partitions(f"{domain}_sets"))
        banks = _banks(keys, size)
        print(f"2/3 training {domain}: {len(keys)} partitions in {len(banks)} bank run(s)", flush=True)
        for i, bank in enumerate(banks, 1):
            t_bank = time.perf_counter()
            run(f"train_{domain}_job", bank)
            print(
                f"    [{i}/{len(banks)}] {domain} {bank[0]} .. {bank[-1]} ({len(bank)} partitions, "
                f"{time.perf_counter() - t_bank:.0f} s)",
                flush=True,
            )
    print("3/3 evaluation: metrics, significance, figures, summary", flush=True)
    run("evaluation_job")
    if args.sensitivity:
        print("    budget sensitivity: global vs local under several training budgets", flush=True)
        run("budget_sensitivity_job")
    layout = study.layout
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
