"""What a study file declares reaches the readers, and what it gets wrong is named by its key.

1. Categorical attributes given as text (CAMELS-US ``geol_1st_class`` / ``dom_land_cover``, a
   Caravan class column, a pixel-cube text variable): read as class codes with their labels and
   one-hot encoded by label, through :func:`read_study_domain` (a small CAMELS-US layout in tmp,
   and the real ``studies/camels_us.yaml``).
2. Bad study inputs through :func:`read_study_domain`: a dynamic variable the data lack, a text
   cell in a numeric attribute, a period outside the record, a categorical name that is neither a
   numeric static nor a text column, a text column listed as a plain static.
3. Trust checks wired into the assets: the ecoregion extent (a gauge with lat/lon swapped is
   refused before anything is written), gauges against their basin polygons (Caravan-style
   ``camels_`` ids paired with bare polygon ids), a study's ``missing_values``.
4. All or nothing: the sources assets (NetCDF + dropped table + ``sources`` row) and
   ``save_models`` (weights + ``index.json`` + ``models`` / ``learning_curves`` rows) with a
   failing database write keep every old file and row, and leave no temp file.
5. The landing resource follows ``sources.data_dir``.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml
from shapely.geometry import box

from synergy_dagster.errors import ConfigError, InputError
from synergy_dagster.io_utils import file_sha256
from synergy_dagster.layout import Layout
from synergy_dagster.sources.basin_polygons import match_gauge_ids, read_site_polygons
from synergy_dagster.sources.caravan import read_caravan, write_caravan_csv
from synergy_dagster.sources.ecoregions import read_ecoregions
from synergy_dagster.sources.plausibility import extent_of
from synergy_dagster.sources.sitedata import class_labels, make_site_dataset, static_names
from synergy_dagster.sources.study_domain import read_study_domain
from synergy_dagster.store import MetadataStore
from synergy_dagster.study_file import STUDIES_DIR, load_study

GAUGES = ("01013500", "01022500", "02046000")
LAT, LON = np.array([45.0, 44.0, 37.0]), np.array([-70.0, -68.0, -77.0])
DATES = pd.date_range("2000-01-01", "2001-12-31", freq="D")
GEOL = ("Siliciclastic sedimentary rocks", "Acid plutonic rocks", "")  # the third gauge: no class
LAND = ("    Mixed Forests", "    Mixed Forests", "cropland/natural vegetation mosaic")  # CAMELS pads


class Boom(RuntimeError):
    """The injected failure."""


# ------------------------------------------------------------------------------------ fixtures


def _camels(root: Path) -> Path:
    """A CAMELS-US layout: 3 gauges, two years of daymet forcing and streamflow, 4 attribute tables."""
    rng = np.random.default_rng(1)
    n = len(DATES)
    for k, g in enumerate(GAUGES):
        forcing = pd.DataFrame(
            {
                "Year": DATES.year, "Mnth": DATES.month, "Day": DATES.day, "Hr": 12,
                "Dayl(s)": 40000.0, "PRCP(mm/day)": rng.gamma(1.0, 2.0, n).round(2),
                "SRAD(W/m2)": 200.0, "SWE(mm)": 0.0, "Tmax(C)": rng.normal(15, 5, n).round(2),
                "Tmin(C)": rng.normal(5, 5, n).round(2), "Vp(Pa)": 800.0,
            }
        )  # fmt: skip
        f = root / "basin_mean_forcing" / "daymet" / "01" / f"{g}_lump_cida_forcing_leap.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        header = f"  {LAT[k]:.2f}\n 300.00\n {500e6 * (k + 1):.0f}\n"
        f.write_text(header + forcing.to_csv(sep="\t", index=False))
        flow = pd.DataFrame(
            {"gauge": g, "year": DATES.year, "month": DATES.month, "day": DATES.day,
             "q": rng.gamma(2.0, 50.0, n).round(2), "flag": "A"}
        )  # fmt: skip
        q = root / "usgs_streamflow" / "01" / f"{g}_streamflow_qc.txt"
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_text(flow.to_csv(sep=" ", header=False, index=False))
    attrs = root / "camels_attributes_v2.0"
    attrs.mkdir(parents=True, exist_ok=True)
    tables = {
        "topo": {"gauge_lat": LAT, "gauge_lon": LON, "elev_mean": [300.0, 310.0, 320.0],
                 "area_gages2": [500.0, 1000.0, 1500.0]},
        "geol": {"geol_1st_class": GEOL, "geol_permeability": [-14.7, -14.2, -13.9]},
        "vege": {"frac_forest": [0.9, 0.8, 0.3], "dom_land_cover": LAND},
        "name": {"huc_02": ["01", "01", "03"], "gauge_name": ["A river", "B river", "C river"]},
    }  # fmt: skip
    for name, cols in tables.items():
        pd.DataFrame({"gauge_id": GAUGES, **cols}).to_csv(attrs / f"camels_{name}.txt", sep=";", index=False)
    return root


def _eco_file(path: Path) -> Path:
    """A two-region ecoregion layer over the eastern and western United States."""
    rows = [
        ("1", "8.1.1", "8.1", "8", box(-100, 24, -66, 50)),
        ("2", "9.2.3", "9.2", "9", box(-125, 24, -100, 50)),
    ]
    gdf = gpd.GeoDataFrame(
        {
            "US_L3CODE": [r[0] for r in rows], "US_L3NAME": [f"US {r[0]}" for r in rows],
            "NA_L3CODE": [r[1] for r in rows], "NA_L3NAME": [f"L3 {r[1]}" for r in rows],
            "NA_L2CODE": [r[2] for r in rows], "NA_L2NAME": [f"L2 {r[2]}" for r in rows],
            "NA_L1CODE": [r[3] for r in rows], "NA_L1NAME": [f"L1 {r[3]}" for r in rows],
        },
        geometry=[r[4] for r in rows], crs="EPSG:4326",
    )  # fmt: skip
    gdf.to_file(path, driver="GPKG")
    return path


STREAMFLOW = {
    "reader": "camels_us",
    "forcing": "daymet",
    "target": "streamflow",
    "dynamic": ["prcp", "tmax"],
    "static": ["area", "geol_permeability", "geol_1st_class", "dom_land_cover"],
    "categorical": ["geol_1st_class", "dom_land_cover"],
    "periods": {"train": {"start": "2000-01-01", "end": "2000-12-31"},
                "test": {"start": "2001-01-01", "end": "2001-12-31"}},
}  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    return {"camels": _camels(tmp_path / "camels"), "eco": _eco_file(tmp_path / "eco.gpkg"), "tmp": tmp_path}


def _study(world: dict[str, Path], domains: dict | None = None, **changes: object) -> Path:
    """A study file over ``world``'s CAMELS layout; ``changes`` replace keys of its streamflow domain."""
    spec = {**STREAMFLOW, "path": str(world["camels"]), **changes}
    raw = {"name": "t", "ecoregions": str(world["eco"]), "data_dir": str(world["tmp"] / "data"),
           "domains": domains or {"streamflow": spec}}  # fmt: skip
    path = world["tmp"] / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _read(world: dict[str, Path], **changes: object) -> xr.Dataset:
    study = load_study(_study(world, **changes))
    return read_study_domain("streamflow", study.domains["streamflow"]).ds


