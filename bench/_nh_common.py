"""Pieces shared by the benchmarks against neuralhydrology (``bench_vs_neuralhydrology.py``,
``bench_time_to_accuracy.py``).

Imported by both sides: by the project's venv (our side) and by the neuralhydrology venv (the
``--nh-child`` subprocess), so nothing here imports either library at module level.
"""

from __future__ import annotations

import datetime
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FORCINGS = ("total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum")
TARGET = "streamflow"
NH_PYTHON = "/work/nh-venv/bin/python"


def default_data() -> str:
    """``$SYNERGY_REAL_DATA/caravan`` (default ``../shared/data/caravan`` next to the repository)."""
    real = os.environ.get("SYNERGY_REAL_DATA", str(ROOT.parent / "shared" / "data"))
    return str(Path(real) / "caravan")


def caravan_gauges(data: str | Path, n: int) -> list[str]:
    """The first ``n`` Caravan ``camels`` basins (sorted ids) of the CSV layout under ``data``."""
    files = sorted((Path(data) / "timeseries" / "csv" / "camels").glob("*.csv"))[:n]
    return [f.stem for f in files]


def ddmmyyyy(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"


def days_before(iso: str, n: int) -> str:
    """The ISO date ``n`` days before ``iso``."""
    return (datetime.date.fromisoformat(iso) - datetime.timedelta(days=n)).isoformat()


def load_average() -> float:
    return os.getloadavg()[0]


def median(values: Iterable[float]) -> float:
    """Median of the finite values (NaN when there is none)."""
    v = sorted(x for x in values if x is not None and math.isfinite(x))
    if not v:
        return float("nan")
    m = len(v) // 2
    return v[m] if len(v) % 2 else 0.5 * (v[m - 1] + v[m])


# --- neuralhydrology side (run with the neuralhydrology venv) ---------------------------------------


def patch_caravan_csv() -> None:
    """Make neuralhydrology's ``caravan`` dataset read our CSV copy, with pandas-3 date handling."""
    from neuralhydrology.datasetzoo import caravan

    # The Caravan dataset reads netCDF by default; our copy holds the CSV files of the same layout.
    def load_csv(self: caravan.Caravan, basin: str) -> object:
        df = caravan.load_caravan_timeseries(self.cfg.data_dir, basin, filetype="csv")
        # pandas 3 parses dates at microsecond resolution; neuralhydrology's frequency arithmetic
        # assumes nanoseconds (with [us] it finds one sample per basin).
        df.index = df.index.astype("datetime64[ns]")
        return df

    caravan.Caravan._load_basin_data = load_csv


def nh_config(
    *,
    work: Path,
    gauges: list[str],
    data: str,
    hidden: int,
    seq: int,
    batch: int,
    periods: dict[str, tuple[str, str]],
    predict_last_n: int,
    loss: str = "RMSE",
    **extra: Any,
) -> dict[str, Any]:
    """A neuralhydrology run configuration (``cudalstm``, Adam lr 1e-3, CPU, forcings only).

    ``periods`` maps ``train``/``validation``/``test`` to ISO (first scored day, last day), and each
    sample (window) is to end on a day of the period with ``seq - 1`` days of history before it.
    neuralhydrology prepends only ``seq - predict_last_n`` warm-up days to a period (none at
    ``predict_last_n = seq``: its first sample then ends ``seq - 1`` days into the period, so a
    one-year period yields one sample per basin), so each period is given starting
    ``predict_last_n - 1`` days early here (0 for the many-to-one ``predict_last_n = 1``).
    """
    basin_file = work / "basins.txt"
    basin_file.write_text("\n".join(gauges) + "\n")
    cfg: dict[str, Any] = {
        "experiment_name": "bench",
        "run_dir": str(work / "runs"),
        "train_basin_file": str(basin_file),
        "validation_basin_file": str(basin_file),
        "test_basin_file": str(basin_file),
        "device": "cpu",
        "seed": 0,
        "model": "cudalstm",
        "head": "regression",
        "output_activation": "linear",
        "hidden_size": hidden,
        "initial_forget_bias": 3,
        "output_dropout": 0.0,
        "optimizer": "Adam",
        "loss": loss,
        "learning_rate": {0: 1e-3},
        "batch_size": batch,
        "epochs": 1,
        "seq_length": seq,
        "predict_last_n": predict_last_n,
        "num_workers": 0,
        "log_interval": 1000,
        "log_tensorboard": False,
        "log_n_figures": 0,
        "save_weights_every": 1,
        "metrics": ["NSE"],
        "dataset": "caravan",
        "data_dir": str(data),
        "dynamic_inputs": list(FORCINGS),
        "target_variables": [TARGET],
        "clip_targets_to_zero": [TARGET],
        "static_attributes": [],
        "verbose": 0,
    }
    for name, (start, end) in periods.items():
        cfg[f"{name}_start_date"] = ddmmyyyy(days_before(start, predict_last_n - 1))
        cfg[f"{name}_end_date"] = ddmmyyyy(end)
    cfg.update(extra)
    return cfg


def time_model_passes(tester: Any) -> list[float]:
    """Wrap ``tester._evaluate`` (its forward passes over one basin's loader) to sum its wall time
    into the returned one-element list."""
    total = [0.0]
    inner: Callable[..., Any] = tester._evaluate

    def timed(*a: object, **k: object) -> object:
        t = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            total[0] += time.perf_counter() - t

    tester._evaluate = timed
    return total


def nh_nses(results: dict[str, Any]) -> list[float]:
    """Per-basin NSE from a neuralhydrology tester's ``evaluate`` results."""
    return [float(v["1D"].get("NSE", float("nan"))) for v in results.values()]


# --- our side (run with the project venv) -----------------------------------------------------------


def read_ours(data: str, gauges: list[str]) -> Any:
    """``read_caravan`` of the basins, forcings and target only (the inputs neuralhydrology gets)."""
    from synergy_dagster.sources.caravan import read_caravan

    ds = read_caravan(data, "camels", gauges=gauges, fmt="csv")
    return ds.drop_vars([v for v in ds.data_vars if v not in (*FORCINGS, TARGET)])
