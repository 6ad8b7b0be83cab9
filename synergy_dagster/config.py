"""The settings of a study, free of Dagster: periods, plan thresholds, training, budget, recipe.

Each is a frozen pydantic model declared once here; the study file's schema
(:mod:`synergy_dagster.study_file`) is built from them, the presets (:mod:`synergy_dagster.presets`)
are written in that schema, and the science code reads the same objects.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from synergy_dagster.domains import DOMAIN_RECORDS, DOMAINS
from synergy_dagster.errors import ConfigError

__all__ = ["DOMAINS"]  # re-exported: the pipeline's domains, in order

# The per-domain constants live in one record per domain (synergy_dagster.domains).
PAPER_ROIS: dict[str, tuple[str, ...]] = {d: r.paper_rois for d, r in DOMAIN_RECORDS.items()}


class Settings(BaseModel):
    """Base of every study setting: frozen, unknown keys refused, validated on construction.

    The study file's schema (:mod:`synergy_dagster.study_file`) is built from these classes, so a
    setting is declared once: here, or in the module of the science that reads it. Constructed
    directly (in code), a bad value raises :class:`ConfigError` naming the setting; inside a study
    file the error names the dotted key instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    # the prefix of this class's settings in error messages (``budget`` -> ``budget.mode``)
    _where: ClassVar[str] = ""
    # the fields positional arguments fill, in order (default: every field, in declaration order)
    _positional: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, *args: Any, **data: Any) -> None:
        if args:
            names = self._positional or tuple(type(self).model_fields)
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments")
            data.update(zip(names, args, strict=False))
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, self._where) from None

    # Validation inside a study file must not call this __init__ (pydantic would, for an overridden
    # one, and each nested error would lose its key): mark it as pydantic's own.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated again (``model_copy`` would not validate)."""
        return type(self)(**{**{k: getattr(self, k) for k in type(self).model_fields}, **changes})


def config_error(exc: ValidationError, where: str = "") -> ConfigError:
    """The first problem of ``exc`` as a ConfigError naming the setting (``where.<field>``)."""
    err = exc.errors()[0]
    inner = (err.get("ctx") or {}).get("error")
    if isinstance(inner, ConfigError):
        return inner
    loc = ".".join(str(p) for p in err["loc"])
    source = ".".join(p for p in (where, loc) if p) or exc.title
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown setting; expected one of {sorted(type_fields(exc.title))}"
    shown = err["type"] == "extra_forbidden" or "got " in msg
    return ConfigError(source, msg if shown else f"{msg}, got {err.get('input')!r}")


def type_fields(title: str) -> list[str]:
    """The field names of the settings class called ``title`` (for unknown-key messages)."""
    for cls in _all_settings(Settings):
        if cls.__name__ == title:
            return list(cls.model_fields)
    return []