def _topo(world: dict[str, Path]) -> Path:
    return world["camels"] / "camels_attributes_v2.0" / "camels_topo.txt"


# -------------------------------------------------------------------- 1. text categoricals


def test_text_categoricals_are_one_hot_by_label(world) -> None:
    ds = _read(world)
    assert static_names(ds) == [
        "area", "geol_permeability",
        "geol_1st_class=acid_plutonic_rocks", "geol_1st_class=siliciclastic_sedimentary_rocks",
        "dom_land_cover=mixed_forests", "dom_land_cover=cropland_natural_vegetation_mosaic",
    ]  # fmt: skip
    sil = ds["geol_1st_class=siliciclastic_sedimentary_rocks"]
    assert (
        sil.attrs["label"] == "Siliciclastic sedimentary rocks"
        and sil.attrs["categorical_of"] == "geol_1st_class"
    )
    np.testing.assert_array_equal(sil.values[:2], [1, 0])
    assert np.isnan(sil.values[2])  # no class: missing in every indicator, not a class of its own
    mixed = ds["dom_land_cover=mixed_forests"]
    assert mixed.attrs["label"] == "Mixed Forests"  # the padding is not part of the label
    np.testing.assert_array_equal(mixed.values, [1, 1, 0])
    assert "geol_1st_class" not in ds and "text_attributes" not in ds.attrs


