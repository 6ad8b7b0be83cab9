"""The study file: the only schema of a study, and its one resolution.

A study names, per domain, the reader and its paths, the target, the dynamic inputs and the static
attributes (categorical ones declared as such), the train and test periods, the window and the
recipe of its models; for the whole study the ecoregions file, the working folder, the preset
(``profile``), the training settings, the budget, the seeds, the plan thresholds, the statistics,
the regionalisations, the data-quality policy and where the metadata store lives (``store:``).
Each block is the science's own settings class (:mod:`synergy_dagster.config`, or a ``*_spec``
module of a science package), so a setting is declared once.

:func:`resolve_study` turns file + preset + overrides into one frozen :class:`StudyFile`: the
overrides (dotted keys, :mod:`synergy_dagster.overrides`) are set first, the preset
(:mod:`synergy_dagster.presets`) is merged under the result, and then everything is validated at
once. Unknown keys are refused and every error names the key (``domains.streamflow.periods.train``)
and, when an override set it, the override; a typo never silently falls back to a default.
Relative paths are read from the study file's folder; ``${VAR}`` in a path is taken from the
environment (an unset variable is an error).

Free of Dagster: the ``study`` resource (``defs/resources.py``) resolves it once per run, and so
does the CLI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from synergy_dagster.config import (
    BUDGET_MODES,
    DOMAINS,
    Budget,
    BudgetMode,
    DomainPeriods,
    DomainTraining,
    DomainWindow,
    PlanConfig,
    Profile,
    Recipe,
    Seeds,
    Settings,
    Training,
)
from synergy_dagster.domains import READER_DOMAINS
from synergy_dagster.errors import ConfigError
from synergy_dagster.experiments.spatial_spec import SpatialSpec
from synergy_dagster.layout import Layout
from synergy_dagster.overrides import apply_overrides, blame
from synergy_dagster.presets import DEFAULT_PRESET, preset_names, under_preset
from synergy_dagster.sources.quality_spec import QualitySpec
from synergy_dagster.sources.usgs_spec import UsgsSpec

READERS = ("caravan", "camels_us", "pixel_cube")
# Which domain each reader can feed: basins carry streamflow, pixel cubes soil moisture.
ALL_NUMERIC = "all_numeric"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


# Every block of the schema is a Settings model: frozen, unknown keys refused (config.Settings).
_Strict = Settings


class DomainSpec(_Strict):
    """One domain's data: where it is, how to read it, and which variables the models see."""

    reader: Literal["caravan", "camels_us", "pixel_cube"] = Field(
        description="the file layout: caravan (Caravan basins), camels_us (CAMELS-US text files) or "
        "pixel_cube (a NetCDF/Zarr cube of pixels x days); basin readers feed streamflow, the cube soil moisture"
    )
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
    target: str = Field(description="the variable the models predict (a name in the reader's files)")
    dynamic: Annotated[list[str], Field(min_length=1)] = Field(
        description="the daily forcing variables the models see, in order (names in the reader's files)"
    )
    static: list[str] | Literal["all_numeric"] = Field(
        default_factory=list,
        description="the site attributes the models see, or all_numeric (every numeric attribute the reader "
        "offers, less those derived from the target or the whole record unless allow_leaky names them)",
    )
    categorical: list[str] = Field(
        default_factory=list,
        description="static attributes that are class codes: one-hot encoded, not scaled",
    )
    allow_leaky: list[str] = Field(
        default_factory=list,
        description="static attributes derived from the target (CAMELS streamflow signatures: q_mean, "
        "runoff_ratio, baseflow_index, ...) or computed over a whole record that may hold the test years "
        "(Caravan's p_mean, aridity, frac_snow, ...) that this study still feeds its models and clusters on; "
        "default none: all_numeric leaves them out and listing one under static is an error "
        "(the list: sources/selection.py LEAKY; docs/statistics.md)",
    )
    periods: DomainPeriods
    missing_values: list[float] = Field(default_factory=list, description="values that mean 'no data'")
    quality: QualitySpec | None = Field(
        None,
        description="this domain's data-quality policy: only the keys given override the study's 'quality'",
    )
    usgs: UsgsSpec = Field(
        default_factory=UsgsSpec,
        description="streamflow: which days, by USGS approval status and qualifier, are scored and trained on",
    )
    training: DomainWindow = Field(
        description="the window, minibatch, spin-up and held-out validation days of this domain's models "
        "(the preset's, key by key under what the study writes)"
    )
    recipe: Recipe = Field(
        default_factory=Recipe,
        description="how this domain's models are optimised (the preset's, key by key under the study's)",
    )

    @field_validator("dynamic", "categorical")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"listed twice: {dup}")
        return names

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
        if self.recipe.loss_days > self.training.rho:
            raise ConfigError(  # named inside the domain: domains.<d>.recipe.loss_days
                "domain.recipe.loss_days",
                f"{self.recipe.loss_days} days is longer than the window training.rho={self.training.rho}",
            )
        return self

    @property
    def domain_training(self) -> DomainTraining:
        """The window and the recipe together, as the trainer reads them."""
        return DomainTraining(**dict(self.training), recipe=self.recipe)


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

    classes: dict[str, Annotated[list[float], Field(min_length=1)] | Annotated[int, Field(ge=2, le=10)]] = (
        Field(description="attribute -> ascending class edges, or the number of quantile classes (2-10)")
    )
    forcing: dict[Literal["precipitation", "temperature", "pet"], str] = Field(
        default_factory=dict,
        description="the forcing variables the indices aridity, p_seasonality and snow_fraction are computed from",
    )

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
    domains: dict[DomainName, ClimateDomainSpec] = Field(description="the classes of each domain")


