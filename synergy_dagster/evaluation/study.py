"""Run the evaluation of one domain: test-period predictions of every planned model on the sites
it is judged on, and per-site metrics on a common mask, per seed and for the seed mean.

Free of Dagster; the ``evaluation``, ``spatial_evaluation`` and ``synergy_curves`` assets call
:func:`predict_evaluations` (one prediction pass with :func:`predict_models`, scored with
:func:`evaluate_domain`); the first keeps the predictions as its file (:mod:`.predictions`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from synergy_dagster.config import Period
from synergy_dagster.evaluation.metrics import all_metrics, common_mask
from synergy_dagster.layout import Layout
from synergy_dagster.models.normalization import Normalizer, prepare_arrays
from synergy_dagster.models.predict import predict, warmup_window
from synergy_dagster.sources.sitedata import target_name
from synergy_dagster.sources.usgs_masks import evaluation_view
from synergy_dagster.sources.usgs_spec import UsgsSpec

METRIC_NAMES = ("rmse", "ubrmse", "bias", "corr", "nse", "kge")


class _Comparisons(dict[str, list[tuple[str, str, str]]]):
    """``COMPARISONS[experiment]``; global vs local under another regionalisation
    (``global_vs_local@<scheme>``, see :mod:`synergy_dagster.regions.schemes`) is compared as the
    paper's global vs local. Iterating yields the paper's experiments only."""

    def __missing__(self, experiment: str) -> list[tuple[str, str, str]]:
        base, sep, _ = str(experiment).partition("@")
        if sep and base == "global_vs_local":
            return self[base]
        raise KeyError(experiment)


# The paper's comparisons; the "_sized" experiment uses the size-controlled scenarios.
COMPARISONS: dict[str, list[tuple[str, str, str]]] = _Comparisons(
    {
        "global_vs_local": [("global vs local", "global", "local")],
        "similarity": [
            ("local vs local+close", "local", "local+close"),
            ("local+close vs local+far", "local+close", "local+far"),
            ("local+far vs local+dissimilar", "local+far", "local+dissimilar"),
            ("local+close vs local+dissimilar", "local+close", "local+dissimilar"),
        ],
        "similarity_sized": [
            ("local vs local+close_sized", "local", "local+close_sized"),
            ("local+close_sized vs local+far_sized", "local+close_sized", "local+far_sized"),
            ("local+far_sized vs local+dissimilar_sized", "local+far_sized", "local+dissimilar_sized"),
            ("local+close_sized vs local+dissimilar_sized", "local+close_sized", "local+dissimilar_sized"),
        ],
    }
)


def predict_test(
    ds: xr.Dataset,
    states: Mapping[int, Mapping[str, torch.Tensor]],
    normalizer: Normalizer,
    sites: Sequence[str],
    hidden: int,
    test: slice,
    warmup: int,
    device: torch.device | None = None,
) -> dict[int, np.ndarray]:
    """Physical-unit predictions [site, test day] per seed from one full-sequence pass that starts
    ``warmup`` days before the test period; the warm-up days are cut off before scoring."""
    window, test_days = warmup_window(ds, test, warmup)
    arrays = prepare_arrays(ds, normalizer, window, list(sites))
    keep = arrays.time.isin(test_days)
    out = {}
    for seed, state in states.items():
        pred = predict(state, arrays, hidden=hidden, device=device)
        out[int(seed)] = normalizer.inverse_target(pred)[:, keep]
    return out


# model key -> (its sites in row order, {seed: physical-unit predictions [site, test day]})
Predictions = dict[str, tuple[list[str], dict[int, np.ndarray]]]
LoadModel = Callable[[str], tuple[Mapping[int, Mapping[str, torch.Tensor]], Normalizer]]


def predict_models(
    ds: xr.Dataset,
    evaluations: pd.DataFrame,
    load_model: LoadModel,
    hidden: int,
    test: slice,
    warmup: int,
    device: torch.device | None = None,
) -> Predictions:
    """Test-period predictions of every model the evaluations name, each predicted once on the
    union of the sites it is judged on (sorted ids), in the evaluations' order of models."""
    need: dict[str, set[str]] = {}
    for row in evaluations.itertuples():
        need.setdefault(row.model_key, set()).update(row.eval_site_ids)
    preds: Predictions = {}
    for key, sites in need.items():
        states, norm = load_model(key)
        order = sorted(sites)
        preds[key] = (order, predict_test(ds, states, norm, order, hidden, test, warmup, device))
    return preds


def seed_mean(by_seed: Mapping[int, np.ndarray]) -> np.ndarray:
    """The ensemble (seed-mean) prediction that the ``seed = "mean"`` metric rows score."""
    return np.mean(np.stack([by_seed[s] for s in sorted(by_seed)]), axis=0)


