"""Mutation testing of the modules whose rules decide the study's answer (``make mutate``).

Runs mutmut (3.x, the ``dev`` extra) once per target module, each in a throw-away copy of the
project so the working tree never sees a mutant and mutmut's own configuration and ``mutants/``
folder stay out of it. Each target names the fast test files that guard it and, where only part
of a module holds the rule, the functions to mutate (mutmut's mutant-name globs). Prints, per
module, how many mutants the tests killed and lists every survivor (``--diffs``: with its changed
lines); ``--json`` also writes the counts. Measured figures and the survivors judged equivalent:
docs/testing.md.

A mutant counts as killed when a test failed (or timed out: the mutant made the code hang);
the kill rate is killed / (killed + survived), leaving out mutants no selected test reaches
("no tests"), which are listed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = "synergy_dagster_tests"
# The fast tests only (pyproject.toml's markers); `real` would fail under CI without the data.
FAST = "not e2e and not fault and not ui and not slow and not real and not fuzz"
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


@dataclass(frozen=True)
class Target:
    """One module to mutate: its path, the test files that guard it and, optionally, globs of
    the function names to mutate (mutmut names a mutant ``<module>.x_<function>__mutmut_<n>``,
    a method ``<module>.xǁ<Class>ǁ<method>__mutmut_<n>``)."""

    name: str
    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()

    def mutant_globs(self) -> list[str]:
        module = self.path.removesuffix(".py").replace("/", ".")
        return [f"{module}.{f}__mutmut_*" for f in self.functions]


TARGETS: tuple[Target, ...] = (
    Target("metrics", "synergy_dagster/evaluation/metrics.py", ("evaluation/test_metrics.py",)),
    Target("normalization", "synergy_dagster/models/normalization.py",
           ("models/test_sampling.py", "evaluation/test_evaluation_study.py", "evaluation/test_predictions.py")),
    Target("statistics", "synergy_dagster/evaluation/statistics.py", ("evaluation/test_statistics.py",)),
    Target("report", "synergy_dagster/evaluation/report.py", ("evaluation/test_report.py", "evaluation/test_verdict_rules.py"),
           ("x__direction", "x__aggregate", "x__within_margin", "x__pooled_verdict",
            "x__region_rows", "x__every_region_verdict", "x__judge", "x_verdicts")),
    Target("every_region", "synergy_dagster/evaluation/every_region.py",
           ("evaluation/test_verdict_rules.py", "evaluation/test_spatial_evaluation.py", "evaluation/test_spatial_verdicts.py")),
    Target("spatial_verdicts", "synergy_dagster/evaluation/spatial.py",
           ("evaluation/test_spatial_evaluation.py", "evaluation/test_spatial_verdicts.py"),
           ("x_pool_folds", "x_spatial_significance", "x_row_verdicts", "x__every_region_word",
            "x_every_region_verdicts", "x_gauge_loss")),
    Target("plan", "synergy_dagster/experiments/plan.py", ("experiments/test_plan.py", "experiments/test_spatial.py")),
    Target("fingerprint", "synergy_dagster/models/fingerprint.py", ("project/test_configuration.py",)),
    Target("settings_record", "synergy_dagster/config.py", ("project/test_configuration.py",), ("x_settings_record",)),
    Target("stopping", "synergy_dagster/models/training.py", ("models/test_budget.py",),
           ("x_judge_check", "x_stops", "x_improved", "x_replay_converge")),
    Target("reuse", "synergy_dagster/models/fit.py", ("models/test_fit.py",), ("x_reusable_row", "x__intact")),
)  # fmt: skip


# Folders the tests read besides the package and the tests: the shipped studies, the docs pages
# whose content tests check.
DATA_DIRS = ("studies", "docs")


def _copy_project(dest: Path) -> None:
    """The package, its tests and the build/pytest configuration: all a test run reads."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("synergy_dagster", TESTS, *DATA_DIRS):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy2(ROOT / name, dest / name)


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _configure(dest: Path, target: Target) -> None:
    """mutmut's settings for this target, appended to the copy's pyproject.toml."""
    tests = [f"{TESTS}/{t}" for t in target.tests]
    section = (
        "\n[tool.mutmut]\n"
        f'source_paths = ["synergy_dagster"]\n'
        f"only_mutate = {_toml_list([target.path])}\n"
        f"also_copy = {_toml_list([TESTS, *DATA_DIRS])}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        f"pytest_add_cli_args = {_toml_list(['-m', FAST, '-p', 'no:cacheprovider', '-q'])}\n"
    )
    with (dest / "pyproject.toml").open("a", encoding="utf-8") as f:
        f.write(section)


_RESULT = re.compile(r"^\s+(\S+): (.+)$")