class KmeansScheme(_SchemeBase):
    """k-means clusters of z-scored static attributes (seeded)."""

    kind: Literal["kmeans"] = "kmeans"
    k: int = Field(6, ge=2, le=50, description="the number of clusters")
    seed: int = Field(0, ge=0, description="seed of the k-means initialisation")
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
        default_factory=lambda: [EcoregionScheme()],
        description="the schemes, each a kind or a mapping with kind and its keys (below, per kind)",
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

    enabled: bool = Field(False, description="train and evaluate the curves (many models: off by default)")
    grid: Annotated[tuple[Annotated[int, Field(ge=1)], ...], Field(min_length=1)] = Field(
        (5, 10, 20, 40, 80, 160, 320, 640, 1280),
        description="numbers of added sites k (values at or above the smallest pool are cut)",
    )
    pools: Annotated[tuple[Literal["close", "far", "dissimilar"], ...], Field(min_length=1)] = Field(
        ("close", "far", "dissimilar"),
        description="the pools sites are drawn from: close (same Level II), far (same Level I), dissimilar (elsewhere)",
    )
    draws: int = Field(3, ge=1, le=100, description="nested random draw sequences per pool")
    seed: int = Field(0, ge=0, description="seed of the draws and of the bootstrap")
    rois: tuple[str, ...] | None = Field(None, description="a subset of the plan's ROIs; default all")
    bootstrap: int = Field(1000, ge=100, le=100_000, description="bootstrap replicates of the slopes")

    @field_validator("grid", "pools")
    @classmethod
    def _no_repeats(cls, values: list[Any]) -> list[Any]:
        dup = sorted({v for v in values if values.count(v) > 1}, key=str)
        if dup:
            raise ValueError(f"listed twice: {dup}")
        return values

    @field_validator("grid")
    @classmethod
    def _ascending(cls, grid: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(grid))


