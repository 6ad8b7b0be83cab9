"""The study file: one YAML file holding everything a study needs, validated on load.

A study names, per domain, the reader and its paths, the target, the dynamic inputs and the static
attributes (categorical ones declared as such), and the train and test periods; for the whole study
the ecoregions file, the working folder, the profile, the budget, the seeds, the plan thresholds
and where the metadata store lives (``store:``).
Unknown keys are refused and every error names the key (``domains.streamflow.periods.train``), so
a typo never silently falls back to a default. Relative paths are read from the study file's
folder; ``${VAR}`` in a path is taken from the environment (an unset variable is an error).

The file is free of Dagster: the resources in ``defs/resources.py`` read it, and so does the CLI.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synergy_dagster.config import DOMAINS, PROFILES, Budget, DomainPeriods, Period, PlanConfig, Recipe
from synergy_dagster.errors import ConfigError

READERS = ("caravan", "camels_us", "pixel_cube")
# Which domain each reader can feed: basins carry streamflow, pixel cubes soil moisture.
READER_DOMAINS = {"caravan": "streamflow", "camels_us": "streamflow", "pixel_cube": "soil_moisture"}
ALL_NUMERIC = "all_numeric"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeriodSpec(_Strict):
    start: dt.date
    end: dt.date

    def period(self) -> Period:
        return Period(self.start.isoformat(), self.end.isoformat())


class PeriodsSpec(_Strict):
    """Train and test periods; the validation period is carved from the end of training."""

    train: PeriodSpec
    test: PeriodSpec

    @model_validator(mode="after")
    def _order(self) -> PeriodsSpec:
        for name, p in (("train", self.train), ("test", self.test)):
            if p.end < p.start:
                raise ValueError(f"{name}: end {p.end} is before start {p.start}")
        if self.test.start <= self.train.end:
            raise ValueError(
                f"test period {self.test.start}..{self.test.end} must start after the training period "
                f"{self.train.start}..{self.train.end} ends"
            )
        return self

    def domain_periods(self) -> DomainPeriods:
        return DomainPeriods(self.train.period(), self.test.period())


class DomainSpec(_Strict):
    """One domain's data: where it is, how to read it, and which variables the models see."""

    reader: Literal["caravan", "camels_us", "pixel_cube"]
    path: str | None = Field(
        None,
        description="Caravan root, CAMELS-US root, or the pixel cube (NetCDF/Zarr); a virtual study may omit it",
    )
    subset: str | None = Field(None, description="caravan: the subset folder (e.g. camels)")
    forcing: str | None = Field(None, description="camels_us: the basin_mean_forcing folder (e.g. nldas)")
    attributes: str | None = Field(None, description="camels_us: a root holding camels_attributes_v2.0")
    basin_polygons: str | None = Field(None, description="basin outlines (GeoPackage/shapefile), optional")
    gages2: str | None = Field(None, description="GAGES-II gauge points, optional")
    streamflow_rdb: str | None = Field(
        None,
        description="a folder of NWIS daily-values RDB files (cfs) whose discharge, converted to mm/d by "
        "each basin's area, overwrites the reader's streamflow where it has values",
    )
    gauges: list[str] | None = Field(None, description="a subset of gauge ids; default every gauge")
    target: str
    dynamic: Annotated[list[str], Field(min_length=1)]
    static: list[str] | Literal["all_numeric"] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    periods: PeriodsSpec
    missing_values: list[float] = Field(default_factory=list, description="values that mean 'no data'")
    recipe: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides of the profile's training recipe for this domain (keys of config.Recipe, "
        "e.g. precision: bf16, lr: 0.001); checked when the profile is resolved",
    )

    @field_validator("dynamic", "categorical")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"listed twice: {dup}")
        return names

    @field_validator("recipe")
    @classmethod
    def _recipe_keys(cls, recipe: dict[str, Any]) -> dict[str, Any]:
        try:
            Recipe.check_keys(recipe)
        except ConfigError as exc:
            raise ValueError(f"{exc.source}: {exc.problem}") from exc
        return recipe

    @model_validator(mode="after")
    def _consistent(self) -> DomainSpec:
        if self.reader != "caravan" and self.subset is not None:
            raise ValueError(f"'subset' is a caravan setting; reader is {self.reader!r}")
        if self.reader == "pixel_cube" and self.streamflow_rdb is not None:
            raise ValueError("'streamflow_rdb' adds gauge discharge to a basin reader, not to a pixel cube")
        if self.reader != "camels_us" and (self.forcing is not None or self.attributes is not None):
            raise ValueError(f"'forcing' and 'attributes' are camels_us settings; reader is {self.reader!r}")
        if self.target in self.dynamic:
            raise ValueError(f"the target {self.target!r} is also listed as a dynamic input")
        static = [] if self.static == ALL_NUMERIC else list(self.static)
        both = sorted(set(static) & set(self.dynamic))
        if both:
            raise ValueError(f"{both} listed as both dynamic and static")
        if self.static != ALL_NUMERIC:
            stray = sorted(set(self.categorical) - set(static))
            if stray:
                raise ValueError(f"categorical attributes {stray} must also be listed under 'static'")
        return self