def _mutmut(dest: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mutmut")
    env = {**os.environ, "SYNERGY_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("SYNERGY_REAL_DATA", None)
    return subprocess.run(
        [str(exe), *args], cwd=dest, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _statuses(dest: Path, target: Target) -> dict[str, str]:
    """mutmut's status of every mutant of the target in the copy ``dest`` (none before a run)."""
    listed = _mutmut(dest, "results", "--all", "true")
    statuses = {m.group(1): m.group(2) for m in map(_RESULT.match, listed.stdout.splitlines()) if m}
    if target.functions:  # mutmut lists every mutant it generated in the file
        globs = [g.replace("*", ".*") for g in target.mutant_globs()]
        statuses = {k: v for k, v in statuses.items() if any(re.fullmatch(g, k) for g in globs)}
    return statuses


def _refresh_tests(dest: Path) -> None:
    """Copy the working tree's current tests (and the data folders they read) over a kept copy."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in (TESTS, *DATA_DIRS):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore, dirs_exist_ok=True)


def run_target(
    target: Target, work: Path, max_children: int, diffs: bool = False, recheck: bool = False
) -> dict[str, object]:
    """Mutate one target in its own copy under ``work``: its statuses, survivors and, with
    ``diffs``, each survivor's diff (one ``mutmut show`` process per survivor: seconds each).

    ``recheck``: in a copy kept by an earlier run, take the working tree's current tests and run
    again only the mutants that survived there or that no test reached (the mutated module is
    the kept copy's: a change to it needs a fresh run)."""
    dest = work / target.name
    selection = target.mutant_globs()
    if recheck:
        if not dest.exists():
            raise SystemExit(f"--recheck: no earlier run of {target.name} kept in {dest}")
        _refresh_tests(dest)
        selection = sorted(k for k, v in _statuses(dest, target).items() if v in ("survived", "no tests"))
    elif not dest.exists():  # a kept folder resumes: mutmut re-checks only what it has not judged
        _copy_project(dest)
        _configure(dest, target)
    start = time.monotonic()
    run = (
        _mutmut(dest, "run", "--max-children", str(max_children), *selection)
        if selection or not recheck
        else None
    )
    seconds = time.monotonic() - start
    statuses = _statuses(dest, target)
    if (run is not None and run.returncode != 0) or not statuses:
        out = ("", "") if run is None else (run.stdout[-3000:], run.stderr[-3000:])
        code = None if run is None else run.returncode
        raise SystemExit(f"mutmut failed on {target.name} (exit {code}):\n{out[0]}\n{out[1]}")
    counts = Counter("killed" if s in KILLED else s for s in statuses.values())
    survivors = sorted(k for k, v in statuses.items() if v == "survived")
    shown = {k: _mutmut(dest, "show", k).stdout.strip() if diffs else "" for k in survivors}
    judged = counts["killed"] + counts["survived"]
    return {
        "module": target.path,
        "tests": list(target.tests),
        "functions": list(target.functions),
        "mutants": len(statuses),
        "counts": dict(counts),
        "kill_rate": counts["killed"] / judged if judged else float("nan"),
        "seconds": round(seconds, 1),
        "survivors": shown,
        "no_tests": sorted(k for k, v in statuses.items() if v == "no tests"),
    }


def _print(result: dict[str, object]) -> None:
    counts = result["counts"]
    assert isinstance(counts, dict)
    print(
        f"{result['module']}: {counts.get('killed', 0)} killed / {counts.get('survived', 0)} survived "
        f"of {result['mutants']} mutants (kill rate {result['kill_rate']:.1%}; "
        f"other: { {k: v for k, v in counts.items() if k not in ('killed', 'survived')} }) "
        f"in {result['seconds']} s",
        flush=True,
    )
    survivors = result["survivors"]
    assert isinstance(survivors, dict)
    for name, diff in survivors.items():
        print(f"  survived: {name}")
        for line in diff.splitlines():
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
                print(f"      {line}")


def main(argv: list[str] | None = None) -> int:
    names = [t.name for t in TARGETS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help=f"which (default all): {', '.join(names)}"
    )
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel mutants")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--diffs", action="store_true", help="print each survivor's changed lines")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="with --keep: copy the current tests into the kept run and re-run only its survivors "
        "and the mutants no test reached",
    )
    parser.add_argument(
        "--fail-under", type=float, default=0.0, help="exit 1 when a module's kill rate is below this (0-1)"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.targets) - set(names))
    if unknown:
        parser.error(f"unknown target(s) {unknown}; expected some of {names}")
    chosen = [t for t in TARGETS if not args.targets or t.name in args.targets]
    missing = [t.path for t in chosen if not (ROOT / t.path).is_file()]
    if missing:
        parser.error(f"no such module(s): {missing}")
    if args.recheck and args.keep is None:
        parser.error("--recheck needs --keep: the folder of the run whose survivors to re-run")
    work = args.keep or Path(tempfile.mkdtemp(prefix="synergy-mutate-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for target in chosen:
            result = run_target(target, work, args.max_children, args.diffs, args.recheck)
            _print(result)
            results.append(result)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        tmp = args.json.with_name(f".{args.json.name}.tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(args.json)
    low = [r["module"] for r in results if not float(r["kill_rate"]) >= args.fail_under]  # type: ignore[arg-type]
    if args.fail_under and low:
        print(f"kill rate below {args.fail_under:.0%}: {low}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
