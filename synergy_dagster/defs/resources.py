"""Resources: where the data come from, how the study is run, and the DuckDB store.

Each is a small ConfigurableResource; its defaults come from environment variables (read with the
typed readers of :mod:`synergy_dagster.env`) so the same definitions run the embedded virtual CONUS
(default) or real data (``SYNERGY_SOURCE=real``), and any field can still be overridden in run
config. The working folder is ``sources.data_dir``: the store and the IO managers depend on the
``sources`` resource and take every path from its :class:`Layout`, so a ``data_dir`` given in run
config moves every file.
"""

# No `from __future__ import annotations`: Dagster reads the ResourceDependency annotation at
# class creation, and a string annotation fails validation against a configure_at_launch resource.
from pathlib import Path

import dagster as dg
from pydantic import Field

from synergy_dagster.config import (
    BUDGET_MODES,
    DOMAINS,
    PERIODS,
    Budget,
    DomainPeriods,
    PlanConfig,
    Profile,
    get_profile,
)
from synergy_dagster.env import env_float, env_int, env_list, env_str
from synergy_dagster.errors import ConfigError
from synergy_dagster.layout import Layout
from synergy_dagster.store import MetadataStore


class SourceConfig(dg.ConfigurableResource):
    """Which files feed the study. ``kind="virtual"`` generates the embedded default under
    ``data_dir/virtual_conus``; ``kind="real"`` reads the layout of ``$SYNERGY_REAL_DATA``.
    Any explicit path overrides the layout's default for that source."""

    kind: str = Field(default_factory=lambda: env_str("SYNERGY_SOURCE", "virtual"))
    data_dir: str = Field(default_factory=lambda: env_str("SYNERGY_DATA_DIR", "data"))
    real_data: str = Field(default_factory=lambda: env_str("SYNERGY_REAL_DATA", "../shared/data"))
    virtual_seed: int = 42
    virtual_pixels: int = Field(default_factory=lambda: env_int("SYNERGY_VIRTUAL_PIXELS", 1200))
    virtual_basins: int = Field(default_factory=lambda: env_int("SYNERGY_VIRTUAL_BASINS", 300))
    ecoregions_path: str = ""
    caravan_root: str = ""
    caravan_subset: str = ""
    pixels_path: str = ""
    basin_polygons_path: str = ""
    gages2_path: str = ""

    def check(self) -> None:
        if self.kind not in ("virtual", "real"):
            raise ConfigError("sources.kind", f"must be 'virtual' or 'real', got {self.kind!r}")
        if self.kind == "real" and not Path(self.real_data).is_dir():
            raise ConfigError("sources.real_data", f"folder does not exist: {self.real_data}")

    @property
    def work_dir(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def layout(self) -> Layout:
        """Every file under the working folder."""
        return Layout(self.work_dir)

    def _root(self) -> Path:
        return self.layout.virtual_dir() if self.kind == "virtual" else Path(self.real_data).resolve()

    def _pick(self, override: str, virtual: str, real: str | None) -> Path | None:
        if override:
            return Path(override).resolve()
        rel = virtual if self.kind == "virtual" else real
        return None if rel is None else self._root() / rel

    def ecoregions(self) -> Path:
        return self._pick(self.ecoregions_path, "ecoregions/us_eco_l3.gpkg", "ecoregions/us_eco_l3.gpkg")  # type: ignore[return-value]

    def caravan(self) -> tuple[Path, str]:
        root = self._pick(self.caravan_root, "caravan", "caravan")
        subset = self.caravan_subset or ("virtual" if self.kind == "virtual" else "camels")
        return root, subset  # type: ignore[return-value]

    def pixels(self) -> Path:
        return self._pick(self.pixels_path, "smap/virtual_pixels.nc", "smap/smap_conus_v4f1.nc")  # type: ignore[return-value]

    def basin_polygons(self) -> Path | None:
        path = self._pick(self.basin_polygons_path, "basins/basin_polygons.gpkg", None)
        return path if path is not None and path.exists() else None

    def gages2(self) -> Path | None:
        path = self._pick(self.gages2_path, "gages2/gauges.gpkg", "gages2/gagesII_9322_sept30_2011.shp")
        return path if path is not None and path.exists() else None

    def periods(self, domain: str) -> DomainPeriods:
        return PERIODS[self.kind][domain]


class StudyConfig(dg.ConfigurableResource):
    """How the study is run: the training profile, its overrides, and the plan thresholds."""

    profile: str = Field(default_factory=lambda: env_str("SYNERGY_PROFILE", "demo"))
    epochs: int = Field(default_factory=lambda: env_int("SYNERGY_EPOCHS", 0))  # 0 = the profile's
    hidden: int = Field(default_factory=lambda: env_int("SYNERGY_HIDDEN", 0))  # 0 = the profile's
    seeds: list[int] = Field(  # empty = the profile's
        default_factory=lambda: env_list("SYNERGY_SEEDS", [], int)
    )
    min_sites_subregion: int = Field(default_factory=lambda: env_int("SYNERGY_MIN_SITES", 10))
    min_sites_roi: int = Field(default_factory=lambda: env_int("SYNERGY_MIN_SITES_ROI", 10))
    coverage: float = 0.9
    per_set_normalization: bool = False
    log_transform: bool = True  # log(x+1) for precipitation and runoff (streamflow)
    device: str = Field(default_factory=lambda: env_str("SYNERGY_DEVICE", "auto"))
    torch_threads: int = Field(default_factory=lambda: env_int("SYNERGY_TORCH_THREADS", 0))  # 0 = auto
    # Training budget (see config.Budget): "" / 0 keep the profile's value.
    budget: str = Field(default_factory=lambda: env_str("SYNERGY_BUDGET", ""))
    budget_updates: int = Field(default_factory=lambda: env_int("SYNERGY_BUDGET_UPDATES", 0))
    budget_passes: float = 0.0
    budget_seconds: float = Field(default_factory=lambda: env_float("SYNERGY_BUDGET_SECONDS", 0.0))
    max_updates: int = Field(default_factory=lambda: env_int("SYNERGY_MAX_UPDATES", 0))
    patience: int = 0
    eval_every: int = Field(default_factory=lambda: env_int("SYNERGY_EVAL_EVERY", 0))
    # Modes the budget_sensitivity asset compares global vs local under (at least two).
    sensitivity_modes: list[str] = Field(
        default_factory=lambda: env_list(
            "SYNERGY_SENSITIVITY_MODES", ["paper", "equal_updates", "converge"], str
        )
    )
    domains: list[str] = Field(  # which domains the study trains and evaluates
        default_factory=lambda: env_list("SYNERGY_DOMAINS", DOMAINS, str)
    )

    def resolved_domains(self) -> list[str]:
        bad = [d for d in self.domains if d not in DOMAINS]
        if bad or not self.domains:
            raise ConfigError("study.domains", f"unknown or empty domains {bad or self.domains}")
        return list(self.domains)

    def resolved_profile(self) -> Profile:
        p = get_profile(self.profile)
        changes: dict[str, object] = {}
        if self.epochs:
            changes["epochs"] = self.epochs
        if self.hidden:
            changes["hidden"] = self.hidden
        if self.seeds:
            changes["seeds"] = tuple(self.seeds)
        budget = self.resolved_budget(p.budget)
        if budget != p.budget:
            changes["budget"] = budget
        return p.replace(**changes) if changes else p

    def resolved_budget(self, base: Budget, mode: str | None = None) -> Budget:
        """The profile's budget with this config's overrides (and ``mode`` if given)."""
        changes: dict[str, object] = {}
        for name, value in (
            ("mode", mode or self.budget),
            ("updates", self.budget_updates),
            ("passes", self.budget_passes),
            ("seconds", self.budget_seconds),
            ("max_updates", self.max_updates),
            ("patience", self.patience),
            ("eval_every", self.eval_every),
        ):
            if value:
                changes[name] = value
        if self.max_updates:  # a smaller cap lowers the floor with it
            changes["min_updates"] = min(base.min_updates, self.max_updates)
        return base.replace(**changes) if changes else base

    def resolved_sensitivity_modes(self) -> list[str]:
        modes = list(dict.fromkeys(self.sensitivity_modes))
        bad = [m for m in modes if m not in BUDGET_MODES]
        if bad or len(modes) < 2:
            raise ConfigError(
                "study.sensitivity_modes",
                f"need at least two distinct modes of {BUDGET_MODES}, got {self.sensitivity_modes}",
            )
        return modes

    def plan_config(self) -> PlanConfig:
        return PlanConfig(
            min_sites_subregion=self.min_sites_subregion,
            min_sites_roi=self.min_sites_roi,
            coverage=self.coverage,
        )


class DuckDBStore(dg.ConfigurableResource):
    """The metadata store (one DuckDB file); every use opens and closes its own connection.

    The file is the working folder's (``Layout.database``) unless ``path`` names another one.
    """

    sources: dg.ResourceDependency[SourceConfig]
    path: str = ""  # empty = <sources.data_dir>/synergy.duckdb

    @property
    def db_path(self) -> Path:
        return Path(self.path).resolve() if self.path else self.sources.layout.database()

    def store(self) -> MetadataStore:
        return MetadataStore(self.db_path)
