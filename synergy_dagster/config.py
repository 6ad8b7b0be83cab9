"""Science configuration, free of Dagster: study periods, plan thresholds and training profiles.

Dagster resources (``defs/resources.py``) wrap these so run config / env vars can override them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from synergy_dagster.errors import ConfigError

DOMAINS = ("soil_moisture", "streamflow")

# The paper's regions of interest (Level III) for the similarity experiments, per domain. They live
# here, with the other study settings, so that both the generator (sources/) and the study
# (regions/, experiments/) read them without one package importing the other.
PAPER_ROIS: dict[str, tuple[str, ...]] = {
    "soil_moisture": ("8.3.5", "9.3.3", "9.4.1", "9.4.2", "10.1.5", "10.2.4"),
    "streamflow": (
        "5.3.1",
        "8.1.7",
        "8.2.3",
        "8.2.4",
        "8.3.1",
        "8.3.4",
        "8.3.5",
        "8.4.1",
        "8.4.2",
        "8.5.3",
        "9.2.3",
        "9.4.2",
    ),
}


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

    def carve_validation(self, days: int) -> tuple[Period, Period]:
        """Split off the last ``days`` days as a validation period: (shortened training, validation).

        Early stopping must never see the test period, so its validation data come out of training.
        """
        if days <= 0:
            raise ConfigError("validation_days", f"must be positive to carve a period, got {days}")
        s, e = pd.Timestamp(self.start), pd.Timestamp(self.end)
        if (e - s).days + 1 <= 2 * days:
            raise ConfigError(
                "validation_days",
                f"{days} days would leave less than half of the training period {self.start}..{self.end}",
            )
        cut = e - pd.Timedelta(days=days)
        day = "%Y-%m-%d"
        return (
            Period(self.start, cut.strftime(day)),
            Period((cut + pd.Timedelta(days=1)).strftime(day), e.strftime(day)),
        )


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


OPTIMIZERS = ("adadelta", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
LOSSES = ("rmse", "mse", "nse")
TARGET_TRANSFORMS = ("log1p", "none")
PRECISIONS = ("fp32", "bf16")


def renamed(exc: ConfigError, where: str) -> ConfigError:
    """``exc`` with a ``recipe.<key>`` source renamed ``<where>.<key>`` (where the user wrote it)."""
    source = exc.source.replace("recipe", where, 1) if exc.source.startswith("recipe") else exc.source
    return ConfigError(source, exc.problem, exc.where)


@dataclass(frozen=True)
class Recipe:
    """How a model is optimised: optimiser, learning-rate schedule, loss and target transform.

    The defaults are the paper's recipe: AdaDelta (lr 1.0, rho 0.9, eps 1e-6), constant rate, RMSE
    over the valid cells of a minibatch, streamflow target as ``log(q + 1)``.

    * ``optimizer``: ``adadelta`` | ``adam`` | ``adamw`` (decoupled ``weight_decay``; for the other
      two ``weight_decay`` is the classic L2 term).
    * ``schedule``: ``constant``; ``cosine`` (from ``lr`` down to ``lr * lr_min_frac`` over the
      budget's total updates); ``step`` (times ``step_gamma`` every ``step_every`` updates). Any
      schedule starts with ``warmup_updates`` of linear warm-up.
    * ``grad_clip``: clip the gradient's global L2 norm to this value (0 = no clipping).
    * ``loss``: ``rmse`` (the paper), ``mse``, or ``nse``: the basin-normalised squared error of
      Kratzert et al. (2019), each cell's squared error divided by ``(s_b + nse_eps)**2`` with
      ``s_b`` the standard deviation of its site's training target.
    * ``loss_days``: score only the last n days of each window, so the first days (the LSTM's
      spin-up from a zero state) do not pull the fit; 0 = every day, as the paper.
    * ``target_transform``: ``log1p`` (the paper's ``log(q + 1)`` for streamflow) or ``none`` (q
      itself, scaled like the other variables). Soil moisture is never log-transformed.
    * ``precision``: ``fp32`` (the paper's) or ``bf16``: each training update's forward pass under
      bfloat16 autocast (the LSTM and linear layers compute in bfloat16, the weights, optimiser
      state, loss and every validation and test prediction stay float32). Pays on CPUs with
      AVX512-BF16/AMX and on CUDA; elsewhere it may be slower.

    A recipe is applied per domain (:class:`DomainTraining`), since what suits streamflow need not
    suit soil moisture.
    """

    optimizer: str = "adadelta"
    lr: float = 1.0
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_updates: int = 0
    lr_min_frac: float = 0.0  # cosine: final rate as a fraction of lr
    step_every: int = 0  # step: updates between two decays
    step_gamma: float = 0.5  # step: factor of each decay
    grad_clip: float = 0.0
    loss: str = "rmse"
    nse_eps: float = 0.1  # nse loss: keeps near-constant sites from dominating (Kratzert et al.)
    target_transform: str = "log1p"
    loss_days: int = 0  # score only the last n days of each window (0 = every day, the paper)
    precision: str = "fp32"  # arithmetic of the training forward pass (fp32 | bf16)

    def __post_init__(self) -> None:
        choices = {
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "loss": LOSSES,
            "target_transform": TARGET_TRANSFORMS,
            "precision": PRECISIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"recipe.{name}", f"must be one of {allowed}, got {getattr(self, name)!r}")
        positive = {"lr": self.lr, "nse_eps": self.nse_eps}
        for name, value in positive.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"recipe.{name}", f"must be a positive number, got {value!r}")
        for name in ("weight_decay", "grad_clip", "lr_min_frac"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"recipe.{name}", f"must be a number >= 0, got {value!r}")
        if self.lr_min_frac > 1.0:
            raise ConfigError("recipe.lr_min_frac", f"must be in [0, 1], got {self.lr_min_frac}")
        if not 0.0 < self.step_gamma <= 1.0:
            raise ConfigError("recipe.step_gamma", f"must be in (0, 1], got {self.step_gamma}")
        for name in ("warmup_updates", "step_every", "loss_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"recipe.{name}", f"must be an integer >= 0, got {value!r}")
        if self.schedule == "step" and self.step_every <= 0:
            raise ConfigError("recipe.step_every", "schedule 'step' needs a positive step_every")

    @property
    def is_paper(self) -> bool:
        """Whether this is the paper's recipe (recorded implicitly: see :meth:`to_dict`)."""
        return self == PAPER_RECIPE

    def to_dict(self) -> dict[str, object]:
        """Every setting; ``precision`` only when not ``fp32``, so the recorded recipes (and the
        checkpoint fingerprints) of models trained before it existed stay byte-stable."""
        out = dataclasses.asdict(self)
        if out["precision"] == "fp32":
            del out["precision"]
        return out

    def replace(self, **changes: object) -> Recipe:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def overridden(self, changes: Mapping[str, object], where: str = "recipe") -> Recipe:
        """This recipe with ``changes`` (a study file's overrides of a profile's recipe); an unknown
        key or a bad value is a ConfigError naming ``<where>.<key>``."""
        self.check_keys(changes, where)
        try:
            return self.replace(**changes)
        except ConfigError as exc:
            raise renamed(exc, where) from exc
        except TypeError as exc:  # a value of the wrong type reaching a comparison
            raise ConfigError(where, f"bad value in {dict(changes)}: {exc}") from exc

    @classmethod
    def check_keys(cls, keys: Iterable[str], where: str = "recipe") -> None:
        """Refuse a key that is not a setting: a ConfigError naming ``<where>.<key>``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(keys) - known)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}", f"unknown setting; expected one of {sorted(known)}")

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Recipe:
        """A recipe from a mapping (study file, run config); an unknown key is a ConfigError naming it."""
        cls.check_keys(data)
        return cls(**data)  # type: ignore[arg-type]


PAPER_RECIPE = Recipe()


@dataclass(frozen=True)
class DomainTraining:
    rho: int  # window length in days
    batch: int  # sites per minibatch (capped at n_sites)
    warmup: int  # days of spin-up before the test window, masked from metrics
    validation_days: int = 0  # end of the training period held out for learning curves / stopping
    recipe: Recipe = field(default_factory=Recipe)  # optimiser, schedule, loss, target transform

    def with_recipe(self, changes: Mapping[str, object], where: str = "recipe") -> DomainTraining:
        """This domain's training with its recipe changed (:meth:`Recipe.overridden`); every error,
        the window's check of ``loss_days`` included, names ``<where>.<key>``."""
        recipe = self.recipe.overridden(changes, where)
        try:
            return dataclasses.replace(self, recipe=recipe)
        except ConfigError as exc:
            raise renamed(exc, where) from exc

    def __post_init__(self) -> None:
        if self.rho <= 0 or self.batch <= 0:
            raise ConfigError(
                "profile.domains", f"rho and batch must be positive, got {self.rho}, {self.batch}"
            )
        if self.recipe.loss_days > self.rho:
            raise ConfigError(
                "recipe.loss_days", f"{self.recipe.loss_days} days is longer than the window rho={self.rho}"
            )
        if self.warmup < 0:
            raise ConfigError("profile.domains", f"warmup must be >= 0, got {self.warmup}")
        if self.validation_days < 0:
            raise ConfigError("profile.domains", f"validation_days must be >= 0, got {self.validation_days}")


BUDGET_MODES = ("paper", "equal_updates", "equal_passes", "converge", "wall_clock")
VALIDATION_METRICS = ("auto", "nse", "rmse")
# "auto": the paper's headline metric of each domain (soil moisture RMSE, streamflow NSE)
AUTO_METRIC = {"soil_moisture": "rmse", "streamflow": "nse"}


@dataclass(frozen=True)
class Budget:
    """How much each model is trained: the mode and the parameters every mode reads.

    * ``paper``: the paper's epoch rule (``Profile.epochs`` epochs of the sampling formula, scaled and
      clipped by the profile), so a bigger training set gets more updates.
    * ``equal_updates``: ``updates`` weight updates for every model, whatever its data size.
    * ``equal_passes``: ``passes`` passes over each model's data, one pass being
      ``n_sites * n_days / (batch * rho)`` updates (the effective batch).
    * ``converge``: early stopping on the validation period: stop after ``patience`` checks without
      an improvement of more than ``min_delta`` (NSE points for ``nse``, a fraction of the best
      value for ``rmse``), once ``min_updates`` are done; at most ``max_updates``; the weights of
      the best check are kept. With ``smooth`` > 1 the improvement is judged on the mean of the
      last ``smooth`` checks (a moving average), so that a noisy curve (a check-to-check spread
      larger than its trend) is not taken for a plateau at its first dip (checks before the
      window is full are not judged); the weights kept are still those of the best single check.
    * ``wall_clock``: train for ``seconds`` of wall time (training plus validation checks), at most
      ``max_updates``. Not reproducible across machines; the updates reached are recorded.

    Every mode checks the validation metric every ``eval_every`` updates (the learning curve) on
    the validation period, the last ``DomainTraining.validation_days`` of the training period, held
    out from training in every mode so that modes are compared on the same training data (with 0
    days, allowed in every mode but ``converge``, the curve is scored on the training period).
    """

    mode: str = "paper"
    updates: int = 0
    passes: float = 0.0
    seconds: float = 0.0
    max_updates: int = 0  # 0 = no cap (converge needs one)
    min_updates: int = 0
    patience: int = 5
    min_delta: float = 0.0
    eval_every: int = 0  # 0 = once per paper epoch
    metric: str = "auto"
    smooth: int = 1  # converge: checks averaged before judging an improvement (1 = each check alone)

    def __post_init__(self) -> None:
        if self.mode not in BUDGET_MODES:
            raise ConfigError("budget.mode", f"unknown mode {self.mode!r}; expected one of {BUDGET_MODES}")
        if self.metric not in VALIDATION_METRICS:
            raise ConfigError("budget.metric", f"must be one of {VALIDATION_METRICS}, got {self.metric!r}")
        for name in ("updates", "max_updates", "min_updates", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"budget.{name}", f"must be >= 0, got {getattr(self, name)}")
        if isinstance(self.smooth, bool) or not isinstance(self.smooth, int) or self.smooth < 1:
            raise ConfigError("budget.smooth", f"must be an integer >= 1, got {self.smooth!r}")
        if self.patience < 1:
            raise ConfigError("budget.patience", f"must be >= 1, got {self.patience}")
        if not 0.0 <= self.min_delta < 1.0:
            raise ConfigError("budget.min_delta", f"must be in [0, 1), got {self.min_delta}")
        if self.passes < 0 or self.seconds < 0:
            raise ConfigError("budget", f"passes and seconds must be >= 0, got {self.passes}, {self.seconds}")
        needs = {
            "equal_updates": ("updates", self.updates > 0),
            "equal_passes": ("passes", self.passes > 0),
            "wall_clock": ("seconds", self.seconds > 0),
            "converge": ("max_updates", self.max_updates > 0),
        }
        if self.mode in needs and not needs[self.mode][1]:
            field_name = needs[self.mode][0]
            raise ConfigError(f"budget.{field_name}", f"mode {self.mode!r} needs a positive {field_name}")
        if self.max_updates and self.min_updates > self.max_updates:
            raise ConfigError(
                "budget.min_updates", f"{self.min_updates} is above max_updates {self.max_updates}"
            )

    def for_domain(self, domain: str) -> Budget:
        """``metric="auto"`` resolved to the domain's headline metric."""
        if self.metric != "auto":
            return self
        return dataclasses.replace(self, metric=AUTO_METRIC.get(domain, "nse"))

    def replace(self, **changes: object) -> Budget:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """Every parameter; ``smooth`` only when set (> 1), so that the recorded JSON of budgets from
        before it existed stays byte-stable (it decides whether a trained model is reused)."""
        d = dataclasses.asdict(self)
        if d["smooth"] == 1:
            del d["smooth"]
        return d


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
    checkpoint_every: int = 1  # epochs (paper mode) or validation checks (other modes)
    budget: Budget = field(default_factory=Budget)

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
        self.check_budget(self.budget)

    def check_budget(self, budget: Budget) -> None:
        """Raise when ``budget`` cannot run with this profile's domains."""
        if budget.mode == "converge":
            short = [d for d, t in self.domains.items() if t.validation_days <= 0]
            if short:
                raise ConfigError(
                    "budget.mode",
                    f"'converge' stops on a held-out validation period, but profile {self.name!r} "
                    f"holds out no days for {short}: set validation_days > 0",
                )

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

# The best recipe measured on the real global streamflow set (416 Caravan basins; README "Training
# recipes", bench/bench_recipes.py): AdamW, rate halved every 1500 updates, gradients clipped, the
# basin-normalised loss on the untransformed flow. Soil moisture keeps the paper's (not compared).
CPU_STREAMFLOW_RECIPE = Recipe(
    optimizer="adamw",
    lr=2e-3,
    weight_decay=1e-4,
    schedule="step",
    step_every=1500,
    step_gamma=0.5,
    grad_clip=1.0,
    loss="nse",
    target_transform="none",
)

PROFILES: dict[str, Profile] = {
    # The paper trains on the whole training period (no validation split): its learning curves are
    # scored on the training period; 'converge' needs validation_days set (see Budget).
    "paper": Profile(
        "paper",
        hidden=256,
        epochs=500,
        dropconnect=0.5,
        seeds=(0,),
        domains=PAPER_DOMAINS,
        budget=Budget(
            mode="paper", updates=20000, passes=300.0, seconds=3600.0, max_updates=60000, patience=10
        ),
    ),
    # cpu and demo train to convergence (early stopping, capped to fit their time targets): with a
    # fixed small budget the global model is undertrained and the comparison answers the budget, not
    # the science (issue 8). Their paper-rule settings remain for the budget-sensitivity runs.
    "cpu": Profile(
        "cpu",
        hidden=64,
        epochs=30,
        dropconnect=0.0,
        seeds=(0,),
        domains={
            "soil_moisture": DomainTraining(30, 100, 0, validation_days=61),
            "streamflow": DomainTraining(270, 64, 270, validation_days=730, recipe=CPU_STREAMFLOW_RECIPE),
        },
        epoch_scale=0.1,
        min_iters_per_epoch=20,
        max_iters_per_epoch=200,
        budget=Budget(
            mode="converge",
            updates=1000,
            passes=5.0,
            seconds=600.0,
            max_updates=8000,  # the real global streamflow model converged at 4600 (README, recipes)
            min_updates=300,
            # a check-to-check spread of 0.02-0.09 NSE: judge a moving mean of 8 checks (issue 14)
            patience=8,
            min_delta=0.005,
            eval_every=100,
            smooth=8,
        ),
    ),
    "demo": Profile(
        "demo",
        hidden=24,
        epochs=5,
        dropconnect=0.0,
        seeds=(0,),
        domains={
            "soil_moisture": DomainTraining(30, 64, 0, validation_days=61),
            "streamflow": DomainTraining(120, 32, 120, validation_days=365),
        },
        epoch_scale=0.05,
        min_iters_per_epoch=8,
        max_iters_per_epoch=60,
        budget=Budget(
            mode="converge",
            updates=500,
            passes=5.0,
            seconds=10.0,
            max_updates=1500,
            min_updates=200,
            patience=4,
            min_delta=0.01,
            eval_every=50,
        ),
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
