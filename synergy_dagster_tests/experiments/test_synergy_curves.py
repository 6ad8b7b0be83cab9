"""Synergy curves: the sets a curve needs (nested, deterministic, unique valid keys, grid clipped to
the smallest pool), the slope estimators on synthetic data with a known slope, the study-file
block, and the ``synergy_curves`` asset on a tiny virtual study (through the CLI)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from synergy_dagster.config import PlanConfig
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.evaluation.synergy import (
    bootstrap_p,
    bootstrap_slopes,
    curve_evaluations,
    curve_points,
    curve_table,
    dose,
    ols_slope,
    ols_slope_se,
    slope_table,
)
from synergy_dagster.experiments.plan import build_plan, parse_set_key
from synergy_dagster.experiments.synergy import (
    CURVE_EXPERIMENT,
    CurveConfig,
    curve_grid,
    curves_of,
    parse_curve_scenario,
)
from synergy_dagster.regions.subregions import subregions_of
from synergy_dagster.study_file import parse_study
from synergy_dagster_tests.runconfig import SMALL_STUDY, TINY_STUDY, study_cli

# ROI 8.3.5 (6 sites); close pool: rest of 8.3 (22); far: rest of Level I 8 (30); dissimilar: 9.x (40).
LAYOUT = {"8.3.5": 6, "8.3.4": 12, "8.3.1": 10, "8.1.1": 15, "8.1.2": 15, "9.2.3": 25, "9.4.2": 15}
CFG = PlanConfig(min_sites_subregion=1000, min_sites_roi=6)
CURVES = CurveConfig(grid=(5, 10, 20, 40), draws=3, seed=1, rois=("8.3.5",))


def tagged() -> pd.DataFrame:
    rows = [
        {"site_id": f"s{l3.replace('.', '')}_{i:02d}", "l1": l3.split(".")[0], "l2": ".".join(l3.split(".")[:2]), "l3": l3}
        for l3, n in LAYOUT.items()
        for i in range(n)
    ]  # fmt: skip
    df = pd.DataFrame(rows)
    df["subregion"] = subregions_of(df["l1"], df["l2"])
    return df


def curve_rows(curves: CurveConfig = CURVES) -> pd.DataFrame:
    plan = build_plan(tagged(), "streamflow", CFG, rois_preferred=["8.3.5"], curves=curves)
    return plan.sets[plan.sets["experiment"] == CURVE_EXPERIMENT]


def test_grid_is_clipped_to_the_smallest_pool_and_holds_zero_and_its_size() -> None:
    assert curve_grid(22, (5, 10, 20, 40)) == (0, 5, 10, 20, 22)
    assert curve_grid(20, (5, 10, 20, 40)) == (0, 5, 10, 20)
    assert curve_grid(3, (5, 10)) == (0, 3)
    assert curve_grid(0, (5,)) == ()
    sets = curve_rows()
    parsed = pd.DataFrame([parse_curve_scenario(s) for s in sets["scenario"]], columns=["pool", "k", "draw"])
    for pool in ("close", "far", "dissimilar"):
        ks = set(parsed.loc[(parsed["pool"] == pool), "k"].dropna().astype(int))
        assert ks == {0, 5, 10, 20, 22}, pool  # smallest pool: close, 22 sites
        assert parsed[(parsed["pool"] == pool) & parsed["k"].isna()].shape[0] == 1  # "all", once


def test_draws_are_nested_deterministic_and_differ_between_draws() -> None:
    sets = curve_rows()
    again = curve_rows()
    pd.testing.assert_frame_equal(sets.reset_index(drop=True), again.reset_index(drop=True))
    by_key = dict(zip(sets["scenario"], sets["site_ids"], strict=True))
    roi = set(by_key["curve+far@0_d0"])
    assert len(roi) == 6 and all(s.startswith("s835_") for s in roi)
    for pool in ("close", "far", "dissimilar"):
        for d in range(3):
            chain = [
                set(by_key[f"curve+{pool}@{k}_d{d}"] if k else by_key[f"curve+{pool}@0_d0"])
                for k in (0, 5, 10, 20, 22)
            ]
            assert [len(c) - 6 for c in chain] == [0, 5, 10, 20, 22]
            assert all(a < b for a, b in zip(chain, chain[1:], strict=False))  # nested
        assert set(by_key[f"curve+{pool}@all_d0"]) >= set(by_key[f"curve+{pool}@22_d0"])
    assert by_key["curve+far@5_d0"] != by_key["curve+far@5_d1"]  # draws differ
    # another seed draws other sites
    other = curve_rows(CurveConfig(grid=(5,), draws=1, seed=2)).set_index("scenario")["site_ids"]
    assert other["curve+far@5_d0"] != by_key["curve+far@5_d0"]


def test_keys_are_unique_valid_partition_keys_and_identical_sets_are_trained_once() -> None:
    plan = build_plan(tagged(), "streamflow", CFG, rois_preferred=["8.3.5"], curves=CURVES)
    assert plan.sets["key"].is_unique
    curve = plan.sets[plan.sets["experiment"] == CURVE_EXPERIMENT]
    for key in curve["key"]:
        assert parse_set_key(key)[1] == "8.3.5"
        assert "..." not in key and "," not in key
    trained = dict(zip(curve["key"], curve["trained_as"], strict=True))
    assert trained["curve+close@0_d0:8.3.5"] == "local:8.3.5"
    assert trained["curve+far@all_d0:8.3.5"] == "local+far:8.3.5"
    assert trained["curve+close@22_d1:8.3.5"] == "local+close:8.3.5"  # the whole (smallest) pool
    # default off: a plan without the block has exactly the sets it had before
    plain = build_plan(tagged(), "streamflow", CFG, rois_preferred=["8.3.5"])
    assert CURVE_EXPERIMENT not in set(plain.sets["experiment"])
    pd.testing.assert_frame_equal(
        plain.sets.reset_index(drop=True),
        plan.sets[plan.sets["experiment"] != CURVE_EXPERIMENT].reset_index(drop=True),
    )
    with pytest.raises(InputError, match=r"unknown scenario 'curve\+near@5_d0'"):
        parse_set_key("curve+near@5_d0:8.3.5")


def test_study_file_block_is_validated_and_off_by_default() -> None:
    base = {"name": "x", "virtual": {}, "domains": {"streamflow": {
        "reader": "caravan", "target": "q", "dynamic": ["p"],
        "periods": {"train": {"start": "2000-01-01", "end": "2001-01-01"}, "test": {"start": "2001-01-02", "end": "2002-01-01"}},
    }}}  # fmt: skip
    assert parse_study(base).synergy_curves is None
    assert curves_of(parse_study(base)) is None
    on = parse_study({**base, "synergy_curves": {"enabled": True, "grid": [10, 5], "rois": ["8.3.5"]}})
    cfg = curves_of(on)
    assert cfg is not None and cfg.grid == (5, 10) and cfg.rois == ("8.3.5",) and cfg.draws == 3
    assert curves_of(parse_study({**base, "synergy_curves": {"grid": [5]}})) is None  # not enabled
    for bad, what in (
        ({"enabled": True, "gird": [5]}, "synergy_curves.gird: unknown key"),
        ({"pools": ["near"]}, "synergy_curves.pools"),
        ({"grid": [5, 5]}, "listed twice"),
        ({"grid": [0]}, "synergy_curves.grid"),
        ({"draws": 0}, "synergy_curves.draws"),
    ):
        with pytest.raises(ConfigError, match=what):
            parse_study({**base, "synergy_curves": bad})


def test_ols_slope_and_its_standard_error_match_scipy() -> None:
    rng = np.random.default_rng(0)
    x = dose([0, 5, 10, 20, 40, 80])
    y = 0.3 + 0.05 * x + rng.normal(0, 0.01, x.size)
    ref = stats.linregress(x, y)
    assert ols_slope(x, y) == pytest.approx(ref.slope)
    assert ols_slope_se(x, y) == pytest.approx(ref.stderr)
    assert ols_slope(x, np.stack([y, 2 * y])) == pytest.approx([ref.slope, 2 * ref.slope])  # batched
    assert bootstrap_p(np.full(999, 1.0)) == pytest.approx(2 / 1000)
    assert bootstrap_p(np.r_[-np.ones(500), np.ones(500)]) == 1.0


def synthetic_values(
    slopes: list[float], n_sites: int = 40, n_draws: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Site metrics [pool, k, draw, site] = site level + slope * log2(1 + k) + draw and site noise."""
    rng = np.random.default_rng(seed)
    ks = np.array([0, 5, 10, 20, 40])
    x = dose(ks)
    site = rng.normal(0.5, 0.15, n_sites)
    vals = np.empty((len(slopes), len(ks), n_draws, n_sites))
    for p, b in enumerate(slopes):
        draw = rng.normal(0, 0.004, (len(ks), n_draws, 1))
        draw[0] = 0.0  # k = 0 is one set for every draw
        vals[p] = site + b * x[:, None, None] + draw + rng.normal(0, 0.01, (len(ks), n_draws, n_sites))
    return vals, x


