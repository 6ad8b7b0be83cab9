"""Science configuration, free of Dagster: study periods, plan thresholds and training profiles.

Dagster resources (``defs/resources.py``) wrap these so run config / env vars can override them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd

from synergy_dagster.errors import ConfigError

DOMAINS = ("soil_moisture", "streamflow")


@dataclass(frozen=True)
class Period:
    start: str
    end: str

    def __post_init__(self) -> None:
        try:
            s, e = pd.Timestamp(self.start), pd.Timestamp(self.end)
        except (ValueError, TypeError) as exc:
            raise ConfigError("period", f"not a date: {exc}") from exc
        # pd.Timestamp(None) and pd.Timestamp("") are NaT, which compares False with everything
        if pd.isna(s) or pd.isna(e):
            raise ConfigError("period", f"start and end are required, got {self.start!r} .. {self.end!r}")
        if e < s:
            raise ConfigError("period", f"end {self.end} is before start {self.start}")

    @property
    def slice(self) -> slice:
        return slice(pd.Timestamp(self.start), pd.Timestamp(self.end))


@dataclass(frozen=True)
class DomainPeriods:
    """Training and test periods of one domain. Test must start after training ends."""

    train: Period
    test: Period

    def __post_init__(self) -> None:
        if pd.Timestamp(self.test.start) <= pd.Timestamp(self.train.end):
            raise ConfigError("periods", "test period must start after the training period ends")


# Periods that fit the data each source holds (see README): the paper's where the data allow.
PERIODS: dict[str, dict[str, DomainPeriods]] = {
    "virtual": {
        "soil_moisture": DomainPeriods(
            Period("2015-04-01", "2016-03-31"), Period("2016-04-01", "2017-03-31")
        ),
        "streamflow": DomainPeriods(Period("2001-10-01", "2007-09-30"), Period("2007-10-01", "2009-09-30")),
    },
    "real": {
        "soil_moisture": DomainPeriods(
            Period("2015-04-01", "2016-03-31"), Period("2016-04-01", "2017-03-31")
        ),
        "streamflow": DomainPeriods(Period("1981-10-01", "2009-12-31"), Period("2010-01-01", "2014-12-31")),
    },
}


@dataclass(frozen=True)
class DomainTraining:
    rho: int  # window length in days
    batch: int  # sites per minibatch (capped at n_sites)
    warmup: int  # days of spin-up before the test window, masked from metrics

    def __post_init__(self) -> None:
        if self.rho <= 0 or self.batch <= 0:
            raise ConfigError(
                "profile.domains", f"rho and batch must be positive, got {self.rho}, {self.batch}"
            )
        if self.warmup < 0:
            raise ConfigError("profile.domains", f"warmup must be >= 0, got {self.warmup}")


@dataclass(frozen=True)
class Profile:
    """Hyper-parameters of one training profile (``paper``, ``cpu``, ``demo``)."""

    name: str
    hidden: int
    epochs: int
    dropconnect: float
    seeds: tuple[int, ...]
    domains: dict[str, DomainTraining] = field(default_factory=dict)
    max_iters_per_epoch: int | None = None  # caps the paper's epoch formula for small budgets
    epoch_scale: float = 1.0  # fraction of the paper's iterations per epoch (keeps its proportions)
    min_iters_per_epoch: int = 1
    checkpoint_every: int = 1  # epochs

    def __post_init__(self) -> None:
        if self.hidden <= 0:
            raise ConfigError("profile.hidden", f"must be positive, got {self.hidden}")
        if self.epochs <= 0:
            raise ConfigError("profile.epochs", f"must be positive, got {self.epochs}")
        if not 0.0 <= self.dropconnect < 1.0:
            raise ConfigError("profile.dropconnect", f"must be in [0, 1), got {self.dropconnect}")
        if not self.seeds:
            raise ConfigError("profile.seeds", "at least one seed is required")
        # numpy's generators reject negative seeds deep inside training; say so here
        if any(not isinstance(s, int) or s < 0 for s in self.seeds) or len(set(self.seeds)) != len(
            self.seeds
        ):
            raise ConfigError(
                "profile.seeds", f"seeds must be distinct integers >= 0, got {list(self.seeds)}"
            )
        if self.max_iters_per_epoch is not None and self.max_iters_per_epoch <= 0:
            raise ConfigError(
                "profile.max_iters_per_epoch", f"must be positive, got {self.max_iters_per_epoch}"
            )
        if self.checkpoint_every <= 0:
            raise ConfigError("profile.checkpoint_every", f"must be positive, got {self.checkpoint_every}")

    def for_domain(self, domain: str) -> DomainTraining:
        if domain not in self.domains:
            raise ConfigError("domain", f"unknown domain {domain!r}; expected one of {DOMAINS}")
        return self.domains[domain]

    def replace(self, **changes: object) -> Profile:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


PAPER_DOMAINS = {
    "soil_moisture": DomainTraining(rho=30, batch=100, warmup=0),
    "streamflow": DomainTraining(rho=365, batch=500, warmup=365),
}

PROFILES: dict[str, Profile] = {
    "paper": Profile("paper", hidden=256, epochs=500, dropconnect=0.5, seeds=(0,), domains=PAPER_DOMAINS),
    "cpu": Profile(
        "cpu",
        hidden=64,
        epochs=30,
        dropconnect=0.0,
        seeds=(0,),
        domains={"soil_moisture": DomainTraining(30, 100, 0), "streamflow": DomainTraining(270, 64, 270)},
        epoch_scale=0.1,
        min_iters_per_epoch=20,
        max_iters_per_epoch=200,
    ),
    "demo": Profile(
        "demo",
        hidden=24,
        epochs=5,
        dropconnect=0.0,
        seeds=(0,),
        domains={"soil_moisture": DomainTraining(30, 64, 0), "streamflow": DomainTraining(120, 32, 120)},
        epoch_scale=0.05,
        min_iters_per_epoch=8,
        max_iters_per_epoch=60,
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError("profile", f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    return PROFILES[name]


@dataclass(frozen=True)
class PlanConfig:
    """Thresholds of the experiment plan."""

    min_sites_subregion: int = 10  # N for global-vs-local sub-regions
    min_sites_roi: int = 10  # N for Level III regions of interest
    coverage: float = 0.9  # share of valid targets needed in both periods
    size_control_seed: int = 0

    def __post_init__(self) -> None:
        if self.min_sites_subregion < 1 or self.min_sites_roi < 1:
            raise ConfigError("plan.min_sites", "must be >= 1")
        if not 0.0 < self.coverage <= 1.0:
            raise ConfigError("plan.coverage", f"must be in (0, 1], got {self.coverage}")
