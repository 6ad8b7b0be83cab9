"""The landing sensor and the two follow-up sensors that chain retraining and evaluation.

* ``landing_sensor``: its cursor is ``{file name: sha256}``. A complete new or changed file
  (unchanged for ``settle_seconds``) starts one ``landed_streamflow_job`` run whose ``run_key`` is
  the hash of the new contents, so the same file dropped twice starts nothing. Each file is
  validated on its own (:func:`~synergy_dagster.sources.landing.check_landed`, the ingest's own
  check); an invalid one still goes into the run, which quarantines it, but affects no partition.
  Content already quarantined (``landed/rejected``) is never requested again; a corrected file
  under the same name is. The run's tags name the training-set partitions whose site lists hold an
  affected gauge (with new values in the training period) and whether the evaluation must be redone;
  for a Water Data fetch file only the days it changes count (new, revised, withdrawn: not approvals,
  not the unchanged days of the revision window it re-reads).
* ``landed_training_sensor`` starts ``train_streamflow_job`` for each of those partitions once the
  ingest run succeeded; ``landed_evaluation_sensor`` starts ``evaluation_job`` once all of them
  succeeded. Runs are chained through run tags, never through timing.
"""

# No `from __future__ import annotations`: Dagster resolves resource annotations at decoration time.

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pandas as pd
import xarray as xr

from synergy_dagster.defs.operations.landing import BATCH_TAG, INGEST_JOB, landed_streamflow_job
from synergy_dagster.defs.operations.resources import LandingConfig
from synergy_dagster.defs.partitions import SET_PARTITIONS
from synergy_dagster.defs.resources import StudyResource
from synergy_dagster.errors import InputError
from synergy_dagster.experiments.affected import affected_partitions, plan_site_ids
from synergy_dagster.io_utils import file_sha256
from synergy_dagster.layout import Layout
from synergy_dagster.models.fit import load_plan
from synergy_dagster.sources.landing import DOMAIN, check_landed, quarantined_hashes
from synergy_dagster.sources.nwis_client import match_site_ids, scan_landing
from synergy_dagster.sources.usgs_latest import landing_periods

TRAIN_JOB = f"train_{DOMAIN}_job"
EVALUATION_JOB = "evaluation_job"
PARTITIONS_TAG = "synergy/landing_partitions"
EVALUATE_TAG = "synergy/landing_evaluate"
FILES_TAG = "synergy/landing_files"
RECENT_BATCHES = 20  # ingest runs the follow-up sensors look back over
REJECTED = "rejected"  # cursor value of a file refused by name (logged once)
BAD_CONTENT = "unreadable:"  # cursor prefix (+ sha256) of an unreadable file (older versions skipped them)
QUARANTINED = "quarantined:"  # cursor prefix (+ sha256) of content already in landed/rejected


# ---------------------------------------------------------------- the landing sensor


def _load_cursor(raw: str | None) -> dict[str, str]:
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


@dg.sensor(
    job=landed_streamflow_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="New or changed streamflow files in the landing folder -> ingest run, then (via the "
    "follow-up sensors) the affected training partitions and the evaluation.",
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing: LandingConfig, study: StudyResource
) -> dg.SensorResult:
    cursor = _load_cursor(context.cursor)
    files, rejected = scan_landing(landing.dir, landing.settle_seconds)
    for name, reason in rejected:
        if cursor.get(name) != REJECTED:  # say it once, not every 30 s
            context.log.warning(f"landing: {reason}")
            cursor[name] = REJECTED
    known = {v for v in cursor.values() if v != REJECTED}
    layout = study.layout
    in_quarantine = quarantined_hashes(layout)
    new: list[tuple[str, str, pd.DataFrame]] = []
    bad: list[tuple[str, str]] = []  # invalid: into the run, which quarantines them
    ledger_path = layout.landed_updates(DOMAIN)
    held = pd.read_parquet(ledger_path) if ledger_path.exists() else None  # approval status held
    with _source_view(layout) as (source, site_ids, areas):
        for f in files:
            sha = file_sha256(f.path)
            if cursor.get(f.name) in (sha, BAD_CONTENT + sha, QUARANTINED + sha):
                continue
            if sha[:16] in in_quarantine:
                context.log.warning(
                    f"landing: {f.name} has the content of a quarantined file (see {layout.landed_rejected()}); "
                    "skipped until it changes"
                )
                cursor[f.name] = QUARANTINED + sha
                continue
            if sha in known:
                context.log.info(
                    f"landing: {f.name} has the content of a file already handled; nothing to do"
                )
                cursor[f.name] = sha
                continue
            cursor[f.name] = sha
            known.add(sha)
            try:
                checked = check_landed(f.path, f.kind, site_ids, areas, source, held)
            except Exception as exc:  # noqa: BLE001 - a reader bug must not stall the sensor either
                what = exc if isinstance(exc, InputError) else f"{f.name}: {type(exc).__name__}: {exc}"
                context.log.warning(f"landing: {what}; the ingest run quarantines it")
                bad.append((f.name, sha))
                continue
            new.append((f.name, sha, checked.affected_rows()))  # a fetch file: only what it changes
    if not new and not bad:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("no new complete files in the landing folder"),
            cursor=json.dumps(cursor, sort_keys=True),
        )
    partitions, evaluate = _affected_by(context, new, study) if new else ([], False)
    requested = [(n, s) for n, s, _ in new] + bad
    batch = hashlib.sha256("".join(sorted(s for _, s in requested)).encode()).hexdigest()[:16]
    names = [n for n, _ in requested]
    context.log.info(
        f"landing: {names} -> ingest ({len(bad)} to quarantine); retrain {partitions or 'nothing'}; "
        f"evaluate: {evaluate}"
    )
    request = dg.RunRequest(
        run_key=f"landed:{batch}",
        run_config={
            "ops": {
                "landed_streamflow": {"config": {"files": [{"name": n, "sha256": s} for n, s in requested]}}
            }
        },
        tags={
            BATCH_TAG: batch,
            PARTITIONS_TAG: ",".join(partitions),
            EVALUATE_TAG: "1" if evaluate else "0",
            FILES_TAG: ",".join(names)[:1000],
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor, sort_keys=True))


