"""Other ways to regionalise: the study file's ``stratification`` block, the site -> region
assignment per scheme, the plan's scheme-qualified keys, the comparison of schemes, and on the
virtual CONUS (whose generator knows the true regional effects) that ecoregions carry information
random regions do not."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from synergy_dagster.config import PlanConfig
from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.evaluation.schemes import compare_schemes, explained_share, null_p, scheme_pairs
from synergy_dagster.evaluation.study import COMPARISONS
from synergy_dagster.experiments.plan import build_plan, parse_set_key, scheme_of_experiment
from synergy_dagster.regions.schemes import (
    SchemeInputs,
    assign_schemes,
    cluster_features,
    gauge_numbers,
    huc2_regions,
    n_random_regions,
    null_label,
    null_of,
    planned_null_draws,
    size_matched_null,
)
from synergy_dagster.regions.subregions import subregions_of
from synergy_dagster.sources import sitedata
from synergy_dagster.study_file import (
    ClimateScheme,
    Huc2Scheme,
    KmeansScheme,
    RandomScheme,
    parse_study,
)
from synergy_dagster_tests.runconfig import SMALL_STUDY, study_cli

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def _study(strat: object) -> object:
    raw = yaml.safe_load((STUDIES / "virtual.yaml").read_text())
    raw["stratification"] = strat
    return parse_study(raw, STUDIES / "virtual.yaml")


def _sites(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    letters = np.array(list("ABCDEF"))[np.arange(n) % 6]
    return pd.DataFrame(
        {
            "site_id": [f"camels_{i:08d}" for i in range(n)],
            "lat": rng.uniform(30, 45, n),
            "lon": rng.uniform(-120, -75, n),
            "subregion": letters,
            "l1": "8",
            "l2": "8.1",
            "l3": "8.1.1",
        }
    )


def _dataset(sites: pd.DataFrame, statics: dict[str, np.ndarray]) -> object:
    time = pd.date_range("2001-01-01", "2002-12-31")
    rng = np.random.default_rng(1)
    p = rng.gamma(0.5, 4.0, (len(sites), len(time)))
    t = (
        10
        + 15 * np.sin(2 * np.pi * time.dayofyear.to_numpy() / 365)[None, :]
        + sites["lat"].to_numpy()[:, None]
        - 40
    )
    return sitedata.make_site_dataset(
        domain="streamflow",
        source="test",
        site_ids=sites["site_id"].to_numpy(),
        time=time,
        lat=sites["lat"].to_numpy(),
        lon=sites["lon"].to_numpy(),
        target=("streamflow", p * 0.3, "mm/d"),
        dynamic={"P": (p, "mm/d"), "T": (t, "degC"), "PET": (np.full_like(p, 2.5), "mm/d")},
        static={k: (v, "1") for k, v in statics.items()},
    )


# --------------------------------------------------------------------------- the study file


def test_default_is_ecoregions_only() -> None:
    study = _study({})
    assert study.stratification.labels == ["ecoregions"]
    raw = yaml.safe_load((STUDIES / "virtual.yaml").read_text())
    assert parse_study(raw, STUDIES / "virtual.yaml").stratification.labels == ["ecoregions"]


def test_block_parses_kinds_and_parameters() -> None:
    study = _study(
        {
            "schemes": [
                "ecoregions",
                "random",
                {"kind": "kmeans", "k": 4, "seed": 3},
                {"kind": "kmeans", "name": "kmeans8", "k": 8},
                {"kind": "huc2", "polygons": "huc.gpkg"},
                {
                    "kind": "climate",
                    "domains": {"streamflow": {"classes": {"aridity": 3, "frac": [0.2, 0.5]}}},
                },
            ]
        }
    )
    specs = study.stratification.schemes
    assert study.stratification.labels == ["ecoregions", "random", "kmeans", "kmeans8", "huc2", "climate"]
    assert specs[2].k == 4 and specs[2].seed == 3
    assert Path(specs[4].polygons) == (STUDIES / "huc.gpkg").resolve()  # relative to the study file


@pytest.mark.parametrize(
    ("block", "says"),
    [
        ({"schemes": ["kmeans", "kmeans"]}, "used twice"),
        ({"schemes": [{"kind": "kmeans", "kk": 3}]}, "unknown key"),
        ({"schemes": ["nope"]}, "does not match"),
        ({"schemes": [{"kind": "ecoregions", "name": "eco"}]}, "keeps its name"),
        ({"schemes": [{"kind": "random", "name": "Bad:Name"}]}, "name"),
        ({"schemes": [{"kind": "kmeans", "k": 1}]}, "k"),
        (
            {"schemes": [{"kind": "climate", "domains": {"streamflow": {"classes": {"a": [2, 1]}}}}]},
            "ascending",
        ),
        ({"schemes": []}, "schemes"),
        ({"scheme": "kmeans"}, "unknown key"),
    ],
)
def test_bad_blocks_are_refused_naming_the_key(block: dict, says: str) -> None:
    with pytest.raises(ConfigError, match="stratification") as err:
        _study(block)
    assert says in str(err.value)


# --------------------------------------------------------------------------- assignment


def test_random_regions_equal_size_seeded_and_order_free() -> None:
    sites = _sites(103)
    inputs = SchemeInputs("streamflow", sites, min_sites=10)
    assert n_random_regions(inputs) == 6  # six letters with >= 10 sites each
    long, status = assign_schemes([RandomScheme()], inputs)
    sizes = long["region"].value_counts()
    assert len(sizes) == 6 and sizes.max() - sizes.min() <= 1
    shuffled = SchemeInputs("streamflow", sites.sample(frac=1, random_state=5), min_sites=10)
    again, _ = assign_schemes([RandomScheme()], shuffled)
    assert (
        again.set_index("site_id")["region"]
        .sort_index()
        .equals(long.set_index("site_id")["region"].sort_index())
    )
    other, _ = assign_schemes([RandomScheme(seed=1)], inputs)
    assert not other["region"].equals(long["region"])
    assert bool(status["applicable"].iloc[0]) and int(status["n_regions_min"].iloc[0]) == 6


def test_random_not_applicable_with_one_qualifying_subregion() -> None:
    sites = _sites(30).assign(subregion="A")
    _, status = assign_schemes([RandomScheme()], SchemeInputs("streamflow", sites, min_sites=10))
    assert not bool(status["applicable"].iloc[0]) and "needs two" in status["detail"].iloc[0]


def test_kmeans_finds_separated_groups_and_is_seeded() -> None:
    sites = _sites(90)
    group = np.arange(90) % 3
    rng = np.random.default_rng(0)
    statics = {"a": group * 10.0 + rng.normal(0, 0.5, 90), "b": rng.normal(0, 1, 90), "x=1": np.ones(90)}
    ds = _dataset(sites, statics)
    inputs = SchemeInputs("streamflow", sites, min_sites=10, ds=ds)
    long, status = assign_schemes([KmeansScheme(k=3, attributes={"streamflow": ["a"]})], inputs)
    table = pd.crosstab(long["region"], group)
    assert (table.to_numpy() > 0).sum() == 3  # each cluster is one group
    again, _ = assign_schemes([KmeansScheme(k=3, attributes={"streamflow": ["a"]})], inputs)
    assert again.equals(long)
    # default attributes: every static except one-hot indicators
    _, st = assign_schemes([KmeansScheme(k=3)], inputs)
    assert "z-scored ['a', 'b']" in st["detail"].iloc[0] and "x=1" not in st["detail"].iloc[0]
    with pytest.raises(ConfigError, match="not a static attribute"):
        assign_schemes([KmeansScheme(k=3, attributes={"streamflow": ["nope"]})], inputs)


def test_kmeans_features_log_skewed_drop_class_codes_and_leaky_attributes() -> None:
    sites = _sites(90)
    rng = np.random.default_rng(1)
    group = np.repeat([0, 1, 2], [60, 20, 10])
    area = np.exp(group * 2.0 + rng.normal(0, 0.2, 90))  # skewed: three groups on a log scale
    statics = {
        "area": area,
        "landcover": (np.arange(90) % 5).astype(float),  # a class code
        "q_mean": rng.normal(0, 1, 90),  # a streamflow signature
        "frac_snow": rng.uniform(0, 1, 90),  # a whole-record climate index
    }
    inputs = SchemeInputs("streamflow", sites, min_sites=10, ds=_dataset(sites, statics))
    long, st = assign_schemes([KmeansScheme(k=3)], inputs)
    detail = st["detail"].iloc[0]
    assert "z-scored ['area']" in detail and "log of ['area']" in detail
    assert "class codes left out ['landcover']" in detail
    assert "left out as leaky ['q_mean', 'frac_snow']" in detail
    # on the log scale the three groups are the three clusters (on the raw scale one group is split)
    assert (pd.crosstab(long["region"], group).to_numpy() > 0).sum() == 3
    # named by the scheme but not allowed by the study: refused, naming the key and the attribute
    named = KmeansScheme(k=3, attributes={"streamflow": ["area", "q_mean"]})
    with pytest.raises(ConfigError, match=r"kmeans\.attributes\.streamflow.*'q_mean'.*allow_leaky"):
        assign_schemes([named], inputs)
    # allowed by the study (domains.streamflow.allow_leaky): used, named or by default
    allowed = SchemeInputs("streamflow", sites, min_sites=10, ds=inputs.ds, allow_leaky=frozenset({"q_mean"}))
    _, st = assign_schemes([named], allowed)
    assert "z-scored ['area', 'q_mean']" in st["detail"].iloc[0] and "leaky" not in st["detail"].iloc[0]
    _, st = assign_schemes([KmeansScheme(k=3)], allowed)
    assert "'q_mean'" in st["detail"].iloc[0].split("left out as leaky")[0]
    assert "left out as leaky ['frac_snow']" in st["detail"].iloc[0]


def test_cluster_features_transforms() -> None:
    x = pd.DataFrame(
        {
            "skewed": [1.1, 1.3, 2.2, 2.05, 3.3, 100.5, 1000.2],
            "with_zero": [0.0, 0.0, 1.5, 1.25, 2.5, 50.5, 500.5],
            "symmetric": [-3.5, -2.5, -1.5, 0.5, 1.5, 2.5, 3.5],
            "code": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0],
            "const": [5.0] * 7,
        }
    )
    z, used, what = cluster_features(x)
    assert used == ["skewed", "with_zero", "symmetric"] and z.shape == (7, 3)
    logged = np.log(x["skewed"].to_numpy())
    assert np.allclose(z[:, 0], (logged - logged.mean()) / logged.std())
    l1p = np.log1p(x["with_zero"].to_numpy())
    assert np.allclose(z[:, 1], (l1p - l1p.mean()) / l1p.std())
    sym = x["symmetric"].to_numpy()
    assert np.allclose(z[:, 2], (sym - sym.mean()) / sym.std())
    assert (
        what
        == "z-scored ['skewed', 'with_zero', 'symmetric'], log of ['skewed', 'with_zero'], class codes left out ['code']"
    )


def test_climate_classes_edges_quantiles_and_forcing_indices() -> None:
    sites = _sites(60)
    frac = np.linspace(0, 1, 60)
    ds = _dataset(sites, {"frac": frac})
    spec = ClimateScheme(
        domains={
            "streamflow": {
                "classes": {"frac": [0.25, 0.5], "aridity": 2},
                "forcing": {"precipitation": "P", "temperature": "T", "pet": "PET"},
            }
        }
    )
    long, status = assign_schemes(
        [spec], SchemeInputs("streamflow", sites, 5, ds=ds, train=slice("2001", "2001"))
    )
    first = long.set_index("site_id")["region"].str.split("-").str[0].astype(int)
    assert (first.to_numpy() == np.digitize(frac, [0.25, 0.5])).all()
    assert set(long["region"].str.split("-").str[1]) == {"0", "1"}  # median split of aridity
    assert "aridity: edges" in status["detail"].iloc[0]
    _, status = assign_schemes([spec], SchemeInputs("soil_moisture", sites, 5, ds=ds))
    assert not bool(status["applicable"].iloc[0])
    # the training-period indices only: forcing after the training period leaves the classes as they are
    later = ds.copy(deep=True)
    later["P"].loc[{"time": slice("2002-01-01", None)}] = later["P"].sel(time=slice("2002", None)).values * 50
    again, _ = assign_schemes(
        [spec], SchemeInputs("streamflow", sites, 5, ds=later, train=slice("2001", "2001"))
    )
    assert again.equals(long)
    # a whole-record static of the same name (Caravan's aridity) is refused unless allowed
    whole = _dataset(sites, {"frac": frac, "aridity": np.linspace(0.2, 3.0, 60)})
    static_only = ClimateScheme(domains={"streamflow": {"classes": {"aridity": 2}}})
    with pytest.raises(ConfigError, match=r"climate\.domains\.streamflow.*'aridity'.*allow_leaky"):
        assign_schemes([static_only], SchemeInputs("streamflow", sites, 5, ds=whole))
    ok = SchemeInputs("streamflow", sites, 5, ds=whole, allow_leaky=frozenset({"aridity"}))
    assert set(assign_schemes([static_only], ok)[0]["region"]) == {"0", "1"}


def test_huc2_from_gages2_camels_polygons_and_not_for_pixels() -> None:
    sites = _sites(4)
    assert gauge_numbers(["camels_01022500", "virtual_00017", "01022500"]).tolist() == [
        "01022500",
        "00000017",
        "01022500",
    ]
    gages2 = pd.DataFrame({"huc02": ["01", "7", "18"]}, index=[f"{i:08d}" for i in range(3)])
    codes = huc2_regions(Huc2Scheme(), SchemeInputs("streamflow", sites, 1, gages2=gages2))
    assert codes.tolist() == ["01", "07", "18", None]  # the 4th gauge is not in GAGES-II
    camels = pd.Series(["03", "03", "05", "05"], index=sites["site_id"])
    assert huc2_regions(Huc2Scheme(), SchemeInputs("streamflow", sites, 1, camels_huc=camels)).tolist() == [
        "03",
        "03",
        "05",
        "05",
    ]
    _, status = assign_schemes([Huc2Scheme()], SchemeInputs("soil_moisture", sites, 1))
    assert not bool(status["applicable"].iloc[0]) and "polygon" in status["detail"].iloc[0]
    polys = gpd.GeoDataFrame(
        {"HUC2": ["0101", "0202"]},
        geometry=[shapely.box(-130, 20, -97.5, 50), shapely.box(-97.5, 20, -60, 50)],
        crs="EPSG:4326",
    )
    codes = huc2_regions(Huc2Scheme(), SchemeInputs("soil_moisture", sites, 1), polys)
    assert codes.tolist() == np.where(sites["lon"] < -97.5, "01", "02").tolist()


# --------------------------------------------------------------------------- the plan


def _plan_input(n: int = 120) -> tuple[pd.DataFrame, pd.DataFrame]:
    sites = _sites(n)
    regions, _ = assign_schemes(
        [RandomScheme(), KmeansScheme(k=2, attributes={"streamflow": ["a"]})],
        SchemeInputs("streamflow", sites, 10, ds=_dataset(sites, {"a": np.arange(n) % 2 * 5.0})),
    )
    return sites, regions


def test_plan_keys_unique_across_schemes_and_ecoregion_keys_unchanged() -> None:
    sites, regions = _plan_input()
    cfg = PlanConfig(10, 10, 0.9)
    plain = build_plan(sites, "streamflow", cfg)
    plan = build_plan(sites, "streamflow", cfg, scheme_regions=regions)
    assert plan.sets["key"].is_unique
    eco = plan.sets[~plan.sets["scenario"].str.contains("@")]
    pd.testing.assert_frame_equal(eco.reset_index(drop=True), plain.sets.reset_index(drop=True))
    keys = set(plan.sets["key"])
    assert {"local@random:1", "local@random:6", "local@kmeans:1", "local@kmeans:2", "local:A"} <= keys
    assert parse_set_key("local@kmeans:2") == ("local@kmeans", "2")
    ev = plan.evaluations
    km = ev[ev["experiment"] == "global_vs_local@kmeans"]
    assert set(km["scenario"]) == {"global", "local"} and set(km["region"]) == {"1", "2"}
    assert scheme_of_experiment("global_vs_local@kmeans") == "kmeans"
    assert scheme_of_experiment("global_vs_local") == "ecoregions"
    assert scheme_of_experiment("similarity") is None
    assert COMPARISONS["global_vs_local@kmeans"] == COMPARISONS["global_vs_local"]
    assert list(COMPARISONS) == ["global_vs_local", "similarity", "similarity_sized"]


def test_plan_min_sites_per_scheme_region_and_ecoregions_optional() -> None:
    sites, regions = _plan_input()
    plan = build_plan(sites, "streamflow", PlanConfig(25, 10, 0.9), scheme_regions=regions)
    ex = plan.excluded[plan.excluded["experiment"] == "global_vs_local@random"]
    assert len(ex) == 6 and ex["reason"].str.contains("min_sites_subregion=25").all()  # 20 sites each
    assert not plan.sets["key"].str.startswith("local@random").any()
    plan = build_plan(sites, "streamflow", PlanConfig(10, 10, 0.9), scheme_regions=regions, ecoregions=False)
    assert not plan.sets["key"].str.fullmatch(r"local:[A-R]").any()
    assert plan.sets["key"].str.startswith("local@kmeans").sum() == 2


@pytest.mark.parametrize("key", ["local@:3", "local@Bad:3", "global@kmeans:3", "local@kmeans"])
def test_bad_scheme_keys_refused(key: str) -> None:
    with pytest.raises(InputError):
        parse_set_key(key)


# --------------------------------------------------------------------------- the comparison


def _metrics(errors: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """site_metrics rows from per-scheme (regions, global error, local error) of the same sites."""
    frames = []
    for scheme, (regions, g, loc) in errors.items():
        experiment = "global_vs_local" if scheme == "ecoregions" else f"global_vs_local@{scheme}"
        for scenario, err in (("global", g), ("local", loc)):
            frames.append(
                pd.DataFrame(
                    {
                        "domain": "streamflow",
                        "experiment": experiment,
                        "scenario": scenario,
                        "region": regions,
                        "seed": "mean",
                        "site_id": [f"s{i}" for i in range(len(err))],
                        "rmse": err,
                        "nse": 1 - err,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def test_compare_schemes_table() -> None:
    rng = np.random.default_rng(0)
    n = 200
    regions = np.array([str(i % 5 + 1) for i in range(n)])
    g = rng.uniform(0.2, 0.6, n)
    site_metrics = _metrics(
        {
            "ecoregions": (regions, g, g - 0.1 + rng.normal(0, 0.02, n)),
            "random": (regions, g, g + rng.normal(0, 0.02, n)),
        }
    )
    table = compare_schemes(site_metrics, ["rmse", "nse"])
    eco = table[(table["scheme"] == "ecoregions") & (table["metric"] == "rmse")].iloc[0]
    assert eco["winner"] == "local" and eco["share_global_better"] < 0.05 and eco["p_value"] < 1e-6
    assert eco["n_regions"] == 5 and eco["n_sites"] == n
    assert eco["n_vs_null"] == n and eco["median_local_minus_null"] < -0.05 and eco["p_vs_null"] < 1e-6
    rnd = table[(table["scheme"] == "random") & (table["metric"] == "nse")].iloc[0]
    assert 0.3 < rnd["share_global_better"] < 0.7 and np.isnan(rnd["p_vs_null"])
    assert len(scheme_pairs(site_metrics, ["rmse"])) == 2 * n


def test_significance_for_handles_scheme_experiments() -> None:
    from synergy_dagster.evaluation.significance import significance_for

    rng = np.random.default_rng(1)
    n = 40
    regions = np.array([str(i % 2 + 1) for i in range(n)])
    g = rng.uniform(0.2, 0.6, n)
    site_metrics = _metrics({"kmeans": (regions, g, g - 0.1)})
    for m in ("ubrmse", "bias", "corr", "kge"):
        site_metrics[m] = rng.normal(0.5, 0.1, len(site_metrics))
    site_metrics["budget"] = "converge"
    table = significance_for(site_metrics)
    assert set(table["experiment"]) == {"global_vs_local@kmeans"}
    assert set(table["region"]) == {"1", "2", "All"}


def test_scheme_figure_renders() -> None:
    from synergy_dagster.evaluation.figures import scheme_comparison_figure

    rng = np.random.default_rng(2)
    n = 50
    regions = np.array([str(i % 2 + 1) for i in range(n)])
    g = rng.uniform(0.2, 0.6, n)
    sm = _metrics({"ecoregions": (regions, g, g - 0.1), "random": (regions, g, g)})
    png = scheme_comparison_figure(scheme_pairs(sm, ["nse"]), compare_schemes(sm, ["nse"]), ["nse"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the virtual CONUS


def _loo(values: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Leave-one-out region mean: what a 'local model' of a site property predicts for a site."""
    df = pd.DataFrame({"v": values, "r": regions})
    s, c = df.groupby("r")["v"].transform("sum"), df.groupby("r")["v"].transform("size")
    return ((s - df["v"]) / (c - 1)).to_numpy()


