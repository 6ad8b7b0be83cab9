"""Where each stage keeps its files under the working folder (one place, so stages agree).

Every file the pipeline writes under ``data_dir`` is named here; nothing else builds a path below
the working folder by hand, so moving ``data_dir`` (env ``SYNERGY_DATA_DIR`` or run config
``sources.data_dir``) moves all of them. ``data/README.md`` describes the same tree for users.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

ALL_PARTITIONS = "__all__"  # file name of an unpartitioned asset's value


def safe_key(key: str) -> str:
    """A partition key as a file or folder name: keys hold ':' and '+' (``local+far:8.3.5``); keep
    them readable but path-safe."""
    return key.replace("/", "_").replace(":", "__")


class Layout:
    """The working folder's tree; every method returns a path (nothing is created)."""

    def __init__(self, work_dir: str | Path) -> None:
        self.root = Path(work_dir).resolve()

    # ------------------------------------------------------------------ inputs

    def virtual_dir(self) -> Path:
        """The generated virtual CONUS (input files in the real data's formats)."""
        return self.root / "virtual_conus"

    def virtual_manifest(self) -> Path:
        """The generator's config and file hashes: regenerate only when the config changes."""
        return self.virtual_dir() / "manifest.json"

    def source_nc(self, domain: str) -> Path:
        return self.root / "sources" / f"{domain}.nc"

    def source_drops(self, domain: str) -> Path:
        """Sites a source held but the study left out before tagging (site, reason)."""
        return self.root / "sources" / f"{domain}_dropped.parquet"

    def source_quality(self, domain: str) -> Path:
        """Every quality finding of a source (masked values, dropped sites, warnings), one per row."""
        return self.root / "sources" / f"{domain}_quality.csv"

    def ecoregions(self) -> Path:
        return self.root / "sources" / "ecoregions_l3.gpkg"

    def landing_dir(self) -> Path:
        """Where new streamflow files land (watched by the landing sensor); default of the landing
        resource's ``path``."""
        return self.root / "landing"

    def landed_dir(self) -> Path:
        """The ledger of landed (newly arrived) data: archived files and the accumulated updates."""
        return self.root / "landed"

    def landed_archive(self) -> Path:
        return self.landed_dir() / "archive"

    def landed_rejected(self) -> Path:
        """Landed files that failed validation (quarantine), each beside its ``.reason.txt``."""
        return self.landed_dir() / "rejected"

    def landed_updates(self, domain: str) -> Path:
        return self.landed_dir() / f"{domain}_updates.parquet"

    # ------------------------------------------------------------------ sites and plans

    def sites_nc(self, domain: str) -> Path:
        return self.root / "sites" / f"{domain}.nc"

    def sites_table(self, domain: str) -> Path:
        return self.root / "sites" / f"{domain}_sites.parquet"

    def site_regions(self, domain: str) -> Path:
        """Each kept site's region under every regionalisation scheme of the study (long table)."""
        return self.root / "sites" / f"{domain}_regions.parquet"

    def plan(self, domain: str) -> Path:
        return self.root / "plans" / f"{domain}.json"

    def normalizer(self, domain: str) -> Path:
        return self.root / "plans" / f"{domain}_normalizer.json"

    # ------------------------------------------------------------------ JSON asset values

    def assets_dir(self) -> Path:
        """The JSON IO manager's folder."""
        return self.root / "assets"

    def asset_json(self, asset_key: Sequence[str], partition: str | None = None) -> Path:
        """The JSON value of an asset (key path) and partition (None: unpartitioned)."""
        return self.assets_dir().joinpath(*asset_key) / f"{safe_key(partition or ALL_PARTITIONS)}.json"

    def training_set(self, domain: str, set_key: str) -> Path:
        """The description (sites, periods, normaliser, data hash) of one training-set partition."""
        return self.asset_json([f"{domain}_training_set"], set_key)

    # ------------------------------------------------------------------ models

    def models_dir(self) -> Path:
        """The model IO manager's folder."""
        return self.root / "models"

    def model_dir(self, domain: str, budget: str, set_key: str) -> Path:
        """One partition's files under one budget mode: weights, index and checkpoints."""
        return self.models_dir() / domain / budget / safe_key(set_key)

    def model_file(self, domain: str, budget: str, set_key: str, seed: int) -> Path:
        """One seed's ``state_dict``."""
        return self.model_dir(domain, budget, set_key) / f"seed{seed}.pt"

    def model_index(self, domain: str, budget: str, set_key: str) -> Path:
        """``{seed: {"path", "sha256"}}`` of a partition's weights, written after them."""
        return self.model_dir(domain, budget, set_key) / "index.json"

    def model_indexes(self, domain: str, set_key: str) -> list[Path]:
        """The index of a partition under every budget mode it was trained with."""
        return sorted((self.models_dir() / domain).glob(f"*/{safe_key(set_key)}/index.json"))

    def checkpoint(self, domain: str, budget: str, set_key: str, seed: int) -> Path:
        """Training state to resume one seed after an interruption."""
        return self.model_dir(domain, budget, set_key) / f"seed{seed}.ckpt"

    # ------------------------------------------------------------------ evaluation

    def evaluation_dir(self) -> Path:
        return self.root / "evaluation"

    def site_metrics(self) -> Path:
        return self.evaluation_dir() / "site_metrics.parquet"

    def spatial_dir(self) -> Path:
        """The spatial holdouts' tables and figures (docs/spatial.md)."""
        return self.evaluation_dir() / "spatial"

    def spatial_table(self, name: str) -> Path:
        """One Parquet table of the spatial holdouts (``site_metrics``, ``significance``,
        ``verdicts``, ``every_region``, ``gauge_loss``), written by the spatial_evaluation asset and
        read by the summary and the reproduction report."""
        return self.spatial_dir() / f"{name}.parquet"

    def significance(self) -> Path:
        return self.evaluation_dir() / "significance.parquet"

    def summary(self) -> Path:
        return self.evaluation_dir() / "summary.md"

    def reproduction_report(self) -> Path:
        """The paper's headline claims next to this run's numbers, with a verdict per claim."""
        return self.evaluation_dir() / "reproduction_report.md"

    def reproduction_verdicts(self) -> Path:
        """The verdict table of :meth:`reproduction_report` (one row per claim)."""
        return self.evaluation_dir() / "reproduction_verdicts.parquet"

    def figures_dir(self) -> Path:
        return self.evaluation_dir() / "figures"

    def figure(self, name: str) -> Path:
        """A PNG of the figures folder (boxplots, error matrices, region maps, learning curves)."""
        return self.figures_dir() / name

    def region_map(self, domain: str) -> Path:
        return self.figure(f"{domain}_region_map.png")

    def seed_spread_png(self, domain: str, experiment: str, metric: str) -> Path:
        """Per region, each seed's median paired difference next to the seed-mean test's."""
        return self.figure(f"{domain}_{experiment}_{metric}_seed_spread.png")

    def synergy_curves_png(self, domain: str) -> Path:
        """Skill on each ROI's own sites against the sites added from each pool (one panel per ROI)."""
        return self.figure(f"{domain}_synergy_curves.png")

    def learning_curves_png(self, domain: str) -> Path:
        return self.figure(f"{domain}_learning_curves.png")

    def timeseries_png(self, domain: str, part: int = 1) -> Path:
        """Observed vs simulated series of a few sites per region; part 2, 3... when the regions
        do not fit one figure."""
        return self.figure(f"{domain}_timeseries.png" if part == 1 else f"{domain}_timeseries_{part}.png")

    def timeseries_pngs(self, domain: str) -> list[Path]:
        """Every part of :meth:`timeseries_png` on disk (to drop parts a smaller study no longer has)."""
        return sorted(self.figures_dir().glob(f"{domain}_timeseries*.png"))

    def predictions_dir(self) -> Path:
        return self.evaluation_dir() / "predictions"

    def predictions(self, domain: str) -> Path:
        """Every evaluated model's simulated test-period series and the observations (CF NetCDF)."""
        return self.predictions_dir() / f"{domain}.nc"

    def schemes_dir(self) -> Path:
        return self.evaluation_dir() / "schemes"

    def scheme_comparison(self) -> Path:
        """Per domain, scheme and metric: global vs local, and local against the null scheme."""
        return self.schemes_dir() / "scheme_comparison.parquet"

    def scheme_figure(self, domain: str) -> Path:
        return self.figure(f"{domain}_schemes.png")

    def sensitivity_dir(self) -> Path:
        return self.evaluation_dir() / "budget_sensitivity"

    def sensitivity_table(self) -> Path:
        """Per region and metric: the winner under each budget mode and whether the sign changed."""
        return self.sensitivity_dir() / "sensitivity.parquet"

    def sensitivity_site_metrics(self) -> Path:
        return self.sensitivity_dir() / "site_metrics.parquet"

    def synergy_dir(self) -> Path:
        """The synergy curves' tables (also in DuckDB: ``synergy_curves``, ``synergy_slopes``)."""
        return self.evaluation_dir() / "synergy_curves"

    def synergy_curves_table(self, domain: str) -> Path:
        """Per ROI x pool x k and metric: the draw mean of the site median, with its spreads."""
        return self.synergy_dir() / f"{domain}_curves.parquet"

    def synergy_slopes_table(self, domain: str) -> Path:
        """Per ROI (and All) x metric x pool: the slope on log2(1+k), se, interval; pool differences."""
        return self.synergy_dir() / f"{domain}_slopes.parquet"

    def synergy_site_metrics(self, domain: str) -> Path:
        """The per-site test metrics of every curve point (for re-analysis)."""
        return self.synergy_dir() / f"{domain}_site_metrics.parquet"

    def run_study(self, run_id: str) -> Path:
        """The resolved study a run used (its settings, replayable as a study file)."""
        return self.root / "runs" / f"{safe_key(run_id)}.study.yaml"

    # ------------------------------------------------------------------ the metadata store

    def database(self) -> Path:
        """The DuckDB metadata store."""
        return self.root / "synergy.duckdb"