class StatisticsSpec(_Strict):
    """How the paired comparisons are tested (see :mod:`synergy_dagster.evaluation.statistics`).

    ``wilcoxon_method``: ``paper`` (default; scipy's normal approximation, the paper's p-values),
    ``approx`` (the same under scipy's name), ``exact`` or ``auto`` (the installed scipy's default);
    ``alpha``: the significance level of the summary and of the reproduction verdicts;
    ``n_boot``: bootstrap replicates of the median-difference confidence intervals."""

    wilcoxon_method: Literal["paper", "exact", "auto", "approx"] = Field(
        "paper",
        description=(
            "How the Wilcoxon signed-rank p-value is computed: 'paper' (default) scipy's normal "
            "approximation without continuity correction, zero differences dropped, which "
            "reproduces the paper's Table 2 p-values; 'approx' the same under scipy's name; "
            "'exact' the exact null distribution; 'auto' the installed scipy's default."
        ),
    )
    alpha: float = Field(
        0.05,
        gt=0.0,
        lt=0.5,
        description=(
            "Significance level (unitless) of every verdict: the reproduction report, the "
            "summary, the scheme table's winner (a tie unless p < alpha); the bootstrap "
            "intervals are at level 1 - alpha. Default 0.05, the paper's."
        ),
    )
    n_boot: int = Field(
        2000,
        ge=100,
        le=100_000,
        description=(
            "Bootstrap replicates of the interval of the median paired difference (sites "
            "resampled with replacement). Default 2000: percentile intervals need replicates in "
            "the thousands for stable 2.5 and 97.5 % quantiles."
        ),
    )
    seed_aggregation: Literal["seed_mean", "ensemble"] = Field(
        "seed_mean",
        description=(
            "How several seeds become one per-site score, for every output (significance verdicts, "
            "report, scheme table, synergy curves, figures, summary): 'seed_mean' (default) averages "
            "the per-seed metrics at each site, the expected skill of one trained model as the paper "
            "trained one; 'ensemble' scores the seed-averaged prediction, a different (usually "
            "better) model. With one seed both are the same numbers."
        ),
    )
    equivalence_margin: float = Field(
        0.02,
        gt=0.0,
        lt=1.0,
        description=(
            "Relative equivalence margin (unitless fraction) of a 'no difference' claim: it holds "
            "only when the (1 - alpha) bootstrap interval of the median paired difference lies "
            "within +/- margin x |median of the second model|, e.g. 0.02 = 2 % (0.016 of a "
            "correlation of 0.8). Default 0.02: well below the global vs local differences the paper "
            "calls meaningful (0.82 vs 0.75 in soil-moisture correlation, about 9 %). "
            "A non-significant run whose interval is wider is 'inconclusive', not a pass."
        ),
    )
    null_draws: int = Field(
        20,
        ge=0,
        le=99,
        description=(
            "Size-matched null draws per regionalisation scheme: each permutes the scheme's region "
            "labels over its sites (same region sizes) and trains its local models, so 'the "
            "scheme's regions carry information' is tested against regions of the same sizes, "
            "with p = (1 + #draws at least as good) / (1 + draws). Default 20: the smallest p is "
            "then 1/21 < 0.05. 0 leaves them out (the scheme table then compares with the "
            "'random' scheme, which is not size-matched). Only studies with further schemes "
            "(stratification.schemes) train them."
        ),
    )
    curve_min_draws: int = Field(
        3,
        ge=2,
        le=100,
        description=(
            "Fewest draw sequences per pool for which a synergy-curve slope gets a p-value; below "
            "it the slope table shows the estimate and its t-interval only. Default 3: with 2 "
            "draws the t-interval has one degree of freedom and its p-values swing widely."
        ),
    )


class VirtualSpec(_Strict):
    """Generate the embedded virtual CONUS into ``<data_dir>/virtual_conus`` before reading it."""

    seed: int = Field(42, description="seed of the generator (the same seed gives the same files)")
    pixels: int = Field(1200, ge=1, description="soil-moisture pixels generated")
    basins: int = Field(300, ge=1, description="basins generated")


class StoreSpec(_Strict):
    """Where the metadata store lives (see :mod:`synergy_dagster.store.location`; ``SYNERGY_STORE``
    overrides it). ``duckdb`` (default): one DuckDB file, ``path`` (default
    ``<data_dir>/synergy.duckdb``), one writer process at a time. ``ducklake``: a DuckLake
    ``catalog`` (``postgres:<connection string>`` for many writers on many machines, or a catalog
    file) with its Parquet files under ``data_path`` (default ``<data_dir>/ducklake``)."""

    kind: Literal["duckdb", "ducklake"] = Field(
        "duckdb", description="duckdb (one file, one writer process at a time) or ducklake (many writers)"
    )
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


class RunSpec(_Strict):
    """What one run of the study does beyond the defaults (usually set by an override, e.g.
    ``run.domains=[streamflow]``)."""

    domains: list[DomainName] = Field(
        default_factory=list, description="which of the study's domains run (empty = all of them)"
    )
    sensitivity_modes: list[BudgetMode] = Field(
        default_factory=lambda: ["paper", "equal_updates", "converge"],
        description="the budget modes budget_sensitivity compares global vs local under (at least two)",
    )
    per_set_normalization: bool = Field(
        False, description="fit the normalisation statistics per training set instead of per domain"
    )
    log_transform: bool = Field(True, description="log(x + 1) for precipitation and runoff inputs")

    @field_validator("sensitivity_modes")
    @classmethod
    def _modes(cls, modes: list[str]) -> list[str]:
        if len(set(modes)) < 2 or len(set(modes)) != len(modes):
            raise ValueError(f"need at least two distinct modes of {BUDGET_MODES}, got {modes}")
        return modes