def test_virtual_conus_ecoregions_beat_random_regions_when_regions_matter() -> None:
    """The generator's true regional effects: with strong region effects (and weak site effects)
    the ecoregion scheme's local predictor of a latent parameter beats the random-region one, and
    random regions explain next to nothing."""
    from synergy_dagster.sources.virtual import regions as vr
    from synergy_dagster.sources.virtual.conus import VirtualConusConfig
    from synergy_dagster.sources.virtual.pixels import pixel_sites

    cfg = VirtualConusConfig(n_pixels=1500, region_effect_sd=(0.8, 0.6, 0.4), site_effect_sd=0.1)
    rmap = vr.build_regions(cfg.region_seed, cfg.region_res)
    px = pixel_sites(cfg, rmap)
    l1, l2 = rmap.codes(1)[px.label], rmap.codes(2)[px.label]
    sites = pd.DataFrame(
        {
            "site_id": [f"px{i:05d}" for i in range(len(px.lon))],
            "lat": px.lat,
            "lon": px.lon,
            "subregion": subregions_of(l1, l2),
        }
    )
    sites = sites[pd.notna(sites["subregion"])].reset_index(drop=True)
    inputs = SchemeInputs("soil_moisture", sites, min_sites=10)
    long, _ = assign_schemes(_study({"schemes": ["ecoregions", "random"]}).stratification.schemes, inputs)
    truth = pd.Series(np.log(px.params.k_drain), index=[f"px{i:05d}" for i in range(len(px.lon))])
    errors = {}
    for scheme, g in long.groupby("scheme"):
        v = truth.reindex(g["site_id"]).to_numpy()
        reg = g["region"].to_numpy()
        errors[scheme] = (reg, np.abs(v - v.mean()), np.abs(v - _loo(v, reg)))
        if scheme == "ecoregions":
            eco_share = explained_share(v, reg)
        else:
            rnd_share = explained_share(v, reg)
    assert eco_share > 0.3 and rnd_share < 0.05
    table = compare_schemes(_metrics(errors), ["rmse"])
    eco = table[table["scheme"] == "ecoregions"].iloc[0]
    rnd = table[table["scheme"] == "random"].iloc[0]
    assert eco["winner"] == "local" and eco["p_value"] < 1e-3
    assert eco["median_local_minus_null"] < 0 and eco["p_vs_null"] < 1e-3
    assert rnd["p_value"] > 1e-3 or rnd["winner"] == "global"