def _all_settings(cls: type[Settings]) -> list[type[Settings]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _all_settings(sub)
    return out


def _iso(value: object) -> object:
    """A date written in YAML (``2015-04-01`` parses as a date) as its ISO text."""
    return value.isoformat() if isinstance(value, dt.date) else value


class Period(Settings):
    """A closed interval of days (``start`` and ``end`` included)."""

    _where: ClassVar[str] = "period"

    start: Annotated[str, BeforeValidator(_iso)] = Field(description="first day (YYYY-MM-DD)")
    end: Annotated[str, BeforeValidator(_iso)] = Field(description="last day (YYYY-MM-DD), included")

    @field_validator("start", "end")
    @classmethod
    def _day(cls, value: str) -> str:
        try:
            day = pd.Timestamp(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a date (YYYY-MM-DD): {exc}") from None
        if pd.isna(day):  # pd.Timestamp("") is NaT, which compares False with everything
            raise ValueError(f"a date (YYYY-MM-DD) is required, got {value!r}")
        return value

    @model_validator(mode="after")
    def _valid(self) -> Period:
        s, e = pd.Timestamp(self.start), pd.Timestamp(self.end)
        if e < s:
            raise ConfigError("period", f"end {self.end} is before start {self.start}")
        return self

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


class DomainPeriods(Settings):
    """Training and test periods of one domain; the validation period is carved from the end of
    training (``training.validation_days``). Test must start after training ends."""

    _where: ClassVar[str] = "periods"

    train: Period = Field(description="the training period (validation days included)")
    test: Period = Field(description="the test period, scored by the evaluation")

    @model_validator(mode="after")
    def _order(self) -> DomainPeriods:
        if pd.Timestamp(self.test.start) <= pd.Timestamp(self.train.end):
            raise ConfigError(
                "periods",
                f"test period {self.test.start}..{self.test.end} must start after the training period "
                f"{self.train.start}..{self.train.end} ends",
            )
        return self


def renamed(exc: ConfigError, where: str) -> ConfigError:
    """``exc`` with a ``recipe.<key>`` source renamed ``<where>.<key>`` (where the user wrote it)."""
    source = exc.source.replace("recipe", where, 1) if exc.source.startswith("recipe") else exc.source
    return ConfigError(source, exc.problem, exc.where)


def _finite(value: float, lower: float, name: str, strict: bool) -> None:
    ok = math.isfinite(value) and (value > lower if strict else value >= lower)
    if not ok:
        raise ConfigError(
            name, f"must be a {'positive ' if strict else ''}number{'' if strict else ' >= 0'}, got {value!r}"
        )


class Recipe(Settings):
    """How a model is optimised: optimiser, learning-rate schedule, loss and target transform.

    The defaults are the paper's recipe: AdaDelta (lr 1.0, rho 0.9, eps 1e-6), constant rate, RMSE
    over the valid cells of a minibatch, streamflow target as ``log(q + 1)``. A recipe is set per
    domain (``domains.<d>.recipe``), since what suits streamflow need not suit soil moisture.
    """

    _where: ClassVar[str] = "recipe"

    optimizer: Literal["adadelta", "adam", "adamw"] = Field(
        "adadelta",
        description="adadelta (the paper), adam, or adamw (decoupled weight_decay; for the other two "
        "weight_decay is the classic L2 term)",
    )
    lr: float = Field(1.0, description="learning rate (the paper's AdaDelta: 1.0)")
    weight_decay: float = Field(0.0, description="weight decay (>= 0)")
    schedule: Literal["constant", "cosine", "step"] = Field(
        "constant",
        description="constant; cosine (from lr down to lr * lr_min_frac over the budget's total updates); "
        "step (times step_gamma every step_every updates). Every schedule starts with warmup_updates of "
        "linear warm-up",
    )
    warmup_updates: int = Field(0, description="updates of linear learning-rate warm-up")
    lr_min_frac: float = Field(0.0, description="cosine: the final rate as a fraction of lr, in [0, 1]")
    step_every: int = Field(0, description="step: updates between two decays (> 0 for schedule step)")
    step_gamma: float = Field(0.5, description="step: the factor of each decay, in (0, 1]")
    grad_clip: float = Field(0.0, description="clip the gradient's global L2 norm to this value (0 = off)")
    loss: Literal["rmse", "mse", "nse"] = Field(
        "rmse",
        description="rmse (the paper), mse, or nse: the basin-normalised squared error of Kratzert et al. "
        "(2019), each cell's squared error divided by (s_b + nse_eps)^2, s_b the standard deviation of its "
        "site's training target",
    )
    nse_eps: float = Field(0.1, description="nse loss: keeps near-constant sites from dominating (> 0)")
    target_transform: Literal["log1p", "none"] = Field(
        "log1p",
        description="streamflow target: log1p (the paper's log(q + 1)) or none (q scaled like the other "
        "variables); soil moisture is never log-transformed",
    )
    loss_days: int = Field(
        0,
        description="score only the last n days of each window, so the LSTM's spin-up from a zero state "
        "does not pull the fit (0 = every day, the paper); at most the window training.rho",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="arithmetic of each training update's forward pass: fp32 (the paper) or bf16 autocast "
        "(weights, optimiser, loss and predictions stay float32; pays on CPUs with AVX512-BF16/AMX and on "
        "CUDA, elsewhere it may be slower)",
    )

    @model_validator(mode="after")
    def _valid(self) -> Recipe:
        _finite(self.lr, 0.0, "recipe.lr", strict=True)
        _finite(self.nse_eps, 0.0, "recipe.nse_eps", strict=True)
        for name in ("weight_decay", "grad_clip", "lr_min_frac"):
            _finite(getattr(self, name), 0.0, f"recipe.{name}", strict=False)
        if self.lr_min_frac > 1.0:
            raise ConfigError("recipe.lr_min_frac", f"must be in [0, 1], got {self.lr_min_frac}")
        if not 0.0 < self.step_gamma <= 1.0:
            raise ConfigError("recipe.step_gamma", f"must be in (0, 1], got {self.step_gamma}")
        for name in ("warmup_updates", "step_every", "loss_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"recipe.{name}", f"must be an integer >= 0, got {getattr(self, name)!r}")
        if self.schedule == "step" and self.step_every <= 0:
            raise ConfigError("recipe.step_every", "schedule 'step' needs a positive step_every")
        return self

    @property
    def is_paper(self) -> bool:
        """Whether this is the paper's recipe (every setting at its default)."""
        return self == PAPER_RECIPE

    def to_dict(self) -> dict[str, object]:
        """The recipe's settings as recorded with a model (:func:`settings_record`)."""
        return settings_record(self)

    def overridden(self, changes: Mapping[str, object], where: str = "recipe") -> Recipe:
        """This recipe with ``changes``; an unknown key or a bad value is a ConfigError naming
        ``<where>.<key>``."""
        self.check_keys(changes, where)
        try:
            return self.replace(**changes)
        except ConfigError as exc:
            raise renamed(exc, where) from exc

    @classmethod
    def check_keys(cls, keys: Iterable[str], where: str = "recipe") -> None:
        """Refuse a key that is not a setting: a ConfigError naming ``<where>.<key>``."""
        known = set(cls.model_fields)
        unknown = sorted(set(keys) - known)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}", f"unknown setting; expected one of {sorted(known)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Recipe:
        """A recipe from a mapping (a recorded recipe, a benchmark's candidate)."""
        cls.check_keys(data)
        return cls(**data)


# The settings every model recorded before any later setting existed (their config JSON decides
# reuse): a setting outside this list is recorded only when it differs from its default, so adding a
# setting never invalidates a model trained before it existed (settings_record).
RECORDED_BEFORE: dict[str, frozenset[str]] = {
    "Recipe": frozenset(
        {
            "optimizer",
            "lr",
            "weight_decay",
            "schedule",
            "warmup_updates",
            "lr_min_frac",
            "step_every",
            "step_gamma",
            "grad_clip",
            "loss",
            "nse_eps",
            "target_transform",
            "loss_days",
        }
    ),
    "Training": frozenset(
        {"hidden", "epochs", "dropconnect", "max_iters_per_epoch", "epoch_scale", "min_iters_per_epoch"}
    ),
    "DomainWindow": frozenset({"rho", "batch"}),
    "Budget": frozenset(
        {
            "mode",
            "updates",
            "passes",
            "seconds",
            "max_updates",
            "min_updates",
            "patience",
            "min_delta",
            "eval_every",
            "metric",
        }
    ),
}


def settings_record(settings: Settings, cls: type[Settings] | None = None) -> dict[str, object]:
    """The settings of ``settings`` (those declared by ``cls``, default its own class) as recorded
    with a model: the general rule of reuse.

    A setting whose schema entry says ``affects_model: False`` is never recorded. Every setting of
    :data:`RECORDED_BEFORE` is; any other (one added later) only when it is not at its default. A
    model's recorded JSON then stays byte-stable when a setting is added, and a model trained with
    the new setting at another value is never confused with one trained before it existed.
    """
    cls = cls or type(settings)
    always = RECORDED_BEFORE.get(cls.__name__, frozenset(cls.model_fields))
    out: dict[str, object] = {}
    for key, info in cls.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("affects_model") is False:
            continue
        value = getattr(settings, key)
        if key in always or value != info.default:
            out[key] = value.model_dump() if isinstance(value, BaseModel) else value
    return out


PAPER_RECIPE = Recipe()
TARGET_TRANSFORMS: tuple[str, ...] = get_args(Recipe.model_fields["target_transform"].annotation)


class ValidationSplit(Settings):
    """Where a domain's held-out validation days lie in its training period (``training.validation``).

    ``tail`` holds out the last ``validation_days`` (the split of every model trained before this
    setting existed). ``blocks`` holds out the same number of days as evenly spaced blocks of about
    ``block_days`` over the whole training period, so that a short (one-year) period is validated in
    every season and still trained in every season; the held-out days are never training targets
    (their inputs still feed the LSTM's state), and early stopping scores them.
    """

    _where: ClassVar[str] = "validation"

    split: Literal["tail", "blocks"] = Field(
        "tail",
        description="tail: the last validation_days of the training period (the default: byte-identical to "
        "models trained before this setting); blocks: validation_days held out as evenly spaced blocks "
        "over the whole training period, so a one-year period is validated (and trained) in every season",
    )
    block_days: int = Field(
        5,
        description="blocks: the length of each held-out block in days (the validation_days are cut into "
        "validation_days // block_days blocks; the default 5 gives 12 blocks, one a month, of a 61-day "
        "hold-out); >= 1 and at most validation_days",
    )

    @model_validator(mode="after")
    def _valid(self) -> ValidationSplit:
        if self.block_days < 1:
            raise ConfigError("validation.block_days", f"must be an integer >= 1, got {self.block_days!r}")
        return self


class DomainWindow(Settings):
    """How one domain's models see their data: the window, the minibatch and the held-out days."""

    _where: ClassVar[str] = "training"
    _positional: ClassVar[tuple[str, ...] | None] = ("rho", "batch", "warmup", "validation_days")

    rho: int = Field(description="window length in days (the paper: 30 soil moisture, 365 streamflow)")
    batch: int = Field(description="sites per minibatch (capped at the training set's sites)")
    warmup: int = Field(
        description="days of spin-up before the test window, run but not scored (>= 0)",
        json_schema_extra={"affects_model": False},  # test time only
    )
    validation_days: int = Field(
        0,
        description="days of the training period held out for the learning curve and early stopping, at its "
        "end or spread over it (training.validation) (0 = none; the curve is then scored on the training "
        "period; converge needs > 0)",
        json_schema_extra={"affects_model": False},  # recorded as the validation period's label
    )
    validation: ValidationSplit = Field(
        default_factory=ValidationSplit,
        description="where the validation_days lie: split tail (the end of the training period) or blocks "
        "(spread over it; see the user guide, Validation split)",
        json_schema_extra={"affects_model": False},  # recorded as the validation period's label
    )

    @model_validator(mode="after")
    def _window(self) -> DomainWindow:
        for name in ("rho", "batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"training.{name}", f"must be positive, got {getattr(self, name)}")
        for name in ("warmup", "validation_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"training.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.validation.split == "blocks":
            if self.validation_days <= 0:
                raise ConfigError(
                    "training.validation.split",
                    "'blocks' holds out validation_days days: set training.validation_days > 0",
                )
            if self.validation.block_days > self.validation_days:
                raise ConfigError(
                    "training.validation.block_days",
                    f"{self.validation.block_days} is longer than the {self.validation_days} "
                    "validation_days it cuts into blocks",
                )
        return self


class DomainTraining(DomainWindow):
    """One domain's window with its recipe: what the trainer reads for a domain."""

    recipe: Recipe = Field(default_factory=Recipe, description="optimiser, schedule, loss, target transform")

    @model_validator(mode="after")
    def _loss_days(self) -> DomainTraining:
        if self.recipe.loss_days > self.rho:
            raise ConfigError(
                "recipe.loss_days", f"{self.recipe.loss_days} days is longer than the window rho={self.rho}"
            )
        return self

    def with_recipe(self, changes: Mapping[str, object], where: str = "recipe") -> DomainTraining:
        """This domain's training with its recipe changed (:meth:`Recipe.overridden`); every error,
        the window's check of ``loss_days`` included, names ``<where>.<key>``."""
        recipe = self.recipe.overridden(changes, where)
        try:
            return self.replace(recipe=recipe)
        except ConfigError as exc:
            raise renamed(exc, where) from exc


BudgetMode = Literal["paper", "equal_updates", "equal_passes", "converge", "wall_clock"]
BUDGET_MODES: tuple[str, ...] = get_args(BudgetMode)
VALIDATION_METRICS = ("auto", "nse", "rmse")
# "auto": the paper's headline metric of each domain (soil moisture RMSE, streamflow NSE)
AUTO_METRIC = {d: r.headline_metric for d, r in DOMAIN_RECORDS.items()}


class Budget(Settings):
    """How much each model is trained: the mode and the parameters every mode reads.

    * ``paper``: the paper's epoch rule (``training.epochs`` epochs of the sampling formula, scaled
      and clipped by ``training``), so a bigger training set gets more updates.
    * ``equal_updates``: ``updates`` weight updates for every model, whatever its data size.
    * ``equal_passes``: ``passes`` passes over each model's data, one pass being
      ``n_sites * n_days / (batch * rho)`` updates.
    * ``converge``: early stopping on the validation period (see ``patience``, ``min_delta``,
      ``smooth``); at most ``max_updates``; the weights of the best check are kept.
    * ``wall_clock``: train for ``seconds`` of wall time, at most ``max_updates``. Not reproducible
      across machines; the updates reached are recorded.

    Every mode checks the validation metric every ``eval_every`` updates (the learning curve) on
    the ``validation_days`` held out of the training period (at its end or spread over it:
    :class:`ValidationSplit`), held out in every mode so that modes are compared on the same
    training data.
    """

    _where: ClassVar[str] = "budget"

    mode: BudgetMode = Field(
        "paper", description="how the number of updates is decided (see the user guide, Training budgets)"
    )
    updates: int = Field(0, description="equal_updates: weight updates per model")
    passes: float = Field(0.0, description="equal_passes: passes over each model's data")
    seconds: float = Field(0.0, description="wall_clock: seconds of training per model")
    max_updates: int = Field(0, description="a cap on updates in every mode (0 = none; converge needs one)")
    min_updates: int = Field(0, description="converge: updates before stopping is judged")
    patience: int = Field(
        5,
        description="converge: validation checks without an improvement of more than min_delta before stopping",
    )
    min_delta: float = Field(
        0.0,
        description="converge: the improvement that counts (NSE points for nse, a fraction of the best for rmse), in [0, 1)",
    )
    eval_every: int = Field(0, description="updates between two validation checks (0 = once per paper epoch)")
    metric: Literal["auto", "nse", "rmse"] = Field(
        "auto",
        description="the validation metric; auto = the domain's headline metric (soil moisture rmse, streamflow nse)",
    )
    smooth: int = Field(
        1,
        description="converge: checks averaged (a moving mean) before judging an improvement, so a noisy curve is "
        "not taken for a plateau at its first dip (1 = each check alone); the best single check's weights are kept",
    )

    @model_validator(mode="after")
    def _valid(self) -> Budget:
        for name in ("updates", "max_updates", "min_updates", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"budget.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.smooth < 1:
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
        return self

    def for_domain(self, domain: str) -> Budget:
        """``metric="auto"`` resolved to the domain's headline metric."""
        if self.metric != "auto":
            return self
        return self.replace(metric=AUTO_METRIC.get(domain, "nse"))

    def to_dict(self) -> dict[str, object]:
        """The budget as recorded with a model (:func:`settings_record`)."""
        return settings_record(self)


def check_seeds(seeds: tuple[int, ...]) -> tuple[int, ...]:
    """Seeds: at least one, distinct, >= 0 (numpy's generators reject negative seeds deep inside
    training). The one place this rule is checked."""
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError("seeds", f"seeds must be distinct integers >= 0, at least one; got {list(seeds)}")
    return seeds


Seeds = Annotated[tuple[int, ...], AfterValidator(check_seeds)]


class Training(Settings):
    """The model and the paper's epoch rule, shared by every domain (``training:`` in a study)."""

    _where: ClassVar[str] = "training"

    hidden: int = Field(256, description="LSTM hidden units (the paper: 256)")
    epochs: int = Field(500, description="epochs of the paper's budget rule (budget.mode paper)")
    dropconnect: float = Field(
        0.5, description="DropConnect rate of the recurrent weights, in [0, 1) (the paper: 0.5)"
    )
    max_iters_per_epoch: int | None = Field(
        None, description="caps the paper's iterations per epoch (none = no cap)"
    )
    epoch_scale: float = Field(
        1.0, description="the fraction of the paper's iterations per epoch (keeps its proportions)"
    )
    min_iters_per_epoch: int = Field(1, description="the least iterations of an epoch")
    checkpoint_every: int = Field(
        1,
        description="epochs (paper mode) or validation checks (other modes) between checkpoints",
        json_schema_extra={"affects_model": False},  # where a killed run resumes, not the weights
    )

    @model_validator(mode="after")
    def _valid(self) -> Training:
        if self.hidden <= 0:
            raise ConfigError("profile.hidden", f"must be positive, got {self.hidden}")
        if self.epochs <= 0:
            raise ConfigError("profile.epochs", f"must be positive, got {self.epochs}")
        if not 0.0 <= self.dropconnect < 1.0:
            raise ConfigError("profile.dropconnect", f"must be in [0, 1), got {self.dropconnect}")
        if self.max_iters_per_epoch is not None and self.max_iters_per_epoch <= 0:
            raise ConfigError(
                "profile.max_iters_per_epoch", f"must be positive, got {self.max_iters_per_epoch}"
            )
        if self.checkpoint_every <= 0:
            raise ConfigError("profile.checkpoint_every", f"must be positive, got {self.checkpoint_every}")
        if not 0.0 < self.epoch_scale <= 1e6:
            raise ConfigError("profile.epoch_scale", f"must be positive, got {self.epoch_scale}")
        if self.min_iters_per_epoch <= 0:
            raise ConfigError(
                "profile.min_iters_per_epoch", f"must be positive, got {self.min_iters_per_epoch}"
            )
        return self


class Profile(Training):
    """Everything a study's models are trained with, resolved from the study file (its preset,
    its own keys and the run's overrides): :meth:`StudyFile.profile`. ``name`` is the preset's."""

    _where: ClassVar[str] = "profile"
    _positional: ClassVar[tuple[str, ...] | None] = ("name",)

    name: str
    seeds: Seeds = (0,)
    domains: dict[str, DomainTraining] = Field(default_factory=dict)
    budget: Budget = Field(default_factory=Budget)

    @model_validator(mode="after")
    def _budget_fits(self) -> Profile:
        self.check_budget(self.budget)
        return self

    def check_budget(self, budget: Budget) -> None:
        """Raise when ``budget`` cannot run with this profile's domains."""
        if budget.mode == "converge":
            short = [d for d, t in self.domains.items() if t.validation_days <= 0]
            if short:
                raise ConfigError(
                    "budget.mode",
                    f"'converge' stops on a held-out validation period, but profile {self.name!r} "
                    f"holds out no days for {short}: set domains.<d>.training.validation_days > 0",
                )

    def for_domain(self, domain: str) -> DomainTraining:
        if domain not in self.domains:
            raise ConfigError("domain", f"unknown domain {domain!r}; expected one of {sorted(self.domains)}")
        return self.domains[domain]


class PlanConfig(Settings):
    """Thresholds of the experiment plan (``thresholds:`` in a study)."""

    _where: ClassVar[str] = "plan"

    min_sites_subregion: int = Field(
        10, description="the least sites of a sub-region trained global vs local"
    )
    min_sites_roi: int = Field(
        10, description="the least sites of a Level III region of interest (similarity experiments)"
    )
    coverage: float = Field(
        0.9, description="share of valid target days a site needs in both periods, in (0, 1]"
    )
    size_control_seed: int = Field(0, description="seed of the size-controlled draws")

    @model_validator(mode="after")
    def _valid(self) -> PlanConfig:
        if self.min_sites_subregion < 1 or self.min_sites_roi < 1:
            raise ConfigError("plan.min_sites", "must be >= 1")
        if not 0.0 < self.coverage <= 1.0:
            raise ConfigError("plan.coverage", f"must be in (0, 1], got {self.coverage}")
        return self
