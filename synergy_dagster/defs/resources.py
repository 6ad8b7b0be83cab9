"""Resources: deployment settings only. The study itself is one resolved object.

* :class:`StudyResource` (``study``): where the study file and the working folder are, the real
  data root the shipped real study reads, and the run's overrides (dotted study keys). It resolves
  file + preset + overrides once per process (:func:`~synergy_dagster.study_file.resolve_study`)
  into ``study.spec``, which every asset reads, and records it with each run.
* :class:`ComputeResource` (``compute``): the device and CPU threads models train on.
* :class:`MetadataStoreResource` (``store``): where the metadata store is (a DuckDB file, or a
  DuckLake catalog with its Parquet files).

A field's default is its environment variable (docs/operations.md lists them all); run config
overrides any field.
"""

# No `from __future__ import annotations`: Dagster reads the ResourceDependency annotation at
# class creation, and a string annotation fails validation against a configure_at_launch resource.
import functools
from pathlib import Path

import dagster as dg
import yaml
from pydantic import Field

from synergy_dagster.env import env_int, env_str
from synergy_dagster.errors import ConfigError
from synergy_dagster.io_utils import atomic_write_text
from synergy_dagster.layout import Layout
from synergy_dagster.overrides import OVERRIDES_VARIABLE, split_overrides
from synergy_dagster.sources.usgs_latest import with_latest_test_end
from synergy_dagster.store import MetadataStore, StoreLocation, duckdb_file, ducklake, parse_store
from synergy_dagster.study_file import SHIPPED_STUDIES, DomainSpec, StudyFile, resolve_study, shipped_study


class StudyResource(dg.ConfigurableResource):
    """Which study runs, with which overrides, and where its files go.

    ``study_file`` (env ``SYNERGY_STUDY``): a study YAML file, or the name of a shipped study
    (``virtual``, the default: the generated virtual CONUS; ``real``: ``studies/real.yaml``, reading
    ``real_data``). ``data_dir`` (env ``SYNERGY_DATA_DIR``) moves the working folder away from the
    study's. ``overrides`` (env ``SYNERGY_OVERRIDES``): dotted study keys, ``budget.max_updates=800``.
    """

    study_file: str = Field(default_factory=lambda: env_str("SYNERGY_STUDY", "virtual"))
    data_dir: str = Field(default_factory=lambda: env_str("SYNERGY_DATA_DIR", ""))  # "" = the study's
    real_data: str = Field(default_factory=lambda: env_str("SYNERGY_REAL_DATA", "../shared/data"))
    overrides: list[str] = Field(default_factory=lambda: split_overrides(env_str(OVERRIDES_VARIABLE, "")))

    def study_path(self) -> Path:
        if not self.study_file or self.study_file in SHIPPED_STUDIES:
            return shipped_study(self.study_file or "virtual")
        return Path(self.study_file).resolve()

    def all_overrides(self) -> tuple[str, ...]:
        """The overrides, the working folder (when moved) first so that one given later wins."""
        moved = (f"data_dir={Path(self.data_dir).resolve()}",) if self.data_dir else ()
        return (*moved, *self.overrides)

    @property
    def spec(self) -> StudyFile:
        """The study, resolved (once per process and file content)."""
        path = self.study_path()
        mtime = path.stat().st_mtime_ns if path.exists() else 0
        study = _resolve(str(path), mtime, self.all_overrides(), str(Path(self.real_data).resolve()))
        return with_latest_test_end(study)  # domains.streamflow.usgs.test_end: latest

    def check(self) -> None:
        """Fail now, naming the key, when the study does not resolve."""
        if self.study_file == "real" and not Path(self.real_data).is_dir():
            raise ConfigError("study.real_data", f"folder does not exist: {self.real_data}")
        _ = self.spec

    @property
    def work_dir(self) -> Path:
        return Path(self.spec.data_dir).resolve()

    @property
    def layout(self) -> Layout:
        """Every file under the working folder."""
        return Layout(self.work_dir)

    def domains(self) -> list[str]:
        """The domains this run covers (``run.domains``, else all of the study's), in pipeline order."""
        return self.spec.run_domains()

    def domain(self, domain: str) -> DomainSpec:
        return self.spec.domain(domain)

    def ecoregions(self) -> Path:
        assert self.spec.ecoregions is not None  # required unless virtual, where it is filled in
        return Path(self.spec.ecoregions)

    def _optional(self, domain: str, key: str) -> Path | None:
        if domain not in self.spec.domains:
            return None
        value = getattr(self.domain(domain), key)
        return Path(value) if value and Path(value).exists() else None

    def basin_polygons(self) -> Path | None:
        return self._optional("streamflow", "basin_polygons")

    def gages2(self) -> Path | None:
        return self._optional("streamflow", "gages2")

    def record(self, run_id: str) -> Path:
        """Write the resolved study of run ``run_id`` beside the run's outputs (replayable:
        ``--config <that file>`` reruns the same settings)."""
        return atomic_write_text(self.layout.run_study(run_id), study_yaml(self.spec))