# --------------------------------------------------------------------------- the real data (small)


def test_real_data_schemes_for_basins_and_pixels(real_data: Path) -> None:
    """Every scheme on the real files: CAMELS basins get HUC-2 from GAGES-II (by station number),
    SMAP pixels get k-means / climate classes of Clay and NDVI, random regions, and HUC-2 is said
    to be not applicable for pixels."""
    from synergy_dagster.sources.gages2 import read_gages2
    from synergy_dagster.sources.pixels import read_pixel_cube

    gages2 = read_gages2(real_data / "gages2" / "gagesII_9322_sept30_2011.shp")
    ids = sorted(p.stem for p in (real_data / "caravan" / "timeseries" / "csv" / "camels").glob("*.csv"))[
        :120
    ]
    basins = pd.DataFrame(
        {
            "site_id": ids,
            "lat": gages2["lat"].reindex(gauge_numbers(ids).to_numpy()).to_numpy(),
            "lon": gages2["lon"].reindex(gauge_numbers(ids).to_numpy()).to_numpy(),
            "subregion": np.array(list("ABCD"))[np.arange(len(ids)) % 4],
        }
    )
    long, status = assign_schemes(
        [Huc2Scheme(), RandomScheme()], SchemeInputs("streamflow", basins, 10, gages2=gages2)
    )
    huc = long[long["scheme"] == "huc2"]
    assert len(huc) == len(ids)  # every CAMELS gauge is in GAGES-II
    assert huc["region"].str.fullmatch(r"\d\d").all() and huc["region"].nunique() >= 2
    assert status.set_index("scheme").loc["random", "n_regions"] == 4

    cube = read_pixel_cube(real_data / "smap" / "smap_conus_v4f1.nc", static=["Clay", "NDVI", "Sand"])
    cube = cube.isel(site=slice(0, 150), time=slice(0, 400))
    pixels = pd.DataFrame(
        {
            "site_id": cube["site"].values.astype(str),
            "lat": cube["lat"].values,
            "lon": cube["lon"].values,
            "subregion": np.array(list("ABC"))[np.arange(cube.sizes["site"]) % 3],
        }
    )
    specs = _study(
        {
            "schemes": [
                "huc2",
                {"kind": "kmeans", "k": 4, "attributes": {"soil_moisture": ["Clay", "NDVI"]}},
                {"kind": "climate", "domains": {"soil_moisture": {"classes": {"NDVI": 2, "Clay": [0.2]}}}},
                "random",
            ]
        }
    ).stratification.schemes
    long, status = assign_schemes(specs, SchemeInputs("soil_moisture", pixels, 10, ds=cube))
    st = status.set_index("scheme")
    assert not st.loc["huc2", "applicable"] and "polygon" in st.loc["huc2", "detail"]
    assert st.loc["kmeans", "n_regions"] == 4 and st.loc["random", "n_regions"] == 3
    assert set(long.loc[long["scheme"] == "climate", "region"]) <= {"0-0", "0-1", "1-0", "1-1"}


