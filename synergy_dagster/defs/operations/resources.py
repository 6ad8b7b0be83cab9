"""The ``landing`` resource: where new streamflow files land, when one is complete, the USGS feed.

The feed's deployment settings live here, not in the study file: which service (the Water Data
OGC API by default; the deprecated NWIS RDB ``dv`` service until its 2027 retirement), its URL, the
name of the environment variable holding the API key (the key itself is never a setting), the
revision window, the time budget per run and the age at which a gauge counts as stale.

Like the store and the IO managers it depends on the ``study`` resource: without a ``path`` (or
``SYNERGY_LANDING_DIR``) the landing folder is ``<study.data_dir>/landing``
(:meth:`Layout.landing_dir`), so a ``data_dir`` given in run config moves it too.
"""

# No `from __future__ import annotations`: Dagster reads the ResourceDependency annotation at
# class creation, and a string annotation fails validation against a configure_at_launch resource.

from datetime import date
from pathlib import Path

import dagster as dg
from pydantic import Field

from synergy_dagster.defs.resources import StudyResource
from synergy_dagster.env import env_float, env_int, env_list, env_str
from synergy_dagster.errors import ConfigError
from synergy_dagster.sources.nwis_client import DEFAULT_BASE_URL
from synergy_dagster.sources.waterdata import API_KEY_ENV, DEFAULT_API_URL, ClientSettings

SERVICES = ("waterdata", "nwis_rdb")


class LandingConfig(dg.ConfigurableResource):
    """Where new streamflow files land, when a file counts as complete, and the USGS feed."""

    study: dg.ResourceDependency[StudyResource]
    # empty = the working folder's landing folder (study.layout.landing_dir())
    path: str = Field(default_factory=lambda: env_str("SYNERGY_LANDING_DIR", ""))
    settle_seconds: float = Field(default_factory=lambda: env_float("SYNERGY_LANDING_SETTLE_S", 10.0))
    nwis_base_url: str = Field(default_factory=lambda: env_str("SYNERGY_NWIS_URL", DEFAULT_BASE_URL))
    nwis_timeout_s: float = 60.0
    nwis_sites: list[str] = Field(  # empty = every tracked gauge with a USGS number
        default_factory=lambda: env_list("SYNERGY_NWIS_SITES", [], str)
    )
    usgs_service: str = Field(
        default_factory=lambda: env_str("SYNERGY_USGS_SERVICE", "waterdata"),
        description="waterdata (the Water Data OGC API, default) or nwis_rdb (WaterServices dv, deprecated: "
        "retired by USGS in 2027)",
    )
    waterdata_url: str = Field(
        default_factory=lambda: env_str("SYNERGY_WATERDATA_URL", DEFAULT_API_URL),
        description="the Water Data OGC API root (collections/daily/items is appended)",
    )
    waterdata_key_env: str = Field(
        default=API_KEY_ENV,
        description="name of the environment variable holding the api.data.gov key (sent as X-Api-Key; "
        "the key itself is never configuration)",
    )
    revision_days: int = Field(
        default_factory=lambda: env_int("SYNERGY_USGS_REVISION_DAYS", 365),
        description="days before each gauge's newest day re-fetched every run: revised, approved and "
        "withdrawn values inside it are taken over (a water year covers most provisional periods)",
    )
    history_start: str = Field(
        default_factory=lambda: env_str("SYNERGY_USGS_HISTORY_START", "1980-01-01"),
        description="YYYY-MM-DD: first day fetched for a gauge with nothing held (the study's forcing start)",
    )
    fetch_budget_s: float = Field(
        default_factory=lambda: env_float("SYNERGY_USGS_BUDGET_S", 1800.0),
        description="time budget of one fetch run, s: what arrived lands, the run then fails naming the rest",
    )
    fetch_retries: int = Field(
        default=4, description="retries per request after 429, 5xx or a dropped connection"
    )
    gauges_per_request: int = Field(default=50, description="gauges in one request (a CQL2 filter)")
    stale_days: float = Field(
        default_factory=lambda: env_float("SYNERGY_USGS_STALE_DAYS", 7.0),
        description="a tracked gauge whose newest day is older than this many days fails the feed check",
    )

    def service(self) -> str:
        """``usgs_service``, checked."""
        if self.usgs_service not in SERVICES:
            raise ConfigError("landing.usgs_service", f"{self.usgs_service!r}; expected one of {SERVICES}")
        return self.usgs_service

    def client_settings(self) -> ClientSettings:
        """The Water Data client's settings (InputError naming a bad one)."""
        return ClientSettings(
            base_url=self.waterdata_url,
            api_key_env=self.waterdata_key_env,
            timeout_s=self.nwis_timeout_s,
            retries=self.fetch_retries,
            budget_s=self.fetch_budget_s,
            gauges_per_request=self.gauges_per_request,
        )

    def first_day(self) -> date:
        """``history_start`` as a date (ConfigError when it is not YYYY-MM-DD)."""
        try:
            return date.fromisoformat(self.history_start)
        except ValueError:
            raise ConfigError(
                "landing.history_start", f"expected YYYY-MM-DD, got {self.history_start!r}"
            ) from None

    @property
    def dir(self) -> Path:
        return Path(self.path).resolve() if self.path else self.study.layout.landing_dir().resolve()