class BudgetSpec(_Strict):
    """Overrides of the profile's training budget (see ``config.Budget``); unset keeps the profile's."""

    mode: Literal["paper", "equal_updates", "equal_passes", "converge", "wall_clock"] | None = None
    updates: int | None = None
    passes: float | None = None
    seconds: float | None = None
    max_updates: int | None = None
    min_updates: int | None = None
    patience: int | None = None
    min_delta: float | None = None
    eval_every: int | None = None
    metric: Literal["auto", "nse", "rmse"] | None = None

    def apply(self, base: Budget) -> Budget:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        return base.replace(**changes) if changes else base


class ThresholdsSpec(_Strict):
    min_sites_subregion: int = 10
    min_sites_roi: int = 10
    coverage: float = 0.9

    def plan_config(self) -> PlanConfig:
        return PlanConfig(self.min_sites_subregion, self.min_sites_roi, self.coverage)


SCHEME_KINDS = ("ecoregions", "huc2", "climate", "kmeans", "random")
# A scheme's name goes into partition keys (``local@<name>:<region>``): short, path- and key-safe.
SCHEME_NAME = r"^[a-z][a-z0-9_]{0,31}$"
DomainName = Literal["soil_moisture", "streamflow"]


class _SchemeBase(_Strict):
    name: str | None = Field(
        None, description="label in partition keys; default: the kind", pattern=SCHEME_NAME
    )

    @property
    def label(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined]


class EcoregionScheme(_SchemeBase):
    """The paper's sub-regions A-R of the EPA ecoregions (partition keys as always: ``local:D``)."""

    kind: Literal["ecoregions"] = "ecoregions"

    @model_validator(mode="after")
    def _plain_name(self) -> EcoregionScheme:
        if self.name not in (None, "ecoregions"):
            raise ValueError(
                "the ecoregion scheme keeps its name 'ecoregions' (its keys stay local:<letter>)"
            )
        return self


class Huc2Scheme(_SchemeBase):
    """Hydrologic regions (HUC-2): from a polygon file when given (any domain), else per gauge from
    GAGES-II ``HUC02`` (the streamflow domain's ``gages2``) or CAMELS ``huc_02``."""

    kind: Literal["huc2"] = "huc2"
    polygons: str | None = Field(None, description="HUC polygons (GeoPackage/shapefile), optional")
    code_column: str = Field("HUC2", description="the polygons' column holding the HUC code")
    digits: int = Field(2, ge=2, le=12, description="leading digits of the code that name a region")


class ClimateDomainSpec(_Strict):
    """One domain's climate classes: attribute -> class edges (ascending numbers) or the number of
    quantile classes (3: terciles). Attributes are the domain's statics or, with ``forcing``, the
    indices ``aridity``, ``p_seasonality`` and ``snow_fraction`` from the training-period forcing."""

    classes: dict[str, Annotated[list[float], Field(min_length=1)] | Annotated[int, Field(ge=2, le=10)]]
    forcing: dict[Literal["precipitation", "temperature", "pet"], str] = Field(default_factory=dict)

    @field_validator("classes")
    @classmethod
    def _edges(cls, classes: dict[str, list[float] | int]) -> dict[str, list[float] | int]:
        if not classes:
            raise ValueError("name at least one attribute")
        for name, edges in classes.items():
            if isinstance(edges, list) and any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                raise ValueError(f"{name}: class edges must be strictly ascending, got {edges}")
        return classes


