"""How a study uses the USGS approval status and qualifiers of its streamflow days.

``domains.streamflow.usgs`` in the study file. Streamflow that arrived through the Water Data
feed carries, per day, an approval status (Approved / Provisional) and qualifiers (estimated, ice,
equipment...), kept as the flag variable of the streamflow source
(:mod:`synergy_dagster.sources.usgs_flags`). This block says which of those days a study scores
and which it trains on (the masks: :mod:`synergy_dagster.sources.usgs_masks`), and whether the
test period follows the newest data (:mod:`synergy_dagster.sources.usgs_latest`), and which USGS
gauges outside the reader's archive the study adds (``new_gauges``: the registry
:mod:`synergy_dagster.sources.usgs_registry`, the forcing :mod:`synergy_dagster.sources.site_packs`).
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from synergy_dagster.config import Settings

_USGS_NUMBER = re.compile(r"^\d{8,15}$")


class UsgsSpec(Settings):
    """Which streamflow days, by USGS approval status and qualifier, a study evaluates and trains on."""

    _where: ClassVar[str] = "usgs"

    evaluate: Literal["all", "approved"] = Field(
        "all",
        description=(
            "Which observed days of the test period are scored: 'all' (default, every finite "
            "value, as the paper did) or 'approved': days whose value came through the USGS feed "
            "and is not Approved (Provisional, or a landed file that carries no status) are "
            "masked before the metrics, so skill is not judged against values USGS may still "
            "revise. Days from the reader's archive (CAMELS, Caravan: published, approved "
            "records) count as approved. Soil moisture has no such flags: no effect there."
        ),
    )
    train: Literal["all", "exclude_estimated"] = Field(
        "all",
        description=(
            "Which observed days of the training period are fitted: 'all' (default, the paper's "
            "rule) or 'exclude_estimated': days the USGS marks as estimated or with any other "
            "qualifier (ice, equipment failure...) are masked in the training target (and in "
            "the held-out validation days carved from it), so the models do not learn from "
            "values that were not measured. Inputs are not changed; the models still see every day."
        ),
    )
    test_end: Literal["fixed", "latest"] = Field(
        "fixed",
        description=(
            "Where the test period ends: 'fixed' (default) at periods.test.end as written, or "
            "'latest': at the newest day on which some kept site has both its streamflow and every "
            "dynamic input (the forcing) in the tagged sites, never before the written end. "
            "Resolved with the study at the start of each run, so each scheduled refresh that "
            "brings new days extends the evaluation (and the skill per water year) to them."
        ),
    )
    new_gauges: tuple[str, ...] = Field(
        (),
        description=(
            "USGS site numbers (8-15 digits, quoted: YAML reads digits without quotes as a number) "
            "of gauges outside the reader's archive that the study adds (default none). The next "
            "USGS fetch registers each one's monitoring-location record (name, point, drainage area "
            "in km2) under <data_dir>/landed and fetches its history from landing.history_start; "
            "the next source build adds it as the site usgs_<number> once its site pack (forcing "
            "and static attributes, docs/usgs-feed.md#new-gauges) has landed, and reports it "
            "until then. A number the archive already holds is refused."
        ),
    )

    @field_validator("new_gauges")
    @classmethod
    def _usgs_numbers(cls, numbers: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in numbers if not _USGS_NUMBER.match(n)]
        if bad:
            raise ValueError(f"not USGS site numbers (8-15 digits, quoted): {bad[:5]}")
        dup = sorted({n for n in numbers if numbers.count(n) > 1})
        if dup:
            raise ValueError(f"listed twice: {dup}")
        return numbers