class StudyFile(_Strict):
    """A whole study, resolved: the file's keys over its preset's, with the run's overrides
    (:func:`resolve_study`). ``source`` and ``overrides`` say where it came from."""

    name: str = Field(description="the study's name (shown in the UI and the report)")
    description: str = Field("", description="free text")
    data_dir: str = Field("data", description="the working folder (relative to the study file)")
    ecoregions: str | None = Field(
        None, description="the EPA Level III ecoregions file; a virtual study may omit it"
    )
    virtual: VirtualSpec | None = Field(None, description="generate the embedded virtual CONUS and read it")
    profile: str = Field(
        DEFAULT_PRESET, description=f"the preset merged under the study's own keys: one of {preset_names()}"
    )
    training: Training = Field(default_factory=Training, description="the model and the epoch rule")
    budget: Budget = Field(default_factory=Budget, description="how much each model is trained")
    seeds: Seeds = Field((0,), description="the seeds each model is trained with (distinct, >= 0)")
    thresholds: PlanConfig = Field(default_factory=PlanConfig, description="the plan's thresholds")
    statistics: StatisticsSpec = Field(default_factory=StatisticsSpec, description="the paired tests")
    stratification: StratificationSpec = Field(
        default_factory=StratificationSpec, description="the regionalisations compared"
    )
    synergy_curves: SynergyCurvesSpec | None = Field(None, description="synergy curves (off by default)")
    spatial: SpatialSpec = Field(default_factory=SpatialSpec, description="spatial holdouts (PUB, PUR)")
    store: StoreSpec = Field(default_factory=StoreSpec, description="where the metadata store lives")
    quality: QualitySpec = Field(
        default_factory=QualitySpec, description="the data-quality policy of every domain (docs/quality.md)"
    )
    run: RunSpec = Field(default_factory=RunSpec, description="what one run does")
    domains: dict[Literal["soil_moisture", "streamflow"], DomainSpec] = Field(
        description="the study's domains (at least one), each with its data, inputs, periods and training"
    )

    # where this study came from: set by resolve_study, recorded with each run
    _source: str = PrivateAttr("<study>")
    _overrides: tuple[str, ...] = PrivateAttr(())

    @property
    def source(self) -> str:
        return self._source

    @property
    def overrides(self) -> tuple[str, ...]:
        return self._overrides

    @field_validator("profile")
    @classmethod
    def _profile(cls, name: str) -> str:
        if name not in preset_names():
            raise ValueError(f"unknown profile {name!r}; expected one of {preset_names()}")
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

    @model_validator(mode="after")
    def _trainable(self) -> StudyFile:
        self.training_profile()  # the budget must fit the domains' windows (converge needs held-out days)
        absent = [d for d in self.run.domains if d not in self.domains]
        if absent:
            raise ValueError(f"run.domains: {absent} not in the study (it has {sorted(self.domains)})")
        return self

    # -- what the pipeline asks of a study ---------------------------------------------------------

    def training_profile(self) -> Profile:
        """Everything the models of this study are trained with."""
        return Profile(
            self.profile,
            **dict(self.training),
            seeds=self.seeds,
            budget=self.budget,
            domains={d: spec.domain_training for d, spec in self.domains.items()},
        )

    def run_domains(self) -> list[str]:
        """The domains this run covers, in pipeline order."""
        chosen = self.run.domains or list(self.domains)
        return [d for d in DOMAINS if d in chosen]

    def periods(self, domain: str) -> DomainPeriods:
        return self.domain(domain).periods

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
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, ConfigError):  # a setting's own check: name the key inside the block
            # its source is "<block>.<key>": inside a block, the block is the location's last part
            field = inner.source.partition(".")[2] if err["loc"] else inner.source
            loc = ".".join(p for p in (loc if err["loc"] else "", field) if p) or loc
            msg = inner.problem
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; unknown keys are refused)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        # A gauge id YAML read as a number (directly, or inside a block's own check).
        given = err.get("input") if err["type"] == "string_type" else None
        number = re.search(r"valid string, got (-?\d+)$", msg)
        value = str(given) if isinstance(given, int) else number.group(1) if number else None
        inner_key = inner.source if isinstance(inner, ConfigError) else ""
        if value is not None and {"gauges", "new_gauges"} & {*map(str, err["loc"]), *inner_key.split(".")}:
            loc = ".".join(p for p in (*map(str, err["loc"]), inner_key) if p)
            msg = (
                f"{value} is a number, not a gauge id: YAML reads digits without quotes as an "
                "integer, losing leading zeros (and reads a 0-prefixed id of digits 0-7 as octal: "
                "01022500 becomes 271680); quote every id, e.g. gauges: ['01022500']"
            )
        lines.append(f"{loc}: {msg}")
    return f"{len(lines)} problem(s): " + "; ".join(lines)


