"""The study file's ``spatial:`` block: spatial holdouts, where the test sites have no gauge.

The temporal experiments score every site on a later period of a site the model trained on. The
spatial ones (:mod:`synergy_dagster.experiments.spatial`) take the gauge away: prediction in
ungauged basins (PUB, k-fold over sites; Kratzert et al. 2019) and prediction in ungauged regions
(PUR, a whole region left out; Feng, Lawson and Shen 2021). Both are off by default: they add
``k x (1 + regions)`` (PUB) and ``2 x regions`` (PUR; ``+ pools x regions`` with ``pur_pools``)
training sets to the plan.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from synergy_dagster.config import Settings
from synergy_dagster.errors import ConfigError


class SpatialSpec(Settings):
    """Which spatial holdouts a study trains and scores (PUB folds, PUR regions) and how they are drawn."""

    _where: ClassVar[str] = "spatial"

    pub_folds: int = Field(
        0,
        ge=0,
        le=50,
        description=(
            "Prediction in ungauged basins: the number k of folds the sites of the plan's "
            "sub-regions are split into (0, the default: off; otherwise k >= 2). Each fold is "
            "held out once: a unified model trained on every other site and, per sub-region, a "
            "regional model trained on the other sites of that sub-region predict the fold's "
            "sites on the test period. Kratzert et al. (2019) ran k-fold validation over 531 CAMELS "
            "basins; a small k trains fewer models, each on fewer sites."
        ),
    )
    pur: bool = Field(
        False,
        description=(
            "Prediction in ungauged regions: leave each sub-region that reaches "
            "thresholds.min_sites_subregion out once (default false: off). A unified model "
            "trained on every site outside it and the model of its partner region "
            "(pur_partner) predict its sites on the test period."
        ),
    )
    seed: int = Field(
        0,
        ge=0,
        description=(
            "Seed of the PUB fold draw (a per-region permutation, recorded in the plan); the same "
            "seed gives the same folds on every machine. Default 0, like the plan's other seeds."
        ),
    )
    pur_partner: Literal["nearest", "similar"] = Field(
        "nearest",
        description=(
            "Which other sub-region stands in for a held-out one under PUR: 'nearest' (default: "
            "the smallest great-circle distance between the regions' site centroids, what a user "
            "without attributes would pick) or 'similar' (the smallest Euclidean distance between "
            "the regions' mean z-scored static attributes, as the paper ranks similarity by "
            "attributes rather than by place)."
        ),
    )

    pur_pools: list[Literal["close", "far", "dissimilar"]] = Field(
        default_factory=list,
        description=(
            "The paper's similarity pools as PUR training sets (default []: none). For each held-out "
            "sub-region r, one model per pool trained on sites outside r only: 'close' (sharing a "
            "Level II ecoregion with a site of r), 'far' (sharing a Level I but no Level II) or "
            "'dissimilar' (sharing no Level I), the pools of the paper's similarity experiments with "
            "the region's own sites taken away. Each pool model predicts r's sites and is compared "
            "with the unified model and with the other pools. Needs pur: true."
        ),
    )
    pur_pool_size: Literal["matched", "all"] = Field(
        "matched",
        description=(
            "How many sites each PUR pool model trains on: 'matched' (default: every pool of a "
            "held-out region drawn down to its smallest non-empty pool, seeded by spatial.seed and "
            "recorded in the plan, so the pools differ in similarity and not in size, as the "
            "paper's size-controlled experiments) or 'all' (every site of the pool, as its "
            "experiments without size control)."
        ),
    )

    @model_validator(mode="after")
    def _valid(self) -> SpatialSpec:
        if self.pub_folds == 1:
            raise ConfigError(
                "spatial.pub_folds", "must be 0 (off) or at least 2: one fold holds out every site"
            )
        if self.pur_pools and not self.pur:
            raise ConfigError(
                "spatial.pur_pools", "the pools are PUR training sets: set spatial.pur: true as well"
            )
        if len(set(self.pur_pools)) != len(self.pur_pools):
            raise ConfigError("spatial.pur_pools", f"lists a pool twice: {self.pur_pools}")
        return self

    @property
    def enabled(self) -> bool:
        """True when the study asks for PUB or PUR."""
        return self.pub_folds >= 2 or self.pur
