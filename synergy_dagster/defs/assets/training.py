"""Stages 3-4: the experiment plan, training sets and trained LSTMs, per domain, partitioned by
training set (scenario:region)."""

import dataclasses
import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import torch
import xarray as xr

import synergy_dagster
from synergy_dagster.config import Budget, DomainTraining, Period, Profile
from synergy_dagster.defs.assets.regions import soil_moisture_sites, streamflow_sites
from synergy_dagster.defs.io_managers import load_state_dict
from synergy_dagster.defs.metadata import png_markdown
from synergy_dagster.defs.partitions import SET_PARTITIONS, split_key
from synergy_dagster.defs.resources import DuckDBStore, SourceConfig, StudyConfig
from synergy_dagster.evaluation.figures import learning_curve
from synergy_dagster.evaluation.study import test_window
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.experiments.plan import Plan, build_plan
from synergy_dagster.io_utils import atomic_write_text, file_sha256
from synergy_dagster.layout import Layout
from synergy_dagster.models.device import configure_threads, pick_device
from synergy_dagster.models.normalization import Normalizer, default_method, log_candidates, prepare_arrays
from synergy_dagster.models.predict import predict
from synergy_dagster.models.training import Validation, initial_state, train_model, training_rmse
from synergy_dagster.regions.subregions import PAPER_ROIS
from synergy_dagster.store import MetadataStore

SITES_ASSETS = {"soil_moisture": soil_moisture_sites, "streamflow": streamflow_sites}


def normalizer_options(domain: str, ds: xr.Dataset, log_transform: bool) -> dict[str, Any]:
    """Paper: z-scores for soil moisture; (x-p10)/(p90-p10) with log(x+1) for precipitation,
    runoff, area and contact time for streamflow (log optional)."""
    return {"method": default_method(domain), "log_vars": log_candidates(ds) if log_transform else []}


def load_plan(layout: Layout, domain: str) -> Plan:
    path = layout.plan(domain)
    if not path.exists():
        raise dg.Failure(f"no experiment plan for {domain}: materialise {domain}_plan first")
    return Plan.from_dict(json.loads(path.read_text()))


def arrays_hash(arrays: Any) -> str:
    """SHA-256 of the exact training tensors (inputs, statics, targets) and their site order."""
    h = hashlib.sha256()
    for a in (arrays.x, arrays.c, arrays.y):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update("\n".join(map(str, arrays.site_ids)).encode())
    return h.hexdigest()


