"""The embedded "virtual CONUS": a seeded generator of data in the real data's formats.

:func:`generate_virtual_conus` is the entry point; :mod:`.conus` describes the modelling choices and
lists the module of each concern.
"""

from synergy_dagster.sources.virtual.basins import HYDROATLAS_COLUMNS, LATENT_BASIN_PARAMS, basin_sites
from synergy_dagster.sources.virtual.conus import (
    VirtualConusConfig,
    ensure_virtual_conus,
    generate_virtual_conus,
)
from synergy_dagster.sources.virtual.land import simulate_land
from synergy_dagster.sources.virtual.output import GENERATOR_VERSION
from synergy_dagster.sources.virtual.pixels import LATENT_PIXEL_PARAMS, pixel_sites

__all__ = [
    "GENERATOR_VERSION",
    "HYDROATLAS_COLUMNS",
    "LATENT_BASIN_PARAMS",
    "LATENT_PIXEL_PARAMS",
    "VirtualConusConfig",
    "basin_sites",
    "ensure_virtual_conus",
    "generate_virtual_conus",
    "pixel_sites",
    "simulate_land",
]
