"""Operations: new streamflow data arrive, the affected models are retrained, the study re-evaluated.

* ``landing_sensor`` watches the landing folder (``SYNERGY_LANDING_DIR``, default
  ``$SYNERGY_DATA_DIR/landing``) for NWIS RDB, CAMELS-US and Caravan streamflow files. Its cursor is
  ``{file name: sha256}``: a complete new or changed file (unchanged for ``settle_seconds``) starts
  one ``landed_streamflow_job`` run whose ``run_key`` is the hash of the new contents, so the same
  file dropped twice starts nothing. The run's tags name the training-set partitions whose site
  lists hold an affected gauge (with new values in the training period) and whether the
  evaluation must be redone.
* ``landed_training_sensor`` starts ``train_streamflow_job`` for each of those partitions once the
  ingest run succeeded; ``landed_evaluation_sensor`` starts ``evaluation_job`` once all of them
  succeeded. Runs are chained through run tags, never through timing.
* ``nwis_daily_fetch`` (schedule, cron ``SYNERGY_NWIS_CRON``, default daily 06:00 UTC) fetches the
  days after the newest one held for the tracked USGS gauges into the landing folder.
* Declarative automation (off by default; ``SYNERGY_AUTOMATION=1``): the evaluation group gets
  :func:`evaluation_automation_condition` and an ``AutomationConditionSensorDefinition``.

Every sensor and the schedule start STOPPED; turn them on in the UI (Automation) or with
``dagster sensor start``. The sensors and schedule need ``dagster-daemon`` (``dagster dev`` runs one).
"""

# No `from __future__ import annotations`: Dagster resolves Config annotations at decoration time.

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from synergy_dagster.config import DomainPeriods
from synergy_dagster.defs.assets.sources import raw_basins, write_netcdf
from synergy_dagster.defs.assets.training import load_plan
from synergy_dagster.defs.partitions import SET_PARTITIONS
from synergy_dagster.defs.resources import DuckDBStore, SourceConfig
from synergy_dagster.errors import InputError
from synergy_dagster.experiments.plan import Plan
from synergy_dagster.io_utils import atomic_path, file_sha256
from synergy_dagster.layout import Layout
from synergy_dagster.sources.nwis import merge_streamflow
from synergy_dagster.sources.nwis_client import (
    DEFAULT_BASE_URL,
    fetch_to_landing,
    landed_kind,
    match_site_ids,
    read_landed_file,
    safe_landing_file,
    scan_landing,
    to_streamflow_mm,
    usgs_site_number,
)

DOMAIN = "streamflow"
TRAIN_JOB = f"train_{DOMAIN}_job"
EVALUATION_JOB = "evaluation_job"
INGEST_JOB = "landed_streamflow_job"
BATCH_TAG = "synergy/landing_batch"
PARTITIONS_TAG = "synergy/landing_partitions"
EVALUATE_TAG = "synergy/landing_evaluate"
FILES_TAG = "synergy/landing_files"
RECENT_BATCHES = 20  # ingest runs the follow-up sensors look back over
REJECTED = "rejected"
BAD_CONTENT = "unreadable:"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def automation_enabled() -> bool:
    """``SYNERGY_AUTOMATION=1|true|yes|on`` turns declarative automation of the evaluation on."""
    return _env("SYNERGY_AUTOMATION", "0").strip().lower() in ("1", "true", "yes", "on")


class LandingConfig(dg.ConfigurableResource):
    """Where new streamflow files land, when a file counts as complete, and the NWIS service."""

    path: str = Field(
        default_factory=lambda: _env(
            "SYNERGY_LANDING_DIR", str(Path(_env("SYNERGY_DATA_DIR", "data")) / "landing")
        )
    )
    settle_seconds: float = Field(default_factory=lambda: float(_env("SYNERGY_LANDING_SETTLE_S", "10")))
    nwis_base_url: str = Field(default_factory=lambda: _env("SYNERGY_NWIS_URL", DEFAULT_BASE_URL))
    nwis_timeout_s: float = 60.0
    nwis_sites: list[str] = Field(  # empty = every tracked gauge with a USGS number
        default_factory=lambda: [s.strip() for s in _env("SYNERGY_NWIS_SITES", "").split(",") if s.strip()]
    )

    @property
    def dir(self) -> Path:
        return Path(self.path).resolve()


