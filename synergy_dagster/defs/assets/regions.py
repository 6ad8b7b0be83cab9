"""Stage 2, regions: the ecoregion hierarchy and the tagged, coverage-filtered sites per domain."""

import dagster as dg
import geopandas as gpd
import pandas as pd
import xarray as xr

from synergy_dagster.defs.assets.sources import raw_basins, raw_ecoregions, raw_pixels
from synergy_dagster.defs.metadata import png_markdown
from synergy_dagster.defs.resources import MetadataStoreResource, StudyResource
from synergy_dagster.domains import domain_record
from synergy_dagster.evaluation.figures import region_map
from synergy_dagster.evaluation.summary import markdown_table
from synergy_dagster.io_utils import staged_outputs
from synergy_dagster.regions.coverage import coverage_filter
from synergy_dagster.regions.schemes import NULL_SEED, SchemeInputs, assign_schemes, planned_null_draws
from synergy_dagster.regions.subregions import SUBREGIONS
from synergy_dagster.regions.tagging import tag_sites
from synergy_dagster.sources.basin_polygons import read_site_polygons
from synergy_dagster.sources.camels_us import read_camels_attributes
from synergy_dagster.sources.gages2 import read_gages2

GROUP = "regions"
SITES_COLUMNS = [
    "site_id",
    "domain",
    "lat",
    "lon",
    "l1",
    "l2",
    "l3",
    "subregion",
    "tagging_method",
    "area_share",
    "coverage_train",
    "coverage_test",
    "kept",
]


def load_l3(study: StudyResource) -> gpd.GeoDataFrame:
    return gpd.read_file(study.layout.ecoregions(), layer="l3")


@dg.asset(
    group_name=GROUP,
    deps=[raw_ecoregions],
    kinds={"geopandas"},
    description=(
        "The region hierarchy: Level III ecoregions, Level II and I by dissolving, and the paper's 18 "
        "sub-regions A-R (Table 1)."
    ),
)
def regions(study: StudyResource) -> dg.MaterializeResult:
    l3 = load_l3(study)
    table = pd.DataFrame(
        [
            {
                "subregion": s.letter,
                "codes": ", ".join(s.codes),
                "name": s.name,
                "l3_regions": int(l3["l2"].isin(s.codes).sum() + l3["l1"].isin(s.codes).sum()),
            }
            for s in SUBREGIONS
        ]
    )
    png = region_map(l3.rename(columns={"l3": "code"}), pd.DataFrame(columns=["lat", "lon", "subregion"]))
    return dg.MaterializeResult(
        metadata={
            "n_l3": int(l3["l3"].nunique()),
            "n_l2": int(l3["l2"].nunique()),
            "n_l1": int(l3["l1"].nunique()),
            "subregions": dg.MetadataValue.md(markdown_table(table)),
            "map": png_markdown(png),
        }
    )


