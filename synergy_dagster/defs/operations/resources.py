"""The ``landing`` resource: where new streamflow files land, when one is complete, the NWIS service."""

# No `from __future__ import annotations`: Dagster resolves resource annotations at decoration time.

from pathlib import Path

import dagster as dg
from pydantic import Field

from synergy_dagster.env import env_float, env_list, env_str
from synergy_dagster.layout import Layout
from synergy_dagster.sources.nwis_client import DEFAULT_BASE_URL


class LandingConfig(dg.ConfigurableResource):
    """Where new streamflow files land, when a file counts as complete, and the NWIS service."""

    path: str = Field(
        default_factory=lambda: env_str(
            "SYNERGY_LANDING_DIR", str(Layout(env_str("SYNERGY_DATA_DIR", "data")).landing_dir())
        )
    )
    settle_seconds: float = Field(default_factory=lambda: env_float("SYNERGY_LANDING_SETTLE_S", 10.0))
    nwis_base_url: str = Field(default_factory=lambda: env_str("SYNERGY_NWIS_URL", DEFAULT_BASE_URL))
    nwis_timeout_s: float = 60.0
    nwis_sites: list[str] = Field(  # empty = every tracked gauge with a USGS number
        default_factory=lambda: env_list("SYNERGY_NWIS_SITES", [], str)
    )

    @property
    def dir(self) -> Path:
        return Path(self.path).resolve()