# ---------------------------------------------------------------- which partitions a file affects


def affected_partitions(landed: pd.DataFrame, plan: Plan, periods: DomainPeriods) -> tuple[list[str], bool]:
    """Training partitions to retrain and whether to re-evaluate, for landed values.

    ``landed`` has columns site_id (plan ids), date, value. A partition is affected when its site
    list holds a site with a finite new value inside the training period (sets trained as another
    set map to that one); the evaluation when a partition is, or a new value falls in the test
    period at an evaluated site.
    """
    ok = landed[np.isfinite(landed["value"].to_numpy(dtype=np.float64))]
    dates = pd.to_datetime(ok["date"])
    train = set(
        ok.loc[dates.between(*map(pd.Timestamp, (periods.train.start, periods.train.end))), "site_id"]
    )
    test = set(ok.loc[dates.between(*map(pd.Timestamp, (periods.test.start, periods.test.end))), "site_id"])
    keys: list[str] = []
    for key, trained_as, sites in zip(
        plan.sets["key"], plan.sets["trained_as"], plan.sets["site_ids"], strict=True
    ):
        target = str(trained_as or key)  # identical site lists are trained once, as `trained_as`
        if target not in keys and train.intersection(sites):
            keys.append(target)
    evaluated = any(test.intersection(ids) for ids in plan.evaluations["eval_site_ids"])
    return keys, bool(keys) or evaluated


def plan_site_ids(plan: Plan) -> list[str]:
    return sorted({s for ids in plan.sets["site_ids"] for s in ids})


# ---------------------------------------------------------------- ingest asset and job


class LandedFileSpec(dg.Config):
    name: str
    sha256: str = ""


class LandedStreamflowConfig(dg.Config):
    files: list[LandedFileSpec] = Field(
        default_factory=list,
        description=(
            "Landed files to ingest (names inside the landing folder). Empty: re-apply what was ingested "
            "before (after raw_basins rebuilt the source)."
        ),
    )


def _ledger(layout: Layout) -> Path:
    return layout.root / "landed"


def _updates_path(layout: Layout) -> Path:
    return _ledger(layout) / f"{DOMAIN}_updates.parquet"