def test_reader_returns_codes_with_their_labels(world) -> None:
    from synergy_dagster.sources.camels_us import read_camels_us

    ds = read_camels_us(world["camels"], forcing="daymet", text_attributes=["geol_1st_class", "elev_mean"])
    assert class_labels(ds["geol_1st_class"]) == ["Acid plutonic rocks", "Siliciclastic sedimentary rocks"]
    np.testing.assert_array_equal(ds["geol_1st_class"].values, [1, 0, np.nan])
    assert class_labels(ds["elev_mean"]) is None  # a numeric column stays a numeric static
    assert "dom_land_cover" not in ds and "gauge_name" not in ds  # text not asked for stays out


def test_caravan_text_column_is_categorical(tmp_path: Path) -> None:
    n, days = 3, 60
    rng = np.random.default_rng(0)
    ds = make_site_dataset(
        domain="streamflow", source="t", site_ids=[f"camels_0{i}" for i in range(n)],
        time=pd.date_range("2001-01-01", periods=days), lat=LAT, lon=LON,
        target=("streamflow", rng.gamma(2.0, 1.0, (n, days)), "mm/d"),
        dynamic={"total_precipitation_sum": (rng.gamma(1.0, 3.0, (n, days)), "mm/d")},
        static={"area": (np.array([100.0, 250.0, 300.0]), "km2")},
    )  # fmt: skip
    root = write_caravan_csv(ds, tmp_path / "caravan", "camels")
    pd.DataFrame({"gauge_id": ds["site"].values, "climate": ["Dfb", "Cfa", "Dfb"]}).to_csv(
        root / "attributes" / "camels" / "attributes_extra_camels.csv", index=False
    )
    out = read_caravan(root, text_attributes=["climate"])
    assert class_labels(out["climate"]) == ["Cfa", "Dfb"]
    np.testing.assert_array_equal(out["climate"].values, [1, 0, 1])


def test_pixel_cube_text_variable_is_categorical(world) -> None:
    n_px, n_t = 4, 400
    rng = np.random.default_rng(2)
    cube = xr.Dataset(
        {
            "SMAP_AM": (("pixel", "time"), rng.uniform(0.05, 0.45, (n_px, n_t)).astype(np.float32)),
            "APCP_FORA": (("pixel", "time"), rng.gamma(1, 2, (n_px, n_t)).astype(np.float32),
                          {"units": "kg m-2"}),
            "Clay": (("pixel",), rng.uniform(0, 50, n_px).astype(np.float32)),
            "landcover": (("pixel",), np.array(["forest", "crop", "", "forest"], dtype=object)),
        },
        coords={"pixel": np.arange(n_px), "time": pd.date_range("2015-04-01", periods=n_t),
                "lat": ("pixel", np.linspace(30, 45, n_px)), "lon": ("pixel", np.linspace(-120, -75, n_px))},
    )  # fmt: skip
    cube.to_netcdf(world["tmp"] / "cube.nc")
    spec = {
        "reader": "pixel_cube", "path": str(world["tmp"] / "cube.nc"), "target": "SMAP_AM",
        "dynamic": ["APCP_FORA"], "static": ["Clay", "landcover"], "categorical": ["landcover"],
        "periods": {"train": {"start": "2015-04-01", "end": "2015-12-31"},
                    "test": {"start": "2016-01-01", "end": "2016-05-03"}},
    }  # fmt: skip
    study = load_study(_study(world, domains={"soil_moisture": spec}))
    ds = read_study_domain("soil_moisture", study.domains["soil_moisture"]).ds
    assert static_names(ds) == ["Clay", "landcover=crop", "landcover=forest"]
    np.testing.assert_array_equal(ds["landcover=forest"].values[[0, 1, 3]], [1, 0, 1])
    assert np.isnan(ds["landcover=crop"].values[2])
    absent = {**spec, "static": ["Clay", "soil"], "categorical": ["soil"]}
    absent_spec = load_study(_study(world, domains={"soil_moisture": absent})).domains["soil_moisture"]
    with pytest.raises(ConfigError, match=r"domains\.soil_moisture\.categorical.*\['soil'\] is neither"):
        read_study_domain("soil_moisture", absent_spec)


