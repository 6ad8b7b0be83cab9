"""Resources: where the data come from, how the study is run, and the metadata store.

Each is a small ConfigurableResource; its defaults come from environment variables (read with the
typed readers of :mod:`synergy_dagster.env`) so the same definitions run the embedded virtual CONUS
(default) or real data (``SYNERGY_SOURCE=real``), and any field can still be overridden in run
config. The working folder is ``sources.data_dir``: the store and the IO managers depend on the
``sources`` resource and take every path from its :class:`Layout`, so a ``data_dir`` given in run
config moves every file.
"""

# No `from __future__ import annotations`: Dagster reads the ResourceDependency annotation at
# class creation, and a string annotation fails validation against a configure_at_launch resource.
import dataclasses
import functools
from pathlib import Path

import dagster as dg
from pydantic import Field

from synergy_dagster.config import (
    BUDGET_MODES,
    DOMAINS,
    Budget,
    DomainPeriods,
    PlanConfig,
    Profile,
    get_profile,
)
from synergy_dagster.env import env_float, env_int, env_list, env_str
from synergy_dagster.errors import ConfigError
from synergy_dagster.evaluation.statistics import WILCOXON_METHODS
from synergy_dagster.layout import Layout
from synergy_dagster.store import MetadataStore, StoreLocation, duckdb_file, ducklake, parse_store
from synergy_dagster.study_file import (
    SHIPPED_STUDIES,
    DomainSpec,
    StatisticsSpec,
    StudyFile,
    VirtualSpec,
    load_study,
    shipped_study,
)


class SourceConfig(dg.ConfigurableResource):
    """Which study runs, and so which files feed it: the study file (``study_file``, env
    ``SYNERGY_STUDY``) names every path, variable and period (see :mod:`synergy_dagster.study_file`).
    Without one, the shipped study of ``kind`` runs: ``virtual`` (``studies/virtual.yaml``, the
    generated virtual CONUS) or ``real`` (``studies/real.yaml``, reading ``real_data``). ``data_dir``
    and the virtual sizes override the study's when set."""

    study_file: str = Field(default_factory=lambda: env_str("SYNERGY_STUDY", ""))
    kind: str = Field(default_factory=lambda: env_str("SYNERGY_SOURCE", "virtual"))
    data_dir: str = Field(default_factory=lambda: env_str("SYNERGY_DATA_DIR", ""))  # "" = the study's
    real_data: str = Field(default_factory=lambda: env_str("SYNERGY_REAL_DATA", "../shared/data"))
    virtual_pixels: int = Field(default_factory=lambda: env_int("SYNERGY_VIRTUAL_PIXELS", 0))  # 0 = study's
    virtual_basins: int = Field(default_factory=lambda: env_int("SYNERGY_VIRTUAL_BASINS", 0))

    def check(self) -> None:
        if not self.study_file:
            if self.kind not in SHIPPED_STUDIES:
                raise ConfigError("sources.kind", f"must be 'virtual' or 'real', got {self.kind!r}")
            if self.kind == "real" and not Path(self.real_data).is_dir():
                raise ConfigError("sources.real_data", f"folder does not exist: {self.real_data}")
        self.study()

    def study_path(self) -> Path:
        return Path(self.study_file).resolve() if self.study_file else shipped_study(self.kind)

    def study(self) -> StudyFile:
        """The study file, validated (cached per file content and variables)."""
        path = self.study_path()
        return _load(str(path), path.stat().st_mtime_ns if path.exists() else 0, self.real_data)

    @property
    def work_dir(self) -> Path:
        return Path(self.data_dir or self.study().data_dir).resolve()

    @property
    def layout(self) -> Layout:
        """Every file under the working folder."""
        return Layout(self.work_dir)

    def domains(self) -> list[str]:
        """The study's domains, in pipeline order."""
        have = self.study().domains
        return [d for d in DOMAINS if d in have]

    def domain(self, domain: str) -> DomainSpec:
        """One domain's spec; paths a virtual study leaves out point at the generated files."""
        spec = self.study().domain(domain)
        if self.study().virtual is None:
            return spec
        root = self.layout.virtual_dir()
        fill = {
            "path": str(root / VIRTUAL_FILES[spec.reader]),
            "basin_polygons": str(root / VIRTUAL_FILES["basin_polygons"]),
            "gages2": str(root / VIRTUAL_FILES["gages2"]),
        }
        return spec.model_copy(update={k: v for k, v in fill.items() if getattr(spec, k) is None})

    def virtual(self) -> VirtualSpec | None:
        spec = self.study().virtual
        if spec is None:
            return None
        changes = {"pixels": self.virtual_pixels, "basins": self.virtual_basins}
        return spec.model_copy(update={k: v for k, v in changes.items() if v})

    def ecoregions(self) -> Path:
        study = self.study()
        if study.ecoregions:
            return Path(study.ecoregions)
        return self.layout.virtual_dir() / VIRTUAL_FILES["ecoregions"]

    def _optional(self, domain: str, key: str) -> Path | None:
        if domain not in self.study().domains:
            return None
        value = getattr(self.domain(domain), key)
        return Path(value) if value and Path(value).exists() else None

    def basin_polygons(self) -> Path | None:
        return self._optional("streamflow", "basin_polygons")

    def gages2(self) -> Path | None:
        return self._optional("streamflow", "gages2")

    def periods(self, domain: str) -> DomainPeriods:
        return self.study().periods(domain)


