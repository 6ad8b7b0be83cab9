"""The ``landing`` resource: where new streamflow files land, when one is complete, the NWIS service.

Like the store and the IO managers it depends on the ``sources`` resource: without a ``path`` (or
``SYNERGY_LANDING_DIR``) the landing folder is ``<sources.data_dir>/landing``
(:meth:`Layout.landing_dir`), so a ``data_dir`` given in run config moves it too.
"""

# No `from __future__ import annotations`: Dagster reads the ResourceDependency annotation at
# class creation, and a string annotation fails validation against a configure_at_launch resource.

from pathlib import Path

import dagster as dg
from pydantic import Field

from synergy_dagster.defs.resources import SourceConfig
from synergy_dagster.env import env_float, env_list, env_str
from synergy_dagster.sources.nwis_client import DEFAULT_BASE_URL


class LandingConfig(dg.ConfigurableResource):
    """Where new streamflow files land, when a file counts as complete, and the NWIS service."""

    sources: dg.ResourceDependency[SourceConfig]
    # empty = the working folder's landing folder (sources.layout.landing_dir())
    path: str = Field(default_factory=lambda: env_str("SYNERGY_LANDING_DIR", ""))
    settle_seconds: float = Field(default_factory=lambda: env_float("SYNERGY_LANDING_SETTLE_S", 10.0))
    nwis_base_url: str = Field(default_factory=lambda: env_str("SYNERGY_NWIS_URL", DEFAULT_BASE_URL))
    nwis_timeout_s: float = 60.0
    nwis_sites: list[str] = Field(  # empty = every tracked gauge with a USGS number
        default_factory=lambda: env_list("SYNERGY_NWIS_SITES", [], str)
    )

    @property
    def dir(self) -> Path:
        return Path(self.path).resolve() if self.path else self.sources.layout.landing_dir().resolve()