def test_real_camels_us_study_reads_text_categoricals(real_data: Path) -> None:
    study = load_study(STUDIES_DIR / "camels_us.yaml", variables={"SYNERGY_REAL_DATA": str(real_data)})
    spec = study.domains["streamflow"]
    assert {"geol_1st_class", "dom_land_cover"} <= set(spec.categorical) <= set(spec.static)
    assert "geol_permeability" in spec.static
    assert study.ecoregions is not None
    data = read_study_domain("streamflow", spec, extent=extent_of(read_ecoregions(study.ecoregions)))
    ds = data.ds
    for name in ("geol_1st_class", "dom_land_cover"):
        cols = [v for v in static_names(ds) if ds[v].attrs.get("categorical_of") == name]
        assert len(cols) >= 2 and name not in ds
        onehot = np.stack([ds[c].values for c in cols])
        assert np.array_equal(np.nansum(onehot, axis=0), np.ones(ds.sizes["site"]))  # one class per basin
    assert (
        ds["geol_1st_class=siliciclastic_sedimentary_rocks"].attrs["label"]
        == "Siliciclastic sedimentary rocks"
    )
    assert "geol_permeability" in ds and ds.sizes["site"] == 19


# ---------------------------------------------------------------------- 2. bad study inputs


def test_dynamic_variable_missing_from_the_data_names_the_key(world) -> None:
    with pytest.raises(ConfigError, match=r"domains\.streamflow\.dynamic.*\['pet'\] not in the data.*'prcp'"):
        _read(world, dynamic=["prcp", "pet"])


def test_text_cell_in_a_numeric_attribute_names_the_cell(world) -> None:
    topo = _topo(world)
    topo.write_text(topo.read_text().replace(";310.0;", ";n/a ;"))
    with pytest.raises(
        InputError, match=r"camels_topo\.txt \[gauge_id 01022500, column elev_mean\]: text value 'n/a '"
    ):
        _read(world, static=["area", "elev_mean"], categorical=[])


def test_period_outside_the_record_names_the_key_and_the_record(world) -> None:
    periods = {"train": {"start": "2000-01-01", "end": "2000-12-31"},
               "test": {"start": "2001-01-01", "end": "2002-06-30"}}  # fmt: skip
    with pytest.raises(
        ConfigError,
        match=r"domains\.streamflow\.periods\.test.*2001-01-01..2002-06-30 is outside the record.*"
        r"2000-01-01..2001-12-31",
    ):
        _read(world, periods=periods)


def test_categorical_not_found_names_the_key(world) -> None:
    with pytest.raises(ConfigError, match=r"domains\.streamflow\.categorical.*\['geology'\] is neither a "
                       r"numeric static nor a text attribute.*text attributes \[.*'geol_1st_class'"):  # fmt: skip
        _read(world, static=["area", "geology"], categorical=["geology"])


def test_text_column_listed_as_a_plain_static_says_declare_it_categorical(world) -> None:
    with pytest.raises(ConfigError, match=r"domains\.streamflow\.static.*\['dom_land_cover'\].*categorical"):
        _read(world, static=["area", "dom_land_cover"], categorical=[])


# ------------------------------------------------------------------------ 3. trust checks wired