def parse_study(
    raw: object,
    source: str | Path = "<study>",
    variables: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> StudyFile:
    """Resolve a parsed study mapping into the study: ``overrides`` set, the preset merged under it,
    relative paths resolved against ``source``'s folder (``${VAR}`` from ``variables``, else the
    environment), validated, and a virtual study's paths pointed at the generated files."""
    source = Path(source)
    if not isinstance(raw, dict):
        raise ConfigError(source, f"a study file must be a mapping of keys, got {type(raw).__name__}")
    base = source.parent if source.suffix else Path.cwd()
    try:
        merged = under_preset(apply_overrides(raw, overrides))
    except ConfigError as exc:
        raise ConfigError(source, blame(str(exc), overrides)) from None
    try:
        study = StudyFile.model_validate(_resolve_paths(merged, base.resolve(), variables or {}))
    except ValidationError as exc:
        raise ConfigError(source, blame(_message(exc, source), overrides)) from None
    study = _with_virtual_paths(study)
    study._source = str(source)
    study._overrides = tuple(overrides)
    return study


def _with_virtual_paths(study: StudyFile) -> StudyFile:
    """A virtual study's left-out paths, pointed at the files the generator writes."""
    if study.virtual is None:
        return study
    root = Layout(study.data_dir).virtual_dir()
    domains = {}
    for name, spec in study.domains.items():
        fill = {
            "path": str(root / VIRTUAL_FILES[spec.reader]),
            "basin_polygons": str(root / VIRTUAL_FILES["basin_polygons"]),
            "gages2": str(root / VIRTUAL_FILES["gages2"]),
        }
        domains[name] = spec.model_copy(update={k: v for k, v in fill.items() if getattr(spec, k) is None})
    ecoregions = study.ecoregions or str(root / VIRTUAL_FILES["ecoregions"])
    return study.model_copy(update={"domains": domains, "ecoregions": ecoregions})


# Where the generator writes each file under <data_dir>/virtual_conus (a virtual study's defaults).
VIRTUAL_FILES = {
    "ecoregions": "ecoregions/us_eco_l3.gpkg",
    "caravan": "caravan",
    "pixel_cube": "smap/virtual_pixels.nc",
    "basin_polygons": "basins/basin_polygons.gpkg",
    "gages2": "gages2/gauges.gpkg",
}


def resolve_study(
    path: str | Path, overrides: Sequence[str] = (), variables: Mapping[str, str] | None = None
) -> StudyFile:
    """The one resolution of a study: the file, its preset and the run's overrides, validated
    into one frozen object (every asset of a run reads it; nothing re-resolves)."""
    return load_study(path, variables, overrides)


def load_study(
    path: str | Path, variables: Mapping[str, str] | None = None, overrides: Sequence[str] = ()
) -> StudyFile:
    """Read and validate a study YAML file; every error names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "study file not found")
    text = path.read_text(encoding="utf-8-sig")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"not valid YAML: {exc}") from None
    try:
        return parse_study(raw, path, variables, overrides)
    except ConfigError as exc:
        from synergy_dagster.yaml_ids import unquoted_ids

        numbers = sorted(unquoted_ids(text) + unquoted_ids(text, "new_gauges"))
        if not numbers:
            raise
        written = ", ".join(f"{t!r} on line {line}" for line, t in numbers)
        raise ConfigError(
            path, f"{exc.problem}; the gauge ids written without quotes: {written}", f"line {numbers[0][0]}"
        ) from None


# The studies shipped with the project (studies/ at the repository root): what runs without a file.
STUDIES_DIR = Path(__file__).resolve().parents[1] / "studies"
SHIPPED_STUDIES = {"virtual": "virtual.yaml", "real": "real.yaml"}


def preset_profile(name: str, domains: Sequence[str] = DOMAINS) -> Profile:
    """A preset alone as a Profile, for code that trains without a study (benchmarks, tests)."""
    raw = under_preset({"profile": name, "domains": {d: {} for d in domains}})
    return Profile(
        name,
        **raw.get("training", {}),
        seeds=tuple(raw.get("seeds", (0,))),
        budget=Budget(**raw.get("budget", {})),
        domains={
            d: DomainTraining(
                **raw["domains"][d]["training"], recipe=Recipe(**raw["domains"][d].get("recipe", {}))
            )
            for d in domains
        },
    )


def shipped_study(kind: str) -> Path:
    if kind not in SHIPPED_STUDIES:
        raise ConfigError("sources.kind", f"must be one of {sorted(SHIPPED_STUDIES)}, got {kind!r}")
    return STUDIES_DIR / SHIPPED_STUDIES[kind]