class ClimateScheme(_SchemeBase):
    """Climate classes: the cross product of per-attribute classes (e.g. aridity x seasonality x snow)."""

    kind: Literal["climate"] = "climate"
    domains: dict[DomainName, ClimateDomainSpec]


class KmeansScheme(_SchemeBase):
    """k-means clusters of z-scored static attributes (seeded)."""

    kind: Literal["kmeans"] = "kmeans"
    k: int = Field(6, ge=2, le=50)
    seed: int = Field(0, ge=0)
    attributes: dict[DomainName, Annotated[list[str], Field(min_length=1)]] = Field(
        default_factory=dict, description="per domain; default every (non one-hot) static input"
    )


class RandomScheme(_SchemeBase):
    """The null model: random regions of equal size (seeded)."""

    kind: Literal["random"] = "random"
    seed: int = Field(0, ge=0)
    n_regions: int | None = Field(
        None, ge=2, description="default: as many as ecoregion sub-regions with >= min_sites_subregion"
    )


SchemeSpec = Annotated[
    EcoregionScheme | Huc2Scheme | ClimateScheme | KmeansScheme | RandomScheme, Field(discriminator="kind")
]


class StratificationSpec(_Strict):
    """The regionalisations to run global vs local under, and to compare (default: ecoregions only).
    A list item is a kind (``random``) or a mapping with ``kind`` and its parameters."""

    schemes: Annotated[list[SchemeSpec], Field(min_length=1)] = Field(
        default_factory=lambda: [EcoregionScheme()]
    )

    @field_validator("schemes", mode="before")
    @classmethod
    def _kinds(cls, items: object) -> object:
        if isinstance(items, list):
            return [{"kind": i} if isinstance(i, str) else i for i in items]
        return items

    @field_validator("schemes")
    @classmethod
    def _unique(cls, schemes: list[Any]) -> list[Any]:
        labels = [s.label for s in schemes]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"scheme names must be unique; {dup} used twice (give each a 'name')")
        return schemes

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.schemes]


class SynergyCurvesSpec(_Strict):
    """Synergy curves (off by default): per ROI and pool, models trained on the ROI plus ``k``
    sites drawn from the pool, for ``k`` = 0, the ``grid`` values below the smallest pool, that
    pool's size and ``all`` (see :mod:`synergy_dagster.experiments.synergy`)."""

    enabled: bool = False
    grid: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = Field(
        default_factory=lambda: [5, 10, 20, 40, 80, 160, 320, 640, 1280]
    )
    pools: Annotated[list[Literal["close", "far", "dissimilar"]], Field(min_length=1)] = Field(
        default_factory=lambda: ["close", "far", "dissimilar"]
    )
    draws: int = Field(3, ge=1, le=100, description="nested random draw sequences per pool")
    seed: int = Field(0, ge=0, description="seed of the draws and of the bootstrap")
    rois: list[str] | None = Field(None, description="a subset of the plan's ROIs; default all")
    bootstrap: int = Field(1000, ge=100, le=100_000, description="bootstrap replicates of the slopes")

    @field_validator("grid", "pools")
    @classmethod
    def _no_repeats(cls, values: list[Any]) -> list[Any]:
        dup = sorted({v for v in values if values.count(v) > 1}, key=str)
        if dup:
            raise ValueError(f"listed twice: {dup}")
        return values


class StatisticsSpec(_Strict):
    """How the paired comparisons are tested (see :mod:`synergy_dagster.evaluation.statistics`).

    ``wilcoxon_method``: ``paper`` (default; scipy's normal approximation, the paper's p-values),
    ``approx`` (the same under scipy's name), ``exact`` or ``auto`` (the installed scipy's default);
    ``alpha``: the significance level of the summary and of the reproduction verdicts;
    ``n_boot``: bootstrap replicates of the median-difference confidence intervals."""

    wilcoxon_method: Literal["paper", "exact", "auto", "approx"] = "paper"
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    n_boot: int = Field(2000, ge=100, le=100_000)


