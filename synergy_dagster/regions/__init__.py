"""Ecoregion tagging of sites, the paper's sub-regions A-R and target coverage."""

from synergy_dagster.regions.coverage import coverage, coverage_filter
from synergy_dagster.regions.subregions import SUBREGIONS, SubRegion, subregion_of, subregions_of
from synergy_dagster.regions.tagging import TaggingResult, tag_basin_polygons, tag_points, tag_sites

__all__ = [
    "SUBREGIONS",
    "SubRegion",
    "TaggingResult",
    "coverage",
    "coverage_filter",
    "subregion_of",
    "subregions_of",
    "tag_basin_polygons",
    "tag_points",
    "tag_sites",
]