def build_plan_asset(domain: str) -> dg.AssetsDefinition:
    parts = SET_PARTITIONS[domain]

    @dg.asset(
        name=f"{domain}_plan",
        group_name="training_sets",
        deps=[SITES_ASSETS[domain]],
        pool="duckdb",
        kinds={"python", "duckdb"},
        description=(
            "Every training set the study needs: global, local per sub-region, and per region of "
            "interest local / +close / +far / +dissimilar, with and without size control. Registers "
            "one partition per distinct set; fits the shared normalisation on the global set's "
            "training period only."
        ),
    )
    def _plan(
        context: dg.AssetExecutionContext, sources: SourceConfig, study: StudyConfig, store: DuckDBStore
    ) -> dg.MaterializeResult:
        layout = Layout(sources.work_dir)
        sites = pd.read_parquet(layout.sites_table(domain))
        sites = sites[sites["kept"]]
        plan = build_plan(sites, domain, study.plan_config(), rois_preferred=PAPER_ROIS[domain])
        periods = sources.periods(domain)
        atomic_write_text(layout.plan(domain), json.dumps(plan.to_dict(), indent=1))
        ds = xr.load_dataset(layout.sites_nc(domain))
        opts = normalizer_options(domain, ds, study.log_transform)
        norm = Normalizer.fit(ds, periods.train.slice, **opts)
        atomic_write_text(layout.normalizer(domain), json.dumps(norm.to_dict(), indent=1))
        distinct = plan.sets[plan.sets["trained_as"] == plan.sets["key"]]["key"].tolist()
        existing = set(context.instance.get_dynamic_partitions(parts.name))
        stale = sorted(existing - set(distinct))
        for key in stale:
            context.instance.delete_dynamic_partition(parts.name, key)
        context.instance.add_dynamic_partitions(parts.name, [k for k in distinct if k not in existing])
        rows = plan.sets.assign(
            set_key=plan.sets["key"],
            train_start=periods.train.start,
            train_end=periods.train.end,
            test_start=periods.test.start,
            test_end=periods.test.end,
        )
        store.store().replace_rows(
            "training_sets",
            rows[
                [
                    "domain",
                    "set_key",
                    "scenario",
                    "region",
                    "experiment",
                    "n_sites",
                    "sites_hash",
                    "trained_as",
                    "added_rule",
                    "train_start",
                    "train_end",
                    "test_start",
                    "test_end",
                ]
            ],
            {"domain": domain},
        )
        show = plan.sets[["key", "experiment", "n_sites", "trained_as"]]
        return dg.MaterializeResult(
            metadata={
                "n_sets": len(plan.sets),
                "n_partitions": len(distinct),
                "removed_partitions": stale,
                "sets": dg.MetadataValue.md(markdown_table(show)),
                "excluded": dg.MetadataValue.md(
                    markdown_table(plan.excluded) if len(plan.excluded) else "none"
                ),
                "normalisation": opts["method"],
            }
        )

    return _plan


def build_training_set_asset(domain: str, plan_asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{domain}_training_set",
        group_name="training_sets",
        partitions_def=SET_PARTITIONS[domain],
        deps=[plan_asset],
        io_manager_key="json_io_manager",
        kinds={"python"},
        description=(
            "One training set: its sites, periods, normalisation statistics (training data only) "
            "and the hash of the exact training tensors."
        ),
    )
    def _training_set(
        context: dg.AssetExecutionContext, sources: SourceConfig, study: StudyConfig
    ) -> dict[str, Any]:
        layout = Layout(sources.work_dir)
        key = context.partition_key
        plan = load_plan(layout, domain)
        row = plan.sets[plan.sets["key"] == key]
        if row.empty:
            raise dg.Failure(f"{key!r} is not a training set of the current {domain} plan")
        row = row.iloc[0]
        periods = sources.periods(domain)
        ds = xr.load_dataset(layout.sites_nc(domain))
        site_ids = list(row["site_ids"])
        if study.per_set_normalization:
            opts = normalizer_options(domain, ds, study.log_transform)
            norm = Normalizer.fit(ds.sel(site=site_ids), periods.train.slice, **opts)
        else:
            norm = Normalizer.from_dict(json.loads(layout.normalizer(domain).read_text()))
        arrays = prepare_arrays(ds, norm, periods.train.slice, site_ids)
        n_valid = int(np.isfinite(arrays.y).sum())
        context.add_output_metadata(
            {
                "n_sites": len(site_ids),
                "n_valid_targets": n_valid,
                "sites_hash": row["sites_hash"],
                "train": f"{periods.train.start}..{periods.train.end}",
            }
        )
        scenario, region = split_key(key)
        return {
            "domain": domain,
            "key": key,
            "scenario": scenario,
            "region": region,
            "experiment": row["experiment"],
            "site_ids": site_ids,
            "sites_hash": row["sites_hash"],
            "data_hash": arrays_hash(arrays),
            "train": [periods.train.start, periods.train.end],
            "test": [periods.test.start, periods.test.end],
            "normalizer": norm.to_dict(),
            "n_train_samples": n_valid,
        }

    return _training_set