def test_missing_values_of_the_study_reach_the_reader(world) -> None:
    forcing = next((world["camels"] / "basin_mean_forcing").rglob(f"{GAUGES[1]}_*"))
    lines = forcing.read_text().splitlines()
    cells = lines[10].split("\t")
    cells[5] = "-999"  # PRCP of 2000-01-07
    lines[10] = "\t".join(cells)
    forcing.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"prcp.*fill value"):
        _read(world)
    ds = _read(world, missing_values=[-999])
    assert np.isnan(ds["prcp"].sel(site=GAUGES[1], time="2000-01-07").item())
    assert np.isfinite(ds["prcp"].sel(site=GAUGES[1]).values).sum() == len(DATES) - 1


def _sources(study: Path) -> tuple[object, object]:
    from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource

    resource = StudyResource(study_file=str(study), data_dir="", overrides=[])
    return resource, MetadataStoreResource(study=resource)


def test_raw_basins_refuses_a_gauge_outside_the_ecoregions_before_writing(world) -> None:
    from synergy_dagster.defs.assets.sources import raw_basins

    topo = _topo(world)
    df = pd.read_csv(topo, sep=";", dtype={"gauge_id": str})
    df.loc[2, ["gauge_lat", "gauge_lon"]] = [-77.0, 37.0]  # lat and lon swapped
    df.to_csv(topo, sep=";", index=False)
    sources, store = _sources(_study(world))
    with pytest.raises(
        InputError, match=r"site '02046000' at lat -77, lon 37 lies outside.*lat and lon swapped"
    ):
        raw_basins(dg.build_asset_context(), study=sources, store=store)
    assert not (world["tmp"] / "data" / "sources").exists()


def test_gauges_checked_against_polygons_with_prefixed_ids(tmp_path: Path) -> None:
    assert match_gauge_ids(["01013500", "9", "x"], ["camels_01013500", "camels_1013500", "x"]) == {
        "01013500": "camels_01013500", "x": "x"
    }  # fmt: skip
    sites = ["camels_01013500", "camels_01022500"]
    ds = xr.Dataset(coords={"site": sites, "lat": ("site", [45.0, 44.0]), "lon": ("site", [-70.0, -68.0])})
    polys = gpd.GeoDataFrame(
        {"gauge_id": ["01013500", "01022500"]},
        geometry=[box(-70.5, 44.5, -69.5, 45.5), box(-68.5, 43.5, -67.5, 44.5)],
        crs="EPSG:4326",
    )
    path = tmp_path / "basins.gpkg"
    polys.to_file(path)
    out = read_site_polygons(path, ds)
    assert list(out.index) == sites  # renamed to the site ids, so tagging by area finds them
    polys.geometry = [box(-70.5, 44.5, -69.5, 45.5), box(-60.5, 43.5, -59.5, 44.5)]  # 2nd far away
    polys.to_file(path)
    with pytest.raises(InputError, match=r"gauge 'camels_01022500' \(polygon '01022500'\) .* km outside"):
        read_site_polygons(path, ds)


# ------------------------------------------------------------------------------ 4. all or nothing


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".duckdb" not in p.name
    }


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _fail(*args: object) -> None:
    raise Boom("database write failed")


