"""Where each stage keeps its files under the working folder (one place, so stages agree)."""

from __future__ import annotations

from pathlib import Path


class Layout:
    def __init__(self, work_dir: str | Path) -> None:
        self.root = Path(work_dir).resolve()

    def source_nc(self, domain: str) -> Path:
        return self.root / "sources" / f"{domain}.nc"

    def ecoregions(self) -> Path:
        return self.root / "sources" / "ecoregions_l3.gpkg"

    def sites_nc(self, domain: str) -> Path:
        return self.root / "sites" / f"{domain}.nc"

    def sites_table(self, domain: str) -> Path:
        return self.root / "sites" / f"{domain}_sites.parquet"

    def plan(self, domain: str) -> Path:
        return self.root / "plans" / f"{domain}.json"

    def normalizer(self, domain: str) -> Path:
        return self.root / "plans" / f"{domain}_normalizer.json"

    def checkpoint(self, domain: str, set_key: str, seed: int, budget: str) -> Path:
        return self.models_dir() / domain / budget / set_key.replace(":", "__") / f"seed{seed}.ckpt"

    def models_dir(self) -> Path:
        return self.root / "models"

    def evaluation_dir(self) -> Path:
        return self.root / "evaluation"

    def figures_dir(self) -> Path:
        return self.evaluation_dir() / "figures"

    def sensitivity_dir(self) -> Path:
        return self.evaluation_dir() / "budget_sensitivity"

    def assets_dir(self) -> Path:
        return self.root / "assets"