class VirtualSpec(_Strict):
    """Generate the embedded virtual CONUS into ``<data_dir>/virtual_conus`` before reading it."""

    seed: int = 42
    pixels: int = Field(1200, ge=1)
    basins: int = Field(300, ge=1)


class StoreSpec(_Strict):
    """Where the metadata store lives (see :mod:`synergy_dagster.store.location`; ``SYNERGY_STORE``
    overrides it). ``duckdb`` (default): one DuckDB file, ``path`` (default
    ``<data_dir>/synergy.duckdb``), one writer process at a time. ``ducklake``: a DuckLake
    ``catalog`` (``postgres:<connection string>`` for many writers on many machines, or a catalog
    file) with its Parquet files under ``data_path`` (default ``<data_dir>/ducklake``)."""

    kind: Literal["duckdb", "ducklake"] = "duckdb"
    path: str | None = Field(None, description="duckdb: the database file")
    catalog: str | None = Field(
        None, description="ducklake: postgres:<libpq connection string>, or a DuckDB catalog file"
    )
    data_path: str | None = Field(None, description="ducklake: the folder of its Parquet files")

    @model_validator(mode="after")
    def _fits_kind(self) -> StoreSpec:
        if self.kind == "duckdb":
            stray = [k for k in ("catalog", "data_path") if getattr(self, k) is not None]
            if stray:
                raise ValueError(f"{stray} belong to kind 'ducklake'; this store is kind 'duckdb'")
        else:
            if self.path is not None:
                raise ValueError("'path' is the DuckDB file of kind 'duckdb'; a DuckLake store has 'catalog'")
            if not self.catalog:
                raise ValueError(
                    "kind 'ducklake' needs 'catalog': postgres:<connection string> or a catalog file"
                )
        return self


class StudyFile(_Strict):
    """A whole study. ``source`` is the file it was read from (paths are relative to its folder)."""

    name: str
    description: str = ""
    data_dir: str = "data"
    ecoregions: str | None = None  # a virtual study may omit it (the generated layer)
    virtual: VirtualSpec | None = None
    profile: str = "demo"
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    seeds: list[int] | None = None
    thresholds: ThresholdsSpec = Field(default_factory=ThresholdsSpec)
    statistics: StatisticsSpec = Field(default_factory=StatisticsSpec)
    stratification: StratificationSpec = Field(default_factory=StratificationSpec)
    synergy_curves: SynergyCurvesSpec | None = None
    store: StoreSpec = Field(default_factory=StoreSpec)
    domains: dict[Literal["soil_moisture", "streamflow"], DomainSpec]

    @field_validator("profile")
    @classmethod
    def _profile(cls, name: str) -> str:
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
        return name

    @field_validator("domains")
    @classmethod
    def _domains(cls, domains: dict[str, DomainSpec]) -> dict[str, DomainSpec]:
        if not domains:
            raise ValueError(f"a study needs at least one domain of {list(DOMAINS)}")
        for name, spec in domains.items():
            if READER_DOMAINS[spec.reader] != name:
                raise ValueError(
                    f"{name}: reader {spec.reader!r} reads {READER_DOMAINS[spec.reader]} data, not {name}"
                )
        return domains

    @model_validator(mode="after")
    def _paths_given(self) -> StudyFile:
        if self.virtual is None:
            missing = ["ecoregions"] if not self.ecoregions else []
            missing += [f"domains.{d}.path" for d, spec in self.domains.items() if not spec.path]
            if missing:
                raise ValueError(f"{missing} required (only a study with 'virtual' may leave paths out)")
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and (not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0):
            raise ValueError(f"seeds must be distinct integers >= 0, at least one; got {seeds}")
        return seeds

    # -- what the pipeline asks of a study ---------------------------------------------------------

    def periods(self, domain: str) -> DomainPeriods:
        return self.domain(domain).periods.domain_periods()

    def domain(self, domain: str) -> DomainSpec:
        if domain not in self.domains:
            raise ConfigError(
                "domains", f"this study has no {domain!r} domain (it has {sorted(self.domains)})"
            )
        return self.domains[domain]