@pytest.mark.parametrize("lake", [False, True], ids=["duckdb", "ducklake"])
def test_sources_asset_with_a_failing_database_write_keeps_old_files_and_row(
    world, monkeypatch, lake
) -> None:
    """Files and rows change together on either store (DuckLake: on a DuckDB-file catalog)."""
    from synergy_dagster.defs.assets.sources import raw_basins, raw_ecoregions

    if lake:
        monkeypatch.setenv("SYNERGY_STORE", f"ducklake:{world['tmp'] / 'meta' / 'catalog.ducklake'}")
    else:
        monkeypatch.delenv("SYNERGY_STORE", raising=False)
    monkeypatch.delenv("SYNERGY_STORE_DATA_PATH", raising=False)
    sources, store = _sources(_study(world))
    raw_ecoregions(study=sources, store=store)
    raw_basins(dg.build_asset_context(), study=sources, store=store)
    data = world["tmp"] / "data"
    db = store.store()
    assert db.kind == ("ducklake" if lake else "duckdb")
    before, rows = _snapshot(data), db.query("SELECT * FROM sources ORDER BY ALL")
    assert {
        "sources/streamflow.nc",
        "sources/streamflow_dropped.parquet",
        "sources/ecoregions_l3.gpkg",
    } <= set(before)
    assert sorted(rows["source_name"]) == ["ecoregions", "streamflow"]

    sources, store = _sources(_study(world, gauges=list(GAUGES[:2])))  # a rerun with new content
    monkeypatch.setattr(MetadataStore, "_apply", staticmethod(_fail))
    with pytest.raises(Boom):
        raw_basins(dg.build_asset_context(), study=sources, store=store)
    with pytest.raises(Boom):
        raw_ecoregions(study=sources, store=store)
    if lake:  # the lake's Parquet files are not the asset's outputs: compare those apart
        before = {k: v for k, v in before.items() if not k.startswith("ducklake/")}
    assert {k: v for k, v in _snapshot(data).items() if not k.startswith("ducklake/")} == before
    assert _temps(data) == []
    monkeypatch.undo()  # (the store resource above keeps the SYNERGY_STORE it was built with)
    pd.testing.assert_frame_equal(db.query("SELECT * FROM sources ORDER BY ALL"), rows)

    raw_basins(
        dg.build_asset_context(), study=sources, store=store
    )  # a clean rerun replaces file and row together
    assert db.query("SELECT n_sites FROM sources WHERE source_name = 'streamflow'")["n_sites"].tolist() == [2]
    with xr.open_dataset(Layout(data).source_nc("streamflow")) as ds:
        assert ds.sizes["site"] == 2


def _model_rows(seeds: list[int], loss: float) -> tuple[list[dict], pd.DataFrame]:
    key = {"domain": "streamflow", "set_key": "global:CONUS", "budget": "paper"}
    rows = [{**key, "seed": s, "final_loss": loss} for s in seeds]
    curves = pd.DataFrame(
        [{**key, "seed": s, "update": u, "train_loss": loss} for s in seeds for u in (1, 2)]
    )
    return rows, curves


def test_save_models_with_a_failing_database_write_keeps_old_weights_index_and_rows(
    tmp_path: Path, monkeypatch
) -> None:
    from synergy_dagster.models.files import read_partition, save_models

    layout, store = Layout(tmp_path / "data"), MetadataStore(tmp_path / "data" / "synergy.duckdb")
    old = {s: {"w": torch.full((2, 3), float(s))} for s in (0, 1)}
    index = save_models(layout, store, "streamflow", "global:CONUS", "paper", old, *_model_rows([0, 1], 1.0))
    assert all(file_sha256(e["path"]) == e["sha256"] for e in index.values())
    before = _snapshot(tmp_path)
    rows = {t: store.query(f"SELECT * FROM {t} ORDER BY ALL") for t in ("models", "learning_curves")}

    new = {s: {"w": torch.full((2, 3), 10.0 + s)} for s in (0, 1, 2)}
    monkeypatch.setattr(MetadataStore, "_apply", staticmethod(_fail))
    with pytest.raises(Boom):
        save_models(layout, store, "streamflow", "global:CONUS", "paper", new, *_model_rows([0, 1, 2], 0.5))
    monkeypatch.undo()
    assert _snapshot(tmp_path) == before and _temps(tmp_path) == []  # no seed2.pt, old index.json
    for t, df in rows.items():
        pd.testing.assert_frame_equal(store.query(f"SELECT * FROM {t} ORDER BY ALL"), df)
    got = read_partition(layout, "streamflow", "global:CONUS", "paper")
    assert sorted(got) == [0, 1] and torch.equal(got[1]["w"], old[1]["w"])

    save_models(layout, store, "streamflow", "global:CONUS", "paper", new, *_model_rows([0, 1, 2], 0.5))
    got = read_partition(layout, "streamflow", "global:CONUS", "paper")
    assert sorted(got) == [0, 1, 2] and torch.equal(got[2]["w"], new[2]["w"])
    assert store.count("models") == 3 and store.count("learning_curves") == 6