# Where the generator writes each file under <data_dir>/virtual_conus (a virtual study's defaults).
VIRTUAL_FILES = {
    "ecoregions": "ecoregions/us_eco_l3.gpkg",
    "caravan": "caravan",
    "pixel_cube": "smap/virtual_pixels.nc",
    "basin_polygons": "basins/basin_polygons.gpkg",
    "gages2": "gages2/gauges.gpkg",
}


@functools.lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int, real_data: str) -> StudyFile:
    # ${SYNERGY_REAL_DATA} in the shipped real study is the resource's real_data (env default).
    return load_study(path, variables={"SYNERGY_REAL_DATA": str(Path(real_data).resolve())})


class StudyConfig(dg.ConfigurableResource):
    """How the study is run: the training profile, its overrides, and the plan thresholds."""

    profile: str = Field(default_factory=lambda: env_str("SYNERGY_PROFILE", ""))  # "" = the study's
    epochs: int = Field(default_factory=lambda: env_int("SYNERGY_EPOCHS", 0))  # 0 = the profile's
    hidden: int = Field(default_factory=lambda: env_int("SYNERGY_HIDDEN", 0))  # 0 = the profile's
    seeds: list[int] = Field(  # empty = the profile's
        default_factory=lambda: env_list("SYNERGY_SEEDS", [], int)
    )
    # Plan thresholds: None = the study file's.
    min_sites_subregion: int | None = Field(default_factory=lambda: env_int("SYNERGY_MIN_SITES", None))
    min_sites_roi: int | None = Field(default_factory=lambda: env_int("SYNERGY_MIN_SITES_ROI", None))
    coverage: float | None = None
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
    domains: list[str] = Field(  # which of the study's domains run; empty = all of them
        default_factory=lambda: env_list("SYNERGY_DOMAINS", [], str)
    )
    # How the Wilcoxon p-values are computed: "" = the study file's statistics.wilcoxon_method.
    wilcoxon_method: str = Field(default_factory=lambda: env_str("SYNERGY_WILCOXON_METHOD", ""))

    def resolved_domains(self, study: StudyFile | None = None) -> list[str]:
        have = [d for d in DOMAINS if study is None or d in study.domains]
        bad = [d for d in self.domains if d not in DOMAINS]
        if bad:
            raise ConfigError("study.domains", f"unknown domains {bad}; expected some of {list(DOMAINS)}")
        absent = [d for d in self.domains if d not in have]
        if absent:
            raise ConfigError("study.domains", f"{absent} not in the study file (it has {have})")
        return [d for d in have if d in self.domains] if self.domains else have

    def resolved_statistics(self, study: StudyFile | None = None) -> StatisticsSpec:
        """The study file's statistics settings with this config's Wilcoxon method, if set."""
        base = study.statistics if study is not None else StatisticsSpec()
        if not self.wilcoxon_method:
            return base
        if self.wilcoxon_method not in WILCOXON_METHODS:
            raise ConfigError(
                "study.wilcoxon_method",
                f"must be one of {list(WILCOXON_METHODS)}, got {self.wilcoxon_method!r}",
            )
        return base.model_copy(update={"wilcoxon_method": self.wilcoxon_method})

    def resolved_profile(self, study: StudyFile | None = None) -> Profile:
        """The profile (run config, else the study file's, else ``demo``) with every override:
        the study file's seeds and budget, then run config / environment."""
        p = get_profile(self.profile or (study.profile if study is not None else "demo"))
        if study is not None:
            base: dict[str, object] = {"budget": study.budget.apply(p.budget)}
            if study.seeds:
                base["seeds"] = tuple(study.seeds)
            recipes = {d: spec.recipe for d, spec in study.domains.items() if spec.recipe and d in p.domains}
            if recipes:
                base["domains"] = {
                    d: t.with_recipe(recipes[d], f"domains.{d}.recipe") if d in recipes else t
                    for d, t in p.domains.items()
                }
            p = p.replace(**base)
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

    def plan_config(self, study: StudyFile | None = None) -> PlanConfig:
        base = study.thresholds.plan_config() if study is not None else PlanConfig()
        changes = {
            k: v
            for k, v in (
                ("min_sites_subregion", self.min_sites_subregion),
                ("min_sites_roi", self.min_sites_roi),
                ("coverage", self.coverage),
            )
            if v is not None
        }
        return dataclasses.replace(base, **changes) if changes else base