@contextlib.contextmanager
def _source_view(layout: Layout) -> Iterator[tuple[xr.Dataset | None, list[str], dict[str, float]]]:
    """The streamflow source opened lazily (the checks read only the touched sites), its site ids
    and areas; (None, [], {}) before raw_basins made it: then only the readers' checks run."""
    path: Path = layout.source_nc(DOMAIN)
    if not path.exists():
        yield None, [], {}
        return
    with xr.open_dataset(path) as ds:
        site_ids = [str(s) for s in ds["site"].values]
        areas = dict(zip(site_ids, ds["area"].values.astype(float), strict=True)) if "area" in ds else {}
        yield ds, site_ids, areas


def _affected_by(
    context: dg.SensorEvaluationContext, new: Sequence[tuple[str, str, pd.DataFrame]], study: StudyResource
) -> tuple[list[str], bool]:
    """The partitions and evaluation the new files affect, under the current streamflow plan."""
    layout = study.layout
    if not layout.plan(DOMAIN).exists():
        context.log.info("landing: no streamflow plan yet; the files are ingested, nothing is retrained")
        return [], False
    plan = load_plan(layout, DOMAIN)
    frame = pd.concat([f for _, _, f in new], ignore_index=True)
    site_map = match_site_ids(frame["gauge"].unique(), plan_site_ids(plan))
    frame = frame[frame["gauge"].astype(str).isin(list(site_map))]
    landed = pd.DataFrame(
        {"site_id": frame["gauge"].astype(str).map(site_map), "date": frame["date"], "value": frame["value"]}
    )
    return affected_partitions(landed, plan, landing_periods(study.domain(DOMAIN), landed["date"]))


# ---------------------------------------------------------------- follow-up: training, then evaluation


def _ingest_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """The latest successful ingest runs (each one landed batch)."""
    return list(
        instance.get_runs(
            filters=dg.RunsFilter(job_name=INGEST_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]),
            limit=RECENT_BATCHES,
        )
    )


def _batch_runs(instance: dg.DagsterInstance, job: str, batch: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job, tags={BATCH_TAG: batch})))


def _wanted(run: dg.DagsterRun) -> list[str]:
    """The training partitions an ingest run's tags name."""
    return [k for k in run.tags.get(PARTITIONS_TAG, "").split(",") if k]


@dg.sensor(
    job_name=TRAIN_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="After a successful landed_streamflow_job run: one train_streamflow_job run per "
    "partition its tags name (run_key batch:partition, so each is started once).",
)
def landed_training_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    requests = []
    existing = set(context.instance.get_dynamic_partitions(SET_PARTITIONS[DOMAIN].name))
    for run in _ingest_runs(context.instance):
        batch = run.tags.get(BATCH_TAG)
        if not batch:
            continue
        started = {r.tags.get("dagster/partition") for r in _batch_runs(context.instance, TRAIN_JOB, batch)}
        for key in _wanted(run):
            if key in started:
                continue
            if key not in existing:
                context.log.warning(
                    f"batch {batch}: partition {key!r} no longer exists (plan changed); skipped"
                )
                continue
            requests.append(
                dg.RunRequest(run_key=f"{batch}:{key}", partition_key=key, tags={BATCH_TAG: batch})
            )
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("no landed batch waiting for training"))
    return dg.SensorResult(run_requests=requests)


@dg.sensor(
    job_name=EVALUATION_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="After every training run of a landed batch succeeded: one evaluation_job run.",
)
def landed_evaluation_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    requests = []
    existing = set(context.instance.get_dynamic_partitions(SET_PARTITIONS[DOMAIN].name))
    for run in _ingest_runs(context.instance):
        batch = run.tags.get(BATCH_TAG)
        if (
            not batch
            or run.tags.get(EVALUATE_TAG) != "1"
            or _batch_runs(context.instance, EVALUATION_JOB, batch)
        ):
            continue
        by_key: dict[str, list[dg.DagsterRunStatus]] = {}
        for r in _batch_runs(context.instance, TRAIN_JOB, batch):
            by_key.setdefault(r.tags.get("dagster/partition", ""), []).append(r.status)
        wanted = [k for k in _wanted(run) if k in existing]
        if all(dg.DagsterRunStatus.SUCCESS in by_key.get(k, []) for k in wanted):
            requests.append(dg.RunRequest(run_key=f"evaluate:{batch}", tags={BATCH_TAG: batch}))
        elif any(
            by_key.get(k)
            and all(s in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED) for s in by_key[k])
            for k in wanted
        ):
            context.log.warning(
                f"batch {batch}: a training run failed; evaluation waits for a successful re-run"
            )
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("no landed batch ready for evaluation"))
    return dg.SensorResult(run_requests=requests)