def test_shipped_real_schemes_study_parses() -> None:
    from synergy_dagster.study_file import load_study

    study = load_study(STUDIES / "real_beyond.yaml", variables={"SYNERGY_REAL_DATA": "/data"})
    assert study.stratification.labels == ["ecoregions", "huc2", "climate", "kmeans", "random"]
    real = load_study(STUDIES / "real.yaml", variables={"SYNERGY_REAL_DATA": "/data"})
    assert study.data_dir == real.data_dir  # the ecoregion models of real.yaml are reused


def test_winner_is_a_tie_unless_the_difference_is_significant() -> None:
    rng = np.random.default_rng(5)
    n = 12
    regions = np.array([str(i % 3 + 1) for i in range(n)])
    g = rng.uniform(0.2, 0.6, n)
    loc = g + 0.004 + rng.normal(0, 0.02, n)  # local slightly worse in RMSE, well inside the noise
    table = compare_schemes(_metrics({"ecoregions": (regions, g, loc)}), ["rmse"])
    row = table.iloc[0]
    assert row["median_diff"] != 0 and row["p_value"] >= 0.05
    assert row["winner"] == "tie"
    # the same numbers at a lax alpha name the side the median favours
    lax = compare_schemes(_metrics({"ecoregions": (regions, g, loc)}), ["rmse"], alpha=0.99).iloc[0]
    assert lax["winner"] == ("global" if row["median_diff"] < 0 else "local")
    with pytest.raises(InputError, match=r"alpha: must be in \(0, 1\), got 1.5"):
        compare_schemes(_metrics({"ecoregions": (regions, g, loc)}), ["rmse"], alpha=1.5)