@dg.asset(
    group_name="sources",
    deps=[raw_basins],
    pool="duckdb",
    kinds={"xarray", "duckdb"},
    description=(
        "Streamflow that arrived after the source was read (landing folder: NWIS RDB, CAMELS-US, Caravan "
        "CSV), archived by content hash and merged into the streamflow source and the tagged sites; "
        "every later rebuild of raw_basins is re-patched from the accumulated updates."
    ),
)
def landed_streamflow(
    context: dg.AssetExecutionContext,
    config: LandedStreamflowConfig,
    sources: SourceConfig,
    store: DuckDBStore,
    landing: LandingConfig,
) -> dg.MaterializeResult:
    layout = Layout(sources.work_dir)
    src_path = layout.source_nc(DOMAIN)
    if not src_path.exists():
        raise dg.Failure(f"no streamflow source at {src_path}: materialise raw_basins (prepare_job) first")
    ds = xr.load_dataset(src_path)
    site_ids = [str(s) for s in ds["site"].values]
    areas = dict(zip(site_ids, ds["area"].values.astype(float), strict=True)) if "area" in ds else {}
    archive = _ledger(layout) / "archive"
    new_frames, rejected, unknown, ingested = [], [], set(), []
    for spec in config.files:
        try:
            path = safe_landing_file(landing.dir, spec.name)
            kind = landed_kind(spec.name)
            if kind is None:
                raise InputError(
                    landing.dir / spec.name, "not a landed streamflow file (.rdb, _streamflow_qc.txt or .csv)"
                )
        except InputError as exc:
            context.log.error(f"skipped: {exc}")
            rejected.append(spec.name)
            continue
        sha = file_sha256(path)
        if spec.sha256 and sha != spec.sha256:
            context.log.warning(f"{spec.name} changed since the sensor saw it; ingesting its current content")
        # Archive first, by content: later rebuilds never depend on the landing folder.
        kept = archive / f"{sha[:16]}__{spec.name}"  # keeps the name: CAMELS-US files carry the gauge in it
        if not kept.exists():
            with atomic_path(kept) as tmp:
                shutil.copyfile(path, tmp)
        frame = read_landed_file(kept, kind)
        site_map = match_site_ids(frame["gauge"].unique(), site_ids)
        unknown |= set(frame["gauge"].astype(str)) - set(site_map)
        tidy = to_streamflow_mm(frame, site_map, areas)
        tidy = tidy[np.isfinite(tidy["streamflow_mm"].to_numpy())]  # missing values never erase
        new_frames.append(tidy.assign(file=spec.name, sha256=sha))
        ingested.append({"name": spec.name, "sha256": sha, "rows": len(tidy)})
    if unknown:
        context.log.warning(f"gauges not in the streamflow source, ignored: {sorted(unknown)[:20]}")
    upath = _updates_path(layout)
    old = pd.read_parquet(upath) if upath.exists() else None
    frames = [f for f in ([old] if old is not None else []) + new_frames if len(f)]
    updates = (
        (
            pd.concat(frames, ignore_index=True)
            .drop_duplicates(["site_id", "date"], keep="last")
            .sort_values(["site_id", "date"])
            .reset_index(drop=True)
        )
        if frames
        else None
    )
    if new_frames and updates is not None:
        with atomic_path(upath) as tmp:
            updates.to_parquet(tmp, index=False)
    n_sites_patched = 0
    if updates is not None and len(updates):
        updates = updates[updates["site_id"].isin(site_ids)]
        write_netcdf(merge_streamflow(ds, updates), src_path)
        sites_nc = layout.sites_nc(DOMAIN)
        if sites_nc.exists():  # the tagged sites the training sets read: patch the kept ones too
            sites_ds = xr.load_dataset(sites_nc)
            kept_ids = {str(s) for s in sites_ds["site"].values}
            part = updates[updates["site_id"].isin(kept_ids)]
            if len(part):
                write_netcdf(merge_streamflow(sites_ds, part), sites_nc)
                n_sites_patched = int(part["site_id"].nunique())
        store.store().replace_rows(
            "sources",
            pd.DataFrame(
                [
                    {
                        "source_name": f"{DOMAIN}_landed",
                        "domain": DOMAIN,
                        "path": str(_ledger(layout)),
                        "format": "landed",
                        "content_hash": hashlib.sha256(
                            "".join(sorted(updates["sha256"].unique())).encode()
                        ).hexdigest(),
                        "n_sites": int(updates["site_id"].nunique()),
                        "period_start": updates["date"].min().date(),
                        "period_end": updates["date"].max().date(),
                        "n_rows": len(updates),
                        "n_valid_target": len(updates),
                        "loaded_at": datetime.now(),
                    }
                ]
            ),
            {"source_name": f"{DOMAIN}_landed"},
        )
    return dg.MaterializeResult(
        metadata={
            "ingested": dg.MetadataValue.json(ingested),
            "rejected": dg.MetadataValue.json(rejected),
            "unknown_gauges": dg.MetadataValue.json(sorted(unknown)[:50]),
            "n_updates_total": 0 if updates is None else len(updates),
            "n_training_sites_patched": n_sites_patched,
        }
    )


landed_streamflow_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(landed_streamflow),
    description="Merge landed streamflow files into the streamflow source (started by landing_sensor).",
)