def scheme_regions(
    domain: str, study: StudyResource, kept: pd.DataFrame, ds: xr.Dataset, min_sites: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The kept sites' regions under every scheme of the study's ``stratification`` (long table
    with a domain column) and the per-scheme status (applicable, regions reaching N, why not)."""
    specs = study.spec.stratification.schemes
    gages2 = camels_huc = None
    if domain == "streamflow" and any(s.kind == "huc2" for s in specs):
        if study.gages2() is not None:
            gages2 = read_gages2(study.gages2())
        spec = study.domain(domain)
        if gages2 is None and spec.reader == "camels_us":
            table = read_camels_attributes(spec.attributes or spec.path)
            camels_huc = table["huc_02"] if "huc_02" in table.columns else None
    inputs = SchemeInputs(
        domain,
        kept[["site_id", "lat", "lon", "subregion"]].reset_index(drop=True),
        min_sites,
        ds=ds,
        train=study.spec.periods(domain).train.slice,
        gages2=gages2,
        camels_huc=camels_huc,
        allow_leaky=frozenset(study.domain(domain).allow_leaky),
    )
    draws = planned_null_draws(specs, study.spec.statistics.null_draws)
    regions_long, status = assign_schemes(specs, inputs, null_draws=draws, null_seed=NULL_SEED)
    return regions_long.assign(domain=domain), status


def build_sites_asset(domain: str, raw: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{domain}_sites",
        group_name=GROUP,
        deps=[raw, regions],
        pool="duckdb",
        kinds={"geopandas", "duckdb"},
        description=(
            f"{domain.replace('_', ' ').capitalize()} sites tagged with Level I/II/III ecoregion and "
            "sub-region (pixels by centroid, basins by majority area where polygons exist, else by "
            "gauge point), filtered to sites with enough valid targets in both periods."
        ),
    )
    def _sites(
        context: dg.AssetExecutionContext, study: StudyResource, store: MetadataStoreResource
    ) -> dg.MaterializeResult:
        if domain not in study.domains():  # not in this study / run
            return dg.MaterializeResult(metadata={"skipped": f"{domain} is not among this run's domains"})
        layout = study.layout
        l3 = load_l3(study)
        ds = xr.load_dataset(layout.source_nc(domain))
        polygons = None
        if domain == "streamflow" and study.basin_polygons() is not None:
            # each gauge within GAUGE_TOLERANCE_KM of its own polygon; ids paired on their digits
            # (site camels_01022500 = polygon 01022500) for the check and the tagging alike
            polygons = read_site_polygons(study.basin_polygons(), ds).reset_index()
        tagging = tag_sites(ds, l3, domain, polygons=polygons)
        tagged = tagging.tagged.set_index("site_id")
        periods = study.spec.periods(domain)
        kept, cov = coverage_filter(
            ds.sel(site=tagged.index.to_numpy()),
            periods.train.slice,
            periods.test.slice,
            min_share=study.spec.thresholds.coverage,
            revisit_days=domain_record(domain).revisit_days,
        )
        table = tagged.join(cov.set_index("site_id")[["cov_train", "cov_test", "kept"]]).reset_index()
        table["domain"] = domain
        rows = table.rename(
            columns={"method": "tagging_method", "cov_train": "coverage_train", "cov_test": "coverage_test"}
        )
        if "area_share" not in rows:
            rows["area_share"] = float("nan")
        counts = (
            rows.groupby("subregion", dropna=False)
            .agg(tagged=("site_id", "size"), kept=("kept", "sum"))
            .reset_index()
        )
        png = region_map(l3.rename(columns={"l3": "code"}), rows[rows["kept"]], color_by="subregion")
        map_path = layout.region_map(domain)  # the paper's Figure 1
        kept_rows = rows[rows["kept"]]
        by_scheme, scheme_status = scheme_regions(
            domain,
            study,
            kept_rows,
            ds.sel(site=kept_rows["site_id"].to_numpy()),
            study.spec.thresholds.min_sites_subregion,
        )
        db = store.store()
        # All or nothing: the sites rows, the table, the kept sites' NetCDF and the map change
        # together; any failure leaves the previous four (or none) in place.
        with staged_outputs() as out:
            rows.to_parquet(out.path(layout.sites_table(domain)), index=False)
            out.write_netcdf(layout.sites_nc(domain), ds.sel(site=list(kept)))
            out.write_bytes(map_path, png)
            by_scheme.to_parquet(out.path(layout.site_regions(domain)), index=False)
            writes = [("sites", rows[SITES_COLUMNS], {"domain": domain})]
            writes.append(("site_regions", by_scheme, {"domain": domain}))
            out.transaction(db.transaction(writes), db.path)
        context.log.info(
            f"{domain}: {len(rows)} tagged, {len(tagging.dropped)} outside every region, "
            f"{int(rows['kept'].sum())} kept by coverage"
        )
        return dg.MaterializeResult(
            metadata={
                "n_input": int(ds.sizes["site"]),
                "n_tagged": len(rows),
                "n_outside_regions": len(tagging.dropped),
                "n_kept": int(rows["kept"].sum()),
                "tagging_methods": dg.MetadataValue.json(rows["tagging_method"].value_counts().to_dict()),
                "counts_per_subregion": dg.MetadataValue.md(markdown_table(counts)),
                "map": png_markdown(png),
                "map_path": dg.MetadataValue.path(str(map_path)),
                "schemes": dg.MetadataValue.md(markdown_table(scheme_status)),
            }
        )

    return _sites


soil_moisture_sites = build_sites_asset("soil_moisture", raw_pixels)
streamflow_sites = build_sites_asset("streamflow", raw_basins)