def test_scheme_table_judges_the_seed_aggregation() -> None:
    n = 30
    regions = np.array([str(i % 3 + 1) for i in range(n)])
    g = np.linspace(0.2, 0.6, n)
    sm = _metrics({"ecoregions": (regions, g, g + 0.1)})  # "mean" (ensemble) rows: global wins
    per_seed = []
    for seed, shift in (("0", -0.3), ("1", -0.1)):  # each seed's local model beats global by 0.2 on average
        s = sm.copy()
        s["seed"] = seed
        s.loc[s["scenario"] == "local", "rmse"] = g + shift
        per_seed.append(s)
    sm = pd.concat([sm, *per_seed], ignore_index=True)
    ens = compare_schemes(sm, ["rmse"], aggregation="ensemble").iloc[0]
    mean = compare_schemes(sm, ["rmse"], aggregation="seed_mean").iloc[0]
    assert ens["winner"] == "global" and ens["median_local"] == pytest.approx(np.median(g + 0.1))
    assert mean["winner"] == "local" and mean["median_local"] == pytest.approx(np.median(g - 0.2))


# --------------------------------------------------------------------------- size-matched nulls


def _long(regions: np.ndarray, scheme: str = "kmeans", kind: str = "kmeans") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scheme": scheme,
            "kind": kind,
            "site_id": [f"s{i:03d}" for i in range(len(regions))],
            "region": regions,
        }
    )