def _substitute(value: str, key: str, variables: Mapping[str, str]) -> str:
    """``${VAR}`` from ``variables`` or the environment; an unset variable is an error."""

    def sub(m: re.Match[str]) -> str:
        var = m.group(1) or m.group(2)
        if var in variables:
            return variables[var]
        if var not in os.environ:
            raise ConfigError(key, f"uses ${{{var}}}, which is not set in the environment")
        return os.environ[var]

    return _VAR.sub(sub, value)


def _expand(value: str, key: str, base: Path, variables: Mapping[str, str]) -> str:
    """``${VAR}`` from ``variables`` or the environment, then relative to ``base``; an unset
    variable is an error."""
    text = _substitute(value, key, variables)
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


_PATH_KEYS = ("path", "attributes", "basin_polygons", "gages2", "streamflow_rdb")


def _resolve_paths(raw: dict[str, Any], base: Path, variables: Mapping[str, str]) -> dict[str, Any]:
    out = dict(raw)
    for key in ("ecoregions", "data_dir"):
        if isinstance(out.get(key), str):
            out[key] = _expand(out[key], key, base, variables)
    domains = out.get("domains")
    if isinstance(domains, dict):
        resolved: dict[str, Any] = {}
        for name, spec in domains.items():
            if isinstance(spec, dict):
                spec = dict(spec)
                for key in _PATH_KEYS:
                    if isinstance(spec.get(key), str):
                        spec[key] = _expand(spec[key], f"domains.{name}.{key}", base, variables)
            resolved[name] = spec
        out["domains"] = resolved
    store = out.get("store")
    if isinstance(store, dict):
        store = dict(store)
        for key in ("path", "data_path"):
            if isinstance(store.get(key), str):
                store[key] = _expand(store[key], f"store.{key}", base, variables)
        catalog = store.get("catalog")
        if isinstance(catalog, str):
            if catalog.strip().startswith("postgres:"):  # a connection string: variables only
                store["catalog"] = _substitute(catalog, "store.catalog", variables)
            else:
                store["catalog"] = _expand(catalog, "store.catalog", base, variables)
        out["store"] = store
    strat = out.get("stratification")
    if isinstance(strat, dict) and isinstance(strat.get("schemes"), list):
        schemes = []
        for i, item in enumerate(strat["schemes"]):
            if isinstance(item, dict) and isinstance(item.get("polygons"), str):
                key = f"stratification.schemes.{i}.polygons"
                item = {**item, "polygons": _expand(item["polygons"], key, base, variables)}
            schemes.append(item)
        out["stratification"] = {**strat, "schemes": schemes}
    return out


def _message(exc: ValidationError, source: Path) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; unknown keys are refused)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{loc}: {msg}")
    return f"{len(lines)} problem(s): " + "; ".join(lines)


def parse_study(
    raw: object, source: str | Path = "<study>", variables: Mapping[str, str] | None = None
) -> StudyFile:
    """Validate a parsed study mapping; relative paths are resolved against ``source``'s folder and
    ``${VAR}`` is read from ``variables``, else the environment."""
    source = Path(source)
    if not isinstance(raw, dict):
        raise ConfigError(source, f"a study file must be a mapping of keys, got {type(raw).__name__}")
    base = source.parent if source.suffix else Path.cwd()
    try:
        return StudyFile.model_validate(_resolve_paths(raw, base.resolve(), variables or {}))
    except ValidationError as exc:
        raise ConfigError(source, _message(exc, source)) from None


def load_study(path: str | Path, variables: Mapping[str, str] | None = None) -> StudyFile:
    """Read and validate a study YAML file; every error names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "study file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"not valid YAML: {exc}") from None
    return parse_study(raw, path, variables)


# The studies shipped with the project (studies/ at the repository root): what runs without a file.
STUDIES_DIR = Path(__file__).resolve().parents[1] / "studies"
SHIPPED_STUDIES = {"virtual": "virtual.yaml", "real": "real.yaml"}


def shipped_study(kind: str) -> Path:
    if kind not in SHIPPED_STUDIES:
        raise ConfigError("sources.kind", f"must be one of {sorted(SHIPPED_STUDIES)}, got {kind!r}")
    return STUDIES_DIR / SHIPPED_STUDIES[kind]