# ---------------------------------------------------------------------------- 5. landing folder


def test_landing_folder_follows_the_study_data_dir(tmp_path: Path, monkeypatch) -> None:
    from synergy_dagster.defs.definitions import defs
    from synergy_dagster.defs.operations.resources import LandingConfig
    from synergy_dagster.defs.resources import StudyResource

    monkeypatch.delenv("SYNERGY_LANDING_DIR", raising=False)
    study = StudyResource(study_file="virtual", data_dir=str(tmp_path / "a"), overrides=[])
    assert LandingConfig(study=study).dir == (tmp_path / "a" / "landing").resolve()
    assert LandingConfig(study=study, path=str(tmp_path / "x")).dir == (tmp_path / "x").resolve()

    seen: dict[str, Path] = {}

    @dg.op(required_resource_keys={"landing"})
    def probe(context) -> None:  # unannotated: dagster cannot resolve a string annotation here
        seen["dir"] = context.resources.landing.dir

    @dg.job
    def probe_job() -> None:
        probe()

    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[probe_job])).resolve_job_def("probe_job")
    run_config = {"resources": {"study": {"config": {"data_dir": str(tmp_path / "b")}}}}
    assert job.execute_in_process(run_config=run_config, instance=dg.DagsterInstance.ephemeral()).success
    assert seen["dir"] == (tmp_path / "b" / "landing").resolve()


# ---------------------------------------------------------------- NWIS RDB folder as the target


def test_streamflow_rdb_folder_overrides_the_readers_streamflow(world) -> None:
    from synergy_dagster.sources.camels_us import cfs_to_mm_per_day
    from synergy_dagster.sources.nwis import write_nwis_rdb

    before = _read(world)
    rdb = world["tmp"] / "nwis"
    rdb.mkdir()
    days = pd.date_range("2000-03-01", periods=5, freq="D")
    cfs = np.array([10.0, 20.0, np.nan, 40.0, 50.0])
    write_nwis_rdb(
        pd.DataFrame({"site_no": GAUGES[0], "date": days, "value": cfs, "qualifier": "A"}),
        rdb / f"{GAUGES[0]}.rdb",
    )
    after = _read(world, streamflow_rdb=str(rdb))
    area = float(before["area"].sel(site=GAUGES[0]))
    got = after["streamflow"].sel(site=GAUGES[0], time=days).values
    want = cfs_to_mm_per_day(cfs, area)
    np.testing.assert_allclose(got[[0, 1, 3, 4]], want[[0, 1, 3, 4]], rtol=1e-5)
    # a gap in the RDB file never erases the reader's value; other gauges are untouched
    assert got[2] == pytest.approx(float(before["streamflow"].sel(site=GAUGES[0], time=days[2])))
    xr.testing.assert_equal(after["streamflow"].sel(site=GAUGES[1]), before["streamflow"].sel(site=GAUGES[1]))


def test_streamflow_rdb_folder_errors_name_the_folder_or_gauge(world) -> None:
    from synergy_dagster.sources.nwis import write_nwis_rdb

    empty = world["tmp"] / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"empty.*no \*\.rdb files"):
        _read(world, streamflow_rdb=str(empty))
    other = world["tmp"] / "other"
    other.mkdir()
    write_nwis_rdb(
        pd.DataFrame({"site_no": "09999999", "date": DATES[:3], "value": [1.0, 2.0, 3.0], "qualifier": "A"}),
        other / "09999999.rdb",
    )
    with pytest.raises(InputError, match=r"not in the basin data: \['09999999'\]"):
        _read(world, streamflow_rdb=str(other))
    with pytest.raises(ConfigError, match="not to a pixel cube"):
        load_study(_study(world, domains={"soil_moisture": {**STREAMFLOW, "reader": "pixel_cube",
                   "path": str(world["camels"]), "streamflow_rdb": str(other)}}))  # fmt: skip
