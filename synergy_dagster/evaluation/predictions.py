"""The test-period series of every evaluated model, kept as one CF NetCDF file per domain.

Layout of the file (``Layout.predictions(domain)``, written by the ``evaluation`` asset from the
predictions it scores, so the file holds exactly the series behind ``site_metrics``):

- dims ``site`` (every site some model was judged on, once, sorted ids), ``time`` (the test days)
  and ``model``; a small ``evaluation`` dim lists which model each (experiment, region, scenario)
  comparison scores;
- ``simulated`` (site, time, model), float32, physical units; NaN where the model did not predict
  the site (it lies outside the regions the model is judged on);
- ``observed`` (site, time): the target on the test days;
- on ``site``: ``lat``, ``lon`` and the region tags ``subregion``, ``l1``, ``l2``, ``l3`` ("" where
  untagged); on ``model``: ``set_key``, ``scenario``, ``region``, ``seed`` and ``budget``.

Model names: ``<set key>`` is the series the ``seed = "mean"`` metric rows score (the seed mean of
an ensemble, the only seed otherwise); with several seeds each seed is also ``<set key>/seed<k>``.
A set that several plan entries share (``trained_as``) appears once, under the trained set's key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from synergy_dagster.evaluation.study import Predictions, seed_mean
from synergy_dagster.io_utils import atomic_path
from synergy_dagster.models.predict import warmup_window
from synergy_dagster.sources.sitedata import target_name

__all__ = ["TAG_COLUMNS", "evaluation_models", "model_name", "predictions_dataset", "write_predictions"]

TAG_COLUMNS = ("subregion", "l1", "l2", "l3")
TIME_UNITS = "days since 1970-01-01"
CONVENTIONS = "CF-1.8"
# Site chunks of the compressed cube: one model's series of a block of sites is one read.
_SITE_CHUNK = 256


def model_name(set_key: str, seed: int | None = None) -> str:
    """``<set key>`` (the scored, seed-mean series) or ``<set key>/seed<k>``."""
    return set_key if seed is None else f"{set_key}/seed{seed}"


def _model_table(predictions: Predictions) -> pd.DataFrame:
    """One row per model entry of the file: name, set key, seed label and where its series comes
    from (``source_seed``: a seed, or None for the seed mean)."""
    rows = []
    for key, (_, by_seed) in predictions.items():
        seeds = sorted(by_seed)
        if len(seeds) == 1:
            rows.append((model_name(key), key, str(seeds[0]), seeds[0]))
            continue
        rows.append((model_name(key), key, "mean", None))
        rows.extend((model_name(key, s), key, str(s), s) for s in seeds)
    table = pd.DataFrame(rows, columns=["model", "set_key", "seed", "source_seed"])
    parts = table["set_key"].str.partition(":")
    table["scenario"], table["region"] = parts[0], parts[2]
    return table


def predictions_dataset(
    ds: xr.Dataset,
    evaluations: pd.DataFrame,
    predictions: Predictions,
    test: slice,
    warmup: int,
    *,
    tags: pd.DataFrame | None = None,
    budget: str | None = None,
) -> xr.Dataset:
    """The predictions file's content (module docstring) from the ``predictions`` the evaluation
    scored. ``tags`` is indexed by site id with any of :data:`TAG_COLUMNS`.

    The cube is allocated once and each model's block is copied into it (no per-model arrays are
    kept); with an ensemble, the seed mean is computed exactly as the evaluation computes it.
    """
    _, test_days = warmup_window(ds, test, warmup)
    target = target_name(ds)
    sites = pd.Index(sorted(set().union(*(order for order, _ in predictions.values()))), name="site")
    models = _model_table(predictions)
    cube = np.full((len(sites), len(test_days), len(models)), np.nan, dtype=np.float32)
    for m, row in enumerate(models.itertuples()):
        order, by_seed = predictions[row.set_key]
        # source_seed is NaN for the seed-mean entry (pandas turns None into NaN)
        series = seed_mean(by_seed) if pd.isna(row.source_seed) else by_seed[int(row.source_seed)]
        cube[sites.get_indexer(order), :, m] = series
    obs = ds[target].sel(site=sites.to_numpy(), time=test_days)
    units = str(ds[target].attrs.get("units", ""))
    label = str(ds[target].attrs.get("long_name", target.replace("_", " ")))
    tag_table = (tags if tags is not None else pd.DataFrame(index=sites)).reindex(sites)
    coords: dict[str, tuple[str, np.ndarray, dict[str, str]]] = {
        "lat": ("site", obs["lat"].to_numpy(), {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("site", obs["lon"].to_numpy(), {"standard_name": "longitude", "units": "degrees_east"}),
    }
    for col in TAG_COLUMNS:
        values = tag_table[col] if col in tag_table else pd.Series(index=sites, dtype=object)
        # NetCDF strings cannot be missing: an untagged site has "".
        text = values.astype(object).where(values.notna(), "").astype(str).to_numpy()
        coords[col] = ("site", text, {"long_name": f"EPA ecoregion tag ({col})"})
    for col, what in (
        ("set_key", "training set (partition key)"),
        ("scenario", "training-set scenario"),
        ("region", "training-set region"),
        ("seed", "seed, or 'mean' for the ensemble mean"),
    ):
        coords[col] = ("model", models[col].to_numpy(dtype=str), {"long_name": what})
    coords["budget"] = ("model", np.full(len(models), budget or "", dtype=object).astype(str), {})
    evals = evaluations.reset_index(drop=True)
    scored = pd.Series(models["model"].to_numpy(), index=models["set_key"]).groupby(level=0).first()
    for col, what in (("experiment", "experiment"), ("region", "region"), ("scenario", "scenario")):
        coords[f"evaluation_{col}"] = (
            "evaluation",
            evals[col].to_numpy(dtype=str),
            {"long_name": f"{what} of a comparison"},
        )
    coords["evaluation_model"] = (
        "evaluation",
        scored.reindex(evals["model_key"]).to_numpy(dtype=str),
        {"long_name": "the model (name) this comparison scores"},
    )
    out = xr.Dataset(
        {
            "simulated": xr.Variable(
                ("site", "time", "model"),
                cube,
                {"long_name": f"simulated {label}", "units": units, "target": target},
            ),
            "observed": xr.Variable(
                ("site", "time"),
                obs.to_numpy().astype(np.float32, copy=False),
                {"long_name": f"observed {label}", "units": units, "target": target},
            ),
        },
        coords={
            "site": ("site", sites.to_numpy(dtype=str), {"cf_role": "timeseries_id", "long_name": "site id"}),
            "time": ("time", test_days.to_numpy(), {"standard_name": "time", "long_name": "test day"}),
            "model": ("model", models["model"].to_numpy(dtype=str), {"long_name": "model (set key[/seed])"}),
            **coords,
        },
        attrs={
            "Conventions": CONVENTIONS,
            "title": f"Simulated and observed {label} on the test period, {ds.attrs.get('domain', '')}",
            "domain": str(ds.attrs.get("domain", "")),
            "source": str(ds.attrs.get("source", "")),
            "budget": budget or "",
            "test_period": f"{test_days[0]:%Y-%m-%d}/{test_days[-1]:%Y-%m-%d}" if len(test_days) else "",
            "warmup_days": int(warmup),
            "comment": "model '<set key>' is the scored series (seed mean of an ensemble); NaN where "
            "a model did not predict a site",
            "references": "Fang, Kifer, Lawson, Feng & Shen (2022), Water Resources Research",
        },
    )
    return out


def evaluation_models(predictions: xr.Dataset) -> pd.DataFrame:
    """The file's ``evaluation`` table: experiment, region, scenario and the model it scores."""
    return pd.DataFrame(
        {
            c: predictions[f"evaluation_{c}"].to_numpy().astype(str)
            for c in ("experiment", "region", "scenario", "model")
        }
    )


def write_predictions(predictions: xr.Dataset, path: str | Path) -> Path:
    """Write atomically (temp file + rename) with time as ``days since 1970-01-01`` and the cube
    compressed in site blocks; returns ``path``."""
    n_site, n_time = predictions.sizes["site"], predictions.sizes["time"]
    chunks = (max(1, min(n_site, _SITE_CHUNK)), max(1, n_time), 1)
    encoding: Mapping[str, dict[str, object]] = {
        "time": {"units": TIME_UNITS, "calendar": "standard", "dtype": "int32"},
        "simulated": {"zlib": True, "complevel": 1, "chunksizes": chunks, "_FillValue": np.float32("nan")},
        "observed": {"zlib": True, "complevel": 1, "_FillValue": np.float32("nan")},
        "lat": {"_FillValue": None},
        "lon": {"_FillValue": None},
    }
    with atomic_path(path) as tmp:
        predictions.to_netcdf(tmp, engine="netcdf4", encoding=dict(encoding))
    return Path(path)