def test_size_matched_null_permutes_labels_and_keeps_region_sizes() -> None:
    regions = np.array(["1"] * 50 + ["2"] * 30 + ["3"] * 15 + ["4"] * 5)
    long = pd.concat([_long(regions), _long(regions[::-1], "random", "random")], ignore_index=True)
    nulls = size_matched_null(long, 20, seed=3)
    assert sorted(nulls["scheme"].unique()) == [null_label("kmeans", d) for d in range(20)]
    assert set(nulls["kind"]) == {"null"}  # random schemes get no nulls
    sizes = pd.Series(regions).value_counts().sort_index()
    for _, g in nulls.groupby("scheme"):
        assert g["region"].value_counts().sort_index().equals(sizes)
        assert sorted(g["site_id"]) == sorted(long.loc[long["scheme"] == "kmeans", "site_id"])
    # different draws differ; row order does not matter; more draws keep the earlier ones
    by = {s: g.set_index("site_id")["region"].sort_index() for s, g in nulls.groupby("scheme")}
    assert not by["kmeans_null00"].equals(by["kmeans_null01"])
    shuffled = size_matched_null(long.sample(frac=1.0, random_state=1), 5, seed=3)
    again = {s: g.set_index("site_id")["region"].sort_index() for s, g in shuffled.groupby("scheme")}
    assert all(again[s].equals(by[s]) for s in again)
    assert null_of("kmeans_null07") == ("kmeans", 7) and null_of("kmeans") is None
    with pytest.raises(InputError, match="names too long for null draws"):
        size_matched_null(_long(regions, "k" * 30), 1, seed=0)