def evaluate_domain(
    ds: xr.Dataset,
    evaluations: pd.DataFrame,
    load_model: LoadModel,
    hidden: int,
    test: slice,
    warmup: int,
    device: torch.device | None = None,
    predictions: Predictions | None = None,
) -> pd.DataFrame:
    """Per-site metrics of every (experiment, region, scenario) row of the plan's evaluations.

    All scenarios compared within one (experiment, region) are scored on the same sites and days
    (a day counts only where the observation and every scenario's prediction are finite). Rows with
    ``seed`` = ``"<k>"`` per seed, ``"mean"`` for the seed-mean prediction and, with several seeds,
    ``"std"`` for the spread of each metric across seeds. ``predictions`` (from
    :func:`predict_models`) skips the prediction pass; ``load_model`` is then not called.
    """
    domain = ds.attrs["domain"]
    _, test_days = warmup_window(ds, test, warmup)
    obs_all = ds[target_name(ds)].sel(time=test_days)
    preds = predictions
    if preds is None:
        preds = predict_models(ds, evaluations, load_model, hidden, test, warmup, device)
    frames = []
    for (experiment, region), group in evaluations.groupby(["experiment", "region"], sort=False):
        sites = sorted(set().union(*map(set, group["eval_site_ids"])))
        obs = obs_all.sel(site=sites).values.astype(np.float64)
        sims: dict[str, dict[int, np.ndarray]] = {}
        for row in group.itertuples():
            order, by_seed = preds[row.model_key]
            idx = pd.Index(order).get_indexer(sites)
            sims[row.scenario] = {s: p[idx] for s, p in by_seed.items()}
        mask = common_mask(obs, [p for d in sims.values() for p in d.values()])
        o = np.where(mask, obs, np.nan)
        for scenario, by_seed in sims.items():
            model_key = group.loc[group["scenario"] == scenario, "model_key"].iloc[0]
            per_seed = {str(s): all_metrics(o, np.where(mask, p, np.nan)) for s, p in by_seed.items()}
            seeds = sorted(by_seed)  # each scenario's own ensemble
            mean_pred = seed_mean(by_seed)
            per_seed["mean"] = all_metrics(o, np.where(mask, mean_pred, np.nan))
            if len(seeds) > 1:
                stack = {m: np.stack([per_seed[str(s)][m] for s in seeds]) for m in METRIC_NAMES}
                per_seed["std"] = {m: np.nanstd(v, axis=0) for m, v in stack.items()}
            for seed_label, metrics in per_seed.items():
                frame = pd.DataFrame({m: metrics[m] for m in METRIC_NAMES})
                frame.insert(0, "site_id", sites)
                frame.insert(0, "seed", seed_label)
                frame.insert(0, "region", region)
                frame.insert(0, "scenario", scenario)
                frame.insert(0, "experiment", experiment)
                frame.insert(0, "domain", domain)
                frame["model_key"] = model_key
                frame["n_days"] = mask.sum(axis=1)
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)


class Evaluated(NamedTuple):
    """One domain's evaluation: the test data as scored, the predictions and their metrics."""

    ds: xr.Dataset  # the domain's sites with the target days ``usgs.evaluate`` leaves out masked
    n_masked: int  # how many target days that rule masked
    predictions: Predictions
    metrics: pd.DataFrame  # :func:`evaluate_domain`'s per-site rows


def model_hidden(models: pd.DataFrame) -> int:
    """The LSTM's hidden size, as the first of ``models`` (rows of the ``models`` table) recorded it
    in its config."""
    return int(models["config_json"].map(lambda s: json.loads(s)["hidden"]).iloc[0])


def predict_evaluations(
    layout: Layout,
    domain: str,
    usgs: UsgsSpec,
    test: Period,
    warmup: int,
    evaluations: pd.DataFrame,
    models: pd.DataFrame,
    load_model: LoadModel,
    device: torch.device | None = None,
) -> Evaluated:
    """Predict and score ``evaluations`` (plan rows) of ``domain`` on the test period: the sites
    under the study's ``usgs.evaluate`` rule, the hidden size that ``models`` recorded, every model
    that the rows name loaded once by ``load_model`` and run without autograd."""
    ds, n_masked = evaluation_view(xr.load_dataset(layout.sites_nc(domain)), usgs, test)
    hidden = model_hidden(models)
    with torch.inference_mode():
        preds = predict_models(ds, evaluations, load_model, hidden, test.slice, warmup, device)
    frame = evaluate_domain(ds, evaluations, load_model, hidden, test.slice, warmup, predictions=preds)
    return Evaluated(ds, n_masked, preds, frame)