class DuckDBStore(dg.ConfigurableResource):
    """The metadata store: the embedded DuckDB file (default) or a DuckLake catalog with Parquet
    data (for many writers); every use opens and closes its own connection.

    Which store, the first that is set: ``path`` (a DuckDB file), ``url`` (env ``SYNERGY_STORE``: a
    DuckDB file, ``ducklake:postgres:<connection string>`` or ``ducklake:<catalog file>``), the
    study file's ``store:`` block, else ``<sources.data_dir>/synergy.duckdb``. A DuckLake store's
    Parquet files go to ``data_path`` (env ``SYNERGY_STORE_DATA_PATH``), else the study file's
    ``store.data_path``, else ``<sources.data_dir>/ducklake``.
    """

    sources: dg.ResourceDependency[SourceConfig]
    path: str = ""  # a DuckDB file; empty = as below
    url: str = Field(default_factory=lambda: env_str("SYNERGY_STORE", ""))
    data_path: str = Field(default_factory=lambda: env_str("SYNERGY_STORE_DATA_PATH", ""))

    def location(self) -> StoreLocation:
        """Where the store is (its ``url`` opens it again in any process: ``MetadataStore(url)``)."""
        if self.path:
            return duckdb_file(self.path, "store.path")
        url_origin = _origin("store.url", "SYNERGY_STORE", self.url)
        data_origin = _origin("store.data_path", "SYNERGY_STORE_DATA_PATH", self.data_path)
        study = self.sources.study()
        spec, where = study.store, f"{self.sources.study_path()}: store"
        lake_data: str | Path = self.data_path
        if not lake_data and spec.kind == "ducklake" and spec.data_path:
            lake_data, data_origin = spec.data_path, f"{where}.data_path"
        if not lake_data:
            lake_data = self.sources.work_dir / "ducklake"
        if self.url:
            if self.url.startswith("ducklake:"):
                return parse_store(self.url, lake_data, url_origin, data_origin)
            return parse_store(self.url, self.data_path or None, url_origin, data_origin)
        if spec.kind == "ducklake":
            assert spec.catalog is not None  # the study file's validation requires it
            return ducklake(spec.catalog, lake_data, f"{where}.catalog", data_origin)
        if self.data_path:
            raise ConfigError(
                data_origin, "set, but the metadata store is a DuckDB file; a data path is a DuckLake setting"
            )
        return duckdb_file(spec.path or self.sources.layout.database(), f"{where}.path")

    @property
    def db_path(self) -> Path:
        """The DuckDB file. A DuckLake store is not one file: use :meth:`store`, or pass
        ``location().url`` to another process."""
        location = self.location()
        if location.path is None:
            raise ConfigError(
                location.origin,
                f"the metadata store is {location.describe()}, not one DuckDB file: open it with "
                "store() (in another process: MetadataStore(store.location().url))",
            )
        return location.path

    def store(self) -> MetadataStore:
        return MetadataStore(self.location())


def _origin(field: str, variable: str, value: str) -> str:
    """The setting a value came from, for error messages: the variable when it holds that value."""
    return variable if value and env_str(variable, "") == value else field