def code_version() -> str:
    """Package version plus the git commit when run from a checkout (recorded with each model)."""
    import subprocess
    from pathlib import Path

    root = Path(synergy_dagster.__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "nogit"
    return f"{synergy_dagster.__version__}+{sha}"


@dataclass
class FitOutcome:
    """What training one set under one budget produced (or reused)."""

    seeds: dict[int, dict[str, torch.Tensor]]
    rows: list[dict[str, Any]]  # one `models` row per seed
    curves: pd.DataFrame  # `learning_curves` rows of every seed
    losses: dict[int, list[float]]
    arrays: Any  # the training Arrays (for the checks)
    n_in: int
    validation: str


def validation_split(
    ds: xr.Dataset, norm: Normalizer, train: Period, sites: list[str], dom: DomainTraining
) -> tuple[Any, Validation, str]:
    """Training arrays and the validation data of the learning curve.

    With ``validation_days`` the last days of the training period are held out (their input window
    starts ``warmup`` days earlier, as in the test pass); without, the curve is scored in-sample.
    """
    if dom.validation_days <= 0:
        arrays = prepare_arrays(ds, norm, train.slice, sites)
        return arrays, Validation(arrays, 0, norm, held_out=False), "training period (in-sample)"
    fit, val = train.carve_validation(dom.validation_days)
    arrays = prepare_arrays(ds, norm, fit.slice, sites)
    window, _ = test_window(ds, val.slice, dom.warmup)
    val_arrays = prepare_arrays(ds, norm, window, sites)
    skip = int((val_arrays.time < pd.Timestamp(val.start)).sum())
    return arrays, Validation(val_arrays, skip, norm), f"held out {val.start}..{val.end}"


def fit_set(
    domain: str,
    training_set: dict[str, Any],
    profile: Profile,
    budget: Budget,
    layout: Layout,
    store: MetadataStore,
    device: torch.device,
    ds: xr.Dataset,
    log: Callable[[str], None],
    threads: int,
) -> FitOutcome:
    """Train (or reuse) every seed of one training set under ``budget``.

    A seed is reused when an intact model of the same data hash and config (budget included) is in
    the store; otherwise it trains, resuming its checkpoint if a run was killed. No DuckDB
    connection is open while a model trains.
    """
    profile.check_budget(budget)
    budget = budget.for_domain(domain)
    dom = profile.for_domain(domain)
    norm = Normalizer.from_dict(training_set["normalizer"])
    train = Period(*training_set["train"])
    arrays, validation, val_label = validation_split(ds, norm, train, training_set["site_ids"], dom)
    n_in = arrays.x.shape[-1] + arrays.c.shape[-1]
    data_hash = arrays_hash(arrays)
    config = {
        "profile": profile.name,
        "hidden": profile.hidden,
        "epochs": profile.epochs,
        "dropconnect": profile.dropconnect,
        "rho": dom.rho,
        "batch": dom.batch,
        "max_iters_per_epoch": profile.max_iters_per_epoch,
        "epoch_scale": profile.epoch_scale,
        "min_iters_per_epoch": profile.min_iters_per_epoch,
        "n_in": n_in,
        "inputs": list(arrays.dynamic_names) + list(arrays.static_names),
        "normalizer": training_set["normalizer"],
        "train": training_set["train"],
        "budget": budget.to_dict(),
        "validation": val_label,
    }
    config_json = json.dumps(config, sort_keys=True)
    key = training_set["key"]
    where = "domain=? AND set_key=? AND budget=?"
    previous = store.query(f"SELECT * FROM models WHERE {where}", [domain, key, budget.mode])
    old_curves = store.query(f"SELECT * FROM learning_curves WHERE {where}", [domain, key, budget.mode])
    out = FitOutcome({}, [], pd.DataFrame(), {}, arrays, n_in, val_label)
    curves = []
    for seed in profile.seeds:
        reuse = previous[
            (previous["seed"] == seed)
            & (previous["data_hash"] == data_hash)
            & (previous["config_json"] == config_json)
        ]
        if len(reuse) and _intact(reuse.iloc[0]):
            log(
                f"{key} seed {seed} [{budget.mode}]: reusing the intact model trained on the same data and config"
            )
            row = reuse.iloc[0].to_dict()
            out.seeds[seed] = load_state_dict(row["path"], row["file_sha256"])
            out.rows.append(row)
            out.losses[seed] = [float(row["first_loss"]), float(row["final_loss"])]
            curves.append(old_curves[old_curves["seed"] == seed])
            continue
        t0 = time.perf_counter()

        def log_block(block: int, loss: float, seed: int = seed) -> None:
            log(f"{key} seed {seed} [{budget.mode}] check {block}: loss {loss:.4f}")

        result = train_model(
            arrays,
            hidden=profile.hidden,
            epochs=profile.epochs,
            rho=dom.rho,
            batch=dom.batch,
            dropconnect=profile.dropconnect,
            seed=seed,
            max_iters_per_epoch=profile.max_iters_per_epoch,
            epoch_scale=profile.epoch_scale,
            min_iters_per_epoch=profile.min_iters_per_epoch,
            checkpoint_path=layout.checkpoint(domain, key, seed, budget.mode),
            checkpoint_every=profile.checkpoint_every,
            device=device,
            log=log_block,
            progress=True,
            budget=budget,
            validation=validation,
        )
        best = next((pt for pt in result.curve if pt.update == result.best_update), None)
        out.seeds[seed] = result.state_dict
        out.losses[seed] = list(result.losses)
        out.rows.append(
            {
                "domain": domain,
                "scenario": training_set["scenario"],
                "region": training_set["region"],
                "set_key": key,
                "seed": seed,
                "profile": profile.name,
                "n_sites": len(arrays.site_ids),
                "n_train_samples": int(result.n_train_samples),
                "data_hash": data_hash,
                "config_json": config_json,
                "train_seconds": time.perf_counter() - t0,
                "final_loss": float(result.losses[-1]),
                "first_loss": float(result.losses[0]),
                "n_iterations": int(result.n_iterations),
                "resumed_from_epoch": int(result.resumed_from_epoch or 0),
                "device": str(device),
                "torch_threads": threads,
                "code_version": code_version(),
                "created_at": datetime.now(),
                "budget": budget.mode,
                "budget_json": json.dumps(budget.to_dict(), sort_keys=True),
                "stop_reason": result.stop_reason,
                "best_update": int(result.best_update),
                "best_val_nse": None if best is None else best.val_nse,
                "best_val_rmse": None if best is None else best.val_rmse,
                "validation": val_label,
            }
        )
        curve = pd.DataFrame([dataclasses.asdict(pt) for pt in result.curve])
        curves.append(
            curve.assign(
                domain=domain,
                set_key=key,
                scenario=training_set["scenario"],
                region=training_set["region"],
                seed=seed,
                budget=budget.mode,
                validation=val_label,
            )
        )
    out.curves = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return out


def build_model_asset(domain: str, training_set_asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    checks = [
        dg.AssetCheckSpec(
            "loss_finite_and_fell",
            asset=f"{domain}_model",
            blocking=True,
            description="Block losses are finite and the training RMSE of the trained weights is below that of the initial weights.",
        ),
        dg.AssetCheckSpec(
            "predictions_finite",
            asset=f"{domain}_model",
            blocking=True,
            description="A full-sequence pass over the training sites yields no NaN.",
        ),
    ]

    @dg.asset(
        name=f"{domain}_model",
        group_name="models",
        partitions_def=SET_PARTITIONS[domain],
        ins={"training_set": dg.AssetIn(training_set_asset.key)},
        io_manager_key="model_io_manager",
        check_specs=checks,
        kinds={"pytorch"},
        description=(
            "The paper's LSTM (Linear+ReLU -> LSTM -> Linear) trained on one training set under the "
            "configured training budget (paper epoch rule, equal updates, equal passes, early stopping "
            "or wall clock), one model per seed, with its learning curve (table learning_curves). "
            "Resumes from its checkpoint if a previous run was killed; reuses an intact model trained "
            "on the same data hash with the same config."
        ),
    )
    def _model(
        context: dg.AssetExecutionContext,
        training_set: dict[str, Any],
        sources: SourceConfig,
        study: StudyConfig,
        store: DuckDBStore,
    ):
        layout = Layout(sources.work_dir)
        profile = study.resolved_profile()
        budget = profile.budget
        threads = configure_threads(study.torch_threads, profile.hidden)
        device = pick_device(study.device)
        ds = xr.load_dataset(layout.sites_nc(domain))
        fit = fit_set(
            domain,
            training_set,
            profile,
            budget,
            layout,
            store.store(),
            device,
            ds,
            context.log.info,
            threads,
        )
        arrays, n_in = fit.arrays, fit.n_in
        key = training_set["key"]
        # Checks: run before the output is stored so a failing blocking check stops evaluation.
        # "Fell" compares the full-sequence training RMSE of the trained weights with that of the
        # seed's initial weights: block means of random windows are too noisy for short runs.
        nan_sites, rmse = 0, {}
        for seed, state in fit.seeds.items():
            pred = predict(state, arrays, hidden=profile.hidden, device=device)
            nan_sites += int((~np.isfinite(pred)).any(axis=1).sum())
            start = predict(
                initial_state(n_in, profile.hidden, seed, profile.dropconnect), arrays, device=device
            )
            rmse[str(seed)] = {
                "initial": training_rmse(start, arrays),
                "trained": training_rmse(pred, arrays),
            }
        finite = all(np.isfinite(v).all() for v in fit.losses.values())
        fell = all(r["trained"] < r["initial"] for r in rmse.values())
        yield dg.AssetCheckResult(
            check_name="loss_finite_and_fell",
            passed=bool(finite and fell),
            metadata={
                "training_rmse": dg.MetadataValue.json(rmse),
                "block_losses": {
                    str(s): [round(x, 5) for x in v[:: max(1, len(v) // 20)]] for s, v in fit.losses.items()
                },
            },
        )
        yield dg.AssetCheckResult(
            check_name="predictions_finite", passed=nan_sites == 0, metadata={"sites_with_nan": nan_sites}
        )
        rows = fit.rows
        curve_png = learning_curve(fit.curves, title=f"{domain} {key} [{budget.mode}]")
        yield dg.Output(
            {
                "domain": domain,
                "set_key": key,
                "budget": budget.mode,
                "seeds": fit.seeds,
                "rows": rows,
                "curves": fit.curves,
                "db_path": store.path,
            },
            metadata={
                "n_sites": len(arrays.site_ids),
                "seeds": list(profile.seeds),
                "profile": profile.name,
                "budget": budget.mode,
                "stop_reason": ", ".join(sorted({str(r["stop_reason"]) for r in rows})),
                "n_updates": [int(r["n_iterations"]) for r in rows],
                "best_val_nse": [
                    None if pd.isna(r["best_val_nse"]) else float(r["best_val_nse"]) for r in rows
                ],
                "validation": fit.validation,
                "device": str(device),
                "torch_threads": threads,
                "final_loss": float(np.mean([r["final_loss"] for r in rows])),
                "train_seconds": float(sum(r["train_seconds"] for r in rows)),
                "data_hash": rows[0]["data_hash"][:16],
                "host": platform.node(),
                "learning_curve": png_markdown(curve_png, "learning curve"),
            },
        )

    return _model


def _intact(row: pd.Series) -> bool:
    from pathlib import Path

    p = Path(row["path"])
    return p.exists() and file_sha256(p) == row["file_sha256"]


ASSETS: list[dg.AssetsDefinition] = []
for _domain in ("soil_moisture", "streamflow"):
    _plan_asset = build_plan_asset(_domain)
    _ts_asset = build_training_set_asset(_domain, _plan_asset)
    ASSETS += [_plan_asset, _ts_asset, build_model_asset(_domain, _ts_asset)]