def test_bootstrap_recovers_a_known_slope_and_the_difference_between_pools() -> None:
    vals, x = synthetic_values([0.02, 0.0, -0.01])
    point, reps = bootstrap_slopes(vals, x, n_boot=400, seed=3)
    assert point == pytest.approx([0.02, 0.0, -0.01], abs=0.003)
    se = reps.std(axis=0, ddof=1)
    assert np.all((se > 0) & (se < 0.004))
    lo, hi = np.percentile(reps, [2.5, 97.5], axis=0)
    assert np.all((lo <= [0.02, 0.0, -0.01]) & (hi >= [0.02, 0.0, -0.01]))
    assert bootstrap_p(reps[:, 0] - reps[:, 1]) < 0.01  # 0.02 vs 0: different slopes
    # deterministic, and memory chunks do not change the replicates
    assert np.array_equal(reps, bootstrap_slopes(vals, x, 400, 3, chunk_elems=5_000)[1])


def synthetic_site_metrics(slopes: dict[str, float], rois: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A plan with curves for ``rois`` and per-site metrics whose NSE rises by ``slopes[pool]`` per
    doubling of added sites (RMSE falls by the same)."""
    plan = build_plan(
        tagged(),
        "streamflow",
        CFG,
        rois_preferred=rois,
        curves=CurveConfig(grid=(5, 10, 20), draws=3, seed=0),
    )
    pts = curve_points(plan.sets)
    evals = curve_evaluations(plan.sets, "streamflow")
    rng = np.random.default_rng(1)
    frames = []
    for row in pts.itertuples():
        sites = list(
            evals.loc[
                evals["scenario"].eq(row.scenario) & evals["region"].eq(row.region), "eval_site_ids"
            ].iloc[0]
        )
        level = np.linspace(0.3, 0.7, len(sites))
        gain = slopes[row.pool] * np.log2(1 + row.k) + rng.normal(0, 0.002)
        nse = level + gain + rng.normal(0, 0.005, len(sites))
        for seed in ("mean", "0", "1"):
            frames.append(pd.DataFrame({
                "domain": "streamflow", "experiment": CURVE_EXPERIMENT, "scenario": row.scenario,
                "region": row.region, "seed": seed, "site_id": sites, "model_key": row.model_key,
                "nse": nse, "kge": nse, "corr": nse, "rmse": 1 - nse, "ubrmse": 1 - nse, "bias": 0 * nse,
            }))  # fmt: skip
    return pts, pd.concat(frames, ignore_index=True)


def test_curve_and_slope_tables_recover_known_slopes_per_roi_and_overall() -> None:
    slopes_true = {"close": 0.03, "far": 0.015, "dissimilar": 0.0}
    pts, sm = synthetic_site_metrics(slopes_true, ["8.3.5", "8.3.4"])
    assert set(pts["region"]) == {"8.3.5", "8.3.4"}
    curves = curve_table(pts, sm)
    one = curves[(curves["region"] == "8.3.5") & (curves["metric"] == "nse") & (curves["pool"] == "far")]
    assert list(one["k"]) == [0, 5, 10, 20, 22, 30] and list(one["point"]) == ["grid"] * 5 + ["all"]
    assert list(one["n_draws"]) == [1, 3, 3, 3, 3, 1] and one["n_eval_sites"].iloc[0] == 6
    table = slope_table(pts, sm, n_boot=300, seed=0, metrics=["nse", "rmse"])
    single = table[table["versus"].isna()].set_index(["region", "metric", "pool"])
    for region in ("8.3.5", "8.3.4", "All"):
        for pool, b in slopes_true.items():
            assert single.loc[(region, "nse", pool), "slope"] == pytest.approx(b, abs=0.004)
            assert single.loc[(region, "rmse", pool), "slope"] == pytest.approx(-b, abs=0.004)
            assert single.loc[(region, "rmse", pool), "gain"] == pytest.approx(b, abs=0.004)  # signed: better
    diff = table[(table["region"] == "All") & (table["metric"] == "nse") & table["versus"].notna()]
    cd = diff[(diff["pool"] == "dissimilar") & (diff["versus"] == "close")].iloc[0]
    assert cd["slope"] == pytest.approx(-0.03, abs=0.005) and cd["p_value"] < 0.05
    assert cd["ci_low"] < cd["slope"] < cd["ci_high"] < 0
    assert (single.loc[("All", "nse", "close"), "n_rois"]) == 2
    assert set(table["aggregation"]) == {"seed_mean"}  # the stored rows name the seed rows they judged
    assert table.equals(slope_table(pts, sm, n_boot=300, seed=0, metrics=["nse", "rmse"]))  # seeded


CURVE_OVERRIDES = (
    "synergy_curves.enabled=true",
    "synergy_curves.grid=[3, 6]",
    "synergy_curves.draws=2",
    "synergy_curves.rois=['8.3.4']",
    "synergy_curves.bootstrap=200",
)


@pytest.mark.slow
def test_the_asset_on_a_tiny_virtual_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synergy_dagster import cli

    for var in ("DAGSTER_HOME", "SYNERGY_STUDY", "SYNERGY_DATA_DIR", "SYNERGY_OVERRIDES"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    assert cli.main(study_cli(data, *SMALL_STUDY, *CURVE_OVERRIDES)) == 0
    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        sets = con.execute(
            "SELECT set_key, trained_as FROM training_sets WHERE experiment = ?", [CURVE_EXPERIMENT]
        ).df()
        curves = con.execute("SELECT * FROM synergy_curves WHERE metric = 'rmse'").df()
        slopes = con.execute("SELECT * FROM synergy_slopes WHERE metric = 'rmse'").df()
    assert len(sets) and all(k.endswith(":8.3.4") for k in sets["set_key"])
    assert set(curves["pool"]) == {"close", "far", "dissimilar"} and set(curves["budget"]) == {
        "equal_updates"
    }
    assert (
        curves["value"].between(0, 1).all()
        and (curves["n_eval_sites"] == curves["n_eval_sites"].iloc[0]).all()
    )
    grid = curves[curves["point"] == "grid"]
    assert set(grid["k"]) >= {0, 3, 6} and grid.groupby("pool")["k"].max().nunique() == 1  # common k_max
    assert len(slopes[slopes["versus"].isna()]) == 3 and len(slopes[slopes["versus"].notna()]) == 3
    assert np.isfinite(slopes["slope"]).all() and (slopes["se"] > 0).all()
    assert (slopes["aggregation"] == "seed_mean").all()
    for name in ("soil_moisture_curves", "soil_moisture_slopes", "soil_moisture_site_metrics"):
        assert (data / "evaluation" / "synergy_curves" / f"{name}.parquet").exists()
    png = data / "evaluation" / "figures" / "soil_moisture_synergy_curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    # the block turned off: the asset alone removes the curves it wrote, files and rows together
    from synergy_dagster.defs.assets.synergy import synergy_curves
    from synergy_dagster.defs.resources import ComputeResource, MetadataStoreResource, StudyResource

    off = StudyResource(
        study_file=str(TINY_STUDY),
        data_dir=str(data),
        overrides=[*SMALL_STUDY, "run.domains=[soil_moisture]"],
    )
    store = MetadataStoreResource(path=str(data / "synergy.duckdb"))
    result = dg.materialize(
        [synergy_curves], resources={"study": off, "store": store, "compute": ComputeResource()}
    )
    assert result.success
    assert not list((data / "evaluation" / "synergy_curves").glob("*.parquet")) and not png.exists()
    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM synergy_curves").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM synergy_slopes").fetchone()[0] == 0


REAL_STUDY = """\
name: real-curves-small
data_dir: {data}
ecoregions: {real}/ecoregions/us_eco_l3.gpkg
profile: demo
budget: {{mode: equal_updates, updates: 30, eval_every: 10}}
synergy_curves: {{enabled: true, grid: [5], draws: 1, rois: ["8.3.5"], bootstrap: 200}}
domains:
  soil_moisture:
    reader: pixel_cube
    path: {real}/smap/smap_conus_v4f1.nc
    target: SMAP_AM
    dynamic: [APCP_FORA, TMP_2_FORA, DSWRF_FORA]
    static: [Clay, Sand, NDVI]
    periods:
      train: {{start: 2015-04-01, end: 2016-03-31}}
      test: {{start: 2016-04-01, end: 2017-03-31}}
"""


@pytest.mark.slow
def test_curves_on_the_real_smap_pixels_at_a_small_size(
    real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Curves on real data in CI: ROI 8.3.5 of the SMAP cube, one draw, k in {0, 5, n_min, all}."""
    from synergy_dagster import cli

    for var in ("DAGSTER_HOME", "SYNERGY_STUDY", "SYNERGY_DATA_DIR", "SYNERGY_OVERRIDES"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    study = tmp_path / "real_small.yaml"
    study.write_text(REAL_STUDY.format(data=data, real=real_data))
    assert cli.main(["study", "--config", str(study)]) == 0
    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        curves = con.execute("SELECT * FROM synergy_curves WHERE metric = 'rmse'").df()
        slopes = con.execute("SELECT * FROM synergy_slopes WHERE metric = 'rmse' AND versus IS NULL").df()
    assert set(curves["region"]) == {"8.3.5"} and set(curves["pool"]) == {"close", "far", "dissimilar"}
    assert curves["value"].between(0, 0.2).all()  # m3/m3
    assert set(slopes["pool"]) == {"close", "far", "dissimilar"} and np.isfinite(slopes["slope"]).all()