# ---------------------------------------------------------------- sensors


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
    context: dg.SensorEvaluationContext, landing: LandingConfig, sources: SourceConfig
) -> dg.SensorResult:
    cursor = _load_cursor(context.cursor)
    files, rejected = scan_landing(landing.dir, landing.settle_seconds)
    for name, reason in rejected:
        if cursor.get(name) != REJECTED:  # say it once, not every 30 s
            context.log.warning(f"landing: {reason}")
            cursor[name] = REJECTED
    known = {v for v in cursor.values() if v != REJECTED}
    new: list[tuple[str, str, pd.DataFrame]] = []
    for f in files:
        sha = file_sha256(f.path)
        if cursor.get(f.name) in (sha, BAD_CONTENT + sha):
            continue
        if sha in known:
            context.log.info(f"landing: {f.name} has the content of a file already ingested; nothing to do")
            cursor[f.name] = sha
            continue
        try:
            frame = read_landed_file(f.path, f.kind)
        except InputError as exc:
            context.log.error(f"landing: skipped {exc}")
            cursor[f.name] = BAD_CONTENT + sha
            continue
        cursor[f.name] = sha
        known.add(sha)
        new.append((f.name, sha, frame))
    if not new:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("no new complete files in the landing folder"),
            cursor=json.dumps(cursor, sort_keys=True),
        )
    partitions, evaluate = _affected_by(context, new, sources)
    shas = sorted(sha for _, sha, _ in new)
    batch = hashlib.sha256("".join(shas).encode()).hexdigest()[:16]
    names = [n for n, _, _ in new]
    context.log.info(f"landing: {names} -> ingest; retrain {partitions or 'nothing'}; evaluate: {evaluate}")
    request = dg.RunRequest(
        run_key=f"landed:{batch}",
        run_config={
            "ops": {"landed_streamflow": {"config": {"files": [{"name": n, "sha256": s} for n, s, _ in new]}}}
        },
        tags={
            BATCH_TAG: batch,
            PARTITIONS_TAG: ",".join(partitions),
            EVALUATE_TAG: "1" if evaluate else "0",
            FILES_TAG: ",".join(names)[:1000],
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor, sort_keys=True))


def _affected_by(
    context: dg.SensorEvaluationContext, new: Sequence[tuple[str, str, pd.DataFrame]], sources: SourceConfig
) -> tuple[list[str], bool]:
    layout = Layout(sources.work_dir)
    try:
        plan = load_plan(layout, DOMAIN)
    except dg.Failure:
        context.log.info("landing: no streamflow plan yet; the files are ingested, nothing is retrained")
        return [], False
    frame = pd.concat([f for _, _, f in new], ignore_index=True)
    site_map = match_site_ids(frame["gauge"].unique(), plan_site_ids(plan))
    frame = frame[frame["gauge"].astype(str).isin(list(site_map))]
    landed = pd.DataFrame(
        {"site_id": frame["gauge"].astype(str).map(site_map), "date": frame["date"], "value": frame["value"]}
    )
    return affected_partitions(landed, plan, sources.periods(DOMAIN))


def _ingest_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(
            filters=dg.RunsFilter(job_name=INGEST_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]),
            limit=RECENT_BATCHES,
        )
    )


def _batch_runs(instance: dg.DagsterInstance, job: str, batch: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job, tags={BATCH_TAG: batch})))


def _wanted(run: dg.DagsterRun) -> list[str]:
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


# ---------------------------------------------------------------- NWIS schedule


class NwisFetchConfig(dg.Config):
    start: str = Field(default="", description="YYYY-MM-DD; empty = the day after the newest value held")
    end: str = Field(default="", description="YYYY-MM-DD; empty = today (UTC)")


def tracked_usgs_sites(layout: Layout, explicit: Sequence[str] = ()) -> list[str]:
    """USGS numbers of the gauges the study tracks (kept sites, else every source site)."""
    if explicit:
        return sorted({usgs_site_number(s) or s for s in explicit})
    table = layout.sites_table(DOMAIN)
    if table.exists():
        sites = pd.read_parquet(table)
        ids = sites.loc[sites["kept"], "site_id"].astype(str)
    elif layout.source_nc(DOMAIN).exists():
        with xr.open_dataset(layout.source_nc(DOMAIN)) as ds:
            ids = pd.Series([str(s) for s in ds["site"].values])
    else:
        return []
    return sorted({n for n in map(usgs_site_number, ids) if n})


def newest_date(layout: Layout) -> date | None:
    """The newest day with data held: the source's time axis or the landed updates."""
    days = []
    if layout.source_nc(DOMAIN).exists():
        with xr.open_dataset(layout.source_nc(DOMAIN)) as ds:
            days.append(pd.Timestamp(ds["time"].values[-1]).date())
    if _updates_path(layout).exists():
        days.append(pd.read_parquet(_updates_path(layout), columns=["date"])["date"].max().date())
    return max(days) if days else None