def study_yaml(study: StudyFile) -> str:
    """The resolved study as YAML (its source and overrides as comments)."""
    head = f"# resolved from {study.source}\n"
    head += "".join(f"# override: {o}\n" for o in study.overrides)
    body = yaml.safe_dump(study.model_dump(mode="json", exclude_none=True), sort_keys=False)
    return head + body


@functools.lru_cache(maxsize=16)
def _resolve(path: str, mtime_ns: int, overrides: tuple[str, ...], real_data: str) -> StudyFile:
    # ${SYNERGY_REAL_DATA} in the shipped real study is the resource's real_data (env default).
    return resolve_study(path, overrides, variables={"SYNERGY_REAL_DATA": real_data})


class ComputeResource(dg.ConfigurableResource):
    """Where models train: ``device`` (env ``SYNERGY_DEVICE``: auto, cpu, cuda, cuda:N, mps) and
    ``torch_threads`` (env ``SYNERGY_TORCH_THREADS``; 0 = every core)."""

    device: str = Field(default_factory=lambda: env_str("SYNERGY_DEVICE", "auto"))
    torch_threads: int = Field(default_factory=lambda: env_int("SYNERGY_TORCH_THREADS", 0))


class MetadataStoreResource(dg.ConfigurableResource):
    """The metadata store: the embedded DuckDB file (default) or a DuckLake catalog with Parquet
    data (for many writers); every use opens and closes its own connection.

    Which store, the first that is set: ``path`` (a DuckDB file), ``url`` (env ``SYNERGY_STORE``: a
    DuckDB file, ``ducklake:postgres:<connection string>`` or ``ducklake:<catalog file>``), the
    study file's ``store:`` block, else ``<working folder>/synergy.duckdb``. A DuckLake store's
    Parquet files go to ``data_path`` (env ``SYNERGY_STORE_DATA_PATH``), else the study file's
    ``store.data_path``, else ``<working folder>/ducklake``.
    """

    study: dg.ResourceDependency[StudyResource]
    path: str = ""  # a DuckDB file; empty = as below
    url: str = Field(default_factory=lambda: env_str("SYNERGY_STORE", ""))
    data_path: str = Field(default_factory=lambda: env_str("SYNERGY_STORE_DATA_PATH", ""))

    def location(self) -> StoreLocation:
        """Where the store is (its ``url`` opens it again in any process: ``MetadataStore(url)``)."""
        if self.path:
            return duckdb_file(self.path, "store.path")
        url_origin = _origin("store.url", "SYNERGY_STORE", self.url)
        data_origin = _origin("store.data_path", "SYNERGY_STORE_DATA_PATH", self.data_path)
        study = self.study.spec
        spec, where = study.store, f"{study.source}: store"
        lake_data: str | Path = self.data_path
        if not lake_data and spec.kind == "ducklake" and spec.data_path:
            lake_data, data_origin = spec.data_path, f"{where}.data_path"
        if not lake_data:
            lake_data = self.study.work_dir / "ducklake"
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
        return duckdb_file(spec.path or self.study.layout.database(), f"{where}.path")

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
