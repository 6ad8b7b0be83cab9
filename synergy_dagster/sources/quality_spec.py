"""The data-quality policy of a study (``quality:`` in the study file, and per domain).

Three classes of finding, each with the action a study chooses:

- ``implausible``: a value no instrument or model can produce (outside the plausible range of its
  variable, a daily minimum temperature above the maximum, an impossible attribute): ``refuse``
  the study (default, naming file, site, date and value), ``mask`` the value (set it missing and
  record it) or ``drop_site`` (record the values and leave the site out);
- ``unusable``: a site whose inputs cannot feed a model (missing on nearly every day of a
  period): ``drop`` it with its reason (default) or ``refuse`` the study;
- ``suspicious``: data that are possible but unlikely to be right (a water balance that does not
  close, a series orders of magnitude off the study's others, a flat-lined input, a copied
  series): ``warn`` (default) or ``drop`` the site.

Every threshold is a setting with its rationale; the defaults were chosen so that the clean real
archives (Caravan CAMELS-US, CAMELS-US NLDAS, the SMAP cube) raise nothing (docs/quality.md).
A domain's ``quality:`` overrides only the keys it gives (:func:`effective_quality`).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from synergy_dagster.config import Settings
from synergy_dagster.errors import ConfigError

ImplausibleAction = Literal["refuse", "mask", "drop_site"]
UnusableAction = Literal["drop", "refuse"]
SuspiciousAction = Literal["warn", "drop"]
Bounds = Annotated[list[float], Field(min_length=2, max_length=2)]


class QualityThresholds(Settings):
    """The thresholds of the checks beyond per-value ranges (see docs/quality.md)."""

    _where: ClassVar[str] = "quality.thresholds"

    max_missing_share: float = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="unusable site: a dynamic input missing on more than this share (0-1) of the days of "
        "the train or the test period. Default 0.95, 'nearly all days': a site with 5 % of its forcing "
        "cannot be simulated; sparser but usable inputs are left to the coverage filter of the plan",
    )
    max_runoff_ratio: float = Field(
        2.0,
        gt=0.0,
        description="water balance: mean runoff over mean precipitation (both mm/d, days where both are "
        "given) above this is suspicious. Default 2.0: runoff cannot exceed precipitation over decades "
        "except by undercaught snow or inter-basin transfer, which lift clean snowy basins above 1 "
        "(measured in docs/quality.md); a flow in cfs read as mm/d gives ratios of hundreds",
    )
    max_evaporation_excess: float = Field(
        0.25,
        ge=0.0,
        description="water balance: actual evaporation over the record (precipitation minus runoff, mm/d) "
        "above (1 + this) x mean potential evaporation is suspicious (the energy limit of Budyko). "
        "Default 0.25: a margin for the method an archive's potential evaporation was computed with; the "
        "clean real data stay far below the limit (docs/quality.md). Checked only where the domain has a "
        "potential-evaporation input in mm/d",
    )
    unit_slip_decades: float = Field(
        1.3,
        gt=0.0,
        description="a site's long-term mean of a dynamic input on a ratio scale (precipitation, "
        "evaporation, radiation, humidity, pressure, day length, wind speed, temperature in K) more than "
        "this many orders of magnitude (log10) from the median of the study's sites is suspicious (a "
        "unit slip: mm vs m, "
        "kg m-2 s-1 vs mm/d). Default 1.3 (a factor 20): above the spread of the clean real archives "
        "across CONUS climates (docs/quality.md) and below the factors of 24 to 1000 of common slips; the "
        "target is left to the water balance, since runoff spans three decades across CONUS",
    )
    min_sites_unit_slip: int = Field(
        5,
        ge=3,
        description="the fewest sites for which the unit-slip comparison is made (a median of "
        "fewer is no reference)",
    )
    flatline_days: int = Field(
        15,
        ge=2,
        description="suspicious: a dynamic input holding the same non-zero value on at least this many "
        "consecutive days (a stuck sensor, a gap filled by repetition). Default 15: twice the longest "
        "repetition in the clean real archives (docs/quality.md); zeros (dry spells) never count",
    )
    flatline_days_target: int = Field(
        730,
        ge=2,
        description="the same for the target. Default 730 (two years): rounded low flows repeat for "
        "more than a year in clean gauges (docs/quality.md), and zero flow of ephemeral streams never "
        "counts",
    )
    min_days_duplicate: int = Field(
        365,
        ge=1,
        description="suspicious: two sites whose target series are identical on every day, with at "
        "least this many valid non-zero days (a file copied under another gauge's name)",
    )
    tmin_tmax_tolerance: float = Field(
        0.0,
        ge=0.0,
        description="implausible: a day whose minimum temperature exceeds its maximum by more than this "
        "(degrees, the series' units). Default 0: products that give both derive them from the same "
        "sub-daily series",
    )
    max_area_km2: float = Field(
        1.0e7,
        gt=0.0,
        description="implausible attribute: a basin area (km2) not above 0 or above this. Default 1e7: "
        "the Amazon basin, the largest, drains 7e6 km2",
    )
    elevation_m: Bounds = Field(
        default_factory=lambda: [-500.0, 9000.0],
        description="implausible attribute: [lowest, highest] elevation (m) of an elevation attribute "
        "(names with elev / ele_). Default [-500, 9000]: the Dead Sea shore (-430 m) and Everest (8849 m)",
    )
    fraction_excess: float = Field(
        0.1,
        ge=0.0,
        description="implausible attribute: a fraction or percentage (names with frac / _pc_, except "
        "HydroATLAS degree of regulation dor_pc) below 0 or above 100 x (1 + this). A name does not tell a "
        "fraction from a percentage (CAMELS gives sand_frac in %), so only what neither scale allows is "
        "refused. Default 0.1: HydroATLAS lake area exceeds 100 % of some clean basins (its polygons differ "
        "from the basin's; docs/quality.md)",
    )
    attribute_bounds: dict[str, Bounds] = Field(
        default_factory=dict,
        description="implausible attribute: [lo, hi] per static attribute name, added to (or replacing) "
        "the built-in rules, e.g. {aridity: [0, 50]}",
    )

    @model_validator(mode="after")
    def _ordered(self) -> QualityThresholds:
        for name, (lo, hi) in {"elevation_m": self.elevation_m, **self.attribute_bounds}.items():
            if not lo < hi:
                raise ConfigError(f"quality.thresholds.{name}", f"[lo, hi] needs lo < hi, got [{lo}, {hi}]")
        return self


class QualitySpec(Settings):
    """What happens to data that fail a quality check (``quality:`` in a study, or under one domain)."""

    _where: ClassVar[str] = "quality"

    implausible: ImplausibleAction = Field(
        "refuse",
        description="a value outside the plausible range of its variable, tmin above tmax, an impossible "
        "attribute: 'refuse' the study (default: nothing changes silently), 'mask' the value (missing, "
        "recorded with rule, file, site, date and original value) or 'drop_site' (record it and leave "
        "the site out)",
    )
    unusable: UnusableAction = Field(
        "drop",
        description="a site whose dynamic inputs are missing on (nearly) every day of a period: 'drop' it "
        "with its reason (default, as sites without any target are) or 'refuse' the study",
    )
    suspicious: SuspiciousAction = Field(
        "warn",
        description="possible but unlikely data (water balance, unit slip, flat line, duplicated series): "
        "'warn' (default: a WARN asset check and a report row) or 'drop' the site",
    )
    thresholds: QualityThresholds = Field(
        default_factory=QualityThresholds, description="the checks' thresholds (each documented)"
    )


def effective_quality(study: QualitySpec, domain: QualitySpec | None) -> QualitySpec:
    """The policy of one domain: the study's, with the keys the domain's ``quality:`` gives on top
    (thresholds merged key by key), so a domain states only what differs."""
    if domain is None:
        return study
    given = domain.model_fields_set
    thresholds = study.thresholds
    if "thresholds" in given:
        changed = domain.thresholds.model_fields_set
        thresholds = thresholds.replace(**{k: getattr(domain.thresholds, k) for k in changed})
    actions = {k: getattr(domain, k) for k in given if k != "thresholds"}
    return study.replace(**actions, thresholds=thresholds)