@dg.op(description="Fetch new daily discharge of the tracked USGS gauges from NWIS into the landing folder.")
def fetch_nwis(
    context: dg.OpExecutionContext, config: NwisFetchConfig, sources: SourceConfig, landing: LandingConfig
) -> None:
    layout = Layout(sources.work_dir)
    sites = tracked_usgs_sites(layout, landing.nwis_sites)
    if not sites:
        context.log.info("no tracked gauge has a USGS site number (e.g. the virtual CONUS); nothing to fetch")
        return
    end = date.fromisoformat(config.end) if config.end else datetime.now(UTC).date()
    if config.start:
        start = date.fromisoformat(config.start)
    else:
        last = newest_date(layout)
        start = (last + timedelta(days=1)) if last else end - timedelta(days=30)
    if start > end:
        context.log.info(f"already up to date (newest day held {start - timedelta(days=1)})")
        return
    path = fetch_to_landing(
        sites, start, end, landing.dir, base_url=landing.nwis_base_url, timeout=landing.nwis_timeout_s
    )
    context.log.info(f"NWIS {start}..{end}, {len(sites)} sites: " + (f"wrote {path}" if path else "no data"))


@dg.job(description="One NWIS daily-values fetch into the landing folder (the landing sensor ingests it).")
def nwis_fetch_job() -> None:
    fetch_nwis()


@dg.schedule(
    job=nwis_fetch_job,
    cron_schedule=_env("SYNERGY_NWIS_CRON", "0 6 * * *"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    name="nwis_daily_fetch",
)
def nwis_daily_fetch(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    end = context.scheduled_execution_time.date()
    return dg.RunRequest(
        run_key=f"nwis:{end}", run_config={"ops": {"fetch_nwis": {"config": {"end": f"{end}"}}}}
    )


# ---------------------------------------------------------------- declarative automation (optional)


def evaluation_automation_condition() -> dg.AutomationCondition:
    """Re-materialise when any upstream (any model partition) was updated, once none is missing or
    in progress: ``AutomationCondition.eager()``. Attach it to the evaluation group."""
    return dg.AutomationCondition.eager()


EVALUATION_SELECTION = dg.AssetSelection.groups("evaluation")
automation_sensor = dg.AutomationConditionSensorDefinition(
    "evaluation_automation",
    target=EVALUATION_SELECTION,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the evaluation group's automation conditions "
    "(exposed only with SYNERGY_AUTOMATION=1).",
)


def with_automation(defs: dg.Definitions, enabled: bool | None = None) -> dg.Definitions:
    """``defs`` with the evaluation group's automation condition attached when enabled."""
    if not (automation_enabled() if enabled is None else enabled):
        return defs
    with warnings.catch_warnings():  # map_resolved_asset_specs is marked "preview" in 1.13
        warnings.filterwarnings("ignore", message=".*map_resolved_asset_specs.*")
        return defs.map_resolved_asset_specs(
            func=lambda spec: spec.replace_attributes(automation_condition=evaluation_automation_condition()),
            selection=EVALUATION_SELECTION,
        )


ASSETS = [landed_streamflow]
JOBS = [landed_streamflow_job, nwis_fetch_job]
RESOURCES = {"landing": LandingConfig()}
SENSORS: list[dg.SensorDefinition] = [landing_sensor, landed_training_sensor, landed_evaluation_sensor] + (
    [automation_sensor] if automation_enabled() else []
)
SCHEDULES = [nwis_daily_fetch]


def operations_defs() -> dg.Definitions:
    """Everything this module adds, to merge into the project's Definitions."""
    return dg.Definitions(assets=ASSETS, jobs=JOBS, sensors=SENSORS, schedules=SCHEDULES, resources=RESOURCES)


def full_defs(base: dg.Definitions, automation: bool | None = None) -> dg.Definitions:
    """``base`` + operations (+ automation when enabled): what definitions.py should expose."""
    merged = dg.Definitions.merge(base, operations_defs())
    if not (automation if automation is not None else automation_enabled()):
        return merged
    merged = with_automation(merged, True)
    if automation_sensor in SENSORS:
        return merged
    return dg.Definitions.merge(merged, dg.Definitions(sensors=[automation_sensor]))
