"""Timing of the evaluation hot paths: all metrics over many sites, and a full significance table.

Run: ``python bench/bench_metrics.py`` (sizes about those of the paper's streamflow study).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from synergy_dagster.evaluation.metrics import METRICS, all_metrics, common_mask
from synergy_dagster.evaluation.statistics import significance_table


def main(n_site: int = 3000, n_time: int = 1826, n_regions: int = 18) -> None:
    rng = np.random.default_rng(0)
    obs = rng.gamma(2.0, 1.0, (n_site, n_time))
    obs[rng.random(obs.shape) < 0.1] = np.nan
    sims = [obs + rng.normal(0, s, obs.shape) for s in (0.3, 0.5)]
    t0 = time.perf_counter()
    mask = common_mask(obs, sims)
    scored = [all_metrics(np.where(mask, obs, np.nan), np.where(mask, s, np.nan)) for s in sims]
    t1 = time.perf_counter()
    print(f"metrics: {len(METRICS)} metrics x 2 scenarios, {n_site} sites x {n_time} days: {t1 - t0:.2f} s")

    region = np.asarray([f"R{i % n_regions:02d}" for i in range(n_site)])
    frames = [
        pd.DataFrame({"region": region, "scenario": name, "site_id": np.arange(n_site).astype(str), **m})
        for name, m in zip(("global", "local"), scored, strict=True)
    ]
    site_metrics = pd.concat(frames, ignore_index=True)
    t0 = time.perf_counter()
    tab = significance_table(site_metrics, [("global vs local", "global", "local")], list(METRICS))
    t1 = time.perf_counter()
    print(f"significance_table: {len(tab)} rows (n_boot=2000): {t1 - t0:.2f} s")


if __name__ == "__main__":
    main()