def _gains(labels: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A site's local-model gain grows with the share of its region that shares its class."""
    r = np.unique(labels, return_inverse=True)[1]
    c = np.unique(classes, return_inverse=True)[1]
    k = int(c.max()) + 1
    counts = np.bincount(r * k + c, minlength=(int(r.max()) + 1) * k)
    same = counts[r * k + c] / np.bincount(r)[r]
    return 0.2 * same - 0.1 + rng.normal(0.0, 0.05, labels.size)


def _null_p(scheme_labels: np.ndarray, classes: np.ndarray, draws: int, rng: np.random.Generator) -> float:
    t = float(np.median(_gains(scheme_labels, classes, rng)))
    t_d = [float(np.median(_gains(rng.permutation(scheme_labels), classes, rng))) for _ in range(draws)]
    return null_p(t, np.array(t_d))


def test_null_p_type_one_error_and_power_by_simulation() -> None:
    rng = np.random.default_rng(11)
    sizes = [50, 30, 25, 15]
    labels = np.repeat(np.arange(4), sizes)
    classes = labels.copy()  # an informative scheme: its regions are the classes
    # uninformative: the scheme is itself a permutation of the same sizes (exchangeable with its
    # nulls), so P(p <= 1/20) = 1/20 with 19 draws
    p_null = np.array([_null_p(rng.permutation(labels), classes, 19, rng) for _ in range(200)])
    rate = float(np.mean(p_null <= 0.05))
    assert 0.02 <= rate <= 0.09, rate
    p_alt = np.array([_null_p(labels, classes, 19, rng) for _ in range(40)])
    assert float(np.mean(p_alt <= 0.05)) >= 0.95
    assert null_p(1.0, np.zeros(20)) == pytest.approx(1 / 21)
    assert null_p(0.0, np.zeros(20)) == 1.0 and np.isnan(null_p(0.5, np.array([np.nan])))


def test_compare_schemes_uses_the_size_matched_nulls() -> None:
    rng = np.random.default_rng(12)
    sizes = [40, 30, 20]
    labels = np.repeat(np.arange(3), sizes).astype(str)
    classes = labels.copy()
    glob = rng.uniform(0.3, 0.5, labels.size)  # rmse of the global model
    long = _long(labels)
    nulls = size_matched_null(long, 20, seed=0)
    errors = {"kmeans": (labels, glob, glob - _gains(labels, classes, rng))}
    for scheme, g in nulls.groupby("scheme"):
        lab = g.sort_values("site_id")["region"].to_numpy()
        errors[scheme] = (lab, glob, glob - _gains(lab, classes, rng))
    table = compare_schemes(_metrics(errors), ["rmse"])
    assert list(table["scheme"]) == ["kmeans"]  # the draws are the null, not rows of their own
    row = table.iloc[0]
    assert row["null_scheme"] == "size-matched (20 draws)" and row["n_vs_null"] == labels.size
    assert row["n_null_draws"] == 20 and row["aggregation"] == "seed_mean"
    assert row["p_vs_null"] == pytest.approx(1 / 21) and row["median_local_minus_null"] > 0.05
    # the figure's pairs leave the draws out
    assert set(scheme_pairs(_metrics(errors), ["rmse"])["scheme"]) == {"kmeans"}


NULL_STUDY = (
    "thresholds.min_sites_subregion=30",
    "statistics.null_draws=3",
    "stratification.schemes=[ecoregions, {kind: kmeans, k: 2}]",
)


@pytest.mark.slow
def test_size_matched_nulls_are_planned_trained_and_judged_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny study with one further scheme and 3 null draws: the draws are planned as local sets
    (``local@<scheme>_nullDD:<region>``), trained with the other partitions (a draw whose site list
    coincides with another set reuses its model), and the scheme table judges each scheme against
    its 3 draws with the permutation p."""
    import duckdb

    from synergy_dagster import cli

    for var in ("DAGSTER_HOME", "SYNERGY_STUDY", "SYNERGY_DATA_DIR", "SYNERGY_OVERRIDES"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    assert cli.main(study_cli(data, *SMALL_STUDY, *NULL_STUDY)) == 0
    with duckdb.connect(str(data / "synergy.duckdb"), read_only=True) as con:
        sets = con.execute("SELECT set_key AS key, sites_hash, trained_as FROM training_sets").df()
        models = set(con.execute("SELECT DISTINCT set_key FROM models").df()["set_key"])
        table = con.execute("SELECT * FROM scheme_comparison WHERE metric = 'rmse'").df()
    draws = sets[sets["key"].str.contains("_null")]
    for scheme in ("ecoregions", "kmeans"):
        labels = {k.split(":")[0] for k in draws["key"] if k.startswith(f"local@{scheme}_null")}
        assert labels == {f"local@{null_label(scheme, d)}" for d in range(3)}, labels
    # every draw's model exists: trained, or (same sites as another set) reused from that set
    assert set(draws["trained_as"].fillna(draws["key"])) <= models
    twins = sets[sets.duplicated("sites_hash", keep=False)]
    assert (twins.groupby("sites_hash")["trained_as"].apply(lambda t: t.notna().sum()) >= 1).all()
    rows = table.set_index("scheme")
    assert set(rows.index) == {"ecoregions", "kmeans"}  # the draws are no rows of their own
    assert (rows["n_null_draws"] == 3).all() and (rows["null_scheme"] == "size-matched (3 draws)").all()
    # the permutation p of 3 draws takes the values 1/4 .. 1
    assert rows["p_vs_null"].isin([0.25, 0.5, 0.75, 1.0]).all()
    assert (rows["aggregation"] == "seed_mean").all()


def test_only_studies_with_a_further_scheme_plan_null_draws() -> None:
    eco = _study({"schemes": ["ecoregions"]}).stratification.schemes
    more = _study({"schemes": ["ecoregions", "random"]}).stratification.schemes
    assert planned_null_draws(eco, 20) == 0 and planned_null_draws(more, 20) == 20
    inputs = SchemeInputs("streamflow", _sites(), min_sites=10)
    long, _ = assign_schemes(eco, inputs, null_draws=planned_null_draws(eco, 20))
    assert set(long["scheme"]) == {"ecoregions"}  # the shipped studies' partition keys stay as they were
    long, status = assign_schemes(more, inputs, null_draws=planned_null_draws(more, 2))
    assert set(long["scheme"]) == {"ecoregions", "random", "ecoregions_null00", "ecoregions_null01"}
    assert list(status["scheme"]) == ["ecoregions", "random"]
